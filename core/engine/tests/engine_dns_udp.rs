//! DNS and UDP through the engine, no IO, fake clock.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use embargo_engine::{Command, Event, FlowId, UpstreamEvent};
use embargo_policy::NameSource;
use embargo_test_support::*;
use smoltcp::wire::TcpControl;

fn upstream_query(cmds: &[Command]) -> (SocketAddr, Vec<u8>) {
    match cmds {
        [Command::SendDatagram { flow, dst, data }] => {
            assert_eq!(*flow, FlowId::DNS);
            (*dst, data.clone())
        }
        other => panic!("expected one forwarded query, got {other:?}"),
    }
}

/// An empty answer to `query` with the TC flag: what a resolver sends when the answer does not
/// fit the datagram.
fn truncated_answer(query: &[u8]) -> Vec<u8> {
    let mut answer = dns_answer(query, &[]);
    answer[2] |= 0x02;
    answer
}

/// An app's DNS-over-TCP stream from `src` to the resolver 8.8.8.8:53, established.
fn dns_over_tcp(h: &mut Harness, src: &str) -> AppConn {
    let mut app = AppConn::new(src, "8.8.8.8:53");
    h.send(&app.syn());
    let segs = h.segs();
    h.send(&app.on_synack(&segs[0]));
    app
}

/// DNS questions `(id, name, type)` as a TCP stream carries them: each with its 2-byte length.
fn framed(questions: &[(u16, &str, u16)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(id, name, qtype) in questions {
        let q = dns_query(id, name, qtype);
        out.extend_from_slice(&(q.len() as u16).to_be_bytes());
        out.extend_from_slice(&q);
    }
    out
}

/// The questions forwarded upstream among `cmds`: resolver and message.
fn forwarded(cmds: Vec<Command>) -> Vec<(SocketAddr, Vec<u8>)> {
    cmds.into_iter()
        .filter_map(|c| match c {
            Command::SendDatagram { dst, data, .. } => Some((dst, data)),
            _ => None,
        })
        .collect()
}

#[test]
fn blocked_dns_is_answered_locally_v4_and_v6() {
    let mut h = Harness::new();
    for (app, resolver, qtype) in [
        ("10.0.0.2:5353", "8.8.8.8:53", 1u16),
        ("[fd00::2]:5353", "[2001:4860:4860::8888]:53", 28),
        ("10.0.0.2:5354", "192.0.2.53:53", 65),
    ] {
        let (app, resolver): (SocketAddr, SocketAddr) =
            (app.parse().unwrap(), resolver.parse().unwrap());
        h.send(&udp(
            app,
            resolver,
            &dns_query(0xabcd, "ads.blocked.example", qtype),
        ));
        assert!(h.commands().is_empty(), "nothing leaves for a blocked name");
        let out = h.out();
        let Out::Udp(d) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!((d.src, d.dst), (resolver, app));
        let msg = hickory_proto::op::Message::from_vec(&d.payload).unwrap();
        assert_eq!(msg.metadata.id, 0xabcd);
        match qtype {
            1 => assert_eq!(
                msg.answers[0].data.ip_addr(),
                Some(IpAddr::from([0, 0, 0, 0]))
            ),
            28 => assert_eq!(msg.answers[0].data.ip_addr(), Some("::".parse().unwrap())),
            _ => assert!(msg.answers.is_empty(), "HTTPS/SVCB: no data"),
        }
    }
    assert_eq!(h.engine.stats().dns_blocked, 3);
}

#[test]
fn allowed_dns_is_forwarded_learned_and_cached() {
    let mut h = Harness::new();
    let app: SocketAddr = "10.0.0.2:5353".parse().unwrap();
    let resolver: SocketAddr = "8.8.8.8:53".parse().unwrap();
    let query = dns_query(0x1111, "www.example.com", 1);
    h.send(&udp(app, resolver, &query));
    let (upstream, sent) = upstream_query(&h.commands());
    assert_eq!(upstream, h.engine.config().dns_upstream_v4);
    assert_eq!(&sent[2..], &query[2..]);
    let addr: IpAddr = "198.51.100.10".parse().unwrap();
    let answer = dns_answer(&sent, &[addr]);
    // A spoofed answer from elsewhere is ignored.
    h.upstream(UpstreamEvent::Datagram {
        flow: FlowId::DNS,
        from: "192.0.2.1:53".parse().unwrap(),
        data: &answer,
    });
    assert!(h.out().is_empty());
    h.upstream(UpstreamEvent::Datagram {
        flow: FlowId::DNS,
        from: upstream,
        data: &answer,
    });
    let out = h.out();
    let Out::Udp(d) = &out[0] else { panic!() };
    assert_eq!((d.src, d.dst), (resolver, app));
    assert_eq!(&d.payload[..2], &[0x11, 0x11], "the app's id is restored");
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, Event::DnsAnswered { name, .. } if name == "www.example.com")));
    // A later connection to the address is attributed to the name.
    complete_handshake(&mut h, AppConn::new("10.0.0.2:41000", "198.51.100.10:22"));
    let events = h.events();
    let d = events
        .iter()
        .find_map(|e| match e {
            Event::Decision(d) if d.port == 22 => Some(d),
            _ => None,
        })
        .unwrap();
    assert_eq!(d.name.as_deref(), Some("www.example.com"));
    assert_eq!(d.name_source, NameSource::DnsAnswer);
    assert_eq!(d.names_sharing_address, 1);
    h.commands();
    // The connect-first SYN-ACK (the upstream waits for the app's ACK).
    assert!(h.segs().iter().all(|s| s.syn));
    // Repeats are served from the cache.
    h.send(&udp(
        app,
        resolver,
        &dns_query(0x2222, "www.example.com", 1),
    ));
    assert!(h.commands().is_empty());
    let out = h.out();
    let Out::Udp(d) = &out[0] else { panic!() };
    assert_eq!(&d.payload[..2], &[0x22, 0x22]);
    assert_eq!(h.engine.stats().dns_cached, 1);
}

