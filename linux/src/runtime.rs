//! The management side of a running `embargo run`: the control-socket handler over the rules
//! in force ([`embargo_app::Rules`]: lists added with `embargo lists add`, per-app settings and
//! pauses, rebuilt and swapped in on every control-socket reload), answering status and
//! apps-seen; and the process tuning of a long-running tunnel.
//!
//! `embargo run` wires it in a few lines:
//!
//! ```ignore
//! let base = Arc::new(with_ip_databases(&cli_sets, &args.asn_dbs, &args.country_dbs)?);
//! let rules = Rules::new(Store::new(&args.state_dir), base, None);
//! let control = Arc::new(RunControl::new(rules, "netns phone"));
//! Handler::reload(&*control)?;                        // apps.json, pauses.json, lists.json
//! control::Server::bind(&store)?.spawn(control.clone())?;
//! embargo_app::start(tunnel, hooks, Config { policy: control.handle(), .. })?;
//! // in Hooks::on_event, per decision:  control.live().record(d.app.as_deref(), blocked)
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use embargo_app::{ReloadReport, Rules};
use embargo_policy::PolicyHandle;

use crate::control::{AppSeen, Handler, HistoryHealth, Limits, Live, Status};

/// A source of extra counters for `embargo status` (driver and engine statistics).
pub type Counters = Box<dyn Fn() -> BTreeMap<String, u64> + Send + Sync>;

/// A source of the history's health for `embargo status`.
pub type HistorySource = Box<dyn Fn() -> HistoryHealth + Send + Sync>;

/// The control-socket handler of a running instance.
pub struct RunControl {
    /// The state directory's rules, over the command line's (`--list`, `--rules`) and IP
    /// databases, at the level `--embargo` / `--no-default` says.
    rules: Rules,
    live: Arc<Live>,
    mode: String,
    counters: Mutex<Option<Counters>>,
    history: Mutex<Option<HistorySource>>,
    limits: Mutex<Option<Limits>>,
}

impl RunControl {
    /// `mode` says what is protected (`netns phone`, `tun tun0`), for `embargo status`.
    pub fn new(rules: Rules, mode: impl Into<String>) -> Self {
        RunControl {
            rules,
            live: Arc::new(Live::default()),
            mode: mode.into(),
            counters: Mutex::new(None),
            history: Mutex::new(None),
            limits: Mutex::new(None),
        }
    }

    /// Where decisions are counted for `status` and `apps`.
    pub fn live(&self) -> Arc<Live> {
        Arc::clone(&self.live)
    }

    /// Adds extra counters to `embargo status` (e.g. from `DriverHandle::stats`).
    pub fn set_counters(&self, counters: Counters) {
        if let Ok(mut c) = self.counters.lock() {
            *c = Some(counters);
        }
    }

    /// Where `embargo status` reads the history's health from.
    pub fn set_history(&self, source: HistorySource) {
        if let Ok(mut h) = self.history.lock() {
            *h = Some(source);
        }
    }

    /// The open-file limits and flow cap `embargo status` reports.
    pub fn set_limits(&self, limits: Limits) {
        if let Ok(mut l) = self.limits.lock() {
            *l = Some(limits);
        }
    }

    /// The handle the engine decides through.
    pub fn handle(&self) -> Arc<PolicyHandle> {
        self.rules.handle()
    }
}

impl Handler for RunControl {
    fn status(&self) -> Status {
        let (allowed, blocked) = self.live.totals();
        let counters = self
            .counters
            .lock()
            .ok()
            .and_then(|c| c.as_ref().map(|f| f()))
            .unwrap_or_default();
        Status {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_ms: self.live.started_ms,
            mode: self.mode.clone(),
            state_dir: self.rules.store().root().display().to_string(),
            allowed,
            blocked,
            apps_seen: self.live.apps().len() as u64,
            counters,
            history: self
                .history
                .lock()
                .ok()
                .and_then(|h| h.as_ref().map(|f| f())),
            limits: self.limits.lock().ok().and_then(|l| l.clone()),
        }
    }

    fn apps_seen(&self) -> Vec<AppSeen> {
        self.live.apps()
    }

    fn reload(&self) -> std::result::Result<ReloadReport, String> {
        self.rules.reload().map_err(|e| format!("{e:#}"))
    }
}

