//! TCP: smoltcp-terminated connections.
//!
//! Two modes, chosen per SYN after the address check:
//! - **connect first** (server-first ports, the ones not in [`INSPECT_PORTS`]): the engine
//!   completes the app's handshake and asks for the upstream connection only when the app's
//!   ACK arrives ([`Phase::Handshake`]): a spoofed SYN, whose source never sees the SYN-ACK,
//!   opens no upstream socket (it expires after `connect_timeout`). A refused connect becomes
//!   an RST to the app, as on the inspected ports. The SYN-ACK is paused only while the app's
//!   identity is awaited.
//! - **inspect first** (the client-first ports [`INSPECT_PORTS`] and the HTTP proxy ports of
//!   [`crate::EngineConfig::proxy_ports`]): the engine completes the app's handshake
//!   itself (it must ACK the SYN to receive the ClientHello), reads the first bytes up to
//!   [`crate::EngineConfig::inspect_max_bytes`] or [`crate::EngineConfig::inspect_timeout`],
//!   decides with the SNI/Host, and only then asks for the upstream connection. A blocked flow
//!   gets an RST and the driver never hears of it. It fails closed: bytes that are not TLS or
//!   HTTP, an HTTP/1.1 head without Host, the app's FIN, or either limit passing, all refuse
//!   the flow; only a ClientHello without SNI and an HTTP/1.0 head without Host are decided by
//!   address. The bytes read are replayed first by [`Engine::read_app_data`].
//!
//! Requests to an HTTP proxy are decided on the names inside them, not on the proxy's address:
//! an absolute-URI request (`GET http://host/`) on its target's host and on its Host header
//! (blocked when either is); a `CONNECT host:port` on its target, before the proxy is asked. An
//! allowed CONNECT is relayed (its head only), and the app's next bytes, the tunnel's own
//! ClientHello (or HTTP request), are held in [`TunnelCheck`] until their name is read and
//! decided: a blocked inner name resets the flow before any of those bytes leaves. The inner
//! name is decided (and recorded) only when it differs from the CONNECT target's. The names
//! are reported as [`NameSource::HttpHost`] (the CONNECT target and absolute URI are the HTTP
//! request's own host) and [`NameSource::TlsSni`] for the inner ClientHello. Only the first
//! request of a connection is read: a proxy connection kept alive for later requests is not
//! inspected again.
//!
//! A SYN whose address is already blocked is answered with a hand-built RST and no socket.
//! Retransmitted SYNs find their flow by 4-tuple and go to the same socket. Finished, reset and
//! blocked flows are removed at once (no TIME-WAIT lingering).
//!
//! Each flow owns its smoltcp socket in a one-slot [`SocketSet`]. smoltcp's interface walks
//! every socket of the set it is given, for each segment in (to find the one that accepts it),
//! for each egress pass and for each deadline query; with one shared set, every packet of a
//! busy flow cost a visit to every idle one (docs/decisions.md).
//! With `Medium::Ip` the interface keeps no per-socket state (no neighbour cache), so a set per
//! flow is equivalent: the engine already finds the flow by its 4-tuple, ingests into that
//! flow's set only, runs egress only for flows touched since the last pass (`Engine::dirty`),
//! and files each socket's own deadline (retransmission, delayed ACK, window probe, TIME-WAIT)
//! in the engine's per-flow timer heap. A parked socket (SYN-ACK paused) is simply never
//! given egress or a deadline until it is released.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use embargo_policy::{NameSource, Protocol};
use smoltcp::iface::{PollResult, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::IpListenEndpoint;

use super::sockets::{OwnSocket, Ring};
use super::table::FlowTable;
use super::{file_timer, Engine, Flow, FlowKind};
use crate::api::{Command, DropReason, FlowId};
use crate::inspect::{http, tls, Sniff};
use crate::packet::{self, Parsed, TCP_ACK, TCP_RST, TCP_SYN};

/// Ports whose first bytes are read before deciding: the ports where the client speaks first
/// and its first bytes carry the name. HTTP (80, 8080) and HTTPS (443, 8443), and the IANA
/// implicit-TLS ports whose first bytes are a ClientHello: SMTPS submission (465), DNS over TLS
/// (853, when it is not refused outright), IMAPS (993), POP3S (995), Apple push (5223) and
/// MQTT over TLS (8883). Ports where the server speaks first (SMTP 25/587, IMAP 143, SSH 22,
/// FTP 21 send a banner before the client says anything) cannot be read first and keep the
/// address decision.
pub(crate) const INSPECT_PORTS: [u16; 10] = [80, 443, 8080, 8443, 465, 853, 993, 995, 5223, 8883];
/// Rule text of the engine's block of a client-first flow whose name could not be read.
const UNREADABLE: &str = "no name readable on a client-first port (fail closed)";
/// Largest DNS-over-TCP message accepted from an app (queries are tiny).
const MAX_TCP_DNS_QUERY: usize = 4096;
/// Answers held for a DNS-over-TCP flow whose send ring is full, framed: one answer of the
/// largest size DNS allows (apps ask over TCP exactly when an answer is too big for UDP, and a
/// flow's send ring starts at 1.75 KiB). Past it an answer is dropped, as if lost,
/// and the app asks again.
const MAX_TCP_DNS_PENDING: usize = 64 * 1024 + 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// SYN-ACK paused until the app answer (or `app_wait`).
    AwaitApp,
    /// Handshake done locally; reading the first bytes.
    Inspecting,
    /// A connect-first flow whose SYN-ACK is out: the upstream is asked for only once the
    /// app's ACK completes the handshake (a spoofed SYN never does).
    Handshake,
    /// Upstream connect requested.
    Connecting,
    /// Both sides connected; bytes flow through the driver.
    Relaying,
    /// DNS over TCP answered by the engine itself.
    Dns,
}

pub(crate) struct TcpFlow {
    /// This flow's socket, alone in its set (see the module documentation).
    pub socket: SocketSet<'static>,
    pub handle: SocketHandle,
    /// The socket's SYN-ACK is paused: it gets ingress only (no egress, no deadline), because
    /// a paused socket reports "transmit now" forever.
    pub parked: bool,
    /// smoltcp's next deadline for the socket (retransmission, delayed ACK, window probe,
    /// TIME-WAIT), as of its last egress; part of the flow's timer.
    pub stack_at: Option<Instant>,
    pub phase: Phase,
    /// The app's initial sequence number (for hand-built RSTs while the SYN-ACK is held).
    pub app_isn: u32,
    /// First bytes read for inspection (replayed upstream), or the DNS-over-TCP stream buffer.
    pub inspect: Vec<u8>,
    /// DNS over TCP: framed answers waiting for room in the send ring.
    pub dns_out: Vec<u8>,
    /// DNS over TCP: questions forwarded upstream and not yet answered or given up on. The
    /// stream is not closed before they are settled, even when the app half-closed first.
    pub dns_asked: u32,
    pub replay_pos: usize,
    /// Deadline of the current phase (app wait, inspection, connect).
    pub deadline: Option<Instant>,
    /// An `AppDataReady` is outstanding (reset when the driver drains everything).
    pub data_notified: bool,
    pub shutdown_sent: bool,
    /// An allowed HTTP CONNECT whose tunnelled bytes are not decided yet (boxed: rare).
    pub tunnel: Option<Box<TunnelCheck>>,
    /// A connect-first flow's (allowed) decision, recorded when the app's ACK completes the
    /// handshake: a spoofed SYN leaves no trace in the history either.
    pub pending_event: Option<Box<crate::api::DecisionEvent>>,
    /// Counted in [`Handshakes`]: the SYN-ACK is out (or will be once unparked)
    /// and the app has not completed the handshake yet.
    pub half_open: bool,
}

