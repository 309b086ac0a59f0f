//! Rule lists, app rules and the decision check: the FFI's types over the application layer.
//!
//! The storage directory is `embargo_app`'s state directory (`embargo_app::store`: the same
//! layout as the Linux `--state-dir`); lists handed in as bytes are kept there as stored copies
//! and compiled again on start (raw text is the stable format). Every change goes through
//! `embargo_app::Rules`, which builds a whole new policy off the packet path and swaps it into
//! the [`PolicyHandle`] the running engine reads, so a change applies to the next decision.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use embargo_app::store::{DefaultRules, Store};
use embargo_app::{LoadedList, Rules};
use embargo_policy::parse::Format;
use embargo_policy::{
    AppRules, AttributionSource, Policy, PolicyHandle, Query, Reason, SkipReason,
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
    pub(crate) fn to_core(self) -> Format {
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

    pub(crate) fn from_core(f: Format) -> ListFormat {
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
    /// Where it is downloaded from (a list added by URL or from the catalogue).
    pub url: Option<String>,
    /// When its server was last asked for a new version (ms since the Unix epoch; 0 never).
    pub checked_at_ms: i64,
    /// Seconds between checks (daily unless set when added).
    pub interval_secs: u64,
    /// Why its last update was refused (the last good copy stays in force); `None` when the
    /// last check went well.
    pub update_refused: Option<String>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, uniffi::Enum)]
#[serde(rename_all = "snake_case")]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, uniffi::Enum)]
#[serde(rename_all = "snake_case")]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, uniffi::Record)]
pub struct RuleSource {
    /// List name (`builtin` for the built-in list).
    pub list: String,
    /// 1-based line in the list.
    pub line: u32,
    /// The rule as written.
    pub rule: String,
}

/// Where an owner or country fact came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, uniffi::Enum)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A tracker list that names the owner of a domain.
    List,
    /// An IP database (by address).
    Database,
}

/// One fact about an endpoint (owner or country), who said so and how sure it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, uniffi::Record)]
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
            certainty: a.certainty,
        }
    }
}

/// The answer to [`crate::Embargo::check`]: what would happen and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, uniffi::Record)]
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

/// The rules state: the application layer's [`Rules`] behind the FFI's types.
pub(crate) struct RulesStore {
    rules: Rules,
}

fn storage_err(e: anyhow::Error) -> EmbargoError {
    EmbargoError::Storage(format!("{e:#}"))
}

impl RulesStore {
    /// Opens the rules state in `store` (created if missing) and compiles every enabled list.
    /// `use_builtin` false leaves the built-in list out whatever level is stored.
    pub(crate) fn open(store: Store, use_builtin: bool) -> Result<RulesStore, EmbargoError> {
        let base = Policy::new(vec![], embargo_policy::builtin_ipdb(), AppRules::default());
        Self::open_as(store, use_builtin, base, Rules::new)
    }

    /// Opens the rules state in `store` over the rule sets another process compiled into it
    /// (`rules.compiled`, mapped; see [`embargo_app::compiled`]): no list is parsed here, and
    /// a missing, stale or foreign file is an error naming it.
    pub(crate) fn open_mapped(store: Store, use_builtin: bool) -> Result<RulesStore, EmbargoError> {
        let base = Policy::new(
            vec![],
            embargo_policy::builtin_static_ipdb(),
            AppRules::default(),
        );
        Self::open_as(store, use_builtin, base, Rules::mapped)
    }

    fn open_as(
        store: Store,
        use_builtin: bool,
        base: Policy,
        rules: fn(Store, Arc<Policy>, Option<DefaultRules>) -> Rules,
    ) -> Result<RulesStore, EmbargoError> {
        store.create().map_err(storage_err)?;
        let flag = (!use_builtin).then_some(DefaultRules::Off);
        let rules = rules(store, Arc::new(base), flag);
        // One list that cannot be read must not stop the others (or the tunnel): it is left
        // out and named in the report.
        let report = rules.reload().map_err(storage_err)?;
        for note in report.notes.iter().filter(|n| !n.starts_with("built-in")) {
            log::error!("{note}");
        }
        Ok(RulesStore { rules })
    }

