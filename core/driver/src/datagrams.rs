//! Reading a UDP socket's queued datagrams in one system call (`recvmmsg`) where the platform
//! has it. Under a forwarded-DNS flood the shared DNS socket has several answers queued at each
//! wake-up: one `recvfrom` per answer plus the one that finds the queue empty was about 1.5
//! system calls per query; a batch read is one per wake-up, and a short batch already says the
//! queue is empty (no extra call to learn it).

use std::io;
use std::net::SocketAddr;

use crate::tunnel::MAX_PACKET;

/// Datagrams taken per read: also the most one socket delivers per loop pass, so that one busy
/// socket cannot starve the tunnel.
pub(crate) const SLOTS: usize = 16;

/// Receive buffers for one batch. Each slot holds the largest datagram (a smaller one would be
/// cut), but the buffer is one zeroed allocation that the allocator maps fresh: only the pages
/// datagrams are written to become resident (about one per slot for DNS answers).
pub(crate) struct DatagramBatch {
    bufs: Vec<u8>,
    /// Length and sender of each datagram read (no sender: a family we do not speak).
    got: Vec<(usize, Option<SocketAddr>)>,
}

impl DatagramBatch {
    pub(crate) fn new() -> Self {
        DatagramBatch {
            bufs: Vec::new(),
            got: Vec::with_capacity(SLOTS),
        }
    }

    /// Reads up to [`SLOTS`] datagrams; returns how many. Fewer than [`SLOTS`] means the queue
    /// was empty when read (edge-triggered readiness will report later arrivals). An error is
    /// only returned when no datagram was read (`WouldBlock` when the queue was empty).
    pub(crate) fn recv(&mut self, socket: &mio::net::UdpSocket) -> io::Result<usize> {
        if self.bufs.is_empty() {
            self.bufs = vec![0; SLOTS * MAX_PACKET];
        }
        self.got.clear();
        self.recv_into(socket)?;
        Ok(self.got.len())
    }

