//! `embargo lists`: add, update, remove, show and compile rule lists.
//!
//! Lists are recorded in `STATE_DIR/lists.json`: a file is read where it is, a URL is
//! downloaded into `STATE_DIR/lists/NAME` (by `add` and `update`, with progress on stderr).
//! Every change re-reads the list with the policy's parser so `show` can give the counts of
//! its load report, then tells a running instance to reload.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use embargo_policy::parse::{parse_bytes, Format};

use super::output::{self, cell, Common, Table, Tone};
use crate::control;
use embargo_app::list::ensure_rules;
use embargo_app::store::{now_ms, ListCounts, ListEntry, ListSource, Store};

/// Largest list accepted from a URL. The biggest real blocklists (hagezi ultimate, OISD big)
/// are 20-40 MB as text; anything far beyond is a mistake or an attack.
const MAX_DOWNLOAD: u64 = 256 << 20;

/// Give up on a server that sends nothing for this long.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// The `embargo lists` subcommands.
#[derive(clap::Subcommand)]
pub enum ListsCommand {
    /// Compile rule sources into one memory-mappable file.
    Compile(super::compile::CompileArgs),
    /// Add a list: a file (read where it is) or an http(s) URL (downloaded now).
    Add(AddArgs),
    /// Re-read files and download URLs again (all lists, or the ones named).
    Update(UpdateArgs),
    /// Remove a list (and its downloaded copy).
    Remove(RemoveArgs),
    /// Show the lists with the counts of their last load.
    Show(ShowArgs),
}

/// Arguments of `embargo lists add`.
#[derive(clap::Args)]
pub struct AddArgs {
    /// A file path or an http:// or https:// URL.
    pub source: String,
    /// The list's syntax (hosts, hosts-subtree, domains, domains-subtree, adblock, dnsmasq,
    /// unbound, wildcard, ddg-app, ddg-web, disconnect, disconnect-entities, xray, exodus,
    /// embargo); detected when omitted.
    #[arg(long)]
    pub format: Option<String>,
    /// A short name for the list (default: the file name).
    #[arg(long)]
    pub name: Option<String>,
    /// --state-dir and --json.
    #[command(flatten)]
    pub common: Common,
}

/// Arguments of `embargo lists update`.
#[derive(clap::Args)]
pub struct UpdateArgs {
    /// Lists to update (default: all).
    pub names: Vec<String>,
    /// --state-dir and --json.
    #[command(flatten)]
    pub common: Common,
}

/// Arguments of `embargo lists remove`.
#[derive(clap::Args)]
pub struct RemoveArgs {
    /// Name of the list (as `embargo lists show` prints it).
    pub name: String,
    /// --state-dir and --json.
    #[command(flatten)]
    pub common: Common,
}

/// Arguments of `embargo lists show`.
#[derive(clap::Args)]
pub struct ShowArgs {
    /// --state-dir and --json.
    #[command(flatten)]
    pub common: Common,
}

/// Runs `embargo lists ...`.
pub fn run(cmd: ListsCommand) -> Result<ExitCode> {
    match cmd {
        ListsCommand::Compile(args) => super::compile::run(args),
        ListsCommand::Add(args) => add(args),
        ListsCommand::Update(args) => update(args),
        ListsCommand::Remove(args) => remove(args),
        ListsCommand::Show(args) => show(args),
    }
}

fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// A list name must be usable as a file name in `lists/`.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 100
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
    {
        bail!("{name:?}: a list name is 1-100 of A-Z a-z 0-9 . _ - + (and no leading dot); pass --name");
    }
    Ok(())
}

