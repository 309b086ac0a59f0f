//! Exact socket lookup over netlink `sock_diag` (what `ss` uses).
//!
//! Reading `/proc/net/tcp` walks the kernel's whole TCP hash table, which all namespaces
//! share and which is sized by the machine's memory: longer than the engine waits for an app
//! answer (docs/decisions.md). A `sock_diag` request naming the 4-tuple is one hash lookup.

use super::tables::{canonical_sa, SocketEntry};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const INET_DIAG_NOCOOKIE: u32 = !0;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct SockId {
    sport: [u8; 2],
    dport: [u8; 2],
    src: [u8; 16],
    dst: [u8; 16],
    interface: u32,
    cookie: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Request {
    // struct nlmsghdr
    len: u32,
    kind: u16,
    flags: u16,
    seq: u32,
    pid: u32,
    // struct inet_diag_req_v2
    family: u8,
    protocol: u8,
    ext: u8,
    pad: u8,
    states: u32,
    id: SockId,
}

/// Offsets in the answer: nlmsghdr (16) + inet_diag_msg's family..retrans (4) + id (48)
/// + expires, rqueue, wqueue (12), then uid and inode.
const UID_AT: usize = 16 + 4 + 48 + 12;
const INODE_AT: usize = UID_AT + 4;

fn sock_id(local: SocketAddr, remote: SocketAddr, v6: bool) -> SockId {
    let bytes = |ip: IpAddr| -> [u8; 16] {
        let mut out = [0u8; 16];
        match (ip, v6) {
            (IpAddr::V4(a), false) => out[..4].copy_from_slice(&a.octets()),
            (IpAddr::V4(a), true) => out = a.to_ipv6_mapped().octets(),
            (IpAddr::V6(a), _) => out = a.octets(),
        }
        out
    };
    SockId {
        sport: local.port().to_be_bytes(),
        dport: remote.port().to_be_bytes(),
        src: bytes(local.ip()),
        dst: bytes(remote.ip()),
        interface: 0,
        cookie: [INET_DIAG_NOCOOKIE; 2],
    }
}

/// The TCP or UDP socket of the flow `src -> dst` in the calling thread's namespace, if
/// the kernel knows it.
///
/// TCP answers the exact 4-tuple. UDP's lookup is the one for a *received* datagram
/// (`__udp4_lib_lookup(saddr, sport, daddr, dport)`), so it is asked with the reply's
/// direction, which also finds unconnected and wildcard-bound sockets, as a reply would.
pub fn lookup(protocol: libc::c_int, src: SocketAddr, dst: SocketAddr) -> Option<SocketEntry> {
    let (src, dst) = (canonical_sa(src), canonical_sa(dst));
    // An IPv4 flow may belong to a dual-stack IPv6 socket (v4-mapped addresses).
    let families: &[(u8, bool)] = if src.is_ipv4() {
        &[(libc::AF_INET as u8, false), (libc::AF_INET6 as u8, true)]
    } else {
        &[(libc::AF_INET6 as u8, true)]
    };
    let udp = protocol == libc::IPPROTO_UDP;
    families
        .iter()
        .find_map(|&(family, v6)| {
            let id = if udp {
                sock_id(dst, src, v6)
            } else {
                sock_id(src, dst, v6)
            };
            ask(family, protocol, id, src.port(), dst.port())
        })
        .map(|(uid, inode)| SocketEntry {
            local: src,
            remote: dst,
            uid,
            inode,
        })
}

/// One request; the answer must be a socket bound to `local_port` and connected to
/// `remote_port` (or, for UDP, unconnected).
fn ask(
    family: u8,
    protocol: libc::c_int,
    id: SockId,
    local_port: u16,
    remote_port: u16,
) -> Option<(u32, u64)> {
    let request = Request {
        len: std::mem::size_of::<Request>() as u32,
        kind: SOCK_DIAG_BY_FAMILY,
        flags: libc::NLM_F_REQUEST as u16,
        family,
        protocol: protocol as u8,
        states: !0,
        id,
        ..Request::default()
    };
    let mut answer = [0u8; 1024];
    let n = SOCKET.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = open_socket();
        }
        let fd = slot.as_ref()?;
        let n = exchange(fd, request, &mut answer);
        if n.is_none() {
            *slot = None; // start over with a fresh socket next time
        }
        n
    })?;
    let kind = u16::from_ne_bytes([*answer.get(4)?, *answer.get(5)?]);
    if kind == NLMSG_ERROR || kind != SOCK_DIAG_BY_FAMILY || n < INODE_AT + 4 {
        return None;
    }
    // TCP's lookup falls back to a listening socket on the local port: only an answer
    // for exactly the asked remote end is this flow's socket.
    const ID_AT: usize = 16 + 4;
    let port = |at: usize| u16::from_be_bytes([answer[at], answer[at + 1]]);
    let (got_local, got_remote) = (port(ID_AT), port(ID_AT + 2));
    let connected_ok = got_remote == remote_port;
    let unconnected_ok = protocol == libc::IPPROTO_UDP && got_remote == 0;
    if got_local != local_port || !(connected_ok || unconnected_ok) {
        return None;
    }
    let word = |at: usize| {
        u32::from_ne_bytes([answer[at], answer[at + 1], answer[at + 2], answer[at + 3]])
    };
    Some((word(UID_AT), u64::from(word(INODE_AT))))
}

