//! `embargo apps`: the apps seen, with blocking on or off, and `apps block|allow|pause APP`.
//!
//! `apps allow-target APP TARGET` and `apps block-target APP TARGET` allow or block one target
//! (a name and its subdomains, `AS45090`, `owner: ByteDance`, `country: CN`) for one app alone,
//! over every list, embargo rules included; `apps unset-target` removes such an override.
//!
//! An app is its executable path (`/usr/bin/curl`) or `uid:N` when no process was found.
//! `block` turns blocking on for the app, `allow` turns it off (its traffic passes every list),
//! `pause` turns it off for a while ([`DEFAULT_PAUSE`] unless `--for` says otherwise).
//! Changes go to the state directory first and then to a running instance (control socket), so
//! they work with or without one and survive restarts.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, Result};
use embargo_policy::{Action, Target};
use serde::Serialize;

use super::output::{self, cell, Common, Table, Tone};
use crate::control::{self, Client};
use embargo_app::store::{now_ms, Pause, Store, DEFAULT_PAUSE};

/// Arguments of `embargo apps`.
#[derive(clap::Args)]
pub struct AppsArgs {
    #[command(subcommand)]
    /// What to change (none: list the apps).
    pub action: Option<AppsAction>,
    /// --state-dir and --json.
    #[command(flatten)]
    pub common: Common,
}

/// What `embargo apps` changes.
#[derive(clap::Subcommand)]
pub enum AppsAction {
    /// Turn blocking on for APP (the lists apply to it).
    Block(AppArg),
    /// Turn blocking off for APP (nothing it sends is blocked).
    Allow(AppArg),
    /// Allow TARGET for APP alone, over every list and embargo (a name, ASnnn, "owner: X",
    /// "country: CC").
    AllowTarget(TargetArgs),
    /// Block TARGET for APP alone, whatever the lists say.
    BlockTarget(TargetArgs),
    /// Remove APP's override of TARGET.
    UnsetTarget(TargetArgs),
    /// Turn blocking off for APP for a while (default 15 minutes), then back on.
    Pause {
        #[command(flatten)]
        app: AppArg,
        /// How long: 90s, 15m, 2h, 1d (a bare number is minutes).
        #[arg(long = "for", value_parser = output::parse_duration)]
        duration: Option<std::time::Duration>,
    },
}

/// The app a change is about.
#[derive(clap::Args)]
pub struct AppArg {
    /// Executable path, a command name found in PATH, or `uid:N`.
    pub app: String,
}

/// An app and a target of a per-app override.
#[derive(clap::Args)]
pub struct TargetArgs {
    /// Executable path, a command name found in PATH, `uid:N`, or an Android package.
    pub app: String,
    /// A host name (and its subdomains), ASnnn, "owner: NAME" or "country: CC".
    #[arg(value_parser = |t: &str| Target::parse(t))]
    pub target: Target,
}

/// One line of `embargo apps`.
#[derive(Debug, Serialize)]
struct AppLine {
    app: String,
    blocking: bool,
    /// Blocking comes back on at this time (ms since the epoch) when paused.
    paused_until_ms: Option<i64>,
    /// Whether the setting is the app's own or the default for new apps.
    explicit: bool,
    allowed: u64,
    blocked: u64,
    last_seen_ms: Option<i64>,
}

/// Runs `embargo apps`.
pub fn run(args: AppsArgs) -> Result<ExitCode> {
    let state = args.common.state();
    match args.action {
        None => list(&state, args.common.json),
        Some(AppsAction::Block(a)) => {
            change(&state, &a.app, Change::Blocking(true), args.common.json)
        }
        Some(AppsAction::Allow(a)) => {
            change(&state, &a.app, Change::Blocking(false), args.common.json)
        }
        Some(AppsAction::AllowTarget(t)) => change(
            &state,
            &t.app,
            Change::Override(t.target, Some(Action::Allow)),
            args.common.json,
        ),
        Some(AppsAction::BlockTarget(t)) => change(
            &state,
            &t.app,
            Change::Override(t.target, Some(Action::Block)),
            args.common.json,
        ),
        Some(AppsAction::UnsetTarget(t)) => change(
            &state,
            &t.app,
            Change::Override(t.target, None),
            args.common.json,
        ),
        Some(AppsAction::Pause { app, duration }) => change(
            &state,
            &app.app,
            Change::Pause(duration.unwrap_or(DEFAULT_PAUSE)),
            args.common.json,
        ),
    }
}

enum Change {
    Blocking(bool),
    Pause(std::time::Duration),
    /// Allow or block a target for the app (`None`: remove the override).
    Override(Target, Option<Action>),
}

