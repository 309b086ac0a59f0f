//! Rule lists, app rules and the decision check, persisted in the storage directory.
//!
//! Layout of `<storage>/`:
//! - `rules.json`: the list catalogue (name, format, enabled, last load counts) and the app
//!   rules ([`embargo_policy::AppRules`], serde), written atomically (temp file + rename);
//! - `lists/<n>.list`: the raw bytes of each list as the app handed them in. Lists are parsed
//!   and compiled again on start (raw text is the stable format; compiled sets are a cache the
//!   policy crate may change).
//!
//! Every change builds a whole new [`Policy`] off the packet path and swaps it into the
//! [`PolicyHandle`] the running engine reads, so a change applies to the next decision.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use embargo_policy::parse::{parse_bytes, Format};
use embargo_policy::{
    AppRules, AttributionSource, Policy, PolicyHandle, Query, Reason, RuleSet, RuleSetBuilder,
    SkipReason,
};
use serde::{Deserialize, Serialize};

use crate::records::{Certainty, RuleTarget, Verdict};
use crate::EmbargoError;

/// Largest list accepted (bytes). The biggest real lists (hagezi ultimate, OISD big) are
/// 10-40 MiB of text; 64 MiB leaves room without letting a wrong file exhaust a phone's memory.
pub const MAX_LIST_BYTES: u64 = 64 * 1024 * 1024;

/// The syntax of a rule list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum ListFormat {
    /// `/etc/hosts` lines; each name blocked exactly.
    Hosts,
    /// `/etc/hosts` lines meaning "and subdomains" (hagezi hosts lists).
    HostsSubtree,
    /// One name per line, exact.
    Domains,
    /// One name per line, each with its subdomains (hagezi domain lists).
    DomainsSubtree,
    /// AdGuard / AdBlock DNS filter syntax.
    Adblock,
    /// dnsmasq configuration.
    Dnsmasq,
    /// unbound configuration.
    Unbound,
    /// `*.name` lines.
    Wildcard,
    /// DuckDuckGo app tracker data (android-tds.json).
    DdgApp,
    /// DuckDuckGo web tracker data (tds.json).
    DdgWeb,
    /// Disconnect's services.json.
    Disconnect,
    /// Disconnect's entities.json (who owns which domains; no blocking).
    DisconnectEntities,
    /// TrackerControl's X-Ray company list (xray-blacklist.json).
    Xray,
    /// Exodus Privacy's trackers.json.
    Exodus,
    /// Embargo's own rule format (names, addresses, AS numbers, owners, countries).
    Embargo,
}

impl ListFormat {
    fn to_core(self) -> Format {
        match self {
            ListFormat::Hosts => Format::Hosts,
            ListFormat::HostsSubtree => Format::HostsSubtree,
            ListFormat::Domains => Format::Domains { subdomains: false },
            ListFormat::DomainsSubtree => Format::Domains { subdomains: true },
            ListFormat::Adblock => Format::AdBlock,
            ListFormat::Dnsmasq => Format::Dnsmasq,
            ListFormat::Unbound => Format::Unbound,
            ListFormat::Wildcard => Format::Wildcard,
            ListFormat::DdgApp => Format::DdgApp,
            ListFormat::DdgWeb => Format::DdgWeb,
            ListFormat::Disconnect => Format::Disconnect,
            ListFormat::DisconnectEntities => Format::DisconnectEntities,
            ListFormat::Xray => Format::Xray,
            ListFormat::Exodus => Format::Exodus,
            ListFormat::Embargo => Format::Embargo,
        }
    }

    fn from_core(f: Format) -> ListFormat {
        match f {
            Format::Hosts => ListFormat::Hosts,
            Format::HostsSubtree => ListFormat::HostsSubtree,
            Format::Domains { subdomains: false } => ListFormat::Domains,
            Format::Domains { subdomains: true } => ListFormat::DomainsSubtree,
            Format::AdBlock => ListFormat::Adblock,
            Format::Dnsmasq => ListFormat::Dnsmasq,
            Format::Unbound => ListFormat::Unbound,
            Format::Wildcard => ListFormat::Wildcard,
            Format::DdgApp => ListFormat::DdgApp,
            Format::DdgWeb => ListFormat::DdgWeb,
            Format::Disconnect => ListFormat::Disconnect,
            Format::DisconnectEntities => ListFormat::DisconnectEntities,
            Format::Xray => ListFormat::Xray,
            Format::Exodus => ListFormat::Exodus,
            Format::Embargo => ListFormat::Embargo,
        }
    }
}

