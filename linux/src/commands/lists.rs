//! `embargo lists`: add, update, remove, show and compile rule lists.
//!
//! Lists are recorded in `STATE_DIR/lists.json`: a file is read where it is, a URL (or a
//! catalogue name) is downloaded into `STATE_DIR/lists/NAME` by `add`, and kept current by
//! `update` and a running `embargo run` (embargo_app::fetch: conditional requests, a daily
//! schedule, a refused download keeps the last good copy). Every change tells a running
//! instance to reload.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use embargo_policy::parse::Format;

use super::output::{self, cell, Common, Table, Tone};
use crate::control;
use embargo_app::catalogue::{self, CATALOGUE};
use embargo_app::fetch::{self, Outcome, Progress, Which};
use embargo_app::store::{ListEntry, ListSource};

/// The `embargo lists` subcommands.
#[derive(clap::Subcommand)]
pub enum ListsCommand {
    /// Compile rule sources into one memory-mappable file.
    Compile(super::compile::CompileArgs),
    /// Add a list: a file (read where it is), an http(s) URL or a catalogue name (downloaded
    /// now, then kept current).
    Add(AddArgs),
    /// Check the lists that are due (or all, or the ones named) and download what changed.
    Update(UpdateArgs),
    /// Well-known lists that `add NAME` knows.
    Catalogue(ShowArgs),
    /// Remove a list (and its downloaded copy).
    Remove(RemoveArgs),
    /// Show the lists with the counts of their last load.
    Show(ShowArgs),
}

/// Arguments of `embargo lists add`.
#[derive(clap::Args)]
pub struct AddArgs {
    /// A file path, an http:// or https:// URL, or a name from `embargo lists catalogue`.
    pub source: String,
    /// The list's syntax (hosts, hosts-subtree, domains, domains-subtree, adblock, dnsmasq,
    /// unbound, wildcard, ddg-app, ddg-web, disconnect, disconnect-entities, xray, exodus,
    /// embargo); detected when omitted.
    #[arg(long)]
    pub format: Option<String>,
    /// A short name for the list (default: the file name).
    #[arg(long)]
    pub name: Option<String>,
    /// How often a URL list is checked for a new version (90s, 15m, 2h, 1d; default 1d).
    #[arg(long, value_parser = output::parse_duration)]
    pub every: Option<std::time::Duration>,
    /// --state-dir and --json.
    #[command(flatten)]
    pub common: Common,
}

