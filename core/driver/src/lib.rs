//! Embargo's IO driver: one event loop (mio, one thread) over the tunnel and the host sockets.
//!
//! The engine ([`embargo_engine::Engine`]) owns every protocol decision and no IO; this crate
//! owns every descriptor and no protocol logic. The loop:
//! - reads tunnel packets in batches (until `EAGAIN` or [`DriverConfig::batch`]) into the engine;
//! - executes the engine's commands: non-blocking TCP connects, one UDP socket per flow, each
//!   passed to [`Hooks::protect`] before it connects;
//! - moves TCP payload with one copy each way (stack buffer -> socket, socket -> stack buffer),
//!   reading a socket only as far as the engine has room (backpressure reaches the server as a
//!   closed TCP window instead of as memory);
//! - writes the engine's packets to the tunnel;
//! - sleeps in `epoll_wait` until IO or the engine's next deadline: no tick, so an idle tunnel
//!   costs zero wake-ups.
//!
//! App identity ([`Hooks::app_of_flow`]) is asked on a worker thread, never on the packet path.

mod datagrams;
pub mod dns_upstream;
mod event_loop;
mod flow_app;
pub mod sockets;
#[cfg(target_os = "linux")]
pub mod tun_linux;
pub mod tunnel;
pub mod virtio_net;

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use embargo_engine::{Engine, Event};
use embargo_policy::Protocol;

pub use dns_upstream::{DnsUpstream, DnsUpstreams};
pub use tunnel::{BatchSink, Framing, PacketSink};

/// A platform hook failed (e.g. `VpnService.protect` returned false).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookError {
    message: String,
}

impl HookError {
    /// An error with a message for the log.
    pub fn new(message: impl Into<String>) -> Self {
        HookError {
            message: message.into(),
        }
    }
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HookError {}

/// What the platform provides to the loop.
pub trait Hooks: Send + Sync {
    /// Keeps `fd`'s traffic out of the tunnel. Called on every upstream socket before it
    /// connects (Android: `VpnService.protect`; Linux: `SO_MARK` plus an `ip rule`). On iOS
    /// it is a no-op: a packet tunnel extension's own sockets never enter its tunnel.
    fn protect(&self, fd: RawFd) -> Result<(), HookError>;

    /// The app a flow `src -> dst` belongs to (its package, bundle id or executable), if the
    /// platform can tell. Called on a worker
    /// thread (it may be slow: /proc walks, binder calls), once per question the engine asks.
    fn app_of_flow(&self, protocol: Protocol, src: SocketAddr, dst: SocketAddr) -> Option<String> {
        let _ = (protocol, src, dst);
        None
    }

    /// An event for the history or the user interface. Called on the loop's thread: it must
    /// not block (queue it).
    fn on_event(&self, event: &Event) {
        let _ = event;
    }
}

/// Hooks that protect nothing and know no apps: for sockets that bypass the tunnel anyway
/// (the tunnel lives in another network namespace) and for tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl Hooks for NoHooks {
    fn protect(&self, _fd: RawFd) -> Result<(), HookError> {
        Ok(())
    }
}

/// Linux protection: mark every upstream socket with `SO_MARK` so that an `ip rule` routes
/// it around the tunnel. A mark of 0 protects nothing (network-namespace mode needs none).
/// Linux and Android only: `SO_MARK` is theirs, and Apple systems need no protection (an
/// extension's sockets bypass its own tunnel).
#[cfg(any(target_os = "linux", target_os = "android"))]
#[derive(Debug, Clone, Copy)]
pub struct FwmarkProtect(pub u32);

