//! Stable byte forms of [`TunnelStatus`] and [`LiveEvent`], for platforms where the tunnel
//! runs in another process than the screens (iOS: the extension answers the app's provider
//! messages with them). JSON with fixed keys: a field added later is ignored by an older
//! reader, and a field missing or of the wrong type is an error naming it. A live event is
//! wrapped with the version of its form (`{"version":1,"event":{"kind":...}}`), so a reader
//! refuses a form it does not know by its number instead of misreading it.

use serde_json::{json, Map, Value};

use crate::embargo::TunnelStatus;
use crate::error::guard;
use crate::events::{LiveEvent, TunnelState};
use crate::EmbargoError;

/// The version of [`encode_live_event`]'s form.
pub const LIVE_EVENT_VERSION: u64 = 1;

/// `event` as bytes ([`decode_live_event`] reads them back).
#[uniffi::export]
pub fn encode_live_event(event: LiveEvent) -> Vec<u8> {
    // Serializing these plain records and enums cannot fail (no map with non-string keys).
    let event = serde_json::to_value(&event).unwrap_or(Value::Null);
    json!({ "version": LIVE_EVENT_VERSION, "event": event })
        .to_string()
        .into_bytes()
}

/// Reads bytes made by [`encode_live_event`]. Errors say what is wrong: not JSON (a
/// truncated message), a version this build does not read, or the field at fault.
#[uniffi::export]
pub fn decode_live_event(bytes: Vec<u8>) -> Result<LiveEvent, EmbargoError> {
    guard(|| {
        let bad = |what: String| EmbargoError::InvalidInput(format!("live event: {what}"));
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("not JSON ({e}; {} bytes: truncated?)", bytes.len())))?;
        let m = v.as_object().ok_or_else(|| bad("not an object".into()))?;
        match m.get("version") {
            Some(Value::Number(n)) if n.as_u64() == Some(LIVE_EVENT_VERSION) => {}
            Some(Value::Number(n)) => {
                return Err(bad(format!(
                    "version {n}; this build reads version {LIVE_EVENT_VERSION}"
                )))
            }
            Some(_) => return Err(bad("field version: not a number".into())),
            None => return Err(bad("field version: missing".into())),
        }
        let event = m
            .get("event")
            .ok_or_else(|| bad("field event: missing".into()))?;
        serde_json::from_value(event.clone()).map_err(|e| bad(format!("field event: {e}")))
    })
}

fn state_name(s: TunnelState) -> &'static str {
    match s {
        TunnelState::Stopped => "stopped",
        TunnelState::Running => "running",
        TunnelState::Failed => "failed",
    }
}

/// `status` as bytes ([`decode_tunnel_status`] reads them back).
#[uniffi::export]
pub fn encode_tunnel_status(status: TunnelStatus) -> Vec<u8> {
    let v = json!({
        "state": state_name(status.state),
        "error": status.error,
        "started_at_ms": status.started_at_ms,
        "packets_in": status.packets_in,
        "packets_out": status.packets_out,
        "bytes_up": status.bytes_up,
        "bytes_down": status.bytes_down,
        "tcp_flows": status.tcp_flows,
        "udp_flows": status.udp_flows,
        "flows_blocked": status.flows_blocked,
        "dns_blocked": status.dns_blocked,
        "dns_forwarded": status.dns_forwarded,
        "memory_bytes": status.memory_bytes,
        "events_dropped": status.events_dropped,
        "history_ok": status.history_ok,
        "history_dropped": status.history_dropped,
        "history_last_error": status.history_last_error,
    });
    v.to_string().into_bytes()
}

fn bad(field: &str, what: &str) -> EmbargoError {
    EmbargoError::InvalidInput(format!("tunnel status: field {field}: {what}"))
}

fn u64_of(m: &Map<String, Value>, field: &str) -> Result<u64, EmbargoError> {
    m.get(field)
        .ok_or_else(|| bad(field, "missing"))?
        .as_u64()
        .ok_or_else(|| bad(field, "not an unsigned integer"))
}

fn text_of(m: &Map<String, Value>, field: &str) -> Result<Option<String>, EmbargoError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(field, "not a string")),
    }
}

