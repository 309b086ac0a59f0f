//! Policy assembly: the policy a state directory asks for, built once here for every shell, and
//! [`Rules`], which keeps it in force while traffic flows. Every change of settings or lists
//! (the Linux control socket's reload, the FFI's setters) goes through [`Rules`], which
//! rebuilds the policy off the packet path and swaps it into the [`PolicyHandle`] the running
//! engine decides through: a change applies to the next decision.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{bail, Context, Result};
use embargo_policy::parse::Format;
use embargo_policy::{AppRules, IpDb, IpDbFormat, LoadReport, Policy, PolicyHandle, RuleSet};
use serde::{Deserialize, Serialize};

use crate::list::{ensure_rules, judge, load_list, looks_binary, ListHealth, LoadedList};
use crate::store::{now_ms, DefaultRules, ListEntry, ListSource, Store};

/// What an assembly (a reload) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Rules in the new policy.
    pub rules: u64,
    /// Apps with their own settings.
    pub apps_with_settings: u64,
    /// Human-readable notes (lists that failed to load, and why).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Lists left out because nothing in them is usable (all errors, or binary): a running
    /// instance goes on without them; `run` refuses to start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unusable: Vec<String>,
}

/// A compiled list and what it was compiled from.
pub struct CompiledList {
    path: PathBuf,
    len: u64,
    modified: Option<std::time::SystemTime>,
    format: Option<String>,
    set: Arc<RuleSet>,
}

/// Lists already compiled, by name, so that a reload for an app change does not parse every
/// list again (a 20 MB blocklist takes seconds): reused while file, size, mtime and format
/// are unchanged.
pub type CompiledLists = HashMap<String, CompiledList>;

/// The policy an instance with this state directory enforces: the built-in default at the
/// level `default_flag` or `settings.json` says (none when off), then `base`'s rule sets (the
/// Linux command line's `--list`/`--rules`), then every enabled list of `lists.json`, with the
/// effective per-app settings (pauses applied) and `base`'s IP databases. A list that fails to
/// load is left out and named in the report; the rest still apply. The Linux `run` and
/// `check` and the FFI all decide with this, so `check` answers what `run` does.
pub fn assemble(
    store: &Store,
    base: &Policy,
    default_flag: Option<DefaultRules>,
    compiled: &mut CompiledLists,
) -> Result<(Policy, ReloadReport)> {
    let mut report = ReloadReport::default();
    let default = match default_flag {
        Some(d) => d,
        None => store.load_settings()?.default_rules,
    };
    let mut sets = default
        .level()
        .map(embargo_policy::builtin_rule_sets)
        .unwrap_or_default();
    sets.extend(base.rules().iter().cloned());
    report
        .notes
        .push(format!("built-in default: {}", default.name()));
    let lists: Vec<ListEntry> = store
        .load_lists()?
        .lists
        .into_iter()
        .filter(|l| l.enabled)
        .collect();
    compiled.retain(|name, _| lists.iter().any(|l| &l.name == name));
    for entry in lists {
        let path = store.list_path(&entry);
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
                Some(f) => Some(
                    Format::from_name(f)
                        .with_context(|| format!("{}: unknown format {f}", entry.name))?,
                ),
                None => None,
            };
            let loaded = load_list(&entry.name, &bytes, format)?;
            if let ListHealth::Unusable(why) = judge(&loaded.report, looks_binary(&bytes)) {
                return Ok(Err(format!(
                    "list {} ({}): {why}",
                    entry.name,
                    path.display()
                )));
            }
            ensure_rules(&entry.name, loaded.format, &loaded.report, &bytes)?;
            Ok(Ok(loaded.set))
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
    let apps = store.effective_app_rules(now_ms())?;
    report.apps_with_settings = apps.apps.len() as u64;
    let policy = Policy::new(sets, Arc::clone(base.ipdb()), apps);
    Ok((policy, report))
}

/// The rules in force: the store, what every assembled policy has besides it (`base`), the
/// compiled lists, and the handle the running engine decides through.
pub struct Rules {
    store: Store,
    base: Arc<Policy>,
    /// `None`: `settings.json` decides the built-in default's level; `Some`: this run's
    /// override (the Linux `--embargo`/`--no-default`, the FFI's `use_builtin_rules: false`).
    default_flag: Option<DefaultRules>,
    compiled: Mutex<CompiledLists>,
    /// Where rule sets come from: the lists' text, or a file another process compiled.
    source: Source,
    handle: Arc<PolicyHandle>,
}

/// Where [`Rules`] takes its rule sets from.
enum Source {
    /// The lists themselves, compiled here (cached in `Rules::compiled`).
    Lists,
    /// `rules.compiled`, mapped (the last mapping kept while the file is not replaced).
    Compiled(Mutex<Option<Arc<crate::compiled::Mapped>>>),
}