fn change(state: &Store, typed: &str, change: Change, json: bool) -> Result<ExitCode> {
    let app = output::resolve_app(typed);
    let mut rules = state.load_app_rules()?;
    let now = now_ms();
    let mut pauses = state.load_pauses(now)?;
    let message = match change {
        Change::Blocking(on) => {
            rules.set_blocking(&app, on);
            pauses.remove(&app);
            format!("blocking {} for {app}", if on { "on" } else { "off" })
        }
        Change::Override(target, Some(action)) => {
            rules.set_override(&app, target.clone(), action);
            let word = match action {
                Action::Allow => "allowed",
                Action::Block => "blocked",
            };
            format!("{target} {word} for {app}")
        }
        Change::Override(target, None) => {
            if !rules.remove_override(&app, &target) {
                anyhow::bail!("{app} has no override of {target}");
            }
            format!("override of {target} removed for {app}")
        }
        Change::Pause(d) => {
            let until_ms = now + d.as_millis() as i64;
            pauses.insert(app.clone(), Pause { until_ms });
            format!(
                "blocking paused for {app} until {} UTC",
                output::time(until_ms)
            )
        }
    };
    state.save_app_rules(&rules)?;
    state.save_pauses(&pauses)?;
    let live = control::notify_reload(state).context("tell the running instance")?;
    if json {
        output::print_json(&serde_json::json!({
            "app": app,
            "blocking": state.effective_app_rules(now)?.blocking_enabled(Some(&app)),
            "paused_until_ms": pauses.get(&app).map(|p| p.until_ms),
            "applied_to_running_instance": live,
        }))?;
    } else {
        let applied = if live {
            "applied to the running instance"
        } else {
            "saved; no instance runs"
        };
        println!("{message} ({applied})");
    }
    Ok(ExitCode::SUCCESS)
}

fn list(state: &Store, json: bool) -> Result<ExitCode> {
    let now = now_ms();
    let stored = state.load_app_rules()?;
    let effective = state.effective_app_rules(now)?;
    let pauses = state.load_pauses(now)?;
    let mut lines: BTreeMap<String, AppLine> = BTreeMap::new();
    let line = |app: &str| -> AppLine {
        AppLine {
            app: app.to_owned(),
            blocking: effective.blocking_enabled(Some(app)),
            paused_until_ms: pauses.get(app).map(|p| p.until_ms),
            explicit: stored.app(app).is_some_and(|s| s.blocking.is_some()),
            allowed: 0,
            blocked: 0,
            last_seen_ms: None,
        }
    };
    for app in stored.apps.keys().chain(pauses.keys()) {
        lines.insert(app.clone(), line(app));
    }
    // What the history counted (all it keeps), then what a running instance saw since it
    // started, which is newer than anything the history may not have committed yet.
    for (app, allowed, blocked, last_seen_ms) in history_counts(state)? {
        let l = lines.entry(app.clone()).or_insert_with(|| line(&app));
        l.allowed = allowed;
        l.blocked = blocked;
        l.last_seen_ms = last_seen_ms;
    }
    if let Some(client) = Client::connect(state) {
        for seen in client.apps()? {
            let l = lines
                .entry(seen.app.clone())
                .or_insert_with(|| line(&seen.app));
            l.allowed = l.allowed.max(seen.allowed);
            l.blocked = l.blocked.max(seen.blocked);
            l.last_seen_ms = Some(seen.last_seen_ms);
        }
    }
    let lines: Vec<AppLine> = lines.into_values().collect();
    if json {
        output::print_json(&lines)?;
        return Ok(ExitCode::SUCCESS);
    }
    if lines.is_empty() {
        println!("no apps seen yet (and none with settings)");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(vec!["APP", "BLOCKING", "ALLOWED", "BLOCKED", "LAST SEEN"]);
    for l in &lines {
        let blocking = match (l.blocking, l.paused_until_ms) {
            (_, Some(until)) => (
                format!("paused to {}", &output::time(until)[11..16]),
                Tone::Dim,
            ),
            (true, _) => ("on".to_owned(), Tone::Good),
            (false, _) => ("off".to_owned(), Tone::Bad),
        };
        let blocking = if l.explicit || l.paused_until_ms.is_some() {
            blocking
        } else {
            (format!("{} (default)", blocking.0), blocking.1)
        };
        t.row(vec![
            cell(&l.app),
            blocking,
            cell(l.allowed.to_string()),
            (
                l.blocked.to_string(),
                if l.blocked > 0 {
                    Tone::Bad
                } else {
                    Tone::Plain
                },
            ),
            cell(
                l.last_seen_ms
                    .map(output::time)
                    .unwrap_or_else(|| "-".into()),
            ),
        ]);
    }
    t.print();
    Ok(ExitCode::SUCCESS)
}

/// (app, allowed, blocked, last seen ms) of one app in the history.
type HistoryCounts = (String, u64, u64, Option<i64>);

/// [`HistoryCounts`] per app from the history; nothing when there is no
/// history yet. Counts come from the daily table; the last-seen time is one indexed row per app.
fn history_counts(state: &Store) -> Result<Vec<HistoryCounts>> {
    let Some(history) = state.open_history()? else {
        return Ok(Vec::new());
    };
    let rows = history.aggregate(&embargo_history::AggregateQuery {
        group_by: vec![embargo_history::Dimension::App],
        ..Default::default()
    })?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(app) = row.app else { continue };
        let newest = history.query(&embargo_history::Query {
            app: Some(app.clone()),
            limit: 1,
            ..Default::default()
        })?;
        let last = newest.records.first().map(|r| r.last_seen_ms);
        out.push((app, row.allowed, row.blocked, last));
    }
    Ok(out)
}