thread_local! {
    /// One netlink socket per thread, kept: opening one per lookup (socket, setsockopt,
    /// close) cost as much as the question itself. Per thread because a socket answers
    /// for the network namespace it was opened in, and the namespace worker has its own.
    static SOCKET: std::cell::RefCell<Option<OwnedFd>> = const { std::cell::RefCell::new(None) };
    /// Sequence numbers pair a request with its answer on the kept socket (an answer
    /// that arrived after its timeout must not be read as the next one's).
    static SEQ: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

fn open_socket() -> Option<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let timeout = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: the pointer and length describe a live timeval.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    (rc == 0).then_some(fd)
}

/// Sends `request` (with the next sequence number) and receives its answer into
/// `answer`, skipping answers to earlier requests. `None` on any socket error.
fn exchange(fd: &OwnedFd, mut request: Request, answer: &mut [u8]) -> Option<usize> {
    let seq = SEQ.with(|s| {
        let next = s.get().wrapping_add(1);
        s.set(next);
        next
    });
    request.seq = seq;
    // SAFETY: the pointer and length describe `request`.
    let sent = unsafe {
        libc::send(
            fd.as_raw_fd(),
            (&request as *const Request).cast(),
            std::mem::size_of::<Request>(),
            0,
        )
    };
    if sent < 0 {
        return None;
    }
    loop {
        // SAFETY: the pointer and length describe `answer`.
        let n = unsafe { libc::recv(fd.as_raw_fd(), answer.as_mut_ptr().cast(), answer.len(), 0) };
        let n = usize::try_from(n).ok()?;
        let got = u32::from_ne_bytes([
            *answer.get(8)?,
            *answer.get(9)?,
            *answer.get(10)?,
            *answer.get(11)?,
        ]);
        if got == seq {
            return Some(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::sock_diag;
    use crate::procfs::tables::{find_socket, read_tables};
    use embargo_policy::Protocol;
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::path::Path;

    #[test]
    fn sock_diag_finds_the_same_socket_as_the_tables() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (src, dst) = (client.local_addr().unwrap(), client.peer_addr().unwrap());
        let diag = sock_diag::lookup(libc::IPPROTO_TCP, src, dst).expect("sock_diag answers");
        let tables = read_tables(Path::new("/proc/thread-self/net"), Protocol::Tcp);
        let table = find_socket(&tables, Protocol::Tcp, src, dst).unwrap();
        assert_eq!(diag, table);
        // and nothing for a flow that does not exist
        let nowhere = "127.0.0.1:1".parse().unwrap();
        assert_eq!(sock_diag::lookup(libc::IPPROTO_TCP, dst, nowhere), None);
    }

    #[test]
    fn sock_diag_finds_unconnected_and_connected_udp_sockets() {
        let unconnected = UdpSocket::bind("0.0.0.0:0").unwrap();
        let port = unconnected.local_addr().unwrap().port();
        let src = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
        let dst: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let found = sock_diag::lookup(libc::IPPROTO_UDP, src, dst).expect("unconnected found");
        assert_eq!(found.local, src);
        let connected = UdpSocket::bind("127.0.0.1:0").unwrap();
        connected.connect(dst).unwrap();
        let src = connected.local_addr().unwrap();
        let found = sock_diag::lookup(libc::IPPROTO_UDP, src, dst).expect("connected found");
        assert_ne!(found.inode, 0);
        let elsewhere = "127.0.0.1:10".parse().unwrap();
        assert_eq!(sock_diag::lookup(libc::IPPROTO_UDP, src, elsewhere), None);
    }
}