/// Why lines of a list were skipped (counted per reason in a [`LoadReport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum SkipKind {
    /// A modifier Embargo does not implement: the rule is ignored, as the syntax says.
    UnsupportedModifier,
    /// A cosmetic or URL rule that cannot apply to DNS or connections.
    NotApplicable,
    /// A regular expression over the size budget.
    RegexTooCostly,
    /// `localhost` and similar names in hosts files.
    LocalName,
    /// A valid entry that does nothing here.
    Inert,
}

impl From<SkipReason> for SkipKind {
    fn from(r: SkipReason) -> Self {
        match r {
            SkipReason::UnsupportedModifier => SkipKind::UnsupportedModifier,
            SkipReason::NotApplicable => SkipKind::NotApplicable,
            SkipReason::RegexTooCostly => SkipKind::RegexTooCostly,
            SkipReason::LocalName => SkipKind::LocalName,
            SkipReason::Inert => SkipKind::Inert,
        }
    }
}

/// Lines skipped for one reason.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SkipCount {
    /// The reason.
    pub reason: SkipKind,
    /// How many lines.
    pub count: u64,
}

/// One problem in a list, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ListError {
    /// 1-based line; 0 when the problem is the whole file.
    pub line: u32,
    /// The field or token at fault, if there is one.
    pub field: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
}

/// What loading a list did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LoadReport {
    /// The list's name.
    pub list: String,
    /// The format it was read as (given, or detected).
    pub format: ListFormat,
    /// Rules accepted.
    pub accepted: u64,
    /// Lines skipped, per reason.
    pub skipped: Vec<SkipCount>,
    /// The first errors (capped); `error_count` has the total.
    pub errors: Vec<ListError>,
    /// All errors.
    pub error_count: u64,
    /// Rules dropped when compiling (a `$badfilter` match, a regex over budget).
    pub dropped_when_compiling: u64,
}

/// A list in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ListInfo {
    /// The name the app gave it (unique).
    pub name: String,
    /// Its format.
    pub format: ListFormat,
    /// Whether its rules are in force.
    pub enabled: bool,
    /// Rules accepted at the last load.
    pub accepted: u64,
    /// Errors at the last load.
    pub error_count: u64,
    /// Size of the list text in bytes.
    pub bytes: u64,
    /// When it was added or last replaced (ms since the Unix epoch).
    pub updated_at_ms: i64,
}

/// Settings of one app.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AppSettings {
    /// The app id (Android package, iOS bundle id, executable path).
    pub app: String,
    /// Blocking on or off; `None` = the default for new or system apps.
    pub blocking: Option<bool>,
    /// Whether blocking applies now (own setting, else the default for its kind).
    pub blocking_effective: bool,
    /// A system app (gets the system-app default).
    pub system: bool,
    /// Overrides for this app alone.
    pub overrides: Vec<AppOverride>,
}

/// One per-app override.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AppOverride {
    /// What it is about.
    pub target: RuleTarget,
    /// Allow or block it for this app.
    pub verdict: Verdict,
}

/// Defaults for apps without their own setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct AppDefaults {
    /// Blocking for new apps (and for traffic whose app is unknown). Default on.
    pub new_app_blocking: bool,
    /// Blocking for system apps. Default off: blocking the system's own services breaks
    /// updates and connectivity checks more often than it stops tracking.
    pub system_app_blocking: bool,
}

/// Which step of the policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ReasonKind {
    /// No rule matched: allowed.
    NoMatch,
    /// Blocking is off for this app.
    AppBlockingOff,
    /// The global allowlist allowed it.
    Allowlisted,
    /// A per-app override decided.
    AppOverride,
    /// The endpoint belongs to the app's own company.
    FirstParty,
    /// A name rule in a list blocked it.
    NameRule,
    /// A name exception (`@@`) in a list allowed it.
    NameException,
    /// An address or network rule.
    AddressRule,
    /// A network owner (AS number or company) rule.
    OwnerRule,
    /// A country rule.
    CountryRule,
}

