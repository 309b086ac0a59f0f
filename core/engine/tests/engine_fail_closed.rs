//! A client-first flow (TLS, HTTP, an HTTP proxy, QUIC on UDP 443) is
//! never connected upstream before its name is read, and is refused when what arrives cannot be
//! read as its protocol, names nothing where the protocol must, or comes too late. Connect-first
//! flows open no upstream before the app's ACK (a spoofed SYN never sends one). Fake clock.

use std::net::SocketAddr;
use std::time::Duration;

use embargo_engine::{Command, Event};
use embargo_test_support::*;

fn decisions(events: &[Event]) -> Vec<&embargo_engine::DecisionEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Decision(d) => Some(&**d),
            _ => None,
        })
        .collect()
}

fn handshake(h: &mut Harness, src: &str, dst: &str) -> AppConn {
    let mut app = AppConn::new(src, dst);
    h.send(&app.syn());
    let segs = h.segs();
    assert_eq!(segs.len(), 1, "{segs:?}");
    h.send(&app.on_synack(&segs[0]));
    app
}

fn connects(cmds: &[Command]) -> usize {
    cmds.iter()
        .filter(|c| matches!(c, Command::Connect { .. }))
        .count()
}

/// Before: the ClientHello arriving after `inspect_timeout` (1.5 s) found the flow connected by
/// address, and the blocked name reached the server. After: the flow waits, then is reset on
/// the name.
#[test]
fn a_late_client_hello_is_still_read() {
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "10.0.0.2:41000", "93.184.216.34:443");
    h.advance(Duration::from_secs(2));
    assert_eq!(connects(&h.commands()), 0, "connected by address at 1.5 s");
    h.send(&app.data(&client_hello(BLOCKED_NAME)));
    assert!(h.segs().iter().any(|s| s.rst));
    assert_eq!(connects(&h.commands()), 0);
    let events = h.events();
    let d = decisions(&events);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].name.as_deref(), Some(BLOCKED_NAME));
    assert!(d[0].decision.is_block());
}

/// Before: a ClientHello split with a 2 s gap was decided by address after its first half.
#[test]
fn a_client_hello_split_by_a_gap_is_read_whole() {
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "10.0.0.2:41001", "93.184.216.34:443");
    let hello = client_hello(BLOCKED_NAME);
    h.send(&app.data(&hello[..20]));
    h.advance(Duration::from_secs(2));
    assert_eq!(connects(&h.commands()), 0);
    h.send(&app.data(&hello[20..]));
    assert!(h.segs().iter().any(|s| s.rst));
    assert_eq!(connects(&h.commands()), 0);
}

/// Before: a Host after 8 KiB of other headers was not read (decided by address, the blocked
/// Host reaching the server). After: read up to 32 KiB; a head with no Host within it is
/// refused.
#[test]
fn a_host_after_eight_kib_of_headers_is_read_and_no_host_is_refused() {
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "10.0.0.2:41002", "93.184.216.34:80");
    let mut head = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..12 {
        head.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "a".repeat(1000)).as_bytes());
    }
    head.extend_from_slice(format!("Host: {BLOCKED_NAME}\r\n\r\n").as_bytes());
    assert!(head.len() > 10 * 1024);
    for chunk in head.chunks(1000) {
        h.send(&app.data(chunk));
        let segs = h.segs();
        h.send(&app.ack_all(&segs));
    }
    assert_eq!(connects(&h.commands()), 0);
    let events = h.events();
    let d = decisions(&events);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].name.as_deref(), Some(BLOCKED_NAME));
    assert!(d[0].decision.is_block());

    assert!(h.segs().iter().any(|s| s.rst));
    // No Host in 40 KiB of headers: refused, never connected.
    let mut app = handshake(&mut h, "10.0.0.2:41003", "93.184.216.34:80");
    let mut rst = false;
    let mut head = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..40 {
        head.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "b".repeat(1000)).as_bytes());
    }
    for chunk in head.chunks(1000) {
        h.send(&app.data(chunk));
        let segs = h.segs();
        rst |= segs.iter().any(|s| s.rst);
        if rst {
            break;
        }
        h.send(&app.ack_all(&segs));
    }
    assert!(rst, "a head without a Host is refused at the limit");
    assert_eq!(connects(&h.commands()), 0);
    let events = h.events();
    let d = decisions(&events);
    assert!(d.iter().all(|d| d.decision.is_block()), "{d:?}");
}

