//! `embargo check`: one decision per name or address, with reason, owner, country and the
//! category the deciding rule's list gives it.
//!
//! With no `--list` and no `--rules`, `check` decides as the instance of `--state-dir` would
//! (`runtime::assemble`): the built-in default at the stored level, the lists added with
//! `embargo lists add`, per-app settings, pauses and the allowlist. With `--list`/`--rules`
//! it decides with those files and the built-in default only (none with `--no-default`).
//! IP databases given with `--asn-db` / `--country-db` are asked first; the bundled ones
//! answer what they do not know.
//! Load reports go to stderr; decisions to stdout (aligned text, or one JSON object per line
//! with `--json`).

use std::io::{BufReader, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use embargo_policy::parse::{parse_list, Format};

use crate::runtime::assemble;
use crate::state::{DefaultRules, StateDir};
use embargo_policy::{
    AppRules, Attribution, AttributionSource, Decision, Intent, IpDb, IpDbFormat, LoadReport,
    Policy, Query, Reason, RuleSet, RuleSetBuilder, Verdict,
};

/// How many bytes of a list are read to guess its format.
const DETECT_HEAD: usize = 8192;

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
    #[arg(long, value_name = "LEVEL", value_parser = crate::state::parse_level)]
    pub embargo: Option<embargo_policy::EmbargoLevel>,
    /// Leave the built-in default out.
    #[arg(long)]
    pub no_default: bool,
    /// Show the precedence and which step decided each target.
    #[arg(long)]
    pub explain: bool,
    /// The instance whose lists, app settings and allowlist decide (when no --list/--rules).
    #[arg(long, env = "EMBARGO_STATE_DIR", default_value = crate::state::DEFAULT_STATE_DIR)]
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
        report_list(&report, looks_binary(path));
        rule_sets.push(Arc::new(set));
    }
    let builtin = Policy::builtin();

    let ipdb = if args.asn_dbs.is_empty() && args.country_dbs.is_empty() {
        builtin.ipdb().clone()
    } else {
        let mut db = IpDb::new();
        for (paths, kind) in [(&args.asn_dbs, "ASN"), (&args.country_dbs, "country")] {
            for path in paths {
                let report = load_ipdb(&mut db, path, kind)?;
                load_errors += report.error_count;
                print_report(&report);
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
        let state = StateDir::new(&args.state_dir);
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

pub(crate) fn parse_format(name: Option<&str>) -> Result<Option<Format>> {
    match name {
        None => Ok(None),
        Some(n) => match Format::from_name(n) {
            Some(f) => Ok(Some(f)),
            None => bail!(
                "--format {n}: unknown format; use one of hosts, hosts-subtree, domains, \
                 domains-subtree, adblock, dnsmasq, unbound, wildcard, ddg-app, ddg-web, \
                 disconnect, disconnect-entities, xray, exodus, embargo"
            ),
        },
    }
}

/// A `--rules` file: a compiled set (`embargo lists compile`, memory-mapped) or, for
/// compatibility, a rule list in any format (parsed as `--list` is).
pub(crate) fn rules_file_set(path: &Path) -> Result<RuleSet> {
    let mut magic = [0u8; 8];
    let compiled = crate::input::open(path, "rule file")?
        .0
        .read_exact(&mut magic)
        .is_ok()
        && magic == embargo_policy::format::MAGIC;
    if compiled {
        return open_compiled(path);
    }
    let (set, report) = list_set(path, None)?;
    if let ListHealth::Unusable(why) = report_list(&report, looks_binary(path)) {
        bail!("{}: {why}", path.display());
    }
    Ok(set)
}

/// What a list's load report says about the list as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListHealth {
    /// Most lines are rules (or skipped on purpose).
    Fine,
    /// More than half the lines are errors, or the file looks binary: worth a loud warning.
    MostlyErrors(String),
    /// Nothing usable: no rule accepted and errors, or a binary file with more errors than
    /// rules. `run` refuses to start with it.
    Unusable(String),
}

/// Judges `report` (`binary`: NUL bytes at the start of the file, see [`looks_binary`]).
pub(crate) fn list_health(report: &LoadReport, binary: bool) -> ListHealth {
    let skipped: u64 = report.skipped.values().sum();
    let lines = report.accepted + skipped + report.error_count;
    let first = report
        .errors
        .first()
        .map(|e| format!(" (first: {e})"))
        .unwrap_or_default();
    let what = if binary { "a binary file, " } else { "" };
    if (report.accepted == 0 && report.error_count > 0)
        || (binary && report.error_count > report.accepted)
    {
        return ListHealth::Unusable(format!(
            "{what}{} of {lines} lines are errors and {} rules were accepted{first}: not a rule \
             list (or not in the format it was read as: pass --format)",
            report.error_count, report.accepted
        ));
    }
    if binary || report.error_count * 2 > lines {
        return ListHealth::MostlyErrors(format!(
            "{what}{} of {lines} lines are errors ({} %){first}: is it the right file, and \
             the right --format?",
            report.error_count,
            report.error_count * 100 / lines.max(1)
        ));
    }
    ListHealth::Fine
}

/// Whether the first 8 KiB of `path` hold a NUL byte (no text list does).
pub(crate) fn looks_binary(path: &Path) -> bool {
    let mut head = Vec::with_capacity(DETECT_HEAD);
    crate::input::reader(path, "list")
        .and_then(|r| Ok(r.take(DETECT_HEAD as u64).read_to_end(&mut head)?))
        .is_ok()
        && bytes_look_binary(&head)
}

/// Whether `bytes` (a file's start) hold a NUL byte in their first 8 KiB.
pub(crate) fn bytes_look_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(DETECT_HEAD)].contains(&0)
}

