//! Linux TUN offloads: the `virtio_net_hdr` that precedes every packet on a descriptor opened
//! with `IFF_VNET_HDR` ([`crate::tunnel::Framing::VirtioNet`]).
//!
//! With `TUNSETOFFLOAD` (checksum, TSO4, TSO6) the kernel hands over TCP super-packets of up
//! to 64 KiB whose checksum is left partial (`NEEDS_CSUM`: the field holds the pseudo-header
//! sum only), and takes large TCP segments back with a header asking it to treat them as
//! `gso_size` segments. The apps keep their device MTU (1500) while the engine moves 64 KiB per
//! packet: one TUN read or write, one parse and one smoltcp segment where there were ~44.
//!
//! Three things make the engine's view of the wire hold, all done here so that the engine stays
//! unaware of offloads:
//! * a partial checksum is completed before the packet reaches the engine (which verifies every
//!   checksum in `packet::parse`);
//! * the MSS option of a SYN from an app is raised to what a [`OFFLOAD_MTU`] packet carries
//!   (its kernel caps what it sends by its own device MTU anyway, and segments with TSO), so
//!   smoltcp sends 64 KiB segments;
//! * a TCP segment larger than the device MTU is written with a GSO header (`gso_size` from
//!   the device MTU), the way the kernel's own TSO packets look.

/// Length of `struct virtio_net_hdr` (no `num_buffers`: TUN's default header size).
pub const HEADER_LEN: usize = 10;

/// The engine's MTU when the TUN carries super-packets: the largest IP packet.
pub const OFFLOAD_MTU: usize = 65535;

/// `flags`: the checksum at `csum_start + csum_offset` covers only the pseudo-header.
const F_NEEDS_CSUM: u8 = 1;
/// `gso_type` values (`include/uapi/linux/virtio_net.h`).
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
const GSO_ECN: u8 = 0x80;

const PROTO_TCP: u8 = 6;
/// TCP header: data offset byte, flags byte, checksum field, options start.
const TCP_DATA_OFFSET: usize = 12;
const TCP_FLAGS: usize = 13;
const TCP_CHECKSUM: usize = 16;
const TCP_OPTIONS: usize = 20;
const TCP_SYN: u8 = 0x02;
const TCP_CWR: u8 = 0x80;
/// TCP option kinds: end of list, no-op, maximum segment size.
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;

/// The header the kernel put in front of a packet (host byte order: no `TUNSETVNETLE/BE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl Header {
    /// Reads the header from its wire form.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Self {
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Header {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        }
    }

    /// Its wire form.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    /// Whether the packet is a super-packet (the kernel would have cut it into segments).
    pub fn is_gso(&self) -> bool {
        self.gso_type & !GSO_ECN != GSO_NONE
    }
}

/// Makes a packet read from the TUN what the engine expects: its partial checksum completed
/// and, in a SYN, its MSS raised to [`OFFLOAD_MTU`]'s. A header that points outside the packet
/// leaves it as it is (the engine's checksum check then drops it and counts it).
pub fn on_read(header: &Header, packet: &mut [u8]) {
    if header.flags & F_NEEDS_CSUM != 0 {
        let start = usize::from(header.csum_start);
        let field = start + usize::from(header.csum_offset);
        if field + 2 <= packet.len() {
            let mut sum = !fold(sum_bytes(&packet[start..]));
            // UDP says "no checksum" with 0 (RFC 768); a computed 0 is sent as all ones.
            if sum == 0 && header.csum_offset == 6 {
                sum = 0xffff;
            }
            packet[field..field + 2].copy_from_slice(&sum.to_ne_bytes());
        }
    }
    raise_syn_mss(packet);
}

