//! The state directory: what Embargo keeps between runs, and what the management commands
//! (and the apps' settings screens) read and change whether or not the tunnel runs. One layout
//! for every shell: the Linux `--state-dir` (default `/var/lib/embargo`) and the storage
//! directory the Android and iOS apps give the FFI's `Embargo::new` are the same thing.
//!
//! ```text
//! /var/lib/embargo/            mode 0700, owned by the user running embargo (check_private)
//!   apps.json                  per-app settings and the allowlist (embargo_policy::AppRules)
//!   pauses.json                apps whose blocking is paused, and until when
//!   lists.json                 the rule lists (ListEntry: source, format, on/off, counts,
//!                              freshness: ETag, Last-Modified, last check, a refused update)
//!   settings.json              how the built-in default applies (its embargo level, or off)
//!   lists/NAME                 stored copies: downloaded URL lists, lists handed in as bytes
//!   history.db                 the history (embargo_history)
//!   rules.compiled             every rule set of the policy, compiled, for a process that
//!                              maps them instead of parsing lists (iOS's extension; compiled)
//!   control.sock               a running Linux instance's control socket (mode 0600)
//!   run-netns-NAME.json        a Linux run's undo log (run-machine.json in machine mode)
//!   run-netns-NAME.lock        flocked by the run for its life
//! ```
//!
//! The FFI kept its own layout (`rules.json`, `lists/N.list`) before this one; no app with it
//! ever shipped, so it is not migrated (docs/decisions.md).
//!
//! Every file is 0600 and the directory 0700.
//!
//! Every file is written whole to a temporary name and renamed over the old one, so a reader
//! (a running instance reloading, a second command) sees the old or the new file, never half.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use embargo_policy::{AppRules, EmbargoLevel};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Where state lives unless `--state-dir` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/embargo";

/// How long `embargo apps pause APP` allows an app when `--for` is not given: long enough to
/// finish what broke (a login, a payment), short enough that nobody forgets blocking is off.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(15 * 60);

/// Milliseconds since the Unix epoch, as the history stores times (the history's own clock).
pub use embargo_history::now_ms;

/// `true`, for serde defaults.
fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// One app whose blocking is paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// When blocking comes back on (ms since the epoch).
    pub until_ms: i64,
}

/// How one list is fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ListSource {
    /// A file on this machine, read where it is on every load.
    File(PathBuf),
    /// A URL, downloaded into `lists/NAME` by `add` and `update`.
    Url(String),
    /// Bytes handed in by an app (the FFI's `set_list`), kept in `lists/NAME`.
    Stored,
}

/// What the last load of a list found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListCounts {
    /// Rules the parser accepted.
    pub accepted: u64,
    /// Lines skipped on purpose (unsupported modifiers, local names...), all reasons.
    pub skipped: u64,
    /// Lines that could not be read as the format.
    pub errors: u64,
    /// Bytes of the copy that was loaded.
    pub bytes: u64,
}

/// One list added by `embargo lists add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    /// Unique short name (the file name by default); rules from it are attributed to it.
    pub name: String,
    /// Where the list comes from.
    pub source: ListSource,
    /// `--format` name (embargo_policy's `Format::from_name`); `None` = detected on load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// When it was added (ms since the epoch).
    pub added_ms: i64,
    /// When the copy was last read (file) or downloaded (URL).
    #[serde(default)]
    pub updated_ms: i64,
    #[serde(default)]
    /// What its last load found.
    pub counts: ListCounts,
    /// Whether its rules are in force (an app can turn a list off without forgetting it).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// How a URL list keeps itself current: validators, schedule, the last failure.
    #[serde(default, skip_serializing_if = "Freshness::is_empty")]
    pub freshness: Freshness,
}

impl ListEntry {
    /// A list added now and not yet read: on, no counts, no validators, checked daily.
    pub fn new(name: impl Into<String>, source: ListSource, format: Option<String>) -> ListEntry {
        ListEntry {
            name: name.into(),
            source,
            format,
            added_ms: now_ms(),
            updated_ms: 0,
            counts: ListCounts::default(),
            enabled: true,
            freshness: Freshness::default(),
        }
    }
}

