//! `embargo lists compile`: writes the compiled, memory-mappable rule set.
//!
//! The output is written to a temporary file beside it and renamed into place, so a running
//! Embargo that has the old file memory-mapped never sees a half-written one.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::rule_files::{compile_lists, parse_format};
use embargo_app::list::log_report;

#[derive(clap::Args)]
pub struct CompileArgs {
    /// The syntax of every FILE (detected per file when omitted): hosts, hosts-subtree,
    /// domains, domains-subtree, adblock, dnsmasq, unbound, wildcard, ddg-app, ddg-web,
    /// disconnect, disconnect-entities, xray, exodus, embargo.
    #[arg(long, value_name = "FMT")]
    pub format: Option<String>,
    /// Rule lists to compile into one rule set.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Where to write the compiled rule set (load it with `embargo check --rules OUT`).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
}

pub fn run(args: CompileArgs) -> Result<ExitCode> {
    let format = parse_format(args.format.as_deref())?;
    let (set, reports) = compile_lists(&args.files, format)?;
    let mut errors = 0;
    for report in &reports {
        errors += report.error_count;
        log_report(report);
    }
    let bytes = set.as_bytes();
    let tmp = args.output.with_extension("tmp-compile");
    {
        let mut file = std::fs::File::create(&tmp)
            .with_context(|| format!("{}: cannot create", tmp.display()))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("{}: cannot write", tmp.display()))?;
    }
    std::fs::rename(&tmp, &args.output)
        .with_context(|| format!("{}: cannot move into place", args.output.display()))?;
    let names = set.name_count();
    let per_name = if names > 0 {
        format!(", {:.2} bytes per name", bytes.len() as f64 / names as f64)
    } else {
        String::new()
    };
    eprintln!(
        "wrote {}: {} names, {} bytes{per_name}",
        args.output.display(),
        names,
        bytes.len()
    );
    if errors > 0 {
        eprintln!("embargo lists compile: {errors} error(s) while loading (listed above)");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
