//! App identity for DNS questions and flows: asked once per source, waited for only when the
//! app could change the verdict, and named in every decision event.

use std::net::SocketAddr;
use std::sync::Arc;

use embargo_engine::{Command, Decide, DecisionEvent, EngineConfig, Event, FlowId};
use embargo_policy::parse::{parse_bytes, Format};
use embargo_policy::{AppRules, Decision, IpDb, Policy, Query, RuleSetBuilder};
use embargo_test_support::*;

/// The app whose blocking is off in these tests.
const QUIET_APP: &str = "com.quiet";

/// Blocks what `test_policy` blocks, except for [`QUIET_APP`] (blocking off).
fn per_app_policy(q: &Query<'_>) -> Decision {
    if q.app == Some(QUIET_APP) {
        allow()
    } else {
        test_policy(q)
    }
}

/// `test_policy`, saying that no app can change its verdict.
struct AppBlind;

impl Decide for AppBlind {
    fn decide(&self, query: &Query<'_>) -> Decision {
        test_policy(query)
    }

    fn app_can_change(&self, _: &Query<'_>) -> bool {
        false
    }
}

fn harness(policy: Arc<dyn Decide>) -> Harness {
    let mut h = Harness::with_config(EngineConfig {
        resolve_apps: true,
        ..Default::default()
    });
    h.engine.set_policy(policy);
    h
}

fn resolve_app(cmds: &[Command]) -> FlowId {
    match cmds {
        [Command::ResolveApp { flow, .. }, ..] => *flow,
        other => panic!("expected ResolveApp first, got {other:?}"),
    }
}

fn decisions(events: &[Event]) -> Vec<&DecisionEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Decision(d) => Some(&**d),
            _ => None,
        })
        .collect()
}

const RESOLVER: &str = "8.8.8.8:53";

#[test]
fn a_dns_question_waits_for_its_app_and_is_decided_with_it() {
    let mut h = harness(Arc::new(per_app_policy));
    let quiet: SocketAddr = "10.0.0.2:5400".parse().unwrap();
    let other: SocketAddr = "10.0.0.2:5401".parse().unwrap();
    let resolver: SocketAddr = RESOLVER.parse().unwrap();
    let name = "ads.blocked.example";

    h.send(&udp(quiet, resolver, &dns_query(1, name, 1)));
    // A second question from the same socket joins the same wait: one ResolveApp.
    h.send(&udp(quiet, resolver, &dns_query(2, name, 28)));
    let cmds = h.commands();
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    let flow = resolve_app(&cmds);
    assert!(h.out().is_empty(), "held while the app is resolved");
    assert!(decisions(&h.events()).is_empty());
    h.engine.app_resolved(h.now, flow, Some(QUIET_APP.into()));
    let cmds = h.commands();
    assert_eq!(
        cmds.len(),
        2,
        "blocking off for this app: both forwarded {cmds:?}"
    );
    assert!(cmds
        .iter()
        .all(|c| matches!(c, Command::SendDatagram { flow, .. } if *flow == FlowId::DNS)));
    let events = h.events();
    let d = decisions(&events);
    assert_eq!(d.len(), 2);
    assert!(d
        .iter()
        .all(|d| d.app.as_deref() == Some(QUIET_APP) && !d.decision.is_block()));
    // The app is cached for the source: the next question is decided at once.
    h.send(&udp(quiet, resolver, &dns_query(3, "www.example.com", 1)));
    assert!(matches!(
        h.commands().as_slice(),
        [Command::SendDatagram { .. }]
    ));
    h.events();

    h.send(&udp(other, resolver, &dns_query(4, name, 1)));
    let flow = resolve_app(&h.commands());
    h.engine.app_resolved(h.now, flow, Some("com.other".into()));
    assert!(h.commands().is_empty(), "blocked: nothing leaves");
    let out = h.out();
    let Out::Udp(answer) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(answer.dst, other);
    let events = h.events();
    let d = decisions(&events);
    assert_eq!(d[0].app.as_deref(), Some("com.other"));
    assert_eq!(d[0].name.as_deref(), Some(name));
    assert!(d[0].decision.is_block());
}

