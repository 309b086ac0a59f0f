//! `embargo default [telemetry|full|off]`: how the built-in default applies, shown or set.
//!
//! - `telemetry` (the default): the embargoed companies' telemetry, analytics, crash, push-
//!   tracking, ad-measurement and fingerprinting endpoints are blocked for every app, their
//!   own apps included; the apps' content, API and login keep working.
//! - `full`: also every endpoint they own (their networks, whole clouds included) and every
//!   endpoint located in the embargoed countries; their apps stop working, and so do other
//!   apps' servers rented in those clouds.
//! - `off`: no built-in rules; only the lists added with `embargo lists add`.
//!
//! Stored in the state directory (`settings.json`) and applied to a running instance at once;
//! `embargo check` decides with it too. `run --embargo LEVEL` / `--no-default` override it for
//! one run.

use std::process::ExitCode;

use anyhow::{Context, Result};

use super::output::{self, Common};
use crate::control;
use embargo_app::store::DefaultRules;

/// Arguments of `embargo default`.
#[derive(clap::Args)]
pub struct DefaultArgs {
    /// telemetry, full or off (none: show the setting).
    #[arg(value_parser = parse)]
    pub level: Option<DefaultRules>,
    /// --state-dir and --json.
    #[command(flatten)]
    pub common: Common,
}

fn parse(text: &str) -> std::result::Result<DefaultRules, String> {
    match text {
        "telemetry" => Ok(DefaultRules::Telemetry),
        "full" => Ok(DefaultRules::Full),
        "off" => Ok(DefaultRules::Off),
        _ => Err(format!("{text:?}: use telemetry, full or off")),
    }
}

/// Runs `embargo default`.
pub fn run(args: DefaultArgs) -> Result<ExitCode> {
    let state = args.common.state();
    let mut settings = state.load_settings()?;
    let live = match args.level {
        None => false,
        Some(level) => {
            settings.default_rules = level;
            state.save_settings(&settings)?;
            control::notify_reload(&state).context("tell the running instance")?
        }
    };
    if args.common.json {
        output::print_json(&serde_json::json!({
            "default_rules": settings.default_rules,
            "applied_to_running_instance": live,
        }))?;
    } else if args.level.is_some() {
        let applied = if live {
            "applied to the running instance"
        } else {
            "saved; no instance runs"
        };
        println!(
            "built-in default: {} ({applied})",
            settings.default_rules.name()
        );
    } else {
        println!("built-in default: {}", settings.default_rules.name());
    }
    Ok(ExitCode::SUCCESS)
}
