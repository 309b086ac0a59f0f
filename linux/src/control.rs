//! The control socket: how management commands talk to a running `embargo run`.
//!
//! A Unix stream socket at `STATE_DIR/control.sock`, mode 0600 inside the 0700 state
//! directory, and every peer's credentials are checked (`SO_PEERCRED`: root or the instance's
//! own uid), so only the owner can read what apps did or change what is blocked.
//!
//! Protocol: one JSON request line, one JSON response line, then the server closes.
//!
//! ```text
//! -> {"cmd":"status"}          <- {"ok":true,"data":{...Status}}
//! -> {"cmd":"apps"}            <- {"ok":true,"data":[...AppSeen]}
//! -> {"cmd":"reload"}          <- {"ok":true,"data":{...ReloadReport}}
//! ```
//!
//! Changes are made to the files of the state directory first (so they hold with or without an
//! instance, and survive restarts); `reload` then asks the instance to re-read them and swap
//! its policy atomically. The server also reloads by itself when an app's pause ends.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use embargo_app::store::{now_ms, Store};
pub use embargo_app::ReloadReport;

/// A slow or silent client must not hold the (single) server thread for long.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest request line accepted; real ones are under 100 bytes.
const MAX_REQUEST: u64 = 64 * 1024;

/// Most distinct apps remembered as "seen" by an instance; past that the least recently seen
/// is forgotten (the history still has them). A desktop runs a few hundred programs.
pub const MAX_APPS_SEEN: usize = 10_000;

/// A request to a running instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    Apps,
    /// Re-read per-app settings and lists from the state directory; swap the policy.
    Reload,
}

/// What a running instance says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The instance's process id.
    pub pid: u32,
    /// Its version (Cargo package version).
    pub version: String,
    /// When it started (ms since the epoch).
    pub started_ms: i64,
    /// What it protects, e.g. `netns phone` or `tun tun0`.
    pub mode: String,
    /// The state directory it serves.
    pub state_dir: String,
    /// Decisions that allowed, since it started.
    pub allowed: u64,
    /// Decisions that blocked, since it started.
    pub blocked: u64,
    /// Distinct apps it has seen.
    pub apps_seen: u64,
    /// Anything else the instance counts (engine and driver statistics), by name.
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
    /// Whether the history records (`None`: an instance of an older version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryHealth>,
    /// The open-file limit and the flow cap sized from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// The history writer's health, as `embargo status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryHealth {
    /// `ok` (commits go through), `failing` (held in memory and retried), `off` (could not
    /// be opened: nothing is recorded).
    pub state: String,
    /// Events committed since the instance started.
    pub committed: u64,
    /// Events dropped since the instance started (queue or retry buffer full).
    pub dropped: u64,
    /// Since when commits fail (ms since the epoch), while failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since_ms: Option<i64>,
    /// The latest problem (a failing commit, a damaged file moved aside at start, why it is
    /// off), kept after writes resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Open files: what the process may hold, and how many flows that leaves room for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// The soft RLIMIT_NOFILE the process started with.
    pub open_files_at_start: u64,
    /// The soft limit now (raised to the hard limit at start).
    pub open_files: u64,
    /// The hard limit.
    pub open_files_hard: u64,
    /// The engine's flow cap (`max_flows`), sized so every flow's socket fits.
    pub max_flows: u64,
}

/// One app an instance has seen traffic from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSeen {
    /// App id (executable path or `uid:N`).
    pub app: String,
    /// First decision for it (ms since the epoch).
    pub first_seen_ms: i64,
    /// Latest decision for it.
    pub last_seen_ms: i64,
    /// Its allowed decisions.
    pub allowed: u64,
    /// Its blocked decisions.
    pub blocked: u64,
}

/// The response envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// The answer, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Why not, when it did not.
    pub error: Option<String>,
}

/// What the instance behind a [`Server`] must answer. Called on the server's thread.
pub trait Handler: Send + Sync + 'static {
    fn status(&self) -> Status;
    fn apps_seen(&self) -> Vec<AppSeen>;
    /// Rebuilds the policy from the state directory
    /// ([`Store::effective_app_rules`], [`Store::load_lists`]) and swaps it in.
    fn reload(&self) -> std::result::Result<ReloadReport, String>;
}