/// Why a rule blocks: a third-party tracker list, or an embargo (Embargo's own lists, and
/// every network-owner and country rule). Embargo rules apply to the company's own apps too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RuleIntent {
    /// A third-party tracker list: an app may still reach its own company's endpoints.
    Tracker,
    /// An embargo: no first-party exception.
    Embargo,
}

impl From<embargo_policy::Intent> for RuleIntent {
    fn from(i: embargo_policy::Intent) -> Self {
        match i {
            embargo_policy::Intent::Tracker => RuleIntent::Tracker,
            embargo_policy::Intent::Embargo => RuleIntent::Embargo,
        }
    }
}

/// How much of the embargoed companies the built-in list blocks, for every app.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, uniffi::Enum)]
#[serde(rename_all = "snake_case")]
pub enum EmbargoLevel {
    /// Their telemetry, analytics, crash, ad-measurement and fingerprinting endpoints; their
    /// apps' content keeps working.
    #[default]
    Telemetry,
    /// Every endpoint they own and every endpoint in the embargoed countries; their apps stop
    /// working, and so do other apps' servers rented in their clouds.
    Full,
}

impl EmbargoLevel {
    fn to_core(self) -> embargo_policy::EmbargoLevel {
        match self {
            EmbargoLevel::Telemetry => embargo_policy::EmbargoLevel::Telemetry,
            EmbargoLevel::Full => embargo_policy::EmbargoLevel::Full,
        }
    }
}

/// The list line behind a decision.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RuleSource {
    /// List name (`builtin` for the built-in list).
    pub list: String,
    /// 1-based line in the list.
    pub line: u32,
    /// The rule as written.
    pub rule: String,
}

/// Where an owner or country fact came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SourceKind {
    /// A tracker list that names the owner of a domain.
    List,
    /// An IP database (by address).
    Database,
}

/// One fact about an endpoint (owner or country), who said so and how sure it is.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Attribution {
    /// Owner name (e.g. "ByteDance") or country code (e.g. "CN").
    pub value: String,
    /// The AS number, when the fact came from an AS database.
    pub asn: Option<u32>,
    /// List or database.
    pub source_kind: SourceKind,
    /// Name of the list or database.
    pub source: String,
    /// How sure the fact is.
    pub certainty: Certainty,
}

impl From<&embargo_policy::Attribution> for Attribution {
    fn from(a: &embargo_policy::Attribution) -> Self {
        let (source_kind, source) = match &a.source {
            AttributionSource::List { list } => (SourceKind::List, list.clone()),
            AttributionSource::Database { database } => (SourceKind::Database, database.clone()),
        };
        Attribution {
            value: a.value.clone(),
            asn: a.asn,
            source_kind,
            source,
            certainty: a.certainty.into(),
        }
    }
}

/// The answer to [`crate::Embargo::check`]: what would happen and why.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CheckResult {
    /// The name or address checked (normalised).
    pub target: String,
    /// The app it was checked for, if any.
    pub app: Option<String>,
    /// Allow or block.
    pub verdict: Verdict,
    /// Which step decided.
    pub reason: ReasonKind,
    /// The intent of the rule that decided, when a list rule did.
    pub intent: Option<RuleIntent>,
    /// One sentence for a person, e.g. "Blocked by list builtin, line 12: log.tiktokv.com".
    pub explanation: String,
    /// The list line that decided, when a list rule did.
    pub rule: Option<RuleSource>,
    /// The allowlist entry or override that decided, when one did (e.g. "allow owner Tencent").
    pub entry: Option<String>,
    /// Who owns the endpoint.
    pub owner: Option<Attribution>,
    /// Where the endpoint is.
    pub country: Option<Attribution>,
    /// How sure the attribution behind the decision is.
    pub certainty: Certainty,
    /// The category the deciding rule's list gives it (e.g. Disconnect's "Advertising").
    pub category: Option<String>,
}

/// Catalogue entry as stored in `rules.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredList {
    name: String,
    format: String,
    enabled: bool,
    file: String,
    accepted: u64,
    error_count: u64,
    bytes: u64,
    updated_at_ms: i64,
}