/// The header for a packet the engine writes to a TUN whose device MTU is `device_mtu`: a TCP
/// segment larger than that is marked as a super-packet of `device_mtu` segments (its
/// checksum is complete: smoltcp computed it); anything else gets an empty header.
pub fn for_write(packet: &[u8], device_mtu: usize) -> Header {
    if packet.len() <= device_mtu {
        return Header::default();
    }
    let Some((l4, gso_type)) = tcp_offset(packet) else {
        return Header::default();
    };
    let Some(&offset_byte) = packet.get(l4 + TCP_DATA_OFFSET) else {
        return Header::default();
    };
    let hdr_len = l4 + usize::from(offset_byte >> 4) * 4;
    if hdr_len >= device_mtu || hdr_len >= packet.len() {
        return Header::default();
    }
    let ecn = match packet.get(l4 + TCP_FLAGS) {
        Some(flags) if flags & TCP_CWR != 0 => GSO_ECN,
        _ => 0,
    };
    Header {
        flags: 0,
        gso_type: gso_type | ecn,
        hdr_len: hdr_len as u16,
        gso_size: (device_mtu - hdr_len) as u16,
        csum_start: 0,
        csum_offset: 0,
    }
}

/// Where the TCP header of an unfragmented IPv4 or IPv6 (no extension header) packet starts,
/// and the GSO type of such a packet.
fn tcp_offset(packet: &[u8]) -> Option<(usize, u8)> {
    match packet.first()? >> 4 {
        4 => {
            let ihl = usize::from(packet[0] & 0x0f) * 4;
            let fragmented = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]) & 0x3fff != 0;
            (ihl >= 20 && *packet.get(9)? == PROTO_TCP && !fragmented).then_some((ihl, GSO_TCPV4))
        }
        6 => (*packet.get(6)? == PROTO_TCP).then_some((40, GSO_TCPV6)),
        _ => None,
    }
}

/// Raises the MSS option of a TCP SYN to what an [`OFFLOAD_MTU`] packet carries, fixing the
/// checksum incrementally (RFC 1624). Anything else is left alone.
fn raise_syn_mss(packet: &mut [u8]) {
    let Some((l4, gso_type)) = tcp_offset(packet) else {
        return;
    };
    if packet.len() < l4 + TCP_OPTIONS || packet[l4 + TCP_FLAGS] & TCP_SYN == 0 {
        return;
    }
    let end = (l4 + usize::from(packet[l4 + TCP_DATA_OFFSET] >> 4) * 4).min(packet.len());
    let ip_header = if gso_type == GSO_TCPV4 { l4 } else { 40 };
    let mss = (OFFLOAD_MTU - ip_header - TCP_OPTIONS) as u16;
    let mut i = l4 + TCP_OPTIONS;
    while i < end {
        match packet[i] {
            OPT_END => return,
            OPT_NOP => i += 1,
            kind => {
                let Some(&len) = packet.get(i + 1) else {
                    return;
                };
                let len = usize::from(len);
                if len < 2 || i + len > end {
                    return;
                }
                if kind == OPT_MSS && len == 4 {
                    let old = u16::from_be_bytes([packet[i + 2], packet[i + 3]]);
                    if old < mss {
                        packet[i + 2..i + 4].copy_from_slice(&mss.to_be_bytes());
                        let c = l4 + TCP_CHECKSUM;
                        let check = u16::from_be_bytes([packet[c], packet[c + 1]]);
                        // HC' = ~(~HC + ~m + m')
                        let sum = u64::from(!check) + u64::from(!old) + u64::from(mss);
                        packet[c..c + 2].copy_from_slice(&(!fold(sum)).to_be_bytes());
                    }
                    return;
                }
                i += len;
            }
        }
    }
}

