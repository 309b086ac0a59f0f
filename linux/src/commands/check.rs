//! `embargo check`: one decision per name or address, with reason, owner, country and the
//! category the deciding rule's list gives it.
//!
//! With no `--list` and no `--rules`, `check` decides as the instance of `--state-dir` would
//! (`embargo_app::assemble`): the built-in default at the stored level, the lists added with
//! `embargo lists add`, per-app settings, pauses and the allowlist. With `--list`/`--rules`
//! it decides with those files and the built-in default only (none with `--no-default`).
//! IP databases given with `--asn-db` / `--country-db` are asked first; the bundled ones
//! answer what they do not know.
//! Load reports go to stderr; decisions to stdout (aligned text, or one JSON object per line
//! with `--json`).

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use embargo_app::list::{file_looks_binary, judge, log_report};
use embargo_app::store::{DefaultRules, Store};
use embargo_app::{assemble, load_ip_database, IpDatabase};
use embargo_policy::{
    AppRules, Attribution, AttributionSource, Decision, Intent, IpDb, Policy, Query, Reason,
    RuleSet, Verdict,
};

use crate::rule_files::{list_set, parse_format, rules_file_set};

#[derive(clap::Args)]
pub struct CheckArgs {
    /// A rule list to decide with (repeatable); its format is detected unless --format is given.
    #[arg(long = "list", value_name = "FILE")]
    pub lists: Vec<PathBuf>,
    /// The syntax of every --list: hosts, hosts-subtree, domains, domains-subtree, adblock,
    /// dnsmasq, unbound, wildcard, ddg-app, ddg-web, disconnect, disconnect-entities, xray,
    /// exodus, embargo.
    #[arg(long, value_name = "FMT")]
    pub format: Option<String>,
    /// An IP-to-ASN database (ip-location-db `start,end,asn,org` CSV or iptoasn TSV, optionally
    /// .gz); repeatable, asked in order before the bundled one.
    #[arg(long = "asn-db", value_name = "FILE")]
    pub asn_dbs: Vec<PathBuf>,
    /// An IP-to-country database (ip-location-db `start,end,CC` CSV, optionally .gz);
    /// repeatable, asked in order before the bundled one.
    #[arg(long = "country-db", value_name = "FILE")]
    pub country_dbs: Vec<PathBuf>,
    /// A compiled rule set written by `embargo lists compile` (repeatable; memory-mapped).
    #[arg(long = "rules", value_name = "COMPILED")]
    pub rules: Vec<PathBuf>,
    /// Decide as this app (Android package, executable path, uid:N) would be decided.
    #[arg(long, value_name = "ID")]
    pub app: Option<String>,
    /// One JSON object per target, one per line.
    #[arg(long)]
    pub json: bool,
    /// The built-in default's level for this check: telemetry or full (default: the state's).
    #[arg(long, value_name = "LEVEL", value_parser = embargo_app::store::parse_level)]
    pub embargo: Option<embargo_policy::EmbargoLevel>,
    /// Leave the built-in default out.
    #[arg(long)]
    pub no_default: bool,
    /// Show the precedence and which step decided each target.
    #[arg(long)]
    pub explain: bool,
    /// The instance whose lists, app settings and allowlist decide (when no --list/--rules).
    #[arg(long, env = "EMBARGO_STATE_DIR", default_value = embargo_app::store::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Names or addresses to check.
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,
}

