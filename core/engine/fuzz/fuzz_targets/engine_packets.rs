//! The whole engine on arbitrary scripts: packets from the app (raw bytes, and well-formed
//! TCP/UDP segments with fuzzer-chosen fields and valid checksums so the state machines are
//! reached), upstream events, app answers, driver reads/writes and time steps. Invariants: no
//! panic, the engine's queues stay bounded, and it never holds more flows than configured.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use embargo_engine::{Command, Engine, EngineConfig, FlowId, UpstreamEvent};
use embargo_policy::{Certainty, Decision, Query, Reason, Verdict};
use libfuzzer_sys::fuzz_target;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes([
            self.byte()?,
            self.byte()?,
            self.byte()?,
            self.byte()?,
        ]))
    }
    fn bytes(&mut self, max: usize) -> Option<&[u8]> {
        let n = usize::from(self.byte()?).min(max).min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(b)
    }
}

fn policy(q: &Query<'_>) -> Decision {
    // Block on a property of the query that the fuzzer controls.
    let block = q.name.is_some_and(|n| n.len() % 3 == 0) || q.port % 5 == 0;
    Decision {
        verdict: if block {
            Verdict::Block
        } else {
            Verdict::Allow
        },
        reason: Reason::NoMatch,
        intent: None,
        owner: None,
        country: None,
        certainty: Certainty::Unknown,
        category: None,
    }
}

fn checksum(mut acc: u32, data: &[u8]) -> u16 {
    for c in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// An IP packet around `l4` (proto 6/17) with valid checksums.
fn ip_packet(src: IpAddr, dst: IpAddr, proto: u8, mut l4: Vec<u8>, csum_at: usize) -> Vec<u8> {
    let mut pseudo = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
        }
        _ => unreachable!(),
    }
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    let mut acc = 0u32;
    for c in pseudo.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    let sum = checksum(acc, &l4);
    l4[csum_at..csum_at + 2].copy_from_slice(&sum.to_be_bytes());
    let mut p = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p.extend_from_slice(&[0x45, 0]);
            p.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            let sum = checksum(0, &p);
            p[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p.extend_from_slice(&[0x60, 0, 0, 0]);
            p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            p.extend_from_slice(&[proto, 64]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
        }
        _ => unreachable!(),
    }
    p.extend_from_slice(&l4);
    p
}