/// Before: bytes that are neither TLS nor HTTP on 443 were connected by address. After: reset.
#[test]
fn junk_on_a_client_first_port_is_refused() {
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "10.0.0.2:41004", "93.184.216.34:443");
    h.send(&app.data(b"\x00\x00\x00\x10not tls, not http"));
    assert!(h.segs().iter().any(|s| s.rst));
    assert_eq!(connects(&h.commands()), 0);
    let events = h.events();
    let d = decisions(&events);
    assert_eq!(d.len(), 1);
    assert!(d[0].decision.is_block());
    assert_eq!(d[0].name, None);
    // The app closing before any name: refused too.
    let mut app = handshake(&mut h, "10.0.0.2:41005", "93.184.216.34:443");
    h.send(&app.data(&client_hello("allowed.example")[..8]));
    h.send(&app.fin());
    assert!(h.segs().iter().any(|s| s.rst));
    assert_eq!(connects(&h.commands()), 0);
}

/// A ClientHello without SNI (an app connecting to an address) and an HTTP/1.0 request without
/// a Host are decided by address; an HTTP/1.1 request without a Host is refused.
#[test]
fn no_name_where_none_is_required_is_decided_by_address() {
    let mut h = Harness::new();
    let mut hello = client_hello("x");
    // Drop the SNI extension: rebuild a hello with an empty extension block.
    let body_start = 5 + 4;
    let ext_len_at = body_start + 2 + 32 + 1 + 4 + 2;
    hello.truncate(ext_len_at);
    hello.extend_from_slice(&[0, 0]);
    let hs_len = hello.len() - body_start;
    hello[6..9].copy_from_slice(&(hs_len as u32).to_be_bytes()[1..]);
    let rec_len = (hello.len() - 5) as u16;
    hello[3..5].copy_from_slice(&rec_len.to_be_bytes());
    let mut app = handshake(&mut h, "10.0.0.2:41006", "93.184.216.34:443");
    h.send(&app.data(&hello));
    assert_eq!(connects(&h.commands()), 1, "no SNI: by address");

    let mut app = handshake(&mut h, "10.0.0.2:41007", "93.184.216.34:80");
    h.send(&app.data(b"GET / HTTP/1.0\r\nAccept: */*\r\n\r\n"));
    assert_eq!(
        connects(&h.commands()),
        1,
        "HTTP/1.0 without Host: by address"
    );

    let mut app = handshake(&mut h, "10.0.0.2:41008", "93.184.216.34:80");
    h.send(&app.data(b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"));
    assert!(h.segs().iter().any(|s| s.rst));
    assert_eq!(connects(&h.commands()), 0, "HTTP/1.1 without Host: refused");
}

/// Before: a QUIC Initial after junk datagrams on UDP 443 was relayed (the flow was decided by
/// address on the junk). After: the flow is refused and nothing is sent.
#[test]
fn quic_after_junk_is_refused() {
    let initial = from_hex(include_str!(
        "../src/inspect/testdata/rfc9001-a2-client-initial.hex"
    ));
    let mut h = Harness::new();
    h.engine
        .set_policy(std::sync::Arc::new(|q: &embargo_policy::Query<'_>| {
            if q.name == Some("example.com") {
                block()
            } else {
                allow()
            }
        }));
    let app: SocketAddr = "10.0.0.2:6100".parse().unwrap();
    let server: SocketAddr = "198.51.100.31:443".parse().unwrap();
    for i in 0..5u8 {
        h.send(&udp(app, server, &[0x40, i, 1, 2, 3]));
    }
    h.advance(Duration::from_millis(300));
    h.send(&udp(app, server, &initial));
    let cmds = h.commands();
    assert!(
        !cmds
            .iter()
            .any(|c| matches!(c, Command::SendDatagram { .. })),
        "{cmds:?}"
    );
    let events = h.events();
    let d = decisions(&events);
    assert!(
        !d.is_empty() && d.iter().all(|d| d.decision.is_block()),
        "{d:?}"
    );
}

/// Before: every spoofed SYN to a connect-first port opened an upstream connection (3,583 in
/// the netns test). After: none before the app's ACK, and the half-open flows expire.
#[test]
fn spoofed_syns_open_no_upstream() {
    let mut h = Harness::new();
    for i in 0..200u16 {
        let app = AppConn::new(
            &format!("10.9.{}.{}:{}", i / 200, i % 200 + 1, 30_000 + i),
            "198.51.100.7:5222",
        );
        h.send(&app.syn());
    }
    assert_eq!(connects(&h.commands()), 0);
    assert!(
        decisions(&h.events()).is_empty(),
        "no history for a handshake never completed"
    );
    assert_eq!(h.engine.stats().tcp_flows, 200);
    h.advance(h.engine.config().connect_timeout + Duration::from_secs(1));
    assert_eq!(connects(&h.commands()), 0);
    assert_eq!(h.engine.stats().tcp_flows, 0, "half-open flows expire");
}

/// Spoofed SYNs hold at most `MAX_HALF_OPEN` flows (connect-first and inspect-first alike),
/// never the whole table: past it each new SYN takes the oldest one's place, so a real client
/// still gets in during the flood.
#[test]
fn half_open_flows_are_capped() {
    let mut h = Harness::new();
    let cap = embargo_engine::budget::MAX_HALF_OPEN;
    for i in 0..(cap as u32 + 300) {
        let port = if i % 2 == 0 { "5222" } else { "443" };
        let app = AppConn::new(
            &format!("10.8.{}.{}:{}", i / 250, i % 250 + 1, 30_000 + i % 20_000),
            &format!("198.51.100.7:{port}"),
        );
        h.send(&app.syn());
    }
    let s = h.engine.stats();
    assert_eq!(s.tcp_flows, cap, "{s:?}");
    assert_eq!(s.flows_evicted, 300, "{s:?}");
    let _ = h.segs();
    // A real client during the flood: its SYN gets a place, its ACK the upstream.
    let mut app = AppConn::new("10.0.0.2:41999", "198.51.100.7:5222");
    h.send(&app.syn());
    let segs = h.segs();
    let synack = segs
        .iter()
        .find(|s| s.syn && s.dst == app.src)
        .expect("SYN-ACK");
    h.send(&app.on_synack(synack));
    assert_eq!(connects(&h.commands()), 1);
}

fn from_hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|b| (b as char).to_digit(16).unwrap() as u8)
        .collect();
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// A full inspection pool (1 MiB for all flows) makes a client-first flow wait, its bytes left
/// in its socket's ring, not refused for other flows' load; it reads on once there is room.
#[test]
fn a_full_inspection_pool_makes_flows_wait_not_fail() {
    let mut h = Harness::new();
    // 1,200 flows each holding 900 bytes of an unfinished ClientHello: over 1 MiB.
    let hello = client_hello("allowed.example");
    let mut partial = hello[..9].to_vec();
    partial[3..5].copy_from_slice(&4000u16.to_be_bytes()); // a record of 4000 bytes
    partial[6..9].copy_from_slice(&[0, 0x0f, 0x9c]); // a hello of 3996
    partial.extend_from_slice(&vec![0u8; 891]);
    let mut apps = Vec::new();
    let mut rst = 0;
    for i in 0..1200u32 {
        let src = format!("10.{}.{}.2:{}", 20 + i / 250, i % 250, 40000 + i % 20000);
        let mut app = handshake(&mut h, &src, "93.184.216.34:443");
        h.send(&app.data(&partial));
        rst += h.segs().iter().filter(|s| s.rst).count();
        apps.push(app);
    }
    assert_eq!(rst, 0, "flows refused because the pool was full");
    assert_eq!(connects(&h.commands()), 0);
    // Room again: 600 flows go away; the rest read on.
    for app in &apps[..600] {
        h.send(&app.rst());
    }
    let _ = h.segs();
    assert_eq!(h.engine.stats().tcp_flows, 600);
    assert_eq!(connects(&h.commands()), 0, "still no name");
}