/// An allowed HTTP CONNECT: the app's bytes after the CONNECT head are held here, never
/// relayed, until their own name (the inner ClientHello's SNI, or an inner HTTP Host) is read
/// and decided, at most [`crate::EngineConfig::inspect_max_bytes`] or
/// [`crate::EngineConfig::inspect_timeout`] from the first held byte (as for a flow's first
/// bytes: past either the flow is reset, fail closed; bytes that are not TLS or HTTP are reset
/// when the CONNECT's port is client-first, and released on the CONNECT's verdict otherwise,
/// e.g. SSH through a proxy). The proxy's answer (`200 Connection established`) passes to the
/// app meanwhile.
pub(crate) struct TunnelCheck {
    /// The CONNECT's names: an inner name among them was decided already.
    pub target: Vec<String>,
    /// The CONNECT's port is client-first: inner bytes that give no name are refused.
    pub strict: bool,
    /// The app's bytes after the CONNECT head.
    pub held: Vec<u8>,
}

/// What the first bytes of a flow (or of a CONNECT tunnel) said.
pub(crate) struct Found {
    /// The names to decide on (blocked when any is); empty when none was found.
    pub names: Vec<String>,
    pub source: NameSource,
    /// For an HTTP CONNECT: the length of its head, `None` when it did not end within the
    /// inspection limit.
    pub connect: Option<Option<usize>>,
    /// Whether a missing name may be decided by address: a ClientHello without SNI (apps that
    /// connect to an address send none) or an HTTP/1.0 head that ended without a Host (HTTP/1.0
    /// does not require one). An HTTP/1.1 request without one, or whose head did not reach a
    /// Host within the limit, is refused.
    pub no_name_ok: bool,
    /// For an HTTP CONNECT: the target's port (its tunnel is inspected strictly when it is a
    /// client-first port, see `Engine::client_first`).
    pub port: Option<u16>,
}

fn listen_endpoint(dst: SocketAddr) -> IpListenEndpoint {
    IpListenEndpoint {
        addr: Some(dst.ip().into()),
        port: dst.port(),
    }
}

/// Handshakes in flight, bounded so that a SYN flood cannot take the table: parked SYN-ACKs
/// (at most [`crate::budget::MAX_PARKED`]) and half-open flows (at most
/// [`crate::budget::MAX_HALF_OPEN`]).
#[derive(Default)]
pub(crate) struct Handshakes {
    /// TCP flows holding a paused SYN-ACK now. A parked one only ever sees ingress.
    parked: usize,
    /// TCP flows whose SYN-ACK is out and whose app has not ACKed it yet.
    half_open: usize,
    /// Half-open flows, oldest first (may hold ids no longer half-open; skipped lazily).
    order: VecDeque<FlowId>,
}

impl Handshakes {
    /// A flow that was parked and/or half-open ended.
    pub fn ended(&mut self, parked: bool, half_open: bool) {
        if parked {
            self.parked -= 1;
        }
        if half_open {
            self.half_open -= 1;
        }
    }
}

impl Engine {
    fn tcp_mode(&self, dst: SocketAddr) -> Phase {
        if dst.port() == 53 {
            Phase::Dns
        } else if self.client_first(dst.port()) {
            Phase::Inspecting
        } else {
            Phase::Handshake
        }
    }

    /// Whether the client speaks first on `port` with bytes that carry the name (TLS, HTTP,
    /// an HTTP proxy): such a flow is never connected upstream before its name is read.
    pub(crate) fn client_first(&self, port: u16) -> bool {
        INSPECT_PORTS.contains(&port) || self.config.proxy_ports.contains(&port)
    }

    /// A closed socket without rings yet (see `engine::sockets`), alone in its set.
    fn new_socket(&mut self) -> OwnSocket {
        let mut sock = self.sockets.new_socket(&self.config);
        // The engine relays whole writes of the other side: Nagle would only add latency.
        sock.set_nagle_enabled(false);
        // One slot, allocated once: `add` fills it without growing the Vec.
        let mut socket = SocketSet::new(Vec::with_capacity(1));
        let handle = socket.add(sock);
        (socket, handle)
    }

