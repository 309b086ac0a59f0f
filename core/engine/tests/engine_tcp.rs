//! TCP through the engine, no IO, fake clock: inspection, relay, closes, resets, timeouts.

use std::time::Duration;

use embargo_engine::{Command, Event, FlowId, UpstreamEvent};
use embargo_policy::NameSource;
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

/// Handshake to an inspected port; returns the app endpoint ready to send data.
fn handshake(h: &mut Harness, dst: &str) -> AppConn {
    let mut app = AppConn::new("10.0.0.2:40000", dst);
    h.send(&app.syn());
    let segs = h.segs();
    assert_eq!(segs.len(), 1, "{segs:?}");
    let ack = app.on_synack(&segs[0]);
    h.send(&ack);
    assert!(h.segs().is_empty());
    app
}

/// A connect-first flow: the engine completes the handshake (SYN-ACK at once) and asks for the
/// upstream only once the app's ACK arrives (a spoofed SYN never opens one).
fn ack_first(h: &mut Harness, app: &mut AppConn) -> FlowId {
    h.send(&app.syn());
    assert!(h.commands().is_empty(), "no upstream before the app's ACK");
    let segs = h.segs();
    assert!(segs.len() == 1 && segs[0].syn, "{segs:?}");
    h.send(&app.on_synack(&segs[0]));
    connect_flow(h).0
}

fn connect_flow(h: &mut Harness) -> (FlowId, std::net::SocketAddr) {
    let cmds = h.commands();
    match cmds.as_slice() {
        [Command::Connect { flow, dst }] => (*flow, *dst),
        other => panic!("expected one Connect, got {other:?}"),
    }
}

#[test]
fn blocked_sni_gets_rst_and_zero_upstream_commands() {
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "93.184.216.34:443");
    let c = h.commands();
    assert!(
        c.is_empty(),
        "nothing upstream during the local handshake: {c:?}"
    );
    h.send(&app.data(&client_hello(BLOCKED_NAME)));
    let segs = h.segs();
    assert!(segs.iter().any(|s| s.rst), "{segs:?}");
    assert!(
        h.commands().is_empty(),
        "a blocked flow must never reach the driver"
    );
    let events = h.events();
    let d = decisions(&events);
    assert_eq!(d.len(), 1);
    assert!(d[0].decision.is_block());
    assert_eq!(d[0].name.as_deref(), Some(BLOCKED_NAME));
    assert_eq!(d[0].name_source, NameSource::TlsSni);
    let stats = h.engine.stats();
    assert_eq!((stats.tcp_flows, stats.sockets), (0, 0), "{stats:?}");
}

#[test]
fn allowed_sni_connects_then_replays_then_relays_both_ways() {
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "93.184.216.34:443");
    let hello = client_hello("allowed.example");
    // The ClientHello split across two segments.
    h.send(&app.data(&hello[..20]));
    assert!(h.commands().is_empty());
    h.send(&app.data(&hello[20..]));
    let (flow, dst) = connect_flow(&mut h);
    assert_eq!(dst, "93.184.216.34:443".parse().unwrap());
    let events = h.events();
    assert_eq!(
        decisions(&events)[0].name.as_deref(),
        Some("allowed.example")
    );
    // Nothing is replayed before the upstream connects.
    assert!(h
        .engine
        .read_app_data(h.now, flow, |b: &[u8]| Ok::<_, ()>(b.len()))
        .is_none());
    h.upstream(UpstreamEvent::Connected { flow });
    let cmds = h.commands();
    assert_eq!(cmds, vec![Command::AppDataReady { flow }]);
    assert_eq!(h.read_app(flow), hello);
    // Server -> app.
    assert!(h.engine.upstream_window(flow) > 0);
    assert_eq!(
        h.engine.write_upstream_data(h.now, flow, b"server hello"),
        12
    );
    let segs = h.segs();
    let data: Vec<u8> = segs.iter().flat_map(|s| s.payload.clone()).collect();
    assert_eq!(data, b"server hello");
    h.send(&app.ack_all(&segs));
    // App -> server after the replay.
    h.send(&app.data(b"GET / HTTP/1.1\r\n"));
    assert_eq!(h.commands(), vec![Command::AppDataReady { flow }]);
    assert_eq!(h.read_app(flow), b"GET / HTTP/1.1\r\n");
}

