//! The socket tables of `/proc/net/{tcp,tcp6,udp,udp6}`: rows parsed, and the socket of a flow
//! picked from them (the fallback when `sock_diag` is missing).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use embargo_policy::Protocol;

/// One row of `/proc/net/{tcp,udp}[6]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketEntry {
    /// Local address; v4-mapped IPv6 addresses are turned into IPv4.
    pub local: SocketAddr,
    /// Remote address (unspecified, port 0, for unconnected sockets).
    pub remote: SocketAddr,
    /// The socket's uid.
    pub uid: u32,
    /// The socket's inode (`socket:[INODE]` in `/proc/PID/fd`).
    pub inode: u64,
}

/// Parses one `/proc/net/{tcp,udp}[6]` table. Lines that do not parse are skipped: the format
/// is the kernel's, and a future column must not make every lookup fail.
pub fn parse_table(text: &str) -> Vec<SocketEntry> {
    text.lines().skip(1).filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<SocketEntry> {
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
    let mut fields = line.split_whitespace();
    let _sl = fields.next()?;
    let local = parse_hex_socket_addr(fields.next()?)?;
    let remote = parse_hex_socket_addr(fields.next()?)?;
    let mut rest = fields.skip(4); // st, tx:rx, tr:when, retrnsmt
    let uid = rest.next()?.parse().ok()?;
    let _timeout = rest.next()?;
    let inode = rest.next()?.parse().ok()?;
    Some(SocketEntry {
        local,
        remote,
        uid,
        inode,
    })
}

/// `0100007F:0050` or a 32-digit IPv6 form. The kernel prints each 32-bit word of the address
/// as the hex of that word in host byte order, so the bytes come back with `to_ne_bytes`.
fn parse_hex_socket_addr(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(addr, 16).ok()?.to_ne_bytes(),
        )),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                let word = addr.get(i * 8..i * 8 + 8)?;
                chunk.copy_from_slice(&u32::from_str_radix(word, 16).ok()?.to_ne_bytes());
            }
            canonical(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// A dual-stack socket talking IPv4 shows `::ffff:a.b.c.d`; the tunnel sees plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

pub(super) fn canonical_sa(sa: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical(sa.ip()), sa.port())
}

/// Picks the socket of a flow `src -> dst` (as the app sent it) from table rows.
///
/// TCP: the exact 4-tuple. UDP: a connected socket with the exact 4-tuple wins; otherwise an
/// unconnected socket bound to `src`'s port on `src`'s address or the wildcard (how `dig` and
/// most resolvers send).
pub fn find_socket(
    entries: &[SocketEntry],
    protocol: Protocol,
    src: SocketAddr,
    dst: SocketAddr,
) -> Option<SocketEntry> {
    let (src, dst) = (canonical_sa(src), canonical_sa(dst));
    if let Some(e) = entries.iter().find(|e| e.local == src && e.remote == dst) {
        return Some(*e);
    }
    if protocol != Protocol::Udp {
        return None;
    }
    entries
        .iter()
        .filter(|e| e.local.port() == src.port() && e.remote.port() == 0)
        .filter(|e| e.local.ip() == src.ip() || e.local.ip().is_unspecified())
        // a socket bound to the exact address is more specific than a wildcard one
        .max_by_key(|e| e.local.ip() == src.ip())
        .copied()
}

/// Which `/proc/net/*` tables can hold a flow of this protocol. Both families are read: an
/// IPv4 flow can belong to a dual-stack IPv6 socket.
fn tables(protocol: Protocol) -> &'static [&'static str] {
    match protocol {
        Protocol::Tcp => &["tcp", "tcp6"],
        Protocol::Udp => &["udp", "udp6"],
        // No socket table holds ICMP; a DNS question is not a flow.
        Protocol::Icmp | Protocol::Dns => &[],
    }
}

/// Reads the socket tables of the calling thread's network namespace.
pub(super) fn read_tables(net_dir: &Path, protocol: Protocol) -> Vec<SocketEntry> {
    let mut all = Vec::new();
    for table in tables(protocol) {
        if let Ok(text) = std::fs::read_to_string(net_dir.join(table)) {
            all.extend(parse_table(&text));
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP_SAMPLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 39 1 000000008e457253 100 0 0 10 0
   1: 020200C0:85D6 507100CB:01BB 01 00000000:00000000 03:00001130 00000000  1000        0 4242 3 000000002694fed6
";

    #[test]
    fn parses_ipv4_rows_in_host_byte_order() {
        let rows = parse_table(TCP_SAMPLE);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].local, "127.0.0.1:80".parse().unwrap());
        assert_eq!(rows[1].local, "192.0.2.2:34262".parse().unwrap());
        assert_eq!(rows[1].remote, "203.0.113.80:443".parse().unwrap());
        assert_eq!(rows[1].uid, 1000);
        assert_eq!(rows[1].inode, 4242);
    }

    #[test]
    fn parses_ipv6_and_maps_v4_mapped_to_ipv4() {
        let text = "header\n   0: 0000000000000000FFFF00000100007F:0050 00000000000000000000000001000000:1F90 01 0:0 0:0 0 7 0 99 1\n";
        let rows = parse_table(text);
        assert_eq!(rows[0].local, "127.0.0.1:80".parse().unwrap());
        assert_eq!(rows[0].remote, "[::1]:8080".parse().unwrap());
        assert_eq!(rows[0].uid, 7);
        assert_eq!(rows[0].inode, 99);
    }

    #[test]
    fn skips_garbage_lines() {
        assert!(parse_table("header\nnot a row\n 0: zz:zz\n").is_empty());
    }

    #[test]
    fn udp_prefers_connected_then_exact_bound_then_wildcard() {
        let row = |local: &str, remote: &str, inode| SocketEntry {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            uid: 0,
            inode,
        };
        let src: SocketAddr = "10.0.0.2:5353".parse().unwrap();
        let dst: SocketAddr = "10.0.0.1:53".parse().unwrap();
        let wild = row("0.0.0.0:5353", "0.0.0.0:0", 1);
        let bound = row("10.0.0.2:5353", "0.0.0.0:0", 2);
        let connected = row("10.0.0.2:5353", "10.0.0.1:53", 3);
        let pick =
            |rows: &[SocketEntry]| find_socket(rows, Protocol::Udp, src, dst).map(|e| e.inode);
        assert_eq!(pick(&[wild]), Some(1));
        assert_eq!(pick(&[wild, bound]), Some(2));
        assert_eq!(pick(&[wild, bound, connected]), Some(3));
        // TCP never falls back to a listening/unconnected socket
        assert_eq!(find_socket(&[wild], Protocol::Tcp, src, dst), None);
    }
}
