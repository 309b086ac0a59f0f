//! The loop itself. One thread, one `mio::Poll`, edge-triggered readiness.
//!
//! Readiness is edge-triggered, so every source that is not read to `WouldBlock` (batch bound
//! reached, or the engine had no room) is remembered and pumped again without sleeping, or, for
//! flows the engine has no room for, after the next tunnel packets (the app's ACKs are what
//! open the engine's window).

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use embargo_engine::{Command, Engine, FlowId, UpstreamEvent};
use mio::net::{TcpStream, UdpSocket};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::datagrams::{self, DatagramBatch, SendBatch};
use crate::dns_upstream::client::DnsClient;
use crate::flow_app::FlowAppResolver;
use crate::sockets::{bind_udp, connect_tcp, connect_udp};
use crate::tunnel::{BatchSink, PacketQueue, TunFd, MAX_PACKET};
use crate::{
    Control, DriverConfig, DriverHandle, DriverStats, Hooks, PacketSink, Shared, StatsSnapshot,
    Tunnel,
};

const TUN: Token = Token(0);
const WAKER: Token = Token(1);

/// Upper bound on read calls per socket per pass, so one busy flow cannot starve the tunnel.
const READS_PER_PASS: usize = 16;

/// Readiness events taken per `epoll_wait`.
const EVENTS_CAP: usize = 1024;

/// The socket token of `flow` (`v6` only matters for the shared DNS flow, which may have one
/// socket per family). Flow ids are never reused, so neither are tokens.
fn token_of(flow: FlowId, v6: bool) -> Token {
    if flow == FlowId::DNS {
        Token(2 + v6 as usize)
    } else {
        Token(2 + 2 * flow.0 as usize)
    }
}

enum Socket {
    Tcp(TcpFlow),
    Udp { socket: UdpSocket, aim: UdpAim },
    DnsTcp(DnsExchange),
}

/// One DNS question asked of the resolver over TCP ([`Command::DnsOverTcp`]): connect, write
/// the framed question, read one framed answer, hand it to the engine, close.
struct DnsExchange {
    stream: TcpStream,
    resolver: SocketAddr,
    connecting: bool,
    /// The question with its 2-byte length, and how much of it is written.
    out: Vec<u8>,
    written: usize,
    /// What the resolver sent so far (2-byte length, then the answer).
    answer: Vec<u8>,
}

/// The most a framed DNS answer can be: a 2-byte length and 65,535 bytes.
const MAX_FRAMED_DNS: usize = 2 + u16::MAX as usize;

/// Where a UDP socket's datagrams go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum UdpAim {
    /// A NAT flow's socket: connected to the flow's one destination for its whole life.
    Flow,
    /// The shared DNS socket, connected to the resolver it has sent to so far. A connected
    /// socket skips the per-datagram route lookup on send (ip_route_output_flow: 2.6% of the
    /// process's samples under a forwarded-query flood) and is found by the kernel's early
    /// demux on receive, which saves the input route lookup of each answer.
    Resolver(SocketAddr),
    /// The shared DNS socket after datagrams went to two resolvers (the upstream changed):
    /// unconnected, so answers from either are still received.
    Any,
}

struct TcpFlow {
    stream: TcpStream,
    connecting: bool,
    /// The engine has app bytes we could not write yet (the socket would block).
    want_write: bool,
    /// The app sent FIN: shut the write half once the engine has nothing left.
    shutdown_pending: bool,
    write_shut: bool,
    /// EOF or error seen: reading is over.
    read_done: bool,
    /// Readiness reported the peer's FIN or an error: read on to EOF or the error even after
    /// a short read (see [`EventLoop::pump_read`]).
    peer_closed: bool,
}

struct Upstream {
    flow: FlowId,
    socket: Socket,
}

enum TunSide {
    Fd(TunFd),
    Packets {
        sink: PacketSink,
        queue: PacketQueue,
    },
    Batches {
        sink: BatchSink,
        queue: PacketQueue,
        /// Packets of this pass not yet handed to the sink.
        pending: Vec<Vec<u8>>,
    },
}

