//! The management side of a running `embargo run`, ready to plug in: builds the policy from
//! the state directory (lists added with `embargo lists add`, per-app settings and pauses),
//! swaps it in atomically on every control-socket reload, and answers status and apps-seen.
//!
//! `embargo run` wires it in a few lines:
//!
//! ```ignore
//! let state = StateDir::new(&args.state_dir);
//! let base = Arc::new(with_ip_databases(&Policy::builtin() /* or --rules */, &args.asn_db)?);
//! let handle = Arc::new(PolicyHandle::new(base.clone()));
//! let control = Arc::new(RunControl::new(state.clone(), handle.clone(), base, None, "netns phone"));
//! control.reload()?;                                  // apps.json, pauses.json, lists.json
//! control::Server::bind(&state)?.spawn(control.clone())?;
//! // in Hooks::on_event, per decision:  control.live().record(d.app.as_deref(), blocked)
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use embargo_policy::parse::{parse_bytes, Format};
use embargo_policy::{IpDb, Policy, PolicyHandle, RuleSet, RuleSetBuilder};

use crate::commands::check::{report_list, ListHealth};
use crate::control::{AppSeen, Handler, HistoryHealth, Limits, Live, ReloadReport, Status};
use crate::state::{now_ms, DefaultRules, StateDir};

/// A source of extra counters for `embargo status` (driver and engine statistics).
pub type Counters = Box<dyn Fn() -> BTreeMap<String, u64> + Send + Sync>;

/// A source of the history's health for `embargo status`.
pub type HistorySource = Box<dyn Fn() -> HistoryHealth + Send + Sync>;

/// The control-socket handler of a running instance.
pub struct RunControl {
    state: StateDir,
    handle: Arc<PolicyHandle>,
    /// Rules from the command line (`--list`, `--rules`) and the IP databases: what every
    /// rebuilt policy has besides the built-in default and the state's lists.
    base: Arc<Policy>,
    /// `--embargo` / `--no-default` of this run; `None`: `settings.json` decides.
    default_flag: Option<DefaultRules>,
    live: Arc<Live>,
    mode: String,
    counters: Mutex<Option<Counters>>,
    history: Mutex<Option<HistorySource>>,
    limits: Mutex<Option<Limits>>,
    /// Lists already compiled, so that a reload for an app change does not parse every list
    /// again (a 20 MB blocklist takes seconds): reused while file, size, mtime and format
    /// are unchanged.
    compiled: Mutex<HashMap<String, CompiledList>>,
}

/// A compiled list and what it was compiled from.
pub struct CompiledList {
    path: PathBuf,
    len: u64,
    modified: Option<std::time::SystemTime>,
    format: Option<String>,
    set: Arc<RuleSet>,
}