#[test]
fn http_host_is_inspected() {
    let mut h = Harness::new();
    let mut app = handshake(&mut h, "93.184.216.34:80");
    h.send(&app.data(b"GET / HTTP/1.1\r\nHost: www.blocked.example\r\n\r\n"));
    assert!(h.segs().iter().any(|s| s.rst));
    assert!(h.commands().is_empty());
    let events = h.events();
    assert_eq!(decisions(&events)[0].name_source, NameSource::HttpHost);
}

#[test]
fn syn_to_blocked_address_gets_rst_without_a_socket() {
    let mut h = Harness::new();
    let app = AppConn::new("10.0.0.2:40001", &format!("{BLOCKED_ADDR}:443"));
    h.send(&app.syn());
    let segs = h.segs();
    assert_eq!(segs.len(), 1);
    assert!(segs[0].rst && segs[0].ack == Some(app.seq + 1));
    assert!(h.commands().is_empty());
    let s = h.engine.stats();
    assert_eq!((s.sockets, s.tcp_flows, s.flows_created), (0, 0, 0));
}

#[test]
fn duplicate_syns_make_one_flow() {
    let mut h = Harness::new();
    // Connect-first port: the SYN-ACK leaves at once, the upstream waits for the app's ACK.
    let mut app = AppConn::new("10.0.0.2:40002", "198.51.100.7:22");
    h.send(&app.syn());
    h.send(&app.syn());
    h.send(&app.syn());
    let segs = h.segs();
    assert!(!segs.is_empty() && segs.iter().all(|s| s.syn), "{segs:?}");
    assert!(h.commands().is_empty(), "no upstream before the app's ACK");
    let s = h.engine.stats();
    assert_eq!((s.tcp_flows, s.sockets), (1, 1), "{s:?}");
    h.send(&app.on_synack(&segs[0]));
    let (flow, _) = connect_flow(&mut h);
    h.upstream(UpstreamEvent::Connected { flow });
    // Inspected port: duplicates after the SYN-ACK are answered, not re-created.
    let app2 = AppConn::new("10.0.0.2:40003", "198.51.100.7:443");
    h.send(&app2.syn());
    h.send(&app2.syn());
    let s = h.engine.stats();
    assert_eq!((s.tcp_flows, s.sockets), (2, 2), "{s:?}");
    assert!(h.segs().iter().all(|s| s.syn));
}

#[test]
fn refused_upstream_resets_the_app() {
    let mut h = Harness::new();
    let mut app = AppConn::new("10.0.0.2:40004", "198.51.100.7:25");
    let flow = ack_first(&mut h, &mut app);
    h.upstream(UpstreamEvent::ConnectFailed { flow });
    let segs = h.segs();
    assert_eq!(segs.len(), 1);
    assert!(segs[0].rst && segs[0].seq == app.ack, "{segs:?}");
    assert_eq!(h.engine.stats().sockets, 0);
}

/// An established relayed flow on a connect-first port.
fn relayed(h: &mut Harness, port: u16) -> (AppConn, FlowId) {
    relayed_from(h, "10.0.0.2:40010", port)
}

/// A connect-first flow from `src` to port `port`, relayed and established.
fn relayed_from(h: &mut Harness, src: &str, port: u16) -> (AppConn, FlowId) {
    let mut app = AppConn::new(src, &format!("198.51.100.7:{port}"));
    let flow = ack_first(h, &mut app);
    h.upstream(UpstreamEvent::Connected { flow });
    assert!(h.segs().is_empty(), "the SYN-ACK went before the connect");
    (app, flow)
}

/// No added round trip on a server-first port: the upstream is asked for on the app's ACK
/// (the app's own handshake does not wait for the server's), and the server's banner leaves
/// for the app in the step that brings it, not at a later timer (tests/bench/latency.sh
/// measures the same over a 40 ms round trip).
#[test]
fn a_server_banner_reaches_the_app_at_once() {
    let mut h = Harness::new();
    let (_app, flow) = relayed(&mut h, 25);
    assert!(h.commands().is_empty());
    let banner = b"220 mail.example ESMTP\r\n";
    assert_eq!(
        h.engine.write_upstream_data(h.now, flow, banner),
        banner.len()
    );
    let data: Vec<u8> = h.segs().iter().flat_map(|s| s.payload.clone()).collect();
    assert_eq!(data, banner, "sent without advancing the clock");
}

