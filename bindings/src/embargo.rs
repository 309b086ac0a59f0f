//! The [`Embargo`] object: one per app process, owning the rules, the history, the live event
//! queue and (while running) the tunnel.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use embargo_app::store::Store;
use embargo_driver::{DriverHandle, Tunnel};
use embargo_history::History;
use embargo_policy::Action;

use crate::config::EmbargoConfig;
use crate::error::{guard, lock};
use crate::events::{EventBus, LiveEvent, TunnelState};
use crate::history::{
    AggregateQuery, AggregateRow, ExportFormat, HiddenEntry, HistoryPage, HistoryQuery,
    HistoryStats,
};
use crate::hooks::{DriverHooks, PacketSink, PlatformHooks};
use crate::records::{RuleTarget, Verdict};
use crate::rules::{
    read_list_file, AppDefaults, AppSettings, CheckResult, EmbargoLevel, ListFormat, ListInfo,
    LoadReport, RulesStore,
};
use crate::EmbargoError;

/// Counters and state of the tunnel, for a status screen.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TunnelStatus {
    /// Running, stopped, or failed.
    pub state: TunnelState,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// When it started (ms since the Unix epoch), while running.
    pub started_at_ms: Option<i64>,
    /// Packets read from the tunnel.
    pub packets_in: u64,
    /// Packets written to the tunnel.
    pub packets_out: u64,
    /// Payload bytes relayed from apps to servers.
    pub bytes_up: u64,
    /// Payload bytes relayed from servers to apps.
    pub bytes_down: u64,
    /// TCP connections open now.
    pub tcp_flows: u64,
    /// UDP flows open now.
    pub udp_flows: u64,
    /// Connections blocked since start.
    pub flows_blocked: u64,
    /// DNS questions blocked since start.
    pub dns_blocked: u64,
    /// DNS questions forwarded since start.
    pub dns_forwarded: u64,
    /// Memory the engine accounts for (bytes).
    pub memory_bytes: u64,
    /// Live events dropped because the app did not read them in time.
    pub events_dropped: u64,
    /// Whether the history's commits go through (`false`: they fail, e.g. storage full; the
    /// events are held in memory and retried). Show it: nothing else says history stopped.
    pub history_ok: bool,
    /// History events dropped since [`Embargo::new`] (the writer's queue or retry buffer was
    /// full).
    pub history_dropped: u64,
    /// The history's latest problem: the failing commit's error, or the damaged file moved
    /// aside when the history opened. Kept after writes resume.
    pub history_last_error: Option<String>,
}

/// Which part of a two-process app this object plays (iOS: the app and its packet tunnel
/// extension share one storage directory in the App Group container).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ProcessRole {
    /// One process does everything (Android, Linux): lists are compiled from their text.
    Single,
    /// The app of a two-process platform: changes lists and settings and writes the
    /// compiled rules ([`Embargo::compile_rules`]) for the extension. Opens the history
    /// read-only (SQLite `SQLITE_OPEN_READ_ONLY`, `query_only`; WAL): queries never block the
    /// extension's writes, and hiding rows or running the tunnel is refused here. Until the
    /// extension has created the history it reads as empty.
    App,
    /// The tunnel's process of a two-process platform (iOS's packet tunnel extension, killed
    /// past 50 MiB): maps the rules the app compiled (`rules.compiled` in the storage
    /// directory) and never parses a list; a missing, stale or foreign file is an error
    /// naming it. Lists cannot be changed here.
    Tunnel,
}

/// The history as this process uses it.
// One per `Embargo` object: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum HistoryStore {
    /// Written here, and read ([`ProcessRole::Single`], [`ProcessRole::Tunnel`]), with its
    /// health and latest problem for [`TunnelStatus`].
    Written {
        history: History,
        watch: embargo_app::HistoryWatch,
    },
    /// Only read, never blocking the other process that writes it ([`ProcessRole::App`]).
    Read(embargo_history::Reader),
}

impl HistoryStore {
    /// The history to write, or an error naming `what` could not be done here.
    fn written(&self, what: &str) -> Result<&History, EmbargoError> {
        match self {
            HistoryStore::Written { history, .. } => Ok(history),
            HistoryStore::Read(r) => Err(EmbargoError::State(format!(
                "cannot {what}: this process only reads the history ({}); the tunnel's \
                 process writes it",
                r.path().display()
            ))),
        }
    }