impl RunControl {
    /// `mode` says what is protected (`netns phone`, `tun tun0`), for `embargo status`.
    pub fn new(
        state: StateDir,
        handle: Arc<PolicyHandle>,
        base: Arc<Policy>,
        default_flag: Option<DefaultRules>,
        mode: impl Into<String>,
    ) -> Self {
        RunControl {
            state,
            handle,
            base,
            default_flag,
            live: Arc::new(Live::default()),
            mode: mode.into(),
            counters: Mutex::new(None),
            history: Mutex::new(None),
            limits: Mutex::new(None),
            compiled: Mutex::new(HashMap::new()),
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

    /// The policy the state directory asks for now (see [`assemble`]).
    pub fn build_policy(&self) -> Result<(Policy, ReloadReport)> {
        let mut compiled = self
            .compiled
            .lock()
            .map_err(|_| anyhow::anyhow!("list cache poisoned"))?;
        assemble(&self.state, &self.base, self.default_flag, &mut compiled)
    }
}

/// The policy an instance with this state directory enforces: the built-in default at the
/// level `default_flag` or `settings.json` says (none when off), then the command line's rule
/// sets (`base`), then every list of `lists.json`, with the effective per-app settings. A list
/// that fails to load is left out and named in the report; the rest still apply. `embargo run`
/// and `embargo check` both decide with this, so `check` answers what `run` does.
pub fn assemble(
    state: &StateDir,
    base: &Policy,
    default_flag: Option<DefaultRules>,
    compiled: &mut HashMap<String, CompiledList>,
) -> Result<(Policy, ReloadReport)> {
    let mut report = ReloadReport::default();
    let default = match default_flag {
        Some(d) => d,
        None => state.load_settings()?.default_rules,
    };
    let mut sets = default
        .level()
        .map(embargo_policy::builtin_rule_sets)
        .unwrap_or_default();
    sets.extend(base.rules().iter().cloned());
    report
        .notes
        .push(format!("built-in default: {}", default.name()));
    let lists = state.load_lists()?.lists;
    compiled.retain(|name, _| lists.iter().any(|l| &l.name == name));
    for entry in lists {
        let path = state.list_path(&entry);
        let meta = std::fs::metadata(&path).ok();
        let (len, modified) = (
            meta.as_ref().map_or(0, |m| m.len()),
            meta.as_ref().and_then(|m| m.modified().ok()),
        );
        if let Some(c) = compiled.get(&entry.name) {
            if c.path == path && c.len == len && c.modified == modified && c.format == entry.format
            {
                sets.push(Arc::clone(&c.set));
                continue;
            }
        }
        let loaded = (|| -> Result<_> {
            let bytes = crate::input::read(&path, "list")?;
            let format = match &entry.format {
                Some(f) => Format::from_name(f),
                None => Format::detect(&entry.name, &bytes[..bytes.len().min(16 * 1024)]),
            }
            .with_context(|| format!("{}: unknown format", entry.name))?;
            let mut builder = RuleSetBuilder::new().with_intent(format.intent());
            let load = parse_bytes(format, &entry.name, &bytes, &mut |rule| builder.add(rule));
            let binary = crate::commands::check::bytes_look_binary(&bytes);
            if let ListHealth::Unusable(why) = report_list(&load, binary) {
                return Ok(Err(format!(
                    "list {} ({}): {why}",
                    entry.name,
                    path.display()
                )));
            }
            crate::commands::check::ensure_rules(&entry.name, format, &load, &bytes)?;
            Ok(Ok(builder.build()))
        })();
        match loaded {
            Ok(Err(unusable)) => {
                report.notes.push(format!("{unusable}; left out"));
                report.unusable.push(unusable);
            }
            Ok(Ok(set)) => {
                let set = Arc::new(set);
                compiled.insert(
                    entry.name.clone(),
                    CompiledList {
                        path,
                        len,
                        modified,
                        format: entry.format.clone(),
                        set: Arc::clone(&set),
                    },
                );
                sets.push(set);
            }
            Err(e) => report
                .notes
                .push(format!("list {} left out: {e:#}", entry.name)),
        }
    }
    report.rules = sets
        .iter()
        .map(|s| s.name_count() + s.counts().iter().sum::<usize>() as u64)
        .sum();
    let apps = state.effective_app_rules(now_ms())?;
    report.apps_with_settings = apps.apps.len() as u64;
    let policy = Policy::new(sets, Arc::clone(base.ipdb()), apps);
    Ok((policy, report))
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
            state_dir: self.state.root().display().to_string(),
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
        let (policy, report) = self.build_policy().map_err(|e| format!("{e:#}"))?;
        self.handle.store(Arc::new(policy));
        Ok(report)
    }
}

/// Most threads that ever allocate get their own glibc arena (up to 8 per core). `embargo run`
/// has a handful (driver loop, history writer, control server, app lookups): each arena keeps
/// its own free lists and high-water mark, and memory freed in one cannot serve another. Two
/// arenas keep the driver loop, which does nearly all the allocating, off the others' lock.
const MALLOC_ARENAS: libc::c_int = 2;

/// Allocations from this size up get their own mapping instead of arena memory. The large TCP
/// rings (`tcp_large_rx`/`tx`, 64 KiB) are zero-allocated (`vec![0; n]`): from an arena,
/// `calloc` clears all 64 KiB and makes them resident at once, although a flow that moves a
/// few KB (wrk's small requests, most app flows) only ever touches a page or two of its ring;
/// from a fresh mapping the kernel's zero pages need no clearing, and only the pages a flow
/// writes count. It also gives such a ring's memory back to the system when the flow ends,
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

/// `base` with IP databases loaded from `files` (ip-location-db `start,end,asn,org` or
/// `start,end,CC` CSVs, iptoasn TSV; plain or gzip) asked first, then base's own.
pub fn with_ip_databases(base: &Policy, files: &[PathBuf]) -> Result<Policy> {
    if files.is_empty() {
        return Ok(base.clone_shallow());
    }
    let mut db = IpDb::new();
    for file in files {
        let bytes = crate::input::read_database(file, "IP database")?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.display().to_string());
        let report = db.load_bytes(&name, None, &bytes);
        if report.accepted == 0 {
            let first = report
                .errors
                .first()
                .map(|e| e.to_string())
                .unwrap_or_default();
            anyhow::bail!("{}: no usable row ({first})", file.display());
        }
    }
    db.extend_from(base.ipdb());
    Ok(Policy::new(base.rules().to_vec(), db, base.apps().clone()))
}

