//! The engine's vocabulary with its driver: flow ids, commands out, upstream events in, events
//! for the history, counters.
//!
//! Everything here is plain data. Commands and events own their bytes only where they leave the
//! engine for good (a datagram, an event for the history); TCP payload never travels in a
//! command: the driver pulls it with [`crate::Engine::read_app_data`] and pushes with
//! [`crate::Engine::write_upstream_data`] so each byte is copied once between the stack and the
//! host socket.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use embargo_policy::{Decision, NameSource, Protocol, Query};

/// Identifies one flow (a TCP connection, a UDP 5-tuple, or the shared DNS upstream) between the
/// engine and the driver. Ids are never reused within one engine's life (a `u64` counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub u64);

impl FlowId {
    /// The shared UDP flow to the configured DNS upstream (IPv4 or IPv6 server, chosen by the
    /// `dst` of each [`Command::SendDatagram`]). The driver opens it lazily like any UDP flow
    /// and never gets a [`Command::Close`] for it.
    pub const DNS: FlowId = FlowId(0);
}

impl std::fmt::Display for FlowId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "flow#{}", self.0)
    }
}

/// Something the driver must do with a host socket. Drain with [`crate::Engine::poll_command`]
/// after every batch of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Open a TCP connection (through `protect`) to `dst`. Answer with
    /// [`UpstreamEvent::Connected`] or [`UpstreamEvent::ConnectFailed`].
    Connect { flow: FlowId, dst: SocketAddr },
    /// The app has bytes for the upstream socket of `flow`: call
    /// [`crate::Engine::read_app_data`] until it returns 0 or the socket would block. Sent once
    /// per transition from "nothing to read" to "something to read" (edge-triggered), so a
    /// driver that stops early must remember the flow and retry when its socket is writable.
    AppDataReady { flow: FlowId },
    /// Ask the resolver `dst` over TCP: `data` is one DNS message (a question an app asked over
    /// TCP, whose answer over UDP came back truncated). Open a TCP connection for `flow`
    /// (through `protect`), send `data` with its 2-byte length, read one length-prefixed answer,
    /// hand it to [`crate::Engine::handle_upstream`] as an [`UpstreamEvent::Datagram`] on
    /// [`FlowId::DNS`] from `dst`, and close. A [`Command::Close`] for `flow` means the engine
    /// gave the question up: close then too.
    DnsOverTcp {
        flow: FlowId,
        dst: SocketAddr,
        data: Vec<u8>,
    },
    /// Send one UDP datagram on `flow`'s host socket (opened lazily on the first one) to `dst`.
    SendDatagram {
        flow: FlowId,
        dst: SocketAddr,
        data: Vec<u8>,
    },
    /// The app finished sending (FIN): shut down the write half of `flow`'s socket once every
    /// byte from [`crate::Engine::read_app_data`] has been written.
    Shutdown { flow: FlowId },
    /// Forget `flow`: close its host socket now (reset, timeout, eviction, both sides done).
    /// No further event for this flow will be accepted.
    Close { flow: FlowId },
    /// Ask which app this flow belongs to; answer with [`crate::Engine::app_resolved`], off the packet
    /// path. Asked once per (protocol, source) the engine has not cached.
    ResolveApp {
        flow: FlowId,
        protocol: Protocol,
        src: SocketAddr,
        dst: SocketAddr,
    },
}

/// What happened on a host socket. TCP payload does not come this way: see
/// [`crate::Engine::write_upstream_data`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamEvent<'a> {
    /// The TCP connection of a [`Command::Connect`] is established.
    Connected { flow: FlowId },
    /// The TCP connection could not be made; the app gets an RST.
    ConnectFailed { flow: FlowId },
    /// The server finished sending (EOF). The app gets a FIN after the bytes already written.
    Closed { flow: FlowId },
    /// The server reset the connection (or the socket failed); the app gets an RST.
    Reset { flow: FlowId },
    /// One UDP datagram arrived on `flow`'s host socket from `from`.
    Datagram {
        flow: FlowId,
        from: SocketAddr,
        data: &'a [u8],
    },
}