impl Rules {
    /// Rules over `store` with `base` (its rule sets and IP databases); the handle holds
    /// `base` until the first [`Rules::reload`].
    pub fn new(store: Store, base: Arc<Policy>, default_flag: Option<DefaultRules>) -> Rules {
        Rules {
            store,
            handle: Arc::new(PolicyHandle::new(Arc::clone(&base))),
            base,
            default_flag,
            compiled: Mutex::new(HashMap::new()),
            source: Source::Lists,
        }
    }

    /// Rules over `store` whose rule sets are the ones another process compiled into the
    /// store's `rules.compiled` ([`Rules::compile`]), mapped: no list (nor built-in list) is
    /// ever parsed here; `base` gives the IP databases only. Every [`Rules::reload`] checks
    /// the file against the state (`lists.json`, the built-in level) and fails, naming the
    /// file, when it is missing, stale or of another version; the app settings, allowlist and
    /// pauses are read as usual. Changing lists through these rules is refused.
    pub fn mapped(store: Store, base: Arc<Policy>, default_flag: Option<DefaultRules>) -> Rules {
        Rules {
            source: Source::Compiled(Mutex::new(None)),
            ..Rules::new(store, base, default_flag)
        }
    }

    /// Whether the rule sets are mapped from another process's compilation.
    pub fn is_mapped(&self) -> bool {
        matches!(self.source, Source::Compiled(_))
    }

    /// Assembles the policy from the lists (as [`Rules::build`]) and writes its rule sets to
    /// the store's `rules.compiled`, for a process that maps them ([`Rules::mapped`]). Returns
    /// the assembly's report and the file's size.
    pub fn compile(&self) -> Result<(ReloadReport, u64)> {
        self.lists_here("compile the rules")?;
        let stamp = crate::compiled::stamp(&self.store, self.default_flag)?;
        let (policy, report) = self.build()?;
        let bytes = crate::compiled::write(&self.store, stamp, &policy, &report)?;
        Ok((report, bytes))
    }

    /// An error when the rule sets are mapped: lists are changed where they are compiled.
    fn lists_here(&self, what: &str) -> Result<()> {
        if self.is_mapped() {
            bail!(
                "cannot {what} here: this process maps the rules another compiled ({}); \
                 change the lists in that process",
                self.store.compiled_rules_file().display()
            );
        }
        Ok(())
    }

    /// The state directory.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The handle the engine decides through (it also answers `app_can_change`).
    pub fn handle(&self) -> Arc<PolicyHandle> {
        Arc::clone(&self.handle)
    }

    fn compiled(&self) -> MutexGuard<'_, CompiledLists> {
        // A panic while the cache was held leaves at worst a stale entry, which the next
        // assembly checks against the file anyway.
        self.compiled.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The policy the store asks for now (see [`assemble`]), not yet in force.
    pub fn build(&self) -> Result<(Policy, ReloadReport)> {
        match &self.source {
            Source::Lists => assemble(
                &self.store,
                &self.base,
                self.default_flag,
                &mut self.compiled(),
            ),
            Source::Compiled(last) => {
                let now = crate::compiled::stamp(&self.store, self.default_flag)?;
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                let mapped = crate::compiled::open(&self.store, &now, last.take())?;
                *last = Some(Arc::clone(&mapped));
                let mut report = mapped.report().clone();
                let apps = self.store.effective_app_rules(now_ms())?;
                report.apps_with_settings = apps.apps.len() as u64;
                let mut ipdb = mapped.ipdb().clone();
                ipdb.extend_from(self.base.ipdb());
                let policy = Policy::new(mapped.sets().to_vec(), ipdb, apps);
                Ok((policy, report))
            }
        }
    }

    /// Builds the policy the store asks for and puts it in force.
    pub fn reload(&self) -> Result<ReloadReport> {
        let (policy, report) = self.build()?;
        self.handle.store(Arc::new(policy));
        Ok(report)
    }

    /// Changes the stored per-app settings (and allowlist), then puts them in force.
    pub fn edit_apps<T>(&self, edit: impl FnOnce(&mut AppRules) -> Result<T>) -> Result<T> {
        let mut apps = self.store.load_app_rules()?;
        let out = edit(&mut apps)?;
        self.store.save_app_rules(&apps)?;
        self.reload()?;
        Ok(out)
    }