/// Most threads that ever allocate get their own glibc arena (up to 8 per core). `embargo run`
/// has a handful (driver loop, history writer, control server, app lookups): each arena keeps
/// its own free lists and high-water mark, and memory freed in one cannot serve another. Two
/// arenas keep the driver loop, which does nearly all the allocating, off the others' lock.
const MALLOC_ARENAS: libc::c_int = 2;

/// Allocations from this size up get their own mapping instead of arena memory. A busy flow's
/// grown TCP rings (up to `tcp_max_rx`/`tx`, 256 KiB) are zero-allocated (`vec![0; n]`): from
/// an arena, `calloc` clears them and makes them resident at once, although a flow may stop
/// short of filling them; from a fresh mapping the kernel's zero pages need no clearing, and
/// only the pages a flow writes count. It also gives such a ring's memory back to the system when the flow ends,
/// instead of leaving a hole in an arena. Fixing the value turns off glibc's dynamic threshold,
/// which after the first large free would move every later ring back into the arena.
const MALLOC_MMAP_THRESHOLD: libc::c_int = 64 * 1024;

/// Sets glibc's allocator up for a long-running tunnel (see [`MALLOC_ARENAS`] and
/// [`MALLOC_MMAP_THRESHOLD`]): call it first thing, before any thread starts. Measured in the
/// netns bench (wrk -c1000): see README "Memory".
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread
    // exists, and glibc takes its own lock for it anyway.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD);
    }
}

/// Events queued between the driver and the history writer. The history's default (65,536)
/// is sized for its own throughput benchmark; std's bounded channel writes every slot when it
/// is made (2 MiB resident from the start), and a flood fills it with events that each hold
/// their strings. 8,192 is still ~0.2 s of the netns bench's DNS flood (46k forwarded
/// questions a second, each a decision), far beyond what a phone's apps produce; beyond it
/// events are counted as dropped, never waited for.
const HISTORY_QUEUE: usize = 8_192;

/// Most events per history transaction. The default 16,384 keeps a 3.8 MiB batch vector
/// after the first flood (a `Vec` keeps its capacity); 2,048 events (~0.5 MiB) still commit
/// a flood in batches of a few milliseconds each, and a phone's events never fill one in the
/// 200 ms flush interval.
const HISTORY_BATCH: usize = 2_048;

/// Events kept while history writes fail (disk full): the default 100,000 would be ~25 MiB.
const HISTORY_RETRY: usize = 8_192;

/// The history configuration of `embargo run`: the store's defaults with queues sized for a
/// lean process (see [`HISTORY_QUEUE`], [`HISTORY_BATCH`], [`HISTORY_RETRY`]).
pub fn history_config(path: impl Into<PathBuf>) -> embargo_history::Config {
    let mut config = embargo_history::Config::new(path);
    config.queue_capacity = HISTORY_QUEUE;
    config.batch_max = HISTORY_BATCH;
    config.retry_capacity = HISTORY_RETRY;
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use embargo_app::store::{ListEntry, ListSource, ListsConfig, Store};
    use embargo_policy::{IpDb, Policy, Query, Verdict};

    /// The control socket's reload reaches the engine's handle through `embargo_app::Rules`.
    #[test]
    fn a_reload_through_the_handler_puts_the_state_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state"));
        let list = dir.path().join("test.rules");
        std::fs::write(&list, "tracker.test\n").unwrap();
        store
            .save_lists(&ListsConfig {
                lists: vec![ListEntry::new("test.rules", ListSource::File(list), None)],
            })
            .unwrap();
        let base = Arc::new(Policy::new(vec![], IpDb::new(), Default::default()));
        let control = RunControl::new(Rules::new(store.clone(), base, None), "test");
        let verdict = || {
            control
                .handle()
                .load()
                .decide(&Query::name("a.tracker.test"))
                .verdict
        };
        assert_eq!(verdict(), Verdict::Allow);
        let report = Handler::reload(&control).unwrap();
        assert!(report.rules >= 1, "{report:?}");
        assert_eq!(verdict(), Verdict::Block);
        assert_eq!(
            control.status().state_dir,
            store.root().display().to_string()
        );
    }
}