    pub(crate) fn on_tcp(&mut self, packet: &[u8], p: &Parsed) {
        let key = (p.src_sock(), p.dst_sock());
        if let Some(id) = self.table.tcp_flow(&key) {
            self.tcp_ingest(id, packet, p);
            return;
        }
        if p.tcp_flags & TCP_RST != 0 {
            return self.drop_packet(DropReason::NoFlow);
        }
        if p.tcp_flags & (TCP_SYN | TCP_ACK) != TCP_SYN {
            // Not a new connection and no flow: what a closed port answers.
            self.drop_packet(DropReason::NoFlow);
            self.send_rst_for(p);
            return;
        }
        let (src, dst) = key;
        let cached = self.cached_app(Protocol::Tcp, src);
        let ask_app = cached.is_none() && self.config.resolve_apps;
        // Hold the handshake for the app only when the app could change the verdict. DNS over
        // TCP always waits: the questions inside are decided with the stream's app, and which
        // names they ask is not known yet.
        let await_app =
            ask_app && (dst.port() == 53 || self.app_matters(None, dst, Protocol::Tcp, None));
        let app = cached.flatten();
        let id = self.next_flow_id();
        if ask_app && !await_app && self.start_app_wait(id, Protocol::Tcp, src) {
            // Decided without the app, recorded with it: the event waits for the answer.
            self.commands.push_back(Command::ResolveApp {
                flow: id,
                protocol: Protocol::Tcp,
                src,
                dst,
            });
        }
        let mut mode = Phase::AwaitApp;
        let mut pending_event = None;
        if !await_app {
            // Decide by address before allocating anything.
            mode = self.tcp_mode(dst);
            let (decision, event) =
                self.evaluate(id, app.as_deref(), None, dst, Protocol::Tcp, None);
            if decision.is_block() {
                let wait = app.is_none().then_some(id);
                self.record_after_app(wait, event, &decision);
                self.send_rst_for(p);
                return;
            }
            if mode == Phase::Handshake {
                pending_event = Some(Box::new(event));
            }
        }
        let half_open = mode != Phase::AwaitApp;
        if half_open && self.handshakes.half_open >= crate::budget::MAX_HALF_OPEN {
            // The oldest handshake in flight gives way (a spoofed SYN's, as a rule).
            self.drop_oldest_half_open();
        }
        if mode == Phase::AwaitApp && self.handshakes.parked >= crate::budget::MAX_PARKED {
            // Too many handshakes in flight: drop the SYN without allocating; the app
            // retransmits it in a second, when connects have completed.
            return self.drop_packet(DropReason::TableFull);
        }
        if !self.make_room(&app) {
            self.drop_packet(DropReason::TableFull);
            self.send_rst_for(p);
            return;
        }
        let (mut socket, handle) = self.new_socket();
        let sock = socket.get_mut::<tcp::Socket>(handle);
        if sock.listen(listen_endpoint(dst)).is_err() {
            self.sockets.close(&self.config, sock);
            return self.drop_packet(DropReason::Malformed);
        }
        let parked = mode == Phase::AwaitApp;
        sock.pause_synack(parked);
        if parked {
            self.handshakes.parked += 1;
        }
        if half_open {
            self.handshakes.half_open += 1;
        }
        let now = self.now;
        let deadline = match mode {
            Phase::AwaitApp => Some(now + self.config.app_wait),
            Phase::Inspecting => Some(now + self.config.inspect_timeout),
            Phase::Handshake | Phase::Connecting => Some(now + self.config.connect_timeout),
            Phase::Relaying | Phase::Dns => None,
        };
        self.insert_flow(Flow {
            id,
            protocol: Protocol::Tcp,
            src,
            dst,
            app,
            app_pending: await_app,
            last_active: now,
            bytes_from_app: 0,
            bytes_to_app: 0,
            timer_at: None,
            upstream_open: false,
            kind: FlowKind::Tcp(TcpFlow {
                socket,
                handle,
                parked,
                stack_at: None,
                phase: mode,
                app_isn: p.tcp_seq,
                inspect: Vec::new(),
                dns_out: Vec::new(),
                dns_asked: 0,
                replay_pos: 0,
                deadline,
                data_notified: false,
                shutdown_sent: false,
                tunnel: None,
                pending_event,
                half_open,
            }),
        });
        if half_open {
            self.note_half_open(id);
        }
        if await_app {
            self.commands.push_back(Command::ResolveApp {
                flow: id,
                protocol: Protocol::Tcp,
                src,
                dst,
            });
        }
        self.tcp_ingest(id, packet, p);
        // The SYN must have bound the new socket to this app's 4-tuple.
        let bound = self.table.get(&id).is_some_and(|f| match &f.kind {
            FlowKind::Tcp(t) => t.sock().remote_endpoint().map(SocketAddr::from) == Some(src),
            FlowKind::Udp(_) => false,
        });
        if !bound {
            self.drop_packet(DropReason::Malformed);
            self.remove_flow(id);
        }
    }

    /// Feed one segment of a known flow to smoltcp.
    fn tcp_ingest(&mut self, id: FlowId, packet: &[u8], p: &Parsed) {
        let now = self.smol_now();
        let Some(f) = self.table.get_mut(&id) else {
            return;
        };
        let FlowKind::Tcp(t) = &mut f.kind else {
            return;
        };
        f.last_active = self.now;
        let sock = t.socket.get_mut::<tcp::Socket>(t.handle);
        if p.end > p.payload
            && sock.recv_capacity() == 0
            && !self.sockets.take(&self.config, sock, Ring::Rx)
        {
            // Data for a flow holding no receive ring gets one first (the window it advertised
            // stands); past the ring budget the segment is dropped, and the app sends it again.
            self.stats.dropped[DropReason::NoRing as usize] += 1;
            return;
        }
        if p.has_ipv6_extensions() {
            packet::strip_ipv6_extensions(&mut self.scratch, packet, p);
            self.device.set_rx(&self.scratch);
        } else {
            self.device.set_rx(&packet[..p.end]);
        }
        // Only this flow's socket is offered the segment: O(1) whatever the flow count.
        self.iface
            .poll_ingress_single(now, &mut self.device, &mut t.socket);
        self.device.clear_rx();
        self.dirty.push(id);
    }

    /// Run smoltcp's egress for one flow until its socket has nothing more to send now (or the
    /// tunnel queue is full), then file the socket's next deadline in the flow's timer.
    /// Returns whether the socket's state changed (the flow then needs servicing again).
    pub(crate) fn tcp_egress(&mut self, id: FlowId) -> bool {
        let now = self.smol_now();
        let epoch = self.epoch;
        let Some(f) = self.table.get_mut(&id) else {
            return false;
        };
        let FlowKind::Tcp(t) = &mut f.kind else {
            return false;
        };
        if t.parked {
            t.stack_at = None;
            return false;
        }
        let before = t.sock().state();
        // Set again by the device if this flow's egress is refused a transmit token.
        self.device.tx.starved = false;
        // One egress pass sends at most one segment per socket; loop as smoltcp's own `poll`
        // does. Bounded by the socket's data and window, and by the tunnel queue (a full queue
        // refuses the transmit token, which ends the pass with `None`).
        for _ in 0..crate::budget::MAX_QUEUED_PACKETS {
            if self.iface.poll_egress(now, &mut self.device, &mut t.socket) == PollResult::None {
                break;
            }
        }
        t.stack_at = if self.device.tx.starved {
            // Held back by the full queue: egress again once the driver drained it (its
            // deadline is filed then).
            self.starved.push(id);
            if self.starved.len() > 2 * crate::budget::MAX_QUEUED_PACKETS {
                // A driver that does not drain: keep each flow once.
                self.starved.sort_unstable();
                self.starved.dedup();
            }
            None
        } else {
            self.iface
                .poll_at(now, &t.socket)
                .map(|at| instant_of_smol(epoch, at))
        };
        let changed = t.sock().state() != before;
        if file_timer(&self.config, &mut self.timers, id, f) {
            self.compact_timers();
        }
        changed
    }

    /// Remember `id` as half-open, oldest first; stale entries are dropped once they are many.
    fn note_half_open(&mut self, id: FlowId) {
        self.handshakes.order.push_back(id);
        if self.handshakes.order.len() > 2 * self.handshakes.half_open + 64 {
            let table = &self.table;
            self.handshakes.order.retain(|id| {
                table
                    .get(id)
                    .is_some_and(|f| matches!(&f.kind, FlowKind::Tcp(t) if t.half_open))
            });
        }
    }