#[test]
fn a_dns_question_is_decided_without_its_app_after_the_wait() {
    let mut h = harness(Arc::new(per_app_policy));
    let src: SocketAddr = "10.0.0.2:5402".parse().unwrap();
    h.send(&udp(
        src,
        RESOLVER.parse().unwrap(),
        &dns_query(5, "x.blocked.example", 1),
    ));
    assert!(h.out().is_empty());
    assert!(h.engine.poll_timeout().is_some());
    let flow = resolve_app(&h.commands());
    h.advance(h.engine.config().app_wait);
    assert_eq!(h.out().len(), 1, "answered (blocked) once the wait is over");
    let events = h.events();
    assert_eq!(decisions(&events)[0].app, None);
    // A late answer is still cached: the next question from the socket does not wait.
    h.engine.app_resolved(h.now, flow, Some(QUIET_APP.into()));
    h.send(&udp(
        src,
        RESOLVER.parse().unwrap(),
        &dns_query(6, "x.blocked.example", 1),
    ));
    assert!(matches!(
        h.commands().as_slice(),
        [Command::SendDatagram { .. }]
    ));
    let events = h.events();
    assert_eq!(decisions(&events)[0].app.as_deref(), Some(QUIET_APP));
}

#[test]
fn an_allowed_dns_question_the_app_cannot_change_goes_out_at_once_and_is_named_later() {
    let mut h = harness(Arc::new(AppBlind));
    let src: SocketAddr = "10.0.0.2:5403".parse().unwrap();
    h.send(&udp(
        src,
        RESOLVER.parse().unwrap(),
        &dns_query(6, "y.example", 1),
    ));
    let cmds = h.commands();
    let flow = resolve_app(&cmds);
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::SendDatagram { .. })),
        "the question did not go out at once: {cmds:?}"
    );
    assert!(
        decisions(&h.events()).is_empty(),
        "the event waits for the app's name"
    );
    h.engine.app_resolved(h.now, flow, Some("com.named".into()));
    let events = h.events();
    let d = decisions(&events);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].app.as_deref(), Some("com.named"));
    assert!(!d[0].decision.is_block());
}

#[test]
fn a_blocked_dns_question_waits_for_its_app_so_the_history_names_it() {
    // Even when no app could change the verdict: the asker exits on its answer, and with it
    // the socket the lookup needs, so the answer waits for the lookup.
    let mut h = harness(Arc::new(AppBlind));
    let src: SocketAddr = "10.0.0.2:5405".parse().unwrap();
    h.send(&udp(
        src,
        RESOLVER.parse().unwrap(),
        &dns_query(6, "y.blocked.example", 1),
    ));
    let flow = resolve_app(&h.commands());
    assert!(
        h.out().is_empty(),
        "the block answer left before the app was known"
    );
    h.engine.app_resolved(h.now, flow, Some("com.named".into()));
    assert_eq!(h.out().len(), 1, "the block answer after the app");
    let events = h.events();
    let d = decisions(&events);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].app.as_deref(), Some("com.named"));
    assert!(d[0].decision.is_block());
}

#[test]
fn a_flow_the_app_cannot_change_connects_at_once_and_is_named_later() {
    let mut h = harness(Arc::new(AppBlind));
    let mut app = AppConn::new("10.0.0.2:40100", "198.51.100.7:5100");
    h.send(&app.syn());
    let cmds = h.commands();
    let flow = resolve_app(&cmds);
    let segs = h.segs();
    assert!(
        segs.len() == 1 && segs[0].syn,
        "no app wait before the SYN-ACK: {segs:?}"
    );
    h.send(&app.on_synack(&segs[0]));
    let cmds = h.commands();
    assert!(
        cmds.iter().any(|c| matches!(c, Command::Connect { .. })),
        "no app wait before connecting: {cmds:?}"
    );
    assert!(decisions(&h.events()).is_empty());
    h.engine.app_resolved(h.now, flow, Some("com.named".into()));
    let events = h.events();
    assert_eq!(decisions(&events)[0].app.as_deref(), Some("com.named"));

    // Blocked by address: the SYN waits for the app (so the history names who tried), and
    // without an answer the RST leaves at the wait's end, app unknown.
    let blocked = AppConn::new("10.0.0.2:40101", &format!("{BLOCKED_ADDR}:5101"));
    h.send(&blocked.syn());
    assert!(!h.segs().iter().any(|s| s.rst), "RST before the app wait");
    resolve_app(&h.commands());
    assert!(decisions(&h.events()).is_empty());
    h.advance(h.engine.config().app_wait);
    assert!(h.segs().iter().any(|s| s.rst));
    let events = h.events();
    let d = decisions(&events);
    assert_eq!((d.len(), d[0].app.clone()), (1, None));
    assert!(d[0].decision.is_block());
}

