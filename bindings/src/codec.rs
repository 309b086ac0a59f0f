//! A stable byte form of [`TunnelStatus`], for platforms where the tunnel runs in another
//! process than the screens (iOS: the extension answers the app's provider message with it).
//! JSON with fixed keys: a field added later is ignored by an older reader, and a field missing
//! or of the wrong type is an error naming it.

use serde_json::{json, Map, Value};

use crate::embargo::TunnelStatus;
use crate::error::guard;
use crate::events::TunnelState;
use crate::EmbargoError;

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