    /// Forget the oldest half-open flow (see [`crate::budget::MAX_HALF_OPEN`]).
    fn drop_oldest_half_open(&mut self) {
        while let Some(id) = self.handshakes.order.pop_front() {
            let live = self.table.get(&id).is_some_and(|f| match &f.kind {
                FlowKind::Tcp(t) => t.half_open,
                FlowKind::Udp(_) => false,
            });
            if live {
                self.stats.flows_evicted += 1;
                self.remove_flow(id);
                return;
            }
        }
    }

    /// Release a parked socket's SYN-ACK (its egress then runs with the other touched flows).
    fn unpark(&mut self, id: FlowId) {
        let Some(f) = self.table.get_mut(&id) else {
            return;
        };
        let FlowKind::Tcp(t) = &mut f.kind else {
            return;
        };
        if !t.parked {
            return;
        }
        self.handshakes.parked -= 1;
        t.parked = false;
        t.sock_mut().pause_synack(false);
        let newly = !t.half_open;
        if newly {
            // The SYN-ACK leaves now: a handshake in flight until the app's ACK.
            t.half_open = true;
            self.handshakes.half_open += 1;
        }
        self.dirty.push(id);
        if newly {
            self.note_half_open(id);
        }
    }

    /// The app answer arrived (or `app_wait` passed) for a flow holding its SYN-ACK.
    pub(crate) fn tcp_after_app(&mut self, id: FlowId) {
        let Some(f) = self.table.get(&id) else { return };
        let FlowKind::Tcp(t) = &f.kind else { return };
        if t.phase != Phase::AwaitApp {
            return;
        }
        let (app, dst) = (f.app.clone(), f.dst);
        let mode = self.tcp_mode(dst);
        let (decision, event) = self.evaluate(id, app.as_deref(), None, dst, Protocol::Tcp, None);
        if decision.is_block() {
            self.record(event, &decision);
            return self.tcp_abort(id);
        }
        let now = self.now;
        let deadline = match mode {
            Phase::Inspecting => Some(now + self.config.inspect_timeout),
            Phase::Handshake => Some(now + self.config.connect_timeout),
            _ => None,
        };
        if let Some(FlowKind::Tcp(t)) = self.table.get_mut(&id).map(|f| &mut f.kind) {
            t.phase = mode;
            t.deadline = deadline;
            if mode == Phase::Handshake {
                t.pending_event = Some(Box::new(event));
            }
        }
        self.unpark(id);
        self.schedule(id);
    }

    pub(crate) fn tcp_connected(&mut self, id: FlowId) {
        let Some(f) = self.table.get_mut(&id) else {
            return;
        };
        let FlowKind::Tcp(t) = &mut f.kind else {
            return;
        };
        if t.phase != Phase::Connecting {
            return;
        }
        t.phase = Phase::Relaying;
        t.deadline = None;
        f.last_active = self.now;
        self.unpark(id);
        self.dirty.push(id);
    }

    pub(crate) fn tcp_upstream_reset(&mut self, id: FlowId) {
        let Some(f) = self.table.get_mut(&id) else {
            return;
        };
        if !matches!(f.kind, FlowKind::Tcp(_)) {
            return;
        }
        // The driver already dropped its socket.
        f.upstream_open = false;
        self.tcp_abort(id);
    }

    pub(crate) fn tcp_upstream_closed(&mut self, id: FlowId) {
        let Some(f) = self.table.get_mut(&id) else {
            return;
        };
        let FlowKind::Tcp(t) = &mut f.kind else {
            return;
        };
        if t.phase != Phase::Relaying {
            f.upstream_open = false;
            return self.tcp_abort(id);
        }
        // FIN to the app after the bytes already queued.
        t.sock_mut().close();
        self.dirty.push(id);
    }

    pub(crate) fn tcp_deadline(&mut self, id: FlowId) {
        let Some(f) = self.table.get_mut(&id) else {
            return;
        };
        let FlowKind::Tcp(t) = &mut f.kind else {
            return;
        };
        t.deadline = None;
        match t.phase {
            Phase::AwaitApp => {
                f.app_pending = false;
                self.tcp_after_app(id);
            }
            // No name in time: refused (fail closed; a CONNECT head cut short too).
            Phase::Inspecting => {
                self.stats.flows_timed_out += 1;
                if unfinished_connect(&t.inspect) {
                    return self.tcp_abort(id);
                }
                self.tcp_inspection_done(id, None, true);
            }
            // The app never completed the handshake (a spoofed SYN), or the upstream never
            // answered.
            Phase::Handshake | Phase::Connecting => {
                self.stats.flows_timed_out += 1;
                self.tcp_abort(id);
            }
            // No inner name in time: refused too (fail closed).
            Phase::Relaying if t.tunnel.is_some() && !f.app_pending => {
                self.stats.flows_timed_out += 1;
                self.tcp_tunnel_decide(id, None, true);
            }
            Phase::Relaying | Phase::Dns => {}
        }
    }

    /// Reset the app's side now and forget the flow (blocked after inspection, upstream reset,
    /// timeout, eviction). The RST leaves immediately; the socket does not linger.
    pub(crate) fn tcp_abort(&mut self, id: FlowId) {
        let Some(f) = self.table.get(&id) else { return };
        let FlowKind::Tcp(t) = &f.kind else { return };
        if t.parked {
            // SYN-RECEIVED with the SYN-ACK never sent: the RST acknowledges the app's SYN.
            let (src, dst, isn) = (f.src, f.dst, t.app_isn);
            self.stats.rst_sent += 1;
            self.emit_packet(|b| {
                packet::write_rst(b, dst, src, 0, isn.wrapping_add(1), TCP_RST | TCP_ACK)
            });
        } else {
            let now = self.smol_now();
            let Some(FlowKind::Tcp(t)) = self.table.get_mut(&id).map(|f| &mut f.kind) else {
                return;
            };
            // Let smoltcp write the RST with its own sequence numbers.
            t.sock_mut().abort();
            self.iface.poll_egress(now, &mut self.device, &mut t.socket);
            self.stats.rst_sent += 1;
        }
        self.remove_flow(id);
    }

    /// Decide a flow on every name its bytes gave (blocked when any is): the decision and event
    /// of the first blocked name, else of the first name; by address when there is none.
    fn evaluate_names(
        &mut self,
        id: FlowId,
        app: Option<&str>,
        names: &[String],
        source: NameSource,
        dst: SocketAddr,
    ) -> (embargo_policy::Decision, crate::api::DecisionEvent) {
        let mut first = None;
        for name in names {
            let (decision, event) =
                self.evaluate(id, app, Some((name, source)), dst, Protocol::Tcp, None);
            if decision.is_block() {
                return (decision, event);
            }
            first.get_or_insert((decision, event));
        }
        match first {
            Some(found) => found,
            None => self.evaluate(id, app, None, dst, Protocol::Tcp, None),
        }
    }

