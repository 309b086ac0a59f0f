//! Replays the real capture `shared/data/pcap/metadata.pcap` (PCAPdroid's DPI test capture: DNS
//! over UDP and TCP, TLS over IPv4 and IPv6, HTTP) through the inspectors and the DNS module, and
//! checks that every DNS name, SNI and HTTP Host listed in its EXPECTED file (read by an
//! independent parser) is found, on the same frame.
//!
//! Packets are parsed with `smoltcp::wire` as the engine does; TCP payloads are reassembled per
//! flow in sequence order before inspection, so a ClientHello split over segments is exercised the
//! way the engine meets it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use embargo_engine::dns::{Cache, DnsAnswer, DnsQuery, NameTable, TcpFramer};
use embargo_engine::inspect::{http, quic, tls, Sniff};
use smoltcp::wire::{IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};

use embargo_test_support::shared_data;

/// The capture and its EXPECTED file, in ../shared/data.
const PCAP: &str = "pcap/metadata.pcap";
const EXPECTED: &str = "pcap/metadata.EXPECTED-dns-sni-http.txt";

/// Link type of Ethernet captures (LINKTYPE_ETHERNET).
const LINKTYPE_ETHERNET: u32 = 1;
const ETHERNET_HEADER_LEN: usize = 14;

/// A minimal pcap reader: 24-byte global header, then 16-byte record headers each followed by
/// the captured bytes. Both byte orders are accepted (the magic number tells which).
fn read_pcap(bytes: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    let little = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        other => panic!("{PCAP}: not a pcap file (magic {other:#x})"),
    };
    let u32_at = |at: usize| {
        let raw: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        if little {
            u32::from_le_bytes(raw)
        } else {
            u32::from_be_bytes(raw)
        }
    };
    assert_eq!(u32_at(20), LINKTYPE_ETHERNET, "{PCAP}: link type");
    let mut frames = Vec::new();
    let mut at = 24;
    let mut number = 0;
    while at + 16 <= bytes.len() {
        let captured = u32_at(at + 8) as usize;
        let data = bytes
            .get(at + 16..at + 16 + captured)
            .unwrap_or_else(|| panic!("{PCAP}: record {} truncated", number + 1));
        number += 1;
        frames.push((number, data.to_vec()));
        at += 16 + captured;
    }
    frames
}

/// One TCP direction being reassembled.
#[derive(Default)]
struct Stream {
    next_seq: Option<u32>,
    data: Vec<u8>,
    out_of_order: BTreeMap<u32, Vec<u8>>,
    tls_done: bool,
    http_done: bool,
    dns: TcpFramer,
    dns_fed: usize,
}

impl Stream {
    /// Adds a segment; returns whether in-order data grew.
    fn add(&mut self, seq: u32, syn: bool, payload: &[u8]) -> bool {
        if syn {
            self.next_seq = Some(seq.wrapping_add(1));
            return false;
        }
        let next = *self.next_seq.get_or_insert(seq);
        if payload.is_empty() {
            return false;
        }
        let offset = seq.wrapping_sub(next) as i32;
        if offset > 0 {
            self.out_of_order.insert(seq, payload.to_vec());
            return false;
        }
        let skip = (-offset) as usize;
        if skip >= payload.len() {
            return false; // retransmission of data already held
        }
        self.append(&payload[skip..]);
        while let Some((&seq, _)) = self.out_of_order.first_key_value() {
            let next = self.next_seq.unwrap();
            let offset = seq.wrapping_sub(next) as i32;
            if offset > 0 {
                break;
            }
            let segment = self.out_of_order.remove(&seq).unwrap();
            if let Some(tail) = segment.get((-offset) as usize..) {
                self.append(tail);
            }
        }
        true
    }

    fn append(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
        let next = self.next_seq.unwrap();
        self.next_seq = Some(next.wrapping_add(bytes.len() as u32));
    }
}

type FlowKey = (IpAddr, u16, IpAddr, u16);

struct Replay {
    observed: BTreeSet<(u32, String)>,
    streams: HashMap<FlowKey, Stream>,
    names: NameTable,
    cache: Cache,
    now: Instant,
    hellos_without_sni: usize,
}

