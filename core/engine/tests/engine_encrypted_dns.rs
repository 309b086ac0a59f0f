//! Encrypted DNS is one setting, `block_encrypted_dns`, on by default,
//! over the one list of `dns::doh` (names with their subdomains, and port 853).

use std::net::SocketAddr;

use embargo_engine::{Command, EngineConfig, Event};
use embargo_test_support::*;

fn engine_blocks(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Decision(d) if d.decision.is_block()))
        .count()
}

fn handshake(h: &mut Harness, src: &str, dst: &str) -> AppConn {
    let mut app = AppConn::new(src, dst);
    h.send(&app.syn());
    let segs = h.segs();
    h.send(&app.on_synack(&segs[0]));
    app
}

/// Before: `abc123.dns.nextdns.io` (a per-user NextDNS endpoint, a subdomain of a listed
/// name) was allowed, and the engine refused no DoH name unless `block_doh` was set (no CLI
/// flag or FFI field could set it). After: refused by default, in DNS questions and SNI.
#[test]
fn a_doh_providers_subdomain_is_refused_by_default() {
    let mut h = Harness::new();
    assert!(h.engine.config().block_encrypted_dns);
    let app: SocketAddr = "10.0.0.2:5353".parse().unwrap();
    let resolver: SocketAddr = "192.0.2.53:53".parse().unwrap();
    h.send(&udp(
        app,
        resolver,
        &dns_query(7, "abc123.dns.nextdns.io", 1),
    ));
    assert!(h.commands().is_empty(), "not forwarded");
    assert_eq!(h.engine.stats().dns_blocked, 1);
    assert_eq!(h.out().len(), 1, "the block answer");

    let mut app = handshake(&mut h, "10.0.0.2:40000", "198.51.100.40:443");
    h.send(&app.data(&client_hello("firefox.dns.nextdns.io")));
    assert!(h.segs().iter().any(|s| s.rst));
    assert!(!h
        .commands()
        .iter()
        .any(|c| matches!(c, Command::Connect { .. })));
    assert_eq!(engine_blocks(&h.events()), 2);

    // Port 853 by the same setting.
    let app = AppConn::new("10.0.0.2:40001", "198.51.100.40:853");
    h.send(&app.syn());
    assert!(h.segs().iter().any(|s| s.rst));
}

#[test]
fn the_setting_off_lets_encrypted_dns_through() {
    let mut h = Harness::with_config(EngineConfig {
        block_encrypted_dns: false,
        ..EngineConfig::default()
    });
    let app: SocketAddr = "10.0.0.2:5353".parse().unwrap();
    let resolver: SocketAddr = "192.0.2.53:53".parse().unwrap();
    h.send(&udp(
        app,
        resolver,
        &dns_query(7, "abc123.dns.nextdns.io", 1),
    ));
    assert_eq!(h.commands().len(), 1, "forwarded");
    assert!(h.out().is_empty());
    let mut app = handshake(&mut h, "10.0.0.2:40000", "198.51.100.40:443");
    h.send(&app.data(&client_hello("firefox.dns.nextdns.io")));
    assert!(h
        .commands()
        .iter()
        .any(|c| matches!(c, Command::Connect { .. })));
    assert_eq!(engine_blocks(&h.events()), 0);
}