/// After the app's FIN: the engine shuts the upstream's write half, the server closes, the app
/// gets the FIN and acknowledges it, and the flow is gone (its socket closed).
fn server_closes_after_app_fin(h: &mut Harness, app: &mut AppConn, flow: FlowId) {
    assert_eq!(h.commands(), vec![Command::Shutdown { flow }]);
    h.upstream(UpstreamEvent::Closed { flow });
    let segs = h.segs();
    assert!(segs.iter().any(|s| s.fin), "{segs:?}");
    h.send(&app.ack_all(&segs));
    assert_eq!(h.commands(), vec![Command::Close { flow }]);
}

#[test]
fn app_closes_first() {
    let mut h = Harness::new();
    let (mut app, flow) = relayed(&mut h, 5000);
    h.send(&app.data(b"bye"));
    h.send(&app.fin());
    assert_eq!(h.commands(), vec![Command::AppDataReady { flow }]);
    assert_eq!(h.read_app(flow), b"bye");
    server_closes_after_app_fin(&mut h, &mut app, flow);
    assert_eq!(h.engine.stats().sockets, 0, "no TIME-WAIT left behind");
    assert!(h.events().iter().any(|e| matches!(
        e,
        Event::FlowClosed {
            bytes_from_app: 3,
            ..
        }
    )));
}

#[test]
fn server_closes_first() {
    let mut h = Harness::new();
    let (mut app, flow) = relayed(&mut h, 5001);
    assert_eq!(h.engine.write_upstream_data(h.now, flow, b"data"), 4);
    h.upstream(UpstreamEvent::Closed { flow });
    let segs = h.segs();
    let payload: Vec<u8> = segs.iter().flat_map(|s| s.payload.clone()).collect();
    assert_eq!(payload, b"data");
    assert!(segs.iter().any(|s| s.fin));
    h.send(&app.ack_all(&segs));
    h.send(&app.fin());
    let segs = h.segs();
    assert!(segs.iter().all(|s| !s.rst));
    assert!(h.commands().contains(&Command::Close { flow }));
    assert_eq!(h.engine.stats().sockets, 0, "no TIME-WAIT left behind");
}

#[test]
fn app_reset_closes_upstream() {
    let mut h = Harness::new();
    let (app, flow) = relayed(&mut h, 5002);
    h.send(&app.rst());
    assert_eq!(h.commands(), vec![Command::Close { flow }]);
    assert_eq!(h.engine.stats().sockets, 0);
}

#[test]
fn upstream_reset_resets_the_app() {
    let mut h = Harness::new();
    let (_app, flow) = relayed(&mut h, 5003);
    h.upstream(UpstreamEvent::Reset { flow });
    let segs = h.segs();
    assert!(segs.iter().any(|s| s.rst), "{segs:?}");
    assert_eq!(h.engine.stats().sockets, 0);
    // The driver already dropped its socket: no Close for it.
    assert!(h.commands().is_empty());
}

/// A client-first flow that names nothing in time is refused (it used to be connected
/// by address after 1.5 s, the blocked name then reaching the server), and nothing goes
/// upstream while it waits.
#[test]
fn inspection_timeout_refuses_the_flow() {
    let mut h = Harness::new();
    let _app = handshake(&mut h, "93.184.216.34:443");
    let deadline = h.engine.poll_timeout().expect("inspection deadline");
    assert!(deadline <= h.now + h.engine.config().inspect_timeout);
    assert!(h.engine.config().inspect_timeout >= Duration::from_secs(30));
    h.advance(Duration::from_millis(1500));
    assert!(h.commands().is_empty(), "no address decision at 1.5 s");
    h.advance(h.engine.config().inspect_timeout);
    assert!(h.segs().iter().any(|s| s.rst));
    assert!(h.commands().is_empty(), "never connected upstream");
    let events = h.events();
    let d = decisions(&events);
    assert_eq!(d.len(), 1);
    assert!(d[0].decision.is_block(), "{:?}", d[0].decision);
}

