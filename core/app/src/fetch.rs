//! Lists that keep themselves current: how a list is checked, downloaded and swapped in.
//! The shells decide when (the Linux `embargo run` every few minutes, `embargo lists update`;
//! the phone apps on an unmetered network); this module says how:
//!
//! - **Conditional requests.** A URL list keeps its server's `ETag` and `Last-Modified` and
//!   sends them back (`If-None-Match`, `If-Modified-Since`); `304 Not Modified` costs no body.
//! - **A schedule.** Each list has a last-checked time and an interval (daily by default);
//!   [`due`] names the lists whose time has come.
//! - **An atomic swap.** A download is judged whole before it replaces anything: an HTTP
//!   error, a truncated body, a list over [`MAX_DOWNLOAD`], one that is not in its format or
//!   has far fewer rules than the last good copy is refused; the stored copy (and the compiled
//!   form `Rules` keeps for it) stays in force, and the refusal is recorded in `lists.json`
//!   ([`Freshness::failure`]) for `lists show`, `status` and the apps.
//!
//! A running engine picks a changed copy up on its next [`crate::Rules::reload`]: the copy's
//! size and mtime changed, so that list (and only that one) is compiled again.

use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use embargo_policy::parse::{parse_bytes, Format};
use serde::Serialize;

use crate::list::{ensure_rules, list_health, looks_binary, ListHealth};
use crate::store::{now_ms, Freshness, ListCounts, ListEntry, ListFailure, ListSource, Store};

/// How often a list is checked unless it says otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Largest list accepted from a URL. The biggest real blocklists (hagezi ultimate, OISD big)
/// are 20-40 MB as text; anything far beyond is a mistake or an attack.
pub const MAX_DOWNLOAD: u64 = 256 << 20;

/// Give up on a server that sends nothing for this long.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A new copy with fewer than a tenth of the last good copy's rules is refused (when that
/// copy had at least this many): a publisher's list does not lose 90 % overnight, a broken
/// build or a captive portal's page does.
const SHRINK_FLOOR: u64 = 100;

/// Told how a long download goes (the CLI draws a bar, the apps a notification).
pub trait Progress: Send + Sync {
    /// `done` bytes of list `list` received, of `total` when the server said.
    fn progress(&self, list: &str, done: u64, total: Option<u64>);
}

/// No progress shown.
pub struct Quiet;

impl Progress for Quiet {
    fn progress(&self, _: &str, _: u64, _: Option<u64>) {}
}

/// What one check of one list came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "snake_case")]
pub enum Outcome {
    /// A new copy is stored (or the file was read again).
    Updated,
    /// The server said `304 Not Modified`.
    Unchanged,
    /// The new copy was refused; the last good one stays. Why.
    Refused(String),
}

/// Which lists [`update_lists`] checks.
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    /// Those whose interval has passed since their last check ([`is_due`]).
    Due,
    /// Every URL and file list.
    All,
    /// These, by name.
    Named(&'a [String]),
}

/// The interval of `entry`.
pub fn interval(entry: &ListEntry) -> Duration {
    entry
        .freshness
        .interval_secs
        .map_or(DEFAULT_INTERVAL, Duration::from_secs)
}

/// Whether `entry` should be checked at `now_ms`: a URL list, enabled, whose interval has
/// passed since its last check. A file list is read again whenever it changes anyway, and a
/// stored copy has nowhere to come from.
pub fn is_due(entry: &ListEntry, now_ms: i64) -> bool {
    let ListSource::Url(_) = entry.source else {
        return false;
    };
    let last = entry.freshness.checked_ms.max(entry.updated_ms);
    entry.enabled && now_ms.saturating_sub(last) >= interval(entry).as_millis() as i64
}

/// The names of the lists due at `now_ms`.
pub fn due(store: &Store, now_ms: i64) -> Result<Vec<String>> {
    Ok(store
        .load_lists()?
        .lists
        .iter()
        .filter(|l| is_due(l, now_ms))
        .map(|l| l.name.clone())
        .collect())
}

