//! The engine's test harness: a scripted app on the tunnel side, a fake clock, and packet
//! builders/parsers (smoltcp::wire, with checksums verified on everything the engine emits).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use embargo_engine::{Command, Engine, EngineConfig, Event, FlowId, UpstreamEvent};
use embargo_policy::{Certainty, Decision, Query, Reason, Verdict};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpControl, TcpPacket,
    TcpRepr, TcpSeqNumber, UdpPacket, UdpRepr,
};

pub const BLOCKED_NAME: &str = "blocked.example";
pub const BLOCKED_ADDR: &str = "203.0.113.66";

pub fn allow() -> Decision {
    Decision {
        verdict: Verdict::Allow,
        reason: Reason::NoMatch,
        intent: None,
        owner: None,
        country: None,
        certainty: Certainty::Unknown,
        category: None,
    }
}

pub fn block() -> Decision {
    Decision {
        verdict: Verdict::Block,
        reason: Reason::NoMatch,
        intent: None,
        owner: None,
        country: None,
        certainty: Certainty::Certain,
        category: None,
    }
}

/// Blocks `blocked.example` (and its subdomains) and 203.0.113.66.
pub fn test_policy(q: &Query<'_>) -> Decision {
    let name_blocked = q
        .name
        .is_some_and(|n| n == BLOCKED_NAME || n.ends_with(".blocked.example"));
    let addr_blocked = q.addr == Some(BLOCKED_ADDR.parse().unwrap());
    if name_blocked || addr_blocked {
        block()
    } else {
        allow()
    }
}

/// A segment the engine sent to the app.
#[derive(Debug, Clone)]
pub struct Seg {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub syn: bool,
    pub ack: Option<u32>,
    pub fin: bool,
    pub rst: bool,
    pub seq: u32,
    pub window: u16,
    pub payload: Vec<u8>,
}

/// A datagram the engine sent to the app.
#[derive(Debug, Clone)]
pub struct Dgram {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone)]
pub enum Out {
    Tcp(Seg),
    Udp(Dgram),
    Icmp {
        src: IpAddr,
        dst: IpAddr,
        kind: u8,
        code: u8,
    },
}

/// Parse (and checksum-verify) one packet from the engine.
pub fn parse_out(p: &[u8]) -> Out {
    let (src, dst, proto, payload): (IpAddr, IpAddr, IpProtocol, &[u8]) = match p[0] >> 4 {
        4 => {
            let ip = Ipv4Packet::new_checked(p).expect("ipv4");
            assert!(ip.verify_checksum(), "bad IPv4 header checksum");
            let hl = usize::from(ip.header_len());
            let tl = usize::from(ip.total_len());
            (
                IpAddr::V4(ip.src_addr()),
                IpAddr::V4(ip.dst_addr()),
                ip.next_header(),
                &p[hl..tl],
            )
        }
        6 => {
            let ip = Ipv6Packet::new_checked(p).expect("ipv6");
            let pl = usize::from(ip.payload_len());
            (
                IpAddr::V6(ip.src_addr()),
                IpAddr::V6(ip.dst_addr()),
                ip.next_header(),
                &p[40..40 + pl],
            )
        }
        v => panic!("ip version {v}"),
    };
    let (s, d) = (IpAddress::from(src), IpAddress::from(dst));
    match proto {
        IpProtocol::Tcp => {
            let t = TcpPacket::new_checked(payload).expect("tcp");
            assert!(t.verify_checksum(&s, &d), "bad TCP checksum");
            Out::Tcp(Seg {
                src: SocketAddr::new(src, t.src_port()),
                dst: SocketAddr::new(dst, t.dst_port()),
                syn: t.syn(),
                ack: t.ack().then(|| t.ack_number().0 as u32),
                fin: t.fin(),
                rst: t.rst(),
                seq: t.seq_number().0 as u32,
                window: t.window_len(),
                payload: t.payload().to_vec(),
            })
        }
        IpProtocol::Udp => {
            let u = UdpPacket::new_checked(payload).expect("udp");
            assert!(u.verify_checksum(&s, &d), "bad UDP checksum");
            Out::Udp(Dgram {
                src: SocketAddr::new(src, u.src_port()),
                dst: SocketAddr::new(dst, u.dst_port()),
                payload: u.payload().to_vec(),
            })
        }
        IpProtocol::Icmp => {
            assert!(smoltcp::wire::Icmpv4Packet::new_checked(payload)
                .unwrap()
                .verify_checksum());
            Out::Icmp {
                src,
                dst,
                kind: payload[0],
                code: payload[1],
            }
        }
        IpProtocol::Icmpv6 => {
            let (IpAddr::V6(a), IpAddr::V6(b)) = (src, dst) else {
                unreachable!()
            };
            assert!(smoltcp::wire::Icmpv6Packet::new_checked(payload)
                .unwrap()
                .verify_checksum(&a, &b));
            Out::Icmp {
                src,
                dst,
                kind: payload[0],
                code: payload[1],
            }
        }
        other => panic!("unexpected protocol {other}"),
    }
}