/// Reads bytes made by [`encode_tunnel_status`]. Errors name the field that is wrong.
#[uniffi::export]
pub fn decode_tunnel_status(bytes: Vec<u8>) -> Result<TunnelStatus, EmbargoError> {
    guard(|| {
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| EmbargoError::InvalidInput(format!("tunnel status: not JSON ({e})")))?;
        let m = v
            .as_object()
            .ok_or_else(|| EmbargoError::InvalidInput("tunnel status: not an object".into()))?;
        let state = match m.get("state").and_then(Value::as_str) {
            Some("stopped") => TunnelState::Stopped,
            Some("running") => TunnelState::Running,
            Some("failed") => TunnelState::Failed,
            Some(other) => return Err(bad("state", &format!("unknown state {other:?}"))),
            None => return Err(bad("state", "missing or not a string")),
        };
        let started_at_ms = match m.get("started_at_ms") {
            None | Some(Value::Null) => None,
            Some(n) => Some(
                n.as_i64()
                    .ok_or_else(|| bad("started_at_ms", "not an integer"))?,
            ),
        };
        Ok(TunnelStatus {
            state,
            error: text_of(m, "error")?,
            started_at_ms,
            packets_in: u64_of(m, "packets_in")?,
            packets_out: u64_of(m, "packets_out")?,
            bytes_up: u64_of(m, "bytes_up")?,
            bytes_down: u64_of(m, "bytes_down")?,
            tcp_flows: u64_of(m, "tcp_flows")?,
            udp_flows: u64_of(m, "udp_flows")?,
            flows_blocked: u64_of(m, "flows_blocked")?,
            dns_blocked: u64_of(m, "dns_blocked")?,
            dns_forwarded: u64_of(m, "dns_forwarded")?,
            memory_bytes: u64_of(m, "memory_bytes")?,
            events_dropped: u64_of(m, "events_dropped")?,
            history_ok: m
                .get("history_ok")
                .ok_or_else(|| bad("history_ok", "missing"))?
                .as_bool()
                .ok_or_else(|| bad("history_ok", "not a boolean"))?,
            history_dropped: u64_of(m, "history_dropped")?,
            history_last_error: text_of(m, "history_last_error")?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ConnectionEvent;
    use crate::records::{Certainty, Protocol, Verdict};
    use crate::rules::{Attribution, CheckResult, ReasonKind, RuleIntent, RuleSource, SourceKind};

    fn decision() -> LiveEvent {
        LiveEvent::Decision {
            event: ConnectionEvent {
                time_ms: 1_765_000_000_123,
                app: Some("com.zhiliaoapp.musically".into()),
                name: Some("log.tiktokv.com".into()),
                addr: "10.111.0.1".into(),
                port: 53,
                protocol: Protocol::Dns,
                decision: CheckResult {
                    target: "log.tiktokv.com".into(),
                    app: Some("com.zhiliaoapp.musically".into()),
                    verdict: Verdict::Block,
                    reason: ReasonKind::NameRule,
                    intent: Some(RuleIntent::Embargo),
                    explanation: "Blocked by list builtin, line 12: log*.tiktokv.com".into(),
                    rule: Some(RuleSource {
                        list: "builtin".into(),
                        line: 12,
                        rule: "log*.tiktokv.com".into(),
                    }),
                    entry: None,
                    owner: Some(Attribution {
                        value: "ByteDance".into(),
                        asn: Some(396986),
                        source_kind: SourceKind::Database,
                        source: "ip-location-db/asn-ipv4 (subset)".into(),
                        certainty: Certainty::Inferred,
                    }),
                    country: None,
                    certainty: Certainty::Certain,
                    category: Some("Analytics \u{1F4CA} \"quoted\"".into()),
                },
            },
        }
    }

    fn events() -> Vec<LiveEvent> {
        vec![
            decision(),
            LiveEvent::Error {
                message: "packet sink failed: \0 é".into(),
            },
            LiveEvent::StateChanged {
                state: TunnelState::Failed,
                message: Some("tunnel failed".into()),
            },
            LiveEvent::StateChanged {
                state: TunnelState::Running,
                message: None,
            },
        ]
    }

    #[test]
    fn live_events_round_trip_and_ignore_fields_they_do_not_know() {
        for e in events() {
            assert_eq!(decode_live_event(encode_live_event(e.clone())).unwrap(), e);
            let mut v: Value = serde_json::from_slice(&encode_live_event(e.clone())).unwrap();
            v["added_later"] = json!(1);
            v["event"]["added_later"] = json!({"x": [1]});
            assert_eq!(decode_live_event(v.to_string().into_bytes()).unwrap(), e);
        }
    }

    /// The form is pinned: this text must keep decoding (an app and an extension of
    /// different builds meet after an update).
    #[test]
    fn the_version_1_form_is_stable() {
        let text =
            r#"{"version":1,"event":{"kind":"state_changed","state":"failed","message":"x"}}"#;
        assert_eq!(
            decode_live_event(text.as_bytes().to_vec()).unwrap(),
            LiveEvent::StateChanged {
                state: TunnelState::Failed,
                message: Some("x".into())
            }
        );
        let encoded: Value = serde_json::from_slice(&encode_live_event(decision())).unwrap();
        let event = &encoded["event"];
        assert_eq!(encoded["version"], json!(1));
        assert_eq!(event["kind"], json!("decision"));
        assert_eq!(event["event"]["protocol"], json!("dns"));
        assert_eq!(event["event"]["decision"]["reason"], json!("name_rule"));
        assert_eq!(
            event["event"]["decision"]["owner"]["source_kind"],
            json!("database")
        );
        assert_eq!(event["event"]["decision"]["verdict"], json!("block"));
    }

    #[test]
    fn bad_live_events_are_errors_saying_why() {
        let says = |bytes: &[u8], what: &str| {
            let e = decode_live_event(bytes.to_vec()).unwrap_err().to_string();
            assert!(e.contains("live event") && e.contains(what), "{what}: {e}");
        };
        says(
            br#"{"version":2,"event":{}}"#,
            "version 2; this build reads version 1",
        );
        says(br#"{"event":{}}"#, "version: missing");
        says(br#"{"version":"1"}"#, "version: not a number");
        says(br#"{"version":1}"#, "event: missing");
        says(
            br#"{"version":1,"event":{"kind":"teleported"}}"#,
            "unknown variant `teleported`",
        );
        says(
            br#"{"version":1,"event":{"kind":"error"}}"#,
            "missing field `message`",
        );
        says(b"", "not JSON");
        says(b"[1]", "not an object");
    }

    /// Every truncation of every event is an error saying so, and every single-byte change
    /// of one an error or an event, never a panic.
    #[test]
    fn truncated_and_damaged_live_events_never_panic() {
        for e in events() {
            let bytes = encode_live_event(e);
            for len in 0..bytes.len() {
                // `guard` would turn a panic into `Internal`: a clean error is `InvalidInput`.
                match decode_live_event(bytes[..len].to_vec()) {
                    Err(EmbargoError::InvalidInput(m)) => assert!(m.contains("live event"), "{m}"),
                    other => panic!("{len} bytes: {other:?}"),
                }
            }
        }
        let bytes = encode_live_event(decision());
        for i in 0..bytes.len() {
            for b in [0u8, b'"', b'}', b'9', 0xff] {
                let mut damaged = bytes.clone();
                damaged[i] = b;
                assert!(
                    !matches!(decode_live_event(damaged), Err(EmbargoError::Internal(_))),
                    "byte {i} set to {b}"
                );
            }
        }
    }

    fn sample() -> TunnelStatus {
        TunnelStatus {
            state: TunnelState::Running,
            error: None,
            started_at_ms: Some(1_765_000_000_000),
            packets_in: 1,
            packets_out: 2,
            bytes_up: 3,
            bytes_down: u64::MAX,
            tcp_flows: 5,
            udp_flows: 6,
            flows_blocked: 7,
            dns_blocked: 8,
            dns_forwarded: 9,
            memory_bytes: 10,
            events_dropped: 11,
            history_ok: false,
            history_dropped: 12,
            history_last_error: Some("disk full".into()),
        }
    }

    #[test]
    fn round_trips_and_ignores_fields_it_does_not_know() {
        let s = sample();
        assert_eq!(
            decode_tunnel_status(encode_tunnel_status(s.clone())).unwrap(),
            s
        );
        let mut v: Value = serde_json::from_slice(&encode_tunnel_status(s.clone())).unwrap();
        v["added_later"] = json!(1);
        assert_eq!(decode_tunnel_status(v.to_string().into_bytes()).unwrap(), s);
    }

    #[test]
    fn errors_name_the_field() {
        let mut v: Value = serde_json::from_slice(&encode_tunnel_status(sample())).unwrap();
        v.as_object_mut().unwrap().remove("dns_blocked");
        let e = decode_tunnel_status(v.to_string().into_bytes()).unwrap_err();
        assert!(e.to_string().contains("dns_blocked"), "{e}");
        v["dns_blocked"] = json!("eight");
        v["state"] = json!("paused");
        let e = decode_tunnel_status(v.to_string().into_bytes()).unwrap_err();
        assert!(e.to_string().contains("state"), "{e}");
        assert!(decode_tunnel_status(b"not json".to_vec()).is_err());
    }
}
