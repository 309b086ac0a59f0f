//! The rule files named on the command line: `--list` files (`check`, `run`: one set each,
//! through `embargo_app::load_list`; `lists compile`: many files parsed streaming into one
//! set), and `--rules` files (compiled sets, memory-mapped).
//! Format detection and the judgement of a load are the application layer's
//! (`embargo_app::list`), shared with the lists of the state directory and the FFI.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use embargo_app::list::{detect, ensure_rules, file_looks_binary, judge, ListHealth};
use embargo_app::{load_list, DETECT_WINDOW};
use embargo_policy::parse::{parse_list, Format};
use embargo_policy::{BuildReport, Intent, LoadReport, RuleSet, RuleSetBuilder};

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
    let compiled = embargo_app::input::open(path, "rule file")?
        .0
        .read_exact(&mut magic)
        .is_ok()
        && magic == embargo_policy::format::MAGIC;
    if compiled {
        return open_compiled(path);
    }
    let (set, report) = list_set(path, None)?;
    if let ListHealth::Unusable(why) = judge(&report, file_looks_binary(path)) {
        bail!("{}: {why}", path.display());
    }
    Ok(set)
}

/// Loads one list into a rule set of its own, with its format's intent (embargo for Embargo's
/// own rule files, tracker for the rest), through `embargo_app::load_list` as every other list
/// load. `format`: `None` = detected.
pub(crate) fn list_set(path: &Path, format: Option<Format>) -> Result<(RuleSet, LoadReport)> {
    let bytes = embargo_app::input::read(path, "list")?;
    let format = match format {
        Some(f) => f,
        None => detect_in(path, &bytes)?,
    };
    let loaded = load_list(&list_name(path), &bytes, Some(format))?;
    ensure_rules(&path.display().to_string(), format, &loaded.report, &bytes)?;
    print_build(&loaded.build);
    Ok((loaded.set, loaded.report))
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
        let file = embargo_app::input::reader(path, "list")?;
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
    print_build(&build);
    Ok((set, reports))
}

/// What the compiler dropped, on stderr.
fn print_build(build: &BuildReport) {
    if build.badfiltered > 0 {
        eprintln!("{} rule(s) disabled by $badfilter", build.badfiltered);
    }
    for (rule, why) in &build.rejected {
        eprintln!("rule refused: {rule}: {why}");
    }
}

/// The format of the list at `path`, from its name and the detection window of its start.
fn detect_format(path: &Path) -> Result<Format> {
    let mut head = Vec::with_capacity(DETECT_WINDOW);
    embargo_app::input::reader(path, "list")?
        .take(DETECT_WINDOW as u64)
        .read_to_end(&mut head)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    detect_in(path, &head)
}

/// [`detect`] for the list at `path` whose start is `head`, as an error naming the file.
fn detect_in(path: &Path, head: &[u8]) -> Result<Format> {
    match detect(&list_name(path), head) {
        Some(f) => Ok(f),
        None => bail!(
            "{}: cannot tell the list's format; pass --format (hosts, domains, adblock, ...)",
            path.display()
        ),
    }
}

/// The name rules from this file are attributed to: its file name.
fn list_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Memory-maps a compiled rule set and opens it in place.
pub(crate) fn open_compiled(path: &Path) -> Result<RuleSet> {
    let (file, _) = embargo_app::input::open(path, "compiled rule set")?;
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