#[cfg(any(target_os = "linux", target_os = "android"))]
impl FwmarkProtect {
    /// Sets the mark on one socket.
    pub fn protect_fd(&self, fd: RawFd) -> Result<(), HookError> {
        if self.0 == 0 {
            return Ok(());
        }
        let mark: libc::c_int = self.0 as libc::c_int;
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a valid pointer.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_MARK,
                (&mark as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(HookError::new(format!(
                "SO_MARK {}: {} (needs CAP_NET_ADMIN)",
                self.0,
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }
}

/// Tuning of the loop.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Tunnel packets read per pass before the engine's output is flushed. 64 packets (~96 KiB
    /// at MTU 1500) amortise the poll and the flush without letting one direction starve the
    /// other.
    pub batch: usize,
    /// Bytes read from one TCP socket per `read` call (the one copy into the stack).
    pub socket_read: usize,
    /// Where allowed DNS questions go (plain, DNS-over-TLS, DNS-over-HTTPS, with fallback).
    /// Empty: to the engine's configured resolver over UDP.
    pub dns: DnsUpstreams,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            batch: 64,
            socket_read: 64 * 1024,
            dns: DnsUpstreams::default(),
        }
    }
}

/// Where the loop gets tunnel packets from.
pub enum Tunnel {
    /// A TUN descriptor of raw IP packets (Linux tun, Android's VpnService fd).
    Fd(OwnedFd),
    /// A tunnel descriptor whose packets carry a header (Apple's utun: [`Framing`]).
    FramedFd(OwnedFd, Framing),
    /// No descriptor (a platform that passes packets by API): packets come in through
    /// [`DriverHandle::push_packet`] and go out through the sink, one call each.
    Packets(PacketSink),
    /// As [`Tunnel::Packets`], with packets going out in batches (iOS:
    /// `NEPacketTunnelFlow` takes arrays); they come in through
    /// [`DriverHandle::push_packets`].
    PacketBatches(BatchSink),
}

/// Counters of the loop itself (the engine keeps its own, in [`StatsSnapshot::engine`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Returns from `epoll_wait` (each one is a wake-up of the loop thread).
    pub wakeups: u64,
    /// Packets read from / written to the tunnel.
    pub tun_packets_in: u64,
    pub tun_packets_out: u64,
    /// Tunnel packets the loop could not write (device queue full or error).
    pub tun_write_drops: u64,
    /// TCP super-packets (Linux offloads, [`Framing::VirtioNet`]) read from the tunnel, and
    /// large segments written to it for the kernel to cut.
    pub tun_super_packets_in: u64,
    pub tun_super_packets_out: u64,
    /// Upstream sockets open now, and opened in total.
    pub sockets_open: usize,
    pub sockets_opened: u64,
    /// Upstream sockets that could not be opened or connected.
    pub connect_failures: u64,
    /// UDP datagrams dropped because the host socket would block or failed.
    pub udp_send_drops: u64,
    /// Bytes relayed from apps to servers and back.
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// A snapshot of the loop's and the engine's counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatsSnapshot {
    /// The loop's counters.
    pub driver: DriverStats,
    /// The engine's counters.
    pub engine: embargo_engine::EngineStats,
}

type EngineOp = Box<dyn FnOnce(&mut Engine) + Send>;

/// Messages from handles to the loop.
enum Control {
    WithEngine(EngineOp),
}

struct Shared {
    stop: AtomicBool,
    stats: Mutex<StatsSnapshot>,
    waker: mio::Waker,
    control: Mutex<Sender<Control>>,
    packets: tunnel::PacketQueue,
}

/// Controls a running loop from any thread. Cheap to clone.
#[derive(Clone)]
pub struct DriverHandle {
    shared: Arc<Shared>,
}

impl DriverHandle {
    /// Asks the loop to stop; [`start`]'s join handle returns once it has.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.shared.waker.wake();
    }

    /// Runs `op` on the engine between two batches (e.g. swapping the policy: the engine is
    /// single-threaded, so changes go through the loop).
    pub fn with_engine(&self, op: impl FnOnce(&mut Engine) + Send + 'static) {
        let sent = match self.shared.control.lock() {
            Ok(tx) => tx.send(Control::WithEngine(Box::new(op))).is_ok(),
            Err(_) => false,
        };
        if sent {
            let _ = self.shared.waker.wake();
        }
    }

    /// Replaces the policy the engine decides with.
    pub fn set_policy(&self, policy: Arc<dyn embargo_engine::Decide>) {
        self.with_engine(move |engine| engine.set_policy(policy));
    }

    /// The counters as of the end of the loop's last pass, or of the last events handed to
    /// [`Hooks::on_event`] if that came later: a status read on an event counts what the
    /// event reports.
    pub fn stats(&self) -> StatsSnapshot {
        match self.shared.stats.lock() {
            Ok(s) => *s,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// Packet-interface mode: hands one packet from the apps to the loop. Returns `false`
    /// when the inbound queue is full (the packet is dropped, as a full TUN queue would).
    pub fn push_packet(&self, packet: &[u8]) -> bool {
        let (ok, was_empty) = self.shared.packets.push(packet);
        // One wake per burst: the loop drains the whole queue when it runs.
        if ok && was_empty {
            let _ = self.shared.waker.wake();
        }
        ok
    }
}

impl DriverHandle {
    /// Packet-interface mode: hands packets from the apps to the loop under one lock and one
    /// wake-up. Returns how many were queued; the rest are dropped (the queue is full).
    pub fn push_packets<'a>(&self, packets: impl IntoIterator<Item = &'a [u8]>) -> usize {
        let (queued, was_empty) = self.shared.packets.push_many(packets);
        if queued > 0 && was_empty {
            let _ = self.shared.waker.wake();
        }
        queued
    }
}

