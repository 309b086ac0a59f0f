//! HTTP proxies through the engine, no IO, fake clock: a flow to a proxy is decided on the names
//! inside it (the CONNECT target, then the tunnel's own ClientHello; an absolute URI and its
//! Host header), not on the proxy's address.

use std::time::Duration;

use embargo_engine::{Command, DecisionEvent, EngineConfig, Event, FlowId, UpstreamEvent};
use embargo_policy::NameSource;
use embargo_test_support::*;

/// An allowed proxy's address and tinyproxy's port (one of the default proxy ports).
const PROXY: &str = "198.51.100.7:8888";

fn decisions(events: &[Event]) -> Vec<&DecisionEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Decision(d) => Some(&**d),
            _ => None,
        })
        .collect()
}

fn connect_head(target: &str) -> Vec<u8> {
    format!(
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: curl/8.5.0\r\n\
         Proxy-Connection: Keep-Alive\r\n\r\n"
    )
    .into_bytes()
}

/// Handshake to the proxy (inspected first: the engine answers the SYN itself).
fn handshake(h: &mut Harness, src: &str) -> AppConn {
    let mut app = AppConn::new(src, PROXY);
    h.send(&app.syn());
    let segs = h.segs();
    assert_eq!(segs.len(), 1, "a SYN-ACK at once: {segs:?}");
    let ack = app.on_synack(&segs[0]);
    h.send(&ack);
    assert!(h.segs().is_empty());
    assert!(h.commands().is_empty(), "nothing upstream before the name");
    app
}

fn connect_flow(h: &mut Harness) -> FlowId {
    match h.commands().as_slice() {
        [Command::Connect { flow, dst }] => {
            assert_eq!(*dst, PROXY.parse().unwrap());
            *flow
        }
        other => panic!("expected one Connect, got {other:?}"),
    }
}

/// The app's CONNECT to `target` is allowed: the proxy is connected, gets the head, answers
/// 200, and the app reads it. Returns the flow.
fn tunnel_open(h: &mut Harness, app: &mut AppConn, target: &str) -> FlowId {
    let head = connect_head(target);
    h.send(&app.data(&head));
    let flow = connect_flow(h);
    h.upstream(UpstreamEvent::Connected { flow });
    assert_eq!(h.commands(), vec![Command::AppDataReady { flow }]);
    assert_eq!(h.read_app(flow), head, "the CONNECT head is replayed");
    let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
    assert_eq!(h.engine.write_upstream_data(h.now, flow, ok), ok.len());
    let segs = h.segs();
    let got: Vec<u8> = segs.iter().flat_map(|s| s.payload.clone()).collect();
    assert_eq!(got, ok, "the proxy's answer passes to the app");
    h.send(&app.ack_all(&segs));
    flow
}

#[test]
fn proxy_ports_are_inspected_first_and_the_list_is_configurable() {
    assert_eq!(
        EngineConfig::default().proxy_ports,
        [3128, 8080, 8888, 8118]
    );
    for port in [3128, 8888, 8118] {
        let mut h = Harness::new();
        let app = AppConn::new("10.0.0.2:40000", &format!("198.51.100.7:{port}"));
        h.send(&app.syn());
        assert!(h.segs()[0].syn, "port {port}: SYN-ACK from the engine");
        assert!(
            h.commands().is_empty(),
            "port {port}: no connect before the name"
        );
    }
    // Without the proxy ports, 8888 is an ordinary connect-first port.
    let mut h = Harness::with_config(EngineConfig {
        proxy_ports: Vec::new(),
        ..EngineConfig::default()
    });
    let mut app = AppConn::new("10.0.0.2:40000", PROXY);
    h.send(&app.syn());
    let segs = h.segs();
    assert!(segs[0].syn, "SYN-ACK at once");
    assert!(h.commands().is_empty(), "no upstream before the app's ACK");
    h.send(&app.on_synack(&segs[0]));
    assert!(matches!(h.commands().as_slice(), [Command::Connect { .. }]));
}

#[test]
fn blocked_connect_target_is_reset_and_the_proxy_never_asked() {
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "10.0.0.2:40001");
    h.send(&app.data(&connect_head("www.blocked.example:443")));
    let segs = h.segs();
    assert!(segs.iter().any(|s| s.rst), "{segs:?}");
    assert!(h.commands().is_empty(), "no Connect to the proxy at all");
    let events = h.events();
    let d = decisions(&events);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].decision.is_block());
    assert_eq!(d[0].name.as_deref(), Some("www.blocked.example"));
    assert_eq!(d[0].name_source, NameSource::HttpHost);
    assert_eq!(
        d[0].addr,
        "198.51.100.7".parse::<std::net::IpAddr>().unwrap()
    );
    let s = h.engine.stats();
    assert_eq!((s.tcp_flows, s.sockets), (0, 0));
}