pub(crate) struct EventLoop {
    poll: Poll,
    engine: Engine,
    hooks: Arc<dyn Hooks>,
    config: DriverConfig,
    shared: Arc<Shared>,
    control: Receiver<Control>,
    apps: Option<FlowAppResolver<FlowId>>,
    /// Carries forwarded DNS questions when upstreams are configured ([`crate::dns_upstream`]).
    dns: Option<DnsClient>,
    tun: TunSide,
    sockets: HashMap<Token, Upstream>,
    /// Sources with unread data left by a bounded pass: pumped again before sleeping.
    again: HashSet<Token>,
    tun_again: bool,
    /// Flows whose socket has data but the engine had no room.
    stalled: HashSet<Token>,
    counters: DriverStats,
    tun_buf: Vec<u8>,
    datagrams: DatagramBatch,
    /// Forwarded questions of this pass for the connected DNS socket, sent together once the
    /// engine's commands are drained.
    dns_out: SendBatch,
    inbound: Vec<Vec<u8>>,
    /// App-identity questions of this pass, handed to the worker after the pass's packets are
    /// written (see [`EventLoop::flush`]).
    asks: Vec<(
        FlowId,
        embargo_policy::Protocol,
        SocketAddr,
        SocketAddr,
        bool,
    )>,
}

impl EventLoop {
    fn register_fd(poll: &Poll, tun: TunFd) -> io::Result<TunSide> {
        poll.registry()
            .register(&mut SourceFd(&tun.as_raw_fd()), TUN, Interest::READABLE)?;
        Ok(TunSide::Fd(tun))
    }