/// One decision about one flow or DNS question, for the history and the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionEvent {
    /// When the decision was made (the `now` given to the engine).
    pub time: Instant,
    /// The flow it applies to ([`FlowId::DNS`] for DNS questions).
    pub flow: FlowId,
    /// The app, when known at decision time.
    pub app: Option<String>,
    /// The host name the decision was about, when one was known.
    pub name: Option<String>,
    /// How the name was learned.
    pub name_source: NameSource,
    /// How many names share the destination address (from DNS answers; 1 = unambiguous,
    /// 0 = no answer seen).
    pub names_sharing_address: u32,
    /// The destination the app tried to reach (for DNS: the resolver it asked).
    pub addr: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    /// DNS record type asked, for DNS questions.
    pub dns_type: Option<u16>,
    /// The policy's answer: verdict, reason, owner, country, certainty.
    pub decision: Decision,
}

/// Events for the history and the user interface. Drain with [`crate::Engine::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A block or allow decision (one per flow or DNS question; two for an HTTP proxy tunnel
    /// whose inner name differs from its CONNECT target: the target's, then the inner one's).
    Decision(Box<DecisionEvent>),
    /// A DNS answer the engine relayed (or served from its cache).
    DnsAnswered {
        time: Instant,
        name: String,
        dns_type: u16,
        /// Addresses in the answer (after CNAME chains).
        addrs: Vec<IpAddr>,
        /// The CNAME chain, in order, without the queried name.
        cnames: Vec<String>,
        from_cache: bool,
    },
    /// A flow ended; byte counts are payload bytes.
    FlowClosed {
        time: Instant,
        flow: FlowId,
        protocol: Protocol,
        bytes_from_app: u64,
        bytes_to_app: u64,
    },
}

/// Why a packet from the tunnel was dropped. Each kind is counted in [`EngineStats::dropped`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// Shorter than its headers claim, or not IPv4/IPv6.
    Malformed = 0,
    /// IPv4 header checksum, or TCP/UDP/ICMP checksum, wrong.
    BadChecksum = 1,
    /// A fragment not joined: not UDP, malformed, overlapping, over the reassembly bounds or
    /// out of time (see [`crate::reassembly`]; UDP fragments are joined, TCP uses PMTU).
    Fragment = 2,
    /// IPv6 extension header the engine does not walk (e.g. ESP, unknown).
    UnsupportedExtension = 3,
    /// A transport the engine does not relay (not TCP/UDP/ICMP).
    UnsupportedProtocol = 4,
    /// ICMP other than echo (echo itself is left unanswered, see the crate docs).
    Icmp = 5,
    /// A segment for no known flow (answered with RST when it was not an RST).
    NoFlow = 6,
    /// The flow table was full of active flows and nothing could be evicted.
    TableFull = 7,
    /// The packet belongs to a blocked flow.
    Blocked = 8,
    /// Multicast/broadcast/unspecified source or destination.
    BadAddress = 9,
    /// Data for a flow holding no receive ring while all rings together are at their budget
    /// (`EngineConfig::tcp_ring_total`): the app sends it again.
    NoRing = 10,
}

impl DropReason {
    /// Number of kinds (length of [`EngineStats::dropped`]).
    pub const COUNT: usize = 11;
}

/// Counters and gauges. Cheap to take: a copy of plain integers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Packets given to [`crate::Engine::handle_tun_packet`].
    pub packets_in: u64,
    /// Packets handed out by [`crate::Engine::poll_tun_packet`].
    pub packets_out: u64,
    /// Dropped packets by [`DropReason`] (index = `reason as usize`).
    pub dropped: [u64; DropReason::COUNT],
    /// TCP flows/UDP flows currently in the table.
    pub tcp_flows: usize,
    pub udp_flows: usize,
    /// smoltcp sockets alive (should track `tcp_flows`; no lingering TIME-WAIT).
    pub sockets: usize,
    /// TCP rings doubled because their flow filled them (see the engine's `sockets` module).
    pub rings_grown: u64,
    /// Flows ever created, blocked, evicted, timed out.
    pub flows_created: u64,
    pub flows_blocked: u64,
    pub flows_evicted: u64,
    pub flows_timed_out: u64,
    /// RSTs built by hand (blocked SYNs, segments without a flow).
    pub rst_sent: u64,
    /// DNS questions answered locally (blocked) / forwarded / served from cache.
    pub dns_blocked: u64,
    pub dns_forwarded: u64,
    pub dns_cached: u64,
    /// DNS answers from upstream dropped (unknown id, bad question, malformed).
    pub dns_bad_answers: u64,
    /// UDP datagrams joined from IP fragments (see [`crate::reassembly`]).
    pub datagrams_reassembled: u64,
    /// Upstream answer records whose TTL was lowered to `dns::MAX_ANSWER_TTL` (one day).
    pub dns_ttls_clamped: u64,
    /// Bytes the engine's own accounting says it holds (socket buffers, flow state, queues).
    pub memory_bytes: usize,
}