#[test]
fn allowed_connect_with_a_blocked_inner_sni_sends_the_connect_and_no_byte_of_the_hello() {
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "10.0.0.2:40002");
    let flow = tunnel_open(&mut h, &mut app, "allowed.example:443");
    // The inner ClientHello, split over two segments: nothing readable after the first.
    let hello = client_hello("pixel.blocked.example");
    h.send(&app.data(&hello[..30]));
    assert!(h.commands().is_empty(), "{:?}", h.commands());
    assert_eq!(h.read_app(flow), b"", "a partial inner hello is held");
    h.send(&app.data(&hello[30..]));
    assert!(h.segs().iter().any(|s| s.rst), "the app is reset");
    assert_eq!(h.commands(), vec![Command::Close { flow }]);
    assert_eq!(h.read_app(flow), b"", "no byte of the blocked hello leaves");
    let events = h.events();
    let d = decisions(&events);
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(!d[0].decision.is_block());
    assert_eq!(d[0].name.as_deref(), Some("allowed.example"));
    assert_eq!(d[0].name_source, NameSource::HttpHost);
    assert!(d[1].decision.is_block());
    assert_eq!(d[1].name.as_deref(), Some("pixel.blocked.example"));
    assert_eq!(d[1].name_source, NameSource::TlsSni);
    assert!(events.iter().any(|e| matches!(e,
        Event::FlowClosed { bytes_from_app, .. } if *bytes_from_app == connect_head("allowed.example:443").len() as u64)));
    let s = h.engine.stats();
    assert_eq!((s.tcp_flows, s.sockets), (0, 0));
    assert_eq!(s.flows_blocked, 1);
}

#[test]
fn a_hello_sent_with_the_connect_is_held_too() {
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "10.0.0.2:40003");
    let head = connect_head("allowed.example:443");
    let mut both = head.clone();
    both.extend_from_slice(&client_hello(BLOCKED_NAME));
    h.send(&app.data(&both));
    let flow = connect_flow(&mut h);
    h.upstream(UpstreamEvent::Connected { flow });
    assert_eq!(h.read_app(flow), head, "only the CONNECT head is replayed");
    // Serviced after the head was read: the held hello is decided.
    h.advance(Duration::from_millis(1));
    assert!(h.segs().iter().any(|s| s.rst));
    assert!(h.commands().contains(&Command::Close { flow }));
    assert_eq!(h.read_app(flow), b"");
}

#[test]
fn allowed_connect_and_allowed_inner_sni_relay_everything() {
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "10.0.0.2:40004");
    let flow = tunnel_open(&mut h, &mut app, "allowed.example:443");
    let hello = client_hello("allowed.example");
    h.send(&app.data(&hello));
    assert_eq!(h.commands(), vec![Command::AppDataReady { flow }]);
    assert_eq!(h.read_app(flow), hello);
    // Then the stream flows both ways as any relayed flow.
    h.send(&app.data(b"application data"));
    assert_eq!(h.commands(), vec![Command::AppDataReady { flow }]);
    assert_eq!(h.read_app(flow), b"application data");
    assert_eq!(h.engine.write_upstream_data(h.now, flow, b"server"), 6);
    let got: Vec<u8> = h.segs().iter().flat_map(|s| s.payload.clone()).collect();
    assert_eq!(got, b"server");
    // The same name inside as in the CONNECT: one decision.
    let events = h.events();
    let d = decisions(&events);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].name.as_deref(), Some("allowed.example"));
}

#[test]
fn an_allowed_inner_name_other_than_the_target_is_decided_and_recorded() {
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "10.0.0.2:40005");
    let flow = tunnel_open(&mut h, &mut app, "allowed.example:443");
    let hello = client_hello("cdn.allowed.example");
    h.send(&app.data(&hello));
    assert_eq!(h.commands(), vec![Command::AppDataReady { flow }]);
    assert_eq!(h.read_app(flow), hello);
    let events = h.events();
    let d = decisions(&events);
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[1].name.as_deref(), Some("cdn.allowed.example"));
    assert_eq!(d[1].name_source, NameSource::TlsSni);
    assert!(!d[1].decision.is_block());
}

