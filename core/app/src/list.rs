//! Loading one rule list: format detection over one window, parsing, compiling, and the
//! judgement of what the load found. Every place that loads a list (Linux `check`, `lists add`,
//! `lists compile`, `run --list`, a running instance's reloads; the FFI's `set_list`) goes
//! through here, so the same file is read the same way whichever command reads it.

use std::path::Path;

use anyhow::{bail, Result};
use embargo_policy::parse::{parse_bytes, Format};
use embargo_policy::{BuildReport, LoadReport, RuleSet, RuleSetBuilder};

/// How many bytes of a list [`detect`] looks at: enough for the first JSON object of the
/// tracker-data formats and a few hundred lines of the line formats, whatever comment header
/// the list starts with.
pub const DETECT_WINDOW: usize = 16 * 1024;

/// The format of a list called `name` (a file name: its extension counts) whose content starts
/// with `head` (only the first [`DETECT_WINDOW`] bytes are looked at).
pub fn detect(name: &str, head: &[u8]) -> Option<Format> {
    Format::detect(name, &head[..head.len().min(DETECT_WINDOW)])
}

/// [`detect`], as an error naming the list when the format cannot be told.
pub fn detect_or_err(name: &str, head: &[u8]) -> Result<Format> {
    match detect(name, head) {
        Some(f) => Ok(f),
        None => bail!(
            "{name}: cannot tell the list's format; pass --format (hosts, domains, adblock, ...)"
        ),
    }
}

/// A list, parsed and compiled into a rule set of its own.
pub struct LoadedList {
    /// The format it was read as (given, or detected).
    pub format: Format,
    /// Its rules, with its format's intent (embargo for Embargo's own format, else tracker).
    pub set: RuleSet,
    /// What the parser accepted, skipped and refused.
    pub report: LoadReport,
    /// What the compiler dropped ($badfilter, refused regexes).
    pub build: BuildReport,
}

/// Parses and compiles the list `name` from `bytes`, in `format` (`None`: detected, see
/// [`detect`]). Errors only when the format cannot be told; a list of errors still loads (the
/// report says so; [`list_health`] and [`ensure_rules`] judge it).
pub fn load_list(name: &str, bytes: &[u8], format: Option<Format>) -> Result<LoadedList> {
    let format = match format {
        Some(f) => f,
        None => detect_or_err(name, bytes)?,
    };
    let mut builder = RuleSetBuilder::new().with_intent(format.intent());
    let report = parse_bytes(format, name, bytes, &mut |rule| builder.add(rule));
    let (set, build) = builder.build_with_report();
    Ok(LoadedList {
        format,
        set,
        report,
        build,
    })
}

/// What a list's load report says about the list as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListHealth {
    /// Most lines are rules (or skipped on purpose).
    Fine,
    /// More than half the lines are errors, or the file looks binary: worth a loud warning.
    MostlyErrors(String),
    /// Nothing usable: no rule accepted and errors, or a binary file with more errors than
    /// rules. `run` refuses to start with it; a running instance leaves it out.
    Unusable(String),
}

/// Judges `report` (`binary`: NUL bytes at the start of the file, see [`looks_binary`]).
pub fn list_health(report: &LoadReport, binary: bool) -> ListHealth {
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

/// Whether `bytes` (a file's start) hold a NUL byte in the detection window (no text list
/// does).
pub fn looks_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(DETECT_WINDOW)].contains(&0)
}

/// Whether the start of the file at `path` looks binary (see [`looks_binary`]).
pub fn file_looks_binary(path: &Path) -> bool {
    use std::io::Read;
    let mut head = Vec::with_capacity(DETECT_WINDOW);
    crate::input::reader(path, "list")
        .and_then(|r| Ok(r.take(DETECT_WINDOW as u64).read_to_end(&mut head)?))
        .is_ok()
        && looks_binary(&head)
}

/// Logs the load report (see [`log_report`]) and, when the list is mostly errors or unusable,
/// a warning naming it; returns the judgement.
pub fn judge(report: &LoadReport, binary: bool) -> ListHealth {
    log_report(report);
    let health = list_health(report, binary);
    match &health {
        ListHealth::Fine => {}
        ListHealth::MostlyErrors(why) | ListHealth::Unusable(why) => {
            log::warn!("list {}: {why}", report.list)
        }
    }
    health
}

/// One load report at info level (shown unless RUST_LOG asks for less): counts, then the
/// first errors with file:line.
pub fn log_report(report: &LoadReport) {
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

/// Refuses a list that gave no rule although it holds more than comments and blank lines:
/// almost always the wrong `--format` (a hosts file read as `ddg-app` gives one JSON error and
/// nothing else). Every place that loads a list from a file asks this, so a wrong format is an
/// error, never a silent exit 0.
pub fn ensure_rules(list: &str, format: Format, report: &LoadReport, bytes: &[u8]) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_sees_one_window_whatever_the_caller_passes() {
        // A hosts line just past the window does not change what the head says.
        let mut bytes = b"# comment\n".repeat(DETECT_WINDOW / 10 + 1);
        let before = detect("list", &bytes);
        bytes.extend_from_slice(b"0.0.0.0 tracker.test\n");
        assert_eq!(detect("list", &bytes), before);
        assert_eq!(
            detect("x.txt", b"0.0.0.0 tracker.test\n"),
            Some(Format::Hosts)
        );
        assert_eq!(detect("x.rules", b"anything"), Some(Format::Embargo));
    }

    #[test]
    fn load_list_reports_errors_and_refuses_an_unknown_format() {
        let loaded = load_list(
            "mine",
            b"0.0.0.0 tracker.example\nnot a line at all !!\n",
            Some(Format::Hosts),
        )
        .unwrap();
        assert_eq!(loaded.report.accepted, 1);
        assert!(loaded.report.error_count >= 1);
        let err = format!(
            "{:#}",
            load_list("x", &[0, 159, 146, 150], None).err().unwrap()
        );
        assert!(err.contains("x: cannot tell"), "{err}");
    }

    #[test]
    fn a_list_without_rules_but_with_content_is_refused() {
        let bytes = b"0.0.0.0 a.test\n";
        let loaded = load_list("h", bytes, Some(Format::DdgApp)).unwrap();
        let err = ensure_rules("h", loaded.format, &loaded.report, bytes).unwrap_err();
        assert!(format!("{err}").contains("no rule accepted"), "{err}");
        let comments = b"# only\n! comments\n";
        let loaded = load_list("c", comments, Some(Format::Hosts)).unwrap();
        ensure_rules("c", loaded.format, &loaded.report, comments).unwrap();
        assert!(looks_binary(b"ab\0c") && !looks_binary(b"abc"));
    }

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

    /// A list that is mostly (or only) errors, or binary, is judged unhealthy instead of
    /// loading quietly with a report nobody reads.
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
        assert!(looks_binary(b"\x7fELF\x02\x01\x01\x00"));
        assert!(!looks_binary(b"a.example\n"));
    }
}