#[test]
fn allowed_dns_over_ipv6_uses_the_v6_upstream() {
    let mut h = Harness::new();
    let app: SocketAddr = "[fd00::2]:5353".parse().unwrap();
    let resolver: SocketAddr = "[fd00::53]:53".parse().unwrap();
    h.send(&udp(app, resolver, &dns_query(7, "v6.example.net", 28)));
    let (upstream, sent) = upstream_query(&h.commands());
    assert_eq!(Some(upstream), h.engine.config().dns_upstream_v6);
    let answer = dns_answer(&sent, &["2001:db8::10".parse().unwrap()]);
    h.upstream(UpstreamEvent::Datagram {
        flow: FlowId::DNS,
        from: upstream,
        data: &answer,
    });
    let out = h.out();
    let Out::Udp(d) = &out[0] else { panic!() };
    assert_eq!(
        (d.src, d.dst, &d.payload[..2]),
        (resolver, app, &[0u8, 7][..])
    );
}

#[test]
fn dns_over_tcp_is_answered_by_the_engine() {
    let mut h = Harness::new();
    let mut app = dns_over_tcp(&mut h, "10.0.0.2:41001");
    h.send(&app.data(&framed(&[(0x3333, "tcp.blocked.example", 1)])));
    assert!(h.commands().is_empty());
    let segs = h.segs();
    let data: Vec<u8> = segs.iter().flat_map(|s| s.payload.clone()).collect();
    assert_eq!(
        usize::from(u16::from_be_bytes([data[0], data[1]])),
        data.len() - 2
    );
    let msg = hickory_proto::op::Message::from_vec(&data[2..]).unwrap();
    assert_eq!(msg.metadata.id, 0x3333);
    // Allowed over TCP: forwarded over the shared UDP upstream, answered into the stream.
    h.send(&app.ack_all(&segs));
    h.send(&app.data(&framed(&[(0x4444, "tcp.example.org", 1)])));
    let (upstream, sent) = upstream_query(&h.commands());
    h.upstream(UpstreamEvent::Datagram {
        flow: FlowId::DNS,
        from: upstream,
        data: &dns_answer(&sent, &["192.0.2.44".parse().unwrap()]),
    });
    let segs = h.segs();
    let data: Vec<u8> = segs.iter().flat_map(|s| s.payload.clone()).collect();
    assert_eq!(&data[2..4], &[0x44, 0x44]);
    h.send(&app.ack_all(&segs));
    h.send(&app.fin());
    let segs = h.segs();
    assert!(segs.iter().any(|s| s.fin));
    h.send(&app.ack_all(&segs));
    assert!(h.segs().is_empty());
    assert_eq!(h.engine.stats().sockets, 0);
    let _ = TcpControl::None;
}