/// How a URL list keeps itself current (see [`crate::fetch`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    /// The server's `ETag` for the stored copy, sent back as `If-None-Match`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The server's `Last-Modified` for the stored copy, sent back as `If-Modified-Since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// When the server was last asked (ms since the epoch), whatever it answered.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub checked_ms: i64,
    /// Seconds between checks; `None`: [`crate::fetch::DEFAULT_INTERVAL`] (daily).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_secs: Option<u64>,
    /// Why the last check was refused (the stored copy, the last good one, stays in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<ListFailure>,
}

impl Freshness {
    fn is_empty(&self) -> bool {
        *self == Freshness::default()
    }
}

/// A refused update: when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFailure {
    /// When it was refused (ms since the epoch).
    pub at_ms: i64,
    /// What was wrong (HTTP status, truncated body, no rules, too large...).
    pub reason: String,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// `lists.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListsConfig {
    #[serde(default)]
    /// The lists, in the order their rules are asked.
    pub lists: Vec<ListEntry>,
}

/// How the built-in default applies: at which embargo level, or not at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultRules {
    /// The embargoed companies' telemetry (the built-in default's own default).
    #[default]
    Telemetry,
    /// Everything they own and everything located in the embargoed countries.
    Full,
    /// No built-in rules: only the lists the person added.
    Off,
}

impl DefaultRules {
    /// The built-in level, `None` when off.
    pub fn level(self) -> Option<EmbargoLevel> {
        match self {
            DefaultRules::Telemetry => Some(EmbargoLevel::Telemetry),
            DefaultRules::Full => Some(EmbargoLevel::Full),
            DefaultRules::Off => None,
        }
    }

    /// `telemetry`, `full` or `off`.
    pub fn name(self) -> &'static str {
        match self {
            DefaultRules::Telemetry => "telemetry",
            DefaultRules::Full => "full",
            DefaultRules::Off => "off",
        }
    }

    /// What `--embargo LEVEL` and `--no-default` ask for (`None`: what the state says).
    pub fn from_flags(embargo: Option<EmbargoLevel>, no_default: bool) -> Option<DefaultRules> {
        match (no_default, embargo) {
            (true, _) => Some(DefaultRules::Off),
            (false, Some(EmbargoLevel::Full)) => Some(DefaultRules::Full),
            (false, Some(EmbargoLevel::Telemetry)) => Some(DefaultRules::Telemetry),
            (false, None) => None,
        }
    }
}

/// `settings.json`: settings that are not about one app or one list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// How the built-in default applies.
    #[serde(default)]
    pub default_rules: DefaultRules,
}

/// The value of `--embargo`: `telemetry` or `full`.
pub fn parse_level(text: &str) -> std::result::Result<EmbargoLevel, String> {
    EmbargoLevel::from_name(text)
        .ok_or_else(|| format!("{text:?}: the embargo level is telemetry or full"))
}

