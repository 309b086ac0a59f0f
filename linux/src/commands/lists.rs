//! `embargo lists`: add, update, remove, show and compile rule lists.

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum ListsCommand {
    /// Compile rule sources into one memory-mappable file.
    Compile(super::compile::CompileArgs),
}

pub fn run(cmd: ListsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ListsCommand::Compile(args) => super::compile::run(args),
    }
}