    /// The inspection finished with `found` (or nothing): decide, then connect or reset.
    /// `refuse`: no name could be read where the protocol must carry one (not the protocol,
    /// cut short, over the byte limit or out of time): the flow is refused unless its address
    /// decision is a block anyway or an explicit allow (see `fail_closed`).
    fn tcp_inspection_done(&mut self, id: FlowId, found: Option<Found>, refuse: bool) {
        let Some(f) = self.table.get(&id) else { return };
        if f.app_pending {
            // Found blocked and held for its app: `finish_app_wait` decides it again from
            // the bytes it holds. Neither more bytes nor the inspection deadline (which would
            // decide by address alone, forgetting the name) may decide it first.
            return;
        }
        let (app, dst) = (f.app.clone(), f.dst);
        let (names, source, connect, port) = match found {
            Some(found) => (found.names, found.source, found.connect, found.port),
            None => (Vec::new(), NameSource::DnsAnswer, None, None),
        };
        let (mut decision, mut event) =
            self.evaluate_names(id, app.as_deref(), &names, source, dst);
        if refuse {
            super::fail_closed(&mut decision, &mut event, UNREADABLE);
        }
        let wait = app.is_none().then_some(id);
        if !refuse && decision.is_block() && wait.is_some_and(|id| self.apps.is_waiting(id)) {
            // The app's name is still being looked up, and the RST would end the process
            // before the lookup finds its socket: keep the bytes and decide again when the
            // answer comes or the wait ends (`finish_app_wait` services the flow; nothing
            // reaches the network meanwhile, and the wait is `app_wait` at most).
            if let Some(f) = self.table.get_mut(&id) {
                f.app_pending = true;
            }
            return;
        }
        // Decided without the app when none could change the verdict: the event still waits
        // for the app's name (the answer asked for at the SYN is usually in by now).
        self.record_after_app(wait, event, &decision);
        // A blocked CONNECT is reset before the proxy is asked, as any blocked flow: apps
        // treat a reset as a failed connection and fail fast, where a 403 could be retried.
        if decision.is_block() {
            return self.tcp_abort(id);
        }
        let connect_deadline = self.now + self.config.connect_timeout;
        let strict = port.is_none_or(|p| self.client_first(p));
        let mut held = 0;
        if let Some(f) = self.table.get_mut(&id) {
            if let FlowKind::Tcp(t) = &mut f.kind {
                t.phase = Phase::Connecting;
                t.deadline = Some(connect_deadline);
                if let Some(head) = connect.flatten() {
                    // Only the CONNECT head is replayed; what follows it waits for its name.
                    let rest = t.inspect.get(head..).unwrap_or_default().to_vec();
                    t.inspect.truncate(head);
                    held = rest.capacity();
                    t.tunnel = Some(Box::new(TunnelCheck {
                        target: names,
                        strict,
                        held: rest,
                    }));
                }
            }
            f.upstream_open = true;
        }
        self.sockets.hold(held);
        self.commands.push_back(Command::Connect { flow: id, dst });
        self.schedule(id);
    }

    /// The tunnel of an allowed CONNECT said `found` (or nothing: not TLS or HTTP, or its
    /// bytes ran out of time or room): decide its inner name, then release the held bytes or
    /// reset the flow. `timed_out`: no name in time, refused whatever the CONNECT's port.
    fn tcp_tunnel_decide(&mut self, id: FlowId, found: Option<Found>, timed_out: bool) {
        let Some(f) = self.table.get(&id) else { return };
        let FlowKind::Tcp(t) = &f.kind else { return };
        let Some(tunnel) = &t.tunnel else { return };
        let (app, dst) = (f.app.clone(), f.dst);
        let strict = tunnel.strict;
        if connect_cut_short(found.as_ref(), &tunnel.held) {
            // Another CONNECT (after a 407, the proxy asked for credentials) cut short.
            return self.tcp_abort(id);
        }
        // Fail closed: nothing readable in time, or (to a client-first port) bytes that are
        // not TLS or HTTP or name nothing where the protocol must.
        let unreadable = match &found {
            None => timed_out || strict,
            Some(found) => strict && found.names.is_empty() && !found.no_name_ok,
        };
        let (names, source, connect, port) = match found {
            Some(found) => (found.names, found.source, found.connect, found.port),
            None => (Vec::new(), NameSource::TlsSni, None, None),
        };
        // The CONNECT's own names were decided (allowed) already.
        let new: Vec<String> = names
            .iter()
            .filter(|n| !tunnel.target.contains(n))
            .cloned()
            .collect();
        if unreadable {
            let (mut decision, mut event) =
                self.evaluate_names(id, app.as_deref(), &[], NameSource::TlsSni, dst);
            super::fail_closed(&mut decision, &mut event, UNREADABLE);
            let wait = app.is_none().then_some(id);
            self.record_after_app(wait, event, &decision);
            if decision.is_block() {
                return self.tcp_abort(id);
            }
        }
        if !new.is_empty() {
            let (decision, event) = self.evaluate_names(id, app.as_deref(), &new, source, dst);
            let wait = app.is_none().then_some(id);
            if decision.is_block() && wait.is_some_and(|id| self.apps.is_waiting(id)) {
                // Held for the app's name, as a flow's first bytes are (`tcp_inspection_done`).
                if let Some(f) = self.table.get_mut(&id) {
                    f.app_pending = true;
                }
                return;
            }
            self.record_after_app(wait, event, &decision);
            if decision.is_block() {
                // The upstream is closed with none of the held bytes sent.
                return self.tcp_abort(id);
            }
        }
        // A CONNECT again (the first was refused, e.g. `407 Proxy Authentication Required`):
        // its head goes, and the bytes after it are held for their own name in turn.
        let strict = port.is_none_or(|p| self.client_first(p));
        self.tcp_tunnel_release(id, connect.flatten().map(|head| (head, names, strict)));
    }

    /// The tunnel's name is allowed: its held bytes go upstream after what is already queued
    /// for replay; all of them, or only a new CONNECT's head (`head` bytes) when `again` says
    /// so, the rest staying held for the names of that CONNECT.
    fn tcp_tunnel_release(&mut self, id: FlowId, again: Option<(usize, Vec<String>, bool)>) {
        let Some(FlowKind::Tcp(t)) = self.table.get_mut(&id).map(|f| &mut f.kind) else {
            return;
        };
        let Some(mut tunnel) = t.tunnel.take() else {
            return;
        };
        self.sockets
            .release(t.inspect.capacity() + tunnel.held.capacity());
        let rest = match &again {
            Some((head, _, _)) => tunnel.held.split_off((*head).min(tunnel.held.len())),
            None => Vec::new(),
        };
        if t.replay_pos >= t.inspect.len() {
            t.inspect = tunnel.held;
            t.replay_pos = 0;
        } else {
            t.inspect.extend_from_slice(&tunnel.held);
        }
        if t.inspect.is_empty() {
            t.inspect = Vec::new();
        }
        self.sockets.hold(t.inspect.capacity());
        t.deadline = None;
        if let Some((_, target, strict)) = again {
            self.sockets.hold(rest.capacity());
            t.tunnel = Some(Box::new(TunnelCheck {
                target,
                strict,
                held: rest,
            }));
        }
        self.dirty.push(id);
    }

