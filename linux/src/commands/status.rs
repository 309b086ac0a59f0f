//! `embargo status`: whether an instance runs for this state directory, what it has done, and
//! what is stored (lists, app settings, history).

use std::process::ExitCode;

use serde::Serialize;

use super::output::{self, cell, Common, Table, Tone};
use crate::control::{Client, Status};
use embargo_app::store::now_ms;

/// Arguments of `embargo status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// --state-dir and --json.
    #[command(flatten)]
    pub common: Common,
}

/// What `--json` prints.
#[derive(Serialize)]
struct Report {
    running: bool,
    instance: Option<Status>,
    state_dir: String,
    lists: usize,
    list_rules: u64,
    /// Lists whose last update was refused (the last good copy stays in force): name, why.
    lists_refused: Vec<(String, String)>,
    /// Lists due for a check (`embargo lists update`; a running instance checks by itself).
    lists_due: Vec<String>,
    apps_with_settings: usize,
    apps_paused: usize,
    history_bytes: Option<u64>,
}

/// Runs `embargo status`.
pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let state = args.common.state();
    let instance = match Client::connect(&state) {
        Some(client) => Some(client.status()?),
        None => None,
    };
    let lists = state.load_lists()?;
    let rules = state.load_app_rules()?;
    let report = Report {
        running: instance.is_some(),
        state_dir: state.root().display().to_string(),
        lists: lists.lists.len(),
        list_rules: lists.lists.iter().map(|l| l.counts.accepted).sum(),
        lists_refused: lists
            .lists
            .iter()
            .filter_map(|l| {
                let f = l.freshness.failure.as_ref()?;
                Some((l.name.clone(), f.reason.clone()))
            })
            .collect(),
        lists_due: embargo_app::fetch::due(&state, now_ms())?,
        apps_with_settings: rules.apps.len(),
        apps_paused: state.load_pauses(now_ms())?.len(),
        history_bytes: std::fs::metadata(state.history_db()).ok().map(|m| m.len()),
        instance,
    };
    if args.common.json {
        output::print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(vec!["", ""]);
    match &report.instance {
        Some(s) => {
            t.row(vec![cell("running"), ("yes".into(), Tone::Good)]);
            t.row(vec![cell("pid"), cell(s.pid.to_string())]);
            t.row(vec![cell("protecting"), cell(&s.mode)]);
            t.row(vec![
                cell("since"),
                cell(output::time(s.started_ms) + " UTC"),
            ]);
            t.row(vec![cell("allowed"), cell(s.allowed.to_string())]);
            t.row(vec![cell("blocked"), (s.blocked.to_string(), Tone::Bad)]);
            t.row(vec![cell("apps seen"), cell(s.apps_seen.to_string())]);
            if let Some(h) = &s.history {
                let tone = if h.state == "ok" {
                    Tone::Good
                } else {
                    Tone::Bad
                };
                let mut text = h.state.clone();
                if let Some(since) = h.failing_since_ms {
                    text.push_str(&format!(" since {} UTC", output::time(since)));
                }
                t.row(vec![cell("history writes"), (text, tone)]);
                t.row(vec![
                    cell("history events"),
                    cell(format!("{} recorded, {} dropped", h.committed, h.dropped)),
                ]);
                if let Some(e) = &h.last_error {
                    t.row(vec![cell("history problem"), (e.clone(), Tone::Bad)]);
                }
            }
            if let Some(l) = &s.limits {
                t.row(vec![
                    cell("open files"),
                    cell(format!(
                        "{} (was {}, hard {})",
                        l.open_files, l.open_files_at_start, l.open_files_hard
                    )),
                ]);
                t.row(vec![cell("flow cap"), cell(l.max_flows.to_string())]);
            }
            for (name, value) in &s.counters {
                t.row(vec![cell(name), (value.to_string(), Tone::Dim)]);
            }
        }
        None => t.row(vec![cell("running"), ("no".into(), Tone::Dim)]),
    }
    t.row(vec![cell("state dir"), cell(&report.state_dir)]);
    t.row(vec![
        cell("lists"),
        cell(format!("{} ({} rules)", report.lists, report.list_rules)),
    ]);
    for (name, why) in &report.lists_refused {
        t.row(vec![
            cell(format!("list {name}")),
            (
                format!("update refused, keeping the last good copy: {why}"),
                Tone::Bad,
            ),
        ]);
    }
    if !report.lists_due.is_empty() {
        t.row(vec![
            cell("lists due"),
            (report.lists_due.join(", "), Tone::Dim),
        ]);
    }
    t.row(vec![
        cell("apps with settings"),
        cell(format!(
            "{} ({} paused)",
            report.apps_with_settings, report.apps_paused
        )),
    ]);
    t.row(vec![
        cell("history"),
        cell(match report.history_bytes {
            Some(b) => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
            None => "none yet".into(),
        }),
    ]);
    // The header row is empty for this key/value view: skip it.
    let text = t.render(output::colour());
    print!("{}", text.split_once('\n').map_or("", |(_, rest)| rest));
    Ok(ExitCode::SUCCESS)
}
