//! Fair shares of the flow table. A UDP spray to many ports used to keep
//! the table full and push out other apps' TCP connections at once; now UDP goes before TCP,
//! and an app holding half the table or more gives up its own flows first.

use std::net::SocketAddr;

use embargo_engine::{Command, EngineConfig, FlowId, UpstreamEvent};
use embargo_test_support::*;

const MAX: usize = 64;

/// An established connect-first flow from `src`.
fn tcp_flow(h: &mut Harness, src: &str) -> FlowId {
    let mut app = AppConn::new(src, "198.51.100.7:5222");
    h.send(&app.syn());
    let segs = h.segs();
    let synack = segs
        .iter()
        .find(|s| s.syn && s.dst == app.src)
        .expect("SYN-ACK");
    h.send(&app.on_synack(synack));
    let cmds = h.commands();
    let flow = cmds
        .iter()
        .find_map(|c| match c {
            Command::Connect { flow, .. } => Some(*flow),
            _ => None,
        })
        .expect("Connect");
    h.upstream(UpstreamEvent::Connected { flow });
    flow
}

fn closed(cmds: &[Command], flows: &[FlowId]) -> usize {
    cmds.iter()
        .filter(|c| matches!(c, Command::Close { flow } if flows.contains(flow)))
        .count()
}

/// Before: 10 of the 20 TCP flows survived a 500-port spray (each new UDP flow pushed out
/// whatever was oldest, TCP included). After: all 20 do.
#[test]
fn a_udp_spray_does_not_evict_tcp() {
    let mut h = Harness::with_config(EngineConfig {
        max_flows: MAX,
        ..EngineConfig::default()
    });
    let mut tcp = Vec::new();
    for i in 0..10 {
        tcp.push(tcp_flow(&mut h, &format!("10.0.0.3:{}", 40000 + i)));
    }
    let spray: SocketAddr = "10.0.0.4:7000".parse().unwrap();
    let mut closes = 0;
    for port in 0..500u16 {
        let dst: SocketAddr = format!("198.51.100.9:{}", 10000 + port).parse().unwrap();
        h.send(&udp(spray, dst, b"x"));
        if port % 50 == 49 {
            // Another app opens a connection in the middle of the spray.
            let i = port / 50;
            tcp.push(tcp_flow(&mut h, &format!("10.0.0.3:{}", 41000 + i)));
        }
        closes += closed(&h.commands(), &tcp);
    }
    assert_eq!(closes, 0, "TCP flows evicted by the UDP spray");
    let s = h.engine.stats();
    assert_eq!(s.tcp_flows, 20, "{s:?}");
    assert!(s.flows_evicted > 400, "{s:?}");
}

/// One app holding half the table gives up its own flows for another app's new ones, TCP
/// included. Before: 7 of the other app's 16 connections were evicted by the hog's new ones.
/// After: none.
#[test]
fn an_app_over_half_the_table_gives_way() {
    let mut h = Harness::with_config(EngineConfig {
        max_flows: MAX,
        resolve_apps: true,
        ..EngineConfig::default()
    });
    let named = |h: &mut Harness, src: &str, app: &str, seen: &mut Vec<Command>| -> FlowId {
        let mut c = AppConn::new(src, "198.51.100.7:5222");
        h.send(&c.syn());
        let cmds = h.commands();
        let flow = cmds
            .iter()
            .find_map(|c| match c {
                Command::ResolveApp { flow, .. } => Some(*flow),
                _ => None,
            })
            .expect("ResolveApp");
        seen.extend(cmds);
        h.engine.app_resolved(h.now, flow, Some(app.into()));
        let segs = h.segs();
        let synack = segs
            .iter()
            .find(|s| s.syn && s.dst == c.src)
            .expect("SYN-ACK");
        h.send(&c.on_synack(synack));
        seen.extend(h.commands());
        h.upstream(UpstreamEvent::Connected { flow });
        flow
    };
    let mut seen = Vec::new();
    let mut other = Vec::new();
    for i in 0..8 {
        other.push(named(
            &mut h,
            &format!("10.0.0.5:{}", 40000 + i),
            "com.other",
            &mut seen,
        ));
    }
    for i in 0..200 {
        named(
            &mut h,
            &format!("10.0.0.6:{}", 30000 + i),
            "com.hog",
            &mut seen,
        );
        seen.extend(h.commands());
        assert_eq!(closed(&seen, &other), 0, "at {i}");
    }
    let mut more = Vec::new();
    for i in 0..8 {
        more.push(named(
            &mut h,
            &format!("10.0.0.5:{}", 41000 + i),
            "com.other",
            &mut seen,
        ));
    }
    other.extend(more);
    seen.extend(h.commands());
    assert_eq!(closed(&seen, &other), 0);
    assert!(h.engine.stats().tcp_flows <= MAX);
}