/// Starts the loop on its own thread. The engine moves into the loop; reach it through the
/// handle. The join handle yields the error that ended the loop, if any.
pub fn start(
    tunnel: Tunnel,
    engine: Engine,
    hooks: Arc<dyn Hooks>,
    config: DriverConfig,
) -> std::io::Result<(DriverHandle, JoinHandle<std::io::Result<()>>)> {
    let (handle, event_loop) = event_loop::EventLoop::new(tunnel, engine, hooks, config)?;
    let thread = std::thread::Builder::new()
        .name("embargo-driver".into())
        .spawn(move || event_loop.run())?;
    Ok((handle, thread))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;
    use std::time::{Duration, Instant};

    use embargo_engine::EngineConfig;
    use embargo_policy::Query;
    use embargo_test_support as harness;

    fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors socketpair writes.
        let rc =
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0, fds.as_mut_ptr()) };
        assert_eq!(rc, 0);
        // SAFETY: socketpair returned two fresh descriptors we now own.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn engine() -> Engine {
        let policy: Arc<dyn embargo_engine::Decide> = Arc::new(|_q: &Query<'_>| harness::allow());
        Engine::new(EngineConfig::default(), policy, Instant::now())
    }

    fn wait_for(handle: &DriverHandle, what: impl Fn(&StatsSnapshot) -> bool) -> StatsSnapshot {
        for _ in 0..500 {
            let s = handle.stats();
            if what(&s) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        handle.stats()
    }

    #[test]
    fn tunnel_packets_reach_the_engine_and_stop_ends_the_loop() {
        let (tun, app) = seqpacket_pair();
        let app = tunnel::TunFd::new(app).unwrap();
        let (handle, thread) = start(
            Tunnel::Fd(tun),
            engine(),
            Arc::new(NoHooks),
            DriverConfig::default(),
        )
        .unwrap();
        for _ in 0..200 {
            assert!(app.write(&[0x45; 40]).unwrap());
        }
        let s = wait_for(&handle, |s| s.driver.tun_packets_in == 200);
        assert_eq!(s.driver.tun_packets_in, 200);
        assert_eq!(s.engine.packets_in, 200);
        handle.stop();
        thread.join().unwrap().unwrap();
    }

    #[test]
    fn idle_loop_does_not_wake_up() {
        let (tun, _app) = seqpacket_pair();
        let (handle, thread) = start(
            Tunnel::Fd(tun),
            engine(),
            Arc::new(NoHooks),
            DriverConfig::default(),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // No packet, no socket, no deadline: the loop must still be in its first epoll_wait.
        assert_eq!(handle.stats().driver.wakeups, 0);
        handle.stop();
        thread.join().unwrap().unwrap();
    }

    #[test]
    fn packet_interface_mode_takes_pushed_packets() {
        let (handle, thread) = start(
            Tunnel::Packets(Box::new(|_p: &[u8]| {})),
            engine(),
            Arc::new(NoHooks),
            DriverConfig::default(),
        )
        .unwrap();
        for _ in 0..100 {
            assert!(handle.push_packet(&[0x60; 48]));
        }
        let s = wait_for(&handle, |s| s.driver.tun_packets_in == 100);
        assert_eq!(s.engine.packets_in, 100);
        handle.stop();
        thread.join().unwrap().unwrap();
    }

    fn blocking_engine() -> Engine {
        let policy: Arc<dyn embargo_engine::Decide> = Arc::new(|_q: &Query<'_>| harness::block());
        Engine::new(EngineConfig::default(), policy, Instant::now())
    }

    fn dns_question(id: u16) -> Vec<u8> {
        harness::udp(
            "10.0.0.2:40000".parse().unwrap(),
            "10.0.0.1:53".parse().unwrap(),
            &harness::dns_query(id, "log.example.com", 1),
        )
    }

    #[test]
    fn packet_batch_mode_answers_a_pushed_batch_in_batches() {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<Vec<u8>>>();
        let (handle, thread) = start(
            Tunnel::PacketBatches(Box::new(move |batch| {
                let _ = tx.send(batch);
            })),
            blocking_engine(),
            Arc::new(NoHooks),
            DriverConfig::default(),
        )
        .unwrap();
        let questions: Vec<Vec<u8>> = (0..100).map(dns_question).collect();
        assert_eq!(
            handle.push_packets(questions.iter().map(Vec::as_slice)),
            100
        );
        let mut answers = 0;
        let mut calls = 0;
        while answers < 100 {
            let batch = rx.recv_timeout(Duration::from_secs(5)).expect("answers");
            assert!(!batch.is_empty() && batch.len() <= DriverConfig::default().batch);
            answers += batch.len();
            calls += 1;
            for answer in &batch {
                assert_eq!(answer[9], 17, "a UDP answer");
            }
        }
        assert_eq!(answers, 100);
        // A pass reads at most `batch` packets, and its answers leave together.
        assert!(calls < 100, "{calls} sink calls for 100 answers");
        handle.stop();
        thread.join().unwrap().unwrap();
    }

    #[test]
    fn a_batch_of_forwarded_questions_reaches_the_resolver_and_every_answer_the_app() {
        // A resolver on loopback answering every question it gets, in the order it got them.
        let resolver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        resolver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let config = EngineConfig {
            dns_upstream_v4: resolver.local_addr().unwrap(),
            ..EngineConfig::default()
        };
        let policy: Arc<dyn embargo_engine::Decide> = Arc::new(|_q: &Query<'_>| harness::allow());
        let (tx, rx) = std::sync::mpsc::channel::<Vec<Vec<u8>>>();
        let (handle, thread) = start(
            Tunnel::PacketBatches(Box::new(move |batch| {
                let _ = tx.send(batch);
            })),
            Engine::new(config, policy, Instant::now()),
            Arc::new(NoHooks),
            DriverConfig::default(),
        )
        .unwrap();
        let app: std::net::SocketAddr = "10.0.0.2:40000".parse().unwrap();
        let names: Vec<String> = (0..100).map(|i| format!("u{i}.example.com")).collect();
        let questions: Vec<Vec<u8>> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let q = harness::dns_query(i as u16, name, 1);
                harness::udp(app, "10.0.0.1:53".parse().unwrap(), &q)
            })
            .collect();
        // One push: the engine forwards them in passes of `batch`, each pass's in one send call.
        assert_eq!(
            handle.push_packets(questions.iter().map(Vec::as_slice)),
            100
        );
        let mut buf = [0u8; 1500];
        for name in &names {
            let (n, from) = resolver.recv_from(&mut buf).expect("a forwarded question");
            let question = &buf[..n];
            let mut wire_name = Vec::new();
            for label in name.split('.') {
                wire_name.push(label.len() as u8);
                wire_name.extend_from_slice(label.as_bytes());
            }
            assert!(
                question.windows(wire_name.len()).any(|w| w == wire_name),
                "questions arrive in the order asked: expected {name}"
            );
            let answer = harness::dns_answer(question, &["192.0.2.7".parse().unwrap()]);
            resolver.send_to(&answer, from).unwrap();
        }
        let mut answers = 0;
        while answers < 100 {
            let batch = rx.recv_timeout(Duration::from_secs(5)).expect("answers");
            for answer in &batch {
                assert!(matches!(harness::parse_out(answer), harness::Out::Udp(_)));
            }
            answers += batch.len();
        }
        let s = handle.stats();
        assert_eq!((s.engine.dns_forwarded, s.driver.udp_send_drops), (100, 0));
        handle.stop();
        thread.join().unwrap().unwrap();
    }

    #[test]
    fn a_utun_framed_descriptor_is_read_and_answered_with_its_header() {
        let (tun, app) = seqpacket_pair();
        let app = tunnel::TunFd::new(app).unwrap();
        let (handle, thread) = start(
            Tunnel::FramedFd(tun, Framing::AddressFamily),
            blocking_engine(),
            Arc::new(NoHooks),
            DriverConfig::default(),
        )
        .unwrap();
        let mut framed = (libc::AF_INET as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&dns_question(7));
        assert!(app.write(&framed).unwrap());
        let mut buf = vec![0; tunnel::MAX_PACKET];
        let mut n = None;
        for _ in 0..500 {
            n = app.read(&mut buf).unwrap();
            if n.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let n = n.expect("an answer");
        assert_eq!(buf[..4], (libc::AF_INET as u32).to_be_bytes());
        assert!(
            matches!(harness::parse_out(&buf[4..n]), harness::Out::Udp(_)),
            "a checksummed UDP answer after the header"
        );
        assert_eq!(handle.stats().engine.dns_blocked, 1);
        handle.stop();
        thread.join().unwrap().unwrap();
    }

    #[test]
    fn the_status_counts_what_an_event_reports_by_the_time_the_event_arrives() {
        // The live view reads the status when an event arrives: a blocked question's event
        // must find it counted. Before, the counters were published only at the end of the
        // pass, after the events had gone out.
        struct Recorder {
            handle: std::sync::OnceLock<DriverHandle>,
            seen: Mutex<Vec<u64>>,
        }
        impl Hooks for Recorder {
            fn protect(&self, _fd: RawFd) -> Result<(), HookError> {
                Ok(())
            }
            fn on_event(&self, _event: &Event) {
                if let Some(h) = self.handle.get() {
                    self.seen.lock().unwrap().push(h.stats().engine.dns_blocked);
                }
            }
        }
        let recorder = Arc::new(Recorder {
            handle: std::sync::OnceLock::new(),
            seen: Mutex::new(Vec::new()),
        });
        let policy: Arc<dyn embargo_engine::Decide> = Arc::new(|_q: &Query<'_>| harness::block());
        let engine = Engine::new(EngineConfig::default(), policy, Instant::now());
        let (handle, thread) = start(
            Tunnel::Packets(Box::new(|_p: &[u8]| {})),
            engine,
            recorder.clone(),
            DriverConfig::default(),
        )
        .unwrap();
        assert!(recorder.handle.set(handle.clone()).is_ok());
        let question = harness::dns_query(0x1234, "log.example.com", 1);
        let packet = harness::udp(
            "10.0.0.2:40000".parse().unwrap(),
            "10.0.0.1:53".parse().unwrap(),
            &question,
        );
        assert!(handle.push_packet(&packet));
        wait_for(&handle, |s| s.engine.dns_blocked == 1);
        for _ in 0..500 {
            if !recorder.seen.lock().unwrap().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let seen = recorder.seen.lock().unwrap().clone();
        assert!(!seen.is_empty(), "no event");
        assert!(
            seen.iter().all(|&n| n >= 1),
            "events saw dns_blocked {seen:?}"
        );
        handle.stop();
        thread.join().unwrap().unwrap();
    }

    #[test]
    fn fwmark_zero_is_a_no_op_and_nonzero_marks() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        use std::os::fd::AsRawFd;
        FwmarkProtect(0).protect_fd(sock.as_raw_fd()).unwrap();
        // Marking needs CAP_NET_ADMIN: only check the outcome when we have it.
        if let Ok(()) = FwmarkProtect(42).protect_fd(sock.as_raw_fd()) {
            let mut mark: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt writes at most `len` bytes into `mark`.
            let rc = unsafe {
                libc::getsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_MARK,
                    (&mut mark as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            assert_eq!(rc, 0);
            assert_eq!(mark, 42);
        }
    }
}
