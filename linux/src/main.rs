//! `embargo`: the Linux shell of Embargo (see README.md for every command).

/// `eprintln!` that never panics. `embargo run 2>&1 | tee log`, then Ctrl-C: the shell ends
/// `tee` too, and a panic on the closed pipe would skip the cleanup that follows.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod commands;
mod control;
mod logger;
mod netns;
mod procfs;
mod routes;
mod rule_files;
mod runtime;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "embargo",
    version,
    about = "See and stop which app sends data where"
)]
struct Cli {
    /// More log detail on stderr: -v debug, -vv trace (default: info). RUST_LOG, when set,
    /// replaces it (`warn`, `embargo_history=debug,info`).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Explain the decision for names or addresses.
    Check(commands::check::CheckArgs),
    /// Manage rule lists (add, update, remove, show, compile).
    #[command(subcommand)]
    Lists(commands::lists::ListsCommand),
    /// Protect a network namespace (--netns) or the whole machine through a TUN device.
    Run(commands::run::RunArgs),
    /// Whether an instance runs, what it has done, and what is stored.
    Status(commands::status::StatusArgs),
    /// The built-in default: telemetry (default), full or off; shown or set.
    Default(commands::default::DefaultArgs),
    /// Apps seen, with blocking on or off; `apps block|allow|pause APP`, per-app targets.
    Apps(commands::apps::AppsArgs),
    /// What apps tried to reach, newest first (filters; --json, --export csv|json|ndjson).
    History(commands::history::HistoryArgs),
    /// Blocked and allowed counts per app, owner, country or day.
    Stats(commands::stats::StatsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logger::init(cli.verbose);
    let result = match cli.command {
        Command::Check(args) => commands::check::run(args),
        Command::Lists(cmd) => commands::lists::run(cmd),
        Command::Run(args) => commands::run::run(args),
        Command::Status(args) => commands::status::run(args),
        Command::Default(args) => commands::default::run(args),
        Command::Apps(args) => commands::apps::run(args),
        Command::History(args) => commands::history::run(args),
        Command::Stats(args) => commands::stats::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            say!("embargo: {err:#}");
            ExitCode::FAILURE
        }
    }
}