#[test]
fn udp_is_relayed_with_nat_and_expires() {
    let mut h = Harness::new();
    let app: SocketAddr = "10.0.0.2:6000".parse().unwrap();
    let server: SocketAddr = "198.51.100.20:3478".parse().unwrap();
    h.send(&udp(app, server, b"ping"));
    let cmds = h.commands();
    let [Command::SendDatagram { flow, dst, data }] = cmds.as_slice() else {
        panic!("{cmds:?}")
    };
    assert_eq!((*dst, data.as_slice()), (server, &b"ping"[..]));
    let flow = *flow;
    h.upstream(UpstreamEvent::Datagram {
        flow,
        from: server,
        data: b"pong",
    });
    let out = h.out();
    let Out::Udp(d) = &out[0] else { panic!() };
    assert_eq!(
        (d.src, d.dst, d.payload.as_slice()),
        (server, app, &b"pong"[..])
    );
    h.send(&udp(app, server, b"again"));
    assert_eq!(h.commands().len(), 1);
    assert_eq!(h.engine.stats().udp_flows, 1);
    h.advance(h.engine.config().udp_idle_timeout + Duration::from_secs(1));
    assert_eq!(h.commands(), vec![Command::Close { flow }]);
    assert_eq!(h.engine.stats().udp_flows, 0);
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn blocked_udp_gets_icmp_prohibited() {
    let mut h = Harness::new();
    let app: SocketAddr = "10.0.0.2:6001".parse().unwrap();
    let server: SocketAddr = format!("{BLOCKED_ADDR}:9999").parse().unwrap();
    h.send(&udp(app, server, b"x"));
    h.send(&udp(app, server, b"y"));
    assert!(h.commands().is_empty());
    let out = h.out();
    assert_eq!(out.len(), 2);
    assert!(
        matches!(
            out[0],
            Out::Icmp {
                kind: 3,
                code: 13,
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(
        h.events().len(),
        1,
        "one decision per flow, not per datagram"
    );
}

/// UDP 443 that is not a readable QUIC Initial is refused at once (it used to be
/// relayed by address): the app gets the ICMP error of a block and falls back to TCP, where its
/// ClientHello is read.
#[test]
fn non_quic_udp_443_is_refused_at_once() {
    let mut h = Harness::new();
    let app: SocketAddr = "10.0.0.2:6002".parse().unwrap();
    let server: SocketAddr = "198.51.100.30:443".parse().unwrap();
    h.send(&udp(app, server, b"\xc0not really quic"));
    let cmds = h.commands();
    assert!(cmds.is_empty(), "{cmds:?}");
    let out = h.out();
    assert!(
        matches!(
            out.as_slice(),
            [Out::Icmp {
                kind: 3,
                code: 13,
                ..
            }]
        ),
        "{out:?}"
    );
    let events = h.events();
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Decision(d) if d.decision.is_block())));
}

#[test]
fn malformed_packets_are_counted_never_panic() {
    let mut h = Harness::new();
    let good = udp(
        "10.0.0.2:6003".parse().unwrap(),
        "198.51.100.20:1".parse().unwrap(),
        b"abc",
    );
    for cut in 0..good.len() {
        h.send(&good[..cut]);
    }
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    h.send(&bad);
    let s = h.engine.stats();
    let total: u64 = s.dropped.iter().sum();
    assert_eq!(total, good.len() as u64 + 1, "{s:?}");
    assert_eq!(
        s.dropped[embargo_engine::DropReason::BadChecksum as usize],
        1
    );
}

fn from_hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

#[test]
fn quic_initial_sni_decides_the_flow() {
    // RFC 9001 A.2: a client Initial whose ClientHello names example.com.
    let initial = from_hex(include_str!(
        "../src/inspect/testdata/rfc9001-a2-client-initial.hex"
    ));
    let app: SocketAddr = "10.0.0.2:6004".parse().unwrap();
    let server: SocketAddr = "198.51.100.31:443".parse().unwrap();
    let mut h = Harness::with_config(embargo_engine::EngineConfig::default());
    h.engine
        .set_policy(std::sync::Arc::new(|q: &embargo_policy::Query<'_>| {
            if q.name == Some("example.com") {
                block()
            } else {
                allow()
            }
        }));
    h.send(&udp(app, server, &initial));
    assert!(
        h.commands().is_empty(),
        "nothing leaves for a blocked QUIC SNI"
    );
    let events = h.events();
    let d = events
        .iter()
        .find_map(|e| match e {
            Event::Decision(d) => Some(d),
            _ => None,
        })
        .expect("a decision");
    assert_eq!(d.name.as_deref(), Some("example.com"));
    assert_eq!(d.name_source, NameSource::QuicSni);
    assert!(matches!(
        h.out().as_slice(),
        [Out::Icmp {
            kind: 3,
            code: 13,
            ..
        }]
    ));
    // Allowed: the held Initial is relayed once decided.
    let mut h = Harness::new();
    let app2: SocketAddr = "10.0.0.2:6005".parse().unwrap();
    h.send(&udp(app2, server, &initial));
    let cmds = h.commands();
    assert!(
        matches!(cmds.as_slice(), [Command::SendDatagram { data, .. }] if *data == initial),
        "{cmds:?}"
    );
}

