//! The tunnel side of the loop: a TUN file descriptor read and written without blocking, or, on
//! platforms that hand out no descriptor, a pair of packet queues.
//!
//! One packet per `read`/`write`. Packets are raw IP (IFF_TUN | IFF_NO_PI on Linux, Android's
//! VpnService), or, in [`Framing::AddressFamily`], each preceded by the 4-byte address family
//! that Apple's utun puts in front of every packet; the header is read and written with
//! `readv`/`writev`, so the packet itself is never copied to add or strip it. In
//! [`Framing::VirtioNet`] (Linux offloads, see [`crate::virtio_net`]) the header is the
//! kernel's `virtio_net_hdr`, and packets may be TCP super-packets of up to 64 KiB.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use crate::virtio_net;

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

/// How packets are framed on a tunnel descriptor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Framing {
    /// Raw IP packets (Linux TUN with IFF_NO_PI, Android).
    #[default]
    Raw,
    /// Each packet preceded by its address family as a 32-bit big-endian integer (`AF_INET`,
    /// `AF_INET6` of the platform): Apple's utun (iOS, macOS).
    AddressFamily,
    /// Each packet preceded by a `virtio_net_hdr` (Linux `IFF_VNET_HDR` with
    /// `TUNSETOFFLOAD`): TCP super-packets in, large TCP segments out with a GSO header.
    /// `device_mtu` is the TUN device's MTU (what the apps' packets are cut to).
    VirtioNet { device_mtu: u16 },
}

/// Length of the [`Framing::AddressFamily`] header.
pub const AF_HEADER: usize = 4;

/// The utun header of `packet`, from its IP version (anything else is sent as IPv4: the
/// engine only writes IP packets).
fn af_header(packet: &[u8]) -> [u8; AF_HEADER] {
    let af = match packet.first().map(|b| b >> 4) {
        Some(6) => libc::AF_INET6,
        _ => libc::AF_INET,
    };
    (af as u32).to_be_bytes()
}

/// A TUN descriptor in non-blocking mode.
#[derive(Debug)]
pub struct TunFd {
    fd: OwnedFd,
    framing: Framing,
    /// Super-packets read and written ([`Framing::VirtioNet`] only).
    gso_in: Cell<u64>,
    gso_out: Cell<u64>,
}

impl TunFd {
    /// Takes ownership of `fd` (raw IP packets) and makes it non-blocking.
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        Self::framed(fd, Framing::Raw)
    }

    /// Takes ownership of `fd`, whose packets are framed as `framing` says, and makes it
    /// non-blocking.
    pub fn framed(fd: OwnedFd, framing: Framing) -> io::Result<Self> {
        set_nonblocking(fd.as_raw_fd())?;
        Ok(TunFd {
            fd,
            framing,
            gso_in: Cell::new(0),
            gso_out: Cell::new(0),
        })
    }

    /// Super-packets read from and written to the device so far (offloads only).
    pub fn super_packets(&self) -> (u64, u64) {
        (self.gso_in.get(), self.gso_out.get())
    }

    /// Reads one packet into `buf` (without its framing). `Ok(None)` when no packet is queued.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut header = [0u8; AF_HEADER];
        loop {
            let n = match self.framing {
                Framing::VirtioNet { .. } => {
                    let mut vnet = [0u8; virtio_net::HEADER_LEN];
                    let iov = [
                        libc::iovec {
                            iov_base: vnet.as_mut_ptr().cast(),
                            iov_len: vnet.len(),
                        },
                        libc::iovec {
                            iov_base: buf.as_mut_ptr().cast(),
                            iov_len: buf.len(),
                        },
                    ];
                    // SAFETY: both iovecs point at live, writable buffers of their length.
                    let n = unsafe { libc::readv(self.fd.as_raw_fd(), iov.as_ptr(), 2) };
                    if (1..=virtio_net::HEADER_LEN as isize).contains(&n) {
                        // No packet after the header: skip it.
                        continue;
                    }
                    if n > 0 {
                        let len = n as usize - virtio_net::HEADER_LEN;
                        let header = virtio_net::Header::decode(&vnet);
                        if header.is_gso() {
                            self.gso_in.set(self.gso_in.get() + 1);
                        }
                        virtio_net::on_read(&header, &mut buf[..len]);
                        return Ok(Some(len));
                    }
                    n
                }
                // SAFETY: `buf` is valid for `buf.len()` writable bytes.
                Framing::Raw => unsafe {
                    libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
                },
                Framing::AddressFamily => {
                    let iov = [
                        libc::iovec {
                            iov_base: header.as_mut_ptr().cast(),
                            iov_len: AF_HEADER,
                        },
                        libc::iovec {
                            iov_base: buf.as_mut_ptr().cast(),
                            iov_len: buf.len(),
                        },
                    ];
                    // SAFETY: both iovecs point at live, writable buffers of their length.
                    let n = unsafe { libc::readv(self.fd.as_raw_fd(), iov.as_ptr(), 2) };
                    if (0..AF_HEADER as isize).contains(&n) {
                        // Shorter than its own header: not a packet; skip it.
                        continue;
                    }
                    if n > 0 {
                        n - AF_HEADER as isize
                    } else {
                        n
                    }
                }
            };
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
        let header = af_header(packet);
        loop {
            let n = match self.framing {
                Framing::VirtioNet { device_mtu } => {
                    let vnet = virtio_net::for_write(packet, usize::from(device_mtu));
                    let bytes = vnet.encode();
                    let iov = [
                        libc::iovec {
                            iov_base: bytes.as_ptr() as *mut libc::c_void,
                            iov_len: bytes.len(),
                        },
                        libc::iovec {
                            iov_base: packet.as_ptr() as *mut libc::c_void,
                            iov_len: packet.len(),
                        },
                    ];
                    // SAFETY: both iovecs point at live buffers of their length; writev only
                    // reads them.
                    let n = unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), 2) };
                    if n >= 0 && vnet.is_gso() {
                        self.gso_out.set(self.gso_out.get() + 1);
                    }
                    n
                }
                // SAFETY: `packet` is valid for `packet.len()` readable bytes.
                Framing::Raw => unsafe {
                    libc::write(self.fd.as_raw_fd(), packet.as_ptr().cast(), packet.len())
                },
                Framing::AddressFamily => {
                    let iov = [
                        libc::iovec {
                            iov_base: header.as_ptr() as *mut libc::c_void,
                            iov_len: AF_HEADER,
                        },
                        libc::iovec {
                            iov_base: packet.as_ptr() as *mut libc::c_void,
                            iov_len: packet.len(),
                        },
                    ];
                    // SAFETY: both iovecs point at live buffers of their length; writev only
                    // reads them.
                    unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), 2) }
                }
            };
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