/// The one's-complement sum of `data` in host order (RFC 1071: stored back in host order, it
/// is right whatever the byte order), unfolded.
fn sum_bytes(data: &[u8]) -> u64 {
    let mut sum = 0u64;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        sum += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        sum += u64::from(u16::from_ne_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        sum += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    sum
}

/// Folds a sum of 16-bit (or 32-bit) words to 16 bits, end-around carry included.
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 checksum in network order, the plain way, to check the fast one against.
    fn reference(data: &[u8]) -> u16 {
        let mut sum = 0u32;
        for c in data.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// The TCP pseudo-header sum of an IPv4 packet, in network order.
    fn pseudo_v4(p: &[u8]) -> u32 {
        let mut sum = 0u32;
        for c in p[12..20].chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        sum + u32::from(PROTO_TCP) + (p.len() - 20) as u32
    }

    /// An IPv4 TCP packet with `payload` bytes and the given options, checksum complete.
    fn tcp_v4(flags: u8, options: &[u8], payload: usize) -> Vec<u8> {
        let tcp_len = 20 + options.len();
        let total = 20 + tcp_len + payload;
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[6] = 0x40; // DF
        p[8] = 64;
        p[9] = PROTO_TCP;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        p[20 + TCP_DATA_OFFSET] = ((tcp_len / 4) as u8) << 4;
        p[20 + TCP_FLAGS] = flags;
        p[40..40 + options.len()].copy_from_slice(options);
        for (i, b) in p[20 + tcp_len..].iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        let mut sum = pseudo_v4(&p);
        for c in p[20..].chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        p[36..38].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        p
    }

    fn tcp_valid(p: &[u8]) -> bool {
        let mut sum = pseudo_v4(p);
        for c in p[20..].chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum == 0xffff
    }

    #[test]
    fn header_round_trips() {
        let h = Header {
            flags: 1,
            gso_type: GSO_TCPV6,
            hdr_len: 60,
            gso_size: 1440,
            csum_start: 40,
            csum_offset: 16,
        };
        assert_eq!(Header::decode(&h.encode()), h);
        assert!(h.is_gso());
        assert!(!Header::default().is_gso());
    }

    #[test]
    fn fast_sum_matches_rfc_1071_at_every_length() {
        let data: Vec<u8> = (0..1031u32).map(|i| (i * 31 + 7) as u8).collect();
        for len in 0..data.len() {
            let ours = (!fold(sum_bytes(&data[..len]))).to_ne_bytes();
            assert_eq!(u16::from_be_bytes(ours), reference(&data[..len]), "{len}");
        }
    }

    #[test]
    fn a_partial_checksum_of_a_super_packet_is_completed() {
        let full = tcp_v4(0x10, &[], 60_000);
        assert!(tcp_valid(&full));
        // What the kernel hands over with NEEDS_CSUM: the pseudo-header sum, not inverted.
        let mut partial = full.clone();
        let mut ph = pseudo_v4(&partial);
        while ph > 0xffff {
            ph = (ph & 0xffff) + (ph >> 16);
        }
        partial[36..38].copy_from_slice(&(ph as u16).to_be_bytes());
        assert!(!tcp_valid(&partial));
        let header = Header {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 40,
            gso_size: 1448,
            csum_start: 20,
            csum_offset: 16,
        };
        on_read(&header, &mut partial);
        assert_eq!(partial, full);
        // A header pointing past the packet changes nothing.
        let mut short = tcp_v4(0x10, &[], 10);
        let before = short.clone();
        let bad = Header {
            csum_start: 60,
            ..header
        };
        on_read(&bad, &mut short);
        assert_eq!(short, before);
    }

    #[test]
    fn a_syn_gets_the_offload_mss_with_a_valid_checksum() {
        // MSS 1460, NOP, NOP, SACK permitted.
        let options = [OPT_MSS, 4, 0x05, 0xb4, OPT_NOP, OPT_NOP, 4, 2];
        let mut syn = tcp_v4(TCP_SYN, &options, 0);
        on_read(&Header::default(), &mut syn);
        assert_eq!(
            u16::from_be_bytes([syn[42], syn[43]]),
            (OFFLOAD_MTU - 40) as u16
        );
        assert!(tcp_valid(&syn));
        // Not a SYN: untouched.
        let mut ack = tcp_v4(0x10, &options, 0);
        let before = ack.clone();
        on_read(&Header::default(), &mut ack);
        assert_eq!(ack, before);
    }

    #[test]
    fn large_tcp_segments_are_written_as_gso() {
        let big = tcp_v4(0x18, &[1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0], 30_000);
        let h = for_write(&big, 1500);
        assert_eq!(h.gso_type, GSO_TCPV4);
        assert_eq!(h.hdr_len, 52);
        assert_eq!(h.gso_size, 1448);
        assert_eq!(h.flags, 0);
        // At or under the device MTU, or not TCP: no GSO.
        assert_eq!(for_write(&tcp_v4(0x18, &[], 1460), 1500), Header::default());
        let mut udp = big.clone();
        udp[9] = 17;
        assert_eq!(for_write(&udp, 1500), Header::default());
    }
}
