//! One module per subcommand; each exposes `*Args` (clap) and `run`.

pub mod check;
pub mod compile;
pub mod lists;