#[test]
fn connect_timeout_resets_and_idle_engine_sleeps() {
    let mut h = Harness::new();
    assert_eq!(h.engine.poll_timeout(), None, "no flows: no wake-ups");
    let mut app = AppConn::new("10.0.0.2:40020", "198.51.100.7:5004");
    let flow = ack_first(&mut h, &mut app);
    h.advance(h.engine.config().connect_timeout + Duration::from_millis(1));
    let segs = h.segs();
    assert!(segs.iter().any(|s| s.rst));
    assert_eq!(h.commands(), vec![Command::Close { flow }]);
    assert_eq!(
        h.engine.poll_timeout(),
        None,
        "all timers gone with the flow"
    );
}

#[test]
fn idle_relayed_flow_expires() {
    let mut h = Harness::new();
    let (_app, flow) = relayed(&mut h, 5005);
    h.commands();
    h.advance(h.engine.config().tcp_idle_timeout + Duration::from_secs(1));
    assert!(h.commands().contains(&Command::Close { flow }));
    assert_eq!(h.engine.stats().flows_timed_out, 1);
}

#[test]
fn segment_without_flow_gets_rst() {
    let mut h = Harness::new();
    let app = AppConn::new("10.0.0.2:40030", "198.51.100.7:80");
    let p = embargo_test_support::tcp(
        app.src,
        app.dst,
        5,
        Some(77),
        smoltcp::wire::TcpControl::None,
        b"x",
    );
    h.send(&p);
    let segs = h.segs();
    assert!(segs[0].rst && segs[0].seq == 77);
}

#[test]
fn ipv6_flow_inspected_and_relayed() {
    let mut h = Harness::new();
    let mut app = AppConn::new("[fd00::2]:40000", "[2001:db8::80]:443");
    h.send(&app.syn());
    let segs = h.segs();
    h.send(&app.on_synack(&segs[0]));
    h.send(&app.data(&client_hello("v6.example")));
    let (flow, _) = connect_flow(&mut h);
    h.upstream(UpstreamEvent::Connected { flow });
    h.commands();
    assert_eq!(h.read_app(flow), client_hello("v6.example"));
}

#[test]
fn app_identity_is_asked_once_and_waited_for_briefly() {
    let config = embargo_engine::EngineConfig {
        resolve_apps: true,
        ..Default::default()
    };
    let mut h = Harness::with_config(config);
    let mut app = AppConn::new("10.0.0.2:40040", "93.184.216.34:443");
    h.send(&app.syn());
    h.send(&app.syn());
    let cmds = h.commands();
    let [Command::ResolveApp { flow, src, .. }] = cmds.as_slice() else {
        panic!("{cmds:?}")
    };
    assert_eq!(*src, app.src);
    assert!(
        h.segs().is_empty(),
        "SYN-ACK held while the app is resolved"
    );
    h.engine
        .app_resolved(h.now, *flow, Some("com.example.app".into()));
    let segs = h.segs();
    h.send(&app.on_synack(&segs[0]));
    h.send(&app.data(&client_hello(BLOCKED_NAME)));
    assert!(h.segs().iter().any(|s| s.rst));
    let events = h.events();
    assert_eq!(
        decisions(&events)[0].app.as_deref(),
        Some("com.example.app")
    );
    // No answer: decided with the app unknown after app_wait.
    let app2 = AppConn::new("10.0.0.2:40041", "198.51.100.7:5006");
    h.send(&app2.syn());
    assert!(matches!(
        h.commands().as_slice(),
        [Command::ResolveApp { .. }]
    ));
    h.advance(h.engine.config().app_wait);
    assert!(h.commands().is_empty(), "no upstream before the app's ACK");
    let mut app2 = app2;
    let segs = h.segs();
    h.send(&app2.on_synack(&segs[0]));
    let cmds = h.commands();
    assert!(
        matches!(cmds.as_slice(), [Command::Connect { .. }]),
        "{cmds:?}"
    );
    let events = h.events();
    assert_eq!(decisions(&events)[0].app, None);
}

