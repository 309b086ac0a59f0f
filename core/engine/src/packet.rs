//! Parsing packets from the tunnel (before anything is allocated for them) and building the few
//! packets the engine writes by hand: RSTs for flows it refuses, UDP replies, ICMP unreachables.
//!
//! Parse, don't validate: [`parse`] checks every length and checksum once and returns a
//! [`Parsed`] whose offsets can be trusted by the rest of the engine.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::api::DropReason;

/// IP protocol numbers the engine cares about.
pub(crate) const PROTO_TCP: u8 = 6;
pub(crate) const PROTO_UDP: u8 = 17;
pub(crate) const PROTO_ICMP: u8 = 1;
pub(crate) const PROTO_ICMPV6: u8 = 58;
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DEST_OPTS: u8 = 60;

/// TCP flags (byte [`field::tcp::FLAGS`] of the header).
pub(crate) const TCP_FIN: u8 = 0x01;
pub(crate) const TCP_SYN: u8 = 0x02;
pub(crate) const TCP_RST: u8 = 0x04;
pub(crate) const TCP_ACK: u8 = 0x10;

/// Header field offsets, from the start of each header, in the manner of smoltcp's `mod field`:
/// a `usize` for a one-byte field, a range for a wider one (big-endian).
mod field {
    pub(super) type Field = std::ops::Range<usize>;

    /// Field `f` of a header that starts at `base` in a buffer.
    pub(super) fn at(base: usize, f: Field) -> Field {
        base + f.start..base + f.end
    }

    /// IPv4 (RFC 791).
    pub(super) mod ipv4 {
        use super::Field;
        /// Version (high nibble) and header length in 32-bit words (low nibble).
        pub const VER_IHL: usize = 0;
        /// Total length, header included.
        pub const LENGTH: Field = 2..4;
        /// Flags (reserved, DF, MF) and fragment offset.
        pub const FLG_OFF: Field = 6..8;
        pub const PROTOCOL: usize = 9;
        pub const CHECKSUM: Field = 10..12;
        pub const SRC_ADDR: Field = 12..16;
        pub const DST_ADDR: Field = 16..20;
        /// The header without options.
        pub const HEADER_LEN: usize = DST_ADDR.end;
    }

    /// IPv6 (RFC 8200) fixed header.
    pub(super) mod ipv6 {
        use super::Field;
        /// Payload length: extension headers and transport, not this header.
        pub const LENGTH: Field = 4..6;
        pub const NXT_HDR: usize = 6;
        pub const SRC_ADDR: Field = 8..24;
        pub const DST_ADDR: Field = 24..40;
        pub const HEADER_LEN: usize = DST_ADDR.end;
    }

    /// IPv6 extension headers with the common layout (hop-by-hop, routing, destination
    /// options).
    pub(super) mod ipv6_ext {
        pub const NXT_HDR: usize = 0;
        /// Length in 8-byte units, not counting the first 8.
        pub const LENGTH: usize = 1;
        /// Routing header only: segments left.
        pub const SEG_LEFT: usize = 3;
        /// The smallest extension header (and its length unit).
        pub const MIN_LEN: usize = 8;
    }

    /// TCP (RFC 9293).
    pub(super) mod tcp {
        use super::Field;
        pub const SRC_PORT: Field = 0..2;
        pub const DST_PORT: Field = 2..4;
        pub const SEQ_NUM: Field = 4..8;
        pub const ACK_NUM: Field = 8..12;
        /// Data offset in 32-bit words (high nibble).
        pub const DATA_OFF: usize = 12;
        pub const FLAGS: usize = 13;
        pub const CHECKSUM: Field = 16..18;
        /// The header without options.
        pub const HEADER_LEN: usize = 20;
    }

    /// UDP (RFC 768).
    pub(super) mod udp {
        use super::Field;
        pub const SRC_PORT: Field = 0..2;
        pub const DST_PORT: Field = 2..4;
        /// Length, header included.
        pub const LENGTH: Field = 4..6;
        pub const CHECKSUM: Field = 6..8;
        pub const HEADER_LEN: usize = CHECKSUM.end;
    }

