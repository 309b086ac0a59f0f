//! Per-packet cost of the engine's hot paths (no IO):
//! - a relayed TCP data segment (1400 bytes from the app, read out by the "driver" closure),
//! - a SYN to a blocked address answered with an RST (no socket allocated),
//! - a DNS question for a blocked name answered locally,
//! - a DNS question for a name never asked before, forwarded, and its upstream answer relayed
//!   back (decision, pending table, answer parse, name table, cache insert, events): the
//!   engine's part of `tests/bench/dns-forwarded.sh`,
//! - the relayed segment again with 1 and 1000 established flows in the engine (999 of them
//!   idle): the per-segment cost must not grow with the number of flows (a stack that walks
//!   every socket per pass makes wrk -c1000 quadratic).
//!
//! Run: `cargo bench -p embargo-engine --bench engine`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use embargo_engine::{Command, FlowId, UpstreamEvent};
use smoltcp::wire::TcpControl;

use embargo_test_support::{dns_answer, dns_query, tcp, udp, AppConn, Harness, BLOCKED_ADDR};

fn relayed_segment(c: &mut Criterion) {
    let mut h = Harness::new();
    let mut app = AppConn::new("10.0.0.2:40000", "198.51.100.7:5000");
    connect_first(&mut h, &mut app);
    let payload = vec![0x5a; 1400];
    let mut buf = vec![0u8; 2048];
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Bytes(payload.len() as u64));
    group.bench_function("relayed_tcp_segment_1400B", |b| {
        b.iter_batched(
            || {
                let p = tcp(
                    app.src,
                    app.dst,
                    app.seq,
                    Some(app.ack),
                    TcpControl::Psh,
                    &payload,
                );
                app.seq = app.seq.wrapping_add(payload.len() as u32);
                p
            },
            |packet| {
                h.engine.handle_tun_packet(h.now, &packet);
                while let Some(cmd) = h.engine.poll_command() {
                    if let Command::AppDataReady { flow } = cmd {
                        while let Some(Ok::<usize, ()>(n)) =
                            h.engine.read_app_data(h.now, flow, |b| Ok(b.len()))
                        {
                            if n == 0 {
                                break;
                            }
                        }
                    }
                }
                while h.engine.poll_tun_packet(&mut buf).is_some() {}
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// An established connect-first flow from `src` (driver connected, handshake done).
fn established(h: &mut Harness, src: &str, dst: &str) -> (AppConn, FlowId) {
    let mut app = AppConn::new(src, dst);
    let flow = connect_first(h, &mut app);
    assert!(h.segs().is_empty());
    (app, flow)
}

/// Complete a connect-first flow's handshake: the engine's SYN-ACK at once, the app's ACK, then
/// the driver's connect (the engine asks for the upstream only after the app's ACK).
fn connect_first(h: &mut Harness, app: &mut AppConn) -> FlowId {
    h.send(&app.syn());
    let segs = h.segs();
    h.send(&app.on_synack(&segs[0]));
    let flow = match h.commands().as_slice() {
        [Command::Connect { flow, .. }] => *flow,
        other => panic!("{other:?}"),
    };
    h.upstream(UpstreamEvent::Connected { flow });
    flow
}

/// [`connect_first`], returning the engine's initial sequence number too.
fn connect_first_isn(h: &mut Harness, app: &mut AppConn) -> (FlowId, u32) {
    h.send(&app.syn());
    let segs = h.segs();
    let server_isn = segs[0].seq;
    h.send(&app.on_synack(&segs[0]));
    let flow = match h.commands().as_slice() {
        [Command::Connect { flow, .. }] => *flow,
        other => panic!("{other:?}"),
    };
    h.upstream(UpstreamEvent::Connected { flow });
    (flow, server_isn)
}

fn relayed_segment_among_flows(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine/relayed_tcp_segment_1400B_flows");
    let payload = vec![0x5a; 1400];
    group.throughput(Throughput::Bytes(payload.len() as u64));
    for flows in [1usize, 1000] {
        let mut h = Harness::new();
        for i in 1..flows {
            let src = format!("10.0.{}.{}:{}", 1 + i / 250, 1 + i % 250, 30000 + i);
            established(&mut h, &src, "198.51.100.9:5000");
        }
        let (mut app, _) = established(&mut h, "10.0.0.2:40000", "198.51.100.7:5000");
        assert_eq!(h.engine.stats().tcp_flows, flows);
        let mut buf = vec![0u8; 2048];
        group.bench_with_input(BenchmarkId::from_parameter(flows), &flows, |b, _| {
            b.iter_batched(
                || app.data(&payload),
                |packet| {
                    h.engine.handle_tun_packet(h.now, &packet);
                    while let Some(cmd) = h.engine.poll_command() {
                        if let Command::AppDataReady { flow } = cmd {
                            while let Some(Ok::<usize, ()>(n)) =
                                h.engine.read_app_data(h.now, flow, |b| Ok(b.len()))
                            {
                                if n == 0 {
                                    break;
                                }
                            }
                        }
                    }
                    while h.engine.poll_tun_packet(&mut buf).is_some() {}
                    // What a driver asks after every pass.
                    h.engine.poll_timeout()
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn download_segment(c: &mut Criterion) {
    let mut h = Harness::new();
    let mut app = AppConn::new("10.0.0.2:40002", "198.51.100.7:5001");
    let (flow, server_isn) = connect_first_isn(&mut h, &mut app);
    let chunk = vec![0xa5; 1400];
    let mut written: u64 = 0;
    let mut sent: u32 = 0;
    let mut iterations: u64 = 0;
    let mut buf = vec![0u8; 2048];
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Bytes(chunk.len() as u64));
    // Server bytes in (straight into smoltcp's ring), segments out to the app, and the app's
    // ACK of everything sent every 4 iterations (like a receiver with delayed ACKs).
    group.bench_function("download_tcp_segment_1400B", |b| {
        b.iter(|| {
            iterations += 1;
            let n = h.engine.write_upstream_data(h.now, flow, &chunk);
            written += n as u64;
            while let Some(len) = h.engine.poll_tun_packet(&mut buf) {
                // IPv4 (20) + TCP without options (20).
                sent = sent.wrapping_add(len.saturating_sub(40) as u32);
            }
            if iterations & 3 == 0 {
                let ack = tcp(
                    app.src,
                    app.dst,
                    app.seq,
                    Some(server_isn.wrapping_add(1).wrapping_add(sent)),
                    TcpControl::None,
                    &[],
                );
                h.engine.handle_tun_packet(h.now, &ack);
            }
            n
        })
    });
    group.finish();
    // The bench only means something if data kept flowing. (A filter that skips this bench
    // leaves it unrun: nothing to check then.)
    if iterations == 0 {
        return;
    }
    let efficiency = written as f64 / (iterations as f64 * chunk.len() as f64);
    println!(
        "download: {written} bytes over {iterations} iterations ({:.0}% of offered)",
        efficiency * 100.0
    );
    assert!(efficiency > 0.9, "window stalled: {efficiency}");
}

fn blocked_syn(c: &mut Criterion) {
    let mut h = Harness::new();
    let app = AppConn::new("10.0.0.2:40001", &format!("{BLOCKED_ADDR}:443"));
    let syn = app.syn();
    let mut buf = vec![0u8; 2048];
    c.bench_function("engine/syn_to_blocked_address_rst", |b| {
        b.iter(|| {
            h.engine.handle_tun_packet(h.now, &syn);
            let n = h.engine.poll_tun_packet(&mut buf);
            while h.engine.poll_event().is_some() {}
            n
        })
    });
    assert_eq!(h.engine.stats().sockets, 0);
}

fn blocked_dns(c: &mut Criterion) {
    let mut h = Harness::new();
    let q = udp(
        "10.0.0.2:5353".parse().unwrap(),
        "8.8.8.8:53".parse().unwrap(),
        &dns_query(0x1234, "ads.blocked.example", 1),
    );
    let mut buf = vec![0u8; 2048];
    c.bench_function("engine/dns_block_answer", |b| {
        b.iter(|| {
            h.engine.handle_tun_packet(h.now, &q);
            let n = h.engine.poll_tun_packet(&mut buf);
            while h.engine.poll_event().is_some() {}
            n
        })
    });
}

fn forwarded_dns(c: &mut Criterion) {
    let mut h = Harness::new();
    let upstream = embargo_engine::EngineConfig::default().dns_upstream_v4;
    let app: std::net::SocketAddr = "10.0.0.2:5353".parse().unwrap();
    let resolver: std::net::SocketAddr = "10.0.0.1:53".parse().unwrap();
    // Distinct names, more than the answer cache holds: every question is a miss.
    let names: Vec<(Vec<u8>, Vec<u8>)> = (0..4096)
        .map(|i| {
            let q = dns_query(0x1234, &format!("u{i}.allowed.test"), 1);
            let a = dns_answer(&q, &["10.200.2.9".parse().unwrap()]);
            (udp(app, resolver, &q), a)
        })
        .collect();
    let mut buf = vec![0u8; 2048];
    let mut answer = Vec::with_capacity(512);
    let mut i = 0;
    c.bench_function("engine/dns_forwarded", |b| {
        b.iter(|| {
            let (query, template) = &names[i % names.len()];
            i += 1;
            h.engine.handle_tun_packet(h.now, query);
            while let Some(cmd) = h.engine.poll_command() {
                if let Command::SendDatagram { data, .. } = cmd {
                    answer.clear();
                    answer.extend_from_slice(template);
                    answer[..2].copy_from_slice(&data[..2]);
                }
            }
            h.engine.handle_upstream(
                h.now,
                UpstreamEvent::Datagram {
                    flow: FlowId::DNS,
                    from: upstream,
                    data: &answer,
                },
            );
            let n = h.engine.poll_tun_packet(&mut buf);
            while h.engine.poll_event().is_some() {}
            n
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = forwarded_dns, relayed_segment, relayed_segment_among_flows, download_segment, blocked_syn, blocked_dns
}
criterion_main!(benches);