#[test]
fn holds_for_app_says_which_answers_traffic_waits_for() {
    // Nothing waits for the app of a flow decided without it: only its event does.
    let mut h = harness(Arc::new(AppBlind));
    let app = AppConn::new("10.0.0.2:40110", "198.51.100.7:5110");
    h.send(&app.syn());
    let flow = resolve_app(&h.commands());
    assert!(!h.engine.holds_for_app(flow));

    // A handshake held for its app, and a DNS source's wait, do.
    let mut h = harness(Arc::new(per_app_policy));
    let app = AppConn::new("10.0.0.2:40111", &format!("{BLOCKED_ADDR}:5111"));
    h.send(&app.syn());
    let flow = resolve_app(&h.commands());
    assert!(h.engine.holds_for_app(flow));
    h.engine.app_resolved(h.now, flow, Some("com.named".into()));
    assert!(!h.engine.holds_for_app(flow));
    let src: SocketAddr = "10.0.0.2:5410".parse().unwrap();
    h.send(&udp(
        src,
        RESOLVER.parse().unwrap(),
        &dns_query(3, "x.example", 1),
    ));
    let flow = resolve_app(&h.commands());
    assert!(h.engine.holds_for_app(flow));
}

#[test]
fn a_udp_flow_the_app_cannot_change_is_relayed_at_once() {
    let mut h = harness(Arc::new(AppBlind));
    let src: SocketAddr = "10.0.0.2:6100".parse().unwrap();
    h.send(&udp(src, "198.51.100.20:3478".parse().unwrap(), b"ping"));
    let cmds = h.commands();
    let flow = resolve_app(&cmds);
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::SendDatagram { .. })),
        "{cmds:?}"
    );
    h.engine.app_resolved(h.now, flow, Some("com.named".into()));
    let events = h.events();
    assert_eq!(decisions(&events)[0].app.as_deref(), Some("com.named"));
}

fn policy_from(text: &str, apps: AppRules) -> Policy {
    let mut builder = RuleSetBuilder::new();
    let report = parse_bytes(Format::Embargo, "test", text.as_bytes(), &mut |r| {
        builder.add(r)
    });
    assert!(report.errors.is_empty(), "{report:?}");
    Policy::new(vec![Arc::new(builder.build())], IpDb::new(), apps)
}

#[test]
fn policy_says_when_the_app_can_change_a_verdict() {
    let tracker = Query::name("t.tracker.example");
    let plain = Query::name("www.example.com");

    // No per-app settings and no app-owner facts: every app is decided alike.
    let p = policy_from("tracker.example\n", AppRules::default());
    assert!(!Decide::app_can_change(&p, &tracker));
    assert!(!Decide::app_can_change(&p, &plain));

    // A per-app setting: any app may differ.
    let mut apps = AppRules::default();
    apps.set_blocking(QUIET_APP, false);
    let p = policy_from("tracker.example\n", apps);
    assert!(Decide::app_can_change(&p, &tracker));

    // App-owner facts: the first-party exception can only allow, so only blocks may change.
    let p = policy_from(
        "tracker.example\nowns: Tracker = tracker.example\napp-owner: com.tracker = Tracker\n",
        AppRules::default(),
    );
    assert!(Decide::app_can_change(&p, &tracker));
    assert!(!Decide::app_can_change(&p, &plain));
    let handle = embargo_policy::PolicyHandle::new(Arc::new(p));
    assert!(Decide::app_can_change(&handle, &tracker));
}

#[test]
fn waiting_events_per_dns_source_are_bounded() {
    let mut h = harness(Arc::new(AppBlind));
    let src: SocketAddr = "10.0.0.2:5404".parse().unwrap();
    for id in 0..20u16 {
        h.send(&udp(
            src,
            RESOLVER.parse().unwrap(),
            &dns_query(id, "z.example", 1),
        ));
    }
    let cmds = h.commands();
    let flow = resolve_app(&cmds);
    let sent = cmds
        .iter()
        .filter(|c| matches!(c, Command::SendDatagram { .. }))
        .count();
    assert_eq!(sent, 20, "every question forwarded at once");
    let early = decisions(&h.events()).len();
    assert!(early > 0 && early < 20, "{early} recorded before the app");
    h.engine.app_resolved(h.now, flow, Some("com.named".into()));
    let events = h.events();
    let late = decisions(&events);
    assert_eq!(early + late.len(), 20);
    assert!(late.iter().all(|d| d.app.as_deref() == Some("com.named")));
}