/// A connect-first connection whose handshake completes (its decision is recorded on the app's
/// ACK, when the upstream is asked for).
fn complete_handshake(h: &mut Harness, mut app: AppConn) {
    h.send(&app.syn());
    let segs = h.segs();
    let synack = segs
        .iter()
        .find(|s| s.syn && s.dst == app.src)
        .expect("SYN-ACK");
    h.send(&app.on_synack(synack));
}

/// Forward `name`/`qtype` from `app` and answer it upstream with `answer_for(sent query)`;
/// returns what the app received.
fn resolve_via_upstream(
    h: &mut Harness,
    app: SocketAddr,
    id: u16,
    name: &str,
    answer_for: impl Fn(&[u8]) -> Vec<u8>,
) -> Vec<u8> {
    let resolver: SocketAddr = "8.8.8.8:53".parse().unwrap();
    h.send(&udp(app, resolver, &dns_query(id, name, 1)));
    let (upstream, sent) = upstream_query(&h.commands());
    h.upstream(UpstreamEvent::Datagram {
        flow: FlowId::DNS,
        from: upstream,
        data: &answer_for(&sent),
    });
    let out = h.out();
    let Out::Udp(d) = &out[0] else {
        panic!("{out:?}")
    };
    d.payload.clone()
}

#[test]
fn cached_answers_count_their_ttl_down() {
    let mut h = Harness::new();
    let app: SocketAddr = "10.0.0.2:5360".parse().unwrap();
    let addr: IpAddr = "198.51.100.60".parse().unwrap();
    resolve_via_upstream(&mut h, app, 1, "ttl.example.com", |q| {
        dns_answer(q, &[addr])
    });
    h.advance(Duration::from_secs(100));
    h.send(&udp(
        app,
        "8.8.8.8:53".parse().unwrap(),
        &dns_query(2, "ttl.example.com", 1),
    ));
    assert!(h.commands().is_empty(), "served from the cache");
    let out = h.out();
    let Out::Udp(d) = &out[0] else { panic!() };
    let msg = hickory_proto::op::Message::from_vec(&d.payload).unwrap();
    assert_eq!(msg.metadata.id, 2);
    assert_eq!(
        msg.answers[0].ttl, 200,
        "300 s upstream, 100 s spent in the cache"
    );
}