    /// Service `id` again once the inspection pool has room (see `SocketBudget::wait_for_room`).
    fn wait_for_inspect_room(&mut self, id: FlowId) {
        self.sockets.wait_for_room(id, self.table.len());
    }

    /// Look at a flow after smoltcp or the driver touched it.
    pub(crate) fn service_tcp(&mut self, id: FlowId) {
        let Some(f) = self.table.get_mut(&id) else {
            return;
        };
        let app_pending = f.app_pending;
        let FlowKind::Tcp(t) = &mut f.kind else {
            return;
        };
        let sock = t.socket.get_mut::<tcp::Socket>(t.handle);
        let state = sock.state();
        // The app reset (back to LISTEN from SYN-RECEIVED, or CLOSED).
        if matches!(state, tcp::State::Listen | tcp::State::Closed) {
            self.remove_flow(id);
            return;
        }
        if t.half_open && state != tcp::State::SynReceived {
            t.half_open = false;
            self.handshakes.half_open -= 1;
        }
        if sock.recv_queue() == 0 {
            // Nothing from the app waits (read out, relayed, or never sent): no receive ring,
            // whatever the phase; its window stays advertised.
            self.sockets.give_back(&self.config, sock, Ring::Rx);
        }
        match t.phase {
            Phase::AwaitApp | Phase::Connecting => {}
            Phase::Handshake => {
                if matches!(state, tcp::State::SynReceived) {
                    return;
                }
                // The app's ACK completed the handshake: a real app, not a spoofed source.
                // Now the upstream is asked for; the app's bytes wait in the ring meanwhile.
                t.phase = Phase::Connecting;
                t.deadline = Some(self.now + self.config.connect_timeout);
                let event = t.pending_event.take();
                f.upstream_open = true;
                let (dst, wait) = (f.dst, f.app.is_none().then_some(id));
                self.commands.push_back(Command::Connect { flow: id, dst });
                self.schedule(id);
                if let Some(event) = event {
                    let decision = event.decision.clone();
                    self.record_after_app(wait, *event, &decision);
                }
            }
            Phase::Inspecting => {
                let cap = self.config.inspect_max_bytes;
                let before = t.inspect.capacity();
                // A full pool: read nothing more now (the bytes wait in the socket's ring).
                let pool_full = self.sockets.inspect_full();
                if !pool_full {
                    recv_capped(sock, &mut t.inspect, cap);
                }
                self.sockets.resize(before, t.inspect.capacity());
                if sock.recv_queue() == 0 {
                    // Read out: the ring goes back while the name is decided and connected.
                    self.sockets.give_back(&self.config, sock, Ring::Rx);
                }
                let app_done = fin_received(state);
                if t.inspect.is_empty() && !app_done {
                    return;
                }
                let over = t.inspect.len() >= cap;
                let found = sniff(&t.inspect);
                match found {
                    Sniff::NeedMore if !app_done && !over => {
                        if pool_full || sock.recv_queue() > 0 {
                            // Waits for room in the pool (not refused for others' load).
                            self.wait_for_inspect_room(id);
                        }
                    }
                    Sniff::Done(found) if found.connect != Some(None) => {
                        // A name, or none where none is required (by address); none where
                        // one is required is refused.
                        let refuse = found.names.is_empty() && !found.no_name_ok;
                        self.tcp_inspection_done(id, Some(found), refuse);
                    }
                    // A CONNECT whose head does not end within the limit, or that the app
                    // gave up on: where the tunnel starts is unknown, so nothing is relayed.
                    _ if unfinished_connect(&t.inspect) => self.tcp_abort(id),
                    // Not TLS or HTTP, cut short by the app, or over the limit: refused.
                    _ => self.tcp_inspection_done(id, None, true),
                }
            }
            Phase::Relaying if t.tunnel.is_some() => {
                // The tunnel of an allowed CONNECT: hold the app's bytes until their name is
                // decided (the proxy's answer still flows to the app meanwhile).
                if t.replay_pos < t.inspect.len() && !t.data_notified {
                    // The CONNECT head goes first.
                    t.data_notified = true;
                    self.commands.push_back(Command::AppDataReady { flow: id });
                }
                let Some(tunnel) = t.tunnel.as_deref_mut() else {
                    return;
                };
                let cap = self.config.inspect_max_bytes;
                let before = tunnel.held.capacity();
                let pool_full = self.sockets.inspect_full();
                if !pool_full {
                    recv_capped(sock, &mut tunnel.held, cap);
                }
                self.sockets.resize(before, tunnel.held.capacity());
                let app_done = fin_received(state);
                if (tunnel.held.is_empty() && !app_done) || app_pending {
                    // Nothing sent into the tunnel yet (the app waits for the proxy's answer),
                    // or held for the app's name (`finish_app_wait` services the flow again).
                    return;
                }
                let over = tunnel.held.len() >= cap;
                let waiting = pool_full || sock.recv_queue() > 0;
                match sniff(&tunnel.held) {
                    Sniff::NeedMore if !app_done && !over => {
                        if t.deadline.is_none() {
                            t.deadline = Some(self.now + self.config.inspect_timeout);
                            self.schedule(id);
                        }
                        if waiting {
                            self.wait_for_inspect_room(id);
                        }
                    }
                    Sniff::Done(found) => self.tcp_tunnel_decide(id, Some(found), false),
                    _ => self.tcp_tunnel_decide(id, None, false),
                }
            }
            Phase::Relaying => {
                let replay_left = t.replay_pos < t.inspect.len();
                let queued = sock.recv_queue() > 0;
                if queued && sock.recv_queue() == sock.recv_capacity() {
                    // The app filled its ring (more than the upstream took meanwhile): a
                    // bulk sender gets a larger window, advertised by this pass's egress.
                    self.sockets.grow(&self.config, sock, Ring::Rx);
                }
                // An idle connection holds no send ring: the app has every byte sent to it.
                self.sockets.give_back(&self.config, sock, Ring::Tx);
                if matches!(state, tcp::State::TimeWait) && !queued && !replay_left {
                    self.remove_flow(id);
                    return;
                }
                if (queued || replay_left) && !t.data_notified {
                    t.data_notified = true;
                    self.commands.push_back(Command::AppDataReady { flow: id });
                } else if !queued && !replay_left && !t.shutdown_sent && fin_received(state) {
                    t.shutdown_sent = true;
                    self.commands.push_back(Command::Shutdown { flow: id });
                }
            }
            Phase::Dns => self.tcp_dns_service(id),
        }
    }