/// The state directory: every file in it is read and written here, and nowhere else.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// A state directory at `root` (not created until something is written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory (owner-only) if missing, and makes sure it is private before
    /// anything is read from it or written to it ([`check_private`]): `embargo run` replays
    /// its undo log from here as root, and the history says what the machine's apps did.
    pub fn create(&self) -> Result<()> {
        if !self.root.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.root)
                .with_context(|| format!("create state directory {}", self.root.display()))?;
        }
        check_private(&self.root)
    }

    /// The control socket of a running instance.
    pub fn control_socket(&self) -> PathBuf {
        self.root.join("control.sock")
    }

    /// The history database.
    pub fn history_db(&self) -> PathBuf {
        self.root.join("history.db")
    }

    /// The history, if there is one; `None` before the first run (nothing is created by
    /// merely looking).
    pub fn open_history(&self) -> Result<Option<embargo_history::History>> {
        let path = self.history_db();
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(embargo_history::History::open(
            embargo_history::Config::new(path),
        )?))
    }

    /// Per-app settings (`AppRules` JSON).
    pub fn apps_file(&self) -> PathBuf {
        self.root.join("apps.json")
    }

    /// Running pauses (app -> until when).
    pub fn pauses_file(&self) -> PathBuf {
        self.root.join("pauses.json")
    }

    /// Settings that are not about one app or one list.
    pub fn settings_file(&self) -> PathBuf {
        self.root.join("settings.json")
    }

    /// The settings as stored (defaults when the file does not exist).
    pub fn load_settings(&self) -> Result<Settings> {
        read_json_or_default(&self.settings_file())
    }

    /// Stores the settings (atomically).
    pub fn save_settings(&self, settings: &Settings) -> Result<()> {
        self.write_json(&self.settings_file(), settings)
    }

    /// The rule sets compiled by one process for another to map (see [`crate::compiled`]).
    pub fn compiled_rules_file(&self) -> PathBuf {
        self.root.join("rules.compiled")
    }

    /// The lists added with `embargo lists add`.
    pub fn lists_file(&self) -> PathBuf {
        self.root.join("lists.json")
    }

    /// Where downloaded copies of URL lists live.
    pub fn lists_dir(&self) -> PathBuf {
        self.root.join("lists")
    }

    /// The file a list's rules are read from: the file itself, or the stored copy.
    pub fn list_path(&self, entry: &ListEntry) -> PathBuf {
        match &entry.source {
            ListSource::File(path) => path.clone(),
            ListSource::Url(_) | ListSource::Stored => {
                self.lists_dir().join(copy_file_name(&entry.name))
            }
        }
    }

    /// Stores `bytes` as the copy of `entry` (atomically, owner-only).
    pub fn write_list_copy(&self, entry: &ListEntry, bytes: &[u8]) -> Result<()> {
        self.create()?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(self.lists_dir())
            .with_context(|| format!("create {}", self.lists_dir().display()))?;
        write_atomic(&self.list_path(entry), bytes)
    }

    /// Deletes the stored copy of `entry`, if it has one (a file list is the person's own).
    pub fn remove_list_copy(&self, entry: &ListEntry) -> Result<()> {
        if matches!(entry.source, ListSource::File(_)) {
            return Ok(());
        }
        let path = self.list_path(entry);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("delete {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// The undo log of a Linux run (`netns`: the namespace it protects; `None`: machine mode).
    /// Its lock is the same path with `.lock`.
    pub fn undo_log(&self, netns: Option<&str>) -> PathBuf {
        match netns {
            Some(name) => self.root.join(format!("run-netns-{name}.json")),
            None => self.root.join("run-machine.json"),
        }
    }

    /// The per-app settings as stored (no pauses applied).
    pub fn load_app_rules(&self) -> Result<AppRules> {
        read_json_or_default(&self.apps_file())
    }

    /// Stores the per-app settings (atomically).
    pub fn save_app_rules(&self, rules: &AppRules) -> Result<()> {
        self.write_json(&self.apps_file(), rules)
    }

    /// Pauses still running at `now_ms` (expired ones are dropped).
    pub fn load_pauses(&self, now_ms: i64) -> Result<BTreeMap<String, Pause>> {
        let mut pauses: BTreeMap<String, Pause> = read_json_or_default(&self.pauses_file())?;
        pauses.retain(|_, p| p.until_ms > now_ms);
        Ok(pauses)
    }

    /// Stores the pauses (atomically).
    pub fn save_pauses(&self, pauses: &BTreeMap<String, Pause>) -> Result<()> {
        self.write_json(&self.pauses_file(), pauses)
    }

    /// The per-app settings a running instance must enforce at `now_ms`: the stored settings
    /// with blocking off for every app whose pause runs. `embargo run` builds its policy from
    /// this, and again on every control-socket reload and when a pause ends
    /// ([`Self::next_pause_end`]).
    pub fn effective_app_rules(&self, now_ms: i64) -> Result<AppRules> {
        let mut rules = self.load_app_rules()?;
        for app in self.load_pauses(now_ms)?.keys() {
            rules.set_blocking(app, false);
        }
        Ok(rules)
    }

    /// When the next pause ends (ms since the epoch), if any runs.
    pub fn next_pause_end(&self, now_ms: i64) -> Option<i64> {
        self.load_pauses(now_ms)
            .ok()?
            .values()
            .map(|p| p.until_ms)
            .min()
    }

    /// The lists as stored (none when the file does not exist).
    pub fn load_lists(&self) -> Result<ListsConfig> {
        read_json_or_default(&self.lists_file())
    }

    /// Stores the lists (atomically).
    pub fn save_lists(&self, lists: &ListsConfig) -> Result<()> {
        self.write_json(&self.lists_file(), lists)
    }

    /// Writes `value` as pretty JSON to `path` atomically (temporary file, fsync, rename),
    /// owner-only.
    fn write_json<T: Serialize + ?Sized>(&self, path: &Path, value: &T) -> Result<()> {
        self.create()?;
        let mut text = serde_json::to_vec_pretty(value)?;
        text.push(b'\n');
        write_atomic(path, &text)
    }
}

/// Whether the state directory `dir` is Embargo's alone: owned by the running user and
/// writable by nobody else. Group- or other-writable (0777, 0775, even with the sticky bit) or
/// owned by another user: refused, because whoever can write there can plant the undo log a
/// root `embargo run` replays, the lists it loads, or swap the history. Readable by others
/// only (0755, what `mkdir` gives): nobody else could have written anything, so it is
/// tightened to 0700 with a note rather than refused; the history and app choices in it are
/// private.
pub fn check_private(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = fs::metadata(dir).with_context(|| format!("state directory {}", dir.display()))?;
    if !meta.is_dir() {
        anyhow::bail!("state directory {} is not a directory", dir.display());
    }
    let mode = meta.mode() & 0o7777;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        anyhow::bail!(
            "refusing state directory {}: it is owned by uid {} (mode {mode:04o}), not by the \
             user running embargo (uid {me}). Another user could plant files that embargo \
             reads and replays. Use a directory you own (--state-dir, EMBARGO_STATE_DIR), or \
             `chown {me} {}` if it really is yours.",
            dir.display(),
            meta.uid(),
            dir.display()
        );
    }
    if mode & 0o022 != 0 {
        anyhow::bail!(
            "refusing state directory {}: mode {mode:04o} (owner uid {}) lets other users \
             write in it, so they could plant files that embargo reads and replays. Check \
             what is in it, then `chmod 0700 {}`, or use another --state-dir.",
            dir.display(),
            meta.uid(),
            dir.display()
        );
    }
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("chmod 0700 {}", dir.display()))?;
        log::warn!(
            "state directory {} was mode {mode:04o} (readable by others): now 0700",
            dir.display()
        );
    }
    Ok(())
}