/// Arguments of `embargo lists update`.
#[derive(clap::Args)]
pub struct UpdateArgs {
    /// Lists to check (default: the ones due, see --all).
    pub names: Vec<String>,
    /// Check every list, due or not.
    #[arg(long)]
    pub all: bool,
    /// Download whole again, without asking whether the list changed (implies --all when
    /// no list is named).
    #[arg(long)]
    pub force: bool,
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
        ListsCommand::Catalogue(args) => show_catalogue(args),
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
    if let Some(f) = &args.format {
        if Format::from_name(f).is_none() {
            bail!("--format {f}: unknown format (see `embargo lists add --help`)");
        }
    }
    let mut format = args.format;
    let (source, default_name) = if let Some(known) = (!is_url(&args.source)
        && !std::path::Path::new(&args.source).exists())
    .then(|| catalogue::find(&args.source))
    .flatten()
    {
        format.get_or_insert_with(|| known.format.to_owned());
        (ListSource::Url(known.url.to_owned()), known.name.to_owned())
    } else if is_url(&args.source) {
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
        let path = std::fs::canonicalize(&args.source).with_context(|| {
            format!(
                "{}: cannot read this file (nor is it a URL or a name from `embargo lists \
                 catalogue`)",
                args.source
            )
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (ListSource::File(path), name)
    };
    let name = args.name.unwrap_or(default_name);
    check_name(&name)?;
    let bar = Bar::new();
    let interval = args.every.map(|d| d.as_secs());
    let entry = match fetch::add_list(&state, name, source, format, interval, &bar)? {
        Ok(entry) => entry,
        Err(fetch::AddRefused::NameTaken(name)) => {
            bail!("a list named {name:?} exists already (remove it, or pass --name)")
        }
        Err(fetch::AddRefused::Copy(why)) => bail!("{why}"),
    };
    bar.finish();
    if let ListSource::Url(url) = &entry.source {
        eprintln!(
            "{}: downloaded {} from {url}",
            entry.name,
            human_bytes(entry.counts.bytes)
        );
    }
    let summary = counts_line(&entry);
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
    let which = match (args.names.is_empty(), args.all || args.force) {
        (false, _) => Which::Named(&args.names),
        (true, true) => Which::All,
        (true, false) => Which::Due,
    };
    let bar = Bar::new();
    let outcomes = fetch::update_lists(&state, which, args.force, &bar)
        .map_err(|e| anyhow::anyhow!("{e:#} (see `embargo lists show`)"))?;
    bar.finish();
    let mut refused = 0;
    let lists = state.load_lists()?.lists;
    for (name, outcome) in &outcomes {
        let counts = lists
            .iter()
            .find(|l| &l.name == name)
            .map(counts_line)
            .unwrap_or_default();
        match outcome {
            Outcome::Updated => eprintln!("{name}: updated: {counts}"),
            Outcome::Unchanged => eprintln!("{name}: unchanged (304): {counts}"),
            Outcome::Refused(why) => {
                refused += 1;
                eprintln!("{name}: refused, keeping the last good copy: {why}");
            }
        }
    }
    if outcomes.is_empty() {
        eprintln!("no list is due (--all checks every list)");
    }
    if outcomes.iter().any(|(_, o)| *o == Outcome::Updated) {
        control::notify_reload(&state)?;
    }
    if args.common.json {
        output::print_json(
            &outcomes
                .iter()
                .map(|(name, o)| serde_json::json!({"name": name, "result": o}))
                .collect::<Vec<_>>(),
        )?;
    }
    Ok(if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn show_catalogue(args: ShowArgs) -> Result<ExitCode> {
    if args.common.json {
        output::print_json(CATALOGUE)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(vec!["NAME", "FORMAT", "LICENCE", "BLOCKS", "URL"]);
    for e in CATALOGUE {
        t.row(vec![
            cell(e.name),
            cell(e.format),
            cell(e.licence),
            cell(e.blocks),
            (e.url.to_owned(), Tone::Dim),
        ]);
    }
    t.print();
    println!("add one with `embargo lists add NAME`");
    Ok(ExitCode::SUCCESS)
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
        "NAME", "FORMAT", "RULES", "SKIPPED", "ERRORS", "SIZE", "UPDATED", "CHECKED", "SOURCE",
    ]);
    let mut failures = Vec::new();
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
            match (&l.freshness.failure, l.freshness.checked_ms) {
                (Some(_), _) => ("REFUSED".into(), Tone::Bad),
                (None, 0) => ("-".into(), Tone::Dim),
                (None, t) => (output::time(t), Tone::Dim),
            },
            (source, Tone::Dim),
        ]);
        if let Some(f) = &l.freshness.failure {
            failures.push(format!(
                "{}: update refused at {}, keeping the last good copy: {}",
                l.name,
                output::time(f.at_ms),
                f.reason
            ));
        }
    }
    t.print();
    for f in failures {
        println!("{f}");
    }
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

/// Download progress on stderr: an indicatif bar when stderr is a terminal, nothing
/// otherwise (the outcome lines say what came).
struct Bar {
    bar: Option<Mutex<Option<(String, indicatif::ProgressBar)>>>,
}

impl Bar {
    fn new() -> Bar {
        Bar {
            bar: std::io::stderr().is_terminal().then(|| Mutex::new(None)),
        }
    }

    fn finish(&self) {
        if let Some(slot) = &self.bar {
            if let Some((_, bar)) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
                bar.finish_and_clear();
            }
        }
    }
}

impl Progress for Bar {
    fn progress(&self, list: &str, done: u64, total: Option<u64>) {
        let Some(slot) = &self.bar else { return };
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_none_or(|(name, _)| name != list) {
            if let Some((_, old)) = slot.take() {
                old.finish_and_clear();
            }
            let bar = match total {
                Some(t) => indicatif::ProgressBar::new(t).with_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                    )
                    .expect("a valid template"),
                ),
                None => indicatif::ProgressBar::new_spinner().with_style(
                    indicatif::ProgressStyle::with_template("{msg} {spinner} {bytes}")
                        .expect("a valid template"),
                ),
            };
            bar.set_message(list.to_owned());
            *slot = Some((list.to_owned(), bar));
        }
        if let Some((_, bar)) = slot.as_ref() {
            bar.set_position(done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embargo_app::store::Store;
    use std::io::{Read, Write};
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
            every: None,
            common: common(&state),
        })
        .unwrap();
        let url = serve_once(b"0.0.0.0 ads.example\n0.0.0.0 pixel.example\n0.0.0.0 localhost\n");
        add(AddArgs {
            source: url,
            format: Some("hosts".into()),
            name: None,
            every: None,
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
            every: None,
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
            all: true,
            force: false,
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
            every: None,
            common: common(&state),
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("/no/such/file"));
        assert!(format!("{err:#}").contains("embargo lists catalogue"));
        let err = add(AddArgs {
            source: "/etc/hostname".into(),
            format: Some("nope".into()),
            name: None,
            every: None,
            common: common(&state),
        })
        .unwrap_err();
        assert!(err.to_string().contains("--format nope"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