    fn query(&self, q: &embargo_history::Query) -> Result<embargo_history::Page, EmbargoError> {
        Ok(match self {
            HistoryStore::Written { history, .. } => history.query(q)?,
            HistoryStore::Read(r) => r.query(q)?,
        })
    }
}

/// A running tunnel.
struct Running {
    handle: DriverHandle,
    /// Joins the driver thread and reports how it ended.
    watcher: JoinHandle<()>,
    started_at_ms: i64,
}

/// Tunnel state shared with the watcher thread.
#[derive(Default)]
struct TunnelShared {
    state: Option<TunnelState>,
    error: Option<String>,
}

/// Embargo: rules, history, live events and the tunnel, behind one object.
///
/// Create one per process with [`Embargo::new`]; every method may be called from any thread.
/// Every method returns an [`EmbargoError`] instead of panicking (a panic inside becomes
/// [`EmbargoError::Internal`]).
#[derive(uniffi::Object)]
pub struct Embargo {
    /// The configuration: the one given at open, or the last [`Embargo::apply_settings`].
    pub(crate) config: Mutex<EmbargoConfig>,
    role: ProcessRole,
    storage_dir: PathBuf,
    rules: Mutex<RulesStore>,
    history: HistoryStore,
    pub(crate) bus: Arc<EventBus>,
    running: Mutex<Option<Running>>,
    shared: Arc<Mutex<TunnelShared>>,
}

impl Embargo {
    /// The running tunnel's driver handle.
    pub(crate) fn driver(&self) -> Result<DriverHandle, EmbargoError> {
        lock(&self.running)
            .as_ref()
            .map(|r| r.handle.clone())
            .ok_or_else(|| EmbargoError::State("the tunnel is not running".into()))
    }

    pub(crate) fn spawn(
        &self,
        tunnel: Tunnel,
        hooks: Arc<dyn PlatformHooks>,
    ) -> Result<(), EmbargoError> {
        let mut running = lock(&self.running);
        if let Some(r) = running.as_ref() {
            if !r.watcher.is_finished() {
                return Err(EmbargoError::State("the tunnel is already running".into()));
            }
        }
        if let Some(old) = running.take() {
            let _ = old.watcher.join();
        }
        let driver_hooks = Arc::new(DriverHooks {
            platform: hooks,
            bus: self.bus.clone(),
        });
        let (engine, driver) = lock(&self.config).engine_and_driver(true)?;
        let embargo_app::Started { handle, thread } = embargo_app::start(
            tunnel,
            driver_hooks,
            embargo_app::Config {
                engine,
                driver,
                policy: lock(&self.rules).handle(),
                history: Some(self.history.written("run the tunnel")?.recorder()),
            },
        )
        .map_err(|e| EmbargoError::Tunnel(format!("cannot start: {e}")))?;
        {
            let mut s = lock(&self.shared);
            s.state = Some(TunnelState::Running);
            s.error = None;
        }
        self.bus.push(LiveEvent::StateChanged {
            state: TunnelState::Running,
            message: None,
        });
        let shared = self.shared.clone();
        let bus = self.bus.clone();
        let watcher = std::thread::Builder::new()
            .name("embargo-watch".into())
            .spawn(move || {
                let (state, message) = match thread.join() {
                    Ok(Ok(())) => (TunnelState::Stopped, None),
                    Ok(Err(e)) => (TunnelState::Failed, Some(format!("tunnel failed: {e}"))),
                    Err(p) => (
                        TunnelState::Failed,
                        Some(format!(
                            "tunnel crashed: {}",
                            crate::error::panic_message(p.as_ref())
                        )),
                    ),
                };
                if let Some(m) = &message {
                    log::error!("{m}");
                }
                {
                    let mut s = lock(&shared);
                    s.state = Some(state);
                    s.error = message.clone();
                }
                bus.push(LiveEvent::StateChanged { state, message });
            })
            .map_err(|e| EmbargoError::Tunnel(format!("cannot start the watcher: {e}")))?;
        *running = Some(Running {
            handle,
            watcher,
            started_at_ms: embargo_history::now_ms(),
        });
        Ok(())
    }

    /// Records allowed connections from now on, or stops (where the history is written).
    pub(crate) fn set_record_allowed(&self, record_allowed: bool) {
        if let HistoryStore::Written { history, .. } = &self.history {
            history.recorder().set_record_allowed(record_allowed);
        }
    }

