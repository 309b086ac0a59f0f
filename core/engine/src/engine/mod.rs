//! The engine: the one public state machine, its flow table and timers.
//!
//! Split by concern: [`tcp`] (smoltcp-terminated connections, inspection, relay), [`udp`] (NAT,
//! QUIC sniffing, block actions), [`dns`] (questions to port 53, upstream answers, TCP DNS),
//! [`app`] (waiting for a flow's app). Each module owns its part of the engine's state:
//! [`table::FlowTable`] (the flows), [`tcp::Handshakes`], [`dns::DnsState`], [`app::AppWaits`]
//! and [`sockets::SocketBudget`]; what stays here is what every part shares (time, the
//! smoltcp interface and tunnel queue, the timer heap, the driver's command and event queues).

mod app;
mod dns;
mod sockets;
mod table;
mod tcp;
mod udp;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use embargo_policy::{Certainty, Decision, NameSource, Protocol, Query, Reason, RuleRef, Verdict};
use smoltcp::iface::{Config, Interface};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

use crate::api::{
    Command, Decide, DecisionEvent, DropReason, EngineStats, Event, FlowId, UpstreamEvent,
};
use crate::budget;
use crate::config::EngineConfig;
use crate::device::QueueDevice;
use crate::packet::{self, Parsed};

use self::app::AppWaits;
use self::dns::DnsState;
use self::sockets::SocketBudget;
pub(crate) use self::table::FlowMap;
use self::table::FlowTable;
use self::tcp::{Handshakes, TcpFlow};
use self::udp::UdpFlow;

/// The interface's own (dummy) addresses: the gateway of the any-IP default routes. Nothing is
/// ever sent to them; they only make smoltcp accept packets for every destination.
const OWN_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 255, 254);
const OWN_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xe3b, 0, 0, 0, 0, 0, 1);

/// Flows active within this long get a second chance when the table is full.
const RECENTLY_ACTIVE: Duration = Duration::from_secs(10);
/// Events kept for a driver that does not drain them (oldest dropped beyond).
const MAX_QUEUED_EVENTS: usize = 4096;

/// Whether the engine's own encrypted-DNS rule refuses this endpoint, when
/// [`EngineConfig::block_encrypted_dns`] is set: port 853 (DNS over TLS/QUIC), a known DoH name
/// or its subdomain ([`crate::dns::doh`], the one list), or a known DoH anycast address on the
/// ports DoH and DoT use (`addr` is `None` for DNS questions, which are about the name only).
fn engine_rule(
    config: &EngineConfig,
    name: Option<&str>,
    addr: Option<std::net::IpAddr>,
    port: u16,
) -> Option<&'static str> {
    if !config.block_encrypted_dns {
        return None;
    }
    if crate::dns::is_dot_port(port) {
        return Some("port 853 (DNS over TLS)");
    }
    if name.is_some_and(crate::dns::is_known_doh_name) {
        return Some("known DNS-over-HTTPS endpoint");
    }
    if port == 443 && addr.is_some_and(crate::dns::is_known_doh_addr) {
        return Some("known DNS-over-HTTPS address");
    }
    None
}

/// A block by the engine itself, reported with list `engine` and `rule` as its text.
pub(crate) fn engine_block(rule: &'static str) -> Decision {
    Decision {
        verdict: Verdict::Block,
        reason: Reason::AddressRule {
            rule: RuleRef {
                list: "engine".into(),
                line: 0,
                rule: rule.into(),
            },
        },
        // The engine's own rule (encrypted DNS, unreadable first bytes), not a list's.
        intent: None,
        owner: None,
        country: None,
        certainty: Certainty::Certain,
        category: None,
    }
}

/// Fail closed: a flow whose name could not be read where the protocol must carry one is
/// blocked, unless its address is blocked anyway (that decision stands) or the user allowed it
/// explicitly (blocking off for the app, an allowlist entry, an allow override), which no name
/// could have changed.
pub(crate) fn fail_closed(decision: &mut Decision, event: &mut DecisionEvent, why: &'static str) {
    let explicit = matches!(
        decision.reason,
        Reason::AppBlockingOff | Reason::Allowlisted { .. } | Reason::AppOverride { .. }
    );
    if decision.is_block() || explicit {
        return;
    }
    *decision = engine_block(why);
    event.decision = decision.clone();
}

