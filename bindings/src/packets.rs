//! Packets in batches, for iOS: `NEPacketTunnelFlow.readPackets` hands the extension an array
//! and `writePackets` takes one, and every call across the FFI costs (a copy of each packet
//! and a lock), so one call carries many packets each way. The utun descriptor is the other
//! way in, without packets crossing the FFI at all ([`Embargo::start_utun`]).

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;

use embargo_driver::{Framing, Tunnel};

use crate::embargo::Embargo;
use crate::error::guard;
use crate::events::LiveEvent;
use crate::hooks::PlatformHooks;
use crate::{EmbargoError, HookError};

/// Receives packets for the apps in packet-batch mode, a batch per call (iOS:
/// `packetFlow.writePackets`).
#[uniffi::export(foreign)]
pub trait PacketBatchSink: Send + Sync {
    /// Writes IP packets towards the apps, in order.
    fn write_packets(&self, packets: Vec<Vec<u8>>) -> Result<(), HookError>;
}

#[uniffi::export]
impl Embargo {
    /// Starts in packet-batch mode: the app passes packets from the apps with
    /// [`Embargo::push_packets`], and Embargo writes packets for the apps to `sink`, a loop
    /// pass's worth (at most 64) per call.
    pub fn start_with_packet_batches(
        &self,
        sink: Arc<dyn PacketBatchSink>,
        hooks: Arc<dyn PlatformHooks>,
    ) -> Result<(), EmbargoError> {
        guard(|| {
            let bus = self.bus.clone();
            let write = move |packets: Vec<Vec<u8>>| {
                if let Err(e) = sink.write_packets(packets) {
                    log::warn!("packet sink failed: {e}");
                    bus.push(LiveEvent::Error {
                        message: format!("packet sink failed: {e}"),
                    });
                }
            };
            self.spawn(Tunnel::PacketBatches(Box::new(write)), hooks)
        })
    }

    /// Packet-interface modes: IP packets from the apps, in one call. Returns how many were
    /// queued; the rest were dropped because the queue is full (as a full TUN queue drops).
    pub fn push_packets(&self, packets: Vec<Vec<u8>>) -> Result<u32, EmbargoError> {
        guard(|| {
            let queued = self
                .driver()?
                .push_packets(packets.iter().map(Vec::as_slice));
            Ok(queued as u32)
        })
    }

    /// Starts on Apple's utun descriptor (each packet behind a 4-byte address family), which
    /// Embargo takes ownership of and closes on [`Embargo::stop`]. Packets never cross the FFI.
    pub fn start_utun(
        &self,
        tun_fd: i32,
        hooks: Arc<dyn PlatformHooks>,
    ) -> Result<(), EmbargoError> {
        guard(|| {
            // SAFETY: fcntl(F_GETFD) only queries the descriptor table.
            if tun_fd < 0 || unsafe { libc::fcntl(tun_fd, libc::F_GETFD) } < 0 {
                return Err(EmbargoError::InvalidInput(format!(
                    "{tun_fd} is not an open file descriptor"
                )));
            }
            // SAFETY: the descriptor is open (checked above) and the caller hands us
            // ownership (documented); it is closed exactly once, when the driver drops it.
            let fd = unsafe { OwnedFd::from_raw_fd(tun_fd) };
            self.spawn(Tunnel::FramedFd(fd, Framing::AddressFamily), hooks)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::lock;
    use crate::hooks::NoHooks;
    use crate::EmbargoConfig;
    use std::sync::{mpsc, Mutex};
    use std::time::Duration;

    struct ChannelSink(Mutex<mpsc::Sender<Vec<Vec<u8>>>>);
    impl PacketBatchSink for ChannelSink {
        fn write_packets(&self, packets: Vec<Vec<u8>>) -> Result<(), HookError> {
            let _ = lock(&self.0).send(packets);
            Ok(())
        }
    }

    fn dns_packet(id: u16, name: &str) -> Vec<u8> {
        crate::engine_harness::udp(
            "10.111.0.2:40000".parse().unwrap(),
            "10.111.0.1:53".parse().unwrap(),
            &crate::engine_harness::dns_query(id, name, 1),
        )
    }

    #[test]
    fn a_pushed_batch_of_blocked_questions_is_answered_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let e = Embargo::new(EmbargoConfig::default(), dir.path().display().to_string()).unwrap();
        assert!(matches!(
            e.push_packets(vec![dns_packet(1, "log.tiktokv.com")]),
            Err(EmbargoError::State(_))
        ));
        let (tx, rx) = mpsc::channel();
        e.start_with_packet_batches(Arc::new(ChannelSink(Mutex::new(tx))), Arc::new(NoHooks))
            .unwrap();
        let questions: Vec<Vec<u8>> = (0..50).map(|i| dns_packet(i, "log.tiktokv.com")).collect();
        assert_eq!(e.push_packets(questions).unwrap(), 50);
        let (mut answers, mut calls) = (0, 0);
        while answers < 50 {
            let batch = rx.recv_timeout(Duration::from_secs(5)).expect("answers");
            answers += batch.len();
            calls += 1;
            assert!(batch.iter().all(|p| p[9] == 17), "UDP answers");
        }
        assert_eq!(answers, 50);
        assert!(calls < 50, "{calls} sink calls for 50 answers");
        assert_eq!(e.status().unwrap().dns_blocked, 50);
        e.stop().unwrap();
        assert!(matches!(
            e.push_packets(vec![dns_packet(1, "x.example")]),
            Err(EmbargoError::State(_))
        ));
    }

    #[test]
    fn a_utun_descriptor_is_answered_behind_its_address_family() {
        use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors socketpair writes.
        let rc =
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0, fds.as_mut_ptr()) };
        assert_eq!(rc, 0);
        // SAFETY: socketpair returned two fresh descriptors; one goes to Embargo.
        let (tun, app) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let dir = tempfile::tempdir().unwrap();
        let e = Embargo::new(EmbargoConfig::default(), dir.path().display().to_string()).unwrap();
        e.start_utun(tun.into_raw_fd(), Arc::new(NoHooks)).unwrap();
        let mut framed = (libc::AF_INET as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&dns_packet(5, "log.tiktokv.com"));
        // SAFETY: writes from a live buffer of its length.
        let n = unsafe { libc::write(app.as_raw_fd(), framed.as_ptr().cast(), framed.len()) };
        assert_eq!(n as usize, framed.len());
        let timeout = libc::timeval {
            tv_sec: 10,
            tv_usec: 0,
        };
        // SAFETY: setsockopt reads one timeval from a live pointer.
        let rc = unsafe {
            libc::setsockopt(
                app.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        let mut buf = vec![0u8; 2048];
        // SAFETY: reads into a live buffer of its length (blocking, up to the timeout).
        let n = unsafe { libc::read(app.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        assert!(n > 4 + 28, "read {n}");
        assert_eq!(buf[..4], (libc::AF_INET as u32).to_be_bytes());
        assert_eq!(buf[4] >> 4, 4, "an IPv4 packet after the header");
        assert_eq!(buf[4 + 9], 17, "a UDP answer");
        e.stop().unwrap();
    }

    #[test]
    fn start_utun_refuses_a_closed_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let e = Embargo::new(EmbargoConfig::default(), dir.path().display().to_string()).unwrap();
        assert!(matches!(
            e.start_utun(-1, Arc::new(NoHooks)),
            Err(EmbargoError::InvalidInput(_))
        ));
    }
}