pub fn run(args: CheckArgs) -> Result<ExitCode> {
    let format = parse_format(args.format.as_deref())?;
    let mut load_errors = 0u64;

    let mut rule_sets: Vec<Arc<RuleSet>> = Vec::new();
    for path in &args.rules {
        rule_sets.push(Arc::new(rules_file_set(path)?));
    }
    for path in &args.lists {
        let (set, report) = list_set(path, format)?;
        load_errors += report.error_count;
        judge(&report, file_looks_binary(path));
        rule_sets.push(Arc::new(set));
    }
    let builtin = Policy::builtin();

    let ipdb = if args.asn_dbs.is_empty() && args.country_dbs.is_empty() {
        builtin.ipdb().clone()
    } else {
        let mut db = IpDb::new();
        for (paths, kind) in [
            (&args.asn_dbs, IpDatabase::Asn),
            (&args.country_dbs, IpDatabase::Country),
        ] {
            for path in paths {
                let report = load_ip_database(&mut db, path, kind)?;
                load_errors += report.error_count;
                log_report(&report);
            }
        }
        db.extend_from(builtin.ipdb());
        Arc::new(db)
    };

    let flag = DefaultRules::from_flags(args.embargo, args.no_default);
    let explicit = !rule_sets.is_empty();
    let base = Policy::new(rule_sets, ipdb, AppRules::default());
    let policy = if explicit {
        let mut sets = flag
            .unwrap_or_default()
            .level()
            .map(embargo_policy::builtin_rule_sets)
            .unwrap_or_default();
        sets.extend(base.rules().iter().cloned());
        base.with_rules(sets)
    } else {
        let state = Store::new(&args.state_dir);
        let (policy, report) = assemble(&state, &base, flag, &mut Default::default())
            .with_context(|| format!("read the state in {}", args.state_dir.display()))?;
        for note in report.notes.iter().filter(|n| !n.starts_with("built-in")) {
            eprintln!("embargo check: {note}");
        }
        policy
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut rows = Vec::with_capacity(args.targets.len());
    let mut decisions = Vec::with_capacity(args.targets.len());
    for target in &args.targets {
        let decision = decide(&policy, target, args.app.as_deref())?;
        decisions.push(decision.clone());
        if args.json {
            let mut line = serde_json::json!({
                "target": target,
                "verdict": decision.verdict,
                "reason": decision.reason,
                "intent": decision.intent,
                "owner": decision.owner,
                "country": decision.country,
                "certainty": decision.certainty,
                "category": decision.category,
                "app": args.app,
            });
            if args.explain {
                line["step"] = step_of(&decision).into();
            }
            writeln!(out, "{line}")?;
        } else {
            rows.push(text_row(target, &decision));
        }
    }
    if !args.json {
        write_table(&mut out, &rows)?;
        if args.explain {
            for (target, decision) in args.targets.iter().zip(&decisions) {
                writeln!(out)?;
                explain(&mut out, target, decision)?;
            }
        }
    }
    out.flush()?;
    if load_errors > 0 {
        eprintln!("embargo check: {load_errors} error(s) while loading (listed above)");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// The decision for one target: an IP address, or a host name.
fn decide(policy: &Policy, target: &str, app: Option<&str>) -> Result<Decision> {
    let trimmed = target.trim();
    let bare = trimmed.trim_start_matches('[').trim_end_matches(']');
    let mut query = if let Ok(addr) = bare.parse::<IpAddr>() {
        Query::addr(addr)
    } else {
        if trimmed.is_empty() || trimmed.len() > 253 || trimmed.contains(char::is_whitespace) {
            bail!("{target:?}: not a host name or an IP address");
        }
        Query::name(trimmed)
    };
    if let Some(app) = app {
        query = query.with_app(app);
    }
    Ok(policy.decide(&query))
}

/// The precedence of `Policy::decide`, as `--explain` shows it (one line per step).
const PRECEDENCE: [&str; 7] = [
    "blocking off or paused for the app -> allow",
    "per-app override (apps allow-target / block-target) -> as it says",
    "allowlist -> allow",
    "embargo rules (Embargo's lists, ASN, owner and country rules; no first-party exception)",
    "first party (the app's own company owns the endpoint) -> allow",
    "tracker rules (third-party lists)",
    "no rule -> allow",
];

/// Which step of [`PRECEDENCE`] decided (1-based).
fn step_of(d: &Decision) -> u8 {
    match (&d.reason, d.intent) {
        (Reason::AppBlockingOff, _) => 1,
        (Reason::AppOverride { .. }, _) => 2,
        (Reason::Allowlisted { .. }, _) => 3,
        (Reason::FirstParty { .. }, _) => 5,
        (Reason::NoMatch, _) => 7,
        (_, Some(Intent::Tracker)) => 6,
        _ => 4,
    }
}

fn explain(out: &mut impl Write, target: &str, d: &Decision) -> std::io::Result<()> {
    writeln!(out, "{target}: precedence, first match wins")?;
    let decided = step_of(d);
    for (i, step) in PRECEDENCE.iter().enumerate() {
        let n = i as u8 + 1;
        let mark = if n == decided { "=>" } else { "  " };
        writeln!(out, "  {mark} {n}. {step}")?;
    }
    let row = text_row(target, d);
    writeln!(out, "  decided: {} by {}", row[1], row[6])?;
    if !row[5].is_empty() && row[5] != "-" {
        writeln!(out, "  category: {}", row[5])?;
    }
    writeln!(
        out,
        "  owner: {}; country: {}; certainty: {}",
        row[2], row[3], row[4]
    )
}

fn text_row(target: &str, d: &Decision) -> [String; 7] {
    let verdict = match d.verdict {
        Verdict::Allow => "allow",
        Verdict::Block => "block",
    };
    let reason = match &d.reason {
        Reason::NoMatch => "no rule".to_owned(),
        Reason::AppBlockingOff => "blocking off for this app".to_owned(),
        Reason::Allowlisted { entry } => format!("allowlist: {entry}"),
        Reason::AppOverride { entry } => format!("app override: {entry}"),
        Reason::FirstParty { owner } => format!("first party ({owner})"),
        Reason::NameRule { rule, exception } => format!(
            "{}{} {} ({}:{})",
            intent_word(d.intent),
            if *exception { "exception" } else { "name" },
            rule.rule,
            rule.list,
            rule.line
        ),
        Reason::AddressRule { rule } => format!(
            "{}address {} ({}:{})",
            intent_word(d.intent),
            rule.rule,
            rule.list,
            rule.line
        ),
        Reason::OwnerRule { rule } => format!(
            "{}owner {} ({}:{})",
            intent_word(d.intent),
            rule.rule,
            rule.list,
            rule.line
        ),
        Reason::CountryRule { rule } => format!(
            "{}country {} ({}:{})",
            intent_word(d.intent),
            rule.rule,
            rule.list,
            rule.line
        ),
    };
    let certainty = serde_json::to_value(d.certainty)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    [
        target.to_owned(),
        verdict.to_owned(),
        attribution_text(d.owner.as_ref()),
        attribution_text(d.country.as_ref()),
        certainty,
        d.category.clone().unwrap_or_else(|| "-".to_owned()),
        reason,
    ]
}

/// `embargo ` or `tracker ` before a rule's kind.
fn intent_word(intent: Option<Intent>) -> String {
    intent.map(|i| format!("{} ", i.name())).unwrap_or_default()
}

fn attribution_text(a: Option<&Attribution>) -> String {
    let Some(a) = a else {
        return "-".to_owned();
    };
    let source = match &a.source {
        AttributionSource::List { list } => list,
        AttributionSource::Database { database } => database,
    };
    match a.asn {
        Some(asn) => format!("{} (AS{asn}, {source})", a.value),
        None => format!("{} ({source})", a.value),
    }
}

fn write_table(out: &mut impl Write, rows: &[[String; 7]]) -> Result<()> {
    const HEADER: [&str; 7] = [
        "TARGET",
        "VERDICT",
        "OWNER",
        "COUNTRY",
        "CERTAINTY",
        "CATEGORY",
        "REASON",
    ];
    let mut widths = HEADER.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: [&str; 7]| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(HEADER)?;
    for row in rows {
        line(row.each_ref().map(String::as_str))?;
    }
    Ok(())
}