#[test]
fn held_block_answers_per_dns_source_are_bounded() {
    let mut h = harness(Arc::new(AppBlind));
    let src: SocketAddr = "10.0.0.2:5406".parse().unwrap();
    for id in 0..20u16 {
        h.send(&udp(
            src,
            RESOLVER.parse().unwrap(),
            &dns_query(id, "z.blocked.example", 1),
        ));
    }
    let flow = resolve_app(&h.commands());
    let early = h.out().len();
    assert!(early > 0 && early < 20, "{early} answered before the app");
    h.engine.app_resolved(h.now, flow, Some("com.named".into()));
    assert_eq!(early + h.out().len(), 20, "every question answered");
}

#[test]
fn dns_over_tcp_waits_for_the_stream_app_and_decides_with_it() {
    /// Per-app for names, so a connection to the resolver's address does not depend on it.
    struct PerAppNames;
    impl Decide for PerAppNames {
        fn decide(&self, query: &Query<'_>) -> Decision {
            per_app_policy(query)
        }
        fn app_can_change(&self, query: &Query<'_>) -> bool {
            query.dns_type.is_some()
        }
    }
    let mut h = harness(Arc::new(PerAppNames));
    let mut app = AppConn::new("10.0.0.2:41100", "8.8.8.8:53");
    h.send(&app.syn());
    let flow = resolve_app(&h.commands());
    assert!(h.segs().is_empty(), "SYN-ACK held for the app");
    h.engine.app_resolved(h.now, flow, Some(QUIET_APP.into()));
    let segs = h.segs();
    h.send(&app.on_synack(&segs[0]));
    let q = dns_query(0x7777, "tcp.blocked.example", 1);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    h.send(&app.data(&framed));
    assert!(
        matches!(h.commands().as_slice(), [Command::SendDatagram { .. }]),
        "blocking off for the stream's app: forwarded"
    );
    let events = h.events();
    let d = decisions(&events);
    assert_eq!(d.last().unwrap().app.as_deref(), Some(QUIET_APP));
}

#[test]
fn a_host_found_blocked_before_the_app_is_known_waits_for_it() {
    let mut h = harness(Arc::new(AppBlind));
    let mut app = AppConn::new("10.0.0.2:40120", "93.184.216.34:80");
    h.send(&app.syn());
    let flow = resolve_app(&h.commands());
    let synack = h.segs();
    h.send(&app.on_synack(&synack[0]));
    h.send(&app.data(b"GET / HTTP/1.1\r\nHost: www.blocked.example\r\n\r\n"));
    assert!(
        !h.segs().iter().any(|s| s.rst),
        "RST before the app was named"
    );
    // More bytes do not decide it meanwhile, and nothing goes upstream.
    h.send(&app.data(b"x"));
    assert!(!h.segs().iter().any(|s| s.rst));
    assert!(h.commands().is_empty());
    h.engine.app_resolved(h.now, flow, Some("com.named".into()));
    assert!(h.segs().iter().any(|s| s.rst));
    assert!(h.commands().is_empty(), "a blocked flow never connects");
    let events = h.events();
    let d = decisions(&events);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].app.as_deref(), Some("com.named"));
    assert_eq!(d[0].name.as_deref(), Some("www.blocked.example"));
    assert!(d[0].decision.is_block());
}

#[test]
fn a_held_blocked_host_is_reset_at_the_wait_end_even_past_the_inspection_deadline() {
    // A wait longer than the inspection deadline: the deadline must not decide the flow by
    // address alone (which allows it) while its blocked Host waits for the app.
    let mut h = Harness::with_config(EngineConfig {
        resolve_apps: true,
        app_wait: std::time::Duration::from_secs(30),
        ..Default::default()
    });
    h.engine.set_policy(Arc::new(AppBlind));
    let mut app = AppConn::new("10.0.0.2:40121", "93.184.216.34:80");
    h.send(&app.syn());
    resolve_app(&h.commands());
    let synack = h.segs();
    h.send(&app.on_synack(&synack[0]));
    h.send(&app.data(b"GET / HTTP/1.1\r\nHost: www.blocked.example\r\n\r\n"));
    assert!(!h.segs().iter().any(|s| s.rst));
    h.advance(std::time::Duration::from_secs(31));
    assert!(h.segs().iter().any(|s| s.rst));
    let cmds = h.commands();
    assert!(
        !cmds.iter().any(|c| matches!(c, Command::Connect { .. })),
        "the blocked Host was connected: {cmds:?}"
    );
}