    /// The state directory (list downloads run outside the rules lock, over the store).
    pub(crate) fn store(&self) -> &Store {
        self.rules.store()
    }

    /// Reads the state again from the directory (another process changed it: iOS's app, while
    /// the extension runs) and swaps the policy in the same handle, so a running engine
    /// decides with it from its next decision.
    pub(crate) fn reload(&mut self) -> Result<(), EmbargoError> {
        self.rules.reload().map_err(storage_err)?;
        Ok(())
    }

    /// An error when the rule sets are mapped from another process's compilation: the lists
    /// (and the built-in level, compiled with them) change in that process.
    pub(crate) fn changeable(&self) -> Result<(), EmbargoError> {
        if self.rules.is_mapped() {
            return Err(EmbargoError::State(format!(
                "the lists are compiled by another process and only mapped here ({}): change \
                 them there, compile (compile_rules) and reload",
                self.rules.store().compiled_rules_file().display()
            )));
        }
        Ok(())
    }

    /// Writes the rule sets of the policy the store asks for to `rules.compiled`, for a
    /// process that maps them. Returns (rules, the file's size).
    pub(crate) fn compile(&mut self) -> Result<(u64, u64), EmbargoError> {
        let (report, bytes) = self.rules.compile().map_err(storage_err)?;
        Ok((report.rules, bytes))
    }

    /// The handle the engine decides through.
    pub(crate) fn handle(&self) -> Arc<PolicyHandle> {
        self.rules.handle()
    }

    /// Adds a list, or replaces the list of the same name.
    pub(crate) fn set_list(
        &mut self,
        name: &str,
        format: Option<ListFormat>,
        bytes: Vec<u8>,
    ) -> Result<LoadReport, EmbargoError> {
        self.changeable()?;
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
        let loaded = embargo_app::load_list(name, &bytes, format.map(ListFormat::to_core))
            .map_err(|e| EmbargoError::List(format!("{e:#}: give the format explicitly")))?;
        let report = load_report(name, &loaded);
        self.rules
            .put_list(name, &bytes, loaded)
            .map_err(storage_err)?;
        Ok(report)
    }

    /// Removes a list; `false` if there was none of that name.
    pub(crate) fn remove_list(&mut self, name: &str) -> Result<bool, EmbargoError> {
        self.changeable()?;
        self.rules.remove_list(name).map_err(storage_err)
    }

    /// Turns a list on or off without forgetting it.
    pub(crate) fn set_list_enabled(
        &mut self,
        name: &str,
        enabled: bool,
    ) -> Result<(), EmbargoError> {
        self.changeable()?;
        if !self
            .rules
            .set_list_enabled(name, enabled)
            .map_err(storage_err)?
        {
            return Err(EmbargoError::InvalidInput(format!(
                "no list named {name:?}"
            )));
        }
        Ok(())
    }

    /// The catalogue.
    pub(crate) fn lists(&self) -> Result<Vec<ListInfo>, EmbargoError> {
        let lists = self.rules.store().load_lists().map_err(storage_err)?;
        Ok(lists
            .lists
            .iter()
            .map(|l| ListInfo {
                name: l.name.clone(),
                format: l
                    .format
                    .as_deref()
                    .and_then(Format::from_name)
                    .map(ListFormat::from_core)
                    .unwrap_or(ListFormat::Embargo),
                enabled: l.enabled,
                accepted: l.counts.accepted,
                error_count: l.counts.errors,
                bytes: l.counts.bytes,
                updated_at_ms: l.updated_ms,
                url: match &l.source {
                    embargo_app::store::ListSource::Url(u) => Some(u.clone()),
                    _ => None,
                },
                checked_at_ms: l.freshness.checked_ms,
                interval_secs: embargo_app::fetch::interval(l).as_secs(),
                update_refused: l.freshness.failure.as_ref().map(|f| f.reason.clone()),
            })
            .collect())
    }

