//! The real capture `../shared/data/pcap/metadata.pcap` replayed INTO THE ENGINE: the app's
//! packets go in as tunnel packets, the servers' DNS answers come back as upstream datagrams,
//! and the events must name every DNS name, SNI and HTTP Host listed in the EXPECTED file.
//!
//! Two adaptations make a recorded conversation replayable against a live stack, both done here
//! in the harness, not in the engine:
//! - The app's ACK numbers acknowledge the recorded server's ISN; they are shifted to the
//!   engine's ISN (learned from its SYN-ACK) and the TCP checksum recomputed.
//! - Checksums of the app's packets are recomputed (captures taken on the sending host often
//!   hold offloaded, unfinished checksums; the engine rightly drops bad ones).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use embargo_engine::{Command, Engine, EngineConfig, Event, FlowId, UpstreamEvent};
use embargo_policy::NameSource;
use embargo_test_support::{allow, parse_out, shared_data, Out};
use smoltcp::wire::{IpAddress, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};

/// (timestamp, IP packet) records of a little- or big-endian microsecond pcap, Ethernet
/// header stripped.
fn read_pcap(bytes: &[u8]) -> Vec<(Duration, Vec<u8>)> {
    let le = match &bytes[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] => false,
        m => panic!("not a microsecond pcap: {m:?}"),
    };
    let u32_at = |at: usize| {
        let b = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    assert_eq!(u32_at(20), 1, "linktype Ethernet");
    let mut at = 24;
    let mut out = Vec::new();
    while at + 16 <= bytes.len() {
        let ts = Duration::from_secs(u64::from(u32_at(at)))
            + Duration::from_micros(u64::from(u32_at(at + 4)));
        let caplen = u32_at(at + 8) as usize;
        let frame = &bytes[at + 16..at + 16 + caplen];
        at += 16 + caplen;
        out.push((ts, frame[14..].to_vec()));
    }
    out
}

struct Ip<'a> {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    l4: usize,
    end: usize,
    bytes: &'a [u8],
}

fn ip(p: &[u8]) -> Ip<'_> {
    match p[0] >> 4 {
        4 => {
            let v = Ipv4Packet::new_checked(p).unwrap();
            Ip {
                src: v.src_addr().into(),
                dst: v.dst_addr().into(),
                proto: v.next_header().into(),
                l4: usize::from(v.header_len()),
                end: usize::from(v.total_len()),
                bytes: p,
            }
        }
        _ => {
            let v = Ipv6Packet::new_checked(p).unwrap();
            Ip {
                src: v.src_addr().into(),
                dst: v.dst_addr().into(),
                proto: v.next_header().into(),
                l4: 40,
                end: 40 + usize::from(v.payload_len()),
                bytes: p,
            }
        }
    }
}

/// Recompute the IPv4 header and TCP/UDP checksums of an app packet in place.
fn fix_checksums(p: &mut [u8]) {
    let (src, dst, proto, l4, end) = {
        let i = ip(p);
        (i.src, i.dst, i.proto, i.l4, i.end)
    };
    if p[0] >> 4 == 4 {
        Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
    }
    let (s, d) = (IpAddress::from(src), IpAddress::from(dst));
    match proto {
        6 => TcpPacket::new_unchecked(&mut p[l4..end]).fill_checksum(&s, &d),
        17 => UdpPacket::new_unchecked(&mut p[l4..end]).fill_checksum(&s, &d),
        _ => {}
    }
}

/// The question section of a DNS message (for matching answers to forwarded queries).
fn question(msg: &[u8]) -> Vec<u8> {
    let mut at = 12;
    while at < msg.len() && msg[at] != 0 {
        at += 1 + usize::from(msg[at]);
    }
    msg[12..(at + 5).min(msg.len())].to_vec()
}

fn is_client(a: IpAddr) -> bool {
    a == "192.168.1.10".parse::<IpAddr>().unwrap()
        || a == "2001:db8:1234::1".parse::<IpAddr>().unwrap()
}