/// Receives the packets the engine writes towards the apps in packet-batch mode, a pass's
/// worth at a time (at most [`crate::DriverConfig::batch`] per call), so that a platform
/// where each call is costly (a foreign-function call, `NEPacketTunnelFlow.writePackets`)
/// pays it once per batch. Called on the driver's thread; it must not block.
pub type BatchSink = Box<dyn FnMut(Vec<Vec<u8>>) + Send>;

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

    /// Queues packets under one lock, until the queue is full. Returns how many were queued
    /// (the rest are dropped) and whether the queue was empty before.
    pub fn push_many<'a>(&self, packets: impl IntoIterator<Item = &'a [u8]>) -> (usize, bool) {
        let mut q = match self.inner.lock() {
            Ok(q) => q,
            Err(poisoned) => poisoned.into_inner(),
        };
        let was_empty = q.is_empty();
        let mut queued = 0;
        for packet in packets {
            if q.len() >= PACKET_QUEUE_CAP {
                break;
            }
            q.push_back(packet.to_vec());
            queued += 1;
        }
        (queued, was_empty)
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
    fn address_family_framing_adds_and_strips_the_utun_header() {
        let (a, b) = seqpacket_pair();
        let tun = TunFd::framed(a, Framing::AddressFamily).unwrap();
        let peer = TunFd::new(b).unwrap();
        let v4 = [0x45u8, 0, 0, 20];
        let v6 = [0x60u8, 0, 0, 0];
        assert!(tun.write(&v4).unwrap());
        assert!(tun.write(&v6).unwrap());
        let mut buf = vec![0; MAX_PACKET];
        // On the wire: the platform's address family, big-endian, then the packet.
        assert_eq!(peer.read(&mut buf).unwrap(), Some(8));
        assert_eq!(buf[..4], (libc::AF_INET as u32).to_be_bytes());
        assert_eq!(buf[4..8], v4);
        assert_eq!(peer.read(&mut buf).unwrap(), Some(8));
        assert_eq!(buf[..4], (libc::AF_INET6 as u32).to_be_bytes());
        assert_eq!(buf[4..8], v6);
        // Reading strips it; a message shorter than the header is skipped, not returned.
        let mut framed = (libc::AF_INET6 as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(b"packet");
        assert!(peer.write(&[0, 0]).unwrap());
        assert!(peer.write(&framed).unwrap());
        assert_eq!(tun.read(&mut buf).unwrap(), Some(6));
        assert_eq!(&buf[..6], b"packet");
        assert_eq!(tun.read(&mut buf).unwrap(), None);
    }

    #[test]
    fn push_many_queues_until_full_under_one_lock() {
        let q = PacketQueue::default();
        let packets = vec![vec![1u8; 3]; PACKET_QUEUE_CAP + 5];
        assert_eq!(
            q.push_many(packets.iter().map(Vec::as_slice)),
            (PACKET_QUEUE_CAP, true)
        );
        assert_eq!(q.push_many([&[1u8][..]]), (0, false));
        let mut out = Vec::new();
        q.take(usize::MAX, &mut out);
        assert_eq!(out.len(), PACKET_QUEUE_CAP);
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
