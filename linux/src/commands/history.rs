//! `embargo history`: what apps tried to reach, newest first, with filters. Reads the SQLite
//! history directly (WAL lets it read while an instance writes), so it works whether or not an
//! instance runs.

use std::process::ExitCode;

use anyhow::Result;
use embargo_history::{Query, Record, Verdict};

use super::output::{self, cell, Common, Table, Tone};
use embargo_app::store::now_ms;

/// Arguments of `embargo history`.
#[derive(clap::Args)]
pub struct HistoryArgs {
    /// Only this app (executable path, command name, or uid:N).
    #[arg(long)]
    pub app: Option<String>,
    /// Only names containing this (e.g. `tiktokv.com` also shows `log.tiktokv.com`).
    #[arg(long)]
    pub name: Option<String>,
    /// Only this network owner (as shown in the OWNER column).
    #[arg(long)]
    pub owner: Option<String>,
    /// Only this country (ISO code, e.g. CN).
    #[arg(long)]
    pub country: Option<String>,
    /// From this time: YYYY-MM-DD[THH:MM[:SS]] (UTC), an age like 2h, or epoch ms.
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Only allowed or only blocked.
    #[arg(long, value_parser = ["allow", "block"])]
    pub decision: Option<String>,
    /// At most this many rows (newest first).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Also show apps and names hidden from the list.
    #[arg(long)]
    pub all: bool,
    /// Write every matching row as csv, json or ndjson (no limit) instead of a table.
    #[arg(long, value_parser = ["csv", "json", "ndjson"])]
    pub export: Option<String>,
    /// --state-dir and --json.
    #[command(flatten)]
    pub common: Common,
}

/// Runs `embargo history`.
pub fn run(args: HistoryArgs) -> Result<ExitCode> {
    let state = args.common.state();
    let now = now_ms();
    let query = Query {
        since_ms: output::parse_time_arg(args.since.as_deref(), now)?,
        until_ms: output::parse_time_arg(args.until.as_deref(), now)?,
        app: args.app.as_deref().map(output::resolve_app),
        name_prefix: None,
        name_contains: args.name.map(|n| n.to_lowercase()),
        owner: args.owner,
        country: args.country.map(|c| c.to_uppercase()),
        verdict: args.decision.as_deref().map(|d| {
            if d == "block" {
                Verdict::Block
            } else {
                Verdict::Allow
            }
        }),
        include_hidden: args.all,
        limit: args.limit.clamp(1, embargo_history::MAX_PAGE),
        after: None,
    };
    let Some(history) = state.open_history()? else {
        if args.common.json || args.export.is_some() {
            println!("[]");
        } else {
            println!(
                "no history yet ({} does not exist)",
                state.history_db().display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(format) = args.export {
        let format = match format.as_str() {
            "csv" => embargo_history::Format::Csv,
            "ndjson" => embargo_history::Format::Ndjson,
            _ => embargo_history::Format::Json,
        };
        history.export(&query, format, std::io::stdout().lock())?;
        return Ok(ExitCode::SUCCESS);
    }
    let page = history.query(&query)?;
    if args.common.json {
        output::print_json(&page.records)?;
        return Ok(ExitCode::SUCCESS);
    }
    if page.records.is_empty() {
        println!("nothing matches");
        return Ok(ExitCode::SUCCESS);
    }
    print_table(&page.records);
    if page.next.is_some() {
        eprintln!("(newest {} shown; --limit N for more)", page.records.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(records: &[Record]) {
    let mut t = Table::new(vec![
        "LAST SEEN",
        "APP",
        "DESTINATION",
        "PROTO",
        "DECISION",
        "OWNER",
        "CC",
        "CATEGORY",
        "COUNT",
        "RULE",
    ]);
    for r in records {
        let dest = match (&r.name, &r.addr) {
            // A DNS question has no destination beyond the name.
            (Some(n), _) if r.protocol == embargo_history::Protocol::Dns || r.port == 0 => {
                n.clone()
            }
            (Some(n), _) => format!("{n}:{}", r.port),
            (None, Some(a)) if a.is_ipv6() => format!("[{a}]:{}", r.port),
            (None, Some(a)) => format!("{a}:{}", r.port),
            (None, None) => "-".into(),
        };
        let verdict = match r.verdict {
            Verdict::Block => ("block".to_owned(), Tone::Bad),
            Verdict::Allow => ("allow".to_owned(), Tone::Good),
        };
        let rule = match (&r.rule, &r.list, r.line) {
            (Some(rule), Some(list), Some(line)) => format!("{list}:{line} {rule}"),
            (Some(rule), _, _) => rule.clone(),
            _ => String::new(),
        };
        t.row(vec![
            (output::time(r.last_seen_ms), Tone::Dim),
            cell(r.app.clone().unwrap_or_else(|| "-".into())),
            cell(dest),
            cell(r.protocol.as_str()),
            verdict,
            cell(r.owner.clone().unwrap_or_default()),
            cell(r.country.clone().unwrap_or_default()),
            cell(r.category.clone().unwrap_or_default()),
            cell(r.count.to_string()),
            (rule, Tone::Dim),
        ]);
    }
    t.print();
}