/// `rules.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StoredRules {
    #[serde(default)]
    lists: Vec<StoredList>,
    #[serde(default)]
    apps: AppRules,
    /// Counter for list file names (names are user text; files get numbers).
    #[serde(default)]
    next_file: u64,
    /// The built-in list's level.
    #[serde(default)]
    embargo_level: EmbargoLevel,
}

/// The rules state: catalogue, compiled sets, app rules, and the live policy.
pub(crate) struct RulesStore {
    dir: PathBuf,
    stored: StoredRules,
    compiled: BTreeMap<String, Arc<RuleSet>>,
    use_builtin: bool,
    handle: Arc<PolicyHandle>,
}

fn storage_err(what: &str, path: &Path, e: impl std::fmt::Display) -> EmbargoError {
    EmbargoError::Storage(format!("{what} {}: {e}", path.display()))
}

/// Writes a file atomically: a crash leaves the old or the new content, never half.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EmbargoError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| storage_err("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| storage_err("cannot replace", path, e))
}

impl RulesStore {
    /// Opens (or creates) the rules state in `dir` and compiles every enabled list.
    pub(crate) fn open(dir: &Path, use_builtin: bool) -> Result<RulesStore, EmbargoError> {
        let lists_dir = dir.join("lists");
        std::fs::create_dir_all(&lists_dir)
            .map_err(|e| storage_err("cannot create", &lists_dir, e))?;
        let path = dir.join("rules.json");
        let stored: StoredRules = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| storage_err("damaged rules file", &path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StoredRules::default(),
            Err(e) => return Err(storage_err("cannot read", &path, e)),
        };
        let mut store = RulesStore {
            dir: dir.to_owned(),
            stored,
            compiled: BTreeMap::new(),
            use_builtin,
            handle: Arc::new(PolicyHandle::new(Arc::new(Policy::builtin()))),
        };
        for list in store.stored.lists.clone() {
            let file = store.dir.join(&list.file);
            let bytes = match std::fs::read(&file) {
                Ok(b) => b,
                Err(e) => {
                    // One missing list must not stop the others (or the tunnel) from working.
                    log::error!("list {}: cannot read {}: {e}", list.name, file.display());
                    continue;
                }
            };
            let Some(format) = Format::from_name(&list.format) else {
                // Written by a newer version: skip this list rather than refuse to open.
                log::error!("list {}: unknown format {}", list.name, list.format);
                continue;
            };
            let (set, _) = compile(&list.name, format, &bytes);
            store.compiled.insert(list.name.clone(), Arc::new(set));
        }
        store.publish();
        Ok(store)
    }

    /// Reads the state again from the directory (another process changed it: iOS's app, while
    /// the extension runs) and swaps the policy in the same handle, so a running engine
    /// decides with it from its next decision.
    pub(crate) fn reload(&mut self) -> Result<(), EmbargoError> {
        let fresh = RulesStore::open(&self.dir, self.use_builtin)?;
        self.stored = fresh.stored;
        self.compiled = fresh.compiled;
        self.publish();
        Ok(())
    }

    /// The handle the engine decides through.
    pub(crate) fn handle(&self) -> Arc<PolicyHandle> {
        self.handle.clone()
    }

    /// Builds the policy from the current state and swaps it in.
    fn publish(&mut self) {
        let base = Policy::builtin();
        let mut sets: Vec<Arc<RuleSet>> = Vec::new();
        if self.use_builtin {
            sets.extend(embargo_policy::builtin_rule_sets(
                self.stored.embargo_level.to_core(),
            ));
        }
        for list in &self.stored.lists {
            if list.enabled {
                if let Some(set) = self.compiled.get(&list.name) {
                    sets.push(set.clone());
                }
            }
        }
        let policy = Policy::new(sets, base.ipdb().clone(), self.stored.apps.clone());
        self.handle.store(Arc::new(policy));
    }

    fn save(&self) -> Result<(), EmbargoError> {
        let json = serde_json::to_vec_pretty(&self.stored)
            .map_err(|e| EmbargoError::Internal(format!("rules do not serialise: {e}")))?;
        write_atomic(&self.dir.join("rules.json"), &json)
    }