/// An upstream TTL of 2^32-1 used to reach the app unchanged (and be
/// cached for the cache's own 30 min cap only); now every answer TTL is clamped to one day, in
/// what is forwarded and in what the cache serves.
#[test]
fn huge_upstream_ttls_are_clamped_to_a_day() {
    let mut h = Harness::new();
    let app: SocketAddr = "10.0.0.2:5362".parse().unwrap();
    let addr: IpAddr = "198.51.100.61".parse().unwrap();
    let got = resolve_via_upstream(&mut h, app, 1, "forever.example.com", |q| {
        let mut a = dns_answer(q, &[addr]);
        let ttl = q.len() + 2 + 4;
        a[ttl..ttl + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        a
    });
    let msg = hickory_proto::op::Message::from_vec(&got).unwrap();
    assert_eq!(msg.answers[0].ttl, 86_400, "forwarded clamped");
    assert_eq!(h.engine.stats().dns_ttls_clamped, 1);
    h.advance(Duration::from_secs(100));
    h.send(&udp(
        app,
        "8.8.8.8:53".parse().unwrap(),
        &dns_query(2, "forever.example.com", 1),
    ));
    assert!(h.commands().is_empty(), "served from the cache");
    let out = h.out();
    let Out::Udp(d) = &out[0] else { panic!() };
    let msg = hickory_proto::op::Message::from_vec(&d.payload).unwrap();
    assert_eq!(msg.answers[0].ttl, 86_300, "cached clamped");
}

#[test]
fn an_address_shared_by_names_reports_how_many_share_it() {
    let mut h = Harness::new();
    let app: SocketAddr = "10.0.0.2:5361".parse().unwrap();
    let addr: IpAddr = "198.51.100.61".parse().unwrap();
    for (id, name) in [(1, "one.example.com"), (2, "two.example.com")] {
        resolve_via_upstream(&mut h, app, id, name, |q| dns_answer(q, &[addr]));
    }
    h.events();
    complete_handshake(&mut h, AppConn::new("10.0.0.2:41061", "198.51.100.61:22"));
    let events = h.events();
    let d = events
        .iter()
        .find_map(|e| match e {
            Event::Decision(d) if d.port == 22 => Some(d),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        d.name.as_deref(),
        Some("two.example.com"),
        "most recent first"
    );
    assert_eq!(d.names_sharing_address, 2);
}

#[test]
fn a_cname_chain_into_a_blocked_name_is_blocked() {
    let mut h = Harness::new();
    let app: SocketAddr = "10.0.0.2:5362".parse().unwrap();
    let got = resolve_via_upstream(&mut h, app, 0x5151, "metrics.shop.example", |q| {
        // CNAME metrics.shop.example -> t.blocked.example, then t.blocked.example A.
        let mut a = q.to_vec();
        a[2] = 0x81;
        a[3] = 0x80;
        a[6..8].copy_from_slice(&2u16.to_be_bytes());
        let target_at = a.len() + 12;
        a.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 1, 44]);
        let target = b"\x01t\x07blocked\x07example\x00";
        a.extend_from_slice(&(target.len() as u16).to_be_bytes());
        a.extend_from_slice(target);
        a.extend_from_slice(&[0xc0, target_at as u8, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4]);
        a.extend_from_slice(&[198, 51, 100, 62]);
        a
    });
    let msg = hickory_proto::op::Message::from_vec(&got).unwrap();
    assert_eq!(msg.metadata.id, 0x5151);
    assert_eq!(
        msg.answers[0].data.ip_addr(),
        Some(IpAddr::from([0, 0, 0, 0]))
    );
    assert_eq!(h.engine.stats().dns_blocked, 1);
    // The tracker's address was not learned for the name.
    complete_handshake(&mut h, AppConn::new("10.0.0.2:41062", "198.51.100.62:22"));
    let events = h.events();
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Decision(d) if d.port == 22 && d.name.is_none())));
}