    /// Adds the list `name`, already loaded from `bytes` (see [`load_list`]), as a stored
    /// copy, or replaces the list of that name (keeping whether it is on; a file list's file
    /// is left alone, a URL list's copy is overwritten); then puts it in force without
    /// compiling it again.
    pub fn put_list(&self, name: &str, bytes: &[u8], loaded: LoadedList) -> Result<ReloadReport> {
        self.lists_here("change a list")?;
        let mut lists = self.store.load_lists()?;
        let now = now_ms();
        let existing = lists.lists.iter().position(|l| l.name == name);
        let entry = ListEntry {
            name: name.to_owned(),
            source: ListSource::Stored,
            format: Some(loaded.format.name().to_owned()),
            added_ms: existing.map_or(now, |i| lists.lists[i].added_ms),
            updated_ms: now,
            counts: crate::store::ListCounts {
                accepted: loaded.report.accepted,
                skipped: loaded.report.skipped.values().sum(),
                errors: loaded.report.error_count,
                bytes: bytes.len() as u64,
            },
            enabled: existing.is_none_or(|i| lists.lists[i].enabled),
            freshness: Default::default(),
        };
        self.store.write_list_copy(&entry, bytes)?;
        let path = self.store.list_path(&entry);
        let meta = std::fs::metadata(&path).ok();
        self.compiled().insert(
            name.to_owned(),
            CompiledList {
                path,
                len: meta.as_ref().map_or(0, |m| m.len()),
                modified: meta.as_ref().and_then(|m| m.modified().ok()),
                format: entry.format.clone(),
                set: Arc::new(loaded.set),
            },
        );
        match existing {
            Some(i) => lists.lists[i] = entry,
            None => lists.lists.push(entry),
        }
        self.store.save_lists(&lists)?;
        self.reload()
    }

    /// Forgets the list `name` (and deletes its stored copy); `false` when there was none.
    pub fn remove_list(&self, name: &str) -> Result<bool> {
        self.lists_here("remove a list")?;
        let mut lists = self.store.load_lists()?;
        let Some(i) = lists.lists.iter().position(|l| l.name == name) else {
            return Ok(false);
        };
        let removed = lists.lists.remove(i);
        self.store.save_lists(&lists)?;
        if let Err(e) = self.store.remove_list_copy(&removed) {
            log::warn!("list {name}: {e:#}");
        }
        self.reload()?;
        Ok(true)
    }

    /// Turns the list `name` on or off without forgetting it; `false` when there is none.
    pub fn set_list_enabled(&self, name: &str, enabled: bool) -> Result<bool> {
        self.lists_here("turn a list on or off")?;
        let mut lists = self.store.load_lists()?;
        let Some(list) = lists.lists.iter_mut().find(|l| l.name == name) else {
            return Ok(false);
        };
        list.enabled = enabled;
        self.store.save_lists(&lists)?;
        self.reload()?;
        Ok(true)
    }

    /// Stores how the built-in default applies, then puts it in force (a run whose
    /// `default_flag` overrides the setting keeps its override).
    pub fn set_default_rules(&self, default_rules: DefaultRules) -> Result<()> {
        self.lists_here("change the built-in default")?;
        let mut settings = self.store.load_settings()?;
        settings.default_rules = default_rules;
        self.store.save_settings(&settings)?;
        self.reload()?;
        Ok(())
    }
}

/// What an IP database file maps addresses to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpDatabase {
    /// AS number and owner (ip-location-db `start,end,asn,org` CSV, iptoasn TSV).
    Asn,
    /// Country (ip-location-db `start,end,CC` CSV).
    Country,
}

impl IpDatabase {
    fn word(self) -> &'static str {
        match self {
            IpDatabase::Asn => "ASN",
            IpDatabase::Country => "country",
        }
    }
}

/// Loads the IP database at `path` (plain or gzip) into `db`; an error when no row is usable.
pub fn load_ip_database(db: &mut IpDb, path: &Path, kind: IpDatabase) -> Result<LoadReport> {
    load_ip_database_as(db, path, kind, &format!("{} database", kind.word()))
}