#[test]
fn full_table_evicts_the_oldest_idle_flow() {
    let config = embargo_engine::EngineConfig {
        max_flows: 2,
        ..Default::default()
    };
    let mut h = Harness::with_config(config);
    let mut flows = Vec::new();
    for port in [40050u16, 40051] {
        let mut app = AppConn::new(&format!("10.0.0.2:{port}"), "198.51.100.7:5007");
        flows.push(ack_first(&mut h, &mut app));
    }
    h.advance(Duration::from_secs(11));
    let mut app = AppConn::new("10.0.0.2:40052", "198.51.100.7:5007");
    h.send(&app.syn());
    let cmds = h.commands();
    assert!(
        cmds.contains(&Command::Close { flow: flows[0] }),
        "{cmds:?}"
    );
    let segs = h.segs();
    h.send(&app.on_synack(segs.last().expect("SYN-ACK")));
    let cmds = h.commands();
    assert!(cmds.iter().any(|c| matches!(c, Command::Connect { .. })));
    let s = h.engine.stats();
    assert_eq!((s.tcp_flows, s.flows_evicted), (2, 1));
}

#[test]
fn runs_with_the_builtin_policy() {
    let mut h = Harness::new();
    h.engine
        .set_policy(std::sync::Arc::new(embargo_policy::Policy::builtin()));
    let mut app = handshake(&mut h, "93.184.216.34:443");
    h.send(&app.data(&client_hello("www.example.org")));
    let events = h.events();
    assert_eq!(decisions(&events).len(), 1);
}

#[test]
fn ipv6_syn_with_extension_headers_is_handled() {
    let mut h = Harness::new();
    let app = AppConn::new("[fd00::2]:40060", "[2001:db8::81]:5008");
    let syn = app.syn();
    // Insert a hop-by-hop header (PadN) between the IPv6 header and TCP.
    let mut with_ext = syn[..40].to_vec();
    with_ext[6] = 0; // hop-by-hop
    let plen = u16::from_be_bytes([syn[4], syn[5]]) + 8;
    with_ext[4..6].copy_from_slice(&plen.to_be_bytes());
    with_ext.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
    with_ext.extend_from_slice(&syn[40..]);
    h.send(&with_ext);
    let segs = h.segs();
    assert!(segs[0].syn && segs[0].ack == Some(app.seq + 1), "{segs:?}");
    // A fragment header: dropped and counted.
    let mut frag = with_ext.clone();
    frag[40] = 6;
    frag[6] = 44;
    h.send(&frag);
    assert_eq!(
        h.engine.stats().dropped[embargo_engine::DropReason::Fragment as usize],
        1
    );
}

/// Each flow's smoltcp deadlines live in the engine's timer: a segment the app never received
/// is sent again once the retransmission timeout passes, and the timer stops with the ACK.
#[test]
fn lost_segment_to_app_is_retransmitted() {
    let mut h = Harness::new();
    let (mut app, flow) = relayed(&mut h, 5010);
    h.commands();
    assert_eq!(h.engine.write_upstream_data(h.now, flow, b"hello"), 5);
    let lost = h.segs();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0].payload, b"hello");
    // The app never saw it. The engine must wake for the retransmission, well before idle.
    let due = h.engine.poll_timeout().expect("retransmission timer");
    assert!(
        due > h.now && due <= h.now + Duration::from_secs(5),
        "{due:?}"
    );
    h.advance(due - h.now);
    let again = h.segs();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(
        (again[0].seq, &again[0].payload),
        (lost[0].seq, &lost[0].payload)
    );
    // Acknowledged: nothing more until the idle timeout.
    h.send(&app.ack_all(&again));
    assert!(h.segs().is_empty());
    let next = h.engine.poll_timeout().expect("idle timer");
    assert!(
        next >= h.now + Duration::from_secs(60),
        "{:?}",
        next - h.now
    );
    h.advance(Duration::from_secs(30));
    assert!(h.segs().is_empty(), "no retransmission after the ACK");
}