#[test]
fn a_name_still_attributes_its_address_for_the_grace_after_its_ttl() {
    let mut h = Harness::new();
    let app: SocketAddr = "10.0.0.2:5363".parse().unwrap();
    let addr: IpAddr = "198.51.100.63".parse().unwrap();
    resolve_via_upstream(&mut h, app, 1, "late.example.com", |q| {
        dns_answer(q, &[addr])
    });
    let name_at = |h: &mut Harness, port: u16| {
        h.events();
        complete_handshake(
            h,
            AppConn::new(&format!("10.0.0.2:{port}"), "198.51.100.63:22"),
        );
        h.events().iter().find_map(|e| match e {
            Event::Decision(d) if d.port == 22 => Some(d.name.clone()),
            _ => None,
        })
    };
    // TTL 300 s: apps keep using the address after it, so 5 more minutes still attribute.
    h.advance(Duration::from_secs(500));
    assert_eq!(
        name_at(&mut h, 41063),
        Some(Some("late.example.com".into()))
    );
    h.advance(Duration::from_secs(101));
    assert_eq!(name_at(&mut h, 41064), Some(None));
}

/// Apps ask over TCP when an answer is too big for UDP, so a DNS-over-TCP answer is often larger
/// than a flow's send ring (1.75 KiB until it grows). It waits in the flow and leaves as
/// the app acknowledges, whole and in order, and the stream ends after it.
#[test]
fn a_dns_over_tcp_answer_larger_than_the_send_ring_arrives_whole() {
    let mut h = Harness::new();
    let mut app = dns_over_tcp(&mut h, "10.0.0.2:41002");
    h.send(&app.data(&framed(&[(0x5555, "big.example.org", 1)])));
    let (upstream, sent) = upstream_query(&h.commands());
    let addrs: Vec<std::net::IpAddr> = (0..200u8)
        .map(|i| std::net::IpAddr::from([192, 0, 2, i]))
        .collect();
    let answer = dns_answer(&sent, &addrs);
    assert!(answer.len() > 3000, "{} bytes", answer.len());
    h.upstream(UpstreamEvent::Datagram {
        flow: FlowId::DNS,
        from: upstream,
        data: &answer,
    });
    let mut got = Vec::new();
    for _ in 0..20 {
        let segs = h.segs();
        if segs.is_empty() {
            break;
        }
        got.extend(segs.iter().flat_map(|s| s.payload.clone()));
        h.send(&app.ack_all(&segs));
    }
    assert!(got.len() > 2, "nothing reached the app");
    assert_eq!(
        usize::from(u16::from_be_bytes([got[0], got[1]])),
        answer.len()
    );
    assert_eq!(&got[2..4], &[0x55, 0x55], "the app's question id");
    assert!(got[4..] == answer[2..], "the rest as the resolver sent it");
    h.send(&app.fin());
    let segs = h.segs();
    assert!(
        segs.iter().any(|s| s.fin),
        "the engine closes its side after the answer"
    );
    h.send(&app.ack_all(&segs));
    assert!(h.segs().is_empty());
    assert_eq!(h.engine.stats().sockets, 0);
}