    /// Adds a list, or replaces the list of the same name.
    pub(crate) fn set_list(
        &mut self,
        name: &str,
        format: Option<ListFormat>,
        bytes: Vec<u8>,
    ) -> Result<LoadReport, EmbargoError> {
        let name = name.trim();
        if name.is_empty() || name == embargo_policy::BUILTIN_LIST_NAME {
            return Err(EmbargoError::InvalidInput(format!(
                "a list needs a name other than {:?} and \"{}\"",
                name,
                embargo_policy::BUILTIN_LIST_NAME
            )));
        }
        if bytes.len() as u64 > MAX_LIST_BYTES {
            return Err(EmbargoError::List(format!(
                "list {name} is {} bytes; the limit is {MAX_LIST_BYTES}",
                bytes.len()
            )));
        }
        let format = match format {
            Some(f) => f.to_core(),
            None => {
                Format::detect(name, &bytes[..bytes.len().min(16 * 1024)]).ok_or_else(|| {
                    EmbargoError::List(format!(
                        "cannot tell the format of list {name}: give it explicitly"
                    ))
                })?
            }
        };
        let (set, report) = compile(name, format, &bytes);
        let now = embargo_history::now_ms();
        let existing = self.stored.lists.iter().position(|l| l.name == name);
        let file = match existing {
            Some(i) => self.stored.lists[i].file.clone(),
            None => {
                self.stored.next_file += 1;
                format!("lists/{}.list", self.stored.next_file)
            }
        };
        write_atomic(&self.dir.join(&file), &bytes)?;
        let entry = StoredList {
            name: name.to_owned(),
            format: format.name().to_owned(),
            enabled: existing
                .map(|i| self.stored.lists[i].enabled)
                .unwrap_or(true),
            file,
            accepted: report.accepted,
            error_count: report.error_count,
            bytes: bytes.len() as u64,
            updated_at_ms: now,
        };
        match existing {
            Some(i) => self.stored.lists[i] = entry,
            None => self.stored.lists.push(entry),
        }
        self.compiled.insert(name.to_owned(), Arc::new(set));
        self.save()?;
        self.publish();
        Ok(report)
    }

    /// Removes a list; `false` if there was none of that name.
    pub(crate) fn remove_list(&mut self, name: &str) -> Result<bool, EmbargoError> {
        let Some(i) = self.stored.lists.iter().position(|l| l.name == name) else {
            return Ok(false);
        };
        let removed = self.stored.lists.remove(i);
        self.compiled.remove(name);
        self.save()?;
        let file = self.dir.join(&removed.file);
        if let Err(e) = std::fs::remove_file(&file) {
            log::warn!("list {name}: cannot delete {}: {e}", file.display());
        }
        self.publish();
        Ok(true)
    }

    /// Turns a list on or off without forgetting it.
    pub(crate) fn set_list_enabled(
        &mut self,
        name: &str,
        enabled: bool,
    ) -> Result<(), EmbargoError> {
        let list = self
            .stored
            .lists
            .iter_mut()
            .find(|l| l.name == name)
            .ok_or_else(|| EmbargoError::InvalidInput(format!("no list named {name:?}")))?;
        list.enabled = enabled;
        self.save()?;
        self.publish();
        Ok(())
    }

    /// The catalogue.
    pub(crate) fn lists(&self) -> Vec<ListInfo> {
        self.stored
            .lists
            .iter()
            .map(|l| ListInfo {
                name: l.name.clone(),
                format: Format::from_name(&l.format)
                    .map(ListFormat::from_core)
                    .unwrap_or(ListFormat::Embargo),
                enabled: l.enabled,
                accepted: l.accepted,
                error_count: l.error_count,
                bytes: l.bytes,
                updated_at_ms: l.updated_at_ms,
            })
            .collect()
    }

    /// The built-in list's level.
    pub(crate) fn embargo_level(&self) -> EmbargoLevel {
        self.stored.embargo_level
    }

    /// Sets the built-in list's level, saves and publishes it.
    pub(crate) fn set_embargo_level(&mut self, level: EmbargoLevel) -> Result<(), EmbargoError> {
        self.stored.embargo_level = level;
        self.save()?;
        self.publish();
        Ok(())
    }

