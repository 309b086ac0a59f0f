//! `embargo`: the Linux shell of Embargo (see README.md for every command).

mod commands;
// Used by `embargo run` (the driver's app_owner hook); unused until it is wired.
#[allow(dead_code)]
mod procfs;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "embargo",
    version,
    about = "See and stop which app sends data where"
)]
struct Cli {
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => commands::check::run(args),
        Command::Lists(cmd) => commands::lists::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("embargo: {err:#}");
            ExitCode::FAILURE
        }
    }
}