    pub(crate) fn with_rules<T>(
        &self,
        f: impl FnOnce(&mut RulesStore) -> Result<T, EmbargoError>,
    ) -> Result<T, EmbargoError> {
        guard(|| f(&mut lock(&self.rules)))
    }

    fn stop_inner(&self) -> Result<(), EmbargoError> {
        let taken = lock(&self.running).take();
        if let Some(r) = taken {
            r.handle.stop();
            r.watcher
                .join()
                .map_err(|_| EmbargoError::Internal("the tunnel watcher panicked".into()))?;
        }
        Ok(())
    }
}

#[uniffi::export]
impl Embargo {
    /// Opens Embargo with its state in `storage_dir`, a directory of its own (created 0700 if
    /// missing; one that other users can write is refused): the lists, app settings and
    /// allowlist (the layout of `embargo_app::store`, the same as the Linux `--state-dir`) and
    /// the history (`history.db`). Lists are compiled now, so this can take a moment with
    /// large lists: call it off the main thread.
    #[uniffi::constructor]
    pub fn new(config: EmbargoConfig, storage_dir: String) -> Result<Arc<Self>, EmbargoError> {
        Embargo::with_role(config, storage_dir, ProcessRole::Single)
    }

    /// [`Embargo::new`] for one `role` of a two-process app (iOS: [`ProcessRole::App`] in the
    /// app, [`ProcessRole::Tunnel`] in the packet tunnel extension).
    #[uniffi::constructor]
    pub fn with_role(
        config: EmbargoConfig,
        storage_dir: String,
        role: ProcessRole,
    ) -> Result<Arc<Self>, EmbargoError> {
        guard(|| {
            config.validate()?;
            let dir = PathBuf::from(&storage_dir);
            let store = Store::new(&dir);
            let history_db = store.history_db();
            let rules = match role {
                ProcessRole::Single | ProcessRole::App => {
                    RulesStore::open(store, config.use_builtin_rules)?
                }
                ProcessRole::Tunnel => RulesStore::open_mapped(store, config.use_builtin_rules)?,
            };
            let history = match role {
                ProcessRole::App => HistoryStore::Read(embargo_history::Reader::open(history_db)?),
                ProcessRole::Single | ProcessRole::Tunnel => {
                    let history = History::open(config.history(history_db))?;
                    HistoryStore::Written {
                        watch: embargo_app::HistoryWatch::new(&history),
                        history,
                    }
                }
            };
            let bus = Arc::new(EventBus::new(config.event_queue_capacity as usize));
            Ok(Arc::new(Embargo {
                config: Mutex::new(config),
                role,
                storage_dir: dir,
                rules: Mutex::new(rules),
                history,
                bus,
                running: Mutex::new(None),
                shared: Arc::new(Mutex::new(TunnelShared::default())),
            }))
        })
    }

    /// The storage directory given to [`Embargo::new`].
    pub fn storage_dir(&self) -> String {
        self.storage_dir.display().to_string()
    }

    /// The role given to [`Embargo::with_role`] ([`ProcessRole::Single`] for [`Embargo::new`]).
    pub fn role(&self) -> ProcessRole {
        self.role
    }

    // ---------------------------------------------------------------- tunnel

    /// Starts inspecting the tunnel whose descriptor is `tun_fd` (Android:
    /// `ParcelFileDescriptor.detachFd()`; iOS: the utun descriptor; Linux: an opened TUN).
    /// Embargo takes ownership of the descriptor and closes it on [`Embargo::stop`]. Packets
    /// never cross the FFI boundary.
    pub fn start(&self, tun_fd: i32, hooks: Arc<dyn PlatformHooks>) -> Result<(), EmbargoError> {
        guard(|| {
            // SAFETY: fcntl(F_GETFD) only queries the descriptor table.
            if tun_fd < 0 || unsafe { libc::fcntl(tun_fd, libc::F_GETFD) } < 0 {
                return Err(EmbargoError::InvalidInput(format!(
                    "{tun_fd} is not an open file descriptor"
                )));
            }
            // SAFETY: the descriptor is open (checked above) and the caller hands us
            // ownership (documented); it is closed exactly once, when the driver drops it.
            let fd = unsafe { OwnedFd::from_raw_fd(tun_fd) };
            self.spawn(Tunnel::Fd(fd), hooks)
        })
    }