/// Logs the load report (info) and, when the list is mostly errors or unusable, a warning
/// naming it; returns the judgement.
pub(crate) fn report_list(report: &LoadReport, binary: bool) -> ListHealth {
    print_report(report);
    let health = list_health(report, binary);
    match &health {
        ListHealth::Fine => {}
        ListHealth::MostlyErrors(why) | ListHealth::Unusable(why) => {
            log::warn!("list {}: {why}", report.list)
        }
    }
    health
}

/// Parses one list into a rule set of its own, with its format's intent (embargo for Embargo's
/// own rule files, tracker for the rest). `format`: `None` = detected.
pub(crate) fn list_set(path: &Path, format: Option<Format>) -> Result<(RuleSet, LoadReport)> {
    let (set, mut reports) = compile_lists(std::slice::from_ref(&path.to_path_buf()), format)?;
    Ok((set, reports.remove(0)))
}

/// Parses every list into one rule set (streaming: memory stays bounded by the parser). The
/// set's intent is embargo when every list is in Embargo's own format, else tracker.
pub(crate) fn compile_lists(
    paths: &[PathBuf],
    format: Option<Format>,
) -> Result<(RuleSet, Vec<LoadReport>)> {
    let mut builder = RuleSetBuilder::new();
    let mut reports = Vec::with_capacity(paths.len());
    let mut intent = Intent::Embargo;
    for path in paths {
        let format = match format {
            Some(f) => f,
            None => detect_format(path)?,
        };
        if format.intent() == Intent::Tracker {
            intent = Intent::Tracker;
        }
        let file = crate::input::reader(path, "list")?;
        let report = parse_list(
            format,
            &list_name(path),
            BufReader::with_capacity(1 << 16, file),
            &mut |rule| builder.add(rule),
        );
        if report.accepted == 0 {
            // Only now is the file read whole, to tell comments from rules read wrong.
            let bytes =
                std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
            ensure_rules(&path.display().to_string(), format, &report, &bytes)?;
        }
        reports.push(report);
    }
    builder.set_intent(intent);
    let (set, build) = builder.build_with_report();
    if build.badfiltered > 0 {
        eprintln!("{} rule(s) disabled by $badfilter", build.badfiltered);
    }
    for (rule, why) in &build.rejected {
        eprintln!("rule refused: {rule}: {why}");
    }
    Ok((set, reports))
}

/// Refuses a list that gave no rule although it holds more than comments and blank lines:
/// almost always the wrong `--format` (a hosts file read as `ddg-app` gives one JSON error and
/// nothing else). Every place that loads a list (check, lists add/update/compile, run, the
/// runtime's rebuilds) asks this, so a wrong format is an error, never a silent exit 0.
pub(crate) fn ensure_rules(
    list: &str,
    format: Format,
    report: &LoadReport,
    bytes: &[u8],
) -> Result<()> {
    if report.accepted > 0 || !has_content(bytes) {
        return Ok(());
    }
    let why = match report.errors.first() {
        Some(first) => format!("{} error(s), first: {first}", report.error_count),
        None => format!("{} line(s) skipped", report.skipped.values().sum::<u64>()),
    };
    bail!(
        "{list}: no rule accepted when read as {} ({why}); is --format right?",
        format.name()
    )
}

/// Whether a list has a line other than blank lines and comments (`#`, `!`, `//`).
fn has_content(bytes: &[u8]) -> bool {
    bytes.split(|&b| b == b'\n').any(|line| {
        let line = line.trim_ascii();
        let line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line);
        !(line.is_empty()
            || line.starts_with(b"#")
            || line.starts_with(b"!")
            || line.starts_with(b"//"))
    })
}

