//! The tunnel side of the loop: a TUN file descriptor read and written without blocking, or, on
//! platforms that hand out no descriptor, a pair of packet queues.
//!
//! Packets are raw IP (IFF_TUN | IFF_NO_PI on Linux): no packet-information header, one packet
//! per `read`/`write`.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

/// The largest packet a TUN read can return: IPv4 total length and IPv6 payload length are
/// 16-bit, so no IP packet is bigger (jumbograms do not cross a TUN).
pub const MAX_PACKET: usize = 65535;

/// Puts `fd` into non-blocking mode, so that reads end with `WouldBlock` when the queue is
/// empty instead of parking the loop.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we were handed; invalid descriptors give EBADF, not UB.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A TUN descriptor in non-blocking mode.
#[derive(Debug)]
pub struct TunFd {
    fd: OwnedFd,
}

impl TunFd {
    /// Takes ownership of `fd` and makes it non-blocking.
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        set_nonblocking(fd.as_raw_fd())?;
        Ok(TunFd { fd })
    }

    /// Reads one packet into `buf`. `Ok(None)` when no packet is queued.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: `buf` is valid for `buf.len()` writable bytes.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(Some(n as usize));
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(None),
                _ => return Err(err),
            }
        }
    }

    /// Writes one packet. `Ok(false)` when the device would block (the packet is not sent; a
    /// TUN device normally never blocks a writer, it drops instead).
    pub fn write(&self, packet: &[u8]) -> io::Result<bool> {
        loop {
            // SAFETY: `packet` is valid for `packet.len()` readable bytes.
            let n =
                unsafe { libc::write(self.fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
            if n >= 0 {
                return Ok(true);
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(false),
                _ => return Err(err),
            }
        }
    }
}

impl AsRawFd for TunFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Receives the packets the engine writes towards the apps in packet-interface mode. Called on
/// the driver's thread; it must not block (copy the packet and hand it on).
pub type PacketSink = Box<dyn FnMut(&[u8]) + Send>;

/// How many packets may wait in the inbound queue of packet-interface mode before
/// [`PacketQueue::push`] refuses more: about 2 MiB at MTU 1500, a burst the loop drains in one
/// pass, and a bound that keeps a stalled loop from eating the memory budget.
pub const PACKET_QUEUE_CAP: usize = 1024;

/// The inbound queue of packet-interface mode, shared between the platform (which pushes) and
/// the loop (which takes).
#[derive(Debug, Default, Clone)]
pub struct PacketQueue {
    inner: Arc<Mutex<VecDeque<Vec<u8>>>>,
}

impl PacketQueue {
    /// Queues one packet. Returns whether it was queued (`false`: the queue is full and the
    /// packet dropped) and whether the queue was empty before (the loop needs a wake-up).
    pub fn push(&self, packet: &[u8]) -> (bool, bool) {
        let mut q = match self.inner.lock() {
            Ok(q) => q,
            Err(poisoned) => poisoned.into_inner(),
        };
        if q.len() >= PACKET_QUEUE_CAP {
            return (false, false);
        }
        let was_empty = q.is_empty();
        q.push_back(packet.to_vec());
        (true, was_empty)
    }

    /// Takes up to `max` queued packets.
    pub fn take(&self, max: usize, out: &mut Vec<Vec<u8>>) {
        let mut q = match self.inner.lock() {
            Ok(q) => q,
            Err(poisoned) => poisoned.into_inner(),
        };
        let n = q.len().min(max);
        out.extend(q.drain(..n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;

    /// A SOCK_SEQPACKET pair behaves like a TUN descriptor: one message per read/write.
    pub(crate) fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors socketpair writes.
        let rc =
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0, fds.as_mut_ptr()) };
        assert_eq!(rc, 0);
        // SAFETY: socketpair returned two fresh descriptors we now own.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    #[test]
    fn reads_one_packet_per_call_and_reports_empty() {
        let (a, b) = seqpacket_pair();
        let tun = TunFd::new(a).unwrap();
        let peer = TunFd::new(b).unwrap();
        assert!(peer.write(b"first").unwrap());
        assert!(peer.write(b"second packet").unwrap());
        let mut buf = vec![0; MAX_PACKET];
        assert_eq!(tun.read(&mut buf).unwrap(), Some(5));
        assert_eq!(&buf[..5], b"first");
        assert_eq!(tun.read(&mut buf).unwrap(), Some(13));
        assert_eq!(tun.read(&mut buf).unwrap(), None);
    }

    #[test]
    fn packet_queue_is_bounded() {
        let q = PacketQueue::default();
        assert_eq!(q.push(&[1, 2, 3]), (true, true));
        for _ in 1..PACKET_QUEUE_CAP {
            assert_eq!(q.push(&[1, 2, 3]), (true, false));
        }
        assert_eq!(q.push(&[4]), (false, false));
        let mut out = Vec::new();
        q.take(10, &mut out);
        assert_eq!(out.len(), 10);
        assert!(q.push(&[4]).0);
    }
}
