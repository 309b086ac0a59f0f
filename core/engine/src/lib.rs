//! Embargo's sans-IO tunnel engine: raw IP packets, upstream socket events and the time go in;
//! packets for the tunnel, commands for the driver and decision events come out.
//!
//! # Architecture
//!
//! The engine is a deterministic state machine in the style of quinn-proto and smoltcp's
//! `Interface::poll`: it owns no socket, thread or clock. Its whole surface is [`Engine`]:
//!
//! | in | out |
//! |---|---|
//! | [`Engine::handle_tun_packet`] raw IP from the app | [`Engine::poll_tun_packet`] raw IP to the app |
//! | [`Engine::handle_upstream`] connected, refused, EOF, reset, datagram | [`Engine::poll_command`] [`Command`]s for host sockets |
//! | [`Engine::write_upstream_data`] / [`Engine::recv_upstream_with`] server bytes | [`Engine::read_app_data`] app bytes for the server |
//! | [`Engine::app_resolved`] the app owning a flow | [`Engine::poll_event`] decisions, DNS answers, closed flows |
//! | [`Engine::handle_timeout`] the time | [`Engine::poll_timeout`] the next deadline (`None` = sleep until IO) |
//!
//! ## The driver loop (core/driver)
//!
//! ```text
//! loop {
//!     wait for: TUN readable | a host socket ready | engine.poll_timeout()
//!     for each packet read from the TUN (a batch): engine.handle_tun_packet(now, pkt)
//!     for each host socket event: engine.handle_upstream(now, ev) / recv_upstream_with(..)
//!     engine.handle_timeout(now) when the deadline passed
//!     while let Some(n) = engine.poll_tun_packet(&mut buf) { write to TUN }   // batch
//!     while let Some(cmd) = engine.poll_command() { act on sockets }
//!     while let Some(ev) = engine.poll_event() { history }
//! }
//! ```
//! Input calls only queue work; the first `poll_*` call after a batch runs smoltcp's egress and
//! services the touched flows once for the whole batch. TCP payload is never copied into a
//! command: the driver reads app bytes straight out of smoltcp's ring into its socket
//! ([`Engine::read_app_data`], edge-triggered by [`Command::AppDataReady`]) and reads server
//! bytes straight into smoltcp's ring ([`Engine::recv_upstream_with`], no more than
//! [`Engine::upstream_window`]): one copy each way, and a full ring closes the TCP window
//! (backpressure) instead of growing a buffer.
//!
//! ## A packet's path
//!
//! 1. Parsing (module `packet`) before anything else: lengths, IPv4 header and TCP/UDP/ICMP
//!    checksums verified once (smoltcp is then told not to re-verify), IPv6 extension chains
//!    walked (hop-by-hop, destination options and exhausted routing headers skipped and
//!    stripped for smoltcp), unknown protocols dropped; fragments of UDP datagrams are joined
//!    within a memory bound ([`reassembly`]) and the whole datagram handled as one packet, other
//!    fragments dropped. Every drop is counted by [`DropReason`]; nothing panics.
//! 2. TCP, known 4-tuple: fed to smoltcp (one packet ingested at a time, so a new flow's socket
//!    exists before its SYN is processed: shadowsocks-rust #1412). Retransmitted SYNs find their
//!    flow: no duplicate listener (tailscale-rs #239).
//! 3. TCP SYN, new: the policy decides by address (and the name DNS gave it) *before anything is
//!    allocated*; blocked -> hand-built RST, no socket. Allowed -> one smoltcp socket listening
//!    on exactly that destination (`set_any_ip`, default routes to a dummy own address), in one
//!    of two modes (see `engine::tcp`): **connect first** (handshake completed locally, the
//!    upstream asked for only on the app's ACK, so a spoofed SYN opens nothing; refused ->
//!    RST) or **inspect first** for the client-first ports (80/443/8080/8443, the proxy ports,
//!    the implicit-TLS ports: handshake completed locally, the ClientHello SNI or HTTP Host
//!    read across segments within a byte and time bound, then the decision, then `Connect`,
//!    and the read bytes replayed first). A blocked inspected flow gets an RST and the driver
//!    never hears of it; so does one whose name cannot be read (fail closed).
//! 4. UDP to port 53, any address: DNS answered by the engine (blocked: 0.0.0.0/:: TTL 5 s or
//!    NXDOMAIN, HTTPS/SVCB with no data; allowed: cache, or forwarded on the shared
//!    [`FlowId::DNS`] upstream flow under a fresh random id; answers teach the name table which
//!    attributes later connections, keeping the count of names sharing an address). DNS over
//!    TCP is answered the same way from inside the stream. CNAME chains are checked too (CNAME
//!    cloaking of trackers is blocked).
//! 5. Other UDP: per-flow NAT (`SendDatagram` / `Datagram`) with idle expiry. QUIC (443): the
//!    first datagrams are held while the Initial is decrypted for its SNI. Blocked UDP is
//!    answered with ICMP administratively-prohibited: the app's socket errors at once (QUIC
//!    falls back to TCP, where the SNI is inspected) instead of retrying into silence.
//! 6. ICMP echo: left unanswered (never faked: a fake reply would say a blocked host is up).
//!
//! ## App identity
//!
//! When the driver can resolve apps ([`EngineConfig::resolve_apps`]), a new flow's first packet
//! and a DNS question from a new source trigger one [`Command::ResolveApp`]; the answer is cached
//! by (protocol, source address and port). Work is held for the app only when
//! [`Decide::app_can_change`] says the app could change its verdict (per-app settings exist, or
//! a first-party fact could allow a block): a TCP flow holds its SYN-ACK (paused socket, no
//! upstream), a UDP flow its first datagrams, a DNS source its questions, for at most
//! [`EngineConfig::app_wait`] (20 ms by default: Android's binder call usually answers in a few
//! ms), then decides with the app unknown rather than stall the packet path (OpenSnitch #164).
//! Otherwise it is decided at once and only its decision event waits (same bound) for the app's
//! name, so the history names the app without the handshake paying for a slow lookup
//! (docs/decisions.md).
//! See `engine::app`.
//!
//! ## Bounded memory
//!
//! See [`budget`]: every structure that grows with traffic is capped (flows with fair shares:
//! an app, or the unknown app, holding half the table gives up its own flows first, UDP goes
//! before TCP, then second-chance eviction of the oldest idle one; held handshakes,
//! inspection bytes, pending DNS, cache, queues), TCP rings are fixed per flow in two tiers, and a `const` assertion keeps the default
//! worst case inside 40 MiB of the iOS extension's 50 MiB. `tests/engine_memory.rs` measures
//! 10,000 concurrent flows with a counting allocator.
//!
//! ## Why smoltcp's socket set stays small
//!
//! smoltcp walks every socket for every ingress segment and egress poll (its maintainer called
//! 40k sockets unusable, PR #934). Blocked flows never get a socket; reset, refused, timed-out
//! and finished flows are removed at once (their RST is written by polling a one-socket set, so
//! nothing lingers in TIME-WAIT); sockets whose SYN-ACK is paused live in a separate set,
//! because a paused socket reports "poll now" forever and would make the driver spin.
//!
//! ## Policy
//!
//! The engine asks a [`Decide`] trait object (`embargo_policy::Policy` implements it; tests use
//! closures). [`Engine::set_policy`] swaps it between batches; flows already decided keep their
//! verdict. The engine adds rules of its own, reported with list `engine`: encrypted DNS
//! ([`EngineConfig::block_encrypted_dns`], on by default: port 853 and the DNS-over-HTTPS
//! endpoints of [`dns::doh`], names with their subdomains), so apps fall back to plain DNS the
//! engine can see; and the fail-closed refusal of client-first flows whose name cannot be read.

pub mod api;
pub mod budget;
pub mod config;
mod device;
pub mod dns;
mod engine;
pub mod inspect;
mod packet;
pub mod reassembly;

pub use api::{
    Command, Decide, DecisionEvent, DropReason, EngineStats, Event, FlowId, UpstreamEvent,
};
pub use config::{DnsBlockAnswer, EngineConfig, DEFAULT_PROXY_PORTS};
pub use engine::Engine;