    /// Starts in packet-interface mode, for platforms that give no descriptor: the app passes
    /// packets from the apps with [`Embargo::push_packet`], and Embargo writes packets for the
    /// apps to `sink`.
    pub fn start_with_packets(
        &self,
        sink: Arc<dyn PacketSink>,
        hooks: Arc<dyn PlatformHooks>,
    ) -> Result<(), EmbargoError> {
        guard(|| {
            let bus = self.bus.clone();
            let write = move |packet: &[u8]| {
                if let Err(e) = sink.write_packet(packet.to_vec()) {
                    log::warn!("packet sink failed: {e}");
                    bus.push(LiveEvent::Error {
                        message: format!("packet sink failed: {e}"),
                    });
                }
            };
            self.spawn(Tunnel::Packets(Box::new(write)), hooks)
        })
    }

    /// Packet-interface mode: one IP packet from the apps. `false` when the queue is full and
    /// the packet was dropped (as a full TUN queue drops it).
    pub fn push_packet(&self, packet: Vec<u8>) -> Result<bool, EmbargoError> {
        guard(|| {
            let running = lock(&self.running);
            let r = running
                .as_ref()
                .ok_or_else(|| EmbargoError::State("the tunnel is not running".into()))?;
            Ok(r.handle.push_packet(&packet))
        })
    }

    /// Stops the tunnel and waits until it has stopped (and closed the descriptor). Does
    /// nothing when it is not running.
    pub fn stop(&self) -> Result<(), EmbargoError> {
        guard(|| self.stop_inner())
    }

    /// State and counters of the tunnel.
    pub fn status(&self) -> Result<TunnelStatus, EmbargoError> {
        guard(|| {
            let (state, error) = {
                let s = lock(&self.shared);
                (s.state.unwrap_or(TunnelState::Stopped), s.error.clone())
            };
            let running = lock(&self.running);
            let (stats, started) = match running.as_ref() {
                Some(r) if state == TunnelState::Running => {
                    (r.handle.stats(), Some(r.started_at_ms))
                }
                _ => (embargo_driver::StatsSnapshot::default(), None),
            };
            let history = match &self.history {
                HistoryStore::Written { watch, .. } => watch.health(),
                // The writer's health is the tunnel's process's to report (its status).
                HistoryStore::Read(_) => embargo_app::HistoryHealth {
                    ok: true,
                    failing_since_ms: None,
                    committed: 0,
                    dropped: 0,
                    last_error: None,
                },
            };
            Ok(TunnelStatus {
                state,
                error,
                started_at_ms: started,
                packets_in: stats.driver.tun_packets_in,
                packets_out: stats.driver.tun_packets_out,
                bytes_up: stats.driver.bytes_up,
                bytes_down: stats.driver.bytes_down,
                tcp_flows: stats.engine.tcp_flows as u64,
                udp_flows: stats.engine.udp_flows as u64,
                flows_blocked: stats.engine.flows_blocked,
                dns_blocked: stats.engine.dns_blocked,
                dns_forwarded: stats.engine.dns_forwarded,
                memory_bytes: stats.engine.memory_bytes as u64,
                events_dropped: self.bus.dropped(),
                history_ok: history.ok,
                history_dropped: history.dropped,
                history_last_error: history.last_error,
            })
        })
    }

    // ---------------------------------------------------------------- live events

    /// Waits for the next live event (a Kotlin `suspend fun`, a Swift `async` function).
    /// Returns `None` after [`Embargo::shutdown`]. Cancelling the wait loses no event.
    pub async fn next_event(&self) -> Option<LiveEvent> {
        self.bus.next().await
    }

    /// The next live event if one is waiting, without waiting.
    pub fn try_next_event(&self) -> Option<LiveEvent> {
        self.bus.try_next()
    }

    /// Stops the tunnel, ends every [`Embargo::next_event`] wait and flushes the history.
    /// The object stays usable for rules and history; live events end for good (create a new
    /// object to get them again). (Not `close`: Kotlin's `AutoCloseable`
    /// `close()` on the generated class frees the Rust object itself.)
    pub fn shutdown(&self) -> Result<(), EmbargoError> {
        guard(|| {
            let stopped = self.stop_inner();
            self.bus.close();
            if let HistoryStore::Written { history, .. } = &self.history {
                history.flush()?;
            }
            stopped
        })
    }

    // ---------------------------------------------------------------- lists