#[test]
fn an_inner_plain_http_request_is_decided_on_its_host() {
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "10.0.0.2:40006");
    let flow = tunnel_open(&mut h, &mut app, "allowed.example:80");
    h.send(&app.data(b"GET / HTTP/1.1\r\nHost: blocked.example\r\n\r\n"));
    assert!(h.segs().iter().any(|s| s.rst));
    assert_eq!(h.commands(), vec![Command::Close { flow }]);
    assert_eq!(h.read_app(flow), b"");
}

/// The tunnel of an allowed CONNECT whose inner bytes name nothing in time is reset
/// (the CONNECT's verdict used to stand after 1.5 s, the inner bytes then reaching the
/// server), none of the held bytes sent.
#[test]
fn an_inner_hello_that_never_completes_is_reset_at_the_inspection_timeout() {
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "10.0.0.2:40007");
    let flow = tunnel_open(&mut h, &mut app, "allowed.example:443");
    let hello = client_hello("allowed.example");
    h.send(&app.data(&hello[..10]));
    assert!(h.commands().is_empty());
    h.advance(Duration::from_millis(1600));
    assert_eq!(h.read_app(flow), b"", "still held past the old 1.5 s");
    assert!(h.commands().is_empty());
    h.advance(h.engine.config().inspect_timeout);
    assert!(h.segs().iter().any(|s| s.rst));
    assert_eq!(h.commands(), vec![Command::Close { flow }]);
    assert_eq!(h.read_app(flow), b"");
}

/// Inner bytes that are not TLS or HTTP, in a tunnel to a client-first port, are
/// reset too; to another port (SSH through a proxy) the CONNECT's verdict stands.
#[test]
fn an_unreadable_inner_stream_is_reset_on_a_client_first_port_only() {
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "10.0.0.2:40017");
    let flow = tunnel_open(&mut h, &mut app, "allowed.example:443");
    h.send(&app.data(b"\x00\x01junk that is not TLS"));
    assert!(h.segs().iter().any(|s| s.rst));
    assert_eq!(h.commands(), vec![Command::Close { flow }]);

    let mut app = handshake(&mut h, "10.0.0.2:40018");
    let flow = tunnel_open(&mut h, &mut app, "allowed.example:22");
    h.send(&app.data(b"SSH-2.0-OpenSSH_9.6\r\n"));
    assert!(!h.segs().iter().any(|s| s.rst));
    assert_eq!(h.commands(), vec![Command::AppDataReady { flow }]);
    assert_eq!(h.read_app(flow), b"SSH-2.0-OpenSSH_9.6\r\n");
}

#[test]
fn the_tunnel_waits_for_the_proxy_answer_without_a_deadline() {
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "10.0.0.2:40008");
    let flow = tunnel_open(&mut h, &mut app, "allowed.example:443");
    // The app sends nothing for a while (a slow proxy): the flow stays up, nothing held.
    h.advance(Duration::from_secs(10));
    let hello = client_hello(BLOCKED_NAME);
    h.send(&app.data(&hello));
    assert!(h.segs().iter().any(|s| s.rst));
    assert_eq!(h.commands(), vec![Command::Close { flow }]);
}

#[test]
fn a_connect_head_that_never_ends_is_reset() {
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "10.0.0.2:40009");
    h.send(&app.data(b"CONNECT allowed.example:443 HTTP/1.1\r\nHost: allowed.example"));
    assert!(h.segs().iter().all(|s| !s.rst));
    h.advance(h.engine.config().inspect_timeout);
    assert!(h.segs().iter().any(|s| s.rst));
    assert!(
        h.commands().is_empty(),
        "nothing relayed: the tunnel's start is unknown"
    );
}