/// When a flow's timer must fire next: idle expiry, its phase deadline, smoltcp's deadline.
fn flow_due(config: &EngineConfig, f: &Flow) -> Instant {
    let idle = match f.kind {
        FlowKind::Tcp(_) => config.tcp_idle_timeout,
        FlowKind::Udp(_) => config.udp_idle_timeout,
    };
    let mut due = f.last_active + idle;
    let (phase, stack) = match &f.kind {
        FlowKind::Tcp(t) => (t.deadline, t.stack_at),
        FlowKind::Udp(u) => (u.deadline, None),
    };
    for at in [phase, stack].into_iter().flatten() {
        due = due.min(at);
    }
    due
}

/// Every flow's next deadline, earliest first; entries whose time differs from the flow's
/// `timer_at` are superseded and skipped.
type Timers = BinaryHeap<Reverse<(Instant, FlowId)>>;

/// File flow `id`'s timer if its due time moved earlier than its current entry; returns
/// whether an entry was pushed (the caller then calls `Engine::compact_timers`). A due time
/// that moved later keeps the earlier entry, fixed by `Engine::settle_timers` or when it fires.
fn file_timer(config: &EngineConfig, timers: &mut Timers, id: FlowId, f: &mut Flow) -> bool {
    let due = flow_due(config, f);
    if f.timer_at.is_some_and(|t| t <= due) {
        return false;
    }
    f.timer_at = Some(due);
    timers.push(Reverse((due, id)));
    true
}

/// Per-flow record shared by TCP and UDP.
pub(crate) struct Flow {
    pub id: FlowId,
    pub protocol: Protocol,
    /// The app's address and the destination it asked for.
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub app: Option<String>,
    /// The app answer is still awaited (until `app_deadline`).
    pub app_pending: bool,
    pub last_active: Instant,
    pub bytes_from_app: u64,
    pub bytes_to_app: u64,
    /// The time this flow's entry in the timer heap is for (older entries are stale).
    pub timer_at: Option<Instant>,
    /// An upstream socket exists at the driver (Connect or SendDatagram was sent).
    pub upstream_open: bool,
    pub kind: FlowKind,
}

pub(crate) enum FlowKind {
    Tcp(TcpFlow),
    Udp(UdpFlow),
}

/// The sans-IO tunnel engine. See the crate documentation for the architecture and the driver
/// loop that runs it.
pub struct Engine {
    config: EngineConfig,
    policy: Arc<dyn Decide>,
    epoch: Instant,
    now: Instant,
    iface: Interface,
    device: QueueDevice,
    table: FlowTable,
    handshakes: Handshakes,
    dns: DnsState,
    apps: AppWaits,
    sockets: SocketBudget,
    commands: VecDeque<Command>,
    events: VecDeque<Event>,
    events_dropped: u64,
    timers: Timers,
    /// Flows touched since the last service pass: serviced, then given smoltcp egress.
    dirty: Vec<FlowId>,
    /// Flows whose egress stopped at a full tunnel queue (made dirty again once it drains).
    starved: Vec<FlowId>,
    rng: u64,
    scratch: Vec<u8>,
    /// UDP datagrams arriving as IP fragments, being joined.
    frags: crate::reassembly::Reassembly,
    stats: EngineStats,
}

