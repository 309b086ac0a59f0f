//! `embargo lists compile`: writes the compiled, memory-mappable rule set.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct CompileArgs {}

pub fn run(_args: CompileArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("embargo lists compile: not built yet")
}