/// Counters and the apps-seen table a running instance keeps; feed it from the driver's
/// `on_event` ([`Live::record`]) and answer [`Handler::status`] / [`Handler::apps_seen`] from it.
#[derive(Debug)]
pub struct Live {
    /// When the instance started (ms since the epoch).
    pub started_ms: i64,
    allowed: AtomicU64,
    blocked: AtomicU64,
    apps: Mutex<HashMap<String, AppSeen>>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            started_ms: now_ms(),
            allowed: AtomicU64::new(0),
            blocked: AtomicU64::new(0),
            apps: Mutex::new(HashMap::new()),
        }
    }
}

impl Live {
    /// Counts one decision for `app` (unknown apps are counted but not listed).
    pub fn record(&self, app: Option<&str>, blocked: bool) {
        let counter = if blocked {
            &self.blocked
        } else {
            &self.allowed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let Some(app) = app else { return };
        let now = now_ms();
        let Ok(mut apps) = self.apps.lock() else {
            return;
        };
        if !apps.contains_key(app) && apps.len() >= MAX_APPS_SEEN {
            if let Some(oldest) = apps
                .values()
                .min_by_key(|a| a.last_seen_ms)
                .map(|a| a.app.clone())
            {
                apps.remove(&oldest);
            }
        }
        let seen = apps.entry(app.to_owned()).or_insert_with(|| AppSeen {
            app: app.to_owned(),
            first_seen_ms: now,
            last_seen_ms: now,
            allowed: 0,
            blocked: 0,
        });
        seen.last_seen_ms = now;
        if blocked {
            seen.blocked += 1;
        } else {
            seen.allowed += 1;
        }
    }

    /// (allowed, blocked) decisions so far.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.allowed.load(Ordering::Relaxed),
            self.blocked.load(Ordering::Relaxed),
        )
    }

    /// The apps seen, most recent first.
    pub fn apps(&self) -> Vec<AppSeen> {
        let mut apps: Vec<AppSeen> = self
            .apps
            .lock()
            .map(|a| a.values().cloned().collect())
            .unwrap_or_default();
        apps.sort_by_key(|a| std::cmp::Reverse(a.last_seen_ms));
        apps
    }
}

/// The listening control socket of a running instance. Dropping it removes the socket file.
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    state: Store,
}

impl Server {
    /// Binds `STATE_DIR/control.sock` (owner-only). A stale socket left by a killed instance is
    /// replaced; a live one means another instance runs, which is an error.
    pub fn bind(state: &Store) -> Result<Server> {
        state.create()?;
        let path = state.control_socket();
        if path.exists() {
            if UnixStream::connect(&path).is_ok() {
                bail!(
                    "another embargo instance is running (its control socket {} answers)",
                    path.display()
                );
            }
            std::fs::remove_file(&path)
                .with_context(|| format!("remove stale control socket {}", path.display()))?;
        }
        let listener =
            UnixListener::bind(&path).with_context(|| format!("bind {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 0600 {}", path.display()))?;
        Ok(Server {
            listener,
            path,
            state: state.clone(),
        })
    }

    /// Serves requests on a new thread until the process ends, and reloads the policy when a
    /// pause ends (on a second thread). Dropping the returned [`Serving`] removes the socket
    /// file, so that commands see at once that no instance runs.
    pub fn spawn(self, handler: Arc<dyn Handler>) -> std::io::Result<Serving> {
        let (poke_tx, poke_rx) = mpsc::channel::<()>();
        let watcher_state = self.state.clone();
        let watcher_handler = Arc::clone(&handler);
        thread::Builder::new()
            .name("embargo-pauses".into())
            .spawn(move || watch_pauses(&watcher_state, &*watcher_handler, &poke_rx))?;
        let path = self.path.clone();
        let thread = thread::Builder::new()
            .name("embargo-control".into())
            .spawn(move || self.serve(&*handler, &poke_tx))?;
        Ok(Serving {
            path,
            _thread: thread,
        })
    }

    fn serve(&self, handler: &dyn Handler, poke: &mpsc::Sender<()>) {
        let me = unsafe { libc::geteuid() };
        for stream in self.listener.incoming() {
            let Ok(stream) = stream else { continue };
            match peer_uid(&stream) {
                Some(uid) if uid == 0 || uid == me => {}
                other => {
                    log::warn!("control socket: refused a peer with uid {other:?}");
                    continue;
                }
            }
            if let Err(e) = serve_one(stream, handler, poke) {
                log::debug!("control socket: {e:#}");
            }
        }
    }
}