#[test]
fn absolute_uri_requests_are_decided_on_the_uri_host_and_the_host_header() {
    // Blocked in the URI.
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "10.0.0.2:40010");
    h.send(&app.data(
        b"GET http://ads.blocked.example/t.js HTTP/1.1\r\nHost: ads.blocked.example\r\n\r\n",
    ));
    assert!(h.segs().iter().any(|s| s.rst));
    assert!(h.commands().is_empty());
    let events = h.events();
    let d = decisions(&events);
    assert_eq!(d[0].name.as_deref(), Some("ads.blocked.example"));
    assert_eq!(d[0].name_source, NameSource::HttpHost);
    // An allowed URI with a blocked Host header.
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "10.0.0.2:40011");
    h.send(&app.data(b"GET http://allowed.example/ HTTP/1.1\r\nHost: blocked.example\r\n\r\n"));
    assert!(h.segs().iter().any(|s| s.rst));
    assert!(h.commands().is_empty());
    let events = h.events();
    assert_eq!(
        decisions(&events)[0].name.as_deref(),
        Some("blocked.example")
    );
    // Both allowed: the request goes to the proxy whole.
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "10.0.0.2:40012");
    let req = b"GET http://allowed.example/x HTTP/1.1\r\nHost: allowed.example\r\n\r\n";
    h.send(&app.data(req));
    let flow = connect_flow(&mut h);
    h.upstream(UpstreamEvent::Connected { flow });
    assert_eq!(h.read_app(flow), req);
}

/// `test_policy`, saying that no app can change its verdict: flows are not held for their app
/// at the SYN, so a block found later waits for the app's name instead.
struct AppBlind;

impl embargo_engine::Decide for AppBlind {
    fn decide(&self, query: &embargo_policy::Query<'_>) -> embargo_policy::Decision {
        test_policy(query)
    }

    fn app_can_change(&self, _: &embargo_policy::Query<'_>) -> bool {
        false
    }
}

#[test]
fn a_blocked_inner_name_waits_for_the_app_then_is_reset_with_it_named() {
    let mut h = Harness::with_config(EngineConfig {
        resolve_apps: true,
        ..EngineConfig::default()
    });
    h.engine.set_policy(std::sync::Arc::new(AppBlind));
    let mut app = AppConn::new("10.0.0.2:40020", PROXY);
    h.send(&app.syn());
    let segs = h.segs();
    h.send(&app.on_synack(&segs[0]));
    let wait = match h.commands().as_slice() {
        [Command::ResolveApp { flow, .. }] => *flow,
        other => panic!("expected ResolveApp, got {other:?}"),
    };
    let flow = tunnel_open(&mut h, &mut app, "allowed.example:443");
    assert_eq!(flow, wait);
    h.send(&app.data(&client_hello(BLOCKED_NAME)));
    assert!(h.segs().is_empty(), "held while the app is looked up");
    assert!(h.commands().is_empty());
    assert_eq!(h.read_app(flow), b"");
    assert!(h.engine.holds_for_app(flow));
    h.engine
        .app_resolved(h.now, flow, Some("com.tracked".into()));
    assert!(h.segs().iter().any(|s| s.rst));
    assert_eq!(h.commands(), vec![Command::Close { flow }]);
    let events = h.events();
    let d = decisions(&events);
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[1].name.as_deref(), Some(BLOCKED_NAME));
    assert_eq!(d[1].app.as_deref(), Some("com.tracked"));
    assert!(d[1].decision.is_block());
}

#[test]
fn a_second_connect_after_a_407_is_decided_and_its_tunnel_held_again() {
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "10.0.0.2:40021");
    let head = connect_head("allowed.example:443");
    h.send(&app.data(&head));
    let flow = connect_flow(&mut h);
    h.upstream(UpstreamEvent::Connected { flow });
    assert_eq!(h.commands(), vec![Command::AppDataReady { flow }]);
    assert_eq!(h.read_app(flow), head);
    let refused = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n";
    h.engine.write_upstream_data(h.now, flow, refused);
    let segs = h.segs();
    h.send(&app.ack_all(&segs));
    // The same CONNECT with credentials: its head goes to the proxy...
    let again = b"CONNECT allowed.example:443 HTTP/1.1\r\nHost: allowed.example:443\r\n\
                  Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n";
    h.send(&app.data(again));
    assert_eq!(h.commands(), vec![Command::AppDataReady { flow }]);
    assert_eq!(h.read_app(flow), again);
    // ...and its tunnel is held for the inner name as the first one was.
    h.send(&app.data(&client_hello(BLOCKED_NAME)));
    assert!(h.segs().iter().any(|s| s.rst));
    assert_eq!(h.commands(), vec![Command::Close { flow }]);
    assert_eq!(h.read_app(flow), b"");

    // A second CONNECT to a blocked name is refused like a first one.
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "10.0.0.2:40022");
    let flow = tunnel_open(&mut h, &mut app, "allowed.example:443");
    h.send(&app.data(&connect_head("blocked.example:443")));
    assert!(h.segs().iter().any(|s| s.rst));
    assert_eq!(h.commands(), vec![Command::Close { flow }]);
    assert_eq!(h.read_app(flow), b"");
}