    /// ICMP and ICMPv6 (RFC 792, RFC 4443): type, code, checksum, 4 more bytes.
    pub(super) mod icmp {
        use super::Field;
        pub const CHECKSUM: Field = 2..4;
        pub const HEADER_LEN: usize = 8;
    }
}

use field::{icmp, ipv4, ipv6, ipv6_ext, tcp, udp};

/// A packet whose IP header, extension chain and transport header were checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parsed {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Transport protocol after the extension chain.
    pub proto: u8,
    /// Offset of the transport header in the packet.
    pub l4: usize,
    /// End of the IP payload (the packet may carry padding after it).
    pub end: usize,
    /// Offset of the transport payload (after the TCP/UDP header).
    pub payload: usize,
    /// Source and destination ports (TCP/UDP), 0 for ICMP.
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP only: flags, sequence and acknowledgement numbers.
    pub tcp_flags: u8,
    pub tcp_seq: u32,
    pub tcp_ack: u32,
}

impl Parsed {
    /// Source as a socket address.
    pub fn src_sock(&self) -> SocketAddr {
        SocketAddr::new(self.src, self.src_port)
    }

    /// Destination as a socket address.
    pub fn dst_sock(&self) -> SocketAddr {
        SocketAddr::new(self.dst, self.dst_port)
    }

    /// True when IPv6 extension headers sit between the IPv6 header and the transport header.
    pub fn has_ipv6_extensions(&self) -> bool {
        self.dst.is_ipv6() && self.l4 != ipv6::HEADER_LEN
    }
}

fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parse and check one packet from the tunnel. Errors say why it must be dropped.
pub(crate) fn parse(packet: &[u8]) -> Result<Parsed, DropReason> {
    let version = packet.first().ok_or(DropReason::Malformed)? >> 4;
    let (src, dst, mut proto, mut l4, end) = match version {
        4 => {
            if packet.len() < ipv4::HEADER_LEN {
                return Err(DropReason::Malformed);
            }
            let ihl = usize::from(packet[ipv4::VER_IHL] & 0x0f) * 4;
            let total = usize::from(read_u16(packet, ipv4::LENGTH.start));
            if ihl < ipv4::HEADER_LEN || total < ihl || total > packet.len() {
                return Err(DropReason::Malformed);
            }
            if checksum(0, &packet[..ihl]) != 0 {
                return Err(DropReason::BadChecksum);
            }
            let frag = read_u16(packet, ipv4::FLG_OFF.start);
            // More-fragments flag or a non-zero offset: a fragment.
            if frag & 0x3fff != 0 {
                return Err(DropReason::Fragment);
            }
            let mut a = [0u8; 4];
            a.copy_from_slice(&packet[ipv4::SRC_ADDR]);
            let src = Ipv4Addr::from(a);
            a.copy_from_slice(&packet[ipv4::DST_ADDR]);
            let dst = Ipv4Addr::from(a);
            if src.is_unspecified()
                || src.is_multicast()
                || src.is_broadcast()
                || dst.is_unspecified()
                || dst.is_multicast()
                || dst.is_broadcast()
            {
                return Err(DropReason::BadAddress);
            }
            (
                IpAddr::V4(src),
                IpAddr::V4(dst),
                packet[ipv4::PROTOCOL],
                ihl,
                total,
            )
        }
        6 => {
            if packet.len() < ipv6::HEADER_LEN {
                return Err(DropReason::Malformed);
            }
            let end = ipv6::HEADER_LEN + usize::from(read_u16(packet, ipv6::LENGTH.start));
            if end > packet.len() {
                return Err(DropReason::Malformed);
            }
            let mut s = [0u8; 16];
            s.copy_from_slice(&packet[ipv6::SRC_ADDR]);
            let src = Ipv6Addr::from(s);
            s.copy_from_slice(&packet[ipv6::DST_ADDR]);
            let dst = Ipv6Addr::from(s);
            if src.is_unspecified()
                || src.is_multicast()
                || dst.is_unspecified()
                || dst.is_multicast()
            {
                return Err(DropReason::BadAddress);
            }
            let next = packet[ipv6::NXT_HDR];
            (
                IpAddr::V6(src),
                IpAddr::V6(dst),
                next,
                ipv6::HEADER_LEN,
                end,
            )
        }
        _ => return Err(DropReason::Malformed),
    };
    if dst.is_ipv6() {
        // Walk the extension chain. Hop-by-hop, routing (with nothing left to route) and
        // destination options are skipped; fragments are not reassembled.
        loop {
            match proto {
                IPV6_HOP_BY_HOP | IPV6_DEST_OPTS | IPV6_ROUTING => {
                    if l4 + ipv6_ext::MIN_LEN > end {
                        return Err(DropReason::Malformed);
                    }
                    let units = usize::from(packet[l4 + ipv6_ext::LENGTH]) + 1;
                    let len = units * ipv6_ext::MIN_LEN;
                    if l4 + len > end {
                        return Err(DropReason::Malformed);
                    }
                    // A routing header with segments left: the destination is not final.
                    if proto == IPV6_ROUTING && packet[l4 + ipv6_ext::SEG_LEFT] != 0 {
                        return Err(DropReason::UnsupportedExtension);
                    }
                    proto = packet[l4 + ipv6_ext::NXT_HDR];
                    l4 += len;
                }
                IPV6_FRAGMENT => return Err(DropReason::Fragment),
                PROTO_TCP | PROTO_UDP | PROTO_ICMPV6 => break,
                // ESP, AH, no-next-header, mobility, unknown.
                50 | 51 | 59 | 135 | 139 | 140 | 253 | 254 => {
                    return Err(DropReason::UnsupportedExtension)
                }
                _ => return Err(DropReason::UnsupportedProtocol),
            }
        }
    }
    let mut parsed = Parsed {
        src,
        dst,
        proto,
        l4,
        end,
        payload: l4,
        src_port: 0,
        dst_port: 0,
        tcp_flags: 0,
        tcp_seq: 0,
        tcp_ack: 0,
    };
    let segment = &packet[l4..end];
    match proto {
        PROTO_TCP => {
            if segment.len() < tcp::HEADER_LEN {
                return Err(DropReason::Malformed);
            }
            let header = usize::from(segment[tcp::DATA_OFF] >> 4) * 4;
            if header < tcp::HEADER_LEN || header > segment.len() {
                return Err(DropReason::Malformed);
            }
            if transport_checksum(src, dst, PROTO_TCP, segment) != 0 {
                return Err(DropReason::BadChecksum);
            }
            parsed.src_port = read_u16(segment, tcp::SRC_PORT.start);
            parsed.dst_port = read_u16(segment, tcp::DST_PORT.start);
            parsed.tcp_seq = read_u32(segment, tcp::SEQ_NUM.start);
            parsed.tcp_ack = read_u32(segment, tcp::ACK_NUM.start);
            parsed.tcp_flags = segment[tcp::FLAGS];
            parsed.payload = l4 + header;
            if parsed.src_port == 0 || parsed.dst_port == 0 {
                return Err(DropReason::Malformed);
            }
        }
        PROTO_UDP => {
            if segment.len() < udp::HEADER_LEN {
                return Err(DropReason::Malformed);
            }
            let len = usize::from(read_u16(segment, udp::LENGTH.start));
            if len < udp::HEADER_LEN || len > segment.len() {
                return Err(DropReason::Malformed);
            }
            let sum = read_u16(segment, udp::CHECKSUM.start);
            // IPv4 allows "no checksum" (0); IPv6 does not.
            if (sum != 0 || dst.is_ipv6())
                && transport_checksum(src, dst, PROTO_UDP, &segment[..len]) != 0
            {
                return Err(DropReason::BadChecksum);
            }
            parsed.src_port = read_u16(segment, udp::SRC_PORT.start);
            parsed.dst_port = read_u16(segment, udp::DST_PORT.start);
            parsed.payload = l4 + udp::HEADER_LEN;
            parsed.end = l4 + len;
            if parsed.src_port == 0 || parsed.dst_port == 0 {
                return Err(DropReason::Malformed);
            }
        }
        PROTO_ICMP if src.is_ipv4() => {
            if segment.len() < icmp::HEADER_LEN {
                return Err(DropReason::Malformed);
            }
            if checksum(0, segment) != 0 {
                return Err(DropReason::BadChecksum);
            }
        }
        PROTO_ICMPV6 if src.is_ipv6() => {
            if segment.len() < icmp::HEADER_LEN {
                return Err(DropReason::Malformed);
            }
            if transport_checksum(src, dst, PROTO_ICMPV6, segment) != 0 {
                return Err(DropReason::BadChecksum);
            }
        }
        _ => return Err(DropReason::UnsupportedProtocol),
    }
    Ok(parsed)
}