fn wrap_ip(src: IpAddr, dst: IpAddr, proto: IpProtocol, l4: &[u8]) -> Vec<u8> {
    let caps = ChecksumCapabilities::default();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let repr = Ipv4Repr {
                src_addr: s,
                dst_addr: d,
                next_header: proto,
                payload_len: l4.len(),
                hop_limit: 64,
            };
            let mut buf = vec![0u8; 20 + l4.len()];
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), &caps);
            buf[20..].copy_from_slice(l4);
            buf
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let repr = Ipv6Repr {
                src_addr: s,
                dst_addr: d,
                next_header: proto,
                payload_len: l4.len(),
                hop_limit: 64,
            };
            let mut buf = vec![0u8; 40 + l4.len()];
            repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
            buf[40..].copy_from_slice(l4);
            buf
        }
        _ => panic!("mixed families"),
    }
}

/// A TCP segment from the app.
pub fn tcp(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: Option<u32>,
    control: TcpControl,
    payload: &[u8],
) -> Vec<u8> {
    tcp_with_scale(src, dst, seq, ack, control, payload, None)
}

/// A TCP segment from the app, with a window scale option (a SYN's).
pub fn tcp_with_scale(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: Option<u32>,
    control: TcpControl,
    payload: &[u8],
    window_scale: Option<u8>,
) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
        control,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
        window_len: 65535,
        window_scale,
        max_seg_size: if control == TcpControl::Syn {
            Some(1460)
        } else {
            None
        },
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload,
    };
    let mut l4 = vec![0u8; repr.buffer_len()];
    let (s, d) = (IpAddress::from(src.ip()), IpAddress::from(dst.ip()));
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut l4[..]),
        &s,
        &d,
        &ChecksumCapabilities::default(),
    );
    wrap_ip(src.ip(), dst.ip(), IpProtocol::Tcp, &l4)
}

/// A UDP datagram from the app.
pub fn udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let repr = UdpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
    };
    let mut l4 = vec![0u8; 8 + payload.len()];
    let (s, d) = (IpAddress::from(src.ip()), IpAddress::from(dst.ip()));
    repr.emit(
        &mut UdpPacket::new_unchecked(&mut l4[..]),
        &s,
        &d,
        payload.len(),
        |b| b.copy_from_slice(payload),
        &ChecksumCapabilities::default(),
    );
    wrap_ip(src.ip(), dst.ip(), IpProtocol::Udp, &l4)
}

/// A minimal TLS 1.2-record ClientHello naming `sni`.
pub fn client_hello(sni: &str) -> Vec<u8> {
    let name = sni.as_bytes();
    let mut sni_ext = Vec::new();
    sni_ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni_ext.push(0);
    sni_ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni_ext.extend_from_slice(name);
    let mut exts = Vec::new();
    exts.extend_from_slice(&0u16.to_be_bytes());
    exts.extend_from_slice(&(sni_ext.len() as u16).to_be_bytes());
    exts.extend_from_slice(&sni_ext);
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0); // session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]);
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// A DNS query (id, name, type) with RD set.
pub fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

/// An answer to `query` with A/AAAA records (TTL 300).
pub fn dns_answer(query: &[u8], addrs: &[IpAddr]) -> Vec<u8> {
    let mut a = query.to_vec();
    a[2] = 0x81;
    a[3] = 0x80;
    a[6..8].copy_from_slice(&(addrs.len() as u16).to_be_bytes());
    for addr in addrs {
        a.extend_from_slice(&[0xc0, 12]);
        match addr {
            IpAddr::V4(v4) => {
                a.extend_from_slice(&[0, 1, 0, 1, 0, 0, 1, 44, 0, 4]);
                a.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                a.extend_from_slice(&[0, 28, 0, 1, 0, 0, 1, 44, 0, 16]);
                a.extend_from_slice(&v6.octets());
            }
        }
    }
    a
}