    /// Adds a list from its bytes, or replaces the list of that name. `format` `None` guesses
    /// it from the name and the first bytes. The report counts accepted and skipped lines and
    /// gives the first errors with line numbers; lines in error are left out, the rest applies.
    #[uniffi::method(default(format = None))]
    pub fn set_list(
        &self,
        name: String,
        bytes: Vec<u8>,
        format: Option<ListFormat>,
    ) -> Result<LoadReport, EmbargoError> {
        self.with_rules(|r| r.set_list(&name, format, bytes))
    }

    /// [`Embargo::set_list`] from a file (e.g. a download in the app's cache).
    #[uniffi::method(default(format = None))]
    pub fn set_list_from_file(
        &self,
        name: String,
        path: String,
        format: Option<ListFormat>,
    ) -> Result<LoadReport, EmbargoError> {
        self.with_rules(|r| {
            let bytes = read_list_file(&path)?;
            r.set_list(&name, format, bytes)
        })
    }

    /// Removes a list; `false` when there was no list of that name.
    pub fn remove_list(&self, name: String) -> Result<bool, EmbargoError> {
        self.with_rules(|r| r.remove_list(&name))
    }

    /// Turns a list on or off, keeping it.
    pub fn set_list_enabled(&self, name: String, enabled: bool) -> Result<(), EmbargoError> {
        self.with_rules(|r| r.set_list_enabled(&name, enabled))
    }

    /// The lists added, in the order they are asked.
    pub fn lists(&self) -> Result<Vec<ListInfo>, EmbargoError> {
        self.with_rules(|r| r.lists())
    }

    // ---------------------------------------------------------------- apps

    /// Turns blocking on or off for one app.
    pub fn set_app_blocking(&self, app: String, enabled: bool) -> Result<(), EmbargoError> {
        self.with_rules(|r| {
            r.edit_apps(|a| {
                a.set_blocking(&nonempty_app(&app)?, enabled);
                Ok(())
            })
        })
    }

    /// Forgets an app's own blocking setting: it gets the default for its kind again.
    pub fn reset_app_blocking(&self, app: String) -> Result<(), EmbargoError> {
        self.with_rules(|r| {
            r.edit_apps(|a| {
                if let Some(s) = a.apps.get_mut(&app) {
                    s.blocking = None;
                }
                Ok(())
            })
        })
    }

    /// Marks an app as a system app (it then gets the system-app default).
    pub fn set_system_app(&self, app: String, system: bool) -> Result<(), EmbargoError> {
        self.with_rules(|r| {
            r.edit_apps(|a| {
                a.app_mut(&nonempty_app(&app)?).system = system;
                Ok(())
            })
        })
    }

    /// Allows or blocks a target for one app alone (replacing an override of the same
    /// target). Overrides beat every list and the global allowlist.
    pub fn set_app_override(
        &self,
        app: String,
        target: RuleTarget,
        verdict: Verdict,
    ) -> Result<(), EmbargoError> {
        self.with_rules(|r| {
            let target = target.to_core()?;
            let action = match verdict {
                Verdict::Allow => Action::Allow,
                Verdict::Block => Action::Block,
            };
            r.edit_apps(|a| {
                a.set_override(&nonempty_app(&app)?, target, action);
                Ok(())
            })
        })
    }

    /// Removes one app's override of `target`; `false` when it had none.
    pub fn remove_app_override(
        &self,
        app: String,
        target: RuleTarget,
    ) -> Result<bool, EmbargoError> {
        self.with_rules(|r| {
            let target = target.to_core()?;
            let mut removed = false;
            r.edit_apps(|a| {
                removed = a.remove_override(&app, &target);
                Ok(())
            })?;
            Ok(removed)
        })
    }

    /// The settings of one app (defaults when it has none).
    pub fn app_settings(&self, app: String) -> Result<AppSettings, EmbargoError> {
        self.with_rules(|r| r.app_settings(&app))
    }

    /// Every app with its own settings.
    pub fn apps(&self) -> Result<Vec<AppSettings>, EmbargoError> {
        self.with_rules(|r| {
            let ids: Vec<String> = r.apps()?.apps.keys().cloned().collect();
            ids.iter().map(|id| r.app_settings(id)).collect()
        })
    }

    /// How much of the embargoed companies the built-in list blocks (default telemetry).
    pub fn embargo_level(&self) -> Result<EmbargoLevel, EmbargoError> {
        self.with_rules(|r| r.embargo_level())
    }