/// One's-complement sum of `data` added to `initial`, folded and complemented: 0 when a buffer
/// with its checksum field filled in is valid.
pub(crate) fn checksum(initial: u32, data: &[u8]) -> u16 {
    !fold(sum(initial, data))
}

fn sum(mut acc: u32, data: &[u8]) -> u32 {
    // Sum 32-bit words into a 64-bit accumulator: a quarter of the additions of a 16-bit loop.
    let mut wide = u64::from(acc);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        wide += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        wide += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
        i += 2;
    }
    if i < rest.len() {
        wide += u64::from(rest[i]) << 8;
    }
    // Fold 64 -> 32 bits.
    while wide >> 32 != 0 {
        wide = (wide & 0xffff_ffff) + (wide >> 32);
    }
    acc = wide as u32;
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

fn pseudo_header(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u32 {
    let mut acc = 0u32;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc = sum(acc, &s.octets());
            acc = sum(acc, &d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            acc = sum(acc, &s.octets());
            acc = sum(acc, &d.octets());
        }
        // Mixed families never reach here (one IP header has one family).
        _ => {}
    }
    // Length fits u32 for any IP packet; add its halves so a jumbo length would still sum.
    let len = len as u32;
    fold_add(
        fold_add(acc, u32::from(proto)),
        (len >> 16) + (len & 0xffff),
    )
}

fn fold_add(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s.wrapping_add(u32::from(carry))
}

/// Checksum of a TCP/UDP/ICMPv6 segment with its pseudo header: 0 when valid, else the value to
/// store when the checksum field was zero.
pub(crate) fn transport_checksum(src: IpAddr, dst: IpAddr, proto: u8, segment: &[u8]) -> u16 {
    checksum(pseudo_header(src, dst, proto, segment.len()), segment)
}

/// Writes an IP header for `payload_len` bytes of `proto` into `out` (20 or 40 bytes) and
/// returns its length.
fn write_ip_header(out: &mut Vec<u8>, src: IpAddr, dst: IpAddr, proto: u8, payload_len: usize) {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (ipv4::HEADER_LEN + payload_len) as u16;
            let start = out.len();
            out.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0]);
            out[field::at(start, ipv4::LENGTH)].copy_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            let sum = checksum(0, &out[start..start + ipv4::HEADER_LEN]);
            out[field::at(start, ipv4::CHECKSUM)].copy_from_slice(&sum.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&(payload_len as u16).to_be_bytes());
            out.extend_from_slice(&[proto, 64]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        // Callers always pass one family (they swap the addresses of a parsed packet).
        _ => {}
    }
}