fn endpoints(sel: u8) -> (SocketAddr, SocketAddr) {
    let v6 = sel & 0x80 != 0;
    let src_ip: IpAddr = if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0xfd00,
            0,
            0,
            0,
            0,
            0,
            0,
            2 + u16::from(sel & 1),
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2 + (sel & 1)))
    };
    let dst_ip: IpAddr = if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            0,
            u16::from((sel >> 1) & 3),
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, (sel >> 1) & 3))
    };
    let ports = [53, 80, 443, 853, 22, 5000, 8080, 5353];
    let sport = 40000 + u16::from((sel >> 3) & 1);
    let dport = ports[usize::from((sel >> 4) & 7)];
    (
        SocketAddr::new(src_ip, sport),
        SocketAddr::new(dst_ip, dport),
    )
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(mode) = input.byte() else { return };
    let config = EngineConfig {
        max_flows: 8,
        resolve_apps: mode & 1 != 0,
        block_encrypted_dns: mode & 2 != 0,
        tcp_grow_total: usize::from(mode >> 4) * 16 * 1024,
        ..EngineConfig::default()
    };
    let mut now = Instant::now();
    let mut engine = Engine::new(config, Arc::new(policy), now);
    let mut flows: Vec<FlowId> = vec![FlowId::DNS];
    let mut buf = vec![0u8; 70_000];
    while let Some(op) = input.byte() {
        match op % 9 {
            0 => {
                let Some(raw) = input.bytes(255) else { break };
                engine.handle_tun_packet(now, raw);
            }
            1 | 2 => {
                // A TCP segment.
                let (Some(sel), Some(seq), Some(ack), Some(flags)) =
                    (input.byte(), input.u32(), input.u32(), input.byte())
                else {
                    break;
                };
                let Some(payload) = input.bytes(200) else {
                    break;
                };
                let (src, dst) = endpoints(sel);
                let mut l4 = Vec::new();
                l4.extend_from_slice(&src.port().to_be_bytes());
                l4.extend_from_slice(&dst.port().to_be_bytes());
                l4.extend_from_slice(&seq.to_be_bytes());
                l4.extend_from_slice(&ack.to_be_bytes());
                l4.extend_from_slice(&[0x50, flags & 0x3f, 0xff, 0xff, 0, 0, 0, 0]);
                l4.extend_from_slice(payload);
                engine.handle_tun_packet(now, &ip_packet(src.ip(), dst.ip(), 6, l4, 16));
            }
            3 => {
                // A UDP datagram (DNS when the port is 53).
                let Some(sel) = input.byte() else { break };
                let Some(payload) = input.bytes(255) else {
                    break;
                };
                let (src, dst) = endpoints(sel);
                let mut l4 = Vec::new();
                l4.extend_from_slice(&src.port().to_be_bytes());
                l4.extend_from_slice(&dst.port().to_be_bytes());
                l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
                l4.extend_from_slice(&[0, 0]);
                l4.extend_from_slice(payload);
                engine.handle_tun_packet(now, &ip_packet(src.ip(), dst.ip(), 17, l4, 6));
            }
            4 => {
                let (Some(which), Some(kind)) = (input.byte(), input.byte()) else {
                    break;
                };
                let flow = flows[usize::from(which) % flows.len()];
                let Some(payload) = input.bytes(255) else {
                    break;
                };
                let from = if flow == FlowId::DNS {
                    engine.config().dns_upstream_v4
                } else {
                    endpoints(which).1
                };
                let event = match kind % 5 {
                    0 => UpstreamEvent::Connected { flow },
                    1 => UpstreamEvent::ConnectFailed { flow },
                    2 => UpstreamEvent::Closed { flow },
                    3 => UpstreamEvent::Reset { flow },
                    _ => UpstreamEvent::Datagram {
                        flow,
                        from,
                        data: payload,
                    },
                };
                engine.handle_upstream(now, event);
            }
            5 => {
                let Some(ms) = input.u16() else { break };
                now += Duration::from_millis(u64::from(ms) * 16);
                engine.handle_timeout(now);
            }
            6 => {
                let (Some(which), Some(take)) = (input.byte(), input.byte()) else {
                    break;
                };
                let flow = flows[usize::from(which) % flows.len()];
                let _ = engine.read_app_data(now, flow, |b: &[u8]| {
                    Ok::<_, ()>(b.len().min(usize::from(take)))
                });
                let n = engine.upstream_window(flow).min(usize::from(take));
                let _ = engine.write_upstream_data(now, flow, &vec![0x42; n]);
                let _ = engine.recv_upstream_with(now, flow, |b: &mut [u8]| {
                    if take % 2 == 0 {
                        Err(())
                    } else {
                        Ok(b.len().min(usize::from(take)))
                    }
                });
            }
            7 => {
                let (Some(which), Some(app)) = (input.byte(), input.byte()) else {
                    break;
                };
                let flow = flows[usize::from(which) % flows.len()];
                let app = (app % 3 != 0).then(|| format!("app{}", app % 4));
                engine.app_resolved(now, flow, app);
            }
            _ => {
                // A valid DNS query for a fuzzer-chosen name.
                let (Some(sel), Some(qtype)) = (input.byte(), input.u16()) else {
                    break;
                };
                let Some(name) = input.bytes(40) else { break };
                let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
                for label in name.split(|b| *b == b'.') {
                    let label: Vec<u8> = label.iter().map(|b| b'a' + b % 26).take(63).collect();
                    if label.is_empty() {
                        continue;
                    }
                    q.push(label.len() as u8);
                    q.extend_from_slice(&label);
                }
                q.push(0);
                q.extend_from_slice(&qtype.to_be_bytes());
                q.extend_from_slice(&[0, 1]);
                let (src, mut dst) = endpoints(sel);
                dst.set_port(53);
                let mut l4 = Vec::new();
                l4.extend_from_slice(&src.port().to_be_bytes());
                l4.extend_from_slice(&dst.port().to_be_bytes());
                l4.extend_from_slice(&((8 + q.len()) as u16).to_be_bytes());
                l4.extend_from_slice(&[0, 0]);
                l4.extend_from_slice(&q);
                engine.handle_tun_packet(now, &ip_packet(src.ip(), dst.ip(), 17, l4, 6));
            }
        }
        // Drain as a driver would, feeding answers for forwarded DNS back sometimes.
        let mut packets = 0;
        while engine.poll_tun_packet(&mut buf).is_some() {
            packets += 1;
        }
        assert!(packets <= 4 * embargo_engine::budget::MAX_QUEUED_PACKETS);
        while let Some(cmd) = engine.poll_command() {
            match cmd {
                Command::Connect { flow, .. }
                | Command::SendDatagram { flow, .. }
                | Command::ResolveApp { flow, .. } => {
                    if !flows.contains(&flow) {
                        flows.push(flow);
                        if flows.len() > 32 {
                            flows.remove(1);
                        }
                    }
                }
                _ => {}
            }
        }
        while engine.poll_event().is_some() {}
        let stats = engine.stats();
        assert!(stats.tcp_flows + stats.udp_flows <= 8, "{stats:?}");
        assert_eq!(stats.sockets, stats.tcp_flows, "{stats:?}");
        let _ = engine.poll_timeout();
    }
});