/// A client may half-close its stream right after its questions (RFC 7766 allows it): the
/// engine answers them all before its own FIN, and closes once a question upstream never
/// answered is given up on.
#[test]
fn a_dns_over_tcp_stream_half_closed_after_asking_still_gets_its_answers() {
    let mut h = Harness::new();
    let mut app = dns_over_tcp(&mut h, "10.0.0.2:41003");
    h.send(&app.data(&framed(&[
        (0x6161, "one.example.org", 1),
        (0x6262, "two.example.org", 1),
    ])));
    h.send(&app.fin());
    let asked = forwarded(h.commands());
    assert_eq!(asked.len(), 2);
    let segs = h.segs();
    assert!(
        segs.iter().all(|s| !s.fin),
        "no FIN while questions are out: {segs:?}"
    );
    h.send(&app.ack_all(&segs));
    // The first is answered; the second never is.
    let (upstream, sent) = &asked[0];
    h.upstream(UpstreamEvent::Datagram {
        flow: FlowId::DNS,
        from: *upstream,
        data: &dns_answer(sent, &["192.0.2.61".parse().unwrap()]),
    });
    let segs = h.segs();
    let data: Vec<u8> = segs.iter().flat_map(|s| s.payload.clone()).collect();
    assert_eq!(&data[2..4], &[0x61, 0x61]);
    assert!(
        segs.iter().all(|s| !s.fin),
        "one question is still out: {segs:?}"
    );
    h.send(&app.ack_all(&segs));
    h.advance(Duration::from_secs(30));
    let segs = h.segs();
    assert!(
        segs.iter().any(|s| s.fin),
        "closed once the last question expired: {segs:?}"
    );
    h.send(&app.ack_all(&segs));
    assert!(h.segs().is_empty());
    assert_eq!(h.engine.stats().sockets, 0);
}

/// An app asks over TCP to get an answer too big for UDP, but the engine forwards questions
/// over UDP: a truncated answer makes it ask the resolver again over TCP
/// ([`Command::DnsOverTcp`], the same message), and the answer that comes back that way goes
/// to the app whole. A truncated duplicate meanwhile is ignored; a question given up on closes
/// its exchange.
#[test]
fn a_truncated_answer_to_a_question_asked_over_tcp_is_asked_again_over_tcp() {
    let mut h = Harness::new();
    let mut app = dns_over_tcp(&mut h, "10.0.0.2:41004");
    h.send(&app.data(&framed(&[
        (0x7171, "big.example.org", 16),
        (0x7272, "lost.example.org", 16),
    ])));
    let asked = forwarded(h.commands());
    assert_eq!(asked.len(), 2);
    for (upstream, sent) in &asked {
        let truncated = truncated_answer(sent);
        h.upstream(UpstreamEvent::Datagram {
            flow: FlowId::DNS,
            from: *upstream,
            data: &truncated,
        });
    }
    let exchanges: Vec<(FlowId, SocketAddr, Vec<u8>)> = h
        .commands()
        .into_iter()
        .filter_map(|c| match c {
            Command::DnsOverTcp { flow, dst, data } => Some((flow, dst, data)),
            _ => None,
        })
        .collect();
    assert_eq!(
        exchanges.len(),
        2,
        "one TCP exchange per truncated question"
    );
    assert_eq!((exchanges[0].1, &exchanges[0].2), (asked[0].0, &asked[0].1));
    let segs = h.segs();
    assert!(
        segs.iter().all(|s| s.payload.is_empty()),
        "nothing truncated reaches the app"
    );
    // a truncated duplicate while the exchange runs changes nothing
    let again = truncated_answer(&asked[0].1);
    h.upstream(UpstreamEvent::Datagram {
        flow: FlowId::DNS,
        from: asked[0].0,
        data: &again,
    });
    assert!(h.commands().is_empty());
    // the whole answer, over TCP
    let whole = dns_answer(&asked[0].1, &["192.0.2.71".parse().unwrap()]);
    h.upstream(UpstreamEvent::Datagram {
        flow: FlowId::DNS,
        from: asked[0].0,
        data: &whole,
    });
    let segs = h.segs();
    let data: Vec<u8> = segs.iter().flat_map(|s| s.payload.clone()).collect();
    assert_eq!(
        usize::from(u16::from_be_bytes([data[0], data[1]])),
        whole.len()
    );
    assert_eq!(&data[2..4], &[0x71, 0x71]);
    assert!(data[4..] == whole[2..]);
    h.send(&app.ack_all(&segs));
    // the other is never answered: given up at the deadline, its exchange closed
    h.advance(Duration::from_secs(30));
    let _ = h.segs();
    assert!(h.commands().contains(&Command::Close {
        flow: exchanges[1].0
    }));
}