/// A cheap copy of a policy (shares rule sets and databases).
trait CloneShallow {
    fn clone_shallow(&self) -> Policy;
}

impl CloneShallow for Policy {
    fn clone_shallow(&self) -> Policy {
        self.with_apps(self.apps().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Handler;
    use crate::state::{ListCounts, ListEntry, ListSource, ListsConfig, Pause};
    use embargo_policy::{Query, Verdict};

    fn temp() -> (PathBuf, StateDir) {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "embargo-runtime-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        (dir.clone(), StateDir::new(dir.join("state")))
    }

    fn verdict(handle: &PolicyHandle, app: &str, name: &str) -> Verdict {
        handle
            .load()
            .decide(&Query::name(name).with_app(app))
            .verdict
    }

    #[test]
    fn reload_applies_lists_and_app_settings_atomically() {
        let (dir, state) = temp();
        let list = dir.join("test.rules");
        std::fs::write(&list, "tracker.test\n").unwrap();
        state
            .save_lists(&ListsConfig {
                lists: vec![ListEntry {
                    name: "test.rules".into(),
                    source: ListSource::File(list),
                    format: Some("embargo".into()),
                    added_ms: 0,
                    updated_ms: 0,
                    counts: ListCounts::default(),
                }],
            })
            .unwrap();
        let base = Arc::new(Policy::new(vec![], IpDb::new(), Default::default()));
        let handle = Arc::new(PolicyHandle::new(base.clone()));
        let control = RunControl::new(state.clone(), handle.clone(), base, None, "test");
        assert_eq!(
            verdict(&handle, "/bin/a", "pixel.tracker.test"),
            Verdict::Allow
        );
        let report = control.reload().unwrap();
        assert!(report.rules >= 1, "{report:?}");
        assert_eq!(
            verdict(&handle, "/bin/a", "pixel.tracker.test"),
            Verdict::Block
        );

        // blocking off for one app, paused for another
        let mut rules = state.load_app_rules().unwrap();
        rules.set_blocking("/bin/b", false);
        state.save_app_rules(&rules).unwrap();
        let mut pauses = BTreeMap::new();
        pauses.insert(
            "/bin/c".to_string(),
            Pause {
                until_ms: now_ms() + 60_000,
            },
        );
        state.save_pauses(&pauses).unwrap();
        control.reload().unwrap();
        assert_eq!(
            verdict(&handle, "/bin/a", "pixel.tracker.test"),
            Verdict::Block
        );
        assert_eq!(
            verdict(&handle, "/bin/b", "pixel.tracker.test"),
            Verdict::Allow
        );
        assert_eq!(
            verdict(&handle, "/bin/c", "pixel.tracker.test"),
            Verdict::Allow
        );

        // an unchanged list is not compiled again; a changed one is
        let before = Arc::clone(handle.load().rules().last().unwrap());
        control.reload().unwrap();
        assert!(Arc::ptr_eq(&before, handle.load().rules().last().unwrap()));
        std::fs::write(dir.join("test.rules"), "tracker.test\nother.test\n").unwrap();
        control.reload().unwrap();
        assert!(!Arc::ptr_eq(&before, handle.load().rules().last().unwrap()));
        assert_eq!(verdict(&handle, "/bin/a", "x.other.test"), Verdict::Block);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn asn_database_fixture_makes_an_asn_rule_match() {
        let (dir, _state) = temp();
        let db = dir.join("asn.csv");
        std::fs::write(
            &db,
            "10.231.66.0,10.231.66.255,45090,\"Shenzhen Tencent Computer Systems Company Limited\"\n",
        )
        .unwrap();
        let mut builder = RuleSetBuilder::new();
        parse_bytes(Format::Embargo, "t.rules", b"AS45090\n", &mut |r| {
            builder.add(r)
        });
        let base = Policy::new(
            vec![Arc::new(builder.build())],
            IpDb::new(),
            Default::default(),
        );
        let policy = with_ip_databases(&base, &[db]).unwrap();
        let d = policy.decide(&Query::addr("10.231.66.1".parse().unwrap()));
        assert_eq!(d.verdict, Verdict::Block, "{d:?}");
        assert!(
            policy
                .decide(&Query::addr("10.231.67.1".parse().unwrap()))
                .verdict
                == Verdict::Allow
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