/// A control socket being served (see [`Server::spawn`]).
pub struct Serving {
    path: PathBuf,
    _thread: thread::JoinHandle<()>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve_one(stream: UnixStream, handler: &dyn Handler, poke: &mpsc::Sender<()>) -> Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new((&stream).take_limited(MAX_REQUEST)).read_line(&mut line)?;
    let response = match serde_json::from_str::<Request>(line.trim()) {
        Err(e) => Response {
            ok: false,
            data: None,
            error: Some(format!("bad request: {e}")),
        },
        Ok(request) => answer(request, handler, poke),
    };
    let mut out = serde_json::to_vec(&response)?;
    out.push(b'\n');
    (&stream).write_all(&out)?;
    Ok(())
}

/// `Read::take` for a borrowed stream.
trait TakeLimited: std::io::Read + Sized {
    fn take_limited(self, limit: u64) -> std::io::Take<Self> {
        self.take(limit)
    }
}
impl<R: std::io::Read> TakeLimited for R {}

fn answer(request: Request, handler: &dyn Handler, poke: &mpsc::Sender<()>) -> Response {
    let data = match request {
        Request::Status => serde_json::to_value(handler.status()),
        Request::Apps => serde_json::to_value(handler.apps_seen()),
        Request::Reload => {
            let _ = poke.send(()); // a new pause may end sooner than the one awaited
            match handler.reload() {
                Ok(report) => serde_json::to_value(report),
                Err(e) => {
                    return Response {
                        ok: false,
                        data: None,
                        error: Some(e),
                    }
                }
            }
        }
    };
    match data {
        Ok(data) => Response {
            ok: true,
            data: Some(data),
            error: None,
        },
        Err(e) => Response {
            ok: false,
            data: None,
            error: Some(e.to_string()),
        },
    }
}

/// Sleeps until the next pause ends (or a reload pokes it) and then reloads, so a paused app's
/// blocking comes back on time even when nobody runs a command.
fn watch_pauses(state: &Store, handler: &dyn Handler, poke: &mpsc::Receiver<()>) {
    /// Re-check at least this often: the pauses file may change without a poke (edited by hand).
    const MAX_SLEEP: Duration = Duration::from_secs(60);
    loop {
        let now = now_ms();
        let wait = match state.next_pause_end(now) {
            Some(end) => Duration::from_millis((end - now).max(0) as u64 + 50).min(MAX_SLEEP),
            None => MAX_SLEEP,
        };
        match poke.recv_timeout(wait) {
            Ok(()) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if state.next_pause_end(now).is_some_and(|end| end <= now_ms()) {
            if let Err(e) = handler.reload() {
                log::warn!("reload after a pause ended: {e}");
            }
        }
    }
}

fn peer_uid(stream: &UnixStream) -> Option<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes passed.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(cred.uid)
}

/// Talks to a running instance, if there is one.
pub struct Client {
    path: PathBuf,
}

impl Client {
    /// `None` when no instance runs for this state directory (no socket, or nobody behind it).
    pub fn connect(state: &Store) -> Option<Client> {
        let path = state.control_socket();
        UnixStream::connect(&path).ok().map(|_| Client { path })
    }

    /// Sends one request and returns its data (an error when the instance says it failed).
    pub fn request(&self, request: &Request) -> Result<serde_json::Value> {
        let stream = UnixStream::connect(&self.path)
            .with_context(|| format!("connect {}", self.path.display()))?;
        // A reload rebuilds the policy: allow it time on a large list set.
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut out = serde_json::to_vec(request)?;
        out.push(b'\n');
        (&stream).write_all(&out)?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line)?;
        let response: Response = serde_json::from_str(line.trim())
            .with_context(|| format!("bad answer from the instance: {line:?}"))?;
        match (response.ok, response.data) {
            (true, Some(data)) => Ok(data),
            (true, None) => Ok(serde_json::Value::Null),
            (false, _) => bail!(
                "the running instance says: {}",
                response.error.unwrap_or_default()
            ),
        }
    }

    /// The instance's [`Status`].
    pub fn status(&self) -> Result<Status> {
        Ok(serde_json::from_value(self.request(&Request::Status)?)?)
    }

    /// The apps the instance has seen.
    pub fn apps(&self) -> Result<Vec<AppSeen>> {
        Ok(serde_json::from_value(self.request(&Request::Apps)?)?)
    }

    /// Asks the instance to re-read the state directory and swap its policy.
    pub fn reload(&self) -> Result<ReloadReport> {
        Ok(serde_json::from_value(self.request(&Request::Reload)?)?)
    }
}