/// What a server sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    /// `304`: the stored copy is current.
    NotModified,
    /// A whole body, with the validators to send next time.
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// Downloads `url` for the list `name`, conditionally when `validators` has an ETag or
/// Last-Modified. A status other than 200 and 304, a body shorter than its Content-Length or
/// longer than [`MAX_DOWNLOAD`] is an error naming the URL.
pub fn fetch(
    url: &str,
    name: &str,
    validators: Option<&Freshness>,
    progress: &dyn Progress,
) -> Result<Fetched> {
    let agent = ureq::AgentBuilder::new()
        .timeout_read(READ_TIMEOUT)
        .timeout_connect(Duration::from_secs(15))
        .build();
    let mut request = agent.get(url);
    if let Some(v) = validators {
        if let Some(etag) = &v.etag {
            request = request.set("If-None-Match", etag);
        }
        if let Some(lm) = &v.last_modified {
            request = request.set("If-Modified-Since", lm);
        }
    }
    let response = match request.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            bail!("{url}: HTTP {code} {}", r.status_text())
        }
        Err(e) => return Err(e).with_context(|| format!("download {url}")),
    };
    match response.status() {
        200 => {}
        304 => return Ok(Fetched::NotModified),
        code => bail!(
            "{url}: HTTP {code} {} (expected 200)",
            response.status_text()
        ),
    }
    let header = |h: &str| response.header(h).map(str::to_owned);
    let (etag, last_modified) = (header("ETag"), header("Last-Modified"));
    // With a content encoding the length counts the compressed bytes, not what is read.
    let total: Option<u64> = match response.header("Content-Encoding") {
        Some(_) => None,
        None => response
            .header("Content-Length")
            .and_then(|v| v.parse().ok()),
    };
    if let Some(t) = total.filter(|&t| t > MAX_DOWNLOAD) {
        bail!("{url}: {t} bytes, over the {MAX_DOWNLOAD}-byte limit");
    }
    let mut reader = response.into_reader().take(MAX_DOWNLOAD + 1);
    let mut bytes = Vec::with_capacity(total.unwrap_or(0) as usize);
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_told = Instant::now();
    loop {
        let n = reader.read(&mut buf).with_context(|| {
            format!(
                "{url}: truncated: the download broke off after {} bytes",
                bytes.len()
            )
        })?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
        if last_told.elapsed() > Duration::from_millis(100) {
            last_told = Instant::now();
            progress.progress(name, bytes.len() as u64, total);
        }
    }
    progress.progress(name, bytes.len() as u64, total.or(Some(bytes.len() as u64)));
    if bytes.len() as u64 > MAX_DOWNLOAD {
        bail!("{url}: over the {MAX_DOWNLOAD}-byte limit");
    }
    if let Some(t) = total.filter(|&t| bytes.len() as u64 != t) {
        bail!("{url}: truncated: {} of {t} bytes arrived", bytes.len());
    }
    Ok(Fetched::Body {
        bytes,
        etag,
        last_modified,
    })
}

/// Judges `bytes` as a new copy of `entry`: read as its format (or detected), refused when
/// not a rule list in that format, or when it has under a tenth of the rules of the last good
/// copy. The format and counts it would be stored with.
pub fn judge_copy(entry: &ListEntry, bytes: &[u8]) -> Result<(Format, ListCounts)> {
    let format = match &entry.format {
        Some(f) => Format::from_name(f).with_context(|| format!("unknown format {f}"))?,
        None => {
            // A file list is detected by its own file name (its extension), the others by theirs.
            let name = match &entry.source {
                ListSource::File(p) => p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                _ => entry.name.clone(),
            };
            crate::list::detect_or_err(&name, bytes)?
        }
    };
    let report = parse_bytes(format, &entry.name, bytes, &mut |_| {});
    ensure_rules(&entry.name, format, &report, bytes)?;
    if let ListHealth::Unusable(why) = list_health(&report, looks_binary(bytes)) {
        bail!("{}: {why}", entry.name);
    }
    let before = entry.counts.accepted;
    if before >= SHRINK_FLOOR && report.accepted < before / 10 {
        bail!(
            "{} rules where the last good copy had {before}: truncated or not the list any \
             more",
            report.accepted
        );
    }
    Ok((
        format,
        ListCounts {
            accepted: report.accepted,
            skipped: report.skipped.values().sum(),
            errors: report.error_count,
            bytes: bytes.len() as u64,
        },
    ))
}