    /// The built-in list's level (telemetry when it is stored as off).
    pub(crate) fn embargo_level(&self) -> Result<EmbargoLevel, EmbargoError> {
        let settings = self.rules.store().load_settings().map_err(storage_err)?;
        Ok(match settings.default_rules {
            DefaultRules::Full => EmbargoLevel::Full,
            DefaultRules::Telemetry | DefaultRules::Off => EmbargoLevel::Telemetry,
        })
    }

    /// Sets the built-in list's level, saves and publishes it.
    pub(crate) fn set_embargo_level(&mut self, level: EmbargoLevel) -> Result<(), EmbargoError> {
        self.changeable()?;
        let default_rules = match level.to_core() {
            embargo_policy::EmbargoLevel::Full => DefaultRules::Full,
            embargo_policy::EmbargoLevel::Telemetry => DefaultRules::Telemetry,
        };
        self.rules
            .set_default_rules(default_rules)
            .map_err(storage_err)
    }

    /// Changes the app rules, saves and publishes them.
    pub(crate) fn edit_apps(
        &mut self,
        edit: impl FnOnce(&mut AppRules) -> Result<(), EmbargoError>,
    ) -> Result<(), EmbargoError> {
        let mut apps = self.apps()?;
        edit(&mut apps)?;
        self.rules
            .edit_apps(|stored| {
                *stored = apps;
                Ok(())
            })
            .map_err(storage_err)
    }

    /// The app rules.
    pub(crate) fn apps(&self) -> Result<AppRules, EmbargoError> {
        self.rules.store().load_app_rules().map_err(storage_err)
    }

    /// The settings of one app, as the app sees them.
    pub(crate) fn app_settings(&self, app: &str) -> Result<AppSettings, EmbargoError> {
        let apps = self.apps()?;
        let s = apps.app(app).cloned().unwrap_or_default();
        Ok(AppSettings {
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
        })
    }

    /// Explains the decision for a name or an address.
    pub(crate) fn check(
        &self,
        target: &str,
        app: Option<&str>,
    ) -> Result<CheckResult, EmbargoError> {
        let target = target.trim();
        let policy = self.rules.handle().load();
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

/// The FFI's report of one load.
fn load_report(name: &str, loaded: &LoadedList) -> LoadReport {
    let report = &loaded.report;
    LoadReport {
        list: name.to_owned(),
        format: ListFormat::from_core(loaded.format),
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
        dropped_when_compiling: loaded.build.badfiltered + loaded.build.rejected.len() as u64,
    }
}

/// Reads a list file with a size cap (a phone's: [`MAX_LIST_BYTES`]).
pub(crate) fn read_list_file(path: &str) -> Result<Vec<u8>, EmbargoError> {
    let p = Path::new(path);
    let meta = std::fs::metadata(p).map_err(|e| EmbargoError::List(format!("{path}: {e}")))?;
    if meta.len() > MAX_LIST_BYTES {
        return Err(EmbargoError::List(format!(
            "{path} is {} bytes; the limit is {MAX_LIST_BYTES}",
            meta.len()
        )));
    }
    embargo_app::input::read(p, "list").map_err(|e| EmbargoError::List(format!("{e:#}")))
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
    let verdict: Verdict = d.verdict;
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
        certainty: d.certainty,
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
            let mut store = RulesStore::open(Store::new(dir.path()), false).unwrap();
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
        let store = RulesStore::open(Store::new(dir.path()), false).unwrap();
        assert_eq!(store.lists().unwrap().len(), 1);
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
        let mut store = RulesStore::open(Store::new(dir.path()), true).unwrap();
        assert!(store.check("", None).is_err());
        assert!(store.check("a b", None).is_err());
        assert!(store.set_list("", None, vec![]).is_err());
        assert!(store.set_list("x", None, vec![0, 159, 146, 150]).is_err());
    }
}
