//! One module per subcommand; each exposes `*Args` (clap) and `run`.

pub mod check;
pub mod compile;
pub mod lists;
pub mod run;
pub mod apps;
pub mod history;
pub mod output;
pub mod stats;
pub mod status;