    /// Changes the app rules, saves and publishes them.
    pub(crate) fn edit_apps(
        &mut self,
        edit: impl FnOnce(&mut AppRules) -> Result<(), EmbargoError>,
    ) -> Result<(), EmbargoError> {
        let mut apps = self.stored.apps.clone();
        edit(&mut apps)?;
        self.stored.apps = apps;
        self.save()?;
        self.publish();
        Ok(())
    }

    /// The app rules.
    pub(crate) fn apps(&self) -> &AppRules {
        &self.stored.apps
    }

    /// The settings of one app, as the app sees them.
    pub(crate) fn app_settings(&self, app: &str) -> AppSettings {
        let apps = &self.stored.apps;
        let s = apps.app(app).cloned().unwrap_or_default();
        AppSettings {
            app: app.to_owned(),
            blocking: s.blocking,
            blocking_effective: apps.blocking_enabled(Some(app)),
            system: s.system,
            overrides: s
                .overrides
                .iter()
                .map(|o| AppOverride {
                    target: RuleTarget::from_core(&o.target),
                    verdict: match o.action {
                        embargo_policy::Action::Allow => Verdict::Allow,
                        embargo_policy::Action::Block => Verdict::Block,
                    },
                })
                .collect(),
        }
    }

    /// Explains the decision for a name or an address.
    pub(crate) fn check(
        &self,
        target: &str,
        app: Option<&str>,
    ) -> Result<CheckResult, EmbargoError> {
        let target = target.trim();
        let policy = self.handle.load();
        let (normalised, mut query);
        if let Ok(addr) = target
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
        {
            normalised = addr.to_string();
            query = Query::addr(addr);
        } else {
            let n = target.trim_end_matches('.').to_ascii_lowercase();
            if n.is_empty() || n.contains(|c: char| c.is_whitespace() || c == '/') {
                return Err(EmbargoError::InvalidInput(format!(
                    "not a host name or an IP address: {target:?}"
                )));
            }
            normalised = n;
            query = Query::name(&normalised);
        }
        if let Some(app) = app {
            query = query.with_app(app);
        }
        let d = policy.decide(&query);
        Ok(explain(normalised.clone(), app, &d))
    }
}

/// Parses and compiles one list; the report says what happened, whatever happened.
fn compile(name: &str, format: Format, bytes: &[u8]) -> (RuleSet, LoadReport) {
    let mut builder = RuleSetBuilder::new().with_intent(format.intent());
    let report = parse_bytes(format, name, bytes, &mut |rule| builder.add(rule));
    let (set, build) = builder.build_with_report();
    let dropped = build.badfiltered + build.rejected.len() as u64;
    let report = LoadReport {
        list: name.to_owned(),
        format: ListFormat::from_core(format),
        accepted: report.accepted,
        skipped: report
            .skipped
            .iter()
            .map(|(r, n)| SkipCount {
                reason: (*r).into(),
                count: *n,
            })
            .collect(),
        errors: report
            .errors
            .iter()
            .map(|e| ListError {
                line: e.line,
                field: e.field.clone(),
                message: e.message.clone(),
            })
            .collect(),
        error_count: report.error_count,
        dropped_when_compiling: dropped,
    };
    (set, report)
}

/// Reads a list file with a size cap.
pub(crate) fn read_list_file(path: &str) -> Result<Vec<u8>, EmbargoError> {
    let p = Path::new(path);
    let meta = std::fs::metadata(p).map_err(|e| EmbargoError::List(format!("{path}: {e}")))?;
    if meta.len() > MAX_LIST_BYTES {
        return Err(EmbargoError::List(format!(
            "{path} is {} bytes; the limit is {MAX_LIST_BYTES}",
            meta.len()
        )));
    }
    std::fs::read(p).map_err(|e| EmbargoError::List(format!("{path}: {e}")))
}

/// "embargo " or "tracker " before a rule's place, for the explanation.
fn intent_text(intent: Option<embargo_policy::Intent>) -> &'static str {
    match intent {
        Some(embargo_policy::Intent::Embargo) => "embargo ",
        Some(embargo_policy::Intent::Tracker) => "tracker ",
        None => "",
    }
}