    /// DNS over TCP: read length-prefixed queries and answer each (locally or via upstream).
    fn tcp_dns_service(&mut self, id: FlowId) {
        let mut queries: Vec<Vec<u8>> = Vec::new();
        let (src, dst, finished, stuck) = {
            let Some(f) = self.table.get_mut(&id) else {
                return;
            };
            let FlowKind::Tcp(t) = &mut f.kind else {
                return;
            };
            let sock = t.socket.get_mut::<tcp::Socket>(t.handle);
            let before = t.inspect.capacity() + t.dns_out.capacity();
            flush_dns_out(&mut self.sockets, &self.config, sock, &mut t.dns_out);
            recv_capped(sock, &mut t.inspect, MAX_TCP_DNS_QUERY + 2);
            loop {
                if t.inspect.len() < 2 {
                    break;
                }
                let len = usize::from(u16::from_be_bytes([t.inspect[0], t.inspect[1]]));
                if t.inspect.len() < 2 + len {
                    break;
                }
                queries.push(t.inspect[2..2 + len].to_vec());
                t.inspect.drain(..2 + len);
            }
            if t.dns_out.is_empty() && t.dns_out.capacity() > 0 {
                t.dns_out = Vec::new();
            }
            self.sockets
                .resize(before, t.inspect.capacity() + t.dns_out.capacity());
            f.bytes_from_app += queries.iter().map(|q| q.len() as u64 + 2).sum::<u64>();
            (
                f.src,
                f.dst,
                matches!(sock.state(), tcp::State::TimeWait | tcp::State::Closed),
                t.inspect.len() >= MAX_TCP_DNS_QUERY + 2,
            )
        };
        for q in queries {
            self.dns_query(src, dst, &q, Some(id));
        }
        if finished {
            self.remove_flow(id);
            return;
        }
        // Once the questions are out (or answered here): the app is done asking (or sent
        // garbage), and every answer has come and left, so finish.
        if let Some(FlowKind::Tcp(t)) = self.table.get_mut(&id).map(|f| &mut f.kind) {
            let settled = t.dns_out.is_empty() && t.dns_asked == 0;
            let sock = t.sock_mut();
            if stuck || (fin_received(sock.state()) && settled) {
                sock.close();
            }
        }
    }

    /// A question of DNS-over-TCP flow `flow` went upstream (`asked`), or its answer came or it
    /// expired: the flow closes only once every question is settled.
    pub(crate) fn tcp_dns_outstanding(&mut self, flow: FlowId, asked: bool) {
        let Some(FlowKind::Tcp(t)) = self.table.get_mut(&flow).map(|f| &mut f.kind) else {
            return;
        };
        if asked {
            t.dns_asked += 1;
        } else {
            t.dns_asked = t.dns_asked.saturating_sub(1);
            // Serviced again: a half-closed stream may be done now.
            self.dirty.push(flow);
        }
    }

    /// Write one DNS answer (length-prefixed) to a DNS-over-TCP flow.
    pub(crate) fn tcp_dns_reply(&mut self, id: FlowId, answer: &[u8]) {
        let Some(f) = self.table.get_mut(&id) else {
            return;
        };
        let FlowKind::Tcp(t) = &mut f.kind else {
            return;
        };
        if t.parked {
            return;
        }
        let Ok(len) = u16::try_from(answer.len()) else {
            return;
        };
        let framed = answer.len() + 2;
        if t.dns_out.len() + framed > MAX_TCP_DNS_PENDING || !self.sockets.inspect_room(framed) {
            return; // no room: the app will time out and retry, as after a lost answer
        }
        // Behind the answers already waiting, so that none is cut by another.
        let before = t.dns_out.capacity();
        t.dns_out.extend_from_slice(&len.to_be_bytes());
        t.dns_out.extend_from_slice(answer);
        let sock = t.socket.get_mut::<tcp::Socket>(t.handle);
        flush_dns_out(&mut self.sockets, &self.config, sock, &mut t.dns_out);
        self.sockets.resize(before, t.dns_out.capacity());
        f.bytes_to_app += framed as u64;
        self.dirty.push(id);
    }

    fn relaying_flow(table: &mut FlowTable, flow: FlowId) -> Option<&mut Flow> {
        let f = table.get_mut(&flow)?;
        let FlowKind::Tcp(t) = &f.kind else {
            return None;
        };
        if t.phase != Phase::Relaying || t.parked {
            return None;
        }
        Some(f)
    }

    /// How many bytes from the server the engine can take for `flow` right now (what the driver
    /// should read from the host socket at most). 0 for unknown flows.
    pub fn upstream_window(&self, flow: FlowId) -> usize {
        let Some(f) = self.table.get(&flow) else {
            return 0;
        };
        let FlowKind::Tcp(t) = &f.kind else { return 0 };
        if t.phase != Phase::Relaying || t.parked {
            return 0;
        }
        let sock = t.sock();
        if !sock.may_send() {
            return 0;
        }
        if sock.send_capacity() == 0 {
            // No ring yet (or given back while idle): one comes with the bytes.
            return if self.sockets.tx_room(&self.config) {
                self.config.tcp_small_tx
            } else {
                0
            };
        }
        sock.send_capacity() - sock.send_queue()
    }

    /// Bytes the server sent on `flow`; returns how many were taken (at most
    /// [`Engine::upstream_window`]). Prefer [`Engine::recv_upstream_with`], which lets the driver
    /// read straight into the stack's buffer.
    pub fn write_upstream_data(&mut self, now: Instant, flow: FlowId, data: &[u8]) -> usize {
        self.recv_upstream_with(now, flow, |buf| {
            let n = buf.len().min(data.len());
            buf[..n].copy_from_slice(&data[..n]);
            Ok::<usize, ()>(n)
        })
        .and_then(Result::ok)
        .unwrap_or(0)
    }

    /// Zero-copy variant of [`Engine::write_upstream_data`]: `read` is called with the free
    /// part of the flow's send buffer (e.g. `|buf| socket.read(buf)`) and returns how many bytes
    /// it filled. Returns `read`'s result, or `None` when the flow is unknown or has no room
    /// (then `read` is not called). Call again while it returns `Some(Ok(n))` with `n > 0`: the
    /// free space may wrap around the ring.
    pub fn recv_upstream_with<F, E>(
        &mut self,
        now: Instant,
        flow: FlowId,
        read: F,
    ) -> Option<Result<usize, E>>
    where
        F: FnOnce(&mut [u8]) -> Result<usize, E>,
    {
        if now > self.now {
            self.now = now;
        }
        let t_now = self.now;
        let f = Self::relaying_flow(&mut self.table, flow)?;
        let FlowKind::Tcp(t) = &mut f.kind else {
            return None;
        };
        let sock = t.socket.get_mut::<tcp::Socket>(t.handle);
        if sock.may_send() && sock.send_capacity() == 0 {
            // The server's first bytes since the flow started or went idle (past the ring
            // budget: none, and the driver tries again after the tunnel's next packets).
            self.sockets.take(&self.config, sock, Ring::Tx);
        }
        if !sock.may_send() || sock.send_capacity() == sock.send_queue() {
            return None;
        }
        let r = sock
            .send(|buf| {
                let len = buf.len();
                taken(read(buf), len)
            })
            .ok()?;
        if let Ok(n) = &r {
            f.bytes_to_app += *n as u64;
            f.last_active = t_now;
        }
        if sock.send_queue() == sock.send_capacity() {
            // The server keeps the ring full (a download): the driver's next read finds room.
            self.sockets.grow(&self.config, sock, Ring::Tx);
        }
        self.dirty.push(flow);
        Some(r)
    }

