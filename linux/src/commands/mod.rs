//! One module per subcommand; each exposes `*Args` (clap) and `run`.

pub mod apps;
pub mod check;
pub mod compile;
pub mod default;
pub mod history;
pub mod lists;
pub mod output;
pub mod run;
pub mod stats;
pub mod status;