impl Replay {
    fn dns_message(&mut self, frame: u32, msg: &[u8]) {
        if msg.len() > 2 && msg[2] & 0x80 == 0 {
            let query = DnsQuery::parse(msg).unwrap_or_else(|e| panic!("frame {frame}: {e}"));
            // Every query must also get a well-formed block answer with its id.
            let mut answer = Vec::new();
            query
                .block_answer(msg, Default::default(), &mut answer)
                .unwrap();
            assert_eq!(DnsAnswer::parse(&answer).unwrap().id, query.id);
            let line = format!("DNS query {} {}", query.name, u16::from(query.qtype));
            self.observed.insert((frame, line));
        } else {
            let answer = DnsAnswer::parse(msg).unwrap_or_else(|e| panic!("frame {frame}: {e}"));
            self.names.learn(&answer, self.now);
            self.cache.insert(msg, self.now);
            let line = format!("DNS resp {} {}", answer.name, u16::from(answer.qtype));
            self.observed.insert((frame, line));
        }
    }

    fn udp(&mut self, frame: u32, src_port: u16, dst_port: u16, payload: &[u8]) {
        if src_port == 53 || dst_port == 53 {
            self.dns_message(frame, payload);
        } else if dst_port == 443 {
            if let Sniff::Done(hello) = quic::initial_client_hello(payload) {
                let sni = hello.server_name.unwrap_or_default();
                self.observed
                    .insert((frame, format!("QUIC ClientHello SNI= {sni}")));
            }
        }
    }

    fn tcp(&mut self, frame: u32, key: FlowKey, tcp: &TcpPacket<&[u8]>) {
        let stream = self.streams.entry(key).or_default();
        if !stream.add(tcp.seq_number().0 as u32, tcp.syn(), tcp.payload()) {
            return;
        }
        let (_, src_port, _, dst_port) = key;
        if src_port == 53 || dst_port == 53 {
            let fresh = stream.data[stream.dns_fed..].to_vec();
            stream.dns_fed = stream.data.len();
            stream.dns.push(&fresh).unwrap();
            let mut messages = Vec::new();
            while let Some(msg) = stream.dns.next_message() {
                messages.push(msg);
            }
            for msg in messages {
                self.dns_message(frame, &msg);
            }
            return;
        }
        let data = &stream.data[..stream.data.len().min(tls::SNIFF_LIMIT)];
        if !stream.tls_done {
            match tls::client_hello(data) {
                Sniff::NeedMore => {}
                Sniff::NotThisProtocol => stream.tls_done = true,
                Sniff::Done(hello) => {
                    stream.tls_done = true;
                    match hello.server_name {
                        Some(sni) => {
                            self.observed
                                .insert((frame, format!("TLS ClientHello SNI= {sni}")));
                        }
                        None => self.hellos_without_sni += 1,
                    }
                }
            }
        }
        if !stream.http_done {
            match http::request(data) {
                Sniff::NeedMore => {}
                Sniff::NotThisProtocol => stream.http_done = true,
                Sniff::Done(request) => {
                    stream.http_done = true;
                    let line = format!(
                        "HTTP {} {} HTTP/1.{} Host: {}",
                        request.method,
                        request.target,
                        request.minor_version,
                        request.host.unwrap_or_default()
                    );
                    self.observed.insert((frame, line));
                }
            }
        }
    }
}