    pub(crate) fn new(
        tunnel: Tunnel,
        engine: Engine,
        hooks: Arc<dyn Hooks>,
        config: DriverConfig,
    ) -> io::Result<(DriverHandle, EventLoop)> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let (control_tx, control_rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            stats: Mutex::new(StatsSnapshot::default()),
            waker,
            control: Mutex::new(control_tx),
            packets: PacketQueue::default(),
        });
        let tun = match tunnel {
            Tunnel::Fd(fd) => Self::register_fd(&poll, TunFd::new(fd)?)?,
            Tunnel::FramedFd(fd, framing) => Self::register_fd(&poll, TunFd::framed(fd, framing)?)?,
            Tunnel::Packets(sink) => TunSide::Packets {
                sink,
                queue: shared.packets.clone(),
            },
            Tunnel::PacketBatches(sink) => TunSide::Batches {
                sink,
                queue: shared.packets.clone(),
                pending: Vec::new(),
            },
        };
        let apps = if engine.config().resolve_apps {
            Some(FlowAppResolver::start(hooks.clone(), wake_loop(&shared))?)
        } else {
            None
        };
        let dns = if config.dns.active() {
            Some(DnsClient::start(
                &config.dns,
                hooks.clone(),
                wake_loop(&shared),
            )?)
        } else {
            None
        };
        let handle = DriverHandle {
            shared: shared.clone(),
        };
        let event_loop = EventLoop {
            poll,
            engine,
            hooks,
            config,
            shared,
            control: control_rx,
            apps,
            dns,
            tun,
            sockets: HashMap::new(),
            again: HashSet::new(),
            tun_again: false,
            stalled: HashSet::new(),
            counters: DriverStats::default(),
            tun_buf: vec![0; MAX_PACKET],
            datagrams: DatagramBatch::new(),
            dns_out: SendBatch::default(),
            inbound: Vec::new(),
            asks: Vec::new(),
        };
        Ok((handle, event_loop))
    }

    pub(crate) fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_CAP);
        let result = loop {
            let timeout = self.sleep_for();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break Err(e);
            }
            self.counters.wakeups += 1;
            if self.shared.stop.load(Ordering::SeqCst) {
                break Ok(());
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    TUN => self.tun_again = true,
                    WAKER => {}
                    token => {
                        if event.is_writable() || event.is_error() {
                            self.on_writable(now, token);
                        }
                        if event.is_read_closed() || event.is_error() {
                            self.peer_closed(token);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.again.insert(token);
                        }
                    }
                }
            }
            if let Err(e) = self.pass(now) {
                break Err(e);
            }
            self.publish_stats();
        };
        self.publish_stats();
        result
    }

    /// How long to sleep: not at all when work is left over, else until the engine's deadline
    /// (forever when it has none: an idle tunnel costs no wake-ups).
    fn sleep_for(&mut self) -> Option<Duration> {
        if self.tun_again || !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
        self.engine
            .poll_timeout()
            .map(|t| t.saturating_duration_since(Instant::now()))
    }

    fn pass(&mut self, now: Instant) -> io::Result<()> {
        self.take_control(now);
        let read_tunnel = self.read_tunnel(now)?;
        if read_tunnel && !self.stalled.is_empty() {
            // The app's ACKs just went in: once the engine has run them, flows it had no room
            // for may move. (Only then flush here: every flush runs the stack's egress, which
            // walks every socket, so one flush per pass is the rule.)
            self.flush(now)?;
            let stalled: Vec<Token> = self.stalled.drain().collect();
            self.again.extend(stalled);
        }
        if !self.again.is_empty() {
            let ready: Vec<Token> = self.again.drain().collect();
            for token in ready {
                self.pump_read(now, token);
            }
        }
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
        }
        self.flush(now)
    }

    fn take_control(&mut self, now: Instant) {
        while let Ok(msg) = self.control.try_recv() {
            match msg {
                Control::WithEngine(op) => op(&mut self.engine),
            }
        }
        if let Some(apps) = &self.apps {
            while let Some((flow, app)) = apps.try_answer() {
                self.engine.app_resolved(now, flow, app);
            }
        }
        if let Some(dns) = &self.dns {
            while let Some((from, data)) = dns.try_answer() {
                self.engine.handle_upstream(
                    now,
                    UpstreamEvent::Datagram {
                        flow: FlowId::DNS,
                        from,
                        data: &data,
                    },
                );
            }
        }
    }

    /// Reads up to one batch of tunnel packets into the engine. Returns whether any came.
    fn read_tunnel(&mut self, now: Instant) -> io::Result<bool> {
        match &self.tun {
            TunSide::Fd(tun) => {
                if !self.tun_again {
                    return Ok(false);
                }
                self.tun_again = false;
                for i in 0..self.config.batch {
                    match tun.read(&mut self.tun_buf)? {
                        Some(n) => {
                            self.counters.tun_packets_in += 1;
                            self.engine.handle_tun_packet(now, &self.tun_buf[..n]);
                        }
                        None => return Ok(i > 0),
                    }
                }
                // Batch bound reached: more may be queued, and no new edge will say so.
                self.tun_again = true;
                Ok(true)
            }
            TunSide::Packets { queue, .. } | TunSide::Batches { queue, .. } => {
                self.inbound.clear();
                queue.take(self.config.batch, &mut self.inbound);
                self.tun_again = self.inbound.len() == self.config.batch;
                for packet in &self.inbound {
                    self.counters.tun_packets_in += 1;
                    self.engine.handle_tun_packet(now, packet);
                }
                Ok(!self.inbound.is_empty())
            }
        }
    }

    /// Drains the engine: packets to the tunnel, commands, events. Commands may produce more
    /// packets (a refused connect becomes an RST), hence the outer loop.
    ///
    /// App-identity questions go to the worker last: waking it is a thread wake-up (and its
    /// lookup CPU time) on the cores the app and the server need right now, so the SYN-ACK or
    /// the DNS answer of this pass leaves first.
    fn flush(&mut self, now: Instant) -> io::Result<()> {
        let flushed = self.flush_engine(now);
        if let Some(apps) = &self.apps {
            for (flow, protocol, src, dst, urgent) in self.asks.drain(..) {
                apps.ask(flow, protocol, src, dst, urgent);
            }
        }
        flushed
    }

    fn flush_engine(&mut self, now: Instant) -> io::Result<()> {
        loop {
            let mut progressed = false;
            while let Some(cmd) = self.engine.poll_command() {
                progressed = true;
                self.execute(now, cmd);
            }
            self.send_dns_batch();
            // Packets go from the engine's queue straight to the device: no copy in between.
            let tun = &mut self.tun;
            let batch = self.config.batch.max(1);
            while let Some(written) = self.engine.poll_tun_packet_with(|packet| match tun {
                TunSide::Fd(fd) => fd.write(packet),
                TunSide::Packets { sink, .. } => {
                    sink(packet);
                    Ok(true)
                }
                TunSide::Batches { sink, pending, .. } => {
                    pending.push(packet.to_vec());
                    if pending.len() >= batch {
                        sink(std::mem::take(pending));
                    }
                    Ok(true)
                }
            }) {
                progressed = true;
                match written {
                    Ok(true) => self.counters.tun_packets_out += 1,
                    Ok(false) => self.counters.tun_write_drops += 1,
                    Err(e) if e.raw_os_error() == Some(libc::EIO) => return Err(e),
                    Err(e) => {
                        // e.g. EINVAL for a packet the kernel refuses: drop that packet only
                        log::debug!("tun write: {e}");
                        self.counters.tun_write_drops += 1;
                    }
                }
            }
            if let Some(first) = self.engine.poll_event() {
                // Whoever sees an event may ask for the status next (the live view does):
                // the counters it reads must already include what the event reports.
                self.publish_stats();
                self.hooks.on_event(&first);
                while let Some(event) = self.engine.poll_event() {
                    self.hooks.on_event(&event);
                }
            }
            if !progressed {
                // The pass's last packets leave in one batch.
                if let TunSide::Batches { sink, pending, .. } = &mut self.tun {
                    if !pending.is_empty() {
                        sink(std::mem::take(pending));
                    }
                }
                return Ok(());
            }
        }
    }

    fn execute(&mut self, now: Instant, cmd: Command) {
        // With upstreams configured, the DNS client carries every forwarded question, the
        // engine's retries over TCP included (DoT and DoH answers are never truncated, a plain
        // upstream's may be): none leaves past the client in another way.
        let cmd = match (cmd, &self.dns) {
            (Command::SendDatagram { flow, dst, data }, Some(dns)) if flow == FlowId::DNS => {
                return dns.ask(dst, data);
            }
            (Command::DnsOverTcp { dst, data, .. }, Some(dns)) => return dns.ask(dst, data),
            (cmd, _) => cmd,
        };
        match cmd {
            Command::Connect { flow, dst } => self.connect(now, flow, dst),
            Command::AppDataReady { flow } => self.pump_write(now, token_of(flow, false)),
            Command::SendDatagram { flow, dst, data } => self.send_datagram(flow, dst, data),
            Command::DnsOverTcp { flow, dst, data } => self.ask_over_tcp(flow, dst, &data),
            Command::Shutdown { flow } => {
                let token = token_of(flow, false);
                if let Some(Upstream {
                    socket: Socket::Tcp(tcp),
                    ..
                }) = self.sockets.get_mut(&token)
                {
                    tcp.shutdown_pending = true;
                }
                self.pump_write(now, token);
            }
            Command::Close { flow } => {
                self.close(token_of(flow, false));
                if flow == FlowId::DNS {
                    self.close(token_of(flow, true));
                }
            }
            Command::ResolveApp {
                flow,
                protocol,
                src,
                dst,
            } => match &self.apps {
                Some(_) => {
                    let urgent = self.engine.holds_for_app(flow);
                    self.asks.push((flow, protocol, src, dst, urgent));
                }
                None => self.engine.app_resolved(now, flow, None),
            },
        }
    }

    /// Starts a non-blocking TCP connect to `dst` (through `protect`) registered under `token`;
    /// `None` (logged and counted) when the socket could not be made or registered.
    fn open_tcp(&mut self, flow: FlowId, token: Token, dst: SocketAddr) -> Option<TcpStream> {
        let opened = connect_tcp(dst, self.hooks.as_ref()).and_then(|mut stream| {
            self.poll
                .registry()
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .map_err(crate::sockets::OpenError::Io)?;
            Ok(stream)
        });
        match opened {
            Ok(stream) => {
                self.counters.sockets_opened += 1;
                Some(stream)
            }
            Err(e) => {
                log::debug!("{flow} connect {dst}: {e}");
                self.counters.connect_failures += 1;
                None
            }
        }
    }

    fn connect(&mut self, now: Instant, flow: FlowId, dst: SocketAddr) {
        let token = token_of(flow, false);
        match self.open_tcp(flow, token, dst) {
            Some(stream) => {
                self.sockets.insert(
                    token,
                    Upstream {
                        flow,
                        socket: Socket::Tcp(TcpFlow {
                            stream,
                            connecting: true,
                            want_write: false,
                            shutdown_pending: false,
                            write_shut: false,
                            read_done: false,
                            peer_closed: false,
                        }),
                    },
                );
                // A nearby server (same host, a LAN hop) has often completed the handshake
                // before connect() returned: the kernel runs the SYN-ACK while the call
                // releases the socket. Then the replayed bytes leave in this pass instead of
                // after one more readiness round trip (the writable edge then finds nothing to
                // do). Two cheap system calls when it has not.
                self.on_writable(now, token);
            }
            None => self
                .engine
                .handle_upstream(now, UpstreamEvent::ConnectFailed { flow }),
        }
    }

    /// Starts a [`DnsExchange`]. A failure to connect is not reported: the engine gives the
    /// question up at its deadline, as after a lost datagram.
    fn ask_over_tcp(&mut self, flow: FlowId, resolver: SocketAddr, question: &[u8]) {
        let Ok(len) = u16::try_from(question.len()) else {
            return;
        };
        let token = token_of(flow, false);
        let Some(stream) = self.open_tcp(flow, token, resolver) else {
            return;
        };
        let mut out = len.to_be_bytes().to_vec();
        out.extend_from_slice(question);
        self.sockets.insert(
            token,
            Upstream {
                flow,
                socket: Socket::DnsTcp(DnsExchange {
                    stream,
                    resolver,
                    connecting: true,
                    out,
                    written: 0,
                    answer: Vec::new(),
                }),
            },
        );
    }

    /// Moves a [`DnsExchange`] on: writes the question once connected, reads the answer, and
    /// hands a complete one to the engine. Ends (closes) on the answer, EOF or an error.
    fn pump_exchange(&mut self, now: Instant, token: Token) {
        let Some(Upstream {
            socket: Socket::DnsTcp(x),
            ..
        }) = self.sockets.get_mut(&token)
        else {
            return;
        };
        if x.connecting {
            match connect_outcome(&x.stream) {
                None => return,
                Some(Ok(())) => x.connecting = false,
                Some(Err(_)) => return self.close(token),
            }
        }
        while x.written < x.out.len() {
            match (&x.stream).write(&x.out[x.written..]) {
                Ok(n) => x.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close(token),
            }
        }
        let mut buf = [0u8; 4096];
        loop {
            match (&x.stream).read(&mut buf) {
                Ok(0) => return self.close(token),
                Ok(n) => {
                    x.answer.extend_from_slice(&buf[..n]);
                    self.counters.bytes_down += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.close(token),
            }
            let framed = match x.answer.get(..2) {
                Some(&[hi, lo]) => 2 + usize::from(u16::from_be_bytes([hi, lo])),
                _ => continue,
            };
            if x.answer.len() >= framed {
                let resolver = x.resolver;
                let answer = std::mem::take(&mut x.answer);
                self.close(token);
                if let Some(data) = answer.get(2..framed) {
                    self.engine.handle_upstream(
                        now,
                        UpstreamEvent::Datagram {
                            flow: FlowId::DNS,
                            from: resolver,
                            data,
                        },
                    );
                }
                return;
            }
            if x.answer.len() > MAX_FRAMED_DNS {
                return self.close(token);
            }
        }
    }

    fn send_datagram(&mut self, flow: FlowId, dst: SocketAddr, data: Vec<u8>) {
        let token = token_of(flow, dst.is_ipv6());
        if self.dns_out.holds_other(token) {
            self.send_dns_batch();
        }
        if !self.sockets.contains_key(&token) {
            let opened = if flow == FlowId::DNS {
                bind_udp(dst, self.hooks.as_ref()).map(|s| {
                    // Unconnected still works (send_to), only slower.
                    let aim = match s.connect(dst) {
                        Ok(()) => UdpAim::Resolver(dst),
                        Err(_) => UdpAim::Any,
                    };
                    (s, aim)
                })
            } else {
                connect_udp(dst, self.hooks.as_ref()).map(|s| (s, UdpAim::Flow))
            };
            let (mut socket, aim) = match opened {
                Ok(s) => s,
                Err(e) => {
                    log::debug!("{flow} udp {dst}: {e}");
                    self.counters.udp_send_drops += 1;
                    return;
                }
            };
            if let Err(e) = self
                .poll
                .registry()
                .register(&mut socket, token, Interest::READABLE)
            {
                log::debug!("{flow} register: {e}");
                self.counters.udp_send_drops += 1;
                return;
            }
            self.counters.sockets_opened += 1;
            self.sockets.insert(
                token,
                Upstream {
                    flow,
                    socket: Socket::Udp { socket, aim },
                },
            );
        }
        if let Some(Upstream {
            socket: Socket::Udp { socket, aim },
            ..
        }) = self.sockets.get_mut(&token)
        {
            if *aim == UdpAim::Resolver(dst) {
                return self.dns_out.push(token, data);
            }
            if matches!(*aim, UdpAim::Resolver(_)) {
                // A connected socket drops datagrams from any other peer: dissolve the
                // association so the old resolver's late answers and the new one's both arrive.
                // (Questions batched for the old peer leave first.)
                if self.dns_out.token.is_some() {
                    let (bytes, failed) = self.dns_out.send(socket);
                    self.counters.bytes_up += bytes;
                    self.counters.udp_send_drops += failed as u64;
                }
                disconnect_udp(socket);
                *aim = UdpAim::Any;
            }
            let sent = match *aim {
                UdpAim::Flow | UdpAim::Resolver(_) => socket.send(&data),
                UdpAim::Any => socket.send_to(&data, dst),
            };
            match sent {
                Ok(_) => self.counters.bytes_up += data.len() as u64,
                Err(e) => {
                    log::trace!("{flow} udp send: {e}");
                    self.counters.udp_send_drops += 1;
                }
            }
        }
    }

    /// Sends the pass's forwarded questions ([`EventLoop::dns_out`]) in one system call.
    fn send_dns_batch(&mut self) {
        let Some(token) = self.dns_out.token else {
            return;
        };
        if let Some(Upstream {
            socket: Socket::Udp { socket, .. },
            ..
        }) = self.sockets.get(&token)
        {
            let (bytes, failed) = self.dns_out.send(socket);
            self.counters.bytes_up += bytes;
            self.counters.udp_send_drops += failed as u64;
        } else {
            self.counters.udp_send_drops += self.dns_out.discard() as u64;
        }
    }

    fn close(&mut self, token: Token) {
        if self.dns_out.token == Some(token) {
            self.send_dns_batch();
        }
        if let Some(mut up) = self.sockets.remove(&token) {
            let registry = self.poll.registry();
            let _ = match &mut up.socket {
                Socket::Tcp(tcp) => registry.deregister(&mut tcp.stream),
                Socket::Udp { socket, .. } => registry.deregister(socket),
                Socket::DnsTcp(x) => registry.deregister(&mut x.stream),
            };
        }
        self.again.remove(&token);
        self.stalled.remove(&token);
    }

    /// A socket became writable: a connect finished, or there is room for the app's bytes.
    fn on_writable(&mut self, now: Instant, token: Token) {
        let (flow, tcp) = match self.sockets.get_mut(&token) {
            Some(Upstream {
                flow,
                socket: Socket::Tcp(tcp),
            }) => (*flow, tcp),
            Some(Upstream {
                socket: Socket::DnsTcp(_),
                ..
            }) => return self.pump_exchange(now, token),
            _ => return,
        };
        if tcp.connecting {
            let Some(outcome) = connect_outcome(&tcp.stream) else {
                return; // not yet
            };
            if let Err(e) = outcome {
                log::debug!("{flow} connect failed: {e}");
                self.counters.connect_failures += 1;
                self.close(token);
                self.engine
                    .handle_upstream(now, UpstreamEvent::ConnectFailed { flow });
                return;
            }
            tcp.connecting = false;
            self.engine
                .handle_upstream(now, UpstreamEvent::Connected { flow });
            // Data the server sent with its handshake is picked up by the readable edge.
            self.pump_write(now, token);
        } else if tcp.want_write || tcp.shutdown_pending {
            self.pump_write(now, token);
        }
    }

    /// Moves the app's bytes from the engine to the socket until the engine has none left or
    /// the socket would block; then, if the app has finished, shuts the write half.
    fn pump_write(&mut self, now: Instant, token: Token) {
        let Some(Upstream {
            flow,
            socket: Socket::Tcp(tcp),
        }) = self.sockets.get_mut(&token)
        else {
            return;
        };
        let flow = *flow;
        if tcp.connecting || tcp.write_shut {
            // AppDataReady before the connect completes: remembered, pumped on Connected.
            tcp.want_write = true;
            return;
        }
        tcp.want_write = false;
        let stream = &tcp.stream;
        loop {
            match self
                .engine
                .read_app_data(now, flow, |buf| (&*stream).write(buf))
            {
                None => break,
                Some(Ok(0)) => {
                    tcp.want_write = true;
                    return;
                }
                Some(Ok(n)) => self.counters.bytes_up += n as u64,
                Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    tcp.want_write = true;
                    return;
                }
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Some(Err(e)) => {
                    log::debug!("{flow} write: {e}");
                    self.close(token);
                    self.engine
                        .handle_upstream(now, UpstreamEvent::Reset { flow });
                    return;
                }
            }
        }
        if tcp.shutdown_pending {
            tcp.shutdown_pending = false;
            tcp.write_shut = true;
            let _ = tcp.stream.shutdown(Shutdown::Write);
        }
    }

    /// Readiness reported the peer's FIN (or an error) on `token`'s TCP stream.
    fn peer_closed(&mut self, token: Token) {
        if let Some(Upstream {
            socket: Socket::Tcp(tcp),
            ..
        }) = self.sockets.get_mut(&token)
        {
            tcp.peer_closed = true;
        }
    }

    /// Moves bytes from a socket into the engine, as far as the engine has room.
    fn pump_read(&mut self, now: Instant, token: Token) {
        let Some(up) = self.sockets.get_mut(&token) else {
            return;
        };
        let flow = up.flow;
        match &mut up.socket {
            Socket::Tcp(tcp) => {
                if tcp.connecting || tcp.read_done {
                    return;
                }
                let stream = &tcp.stream;
                for _ in 0..READS_PER_PASS {
                    let mut offered = 0;
                    match self.engine.recv_upstream_with(now, flow, |buf| {
                        offered = buf.len();
                        (&*stream).read(buf)
                    }) {
                        None => {
                            self.stalled.insert(token);
                            return;
                        }
                        Some(Ok(0)) => {
                            tcp.read_done = true;
                            self.engine
                                .handle_upstream(now, UpstreamEvent::Closed { flow });
                            return;
                        }
                        Some(Ok(n)) => {
                            self.counters.bytes_down += n as u64;
                            // A stream read returns less than asked only when the receive queue
                            // is empty, and data arriving after it raises a new edge: no read
                            // just to hear WouldBlock (one system call per response saved).
                            // Not when the FIN or an error was already reported: no new edge
                            // would come for the EOF behind the data.
                            if n < offered && !tcp.peer_closed {
                                return;
                            }
                        }
                        Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => return,
                        Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                        Some(Err(e)) => {
                            log::debug!("{flow} read: {e}");
                            self.close(token);
                            self.engine
                                .handle_upstream(now, UpstreamEvent::Reset { flow });
                            return;
                        }
                    }
                }
                self.again.insert(token);
            }
            Socket::DnsTcp(_) => self.pump_exchange(now, token),
            Socket::Udp { socket, .. } => match self.datagrams.recv(socket) {
                Ok(n) => {
                    for i in 0..n {
                        let Some((data, from)) = self.datagrams.get(i) else {
                            continue;
                        };
                        self.counters.bytes_down += data.len() as u64;
                        self.engine
                            .handle_upstream(now, UpstreamEvent::Datagram { flow, from, data });
                    }
                    if n == datagrams::SLOTS {
                        // More may be queued, and no new edge will say so.
                        self.again.insert(token);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    // ICMP errors (port unreachable) on a connected socket surface here, once
                    // each: the flow idles out. Datagrams may be queued behind the error, and
                    // readiness is edge-triggered: read again next pass.
                    if e.kind() != io::ErrorKind::Interrupted {
                        log::trace!("{flow} udp recv: {e}");
                    }
                    self.again.insert(token);
                }
            },
        }
    }

    fn publish_stats(&mut self) {
        self.counters.sockets_open = self.sockets.len();
        if let TunSide::Fd(tun) = &self.tun {
            (
                self.counters.tun_super_packets_in,
                self.counters.tun_super_packets_out,
            ) = tun.super_packets();
        }
        let snapshot = StatsSnapshot {
            driver: self.counters,
            engine: self.engine.stats(),
        };
        match self.shared.stats.lock() {
            Ok(mut s) => *s = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }
}

/// Dissolves a UDP socket's association (connect to `AF_UNSPEC`, POSIX): it then receives from
/// any peer again and sends where each `send_to` says.
/// How a non-blocking connect of `stream` ended, on a writable (or error) edge: `None` while
/// it is still in progress.
/// The callback a worker thread (app identity, encrypted DNS) calls when it has answers: it
/// wakes the loop out of `poll`.
fn wake_loop(shared: &Arc<Shared>) -> Box<dyn Fn() + Send> {
    let s = shared.clone();
    Box::new(move || {
        let _ = s.waker.wake();
    })
}

fn connect_outcome(stream: &TcpStream) -> Option<io::Result<()>> {
    match stream.take_error() {
        Ok(Some(e)) | Err(e) => Some(Err(e)),
        Ok(None) => match stream.peer_addr() {
            Ok(_) => Some(Ok(())),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
            Err(e) => Some(Err(e)),
        },
    }
}

fn disconnect_udp(socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed sockaddr with family AF_UNSPEC is the documented way to disconnect a
    // datagram socket; the pointer and length describe that local value, and the descriptor is
    // owned by `socket`, alive for the call.
    let rc = unsafe {
        let mut addr: libc::sockaddr = std::mem::zeroed();
        addr.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
        libc::connect(
            socket.as_raw_fd(),
            &addr,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        log::debug!("udp disconnect: {}", io::Error::last_os_error());
    }
}