/// Asks a running instance (if any) to reload; says so on stderr. Used after every change to
/// the state directory.
pub fn notify_reload(state: &Store) -> Result<bool> {
    match Client::connect(state) {
        None => Ok(false),
        Some(client) => {
            client.reload()?;
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::AtomicUsize;

    struct Fake {
        live: Live,
        reloads: AtomicUsize,
    }

    impl Handler for Fake {
        fn status(&self) -> Status {
            let (allowed, blocked) = self.live.totals();
            Status {
                pid: std::process::id(),
                mode: "test".into(),
                allowed,
                blocked,
                ..Status::default()
            }
        }
        fn apps_seen(&self) -> Vec<AppSeen> {
            self.live.apps()
        }
        fn reload(&self) -> std::result::Result<ReloadReport, String> {
            self.reloads.fetch_add(1, Ordering::SeqCst);
            Ok(ReloadReport {
                rules: 7,
                ..ReloadReport::default()
            })
        }
    }

    fn state() -> Store {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "embargo-control-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Store::new(dir)
    }

    #[test]
    fn client_and_server_talk_over_an_owner_only_socket() {
        let state = state();
        assert!(Client::connect(&state).is_none());
        let fake = Arc::new(Fake {
            live: Live::default(),
            reloads: AtomicUsize::new(0),
        });
        fake.live.record(Some("/usr/bin/curl"), true);
        fake.live.record(Some("/usr/bin/curl"), false);
        fake.live.record(None, false);
        let server = Server::bind(&state).unwrap();
        let meta = std::fs::metadata(state.control_socket()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let serving = server.spawn(fake.clone()).unwrap();

        let client = Client::connect(&state).expect("instance answers");
        let status = client.status().unwrap();
        assert_eq!((status.allowed, status.blocked), (2, 1));
        let apps = client.apps().unwrap();
        assert_eq!(apps.len(), 1);
        assert_eq!((apps[0].allowed, apps[0].blocked), (1, 1));
        assert_eq!(client.reload().unwrap().rules, 7);
        assert!(notify_reload(&state).unwrap());
        assert_eq!(fake.reloads.load(Ordering::SeqCst), 2);

        // a second instance on the same state directory is refused
        let err = Server::bind(&state).err().unwrap().to_string();
        assert!(err.contains("another embargo instance"), "{err}");
        // stopping removes the socket: commands then know at once that nothing runs
        drop(serving);
        assert!(!state.control_socket().exists());
        assert!(Client::connect(&state).is_none());
        let _ = std::fs::remove_dir_all(state.root());
    }

    #[test]
    fn bad_requests_get_an_error_not_a_hangup() {
        let state = state();
        let server = Server::bind(&state).unwrap();
        let _serving = server
            .spawn(Arc::new(Fake {
                live: Live::default(),
                reloads: AtomicUsize::new(0),
            }))
            .unwrap();
        let stream = UnixStream::connect(state.control_socket()).unwrap();
        (&stream).write_all(b"{\"cmd\":\"explode\"}\n").unwrap();
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
        let r: Response = serde_json::from_str(&line).unwrap();
        assert!(!r.ok);
        assert!(r.error.unwrap().contains("bad request"));
        let _ = std::fs::remove_dir_all(state.root());
    }

    #[test]
    fn stale_socket_is_replaced() {
        let state = state();
        state.create().unwrap();
        drop(UnixListener::bind(state.control_socket()).unwrap()); // file stays, nobody listens
        assert!(Client::connect(&state).is_none());
        let _server = Server::bind(&state).unwrap();
        let _ = std::fs::remove_dir_all(state.root());
    }

    #[test]
    fn a_pause_ending_triggers_a_reload() {
        let state = state();
        let mut pauses = BTreeMap::new();
        pauses.insert(
            "/bin/x".to_string(),
            embargo_app::store::Pause {
                until_ms: now_ms() + 200,
            },
        );
        state.save_pauses(&pauses).unwrap();
        let fake = Arc::new(Fake {
            live: Live::default(),
            reloads: AtomicUsize::new(0),
        });
        let _serving = Server::bind(&state).unwrap().spawn(fake.clone()).unwrap();
        for _ in 0..50 {
            if fake.reloads.load(Ordering::SeqCst) > 0 {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(fake.reloads.load(Ordering::SeqCst), 1);
        let _ = std::fs::remove_dir_all(state.root());
    }
}
