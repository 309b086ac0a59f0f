//! `embargo stats`: blocked and allowed counts per app, owner, country or day, from the
//! history's daily table (works whether or not an instance runs).

use std::process::ExitCode;

use anyhow::Result;
use embargo_history::{AggregateQuery, Dimension};

use super::output::{self, cell, Common, Table, Tone};
use embargo_app::store::now_ms;

/// A dimension to count by.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    App,
    Owner,
    Country,
    Day,
}

/// Arguments of `embargo stats`.
#[derive(clap::Args)]
pub struct StatsArgs {
    /// Group by these (repeat or comma-separate: --by owner,country). Default: app.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub by: Vec<By>,
    /// Only this app.
    #[arg(long)]
    pub app: Option<String>,
    /// Only this owner.
    #[arg(long)]
    pub owner: Option<String>,
    /// Only this country (ISO code).
    #[arg(long)]
    pub country: Option<String>,
    /// From this time: YYYY-MM-DD, an age like 7d, or epoch ms (whole UTC days are counted).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time.
    #[arg(long)]
    pub until: Option<String>,
    /// Also count apps hidden from the list.
    #[arg(long)]
    pub all: bool,
    /// --state-dir and --json.
    #[command(flatten)]
    pub common: Common,
}

/// Runs `embargo stats`.
pub fn run(args: StatsArgs) -> Result<ExitCode> {
    let state = args.common.state();
    let now = now_ms();
    let by = if args.by.is_empty() {
        vec![By::App]
    } else {
        args.by
    };
    let query = AggregateQuery {
        since_ms: output::parse_time_arg(args.since.as_deref(), now)?,
        until_ms: output::parse_time_arg(args.until.as_deref(), now)?,
        app: args.app.as_deref().map(output::resolve_app),
        owner: args.owner,
        country: args.country.map(|c| c.to_uppercase()),
        group_by: by
            .iter()
            .map(|b| match b {
                By::App => Dimension::App,
                By::Owner => Dimension::Owner,
                By::Country => Dimension::Country,
                By::Day => Dimension::Day,
            })
            .collect(),
        include_hidden: args.all,
    };
    let rows = match state.open_history()? {
        Some(history) => history.aggregate(&query)?,
        None => Vec::new(),
    };
    if args.common.json {
        output::print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no history yet");
        return Ok(ExitCode::SUCCESS);
    }
    let mut header: Vec<&'static str> = by
        .iter()
        .map(|b| match b {
            By::App => "APP",
            By::Owner => "OWNER",
            By::Country => "COUNTRY",
            By::Day => "DAY",
        })
        .collect();
    header.extend(["BLOCKED", "ALLOWED"]);
    let mut t = Table::new(header);
    let unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unknown)".into());
    for r in &rows {
        let mut cells: Vec<_> = by
            .iter()
            .map(|b| {
                cell(match b {
                    By::App => unknown(&r.app),
                    By::Owner => unknown(&r.owner),
                    By::Country => unknown(&r.country),
                    By::Day => unknown(&r.date),
                })
            })
            .collect();
        cells.push((
            r.blocked.to_string(),
            if r.blocked > 0 {
                Tone::Bad
            } else {
                Tone::Plain
            },
        ));
        cells.push(cell(r.allowed.to_string()));
        t.row(cells);
    }
    t.print();
    Ok(ExitCode::SUCCESS)
}