/// Why [`add_list`] added nothing.
#[derive(Debug)]
pub enum AddRefused {
    /// A list of that name is already in the store.
    NameTaken(String),
    /// The first copy was refused (the reason, as [`Outcome::Refused`] gives it).
    Copy(String),
}

/// Adds a list to the store: reads or downloads its first copy now and records the list
/// only when that copy is good, to be kept current every `interval_secs` (daily when
/// `None`). `embargo lists add` and the FFI's URL lists both add through here.
pub fn add_list(
    store: &Store,
    name: String,
    source: ListSource,
    format: Option<String>,
    interval_secs: Option<u64>,
    progress: &dyn Progress,
) -> Result<std::result::Result<ListEntry, AddRefused>> {
    if store.load_lists()?.lists.iter().any(|l| l.name == name) {
        return Ok(Err(AddRefused::NameTaken(name)));
    }
    let mut entry = ListEntry::new(name, source, format);
    entry.freshness.interval_secs = interval_secs.map(|s| s.max(1));
    if let Outcome::Refused(why) = refresh(store, &mut entry, true, progress) {
        return Ok(Err(AddRefused::Copy(why)));
    }
    // Read again: the download may have taken minutes, and lists.json may have changed.
    let mut lists = store.load_lists()?;
    lists.lists.push(entry.clone());
    store.save_lists(&lists)?;
    Ok(Ok(entry))
}

/// Checks one list now: downloads a URL list (conditionally unless `force`), re-reads a
/// file or stored copy; judges what came ([`judge_copy`]) and stores it only when good. On
/// refusal the stored copy is untouched and `entry.freshness.failure` says why.
pub fn refresh(
    store: &Store,
    entry: &mut ListEntry,
    force: bool,
    progress: &dyn Progress,
) -> Outcome {
    let now = now_ms();
    let result = (|| -> Result<Outcome> {
        let (bytes, validators) = match &entry.source {
            ListSource::File(path) => (crate::input::read(path, "list")?, None),
            ListSource::Stored => (crate::input::read(&store.list_path(entry), "list")?, None),
            ListSource::Url(url) => {
                let have_copy = store.list_path(entry).exists();
                let ask = (!force && have_copy).then_some(&entry.freshness);
                match fetch(url, &entry.name, ask, progress)? {
                    Fetched::NotModified => return Ok(Outcome::Unchanged),
                    Fetched::Body {
                        bytes,
                        etag,
                        last_modified,
                    } => (bytes, Some((etag, last_modified))),
                }
            }
        };
        let (format, counts) = judge_copy(entry, &bytes)?;
        if let Some((etag, last_modified)) = validators {
            store.write_list_copy(entry, &bytes)?;
            entry.freshness.etag = etag;
            entry.freshness.last_modified = last_modified;
        }
        entry.format = Some(format.name().to_owned());
        entry.counts = counts;
        entry.updated_ms = now;
        Ok(Outcome::Updated)
    })();
    entry.freshness.checked_ms = now;
    match result {
        Ok(outcome) => {
            entry.freshness.failure = None;
            outcome
        }
        Err(e) => {
            let reason = format!("{e:#}");
            entry.freshness.failure = Some(ListFailure {
                at_ms: now,
                reason: reason.clone(),
            });
            Outcome::Refused(reason)
        }
    }
}

