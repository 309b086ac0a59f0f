//! Outbound host sockets: made non-blocking, passed to the platform's `protect` hook before
//! they connect (so their packets bypass the tunnel), then handed to mio.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::{HookError, Hooks};

/// Why an outbound socket could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The OS refused the socket or the connect.
    Io(io::Error),
    /// The platform's protect hook refused: the socket would loop back into the tunnel.
    Protect(HookError),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Io(e) => write!(f, "socket: {e}"),
            OpenError::Protect(e) => write!(f, "protect hook: {e}"),
        }
    }
}

impl std::error::Error for OpenError {}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        OpenError::Io(e)
    }
}

fn domain_of(addr: &SocketAddr) -> Domain {
    match addr {
        SocketAddr::V4(_) => Domain::IPV4,
        SocketAddr::V6(_) => Domain::IPV6,
    }
}

/// A non-blocking socket in one call where the kernel takes `SOCK_NONBLOCK`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn new_nonblocking(domain: Domain, ty: Type, protocol: Protocol) -> io::Result<Socket> {
    Socket::new(domain, ty.nonblocking(), Some(protocol))
}

/// Apple systems have no `SOCK_NONBLOCK`: the flag is set right after, before any use.
/// (`Socket::new` also sets `SO_NOSIGPIPE` there, so a write to a reset flow cannot kill the
/// extension with SIGPIPE.)
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn new_nonblocking(domain: Domain, ty: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(domain, ty, Some(protocol))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A new non-blocking socket of `dst`'s family, already passed to [`Hooks::protect`] (so that
/// nothing it sends can loop back into the tunnel).
fn protected_socket(
    dst: &SocketAddr,
    ty: Type,
    protocol: Protocol,
    hooks: &dyn Hooks,
) -> Result<Socket, OpenError> {
    let socket = new_nonblocking(domain_of(dst), ty, protocol)?;
    hooks
        .protect(socket.as_raw_fd())
        .map_err(OpenError::Protect)?;
    Ok(socket)
}

/// Socket buffer size asked of the kernel for relayed TCP: large enough that one loop pass can
/// move a TCP window's worth, small enough to keep 1000 idle flows cheap (the kernel only
/// commits memory for bytes actually queued).
const TCP_SOCKET_BUFFER: usize = 256 * 1024;

/// Starts a non-blocking TCP connect to `dst`. The connect completes later: the socket becomes
/// writable (success) or reports an error through `take_error`.
pub fn connect_tcp(dst: SocketAddr, hooks: &dyn Hooks) -> Result<mio::net::TcpStream, OpenError> {
    let socket = protected_socket(&dst, Type::STREAM, Protocol::TCP, hooks)?;
    // Relayed bytes are already batched by the app's stack; Nagle would only add delay.
    socket.set_tcp_nodelay(true)?;
    let _ = socket.set_recv_buffer_size(TCP_SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(TCP_SOCKET_BUFFER);
    match socket.connect(&SockAddr::from(dst)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e.into()),
    }
    Ok(mio::net::TcpStream::from_std(socket.into()))
}

/// Opens a UDP socket connected to `dst` (one per flow: the kernel then filters replies to that
/// peer, and the socket's local port is the flow's NAT mapping).
pub fn connect_udp(dst: SocketAddr, hooks: &dyn Hooks) -> Result<mio::net::UdpSocket, OpenError> {
    let socket = protected_socket(&dst, Type::DGRAM, Protocol::UDP, hooks)?;
    socket.connect(&SockAddr::from(dst))?;
    Ok(mio::net::UdpSocket::from_std(socket.into()))
}

/// Opens an unconnected UDP socket of `dst`'s family, for the shared DNS flow: its datagrams
/// go to whichever resolver each `SendDatagram` names (IPv4 or IPv6 server).
pub fn bind_udp(dst: SocketAddr, hooks: &dyn Hooks) -> Result<mio::net::UdpSocket, OpenError> {
    let socket = protected_socket(&dst, Type::DGRAM, Protocol::UDP, hooks)?;
    let any: SocketAddr = match dst {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    socket.bind(&SockAddr::from(any))?;
    Ok(mio::net::UdpSocket::from_std(socket.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoHooks;
    use std::io::Read;
    use std::net::{TcpListener, UdpSocket};

    #[test]
    fn tcp_connect_completes_and_passes_protect() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = connect_tcp(listener.local_addr().unwrap(), &NoHooks).unwrap();
        let (mut accepted, _) = listener.accept().unwrap();
        // once accepted, the connect has completed: peer_addr is known
        let mut tries = 0;
        while stream.peer_addr().is_err() && tries < 100 {
            std::thread::sleep(std::time::Duration::from_millis(5));
            tries += 1;
        }
        assert_eq!(stream.peer_addr().unwrap(), listener.local_addr().unwrap());
        drop(stream);
        let mut buf = [0u8; 1];
        assert_eq!(accepted.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn refused_protect_fails_the_open() {
        struct Refuse;
        impl Hooks for Refuse {
            fn protect(&self, _fd: std::os::fd::RawFd) -> Result<(), HookError> {
                Err(HookError::new("refused"))
            }
        }
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = connect_udp(server.local_addr().unwrap(), &Refuse).unwrap_err();
        assert!(matches!(err, OpenError::Protect(_)));
    }

    #[test]
    fn udp_flow_socket_reaches_its_peer() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sock = connect_udp(server.local_addr().unwrap(), &NoHooks).unwrap();
        sock.send(b"ping").unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
        assert_eq!(from, sock.local_addr().unwrap());
    }
}