/// The RST answering a segment (RFC 9293 3.10.7.1): to a SYN (or any segment without ACK)
/// `seq 0, ACK seq+len(+1 for SYN/FIN)`; to a segment with ACK `seq = its ack`.
pub(crate) fn build_rst(out: &mut Vec<u8>, p: &Parsed) {
    out.clear();
    let seg_len = (p.end - p.payload) as u32
        + u32::from(p.tcp_flags & TCP_SYN != 0)
        + u32::from(p.tcp_flags & TCP_FIN != 0);
    let (seq, ack, flags) = if p.tcp_flags & TCP_ACK != 0 {
        (p.tcp_ack, 0, TCP_RST)
    } else {
        (0, p.tcp_seq.wrapping_add(seg_len), TCP_RST | TCP_ACK)
    };
    write_rst(out, p.dst_sock(), p.src_sock(), seq, ack, flags);
}

/// A bare RST (with `flags`) from `src` to `dst`.
pub(crate) fn write_rst(
    out: &mut Vec<u8>,
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
) {
    out.clear();
    write_ip_header(out, src.ip(), dst.ip(), PROTO_TCP, tcp::HEADER_LEN);
    let l4 = out.len();
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ack.to_be_bytes());
    out.extend_from_slice(&[0x50, flags, 0, 0, 0, 0, 0, 0]);
    let sum = transport_checksum(src.ip(), dst.ip(), PROTO_TCP, &out[l4..]);
    out[field::at(l4, tcp::CHECKSUM)].copy_from_slice(&sum.to_be_bytes());
}

/// A UDP datagram `payload` from `src` to `dst` (the tunnel side of a NAT reply).
pub(crate) fn build_udp(out: &mut Vec<u8>, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
    out.clear();
    let len = udp::HEADER_LEN + payload.len();
    write_ip_header(out, src.ip(), dst.ip(), PROTO_UDP, len);
    let l4 = out.len();
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    let mut sum = transport_checksum(src.ip(), dst.ip(), PROTO_UDP, &out[l4..]);
    if sum == 0 {
        // RFC 768: a computed zero is sent as all ones (zero means "none" in IPv4).
        sum = 0xffff;
    }
    out[field::at(l4, udp::CHECKSUM)].copy_from_slice(&sum.to_be_bytes());
}