    /// Bytes the app sent on `flow`, for the upstream socket: `write` is called with the next
    /// contiguous bytes (e.g. `|buf| socket.write(buf)`) and returns how many it took; the rest
    /// stays in the engine (and its window closes: backpressure to the app). Returns `write`'s
    /// result, or `None` when nothing is waiting. Call until it returns `None`, `Some(Ok(0))` or
    /// an error. The inspected first bytes come first.
    pub fn read_app_data<F, E>(
        &mut self,
        now: Instant,
        flow: FlowId,
        write: F,
    ) -> Option<Result<usize, E>>
    where
        F: FnOnce(&[u8]) -> Result<usize, E>,
    {
        if now > self.now {
            self.now = now;
        }
        let t_now = self.now;
        let f = Self::relaying_flow(&mut self.table, flow)?;
        f.last_active = t_now;
        let FlowKind::Tcp(t) = &mut f.kind else {
            return None;
        };
        if t.replay_pos < t.inspect.len() {
            let rest = &t.inspect[t.replay_pos..];
            let r = write(rest);
            if let Ok(n) = &r {
                let n = (*n).min(rest.len());
                t.replay_pos += n;
                f.bytes_from_app += n as u64;
                if t.replay_pos >= t.inspect.len() {
                    self.sockets.release(t.inspect.capacity());
                    t.inspect = Vec::new();
                    t.replay_pos = 0;
                }
            }
            return Some(r);
        }
        let sock = t.socket.get_mut::<tcp::Socket>(t.handle);
        if t.tunnel.is_some() || sock.recv_queue() == 0 {
            // Nothing more, or the tunnel's bytes are held until their name is decided (the
            // release marks the flow dirty, and servicing notifies the driver again).
            t.data_notified = false;
            self.dirty.push(flow);
            return None;
        }
        let r = sock
            .recv(|buf| {
                let len = buf.len();
                taken(write(buf), len)
            })
            .ok()?;
        if let Ok(n) = &r {
            f.bytes_from_app += *n as u64;
        }
        // The window opened: tell the app soon.
        self.dirty.push(flow);
        Some(r)
    }
}

impl TcpFlow {
    /// The flow's socket.
    pub(crate) fn sock(&self) -> &tcp::Socket<'static> {
        self.socket.get::<tcp::Socket>(self.handle)
    }

    /// The flow's socket, mutable.
    pub(crate) fn sock_mut(&mut self) -> &mut tcp::Socket<'static> {
        self.socket.get_mut::<tcp::Socket>(self.handle)
    }
}

/// `t` on the engine's clock (`epoch` is the engine's smoltcp time zero).
fn instant_of_smol(epoch: Instant, t: smoltcp::time::Instant) -> Instant {
    epoch + std::time::Duration::from_micros(u64::try_from(t.total_micros()).unwrap_or(0))
}

/// What a driver's IO callback did with a smoltcp ring slice of `len` bytes, as smoltcp's
/// `send`/`recv` closures must report it: the bytes taken, and the callback's result. A callback
/// that claims more than it was given is clamped (smoltcp would panic on it), and a failed one
/// took nothing.
fn taken<E>(result: Result<usize, E>, len: usize) -> (usize, Result<usize, E>) {
    let result = result.map(|n| n.min(len));
    (*result.as_ref().unwrap_or(&0), result)
}

/// Whether the app sent its FIN (the receive half is finished).
/// Moves as much of `pending` (framed DNS answers) into the send ring as fits.
fn flush_dns_out(
    sockets: &mut super::sockets::SocketBudget,
    config: &crate::EngineConfig,
    sock: &mut tcp::Socket<'static>,
    pending: &mut Vec<u8>,
) {
    if pending.is_empty() {
        return;
    }
    if sock.send_capacity() == 0 {
        sockets.take(config, sock, Ring::Tx);
    }
    if let Ok(n) = sock.send_slice(pending) {
        pending.drain(..n);
    }
}

/// Moves what the app sent from the socket's receive ring into `buf`, up to `cap` bytes in all.
fn recv_capped(sock: &mut tcp::Socket, buf: &mut Vec<u8>, cap: usize) {
    while buf.len() < cap && sock.recv_queue() > 0 {
        let room = cap - buf.len();
        let got = sock.recv(|data| {
            let n = data.len().min(room);
            buf.extend_from_slice(&data[..n]);
            (n, n)
        });
        if !matches!(got, Ok(n) if n > 0) {
            break;
        }
    }
}

fn fin_received(state: tcp::State) -> bool {
    matches!(
        state,
        tcp::State::CloseWait | tcp::State::LastAck | tcp::State::Closing | tcp::State::TimeWait
    )
}

/// Run the inspectors on the first bytes of a flow.
fn sniff(buf: &[u8]) -> Sniff<Found> {
    match buf.first() {
        None => Sniff::NeedMore,
        // A TLS handshake record.
        Some(0x16) => tls::client_hello_sni(buf).map(|n| Found {
            names: n.into_iter().collect(),
            source: NameSource::TlsSni,
            connect: None,
            no_name_ok: true,
            port: None,
        }),
        Some(_) => http::request(buf).map(|r| Found {
            names: r.names().map(str::to_owned).collect(),
            source: NameSource::HttpHost,
            connect: r.is_connect().then_some(r.head_len),
            no_name_ok: r.head_len.is_some() && r.minor_version == 0 && !r.is_connect(),
            port: r
                .is_connect()
                .then(|| r.target.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
                .flatten(),
        }),
    }
}

/// Whether the tunnel's bytes are another CONNECT cut short (its head did not end).
fn connect_cut_short(found: Option<&Found>, held: &[u8]) -> bool {
    match found {
        Some(found) => found.connect == Some(None),
        None => unfinished_connect(held),
    }
}

/// Whether `buf` starts an HTTP CONNECT whose head did not end: it cannot be relayed, since
/// the tunnel's bytes cannot be told from the head's.
fn unfinished_connect(buf: &[u8]) -> bool {
    buf.starts_with(b"CONNECT ")
        && !matches!(http::request(buf), Sniff::Done(r) if r.head_len.is_some())
}
