//! Embargo's policy engine: decides, for every DNS question and connection attempt of every app,
//! whether it may leave the device, and says why.
//!
//! The engine is IO-free: rule sources are parsed from bytes the caller has read, and every
//! decision is a pure function of a [`Query`] and the loaded rules.

pub mod decision;
pub mod parse;
pub mod rules;

pub use decision::{
    Attribution, AttributionSource, Certainty, Decision, NameSource, Protocol, Query, Reason,
    RuleRef, Verdict,
};
pub use rules::{
    Action, AppOwner, DnsTypeFilter, DomainOwner, IpNet, LoadError, LoadReport, NamePattern,
    NameRule, Rule, SkipReason,
};
