//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use embargo_history::{Certainty, Config, Event, Protocol, Verdict};

/// Now, minus a margin so events are comfortably inside retention.
pub fn now() -> i64 {
    embargo_history::now_ms()
}

/// Config for a test database in `dir`; short flush interval so tests are quick.
pub fn config(dir: &Path) -> Config {
    let mut c = Config::new(dir.join("history.db"));
    c.flush_interval = Duration::from_millis(10);
    c
}

/// A fully populated event.
pub fn event(time_ms: i64, app: &str, name: &str, verdict: Verdict) -> Event {
    Event {
        time_ms,
        app: Some(app.into()),
        name: Some(name.into()),
        addr: Some("203.0.113.7".parse().unwrap()),
        port: 443,
        protocol: Protocol::Tcp,
        verdict,
        rule: Some(format!("||{name}^")),
        list: Some("bytedance.txt".into()),
        line: Some(12),
        owner: Some("ByteDance".into()),
        owner_source: Some("ipdb-asn".into()),
        country: Some("US".into()),
        country_source: Some("ipdb-country".into()),
        certainty: Certainty::Certain,
        category: None,
    }
}