impl Engine {
    /// A new engine. `now` is the driver's clock at start (later `now`s must not go back).
    pub fn new(config: EngineConfig, policy: Arc<dyn Decide>, now: Instant) -> Self {
        let mut device = QueueDevice::new(config.mtu, budget::MAX_QUEUED_PACKETS);
        let mut iface_config = Config::new(HardwareAddress::Ip);
        iface_config.random_seed = config.random_seed;
        let mut iface = Interface::new(iface_config, &mut device, smoltcp::time::Instant::ZERO);
        iface.update_ip_addrs(|addrs| {
            // Capacity is at least 2 with the default features; a failed push would only
            // lose one family, which the routes below would then also lack.
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(OWN_V4), 32));
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv6(OWN_V6), 128));
        });
        let _ = iface.routes_mut().add_default_ipv4_route(OWN_V4);
        let _ = iface.routes_mut().add_default_ipv6_route(OWN_V6);
        iface.set_any_ip(true);
        let rng = config.random_seed | 1;
        let max_flows = config.max_flows;
        let worst = budget::worst_case_bytes(budget::BudgetInputs {
            max_flows: config.max_flows,
            ring_total: config.tcp_ring_total,
            grow_total: config.tcp_grow_total,
            mtu: config.mtu,
            max_pending_dns: config.max_pending_dns,
            dns_cache_entries: config.dns_cache_entries,
        });
        if worst > budget::IOS_EXTENSION_CAP {
            log::warn!("engine config worst case {worst} bytes exceeds the iOS extension cap");
        }
        Engine {
            config,
            policy,
            epoch: now,
            now,
            iface,
            device,
            table: FlowTable::new(max_flows),
            handshakes: Handshakes::default(),
            dns: DnsState::new(),
            apps: AppWaits::default(),
            sockets: SocketBudget::default(),
            commands: VecDeque::new(),
            events: VecDeque::new(),
            events_dropped: 0,
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            starved: Vec::new(),
            rng,
            scratch: Vec::with_capacity(2048),
            frags: crate::reassembly::Reassembly::default(),
            stats: EngineStats::default(),
        }
    }

    /// Replace the policy; later decisions use it (flows already decided keep their verdict).
    pub fn set_policy(&mut self, policy: Arc<dyn Decide>) {
        self.policy = policy;
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Takes the settings of `config` that are read at each decision (how blocked names are
    /// answered, whether encrypted DNS is refused, how long a new flow waits for its app): they
    /// apply from the next decision. The rest (MTU, resolvers, budgets, timeouts) is fixed for
    /// the engine's life: a new engine takes it.
    pub fn set_live_settings(&mut self, config: &EngineConfig) {
        self.config.dns_block_answer = config.dns_block_answer;
        self.config.dns_block_ttl = config.dns_block_ttl;
        self.config.block_encrypted_dns = config.block_encrypted_dns;
        self.config.app_wait = config.app_wait;
    }

    pub(crate) fn smol_now(&self) -> smoltcp::time::Instant {
        let micros = self.now.saturating_duration_since(self.epoch).as_micros();
        smoltcp::time::Instant::from_micros(i64::try_from(micros).unwrap_or(i64::MAX))
    }

    fn advance(&mut self, now: Instant) {
        // Time never goes back, whatever the driver passes.
        if now > self.now {
            self.now = now;
        }
    }

    /// One raw IP packet the app sent into the tunnel. Never panics; bad packets are counted.
    pub fn handle_tun_packet(&mut self, now: Instant, packet: &[u8]) {
        self.advance(now);
        self.stats.packets_in += 1;
        let parsed = match packet::parse(packet) {
            Ok(p) => p,
            Err(DropReason::Fragment) => return self.on_fragment(packet),
            Err(reason) => return self.drop_packet(reason),
        };
        match parsed.proto {
            packet::PROTO_TCP => self.on_tcp(packet, &parsed),
            packet::PROTO_UDP => self.on_udp(packet, &parsed),
            // ICMP echo is left unanswered rather than faked (a fake reply would tell the user
            // a blocked host is up); other ICMP from the app has no flow to belong to.
            _ => self.drop_packet(DropReason::Icmp),
        }
    }

    /// A fragment of a UDP datagram: held until the datagram is whole, which is then handled
    /// as if it had arrived in one packet (see [`crate::reassembly`]).
    fn on_fragment(&mut self, packet: &[u8]) {
        use crate::reassembly::Outcome;
        match self.frags.push(self.now, packet) {
            Outcome::Held => {}
            Outcome::Dropped(n) => {
                self.stats.dropped[DropReason::Fragment as usize] += n;
            }
            Outcome::Complete(whole) => {
                self.stats.datagrams_reassembled += 1;
                match packet::parse(&whole) {
                    Ok(p) if p.proto == packet::PROTO_UDP => self.on_udp(&whole, &p),
                    Ok(_) => self.drop_packet(DropReason::Fragment),
                    Err(reason) => self.drop_packet(reason),
                }
            }
        }
    }

    pub(crate) fn drop_packet(&mut self, reason: DropReason) {
        self.stats.dropped[reason as usize] += 1;
    }

    /// Something happened on a host socket.
    pub fn handle_upstream(&mut self, now: Instant, event: UpstreamEvent<'_>) {
        self.advance(now);
        match event {
            UpstreamEvent::Connected { flow } => self.tcp_connected(flow),
            UpstreamEvent::ConnectFailed { flow } | UpstreamEvent::Reset { flow } => {
                self.tcp_upstream_reset(flow)
            }
            UpstreamEvent::Closed { flow } => self.tcp_upstream_closed(flow),
            UpstreamEvent::Datagram { flow, from, data } => {
                if flow == FlowId::DNS {
                    self.dns_upstream_answer(from, data);
                } else {
                    self.udp_upstream_datagram(flow, data);
                }
            }
        }
    }

    /// The driver's answer to [`Command::ResolveApp`] (`None`: the app could not be found).
    pub fn app_resolved(&mut self, now: Instant, flow: FlowId, app: Option<String>) {
        self.advance(now);
        if let Some((protocol, src)) = self.app_wait_key(flow) {
            self.cache_app(protocol, src, app.clone());
            self.finish_app_wait(flow, app.clone());
        }
        let Some(f) = self.table.name_app(flow, &app) else {
            return;
        };
        let key = (f.protocol, f.src);
        let was_pending = std::mem::replace(&mut f.app_pending, false);
        self.cache_app(key.0, key.1, app);
        if was_pending {
            self.continue_after_app(flow);
        }
    }

    fn continue_after_app(&mut self, flow: FlowId) {
        let Some(f) = self.table.get(&flow) else {
            return;
        };
        match f.kind {
            FlowKind::Tcp(_) => self.tcp_after_app(flow),
            FlowKind::Udp(_) => self.udp_try_decide(flow),
        }
    }

    /// Run timers (retransmissions, inspection and connect deadlines, idle expiry). Call when
    /// [`Engine::poll_timeout`] has passed; calling early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > self.now {
                break;
            }
            self.timers.pop();
            let current = self.table.get(&id).and_then(|f| f.timer_at);
            if current != Some(at) {
                continue; // stale entry
            }
            if let Some(f) = self.table.get_mut(&id) {
                f.timer_at = None;
            }
            self.flow_timer(id);
        }
        self.dns_expire();
        self.expire_app_waits();
        // Flows whose smoltcp deadline passed were marked dirty: their egress runs here.
        self.pump();
    }

    /// Schedule (or re-schedule) the flow's timer at its next due time.
    pub(crate) fn schedule(&mut self, id: FlowId) {
        let Some(f) = self.table.get_mut(&id) else {
            return;
        };
        if file_timer(&self.config, &mut self.timers, id, f) {
            self.compact_timers();
        }
    }

    /// Rebuild the timer heap if superseded entries outnumber the live ones.
    pub(crate) fn compact_timers(&mut self) {
        if self.timers.len() > 2 * self.table.len() + 64 {
            // Superseded entries pile up when deadlines keep moving earlier (a delayed ACK
            // before a retransmission): rebuild from the live ones. Amortised O(1).
            self.timers = self
                .table
                .iter()
                .filter_map(|(id, f)| f.timer_at.map(|t| Reverse((t, *id))))
                .collect();
        }
    }

    /// Make the earliest timer entry exact. `schedule` only ever moves a flow's entry earlier
    /// (a busy flow's idle deadline moves later with every packet: re-filing it each time would
    /// cost a heap push per packet), so the top entry may be early or superseded. Fix it here,
    /// where it matters: a driver told to wake for nothing would wake idle phones.
    fn settle_timers(&mut self) {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            let due = match self.table.get(&id) {
                Some(f) if f.timer_at == Some(at) => flow_due(&self.config, f),
                _ => {
                    self.timers.pop(); // superseded or flow gone
                    continue;
                }
            };
            if due <= at {
                break;
            }
            self.timers.pop();
            if let Some(f) = self.table.get_mut(&id) {
                f.timer_at = Some(due);
            }
            self.timers.push(Reverse((due, id)));
        }
    }

    fn flow_timer(&mut self, id: FlowId) {
        let Some(f) = self.table.get(&id) else { return };
        let now = self.now;
        let idle = match f.kind {
            FlowKind::Tcp(_) => self.config.tcp_idle_timeout,
            FlowKind::Udp(_) => self.config.udp_idle_timeout,
        };
        if f.last_active + idle <= now {
            self.stats.flows_timed_out += 1;
            self.kill_flow(id);
            return;
        }
        let phase_due = match &f.kind {
            FlowKind::Tcp(t) => t.deadline.is_some_and(|d| d <= now),
            FlowKind::Udp(u) => u.deadline.is_some_and(|d| d <= now),
        };
        let is_tcp = matches!(f.kind, FlowKind::Tcp(_));
        if let Some(FlowKind::Tcp(t)) = self.table.get_mut(&id).map(|f| &mut f.kind) {
            if t.stack_at.is_some_and(|d| d <= now) {
                // smoltcp's deadline: egress (and a fresh deadline) in the coming pump.
                t.stack_at = None;
                self.dirty.push(id);
            }
        }
        if phase_due {
            if is_tcp {
                self.tcp_deadline(id);
            } else {
                self.udp_deadline(id);
            }
        }
        self.schedule(id);
    }

    /// End a flow now from the engine's side (timeout, eviction): RST to the app for TCP, Close
    /// to the driver.
    pub(crate) fn kill_flow(&mut self, id: FlowId) {
        let Some(f) = self.table.get(&id) else { return };
        match f.kind {
            FlowKind::Tcp(_) => self.tcp_abort(id),
            FlowKind::Udp(_) => self.remove_flow(id),
        }
    }

    /// The next deadline, `None` when nothing is scheduled: the driver then sleeps until IO
    /// (no wake-ups while idle). Takes `&mut self` because pending work is flushed first.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.pump();
        self.settle_timers();
        let flows = self.timers.peek().map(|Reverse((t, _))| *t);
        let dns = self.dns.next_deadline();
        let apps = self.apps.next_deadline();
        [flows, dns, apps].into_iter().flatten().min()
    }

    /// Next packet for the tunnel (to the app): written into `buf`, returns its length. A packet
    /// longer than `buf` is dropped (size `buf` to the MTU).
    pub fn poll_tun_packet(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.pump();
        loop {
            let p = self.pop_tun()?;
            let n = p.len();
            let fits = n <= buf.len();
            if fits {
                buf[..n].copy_from_slice(&p);
            }
            self.device.tx.recycle(p);
            if fits {
                self.stats.packets_out += 1;
                return Some(n);
            }
        }
    }

    /// Next packet for the tunnel, handed to `write` without an intermediate copy (for drivers
    /// that write each packet straight to the TUN fd). Returns `write`'s result.
    pub fn poll_tun_packet_with<R>(&mut self, write: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.pump();
        let p = self.pop_tun()?;
        let r = write(&p);
        self.device.tx.recycle(p);
        self.stats.packets_out += 1;
        Some(r)
    }

    fn pop_tun(&mut self) -> Option<Vec<u8>> {
        let p = self.device.tx.packets.pop_front();
        if !self.starved.is_empty() && self.device.tx.packets.len() < budget::MAX_QUEUED_PACKETS / 2
        {
            // Half drained: let smoltcp send what it held back.
            self.dirty.append(&mut self.starved);
        }
        p
    }

    /// Next command for the driver.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.pump();
        let c = self.commands.pop_front();
        if c.is_none() && self.commands.capacity() > 1024 {
            // A burst is over: give its memory back (the budget assumes small queues).
            self.commands = VecDeque::new();
        }
        c
    }

    /// Next event for the history.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.pump();
        let e = self.events.pop_front();
        if e.is_none() && self.events.capacity() > 1024 {
            self.events = VecDeque::new();
        }
        e
    }

    /// Counters and gauges, as of the last `poll_*` call (input calls defer their work to it).
    pub fn stats(&self) -> EngineStats {
        let mut s = self.stats;
        s.tcp_flows = self.table.tcp_count();
        s.udp_flows = self.table.udp_count();
        // One socket per TCP flow (O(1): the driver asks after every pass).
        s.sockets = self.table.tcp_count();
        s.rings_grown = self.sockets.growths();
        s.memory_bytes = self.memory_bytes();
        s
    }

    /// The engine's own accounting of what it holds (see [`crate::budget`]).
    fn memory_bytes(&self) -> usize {
        self.sockets.memory_bytes()
            + self.table.udp_count() * budget::UDP_FLOW_OVERHEAD
            + self.frags.memory()
            + self.device.memory()
            + self.dns.memory_bytes()
            + self.apps.held_dns_bytes()
    }

    /// Flush deferred work: service each touched flow, then run its smoltcp egress (which
    /// files its next deadline). O(touched flows), never O(all flows).
    pub(crate) fn pump(&mut self) {
        self.sockets.wake_waiting(&mut self.dirty);
        // Servicing can touch flows again (a DNS answer written, a state change seen after
        // egress); a few rounds settle it, the rest waits for the next call.
        for _ in 0..3 {
            if self.dirty.is_empty() {
                break;
            }
            let mut dirty = std::mem::take(&mut self.dirty);
            dirty.sort_unstable();
            dirty.dedup();
            for id in dirty.drain(..) {
                self.service_tcp(id);
                if self.tcp_egress(id) {
                    // e.g. TIME-WAIT ended or the RST went out: the flow may be finished.
                    self.dirty.push(id);
                }
            }
            // Give the allocation back for reuse.
            if self.dirty.is_empty() {
                self.dirty = dirty;
            }
        }
    }

    pub(crate) fn next_flow_id(&mut self) -> FlowId {
        self.table.next_id()
    }

    pub(crate) fn next_random(&mut self) -> u64 {
        // xorshift64*: enough to make DNS ids unguessable off-path when seeded randomly.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Make room for one more flow of `app` when the table is full. Fair shares first: an app
    /// (or the unknown app, `None`) holding half the table or more gives up its own oldest
    /// flow, UDP first, whoever needs the room (a UDP spray cycles through its own flows and
    /// cannot push other apps' connections out); then the oldest idle UDP flow, then any UDP
    /// flow (UDP is connectionless: an evicted NAT entry costs a new one, an evicted TCP flow
    /// costs the connection); then the oldest idle flow with a second chance for recently
    /// active ones. Returns false when nothing could be evicted.
    pub(crate) fn make_room(&mut self, app: &Option<String>) -> bool {
        if self.table.len() < self.config.max_flows {
            return true;
        }
        let share = (self.config.max_flows / 2).max(1);
        if let Some(hog) = self.table.hog(app, share) {
            let udp = self.table.has_udp();
            if (udp && self.evict_where(|f| f.app == hog && f.protocol == Protocol::Udp))
                || self.evict_where(|f| f.app == hog)
            {
                return true;
            }
        }
        if self.table.has_udp() {
            let now = self.now;
            if self.evict_where(|f| {
                f.protocol == Protocol::Udp && f.last_active + RECENTLY_ACTIVE <= now
            }) || self.evict_where(|f| f.protocol == Protocol::Udp)
            {
                return true;
            }
        }
        let mut tries = self.table.order_len();
        while let Some(id) = self
            .table
            .second_chance(self.now, RECENTLY_ACTIVE, &mut tries)
        {
            self.stats.flows_evicted += 1;
            self.kill_flow(id);
            if self.table.len() < self.config.max_flows {
                return true;
            }
        }
        self.table.len() < self.config.max_flows
    }

    /// Evict the oldest flow (in eviction order) that `pred` picks; false when none does.
    fn evict_where(&mut self, pred: impl Fn(&Flow) -> bool) -> bool {
        let Some(id) = self.table.oldest_where(pred) else {
            return false;
        };
        self.stats.flows_evicted += 1;
        self.kill_flow(id);
        true
    }

    /// Register a new flow in the table.
    pub(crate) fn insert_flow(&mut self, flow: Flow) {
        let id = flow.id;
        self.table.insert(flow);
        self.stats.flows_created += 1;
        self.schedule(id);
    }

    /// Forget a flow: free its socket and buffers, tell the driver, record the end.
    pub(crate) fn remove_flow(&mut self, id: FlowId) {
        let Some(f) = self.table.remove(id) else {
            return;
        };
        match &f.kind {
            FlowKind::Tcp(t) => {
                self.handshakes.ended(t.parked, t.half_open);
                self.sockets.close(&self.config, t.sock());
                self.sockets
                    .release(t.inspect.capacity() + t.dns_out.capacity());
                if let Some(tunnel) = &t.tunnel {
                    self.sockets.release(tunnel.held.capacity());
                }
            }
            FlowKind::Udp(u) => self.sockets.release(u.held_bytes()),
        }
        if f.upstream_open {
            self.commands.push_back(Command::Close { flow: id });
        }
        if f.upstream_open || f.bytes_from_app > 0 {
            self.push_event(Event::FlowClosed {
                time: self.now,
                flow: id,
                protocol: f.protocol,
                bytes_from_app: f.bytes_from_app,
                bytes_to_app: f.bytes_to_app,
            });
        }
    }

    pub(crate) fn push_event(&mut self, event: Event) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
            self.events_dropped += 1;
        }
        self.events.push_back(event);
    }

    /// Ask the policy (after the engine's own DoT/DoH rules) without recording anything.
    /// `name` is what the flow itself said (SNI, Host, DNS question); without it the name
    /// table's answer for the address is used. DNS questions (`dns_type` set) are about the
    /// name only: the resolver address is not part of the query.
    /// The policy query for a flow or DNS question: the name given, else the name table's
    /// answer for the address (kept in `learned`), and how many names the table holds for the
    /// address (0 when none; the query says at least 1). DNS questions (`dns_type` set) are
    /// about the name only.
    pub(crate) fn query<'a>(
        &mut self,
        app: Option<&'a str>,
        name: Option<(&'a str, NameSource)>,
        dst: SocketAddr,
        protocol: Protocol,
        dns_type: Option<u16>,
        learned: &'a mut Option<std::sync::Arc<str>>,
    ) -> (Query<'a>, u32) {
        let (name, source, sharing) = match name {
            Some((n, s)) => (Some(n), s, 1),
            None => {
                let found = self.dns.names_for(dst.ip(), self.now);
                *learned = found.names.into_iter().next().map(|n| n.name);
                let learned: &'a Option<std::sync::Arc<str>> = learned;
                (
                    learned.as_deref(),
                    NameSource::DnsAnswer,
                    u32::try_from(found.count).unwrap_or(u32::MAX),
                )
            }
        };
        let query = Query {
            app,
            name,
            name_source: source,
            names_sharing_address: sharing.max(1),
            addr: dns_type.is_none().then_some(dst.ip()),
            port: dst.port(),
            protocol,
            dns_type,
        };
        (query, sharing)
    }

    pub(crate) fn evaluate(
        &mut self,
        flow: FlowId,
        app: Option<&str>,
        name: Option<(&str, NameSource)>,
        dst: SocketAddr,
        protocol: Protocol,
        dns_type: Option<u16>,
    ) -> (Decision, DecisionEvent) {
        let mut learned = None;
        let (query, sharing) = self.query(app, name, dst, protocol, dns_type, &mut learned);
        let (name, source) = (query.name, query.name_source);
        let port = if dns_type.is_some() { 0 } else { dst.port() };
        let decision = match engine_rule(&self.config, name, query.addr, port) {
            Some(rule) => engine_block(rule),
            None => self.policy.decide(&query),
        };
        let event = DecisionEvent {
            time: self.now,
            flow,
            app: app.map(str::to_owned),
            name: name.map(str::to_owned),
            name_source: source,
            names_sharing_address: sharing,
            addr: dst.ip(),
            port: dst.port(),
            protocol,
            dns_type,
            decision: decision.clone(),
        };
        (decision, event)
    }

    /// Record a final decision as an event (held until the app is known while the flow's
    /// app is being resolved without holding the flow: see `engine::app`).
    pub(crate) fn record(&mut self, event: DecisionEvent, decision: &Decision) {
        if decision.is_block() {
            self.stats.flows_blocked += 1;
        }
        if event.app.is_none() && self.apps.is_waiting(event.flow) {
            self.apps.hold_event(event);
            return;
        }
        self.push_event(Event::Decision(Box::new(event)));
    }

    /// Queue a hand-built packet for the tunnel.
    pub(crate) fn emit_packet(&mut self, build: impl FnOnce(&mut Vec<u8>)) {
        let mut b = self.device.tx.buffer();
        build(&mut b);
        self.device.tx.push(b);
    }

    /// The hand-built RST answering segment `p` (no socket involved).
    pub(crate) fn send_rst_for(&mut self, p: &Parsed) {
        self.stats.rst_sent += 1;
        self.emit_packet(|b| packet::build_rst(b, p));
    }

    /// Dropped-event count (events not drained in time).
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_is_send() {
        fn is_send<T: Send>() {}
        is_send::<Engine>();
    }
}
#[cfg(test)]
mod size_tests {
    #[test]
    fn print_sizes() {
        println!(
            "tcp::Socket {} Socket enum {} Flow {} TcpFlow {} UdpFlow {} Command {} Event {}",
            std::mem::size_of::<smoltcp::socket::tcp::Socket<'static>>(),
            std::mem::size_of::<smoltcp::socket::Socket<'static>>(),
            std::mem::size_of::<super::Flow>(),
            std::mem::size_of::<super::tcp::TcpFlow>(),
            std::mem::size_of::<super::udp::UdpFlow>(),
            std::mem::size_of::<crate::api::Command>(),
            std::mem::size_of::<crate::api::Event>(),
        );
    }
}