/// [`load_ip_database`], the file called `what` in errors about reading it.
fn load_ip_database_as(
    db: &mut IpDb,
    path: &Path,
    kind: IpDatabase,
    what: &str,
) -> Result<LoadReport> {
    let bytes = crate::input::read_database(path, what)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let format = match kind {
        // Country files have three fields; iptoasn (tabs) is detected either way.
        IpDatabase::Country => {
            let tsv = bytes.iter().take(4096).any(|&b| b == b'\t');
            (!tsv).then_some(IpDbFormat::CountryCsv)
        }
        IpDatabase::Asn => None,
    };
    let report = db.load_bytes(&name, format, &bytes);
    if report.accepted == 0 {
        bail!(
            "{}: no usable {} ranges{}",
            path.display(),
            kind.word(),
            report
                .errors
                .first()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
    Ok(report)
}

/// `base` with the IP databases of `asn` and `country` files (see [`load_ip_database`]) asked
/// first, in that order, then base's own.
pub fn with_ip_databases(base: &Policy, asn: &[PathBuf], country: &[PathBuf]) -> Result<Policy> {
    if asn.is_empty() && country.is_empty() {
        return Ok(base.with_apps(base.apps().clone()));
    }
    let mut db = IpDb::new();
    for (files, kind) in [(asn, IpDatabase::Asn), (country, IpDatabase::Country)] {
        for file in files {
            // "IP database": the flags of one run name both kinds.
            crate::list::log_report(&load_ip_database_as(&mut db, file, kind, "IP database")?);
        }
    }
    db.extend_from(base.ipdb());
    Ok(Policy::new(base.rules().to_vec(), db, base.apps().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ListsConfig, Pause};
    use embargo_policy::parse::parse_bytes;
    use embargo_policy::{Query, RuleSetBuilder, Verdict};
    use std::collections::BTreeMap;

    fn verdict(handle: &PolicyHandle, app: &str, name: &str) -> Verdict {
        handle
            .load()
            .decide(&Query::name(name).with_app(app))
            .verdict
    }

    fn empty_base() -> Arc<Policy> {
        Arc::new(Policy::new(vec![], IpDb::new(), Default::default()))
    }

    #[test]
    fn reload_applies_lists_and_app_settings_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let state = Store::new(dir.path().join("state"));
        let list = dir.path().join("test.rules");
        std::fs::write(&list, "tracker.test\n").unwrap();
        state
            .save_lists(&ListsConfig {
                lists: vec![ListEntry::new(
                    "test.rules",
                    ListSource::File(list.clone()),
                    Some("embargo".into()),
                )],
            })
            .unwrap();
        let rules = Rules::new(state.clone(), empty_base(), None);
        let handle = rules.handle();
        assert_eq!(
            verdict(&handle, "/bin/a", "pixel.tracker.test"),
            Verdict::Allow
        );
        let report = rules.reload().unwrap();
        assert!(report.rules >= 1, "{report:?}");
        assert_eq!(
            verdict(&handle, "/bin/a", "pixel.tracker.test"),
            Verdict::Block
        );

        // blocking off for one app, paused for another
        let mut apps = state.load_app_rules().unwrap();
        apps.set_blocking("/bin/b", false);
        state.save_app_rules(&apps).unwrap();
        let mut pauses = BTreeMap::new();
        pauses.insert(
            "/bin/c".to_string(),
            Pause {
                until_ms: now_ms() + 60_000,
            },
        );
        state.save_pauses(&pauses).unwrap();
        rules.reload().unwrap();
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
        rules.reload().unwrap();
        assert!(Arc::ptr_eq(&before, handle.load().rules().last().unwrap()));
        std::fs::write(&list, "tracker.test\nother.test\n").unwrap();
        rules.reload().unwrap();
        assert!(!Arc::ptr_eq(&before, handle.load().rules().last().unwrap()));
        assert_eq!(verdict(&handle, "/bin/a", "x.other.test"), Verdict::Block);

        // a list turned off is left out, and back on
        assert!(rules.set_list_enabled("test.rules", false).unwrap());
        assert_eq!(verdict(&handle, "/bin/a", "x.other.test"), Verdict::Allow);
        assert!(rules.set_list_enabled("test.rules", true).unwrap());
        assert_eq!(verdict(&handle, "/bin/a", "x.other.test"), Verdict::Block);
    }

    #[test]
    fn stored_lists_persist_and_are_put_in_force_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let state = Store::new(dir.path().join("state"));
        let rules = Rules::new(state.clone(), empty_base(), Some(DefaultRules::Off));
        let bytes = b"0.0.0.0 tracker.example\n";
        let loaded = load_list("my list", bytes, None).unwrap();
        rules.put_list("my list", bytes, loaded).unwrap();
        assert_eq!(
            verdict(&rules.handle(), "a", "tracker.example"),
            Verdict::Block
        );
        // a fresh instance over the same directory reads the same state
        let again = Rules::new(state.clone(), empty_base(), Some(DefaultRules::Off));
        again.reload().unwrap();
        assert_eq!(
            verdict(&again.handle(), "a", "tracker.example"),
            Verdict::Block
        );
        assert!(again.remove_list("my list").unwrap());
        assert!(!again.remove_list("my list").unwrap());
        assert_eq!(
            verdict(&again.handle(), "a", "tracker.example"),
            Verdict::Allow
        );
        assert_eq!(std::fs::read_dir(state.lists_dir()).unwrap().count(), 0);
    }

    #[test]
    fn asn_database_fixture_makes_an_asn_rule_match() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("asn.csv");
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
        let policy = with_ip_databases(&base, &[db], &[]).unwrap();
        let d = policy.decide(&Query::addr("10.231.66.1".parse().unwrap()));
        assert_eq!(d.verdict, Verdict::Block, "{d:?}");
        assert!(
            policy
                .decide(&Query::addr("10.231.67.1".parse().unwrap()))
                .verdict
                == Verdict::Allow
        );
    }
}
