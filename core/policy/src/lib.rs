//! Embargo's policy engine: decides, for every DNS question and connection attempt of every app,
//! whether it may leave the device, and says why.
//!
//! The engine is IO-free: rule sources are parsed from bytes the caller has read, and every
//! decision is a pure function of a [`Query`] and the loaded rules.
//!
//! - [`RuleSetBuilder`] compiles [`Rule`]s into a [`RuleSet`]: a compact, checksummed,
//!   memory-mappable file format ([`format`]) that is used in place.
//! - [`IpDb`] maps addresses to their network owner (ASN) and country.
//! - [`AppRules`] holds a person's per-app choices.
//! - [`Policy`] combines them; [`Policy::decide`] is where precedence is written.
//! - [`PolicyHandle`] swaps the active policy atomically while traffic flows.

pub mod apps;
mod builtin;
pub mod decision;
pub mod format;
mod handle;
pub mod ipdb;
pub mod parse;
mod policy;
pub mod rules;
mod ruleset;

pub use apps::{AppRules, AppSettings, Override, Target};
pub use builtin::{
    rule_sets as builtin_rule_sets, shared_ipdb as builtin_ipdb,
    static_ipdb as builtin_static_ipdb, EmbargoLevel, BUILTIN_FULL_LIST_NAME, BUILTIN_FULL_RULES,
    BUILTIN_LIST_NAME, BUILTIN_RULES,
};
pub use decision::{
    Attribution, AttributionSource, Certainty, Decision, NameSource, Protocol, Query, Reason,
    RuleRef, Verdict,
};
pub use format::CompiledError;
pub use handle::PolicyHandle;
pub use ipdb::{AsnInfo, CountryInfo, IpDb, IpDbFormat};
pub use policy::Policy;
pub use rules::{
    Action, AppOwner, DnsTypeFilter, DomainOwner, Intent, IpNet, LoadError, LoadReport,
    NamePattern, NameRule, Rule, SkipReason,
};
pub use ruleset::{Backing, BuildReport, RuleSet, RuleSetBuilder};
