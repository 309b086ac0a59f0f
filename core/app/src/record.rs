//! The bridge from engine events to the history: how an engine decision becomes a history row.
//!
//! Every shell records history through [`crate::start`], so the Linux `embargo run` and the
//! apps behind the UniFFI bindings write identical rows. It lives here, above the engine and
//! the history, so that the history stays a leaf (it knows neither engine nor policy).

use std::sync::Mutex;
use std::time::Instant;

use embargo_engine::{DecisionEvent, FlowId};
use embargo_history::{Event, Health, History, Millis, OpenOutcome, Protocol, Recorder};
use embargo_policy::{AttributionSource, Reason};

/// Converts the engine's monotonic instants into wall-clock milliseconds for the history.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    instant: Instant,
    unix_ms: i64,
}

impl WallClock {
    /// The clock as of now.
    pub fn now() -> WallClock {
        WallClock {
            instant: Instant::now(),
            unix_ms: embargo_history::now_ms(),
        }
    }

    /// The wall-clock time of `at` (ms since the Unix epoch).
    pub fn ms(&self, at: Instant) -> i64 {
        match at.checked_duration_since(self.instant) {
            Some(d) => self.unix_ms + d.as_millis() as i64,
            None => self.unix_ms - self.instant.duration_since(at).as_millis() as i64,
        }
    }
}

/// The history row for one engine decision made at `time_ms` (wall clock: the engine's
/// `Instant` cannot be stored).
///
/// A DNS question (the DNS flow, or any decision with a record type) is recorded as
/// [`Protocol::Dns`] without address or port: its "destination" is the resolver the app
/// asked, not an endpoint. The rule column holds the rule as written for rule decisions and
/// a short explanation for allowlist, app-override, first-party and blocking-off decisions.
pub fn history_event(time_ms: Millis, d: &DecisionEvent) -> Event {
    let is_dns = d.flow == FlowId::DNS || d.dns_type.is_some();
    let protocol = if is_dns { Protocol::Dns } else { d.protocol };
    let mut e = Event::new(time_ms, protocol, d.decision.verdict);
    e.app = d.app.clone();
    e.name = d.name.clone();
    if !is_dns {
        e.addr = Some(d.addr);
        e.port = d.port;
    }
    match &d.decision.reason {
        Reason::NameRule { rule, .. }
        | Reason::AddressRule { rule }
        | Reason::OwnerRule { rule }
        | Reason::CountryRule { rule } => {
            e.rule = Some(rule.rule.to_string());
            e.list = Some(rule.list.to_string());
            e.line = Some(rule.line);
        }
        Reason::Allowlisted { entry } => e.rule = Some(format!("allowlist: {entry}")),
        Reason::AppOverride { entry } => e.rule = Some(format!("app override: {entry}")),
        Reason::FirstParty { owner } => e.rule = Some(format!("first party: {owner}")),
        Reason::AppBlockingOff => e.rule = Some("blocking off for this app".into()),
        _ => {}
    }
    let source = |s: &AttributionSource| match s {
        AttributionSource::List { list } => list.clone(),
        AttributionSource::Database { database } => database.clone(),
    };
    if let Some(owner) = &d.decision.owner {
        e.owner = Some(owner.value.clone());
        e.owner_source = Some(source(&owner.source));
    }
    if let Some(country) = &d.decision.country {
        e.country = Some(country.value.clone());
        e.country_source = Some(source(&country.source));
    }
    e.category = d.decision.category.clone();
    e.certainty = d.decision.certainty;
    e
}

/// The history's health as a status screen shows it (`embargo status`, the FFI's
/// `TunnelStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryHealth {
    /// Commits go through (`false`: they fail, e.g. storage full; events are held and retried).
    pub ok: bool,
    /// Since when commits fail (ms since the epoch), while they do.
    pub failing_since_ms: Option<i64>,
    /// Events committed since the history opened.
    pub committed: u64,
    /// Events dropped since the history opened (queue or retry buffer full).
    pub dropped: u64,
    /// The latest problem: the failing commit's error, or the damaged file set aside at open.
    /// Kept after writes resume: nothing else says history stopped for a while.
    pub last_error: Option<String>,
}