/// Parses the section of the EXPECTED file for metadata.pcap: `frame proto src sport -> dst dport
/// what...` lines, up to its `# packets=` line.
fn expected_lines(path: &std::path::Path) -> (Vec<(u32, String, IpAddr)>, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{EXPECTED}: {e}"));
    let mut lines = Vec::new();
    let mut in_section = false;
    for (number, line) in text.lines().enumerate() {
        if line.starts_with("# metadata.pcap") {
            in_section = true;
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some(count) = line.strip_prefix("# packets=") {
            let packets = count
                .parse()
                .unwrap_or_else(|_| panic!("{EXPECTED}:{}: bad packet count", number + 1));
            return (lines, packets);
        }
        let fields: Vec<&str> = line.splitn(8, ' ').collect();
        let [frame, _proto, _src, _sport, "->", dst, _dport, what] = fields[..] else {
            panic!("{EXPECTED}:{}: unexpected line {line:?}", number + 1);
        };
        lines.push((
            frame.parse().unwrap(),
            what.to_string(),
            dst.parse().unwrap(),
        ));
    }
    panic!("{EXPECTED}: no metadata.pcap section ending in '# packets='");
}

#[test]
fn every_expected_dns_name_sni_and_http_host_is_found() {
    let (Some(pcap), Some(expected)) = (shared_data(PCAP), shared_data(EXPECTED)) else {
        return;
    };
    let bytes = std::fs::read(pcap).unwrap_or_else(|e| panic!("{PCAP}: {e}"));
    let frames = read_pcap(&bytes);
    let (expected, packets) = expected_lines(&expected);
    assert_eq!(frames.len(), packets, "frame count");

    let start = Instant::now();
    let mut replay = Replay {
        observed: BTreeSet::new(),
        streams: HashMap::new(),
        names: NameTable::new(),
        cache: Cache::new(),
        now: start,
        hellos_without_sni: 0,
    };
    let mut parsed = 0;
    for (frame, data) in &frames {
        replay.now = start + Duration::from_millis(u64::from(*frame));
        let Some(ip) = data.get(ETHERNET_HEADER_LEN..) else {
            continue;
        };
        let (src, dst, protocol, payload) = match ip.first().map(|b| b >> 4) {
            Some(4) => {
                let Ok(packet) = Ipv4Packet::new_checked(ip) else {
                    continue;
                };
                let (src, dst, protocol) =
                    (packet.src_addr(), packet.dst_addr(), packet.next_header());
                (IpAddr::V4(src), IpAddr::V4(dst), protocol, packet.payload())
            }
            Some(6) => {
                let Ok(packet) = Ipv6Packet::new_checked(ip) else {
                    continue;
                };
                let (src, dst, protocol) =
                    (packet.src_addr(), packet.dst_addr(), packet.next_header());
                (IpAddr::V6(src), IpAddr::V6(dst), protocol, packet.payload())
            }
            _ => continue,
        };
        parsed += 1;
        match protocol {
            IpProtocol::Udp => {
                let Ok(udp) = UdpPacket::new_checked(payload) else {
                    continue;
                };
                replay.udp(*frame, udp.src_port(), udp.dst_port(), udp.payload());
            }
            IpProtocol::Tcp => {
                let Ok(tcp) = TcpPacket::new_checked(payload) else {
                    continue;
                };
                let key = (src, tcp.src_port(), dst, tcp.dst_port());
                replay.tcp(*frame, key, &tcp);
            }
            _ => {}
        }
    }
    assert!(parsed > 150, "only {parsed} IP packets parsed");

    let missing: Vec<_> = expected
        .iter()
        .filter(|(frame, what, _)| !replay.observed.contains(&(*frame, what.clone())))
        .collect();
    assert!(
        missing.is_empty(),
        "missing {missing:#?}\nobserved {:#?}",
        replay.observed
    );
    // The capture's "[]" TLS flow (port 44904) is a SYN and an RST with no ClientHello at all:
    // every hello in it carries an SNI.
    assert_eq!(replay.hellos_without_sni, 0);

    // Attribution: the IPv4 HTTP/TLS connections go to addresses the preceding DNS answers gave.
    for (_, what, dst) in &expected {
        let expected_name = match what
            .split_once("SNI= ")
            .or_else(|| what.split_once("Host: "))
        {
            Some((_, name)) if name.parse::<IpAddr>().is_err() => name,
            _ => continue,
        };
        let found = replay.names.lookup(*dst, replay.now);
        if dst.is_ipv4() {
            assert!(
                found.names.iter().any(|n| &*n.name == expected_name),
                "{dst} not attributed to {expected_name}: {found:?}"
            );
        }
    }
}