    /// Datagram `i` of the last [`DatagramBatch::recv`] and its sender; `None` past the end,
    /// and for a datagram whose sender is not IPv4 or IPv6 (which cannot be an answer).
    pub(crate) fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let &(len, from) = self.got.get(i)?;
        let from = from?;
        let start = i * MAX_PACKET;
        Some((self.bufs.get(start..start + len)?, from))
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn recv_into(&mut self, socket: &mio::net::UdpSocket) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: all-zero is a valid value of these plain C structs.
        let mut names: [libc::sockaddr_storage; SLOTS] = unsafe { std::mem::zeroed() };
        let mut iovs: [libc::iovec; SLOTS] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; SLOTS] = unsafe { std::mem::zeroed() };
        for (i, chunk) in self
            .bufs
            .chunks_exact_mut(MAX_PACKET)
            .enumerate()
            .take(SLOTS)
        {
            iovs[i].iov_base = chunk.as_mut_ptr().cast();
            iovs[i].iov_len = chunk.len();
            let hdr = &mut msgs[i].msg_hdr;
            hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &mut iovs[i];
            hdr.msg_iovlen = 1;
        }
        // SAFETY: every mmsghdr points at its own iovec (a MAX_PACKET slice of `bufs`, alive
        // and unaliased for the call) and its own sockaddr_storage with its size; the arrays
        // hold SLOTS entries, the count passed; the descriptor belongs to `socket`.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                SLOTS as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        for (msg, name) in msgs.iter().zip(&names).take(n as usize) {
            self.got.push((msg.msg_len as usize, sockaddr_to_std(name)));
        }
        Ok(())
    }

    /// Without `recvmmsg`: one `recv_from` per datagram until the queue is empty or the batch
    /// is full (the same contract).
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn recv_into(&mut self, socket: &mio::net::UdpSocket) -> io::Result<()> {
        for i in 0..SLOTS {
            let slot = &mut self.bufs[i * MAX_PACKET..(i + 1) * MAX_PACKET];
            match socket.recv_from(slot) {
                Ok((n, from)) => self.got.push((n, Some(from))),
                Err(e) if self.got.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        Ok(())
    }
}

/// Datagrams for one connected socket, sent together (`sendmmsg`) at the end of the engine's
/// commands of a pass. Under a forwarded-DNS flood a pass forwards several questions, each one
/// `send` of its own before: 1.0 send per query; one call per pass sends them all.
#[derive(Default)]
pub(crate) struct SendBatch {
    /// The socket the datagrams are for (`None`: the batch is empty).
    pub(crate) token: Option<mio::Token>,
    datagrams: Vec<Vec<u8>>,
}

impl SendBatch {
    /// Queues `data` for the socket of `token`; the caller sends a batch for another socket
    /// first ([`SendBatch::holds_other`]).
    pub(crate) fn push(&mut self, token: mio::Token, data: Vec<u8>) {
        self.token = Some(token);
        self.datagrams.push(data);
    }

    /// Whether datagrams for a socket other than `token` wait in the batch.
    pub(crate) fn holds_other(&self, token: mio::Token) -> bool {
        self.token.is_some_and(|t| t != token)
    }

    /// Drops every queued datagram (their socket is gone); returns how many.
    pub(crate) fn discard(&mut self) -> usize {
        self.token = None;
        let n = self.datagrams.len();
        self.datagrams.clear();
        n
    }

    /// Sends every queued datagram on `socket` (connected: no addresses), in order; returns
    /// the bytes sent and how many datagrams could not be (the socket would block or failed:
    /// dropped, as a lost datagram is, and counted by the caller). Empties the batch.
    pub(crate) fn send(&mut self, socket: &mio::net::UdpSocket) -> (u64, usize) {
        self.token = None;
        let mut bytes = 0;
        let mut sent = 0;
        while sent < self.datagrams.len() {
            match send_some(socket, &self.datagrams[sent..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    bytes += self.datagrams[sent..sent + n]
                        .iter()
                        .map(|d| d.len() as u64)
                        .sum::<u64>();
                    sent += n;
                }
            }
        }
        let failed = self.datagrams.len() - sent;
        self.datagrams.clear();
        (bytes, failed)
    }
}

/// Sends a prefix of `datagrams` in one system call; returns how many left.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_some(socket: &mio::net::UdpSocket, datagrams: &[Vec<u8>]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    const MAX: usize = 64;
    let count = datagrams.len().min(MAX);
    // SAFETY: all-zero is a valid value of these plain C structs.
    let mut iovs: [libc::iovec; MAX] = unsafe { std::mem::zeroed() };
    let mut msgs: [libc::mmsghdr; MAX] = unsafe { std::mem::zeroed() };
    for (i, d) in datagrams.iter().take(count).enumerate() {
        iovs[i].iov_base = d.as_ptr() as *mut libc::c_void;
        iovs[i].iov_len = d.len();
        msgs[i].msg_hdr.msg_iov = &mut iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    loop {
        // SAFETY: each mmsghdr points at its own iovec, which describes a datagram borrowed
        // for the call (the kernel only reads it); no names (a connected socket); `count` is
        // within both arrays; the descriptor belongs to `socket`.
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Without `sendmmsg`: one `send` per datagram (the same contract).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_some(socket: &mio::net::UdpSocket, datagrams: &[Vec<u8>]) -> io::Result<usize> {
    let mut n = 0;
    for d in datagrams {
        match socket.send(d) {
            Ok(_) => n += 1,
            Err(e) if n == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(n)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn sockaddr_to_std(name: &libc::sockaddr_storage) -> Option<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    match libc::c_int::from(name.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large and
            // aligned enough for.
            let sin =
                unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_batch_sends_every_datagram_in_order() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(server.local_addr().unwrap()).unwrap();
        client.set_nonblocking(true).unwrap();
        let sender = mio::net::UdpSocket::from_std(client);
        let mut batch = SendBatch::default();
        let token = mio::Token(2);
        // More than one sendmmsg call takes.
        for i in 0..70u8 {
            batch.push(token, vec![i; 1 + usize::from(i)]);
        }
        assert!(batch.holds_other(mio::Token(3)) && !batch.holds_other(token));
        let (bytes, failed) = batch.send(&sender);
        assert_eq!((bytes, failed), ((1..=70).sum::<u64>(), 0));
        assert!(!batch.holds_other(mio::Token(3)), "emptied");
        let mut buf = [0u8; 128];
        for i in 0..70u8 {
            let n = server.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &vec![i; 1 + usize::from(i)][..]);
        }
    }

    #[test]
    fn a_batch_takes_every_queued_datagram_with_its_sender() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let receiver = mio::net::UdpSocket::from_std({
            server.set_nonblocking(true).unwrap();
            server.try_clone().unwrap()
        });
        let mut batch = DatagramBatch::new();
        assert_eq!(
            batch.recv(&receiver).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let big = vec![7u8; 9000];
        for i in 0..SLOTS + 3 {
            let payload: &[u8] = if i == 1 { &big } else { &[i as u8; 3] };
            client
                .send_to(payload, server.local_addr().unwrap())
                .unwrap();
        }
        assert_eq!(batch.recv(&receiver).unwrap(), SLOTS);
        let (data, from) = batch.get(0).unwrap();
        assert_eq!((data, from), (&[0u8; 3][..], client.local_addr().unwrap()));
        assert_eq!(batch.get(1).unwrap().0, &big[..]);
        assert_eq!(batch.get(SLOTS - 1).unwrap().0, &[(SLOTS - 1) as u8; 3][..]);
        assert!(batch.get(SLOTS).is_none());
        // The rest, then an empty queue.
        assert_eq!(batch.recv(&receiver).unwrap(), 3);
        assert_eq!(batch.get(2).unwrap().0, &[(SLOTS + 2) as u8; 3][..]);
        assert_eq!(
            batch.recv(&receiver).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }
}