/// Watches a history's health, remembering its latest problem.
pub struct HistoryWatch {
    recorder: Recorder,
    last: Mutex<Option<String>>,
}

impl HistoryWatch {
    /// Watches `history`; a damaged file set aside when it opened is its first problem.
    pub fn new(history: &History) -> HistoryWatch {
        let last = match history.open_outcome() {
            OpenOutcome::RecoveredFromCorruption { moved_to, error } => {
                log::warn!("history was damaged and set aside: {error}");
                Some(format!(
                    "damaged at start ({error}); moved to {}",
                    moved_to.display()
                ))
            }
            _ => None,
        };
        HistoryWatch {
            recorder: history.recorder(),
            last: Mutex::new(last),
        }
    }

    /// The health now.
    pub fn health(&self) -> HistoryHealth {
        let counters = self.recorder.counters();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let (ok, failing_since_ms) = match self.recorder.health() {
            Health::Healthy => (true, None),
            Health::Failing { fault, since_ms } => {
                *last = Some(fault.to_string());
                (false, Some(since_ms))
            }
        };
        HistoryHealth {
            ok,
            failing_since_ms,
            committed: counters.committed,
            dropped: counters.dropped,
            last_error: last.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embargo_policy::{Attribution, Certainty, NameSource, RuleRef, Verdict};
    use std::time::Instant;

    fn decision(flow: FlowId, verdict: Verdict, reason: Reason) -> DecisionEvent {
        DecisionEvent {
            time: Instant::now(),
            flow,
            app: Some("com.example".into()),
            name: Some("log.tracker.test".into()),
            name_source: NameSource::TlsSni,
            names_sharing_address: 1,
            addr: "203.0.113.7".parse().unwrap(),
            port: 443,
            protocol: embargo_policy::Protocol::Tcp,
            dns_type: None,
            decision: embargo_policy::Decision {
                verdict,
                reason,
                intent: None,
                owner: Some(Attribution {
                    value: "Tracker Corp".into(),
                    asn: None,
                    source: AttributionSource::List {
                        list: "ddg-app".into(),
                    },
                    certainty: embargo_policy::Certainty::Certain,
                }),
                country: None,
                certainty: embargo_policy::Certainty::Inferred,
                category: None,
            },
        }
    }

    #[test]
    fn a_rule_block_keeps_endpoint_rule_and_owner() {
        let rule = RuleRef {
            list: "e2e.rules".into(),
            line: 3,
            rule: "tracker.test".into(),
        };
        let d = decision(
            FlowId(7),
            Verdict::Block,
            Reason::NameRule {
                rule,
                exception: false,
            },
        );
        let mut d = d;
        d.decision.category = Some("Advertising".into());
        let e = history_event(1_000, &d);
        assert_eq!(e.category.as_deref(), Some("Advertising"));
        assert_eq!(e.time_ms, 1_000);
        assert_eq!((e.protocol, e.verdict), (Protocol::Tcp, Verdict::Block));
        assert_eq!(e.addr, Some(d.addr));
        assert_eq!(e.port, 443);
        assert_eq!(e.app.as_deref(), Some("com.example"));
        assert_eq!(e.name.as_deref(), Some("log.tracker.test"));
        assert_eq!(
            (e.rule.as_deref(), e.list.as_deref(), e.line),
            (Some("tracker.test"), Some("e2e.rules"), Some(3))
        );
        assert_eq!(e.owner.as_deref(), Some("Tracker Corp"));
        assert_eq!(e.owner_source.as_deref(), Some("ddg-app"));
        assert_eq!(
            (e.country.as_deref(), e.certainty),
            (None, Certainty::Inferred)
        );
    }

    #[test]
    fn a_dns_question_has_no_endpoint_and_an_exception_is_explained() {
        let mut d = decision(
            FlowId::DNS,
            Verdict::Allow,
            Reason::Allowlisted {
                entry: "tracker.test".into(),
            },
        );
        d.dns_type = Some(1);
        let e = history_event(0, &d);
        assert_eq!((e.protocol, e.verdict), (Protocol::Dns, Verdict::Allow));
        assert_eq!((e.addr, e.port), (None, 0));
        assert_eq!(e.rule.as_deref(), Some("allowlist: tracker.test"));
        assert_eq!((e.list.as_deref(), e.line), (None, None));
    }
}