fn detect_format(path: &Path) -> Result<Format> {
    let mut head = Vec::with_capacity(DETECT_HEAD);
    crate::input::reader(path, "list")?
        .take(DETECT_HEAD as u64)
        .read_to_end(&mut head)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    match Format::detect(&list_name(path), &head) {
        Some(f) => Ok(f),
        None => bail!(
            "{}: cannot tell the list's format; pass --format (hosts, domains, adblock, ...)",
            path.display()
        ),
    }
}

/// The name rules from this file are attributed to: its file name.
pub(crate) fn list_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Memory-maps a compiled rule set and opens it in place.
pub(crate) fn open_compiled(path: &Path) -> Result<RuleSet> {
    let (file, _) = crate::input::open(path, "compiled rule set")?;
    // SAFETY: the map is read-only; Embargo writes compiled files to a temporary name and
    // renames them into place, so a mapped file is never modified while in use. (A third party
    // truncating it would raise SIGBUS; that is the documented cost of memory maps.)
    let map = unsafe { memmap2::Mmap::map(&file) }
        .with_context(|| format!("{}: cannot map", path.display()))?;
    let set =
        RuleSet::from_backing(Arc::new(map)).with_context(|| format!("{}", path.display()))?;
    // A file given on the command line may come from anywhere: check every index node once
    // (see the trust model on `RuleSet::verify`).
    set.verify()
        .with_context(|| format!("{}", path.display()))?;
    Ok(set)
}

fn load_ipdb(db: &mut IpDb, path: &Path, kind: &str) -> Result<LoadReport> {
    let bytes = crate::input::read_database(path, &format!("{kind} database"))?;
    let name = list_name(path);
    let format = match kind {
        // Country files have three fields; iptoasn (tabs) is detected either way.
        "country" => {
            let tsv = bytes.iter().take(4096).any(|&b| b == b'\t');
            (!tsv && !bytes.starts_with(&[0x1f, 0x8b])).then_some(IpDbFormat::CountryCsv)
        }
        _ => None,
    };
    let report = db.load_bytes(&name, format, &bytes);
    if report.accepted == 0 {
        bail!(
            "{}: no usable {kind} ranges{}",
            path.display(),
            report
                .errors
                .first()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
    Ok(report)
}

/// One load report (info level: shown unless RUST_LOG asks for less): counts, then the first
/// errors with file:line.
pub(crate) fn print_report(report: &LoadReport) {
    let mut line = format!("{}: {} accepted", report.list, report.accepted);
    for (reason, n) in &report.skipped {
        let reason = serde_json::to_value(reason)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{reason:?}"));
        line.push_str(&format!(", {n} skipped ({reason})"));
    }
    if report.error_count > 0 {
        line.push_str(&format!(", {} error(s)", report.error_count));
    }
    log::info!("{line}");
    for err in &report.errors {
        log::info!("  error: {err}");
    }
    if report.error_count > report.errors.len() as u64 {
        log::info!(
            "  ... and {} more",
            report.error_count - report.errors.len() as u64
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(accepted: u64, skipped: u64, errors: u64) -> LoadReport {
        let mut r = LoadReport {
            list: "l.txt".into(),
            accepted,
            error_count: errors,
            ..LoadReport::default()
        };
        if skipped > 0 {
            r.skipped
                .insert(embargo_policy::SkipReason::LocalName, skipped);
        }
        r
    }

    /// Issue 16: a list that was mostly (or only) errors loaded with its report at most.
    #[test]
    fn lists_are_judged_by_their_share_of_errors_and_binary_content() {
        assert_eq!(list_health(&report(10, 5, 0), false), ListHealth::Fine);
        assert_eq!(list_health(&report(10, 0, 10), false), ListHealth::Fine);
        assert!(matches!(
            list_health(&report(10, 0, 11), false),
            ListHealth::MostlyErrors(w) if w.contains("11 of 21 lines are errors (52 %)")
        ));
        assert!(matches!(
            list_health(&report(0, 0, 3), false),
            ListHealth::Unusable(_)
        ));
        assert!(matches!(
            list_health(&report(90, 0, 1), true),
            ListHealth::MostlyErrors(w) if w.contains("binary")
        ));
        assert!(matches!(
            list_health(&report(3, 0, 40), true),
            ListHealth::Unusable(w) if w.contains("binary")
        ));
        // an empty list is not an error
        assert_eq!(list_health(&report(0, 0, 0), false), ListHealth::Fine);
        assert!(bytes_look_binary(b"\x7fELF\x02\x01\x01\x00"));
        assert!(!bytes_look_binary(b"a.example\n"));
    }
}
