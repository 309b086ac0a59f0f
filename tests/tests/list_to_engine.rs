//! A blocklist through the real parser and compiler, as a policy of the engine: what the list
//! names is answered locally by the engine, what it does not is forwarded.

use std::sync::Arc;

use embargo_engine::{Command, Engine, EngineConfig, FlowId};
use embargo_policy::parse::{parse_bytes, Format};
use embargo_policy::{AppRules, IpDb, Policy, RuleSetBuilder};
use embargo_test_support::{dns_query, udp, Harness, Out};

fn harness_with_list(hosts: &str) -> Harness {
    let mut builder = RuleSetBuilder::new();
    let report = parse_bytes(Format::Hosts, "test.hosts", hosts.as_bytes(), &mut |r| {
        builder.add(r)
    });
    assert_eq!(
        (report.accepted, report.error_count),
        (1, 0),
        "{:?}",
        report.errors
    );
    let policy = Policy::new(
        vec![Arc::new(builder.build())],
        IpDb::new(),
        AppRules::default(),
    );
    let config = EngineConfig {
        resolve_apps: false,
        ..EngineConfig::default()
    };
    let now = std::time::Instant::now();
    Harness {
        engine: Engine::new(config, Arc::new(policy), now),
        now,
    }
}

#[test]
fn a_listed_name_is_answered_locally_and_another_is_forwarded() {
    let mut h = harness_with_list("0.0.0.0 tracker.example\n");
    let (app, resolver) = (
        "10.0.0.2:5353".parse().unwrap(),
        "9.9.9.9:53".parse().unwrap(),
    );

    h.send(&udp(app, resolver, &dns_query(1, "tracker.example", 1)));
    assert!(h.commands().is_empty(), "a listed name must not leave");
    let out = h.out();
    assert!(
        matches!(out.as_slice(), [Out::Udp(d)] if d.dst == app && d.src == resolver),
        "{out:?}"
    );

    h.send(&udp(app, resolver, &dns_query(2, "fine.example", 1)));
    let cmds = h.commands();
    assert!(
        matches!(cmds.as_slice(), [Command::SendDatagram { flow, .. }] if *flow == FlowId::DNS),
        "{cmds:?}"
    );
}