    /// Sets the built-in list's level: applied at once, kept across restarts.
    pub fn set_embargo_level(&self, level: EmbargoLevel) -> Result<(), EmbargoError> {
        self.with_rules(|r| r.set_embargo_level(level))
    }

    /// Defaults for new apps and system apps.
    pub fn app_defaults(&self) -> Result<AppDefaults, EmbargoError> {
        self.with_rules(|r| {
            let apps = r.apps()?;
            Ok(AppDefaults {
                new_app_blocking: apps.new_app_blocking,
                system_app_blocking: apps.system_app_blocking,
            })
        })
    }

    /// Sets the defaults for new apps and system apps.
    pub fn set_app_defaults(&self, defaults: AppDefaults) -> Result<(), EmbargoError> {
        self.with_rules(|r| {
            r.edit_apps(|a| {
                a.new_app_blocking = defaults.new_app_blocking;
                a.system_app_blocking = defaults.system_app_blocking;
                Ok(())
            })
        })
    }

    // ---------------------------------------------------------------- allowlist

    /// The global allowlist (allowed for every app, over every list).
    pub fn allowlist(&self) -> Result<Vec<RuleTarget>, EmbargoError> {
        self.with_rules(|r| {
            Ok(r.apps()?
                .allowlist
                .iter()
                .map(RuleTarget::from_core)
                .collect())
        })
    }

    /// Adds a target to the global allowlist (no duplicate).
    pub fn allow(&self, target: RuleTarget) -> Result<(), EmbargoError> {
        self.with_rules(|r| {
            let t = target.to_core()?;
            r.edit_apps(|a| {
                if !a.allowlist.contains(&t) {
                    a.allowlist.push(t);
                }
                Ok(())
            })
        })
    }

    /// Removes a target from the global allowlist; `false` when it was not there.
    pub fn unallow(&self, target: RuleTarget) -> Result<bool, EmbargoError> {
        self.with_rules(|r| {
            let t = target.to_core()?;
            let mut removed = false;
            r.edit_apps(|a| {
                let before = a.allowlist.len();
                a.allowlist.retain(|x| *x != t);
                removed = a.allowlist.len() != before;
                Ok(())
            })?;
            Ok(removed)
        })
    }

    // ---------------------------------------------------------------- check

    /// What would happen to a host name or an IP address (for `app`, or for an unknown app),
    /// and why: verdict, the step and list line that decided, owner and country with their
    /// sources, and how sure the attribution is.
    #[uniffi::method(default(app = None))]
    pub fn check(&self, target: String, app: Option<String>) -> Result<CheckResult, EmbargoError> {
        self.with_rules(|r| r.check(&target, app.as_deref()))
    }

    // ---------------------------------------------------------------- history

    /// One page of history, newest first. Pass the page's `next` as `after` for the next one.
    pub fn history(&self, query: HistoryQuery) -> Result<HistoryPage, EmbargoError> {
        guard(|| {
            let page = self.history.query(&query.to_core()?)?;
            Ok(HistoryPage {
                records: page.records.into_iter().map(Into::into).collect(),
                next: page.next.map(|c| crate::history::HistoryCursor {
                    last_seen_ms: c.last_seen_ms,
                    id: c.id,
                }),
            })
        })
    }

    /// Blocked and allowed counts per day, app, owner or country.
    pub fn aggregate(&self, query: AggregateQuery) -> Result<Vec<AggregateRow>, EmbargoError> {
        guard(|| {
            let q = query.to_core();
            let rows = match &self.history {
                HistoryStore::Written { history, .. } => history.aggregate(&q)?,
                HistoryStore::Read(r) => r.aggregate(&q)?,
            };
            Ok(rows.into_iter().map(Into::into).collect())
        })
    }

    /// Hides an app's or a name's rows from history queries (kept; `include_hidden` shows them).
    pub fn hide(&self, entry: HiddenEntry) -> Result<(), EmbargoError> {
        guard(|| {
            Ok(self
                .history
                .written("hide history rows")?
                .hide(&entry.to_core())?)
        })
    }

    /// Shows them again; `false` when they were not hidden.
    pub fn unhide(&self, entry: HiddenEntry) -> Result<bool, EmbargoError> {
        guard(|| {
            Ok(self
                .history
                .written("unhide history rows")?
                .unhide(&entry.to_core())?)
        })
    }