/// Turns a policy decision into the record the app shows.
pub(crate) fn explain(
    target: String,
    app: Option<&str>,
    d: &embargo_policy::Decision,
) -> CheckResult {
    let verdict: Verdict = d.verdict.into();
    let verb = match verdict {
        Verdict::Allow => "Allowed",
        Verdict::Block => "Blocked",
    };
    let mut rule = None;
    let mut entry = None;
    let rule_text =
        |r: &embargo_policy::RuleRef| format!("list {}, line {}: {}", r.list, r.line, r.rule);
    let (reason, explanation) = match &d.reason {
        Reason::NoMatch => (ReasonKind::NoMatch, "Allowed: no rule matches".to_owned()),
        Reason::AppBlockingOff => (
            ReasonKind::AppBlockingOff,
            "Allowed: blocking is off for this app".to_owned(),
        ),
        Reason::Allowlisted { entry: e } => {
            entry = Some(e.clone());
            (
                ReasonKind::Allowlisted,
                format!("Allowed by the allowlist ({e})"),
            )
        }
        Reason::AppOverride { entry: e } => {
            entry = Some(e.clone());
            (
                ReasonKind::AppOverride,
                format!("{verb} by this app's override ({e})"),
            )
        }
        Reason::FirstParty { owner } => (
            ReasonKind::FirstParty,
            format!("Allowed: {owner} owns both the app and the server (tracker lists only)"),
        ),
        Reason::NameRule { rule: r, exception } => {
            rule = Some(r);
            if *exception {
                (
                    ReasonKind::NameException,
                    format!("Allowed by an exception in {}", rule_text(r)),
                )
            } else {
                (
                    ReasonKind::NameRule,
                    format!("{verb} by {}{}", intent_text(d.intent), rule_text(r)),
                )
            }
        }
        Reason::AddressRule { rule: r } => {
            rule = Some(r);
            (
                ReasonKind::AddressRule,
                format!("{verb} by address rule in {}", rule_text(r)),
            )
        }
        Reason::OwnerRule { rule: r } => {
            rule = Some(r);
            (
                ReasonKind::OwnerRule,
                format!("{verb} by network owner rule in {}", rule_text(r)),
            )
        }
        Reason::CountryRule { rule: r } => {
            rule = Some(r);
            (
                ReasonKind::CountryRule,
                format!("{verb} by country rule in {}", rule_text(r)),
            )
        }
    };
    CheckResult {
        target,
        app: app.map(str::to_owned),
        verdict,
        reason,
        intent: d.intent.map(RuleIntent::from),
        explanation,
        rule: rule.map(|r| RuleSource {
            list: r.list.to_string(),
            line: r.line,
            rule: r.rule.to_string(),
        }),
        entry,
        owner: d.owner.as_ref().map(Attribution::from),
        country: d.country.as_ref().map(Attribution::from),
        certainty: d.certainty.into(),
        category: d.category.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_persist_and_decide() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = RulesStore::open(dir.path(), false).unwrap();
            let report = store
                .set_list(
                    "mine",
                    Some(ListFormat::Hosts),
                    b"0.0.0.0 tracker.example\nnot a line at all !!\n".to_vec(),
                )
                .unwrap();
            assert_eq!(report.accepted, 1);
            assert!(report.error_count >= 1, "{report:?}");
            let c = store.check("tracker.example", None).unwrap();
            assert_eq!(c.verdict, Verdict::Block);
            assert_eq!(c.rule.as_ref().unwrap().line, 1);
            store
                .edit_apps(|a| {
                    a.set_blocking("com.example", false);
                    Ok(())
                })
                .unwrap();
        }
        let store = RulesStore::open(dir.path(), false).unwrap();
        assert_eq!(store.lists().len(), 1);
        assert_eq!(
            store.check("tracker.example", None).unwrap().verdict,
            Verdict::Block
        );
        let c = store.check("tracker.example", Some("com.example")).unwrap();
        assert_eq!(c.verdict, Verdict::Allow);
        assert_eq!(c.reason, ReasonKind::AppBlockingOff);
    }

    #[test]
    fn bad_names_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RulesStore::open(dir.path(), true).unwrap();
        assert!(store.check("", None).is_err());
        assert!(store.check("a b", None).is_err());
        assert!(store.set_list("", None, vec![]).is_err());
        assert!(store.set_list("x", None, vec![0, 159, 146, 150]).is_err());
    }
}
