//! The parsed form of every rule source: what a list *says*, before it is compiled into a
//! matcher. Parsers (`crate::parse`) produce these; the compiler (`crate::compile`) consumes them.
//!
//! Owner and country facts are kept apart from block rules: a tracker list that says "this
//! domain belongs to ByteDance" is attribution, not a decision.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::decision::RuleRef;

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Block,
    /// An exception (`@@` in AdBlock syntax, an allowlist entry).
    Allow,
}

/// Why a list's rules block: the two kinds of rule Embargo knows, shown in every decision.
///
/// The first-party exception (an app may reach its own company's endpoints) applies to
/// *tracker* rules only: third-party tracker lists block an app's own servers by accident, and
/// the app breaks. *Embargo* rules are the person's statement that a company or country must
/// not get their data, so they apply to the company's own apps too. Address-owner and country
/// rules (`AS45090`, `owner: X`, `country: CN`) are embargo rules whatever list holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// A third-party tracker list (hosts, AdBlock, DuckDuckGo, Disconnect, ...).
    #[default]
    Tracker,
    /// An embargo: Embargo's own lists and every owner, ASN and country rule.
    Embargo,
}

impl Intent {
    /// `tracker` or `embargo`.
    pub fn name(self) -> &'static str {
        match self {
            Intent::Tracker => "tracker",
            Intent::Embargo => "embargo",
        }
    }

    /// The intent for a `--intent` value.
    pub fn from_name(s: &str) -> Option<Intent> {
        match s {
            "tracker" => Some(Intent::Tracker),
            "embargo" => Some(Intent::Embargo),
            _ => None,
        }
    }
}

/// Which names a name rule covers. Names are lowercase ASCII (IDNA already applied), no
/// trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum NamePattern {
    /// Exactly this name (hosts files, plain lists in exact mode).
    Exact(String),
    /// This name and every name below it (`||name^`, `*.name` lists, hagezi lists,
    /// dnsmasq `address=/name/`, unbound `local-zone`).
    Subtree(String),
    /// A glob over the whole name where `*` matches any run of characters (AdBlock `*`),
    /// with `|` anchors already resolved into `anchored_start` / `anchored_end`.
    Glob {
        pattern: String,
        anchored_start: bool,
        anchored_end: bool,
    },
    /// `/regex/` rules; compiled with a size limit so that cost is bounded.
    Regex(String),
    /// A name whose labels hold `*` (Embargo's native `log*.tiktokv.com`): each `*` matches
    /// any run, possibly empty, of characters inside one label (never a dot). The labels right
    /// of the last one with a `*` (the fixed suffix, at least two) are indexed like a plain
    /// name; the labels left of it are matched label by label. Covers the names matched and
    /// their subtrees, or only the names matched when `exact`.
    Labels { pattern: String, exact: bool },
}

/// A DNS-record-type filter (`$dnstype=A|~AAAA`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DnsTypeFilter {
    /// Types the rule applies to; empty = all types not excluded.
    pub include: Vec<u16>,
    /// Types the rule never applies to.
    pub exclude: Vec<u16>,
}

/// A rule over host names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRule {
    pub pattern: NamePattern,
    pub action: Action,
    /// `$important`: wins over exceptions that are not themselves important.
    pub important: bool,
    pub dnstype: Option<DnsTypeFilter>,
    /// `$denyallow=a.com|b.com`: the rule does not apply to these names and their subdomains.
    pub denyallow: Vec<String>,
    /// `$badfilter`: this rule disables the identical rule without `$badfilter`.
    pub badfilter: bool,
    pub source: RuleRef,
}

/// An IP network (an address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

/// Who owns a domain, as a tracker list says (DuckDuckGo `trackers[].owner`,
/// Disconnect organisations, the built-in list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainOwner {
    /// The domain; the fact covers its subdomains too.
    pub domain: String,
    /// Stable owner key (e.g. "ByteDance Ltd.").
    pub owner: String,
    /// Name to show (e.g. "ByteDance").
    pub display_name: String,
    pub source: RuleRef,
}

/// Which owner an app belongs to (DuckDuckGo `packageNames`), for the first-party exception.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppOwner {
    pub app: String,
    pub owner: String,
    pub source: RuleRef,
}

/// The category a list gives a run of its lines (Disconnect's `Advertising`, an Exodus
/// tracker's `Analytics`): decisions made by a rule on lines `first_line..=last_line` of
/// `source.list` carry it. Attribution, not a decision: it blocks nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryRange {
    pub category: String,
    pub first_line: u32,
    /// Inclusive; `u32::MAX` for "to the end of the list".
    pub last_line: u32,
    pub source: RuleRef,
}

/// One statement of a rule source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Rule {
    Name(NameRule),
    Address {
        net: IpNet,
        action: Action,
        source: RuleRef,
    },
    /// Block (or allow) every address an AS announces (`AS45090`).
    Asn {
        asn: u32,
        action: Action,
        source: RuleRef,
    },
    /// Block (or allow) every endpoint whose owner has this name (matched case-insensitively
    /// against list owners and AS organisation names).
    OwnerName {
        owner: String,
        action: Action,
        source: RuleRef,
    },
    /// Block (or allow) every address located in this ISO 3166-1 alpha-2 country.
    Country {
        code: [u8; 2],
        action: Action,
        source: RuleRef,
    },
    DomainOwner(DomainOwner),
    AppOwner(AppOwner),
    /// A category over a range of lines of the list (see [`CategoryRange`]).
    Category(CategoryRange),
}

/// Why a line was skipped rather than accepted (counted per reason in a [`LoadReport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// A modifier Embargo does not implement: the whole rule is ignored, as the syntax says.
    UnsupportedModifier,
    /// A cosmetic or URL rule that cannot apply to DNS or connections.
    NotApplicable,
    /// A regex over the size/complexity budget.
    RegexTooCostly,
    /// Local names such as `localhost`, `0.0.0.0`, `broadcasthost` in hosts files.
    LocalName,
    /// A syntactically valid entry that is inert here (e.g. DDG `default: ignore`).
    Inert,
}

/// A problem that names where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadError {
    pub list: String,
    /// 1-based line; 0 when the problem is the whole file (binary, not JSON, too large).
    pub line: u32,
    /// The field or token at fault, when there is one.
    pub field: Option<String>,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.list)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for LoadError {}

/// What loading one rule source did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadReport {
    pub list: String,
    pub accepted: u64,
    /// Skipped lines per reason.
    pub skipped: std::collections::BTreeMap<SkipReason, u64>,
    /// The first errors, with file and line (capped; `error_count` has the total).
    pub errors: Vec<LoadError>,
    pub error_count: u64,
}