/// The inspect-first SYN-ACK is the engine's own: lost, it is sent again.
#[test]
fn lost_synack_is_retransmitted() {
    let mut h = Harness::new();
    let mut app = AppConn::new("10.0.0.2:40070", "93.184.216.34:443");
    h.send(&app.syn());
    let first = h.segs();
    assert!(first.len() == 1 && first[0].syn, "{first:?}");
    let due = h.engine.poll_timeout().expect("retransmission timer");
    h.advance(due - h.now);
    let again = h.segs();
    assert!(
        again.len() == 1 && again[0].syn && again[0].seq == first[0].seq,
        "{again:?}"
    );
    h.send(&app.on_synack(&again[0]));
    assert!(h.segs().is_empty());
}

/// Data from the app is acknowledged (at once or by the delayed-ACK timer), without the
/// driver doing anything but sleep until the engine's deadline.
#[test]
fn app_data_is_acknowledged_by_the_timer_if_not_at_once() {
    let mut h = Harness::new();
    let (mut app, flow) = relayed(&mut h, 5011);
    h.commands();
    h.send(&app.data(b"request"));
    let mut segs = h.segs();
    if let Some(due) = h.engine.poll_timeout() {
        if due < h.now + Duration::from_secs(1) {
            h.advance(due - h.now);
            segs.extend(h.segs());
        }
    }
    assert!(
        segs.iter().any(|s| s.ack == Some(app.seq)),
        "the app's data is never acknowledged: {segs:?}"
    );
    assert_eq!(h.read_app(flow), b"request");
}

/// Established idle flows leave the driver asleep: no flow reports "poll now".
#[test]
fn idle_established_flows_do_not_wake_the_driver() {
    let mut h = Harness::new();
    for i in 0..50u16 {
        let mut app = AppConn::new(
            &format!("10.0.1.{}:{}", i + 1, 41000 + i),
            "198.51.100.8:5012",
        );
        let flow = ack_first(&mut h, &mut app);
        h.upstream(UpstreamEvent::Connected { flow });
    }
    assert!(h.segs().is_empty());
    assert_eq!(h.engine.stats().sockets, 50);
    let next = h.engine.poll_timeout().expect("idle timers");
    assert!(
        next >= h.now + Duration::from_secs(60),
        "{:?}",
        next - h.now
    );
}

/// More segments than the tunnel queue holds: smoltcp is refused transmit tokens, and the flows
/// held back send the rest once the driver drains the queue (no timer needed).
#[test]
fn full_tunnel_queue_resumes_after_drain() {
    let mut h = Harness::new();
    let mut flows = Vec::new();
    for i in 0..40u16 {
        let mut app = AppConn::new(
            &format!("10.0.2.{}:{}", i + 1, 42000 + i),
            "198.51.100.9:5013",
        );
        let flow = ack_first(&mut h, &mut app);
        h.upstream(UpstreamEvent::Connected { flow });
        flows.push(flow);
    }
    // Whatever each flow's ring takes (grown or not), more than the queue holds in all.
    let chunk = vec![0x42u8; 8 * 1400];
    let mut written = 0;
    for &flow in &flows {
        // As the driver does: read on while the flow takes bytes (its ring may grow).
        let mut taken = 0;
        while taken < chunk.len() {
            let n = h.engine.write_upstream_data(h.now, flow, &chunk[taken..]);
            if n == 0 {
                break;
            }
            taken += n;
        }
        written += taken;
    }
    assert!(written > 256 * 1400, "{written}");
    // Drain, and everything arrives without advancing time.
    let mut bytes = 0;
    for _ in 0..10 {
        bytes += h.segs().iter().map(|s| s.payload.len()).sum::<usize>();
    }
    assert_eq!(bytes, written);
}