/// The policy as the engine sees it. `embargo_policy::Policy` implements it; tests use
/// closures (`impl<F: Fn(&Query) -> Decision> Decide for F`).
///
/// A trait object (not `Arc<Policy>`) keeps the engine testable with scripted verdicts and
/// independent of how the policy is loaded; one virtual call per decision is nothing next to a
/// rule lookup. Swapping is [`crate::Engine::set_policy`]: the engine is single-threaded
/// (`&mut self`), so the driver swaps between batches and no atomic is needed here.
pub trait Decide: Send + Sync {
    /// Decide one query.
    fn decide(&self, query: &Query<'_>) -> Decision;

    /// Whether knowing the app could change the verdict of `query` (asked with `query.app`
    /// `None`). `false` lets the engine decide at once instead of holding the handshake, the
    /// datagram or the DNS question up to [`crate::EngineConfig::app_wait`] for the app's
    /// name; the app is still asked for, so the history names it. The default, `true`, is
    /// always correct, only slower.
    fn app_can_change(&self, query: &Query<'_>) -> bool {
        let _ = query;
        true
    }

    /// Only the verdict of [`Decide::decide`]. Override it where the policy can answer without
    /// building the explanation (the engine asks it on every new flow, see `app_matters`).
    fn verdict(&self, query: &Query<'_>) -> embargo_policy::Verdict {
        self.decide(query).verdict
    }
}

impl<F> Decide for F
where
    F: Fn(&Query<'_>) -> Decision + Send + Sync,
{
    fn decide(&self, query: &Query<'_>) -> Decision {
        self(query)
    }
}

impl Decide for embargo_policy::Policy {
    fn decide(&self, query: &Query<'_>) -> Decision {
        embargo_policy::Policy::decide(self, query)
    }

    fn app_can_change(&self, query: &Query<'_>) -> bool {
        policy_app_can_change(self, query)
    }

    fn verdict(&self, query: &Query<'_>) -> embargo_policy::Verdict {
        embargo_policy::Policy::verdict(self, query)
    }
}

/// The app enters [`embargo_policy::Policy::decide`] in three places: per-app settings
/// (blocking on/off, overrides), and first-party facts (app-owner rules). Without any per-app
/// setting every app is treated like an unknown one ([`embargo_policy::AppRules::new_app_blocking`]),
/// so only the first-party step is left, and it can only turn a block into an allow: the app
/// matters then only when the verdict without it is a block.
fn policy_app_can_change(policy: &embargo_policy::Policy, query: &Query<'_>) -> bool {
    /// Index of app-owner facts in `RuleSet::counts`.
    const APP_OWNER_FACTS: usize = 6;
    if !policy.apps().apps.is_empty() {
        return true;
    }
    let has_app_owner_facts = policy
        .rules()
        .iter()
        .any(|set| set.counts()[APP_OWNER_FACTS] > 0);
    has_app_owner_facts && policy.verdict(query) == embargo_policy::Verdict::Block
}

/// With a handle as its policy, the engine sees every [`embargo_policy::PolicyHandle::store`]
/// at its next decision, without [`crate::Engine::set_policy`] (one atomic load per decision).
impl Decide for embargo_policy::PolicyHandle {
    fn decide(&self, query: &Query<'_>) -> Decision {
        self.load().decide(query)
    }

    fn app_can_change(&self, query: &Query<'_>) -> bool {
        policy_app_can_change(&self.load(), query)
    }

    fn verdict(&self, query: &Query<'_>) -> embargo_policy::Verdict {
        self.load().verdict(query)
    }
}