    /// Everything hidden.
    pub fn hidden(&self) -> Result<Vec<HiddenEntry>, EmbargoError> {
        guard(|| {
            let hidden = match &self.history {
                HistoryStore::Written { history, .. } => history.hidden()?,
                HistoryStore::Read(r) => r.hidden()?,
            };
            Ok(hidden.into_iter().map(HiddenEntry::from_core).collect())
        })
    }

    /// Writes the rows of `query` (all pages; `limit` is the page size used while streaming)
    /// to the file at `path` (created or truncated). Returns the number of rows written.
    pub fn export_history(
        &self,
        query: HistoryQuery,
        format: ExportFormat,
        path: String,
    ) -> Result<u64, EmbargoError> {
        guard(|| {
            let q = query.to_core()?;
            let file = std::fs::File::create(&path)
                .map_err(|e| EmbargoError::Storage(format!("cannot create {path}: {e}")))?;
            let mut out = std::io::BufWriter::new(file);
            let rows = match &self.history {
                HistoryStore::Written { history, .. } => {
                    history.export(&q, format.to_core(), &mut out)?
                }
                HistoryStore::Read(r) => r.export(&q, format.to_core(), &mut out)?,
            };
            std::io::Write::flush(&mut out)
                .map_err(|e| EmbargoError::Storage(format!("cannot write {path}: {e}")))?;
            Ok(rows)
        })
    }

    /// [`Embargo::export_history`] into memory (for sharing a small export directly).
    pub fn export_history_bytes(
        &self,
        query: HistoryQuery,
        format: ExportFormat,
    ) -> Result<Vec<u8>, EmbargoError> {
        guard(|| {
            let q = query.to_core()?;
            let mut out = Vec::new();
            match &self.history {
                HistoryStore::Written { history, .. } => {
                    history.export(&q, format.to_core(), &mut out)?
                }
                HistoryStore::Read(r) => r.export(&q, format.to_core(), &mut out)?,
            };
            Ok(out)
        })
    }

    /// Size and state of the history store.
    pub fn history_stats(&self) -> Result<HistoryStats, EmbargoError> {
        guard(|| {
            Ok(match &self.history {
                HistoryStore::Written { history, .. } => history.stats()?,
                HistoryStore::Read(r) => r.stats()?,
            }
            .into())
        })
    }

    /// Commits every queued history event now (they are otherwise committed within 100 ms).
    /// Nothing to do where the history is only read ([`ProcessRole::App`]).
    pub fn flush_history(&self) -> Result<(), EmbargoError> {
        guard(|| match &self.history {
            HistoryStore::Written { history, .. } => Ok(history.flush()?),
            HistoryStore::Read(_) => Ok(()),
        })
    }

    // ---------------------------------------------------------------- diagnostics

    /// Calls each platform hook once (`app_owner` for a sample flow, `protect` on a fresh UDP
    /// socket) and reports the first failure, so an app can test its integration at setup.
    pub fn check_hooks(&self, hooks: Arc<dyn PlatformHooks>) -> Result<(), EmbargoError> {
        guard(|| {
            hooks
                .app_of_flow(
                    crate::records::Protocol::Tcp,
                    "127.0.0.1:40000".into(),
                    "127.0.0.1:443".into(),
                )
                .map_err(|e| EmbargoError::Hook(format!("app_owner: {e}")))?;
            let sock = std::net::UdpSocket::bind("127.0.0.1:0")
                .map_err(|e| EmbargoError::Hook(format!("cannot open a test socket: {e}")))?;
            use std::os::fd::AsRawFd;
            hooks
                .protect(sock.as_raw_fd())
                .map_err(|e| EmbargoError::Hook(format!("protect: {e}")))
        })
    }

    /// Diagnostics: panics inside the API on purpose. The caller must get
    /// [`EmbargoError::Internal`] and the process must keep running; the bindings' test
    /// suites call it to prove that no panic crosses the boundary.
    pub fn debug_panic(&self) -> Result<(), EmbargoError> {
        guard(|| {
            let _held = lock(&self.rules);
            panic!("debug_panic: a deliberate panic inside the Embargo API")
        })
    }
}