#[test]
fn metadata_pcap_replayed_into_the_engine_names_everything_expected() {
    let Some(pcap) = shared_data("pcap/metadata.pcap") else {
        return;
    };
    let Some(expected) = shared_data("pcap/metadata.EXPECTED-dns-sni-http.txt") else {
        return;
    };
    let pcap = std::fs::read(pcap).expect("../shared/data/pcap/metadata.pcap");
    let expected = std::fs::read_to_string(expected).expect("EXPECTED file");
    let records = read_pcap(&pcap);
    let t0 = Instant::now();
    let base = records[0].0;
    let mut engine = Engine::new(
        EngineConfig::default(),
        Arc::new(|_: &embargo_policy::Query<'_>| allow()),
        t0,
    );
    // Per app TCP port: (engine ISN, recorded server ISN). Keyed by the app's port only: the
    // capture's anonymised IPv6 addresses differ between the two directions.
    let mut isn: HashMap<u16, (Option<u32>, Option<u32>)> = HashMap::new();
    // App DNS queries fed: (app id, question) -> upstream id the engine chose.
    let mut fed: Vec<(u16, Vec<u8>)> = Vec::new();
    let mut forwarded: HashMap<(u16, Vec<u8>), u16> = HashMap::new();
    let mut events = Vec::new();
    let upstream = engine.config().dns_upstream_v4;
    let mut buf = vec![0u8; 65536];

    for (ts, mut packet) in records {
        let now = t0 + (ts - base);
        let i = ip(&packet);
        let (src, dst, proto, l4, end) = (i.src, i.dst, i.proto, i.l4, i.end);
        let _ = i.bytes;
        let (sport, dport) = (
            u16::from_be_bytes([packet[l4], packet[l4 + 1]]),
            u16::from_be_bytes([packet[l4 + 2], packet[l4 + 3]]),
        );
        let (s, d) = (SocketAddr::new(src, sport), SocketAddr::new(dst, dport));
        let header = if proto == 6 {
            usize::from(packet[l4 + 12] >> 4) * 4
        } else {
            8
        };
        let payload = packet[l4 + header..end].to_vec();
        if is_client(src) {
            if proto == 6 {
                let mut t = TcpPacket::new_unchecked(&mut packet[l4..end]);
                if t.ack() {
                    // Only the app's direction was captured for some flows: the first ACK
                    // then tells the server's ISN.
                    let entry = isn.entry(s.port()).or_default();
                    if entry.1.is_none() {
                        entry.1 = Some((t.ack_number().0 as u32).wrapping_sub(1));
                    }
                    if let Some((Some(engine_isn), Some(server_isn))) = isn.get(&s.port()) {
                        let shifted = (t.ack_number().0 as u32)
                            .wrapping_sub(*server_isn)
                            .wrapping_add(*engine_isn);
                        t.set_ack_number(smoltcp::wire::TcpSeqNumber(shifted as i32));
                    }
                }
                if dport == 53 && payload.len() > 2 {
                    fed.push((
                        u16::from_be_bytes([payload[2], payload[3]]),
                        question(&payload[2..]),
                    ));
                }
            } else if proto == 17 && dport == 53 {
                fed.push((
                    u16::from_be_bytes([payload[0], payload[1]]),
                    question(&payload),
                ));
            }
            fix_checksums(&mut packet);
            if std::env::var("PCAP_DEBUG").is_ok() {
                eprintln!("IN {s} -> {d} len {}", packet.len());
            }
            engine.handle_tun_packet(now, &packet);
        } else if proto == 6 && TcpPacket::new_unchecked(&packet[l4..end]).syn() {
            let seq = TcpPacket::new_unchecked(&packet[l4..end]).seq_number().0 as u32;
            isn.entry(d.port()).or_default().1 = Some(seq);
        } else if sport == 53 {
            // A resolver's answer (UDP, or TCP with its length prefix): back through the DNS flow.
            let msg = if proto == 6 {
                if payload.len() < 2 {
                    continue;
                }
                payload[2..].to_vec()
            } else {
                payload
            };
            let key = (u16::from_be_bytes([msg[0], msg[1]]), question(&msg));
            if let Some(id) = forwarded.get(&key) {
                let mut msg = msg.clone();
                msg[..2].copy_from_slice(&id.to_be_bytes());
                engine.handle_upstream(
                    now,
                    UpstreamEvent::Datagram {
                        flow: FlowId::DNS,
                        from: upstream,
                        data: &msg,
                    },
                );
            }
        }
        // Drain everything after each packet, as a driver would.
        while let Some(n) = engine.poll_tun_packet(&mut buf) {
            let o = parse_out(&buf[..n]);
            if std::env::var("PCAP_DEBUG").is_ok() {
                eprintln!("OUT {o:?}");
            }
            if let Out::Tcp(seg) = o {
                if seg.syn {
                    isn.entry(seg.dst.port()).or_default().0 = Some(seg.seq);
                }
            }
        }
        while let Some(c) = engine.poll_command() {
            match c {
                Command::SendDatagram {
                    flow: FlowId::DNS,
                    data,
                    ..
                } => {
                    let q = question(&data);
                    if let Some((app_id, _)) = fed.iter().rev().find(|(_, fq)| *fq == q) {
                        forwarded.insert((*app_id, q), u16::from_be_bytes([data[0], data[1]]));
                    }
                }
                Command::Connect { flow, .. } => {
                    engine.handle_upstream(now, UpstreamEvent::Connected { flow });
                }
                _ => {}
            }
        }
        events.extend(std::iter::from_fn(|| engine.poll_event()));
    }

    let mut missing = Vec::new();
    for line in expected
        .lines()
        .take_while(|l| !l.starts_with("# two_flows"))
    {
        if line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let found = if line.contains(" DNS query ") {
            let (name, qtype): (&str, u16) = (words[9], words[10].parse().unwrap());
            events.iter().any(|e| {
                matches!(e, Event::Decision(d) if d.name.as_deref() == Some(name)
                    && d.name_source == NameSource::DnsQuestion && d.dns_type == Some(qtype))
            })
        } else if line.contains(" DNS resp ") {
            let (name, qtype): (&str, u16) = (words[9], words[10].parse().unwrap());
            events.iter().any(|e| matches!(e, Event::DnsAnswered { name: n, dns_type, .. } if n == name && *dns_type == qtype))
        } else if line.contains("SNI=") {
            let name = *words.last().unwrap();
            events.iter().any(|e| {
                matches!(e, Event::Decision(d) if d.name.as_deref() == Some(name) && d.name_source == NameSource::TlsSni)
            })
        } else if line.contains("Host: ") {
            let name = *words.last().unwrap();
            events.iter().any(|e| {
                matches!(e, Event::Decision(d) if d.name.as_deref() == Some(name) && d.name_source == NameSource::HttpHost)
            })
        } else {
            panic!("unknown expectation: {line}");
        };
        if !found {
            missing.push(line.to_owned());
        }
    }
    if !missing.is_empty() {
        for e in &events {
            if let Event::Decision(d) = e {
                if d.addr.is_ipv6() {
                    eprintln!("{:?} {:?} {:?}", d.addr, d.name, d.name_source);
                }
            }
        }
        eprintln!("{:?}", engine.stats());
    }
    assert!(
        missing.is_empty(),
        "not in the engine's events:\n{}",
        missing.join("\n")
    );
    let stats = engine.stats();
    assert_eq!(
        stats.dropped[embargo_engine::DropReason::BadChecksum as usize],
        0
    );
}