/// Writes `bytes` to `path` via a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("write {}", path.display()))
}

/// The file name of a list's stored copy: the name itself when it is a safe file name (what
/// `embargo lists add` accepts), else with every other byte as `%XX`, so an app's list name
/// ("My list / 2") can never leave `lists/`.
fn copy_file_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b"_-+".contains(&b) || (b == b'.' && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn read_json_or_default<T: DeserializeOwned + Default>(path: &Path) -> Result<T> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not valid JSON for this file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp() -> (tempdir::Dir, Store) {
        let dir = tempdir::Dir::new();
        let state = Store::new(dir.path().join("state"));
        (dir, state)
    }

    /// A tiny self-cleaning temporary directory (no extra crate for two tests).
    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "embargo-state-test-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn missing_files_read_as_defaults_and_nothing_is_created() {
        let (_d, state) = tmp();
        assert_eq!(state.load_app_rules().unwrap(), AppRules::default());
        assert_eq!(state.load_lists().unwrap(), ListsConfig::default());
        assert!(!state.root().exists());
    }

    #[test]
    fn app_rules_round_trip_owner_only() {
        let (_d, state) = tmp();
        let mut rules = AppRules::default();
        rules.set_blocking("/usr/bin/curl", false);
        state.save_app_rules(&rules).unwrap();
        assert_eq!(state.load_app_rules().unwrap(), rules);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(state.root()), 0o700);
        assert_eq!(mode(&state.apps_file()), 0o600);
    }

    #[test]
    fn pauses_turn_blocking_off_until_they_end() {
        let (_d, state) = tmp();
        let mut pauses = BTreeMap::new();
        pauses.insert("/bin/a".to_string(), Pause { until_ms: 2_000 });
        pauses.insert("/bin/b".to_string(), Pause { until_ms: 5_000 });
        state.save_pauses(&pauses).unwrap();
        let at = |t| state.effective_app_rules(t).unwrap();
        assert!(!at(1_000).blocking_enabled(Some("/bin/a")));
        assert!(at(3_000).blocking_enabled(Some("/bin/a")));
        assert!(!at(3_000).blocking_enabled(Some("/bin/b")));
        assert_eq!(state.next_pause_end(1_000), Some(2_000));
        assert_eq!(state.next_pause_end(6_000), None);
    }

    /// An existing state directory is checked before use: writable by others, it is refused
    /// (root replays the undo log found there); readable by others, it is tightened.
    #[test]
    fn a_writable_by_others_state_dir_is_refused_and_a_readable_one_tightened() {
        let (_d, state) = tmp();
        fs::create_dir_all(state.root()).unwrap();
        for mode in [0o777, 0o1777, 0o770, 0o702] {
            fs::set_permissions(state.root(), fs::Permissions::from_mode(mode)).unwrap();
            let err = format!("{:#}", state.create().unwrap_err());
            assert!(
                err.contains(&state.root().display().to_string())
                    && err.contains(&format!("{mode:04o}"))
                    && err.contains("chmod 0700"),
                "{err}"
            );
            // and nothing is written there
            assert!(state.save_settings(&Settings::default()).is_err());
            assert!(!state.settings_file().exists());
        }
        fs::set_permissions(state.root(), fs::Permissions::from_mode(0o755)).unwrap();
        state.create().unwrap();
        let mode = fs::metadata(state.root()).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn a_state_dir_owned_by_another_user_is_refused() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: needs root to give a directory to another user");
            return;
        }
        let (_d, state) = tmp();
        fs::create_dir_all(state.root()).unwrap();
        std::os::unix::fs::chown(state.root(), Some(65534), Some(65534)).unwrap();
        fs::set_permissions(state.root(), fs::Permissions::from_mode(0o700)).unwrap();
        let err = format!("{:#}", state.create().unwrap_err());
        assert!(
            err.contains("owned by uid 65534") && err.contains(&state.root().display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn list_copies_stay_inside_lists_dir() {
        let (_d, state) = tmp();
        let entry = |name: &str| ListEntry::new(name, ListSource::Stored, None);
        for name in ["../x", "a/b", ".hidden", "My list"] {
            let path = state.list_path(&entry(name));
            assert_eq!(path.parent(), Some(state.lists_dir().as_path()), "{name}");
        }
        assert_eq!(
            state.list_path(&entry("hagezi.txt")),
            state.lists_dir().join("hagezi.txt")
        );
        state.write_list_copy(&entry("a/b"), b"x.test\n").unwrap();
        state.remove_list_copy(&entry("a/b")).unwrap();
        assert_eq!(fs::read_dir(state.lists_dir()).unwrap().count(), 0);
    }

    #[test]
    fn corrupt_file_names_the_file() {
        let (_d, state) = tmp();
        state.create().unwrap();
        fs::write(state.lists_file(), b"{not json").unwrap();
        let err = format!("{:#}", state.load_lists().unwrap_err());
        assert!(err.contains("lists.json"), "{err}");
    }
}