fn add(args: AddArgs) -> Result<ExitCode> {
    let state = args.common.state();
    let mut config = state.load_lists()?;
    if let Some(f) = &args.format {
        if Format::from_name(f).is_none() {
            bail!("--format {f}: unknown format (see `embargo lists add --help`)");
        }
    }
    let (source, default_name) = if is_url(&args.source) {
        let tail = args
            .source
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        (ListSource::Url(args.source.clone()), tail)
    } else {
        let path = std::fs::canonicalize(&args.source)
            .with_context(|| format!("{}: cannot read this file", args.source))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (ListSource::File(path), name)
    };
    let name = args.name.unwrap_or(default_name);
    check_name(&name)?;
    if config.lists.iter().any(|l| l.name == name) {
        bail!("a list named {name:?} exists already (remove it, or pass --name)");
    }
    let mut entry = ListEntry {
        name,
        source,
        format: args.format,
        added_ms: now_ms(),
        updated_ms: 0,
        counts: ListCounts::default(),
        enabled: true,
    };
    refresh(&state, &mut entry)?;
    let summary = counts_line(&entry);
    config.lists.push(entry.clone());
    state.save_lists(&config)?;
    let live = control::notify_reload(&state)?;
    if args.common.json {
        output::print_json(&entry)?;
    } else {
        println!(
            "added {}: {summary}{}",
            entry.name,
            if live {
                " (running instance reloaded)"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn update(args: UpdateArgs) -> Result<ExitCode> {
    let state = args.common.state();
    let mut config = state.load_lists()?;
    for wanted in &args.names {
        if !config.lists.iter().any(|l| &l.name == wanted) {
            bail!("no list named {wanted:?} (see `embargo lists show`)");
        }
    }
    let mut failed = 0;
    for entry in config.lists.iter_mut() {
        if !args.names.is_empty() && !args.names.contains(&entry.name) {
            continue;
        }
        match refresh(&state, entry) {
            Ok(()) => eprintln!("{}: {}", entry.name, counts_line(entry)),
            Err(e) => {
                failed += 1;
                eprintln!(
                    "{}: update failed, keeping the previous copy: {e:#}",
                    entry.name
                );
            }
        }
    }
    state.save_lists(&config)?;
    control::notify_reload(&state)?;
    if args.common.json {
        output::print_json(&config)?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn remove(args: RemoveArgs) -> Result<ExitCode> {
    let state = args.common.state();
    let mut config = state.load_lists()?;
    let Some(i) = config.lists.iter().position(|l| l.name == args.name) else {
        bail!("no list named {:?} (see `embargo lists show`)", args.name);
    };
    let entry = config.lists.remove(i);
    if let Err(e) = state.remove_list_copy(&entry) {
        log::warn!("{e:#}");
    }
    state.save_lists(&config)?;
    control::notify_reload(&state)?;
    if !args.common.json {
        println!("removed {}", entry.name);
    } else {
        output::print_json(&entry)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn show(args: ShowArgs) -> Result<ExitCode> {
    let state = args.common.state();
    let config = state.load_lists()?;
    if args.common.json {
        output::print_json(&config.lists)?;
        return Ok(ExitCode::SUCCESS);
    }
    if config.lists.is_empty() {
        println!(
            "no lists added (the built-in rules apply); add one with `embargo lists add FILE|URL`"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(vec![
        "NAME", "FORMAT", "RULES", "SKIPPED", "ERRORS", "SIZE", "UPDATED", "SOURCE",
    ]);
    for l in &config.lists {
        let source = match &l.source {
            ListSource::File(p) => p.display().to_string(),
            ListSource::Url(u) => u.clone(),
            ListSource::Stored => "(stored copy)".into(),
        };
        t.row(vec![
            cell(&l.name),
            cell(l.format.clone().unwrap_or_else(|| "?".into())),
            (l.counts.accepted.to_string(), Tone::Good),
            cell(l.counts.skipped.to_string()),
            (
                l.counts.errors.to_string(),
                if l.counts.errors > 0 {
                    Tone::Bad
                } else {
                    Tone::Plain
                },
            ),
            cell(human_bytes(l.counts.bytes)),
            (output::time(l.updated_ms), Tone::Dim),
            (source, Tone::Dim),
        ]);
    }
    t.print();
    Ok(ExitCode::SUCCESS)
}

fn counts_line(entry: &ListEntry) -> String {
    format!(
        "{} rules, {} skipped, {} errors ({}, {})",
        entry.counts.accepted,
        entry.counts.skipped,
        entry.counts.errors,
        entry.format.as_deref().unwrap_or("?"),
        human_bytes(entry.counts.bytes)
    )
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// Downloads (URL) or re-reads (file) one list, parses it, and records format and counts.
/// A download goes to a temporary file first: a failed one leaves the previous copy in place.
fn refresh(state: &Store, entry: &mut ListEntry) -> Result<()> {
    let bytes = match &entry.source {
        ListSource::File(path) => embargo_app::input::read(path, "list")?,
        ListSource::Url(url) => {
            let bytes = download(url, &entry.name)?;
            state.write_list_copy(entry, &bytes)?;
            bytes
        }
        ListSource::Stored => embargo_app::input::read(&state.list_path(entry), "list")?,
    };
    let format = match &entry.format {
        Some(f) => Some(Format::from_name(f).with_context(|| format!("unknown format {f}"))?),
        None => None,
    };
    // A file list is detected by its own file name (its extension), the others by theirs.
    let detect_name = match &entry.source {
        ListSource::File(p) => p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        _ => entry.name.clone(),
    };
    let format = match format {
        Some(f) => f,
        None => embargo_app::list::detect(&detect_name, &bytes).with_context(|| {
            format!(
                "{}: cannot tell the list's format; pass --format",
                entry.name
            )
        })?,
    };
    let report = parse_bytes(format, &entry.name, &bytes, &mut |_| {});
    ensure_rules(&entry.name, format, &report, &bytes)?;
    entry.format = Some(format.name().to_owned());
    entry.updated_ms = now_ms();
    entry.counts = ListCounts {
        accepted: report.accepted,
        skipped: report.skipped.values().sum(),
        errors: report.error_count,
        bytes: bytes.len() as u64,
    };
    Ok(())
}

/// Fetches `url` with progress on stderr: a live line on a terminal, a final line elsewhere.
fn download(url: &str, name: &str) -> Result<Vec<u8>> {
    let agent = ureq::AgentBuilder::new()
        .timeout_read(DOWNLOAD_TIMEOUT)
        .timeout_connect(Duration::from_secs(15))
        .build();
    let response = agent
        .get(url)
        .call()
        .with_context(|| format!("download {url}"))?;
    let total: Option<u64> = response
        .header("Content-Length")
        .and_then(|v| v.parse().ok());
    if total.is_some_and(|t| t > MAX_DOWNLOAD) {
        bail!(
            "{url}: {} is larger than the {} limit",
            human_bytes(total.unwrap_or(0)),
            human_bytes(MAX_DOWNLOAD)
        );
    }
    let tty = std::io::stderr().is_terminal();
    let mut reader = response.into_reader().take(MAX_DOWNLOAD + 1);
    let mut bytes = Vec::with_capacity(total.unwrap_or(0).min(MAX_DOWNLOAD) as usize);
    let mut buf = [0u8; 64 * 1024];
    let started = Instant::now();
    let mut last_draw = Instant::now();
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("download {url}"))?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
        if tty && last_draw.elapsed() > Duration::from_millis(100) {
            last_draw = Instant::now();
            eprint!("\r{}", progress(name, bytes.len() as u64, total));
            let _ = std::io::stderr().flush();
        }
    }
    if bytes.len() as u64 > MAX_DOWNLOAD {
        bail!("{url}: larger than the {} limit", human_bytes(MAX_DOWNLOAD));
    }
    let secs = started.elapsed().as_secs_f64().max(0.001);
    eprintln!(
        "{}{} in {secs:.1} s",
        if tty { "\r" } else { "" },
        progress(name, bytes.len() as u64, total.or(Some(bytes.len() as u64)))
    );
    Ok(bytes)
}

fn progress(name: &str, done: u64, total: Option<u64>) -> String {
    match total {
        Some(t) if t > 0 => format!(
            "{name}: downloaded {} of {} ({:.0}%)",
            human_bytes(done),
            human_bytes(t),
            done as f64 * 100.0 / t as f64
        ),
        _ => format!("{name}: downloaded {}", human_bytes(done)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn temp_state() -> (std::path::PathBuf, Store) {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "embargo-lists-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        (dir.clone(), Store::new(dir.join("state")))
    }

    /// A one-shot HTTP server on loopback serving `body` (there is no internet here).
    fn serve_once(body: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut s, _) = listener.accept().unwrap();
                let mut req = [0u8; 2048];
                let _ = s.read(&mut req);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                s.write_all(head.as_bytes()).unwrap();
                s.write_all(body).unwrap();
            }
        });
        format!("http://{addr}/trackers.txt")
    }

    fn common(state: &Store) -> Common {
        Common {
            state_dir: state.root().to_path_buf(),
            json: false,
        }
    }

    #[test]
    fn add_show_update_remove_a_file_and_a_url() {
        let (dir, state) = temp_state();
        let file = dir.join("mine.rules");
        std::fs::write(&file, "tracker.test\nAS45090\n=exact.example\n").unwrap();
        add(AddArgs {
            source: file.display().to_string(),
            format: None,
            name: None,
            common: common(&state),
        })
        .unwrap();
        let url = serve_once(b"0.0.0.0 ads.example\n0.0.0.0 pixel.example\n0.0.0.0 localhost\n");
        add(AddArgs {
            source: url,
            format: Some("hosts".into()),
            name: None,
            common: common(&state),
        })
        .unwrap();
        let lists = state.load_lists().unwrap().lists;
        assert_eq!(lists.len(), 2);
        assert_eq!(lists[0].name, "mine.rules");
        assert_eq!(lists[0].format.as_deref(), Some("embargo"));
        assert_eq!(lists[0].counts.accepted, 3);
        assert_eq!(lists[1].name, "trackers.txt");
        assert_eq!(lists[1].counts.accepted, 2);
        assert_eq!(lists[1].counts.skipped, 1, "localhost is skipped");
        assert!(state.list_path(&lists[1]).exists());

        // a duplicate name is refused
        assert!(add(AddArgs {
            source: file.display().to_string(),
            format: None,
            name: None,
            common: common(&state),
        })
        .is_err());

        // update re-reads the file (one more rule) and downloads the URL again
        std::fs::write(
            &file,
            "tracker.test\nAS45090\n=exact.example\nmore.example\n",
        )
        .unwrap();
        update(UpdateArgs {
            names: vec![],
            common: common(&state),
        })
        .unwrap();
        assert_eq!(state.load_lists().unwrap().lists[0].counts.accepted, 4);

        remove(RemoveArgs {
            name: "trackers.txt".into(),
            common: common(&state),
        })
        .unwrap();
        let lists = state.load_lists().unwrap().lists;
        assert_eq!(lists.len(), 1);
        assert_eq!(
            state.list_path(&lists[0]),
            std::fs::canonicalize(&file).unwrap()
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bad_names_formats_and_missing_files_are_clear_errors() {
        let (dir, state) = temp_state();
        assert!(check_name("../x").is_err());
        assert!(check_name("ok-list_1.txt").is_ok());
        let err = add(AddArgs {
            source: "/no/such/file".into(),
            format: None,
            name: None,
            common: common(&state),
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("/no/such/file"));
        let err = add(AddArgs {
            source: "/etc/hostname".into(),
            format: Some("nope".into()),
            name: None,
            common: common(&state),
        })
        .unwrap_err();
        assert!(err.to_string().contains("--format nope"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