/// Checks the lists `which` names ([`refresh`] each) and records what each check found in
/// `lists.json`, list by list (a list added or removed meanwhile is left as it is). The
/// caller reloads a running engine when one came out [`Outcome::Updated`].
pub fn update_lists(
    store: &Store,
    which: Which<'_>,
    force: bool,
    progress: &dyn Progress,
) -> Result<Vec<(String, Outcome)>> {
    let config = store.load_lists()?;
    if let Which::Named(names) = which {
        for wanted in names {
            if !config.lists.iter().any(|l| &l.name == wanted) {
                bail!("no list named {wanted:?}");
            }
        }
    }
    let now = now_ms();
    let mut outcomes = Vec::new();
    for mut entry in config.lists {
        let chosen = match which {
            Which::Due => is_due(&entry, now),
            Which::All => !matches!(entry.source, ListSource::Stored),
            Which::Named(names) => names.contains(&entry.name),
        };
        if !chosen {
            continue;
        }
        let outcome = refresh(store, &mut entry, force, progress);
        // Written back list by list: a long download must not undo a change made meanwhile.
        let mut current = store.load_lists()?;
        if let Some(slot) = current.lists.iter_mut().find(|l| l.name == entry.name) {
            let enabled = slot.enabled;
            *slot = entry.clone();
            slot.enabled = enabled;
            store.save_lists(&current)?;
        }
        outcomes.push((entry.name, outcome));
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// A broken answer: status line, body, and a Content-Length that may lie.
    type Broken = (&'static str, Vec<u8>, usize);

    /// What a test server answers, and the requests it saw.
    #[derive(Default)]
    struct Server {
        body: Vec<u8>,
        etag: String,
        /// Overrides the answer: (status line, body, Content-Length that may lie).
        broken: Option<Broken>,
        requests: Vec<String>,
    }

    /// A real HTTP/1.1 server on loopback (one connection at a time) with ETag support.
    fn serve(server: Arc<Mutex<Server>>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let mut s = conn.unwrap();
                let mut req = vec![0u8; 4096];
                let n = s.read(&mut req).unwrap_or(0);
                let req = String::from_utf8_lossy(&req[..n]).into_owned();
                let mut sv = server.lock().unwrap();
                sv.requests.push(req.clone());
                let (status, body, len) = if let Some((st, b, len)) = sv.broken.clone() {
                    (st, b, len)
                } else if req
                    .lines()
                    .any(|l| l.eq_ignore_ascii_case(&format!("If-None-Match: {}", sv.etag)))
                {
                    ("304 Not Modified", Vec::new(), 0)
                } else {
                    ("200 OK", sv.body.clone(), sv.body.len())
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nETag: {}\r\nContent-Length: {len}\r\nConnection: \
                     close\r\n\r\n",
                    sv.etag
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&body);
            }
        });
        format!("http://{addr}/hosts")
    }

    fn hosts(n: usize, prefix: &str) -> Vec<u8> {
        (0..n)
            .map(|i| format!("0.0.0.0 {prefix}{i}.example\n"))
            .collect::<String>()
            .into_bytes()
    }

    fn url_entry(url: &str) -> ListEntry {
        ListEntry {
            name: "hosts".into(),
            source: ListSource::Url(url.into()),
            format: Some("hosts".into()),
            added_ms: 0,
            updated_ms: 0,
            counts: ListCounts::default(),
            enabled: true,
            freshness: Freshness::default(),
        }
    }

    #[test]
    fn a_second_check_is_conditional_and_304_keeps_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state"));
        let server = Arc::new(Mutex::new(Server {
            body: hosts(200, "a"),
            etag: "\"v1\"".into(),
            ..Default::default()
        }));
        let url = serve(Arc::clone(&server));
        let mut entry = url_entry(&url);
        assert_eq!(refresh(&store, &mut entry, false, &Quiet), Outcome::Updated);
        assert_eq!(entry.counts.accepted, 200);
        assert_eq!(entry.freshness.etag.as_deref(), Some("\"v1\""));
        assert!(!server.lock().unwrap().requests[0].contains("If-None-Match"));

        assert_eq!(
            refresh(&store, &mut entry, false, &Quiet),
            Outcome::Unchanged
        );
        assert!(server.lock().unwrap().requests[1].contains("If-None-Match: \"v1\""));

        // a new version is downloaded; --force asks unconditionally
        {
            let mut sv = server.lock().unwrap();
            sv.body = hosts(300, "b");
            sv.etag = "\"v2\"".into();
        }
        assert_eq!(refresh(&store, &mut entry, false, &Quiet), Outcome::Updated);
        assert_eq!(entry.counts.accepted, 300);
        assert_eq!(refresh(&store, &mut entry, true, &Quiet), Outcome::Updated);
        assert!(!server.lock().unwrap().requests[3].contains("If-None-Match"));
    }

    #[test]
    fn a_broken_download_keeps_the_last_good_copy_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state"));
        let good = hosts(500, "good");
        let server = Arc::new(Mutex::new(Server {
            body: good.clone(),
            etag: "\"v1\"".into(),
            ..Default::default()
        }));
        let url = serve(Arc::clone(&server));
        let mut entry = url_entry(&url);
        assert_eq!(refresh(&store, &mut entry, false, &Quiet), Outcome::Updated);
        let cases: Vec<(Broken, &str)> = vec![
            (
                ("500 Internal Server Error", b"oops".to_vec(), 4),
                "HTTP 500",
            ),
            (("200 OK", good[..100].to_vec(), good.len()), "truncated"),
            (
                ("200 OK", b"<html>captive portal</html>\n".to_vec(), 28),
                "no rule accepted when read as hosts",
            ),
            (
                ("200 OK", hosts(3, "few"), hosts(3, "few").len()),
                "3 rules where",
            ),
            (("200 OK", Vec::new(), 0), "0 rules where"),
        ];
        for (broken, expect) in cases {
            server.lock().unwrap().broken = Some(broken);
            let outcome = refresh(&store, &mut entry, true, &Quiet);
            let Outcome::Refused(why) = &outcome else {
                panic!("{outcome:?} for {expect}");
            };
            assert!(why.contains(expect), "{why} (expected {expect})");
            assert_eq!(std::fs::read(store.list_path(&entry)).unwrap(), good);
            assert_eq!(entry.counts.accepted, 500);
            assert_eq!(entry.freshness.failure.as_ref().unwrap().reason, *why);
        }
        server.lock().unwrap().broken = None;
        assert_eq!(refresh(&store, &mut entry, true, &Quiet), Outcome::Updated);
        assert!(entry.freshness.failure.is_none());
    }

    #[test]
    fn lists_are_due_when_their_interval_has_passed() {
        let mut entry = url_entry("https://lists.example/hosts");
        let day = DEFAULT_INTERVAL.as_millis() as i64;
        entry.freshness.checked_ms = 1_000;
        assert!(!is_due(&entry, 1_000 + day - 1));
        assert!(is_due(&entry, 1_000 + day));
        entry.freshness.interval_secs = Some(60);
        assert!(is_due(&entry, 61_000));
        assert!(!is_due(&entry, 60_999));
        entry.enabled = false;
        assert!(!is_due(&entry, i64::MAX));
        entry.enabled = true;
        entry.source = ListSource::Stored;
        assert!(!is_due(&entry, i64::MAX));
    }

    #[test]
    fn update_lists_checks_only_due_lists_and_records_the_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state"));
        let server = Arc::new(Mutex::new(Server {
            body: hosts(10, "a"),
            etag: "\"v1\"".into(),
            ..Default::default()
        }));
        let url = serve(Arc::clone(&server));
        let mut fresh = url_entry(&url);
        fresh.name = "fresh".into();
        fresh.freshness.checked_ms = now_ms();
        let stale = url_entry(&url);
        store
            .save_lists(&crate::store::ListsConfig {
                lists: vec![fresh, stale],
            })
            .unwrap();
        assert_eq!(due(&store, now_ms()).unwrap(), vec!["hosts".to_string()]);
        let outcomes = update_lists(&store, Which::Due, false, &Quiet).unwrap();
        assert_eq!(outcomes, vec![("hosts".to_string(), Outcome::Updated)]);
        assert!(due(&store, now_ms()).unwrap().is_empty());
        let stored = store.load_lists().unwrap();
        assert_eq!(stored.lists[1].counts.accepted, 10);
        assert_eq!(stored.lists[1].freshness.etag.as_deref(), Some("\"v1\""));
        let all = update_lists(&store, Which::All, false, &Quiet).unwrap();
        assert_eq!(all.len(), 2);
        assert!(update_lists(&store, Which::Named(&["nope".into()]), false, &Quiet).is_err());
    }
}