/// ICMP "administratively prohibited" for the packet `original` (as much of it as RFC 792 /
/// RFC 4443 allow: IPv4 header + 8 bytes; IPv6 up to the minimum MTU). The app's kernel turns it
/// into an error on the socket (EHOSTUNREACH/ECONNREFUSED), so the app stops at once instead of
/// retrying into silence.
pub(crate) fn build_icmp_prohibited(out: &mut Vec<u8>, p: &Parsed, original: &[u8]) {
    out.clear();
    match (p.src, p.dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => {
            let quoted = &original[..(p.l4 + 8).min(original.len())];
            let len = icmp::HEADER_LEN + quoted.len();
            write_ip_header(out, p.dst, p.src, PROTO_ICMP, len);
            let l4 = out.len();
            // Type 3 destination unreachable, code 13 communication administratively prohibited.
            out.extend_from_slice(&[3, 13, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(quoted);
            let sum = checksum(0, &out[l4..]);
            out[field::at(l4, icmp::CHECKSUM)].copy_from_slice(&sum.to_be_bytes());
        }
        _ => {
            // 1280 (minimum MTU) - 40 (IPv6) - 8 (ICMPv6).
            let quoted = &original[..original.len().min(1232)];
            let len = icmp::HEADER_LEN + quoted.len();
            write_ip_header(out, p.dst, p.src, PROTO_ICMPV6, len);
            let l4 = out.len();
            // Type 1 destination unreachable, code 1 administratively prohibited.
            out.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(quoted);
            let sum = transport_checksum(p.dst, p.src, PROTO_ICMPV6, &out[l4..]);
            out[field::at(l4, icmp::CHECKSUM)].copy_from_slice(&sum.to_be_bytes());
        }
    }
}

/// Copy of an IPv6 packet with its extension headers removed (for smoltcp, which expects the
/// transport header after the fixed header). Checksums are unchanged: the pseudo header does
/// not cover extension headers.
pub(crate) fn strip_ipv6_extensions(out: &mut Vec<u8>, packet: &[u8], p: &Parsed) {
    out.clear();
    out.extend_from_slice(&packet[..ipv6::HEADER_LEN]);
    out[ipv6::NXT_HDR] = p.proto;
    let payload = (p.end - p.l4) as u16;
    out[ipv6::LENGTH].copy_from_slice(&payload.to_be_bytes());
    out.extend_from_slice(&packet[p.l4..p.end]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syn_v4() -> Vec<u8> {
        // Build a SYN with write_rst's builder, then flip flags to SYN and fix the checksum.
        let mut out = Vec::new();
        let src: SocketAddr = "10.0.0.2:40000".parse().unwrap();
        let dst: SocketAddr = "93.184.216.34:443".parse().unwrap();
        write_rst(&mut out, src, dst, 1000, 0, TCP_SYN);
        out
    }

    #[test]
    fn built_packets_have_valid_checksums() {
        let syn = syn_v4();
        let p = parse(&syn).unwrap();
        assert_eq!(p.tcp_flags, TCP_SYN);
        assert_eq!(p.tcp_seq, 1000);
        let mut rst = Vec::new();
        build_rst(&mut rst, &p);
        let r = parse(&rst).unwrap();
        assert_eq!(r.tcp_flags, TCP_RST | TCP_ACK);
        assert_eq!(r.tcp_ack, 1001);
        assert_eq!(r.src_sock(), p.dst_sock());
        let mut udp = Vec::new();
        build_udp(
            &mut udp,
            "[2001:db8::1]:53".parse().unwrap(),
            "[2001:db8::2]:5353".parse().unwrap(),
            b"hello",
        );
        let u = parse(&udp).unwrap();
        assert_eq!(&udp[u.payload..u.end], b"hello");
        let mut icmp = Vec::new();
        build_icmp_prohibited(&mut icmp, &u, &udp);
        let i = parse(&icmp).unwrap();
        assert_eq!(i.proto, PROTO_ICMPV6);
        build_icmp_prohibited(&mut icmp, &p, &syn);
        assert_eq!(parse(&icmp).unwrap().proto, PROTO_ICMP);
    }

    #[test]
    fn bad_checksums_truncation_and_fragments_are_refused() {
        let mut syn = syn_v4();
        let last = syn.len() - 1;
        syn[last] ^= 1;
        assert_eq!(parse(&syn).unwrap_err(), DropReason::BadChecksum);
        let syn = syn_v4();
        for cut in 0..syn.len() {
            assert!(parse(&syn[..cut]).is_err());
        }
        let mut frag = syn_v4();
        frag[6] = 0x20; // more fragments
        frag[10] = 0;
        frag[11] = 0;
        let sum = checksum(0, &frag[..20]);
        frag[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(parse(&frag).unwrap_err(), DropReason::Fragment);
    }

    #[test]
    fn ipv6_extension_chain_is_walked_and_stripped() {
        let mut udp = Vec::new();
        build_udp(
            &mut udp,
            "[2001:db8::1]:5000".parse().unwrap(),
            "[2001:db8::2]:53".parse().unwrap(),
            b"q",
        );
        // Insert an 8-byte destination-options header.
        let mut with_ext = udp[..40].to_vec();
        with_ext[6] = IPV6_DEST_OPTS;
        let plen = read_u16(&udp, 4) + 8;
        with_ext[4..6].copy_from_slice(&plen.to_be_bytes());
        with_ext.extend_from_slice(&[PROTO_UDP, 0, 1, 4, 0, 0, 0, 0]);
        with_ext.extend_from_slice(&udp[40..]);
        let p = parse(&with_ext).unwrap();
        assert!(p.has_ipv6_extensions());
        let mut stripped = Vec::new();
        strip_ipv6_extensions(&mut stripped, &with_ext, &p);
        assert_eq!(stripped, udp);
        with_ext[40] = IPV6_FRAGMENT;
        assert_eq!(parse(&with_ext).unwrap_err(), DropReason::Fragment);
    }
}
