//! `embargo check`: one decision per name or address, with reason, owner and country.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Names or addresses to check.
    #[arg(required = true)]
    pub targets: Vec<String>,
}

pub fn run(_args: CheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("embargo check: not built yet")
}