/// A new flow's initial rings (every connection, each of wrk's 1,000) take a typical small
/// HTTP response (nginx's 1.3 KB page with its headers) in one flight: with a ring smaller
/// than the response, the rest waited for the app's ACK, an extra trip through the tunnel and
/// three more system calls per request.
#[test]
fn a_small_flow_takes_a_small_response_in_one_flight() {
    let mut h = Harness::new();
    let (mut app, flow) = relayed(&mut h, 5020);
    h.send(&app.data(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_eq!(h.commands(), vec![Command::AppDataReady { flow }]);
    let _ = h.read_app(flow);
    let response = vec![b'x'; 1318];
    assert_eq!(
        h.engine.write_upstream_data(h.now, flow, &response),
        response.len(),
        "the whole response fits the flow's send ring"
    );
    let segs = h.segs();
    let sent: usize = segs.iter().map(|s| s.payload.len()).sum();
    assert_eq!(
        sent,
        response.len(),
        "all of it leaves before any ACK: {segs:?}"
    );
    // Acknowledged, the connection stays open without its send ring, and the next response
    // takes a new one, again in one flight.
    let holding = h.engine.stats().memory_bytes;
    h.send(&app.ack_all(&segs));
    let _ = h.segs();
    let small_tx = embargo_engine::EngineConfig::default().tcp_small_tx;
    assert_eq!(h.engine.stats().memory_bytes, holding - small_tx);
    assert_eq!(h.engine.upstream_window(flow), small_tx);
    assert_eq!(
        h.engine.write_upstream_data(h.now, flow, &response),
        response.len()
    );
    let segs = h.segs();
    let sent: usize = segs.iter().map(|s| s.payload.len()).sum();
    assert_eq!(sent, response.len());
    // Between requests it held no receive ring either (its window still advertised): the
    // next request gets one back before its bytes land, and arrives whole.
    h.send(&app.ack_all(&segs));
    let _ = h.segs();
    let idle = h.engine.stats().memory_bytes;
    let config = embargo_engine::EngineConfig::default();
    let next = vec![b'r'; config.tcp_small_rx];
    h.send(&app.data(&next));
    assert_eq!(h.commands(), vec![Command::AppDataReady { flow }]);
    // (The tunnel's packet buffers may have grown for the larger segment: POOL_SLACK.)
    let holding = h.engine.stats().memory_bytes - idle;
    let expected = config.tcp_small_rx;
    assert!(
        (expected..expected + POOL_SLACK).contains(&holding),
        "{holding}"
    );
    assert_eq!(h.read_app(flow), next);
    let after = h.engine.stats().memory_bytes - idle;
    assert!(after < POOL_SLACK, "{after}");
}

/// What the tunnel's packet pool may grow by while a test's segments leave (a few buffers of
/// MTU size), beside the rings a memory assertion is about.
const POOL_SLACK: usize = 4 * 1500;

/// A download that keeps the send ring full has it doubled each time, up to `tcp_max_tx`:
/// the ring starts small (an idle connection holds no more) and a bulk flow ends with the
/// window it needs, its growth counted in the engine's accounting.
#[test]
fn a_download_grows_the_send_ring_to_its_maximum() {
    let mut h = Harness::new();
    let config = embargo_engine::EngineConfig::default();
    let (mut app, flow) = relayed(&mut h, 5030);
    h.send(&app.data(b"GET /big"));
    assert_eq!(h.commands(), vec![Command::AppDataReady { flow }]);
    let _ = h.read_app(flow);
    let _ = h.segs();
    let idle = h.engine.stats().memory_bytes;
    assert_eq!(h.engine.upstream_window(flow), config.tcp_small_tx);
    // The app acknowledges nothing: only the ring's growth makes room.
    let bulk = vec![b'd'; 4096];
    let (mut taken, mut segs) = (0, Vec::new());
    loop {
        let n = h.engine.write_upstream_data(h.now, flow, &bulk);
        segs.extend(h.segs());
        if n == 0 {
            break;
        }
        taken += n;
    }
    assert_eq!(taken, config.tcp_max_tx);
    assert_eq!(h.engine.upstream_window(flow), 0);
    let stats = h.engine.stats();
    // 1,792 B doubled 7 times is 229,376 B; the 8th step stops at the maximum.
    assert_eq!(stats.rings_grown, 8);
    // The idle flow held no send ring (given back); plus the tunnel's packet pool, which keeps
    // a few more MTU-sized buffers now.
    let grown = stats.memory_bytes - idle;
    let expected = config.tcp_max_tx;
    assert!(
        (expected..expected + POOL_SLACK).contains(&grown),
        "{grown}"
    );
    // What the app acknowledges frees room, and the ring keeps its size.
    h.send(&app.ack_all(&segs));
    assert!(h.engine.upstream_window(flow) > 0);
}

/// An upload that fills the receive ring (the upstream taking less than the app sends) has it
/// doubled each time, and the larger window is advertised at once, past 64 KiB with the
/// window scale chosen at the handshake for the largest ring.
#[test]
fn an_upload_grows_the_receive_window_past_64_kib() {
    let mut h = Harness::new();
    let config = embargo_engine::EngineConfig::default();
    let mut app = AppConn::new("10.0.0.2:40120", "198.51.100.7:5031");
    h.send(&app.syn_with_window_scale(7));
    let segs = h.segs();
    assert!(segs.len() == 1 && segs[0].syn, "{segs:?}");
    h.send(&app.on_synack(&segs[0]));
    let (flow, _) = connect_flow(&mut h);
    h.upstream(UpstreamEvent::Connected { flow });
    let _ = h.segs();
    // The ring grows to 256 KiB: the SYN-ACK offered a shift of 3.
    let shift = 3;
    let mut window = config.tcp_small_rx;
    let mut sent = 0;
    for _ in 0..12 {
        // Fill the advertised window; the driver reads nothing.
        let mut left = window;
        while left > 0 {
            let n = left.min(1400);
            h.send(&app.data(&vec![b'u'; n]));
            left -= n;
            sent += n;
        }
        let segs = h.segs();
        let last = segs.last().expect("an ACK with the new window");
        window = usize::from(last.window) << shift;
        if window == 0 {
            break;
        }
    }
    let stats = h.engine.stats();
    assert!(stats.rings_grown >= 8, "{stats:?}");
    assert!(sent > 64 * 1024 + config.tcp_small_rx, "{sent}");
    // Everything the window let in is there for the upstream, in order.
    let _ = h.commands();
    let got = h.read_app(flow);
    assert_eq!(got.len(), sent);
    assert!(got.iter().all(|&b| b == b'u'));
}

/// Growth stops at `tcp_grow_total` for all flows together, and a flow that ends gives its
/// growth back to the others.
#[test]
fn ring_growth_stays_within_the_grow_budget() {
    let config = embargo_engine::EngineConfig {
        tcp_grow_total: 16 * 1024,
        ..embargo_engine::EngineConfig::default()
    };
    let small = config.tcp_small_tx;
    let mut h = Harness::with_config(config);
    let bulk = vec![b'd'; 4096];
    // Fill a flow's send ring (the app acknowledging nothing): bytes taken, segments sent.
    let fill = |h: &mut Harness, flow: FlowId| {
        let (mut taken, mut segs) = (0, Vec::new());
        loop {
            let n = h.engine.write_upstream_data(h.now, flow, &bulk);
            segs.extend(h.segs());
            if n == 0 {
                return (taken, segs);
            }
            taken += n;
        }
    };
    let (a_app, a) = relayed_from(&mut h, "10.0.0.2:40130", 5032);
    let (mut b_app, b) = relayed_from(&mut h, "10.0.0.2:40131", 5032);
    let base = h.engine.stats().memory_bytes;
    // a: 1,792 -> 3,584 -> 7,168 -> 14,336 (12,544 B grown); the next step would pass 16 KiB.
    assert_eq!(fill(&mut h, a).0, 8 * small);
    // b: the 3,840 B left take one step.
    let (taken, segs) = fill(&mut h, b);
    assert_eq!(taken, 2 * small);
    // Both idle flows had given their send rings back: they came back, and grew.
    let grown = h.engine.stats().memory_bytes - base;
    let expected = 10 * small;
    assert!(
        (expected..expected + POOL_SLACK).contains(&grown),
        "{grown}"
    );
    // a ends: its growth comes back, and b grows on once its app makes room.
    h.send(&a_app.rst());
    let _ = (h.commands(), h.events(), h.segs());
    let idle_flow = embargo_engine::budget::TCP_FLOW_OVERHEAD + 1024;
    let now = h.engine.stats().memory_bytes;
    let expected = base - idle_flow + 2 * small;
    assert!((expected..expected + POOL_SLACK).contains(&now), "{now}");
    h.send(&b_app.ack_all(&segs));
    assert_eq!(fill(&mut h, b).0, 8 * small);
}