impl Drop for Embargo {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

fn nonempty_app(app: &str) -> Result<String, EmbargoError> {
    let a = app.trim();
    if a.is_empty() {
        return Err(EmbargoError::InvalidInput("empty app id".into()));
    }
    Ok(a.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::NoHooks;
    use crate::hooks::PacketSink;
    use crate::HookError;
    use std::sync::mpsc;
    use std::time::Duration;

    struct ChannelSink(Mutex<mpsc::Sender<Vec<u8>>>);
    impl PacketSink for ChannelSink {
        fn write_packet(&self, packet: Vec<u8>) -> Result<(), HookError> {
            let _ = lock(&self.0).send(packet);
            Ok(())
        }
    }

    /// An IPv4/UDP DNS A question for `name` from 10.111.0.2:40000 to 10.111.0.1:53.
    fn dns_packet(name: &str) -> Vec<u8> {
        crate::engine_harness::udp(
            "10.111.0.2:40000".parse().unwrap(),
            "10.111.0.1:53".parse().unwrap(),
            &crate::engine_harness::dns_query(0x1234, name, 1),
        )
    }

    #[test]
    fn packet_mode_blocks_a_dns_question_and_reports_it_everywhere() {
        let dir = tempfile::tempdir().unwrap();
        let e = Embargo::new(EmbargoConfig::default(), dir.path().display().to_string()).unwrap();
        let (tx, rx) = mpsc::channel();
        e.start_with_packets(Arc::new(ChannelSink(Mutex::new(tx))), Arc::new(NoHooks))
            .unwrap();
        assert!(matches!(
            e.start_with_packets(
                Arc::new(ChannelSink(Mutex::new(mpsc::channel().0))),
                Arc::new(NoHooks)
            ),
            Err(EmbargoError::State(_))
        ));
        assert!(e.push_packet(dns_packet("log-va.tiktokv.com")).unwrap());
        let answer = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(answer[9], 17, "a UDP answer");
        let mut decision = None;
        for _ in 0..500 {
            match e.try_next_event() {
                Some(LiveEvent::Decision { event }) => {
                    decision = Some(event);
                    break;
                }
                Some(_) => {}
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        let d = decision.expect("a decision event");
        assert_eq!(d.name.as_deref(), Some("log-va.tiktokv.com"));
        assert_eq!(d.decision.verdict, Verdict::Block);
        e.stop().unwrap();
        assert_eq!(e.status().unwrap().state, TunnelState::Stopped);
        e.flush_history().unwrap();
        let page = e
            .history(HistoryQuery {
                name_prefix: Some("log-va".into()),
                ..HistoryQuery::default()
            })
            .unwrap();
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.records[0].list.as_deref(), Some("builtin"));
    }

    /// The status carries the history's health, including a damaged history set aside at
    /// open (otherwise only a log line the app may not show).
    #[test]
    fn status_reports_the_history_health() {
        let dir = tempfile::tempdir().unwrap();
        let e = Embargo::new(EmbargoConfig::default(), dir.path().display().to_string()).unwrap();
        let s = e.status().unwrap();
        assert!(s.history_ok);
        assert_eq!(s.history_dropped, 0);
        assert_eq!(s.history_last_error, None);
        drop(e);
        let db = dir.path().join("history.db");
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        std::fs::write(&db, b"not a database ".repeat(500)).unwrap();
        let e = Embargo::new(EmbargoConfig::default(), dir.path().display().to_string()).unwrap();
        let s = e.status().unwrap();
        assert!(s.history_ok);
        let problem = s.history_last_error.expect("the damaged file is reported");
        assert!(
            problem.contains("moved to") && problem.contains("history.db.corrupt-"),
            "{problem}"
        );
    }

    #[test]
    fn errors_instead_of_panics() {
        let dir = tempfile::tempdir().unwrap();
        let e = Embargo::new(EmbargoConfig::default(), dir.path().display().to_string()).unwrap();
        assert!(matches!(e.debug_panic(), Err(EmbargoError::Internal(_))));
        assert!(e.check("log.tiktokv.com".into(), None).unwrap().verdict == Verdict::Block);
        assert!(matches!(
            e.push_packet(vec![0; 20]),
            Err(EmbargoError::State(_))
        ));
        assert!(matches!(
            e.start(-1, Arc::new(NoHooks)),
            Err(EmbargoError::InvalidInput(_))
        ));
        let bad = EmbargoConfig {
            mtu: 10,
            ..EmbargoConfig::default()
        };
        assert!(matches!(
            Embargo::new(bad, dir.path().display().to_string()),
            Err(EmbargoError::InvalidInput(_))
        ));
    }
}