/// The engine plus a fake clock.
pub struct Harness {
    pub engine: Engine,
    pub now: Instant,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(EngineConfig::default())
    }

    pub fn with_config(config: EngineConfig) -> Self {
        let now = Instant::now();
        Harness {
            engine: Engine::new(config, Arc::new(test_policy), now),
            now,
        }
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.engine.handle_timeout(self.now);
    }

    pub fn send(&mut self, packet: &[u8]) {
        self.engine.handle_tun_packet(self.now, packet);
    }

    pub fn upstream(&mut self, event: UpstreamEvent<'_>) {
        self.engine.handle_upstream(self.now, event);
    }

    /// Everything the engine has for the tunnel.
    pub fn out(&mut self) -> Vec<Out> {
        let mut v = Vec::new();
        let mut buf = vec![0u8; 70_000];
        while let Some(n) = self.engine.poll_tun_packet(&mut buf) {
            v.push(parse_out(&buf[..n]));
        }
        v
    }

    pub fn segs(&mut self) -> Vec<Seg> {
        self.out()
            .into_iter()
            .map(|o| match o {
                Out::Tcp(s) => s,
                other => panic!("expected TCP, got {other:?}"),
            })
            .collect()
    }

    pub fn commands(&mut self) -> Vec<Command> {
        std::iter::from_fn(|| self.engine.poll_command()).collect()
    }

    pub fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.engine.poll_event()).collect()
    }

    /// All app bytes waiting on `flow`.
    pub fn read_app(&mut self, flow: FlowId) -> Vec<u8> {
        let mut got = Vec::new();
        while let Some(Ok::<usize, ()>(n)) = self.engine.read_app_data(self.now, flow, |b| {
            got.extend_from_slice(b);
            Ok(b.len())
        }) {
            if n == 0 {
                break;
            }
        }
        got
    }
}

/// A scripted app-side TCP endpoint.
pub struct AppConn {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
}

impl AppConn {
    pub fn new(src: &str, dst: &str) -> Self {
        AppConn {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            seq: 1_000_000,
            ack: 0,
        }
    }

    pub fn syn(&self) -> Vec<u8> {
        tcp(self.src, self.dst, self.seq, None, TcpControl::Syn, &[])
    }

    /// A SYN offering window scaling (RFC 7323) with `shift`.
    pub fn syn_with_window_scale(&self, shift: u8) -> Vec<u8> {
        tcp_with_scale(
            self.src,
            self.dst,
            self.seq,
            None,
            TcpControl::Syn,
            &[],
            Some(shift),
        )
    }

    /// Complete the handshake from the engine's SYN-ACK.
    pub fn on_synack(&mut self, s: &Seg) -> Vec<u8> {
        assert!(
            s.syn && s.ack == Some(self.seq.wrapping_add(1)),
            "not a SYN-ACK for us: {s:?}"
        );
        self.seq = self.seq.wrapping_add(1);
        self.ack = s.seq.wrapping_add(1);
        tcp(
            self.src,
            self.dst,
            self.seq,
            Some(self.ack),
            TcpControl::None,
            &[],
        )
    }

    pub fn data(&mut self, payload: &[u8]) -> Vec<u8> {
        let p = tcp(
            self.src,
            self.dst,
            self.seq,
            Some(self.ack),
            TcpControl::Psh,
            payload,
        );
        self.seq = self.seq.wrapping_add(payload.len() as u32);
        p
    }

    pub fn fin(&mut self) -> Vec<u8> {
        let p = tcp(
            self.src,
            self.dst,
            self.seq,
            Some(self.ack),
            TcpControl::Fin,
            &[],
        );
        self.seq = self.seq.wrapping_add(1);
        p
    }

    pub fn rst(&self) -> Vec<u8> {
        tcp(
            self.src,
            self.dst,
            self.seq,
            Some(self.ack),
            TcpControl::Rst,
            &[],
        )
    }

    /// ACK everything received in `segs` (data and FIN).
    pub fn ack_all(&mut self, segs: &[Seg]) -> Vec<u8> {
        for s in segs {
            let end = s
                .seq
                .wrapping_add(s.payload.len() as u32)
                .wrapping_add(u32::from(s.fin));
            if end.wrapping_sub(self.ack) as i32 > 0 {
                self.ack = end;
            }
        }
        tcp(
            self.src,
            self.dst,
            self.seq,
            Some(self.ack),
            TcpControl::None,
            &[],
        )
    }
}
