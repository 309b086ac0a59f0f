//! The memory budget, written down and asserted.
//!
//! iOS gives a packet tunnel extension 50 MiB in total (15 MiB before iOS 15). The engine takes
//! at most [`ENGINE_BUDGET`] of it with the default configuration, leaving the rest to the
//! policy's rule tables, the driver and the Swift side. Every allocation that grows with traffic
//! is bounded by a configured count times a fixed size:
//!
//! - TCP flows: one smoltcp socket each ([`TCP_FLOW_OVERHEAD`]), and rings only while bytes
//!   wait in them (smoltcp patched, `third_party/smoltcp/PATCHES.md`): a flow's first bytes
//!   either way take a small ring ([`SMALL_RX`], [`SMALL_TX`]; all of them together within
//!   [`RING_TOTAL`]), an idle connection gives both back (its receive window stays
//!   advertised), and a flow that fills a ring has it doubled in place, up to [`MAX_RX`] /
//!   [`MAX_TX`], all flows' growth together within [`GROW_TOTAL`]. So 10,000 open
//!   connections cost their sockets, not 10,000 pairs of rings, and a bulk flow grows to a
//!   window large enough for multi-Gbit/s. (Every flow at 64 KiB x 2 would be 37 MiB at 300
//!   flows, as shadowsocks-rust pays.)
//! - UDP flows: a small NAT entry, no buffer (datagrams pass straight through).
//! - Inspection: the first bytes of a connection held until its name is known, up to
//!   `INSPECT_MAX` per flow and `INSPECT_TOTAL` for all flows together.
//! - DNS: pending questions (`max_pending_dns` x [`DNS_PENDING_BYTES`]) and the answer cache
//!   (`dns_cache_entries` x [`DNS_CACHE_ENTRY_BYTES`]).
//! - Queues to the driver are bounded by [`MAX_QUEUED_PACKETS`] packets of MTU size.
//!
//! Two configurations are held to the iOS extension's cap, both the defaults
//! ([`crate::EngineConfig::default`], what every shell runs):
//!
//! - **the iOS budget configuration**: the defaults with every bound reached at once
//!   ([`worst_case_bytes`] of [`DEFAULT_INPUTS`]: all [`DEFAULT_MAX_FLOWS`] flows open, the
//!   ring and grow budgets spent, every queue full). Asserted at compile time to fit
//!   [`ENGINE_BUDGET`], and measured in `tests/engine_memory.rs` (10,000 flows within the
//!   budget) and `bindings/tests/ios_footprint.rs` (the whole extension under load, peak RSS
//!   under 50 MiB).
//! - **the phone default under load**: the same defaults with 10,000 concurrent connections
//!   held open and served (`tests/netns`, and `tests/bench/ab.sh conns` for the peak RSS):
//!   the figure a phone meets, held to 30 MB peak RSS for the whole process (not met yet:
//!   docs/decisions.md).

/// Receive ring a flow takes with its app's first bytes (and the window advertised while it
/// holds none): what the app may send ahead. 1 KiB holds a typical request, and the inspected
/// first bytes do not need to fit (they are read out into the inspection buffer); a flow that
/// sends more grows it.
pub const SMALL_RX: usize = 1024;
/// Send ring a flow takes with the server's first bytes: how much of a response reaches the
/// app before its ACK.
/// It holds a small HTTP response (nginx's 1.3 KB page with headers), so the response reaches
/// the app in one flight instead of a second one after the app's ACK (docs/decisions.md).
/// (1.75 KiB was the most that kept 10,000 flows' rings inside the iOS cap when every flow
/// held its rings; now [`RING_TOTAL`] bounds them.)
pub const SMALL_TX: usize = 1792;
/// The largest a flow's receive ring grows to: several large segments in flight with a large
/// tunnel MTU (a 64 KiB window is one 64 KiB segment), and what smoltcp needs for Gbit/s at
/// MTU 1500 (docs/decisions.md). Grown rings are zero-allocated, so where the allocator maps
/// them fresh (`embargo run` sets glibc's mmap threshold to 64 KiB) only the pages a flow
/// fills are resident.
pub const MAX_RX: usize = 256 * 1024;
/// See [`MAX_RX`].
pub const MAX_TX: usize = 256 * 1024;
/// Bytes all flows' rings may hold together at their initial sizes. A flow holds a ring only
/// while bytes wait in it (its first bytes take one, an idle connection gives both back), so
/// this bounds the flows moving bytes at the same moment, not the flows open: 16 MiB is 5,958
/// flows holding both rings at once. Past it a flow waits for a ring (the app's data is
/// dropped and sent again; the server's waits in its socket).
pub const RING_TOTAL: usize = 16 * 1024 * 1024;
/// Bytes all flows' rings may grow by together: 8 flows at the largest rings both ways, or
/// many more busy flows part of the way (the 32 first-come 64 KiB slots it replaces held as
/// much).
pub const GROW_TOTAL: usize = 4 * 1024 * 1024;
/// TCP handshakes held at once (SYN-ACK paused for the app id or the upstream connect). More
/// SYNs are dropped without allocating (the app retransmits): a SYN flood costs nothing.
pub const MAX_PARKED: usize = 1024;
/// Handshakes the engine completes itself (SYN-ACK sent, the app's ACK not in yet) at once:
/// connect-first and inspect-first flows alike. Beyond it a new SYN takes the place of the
/// oldest such handshake (a real app ACKs within a round trip; a spoofed SYN never does), so
/// spoofed SYNs hold at most this many flows, never the whole table, and never lock real
/// clients out.
pub const MAX_HALF_OPEN: usize = 1024;
/// Default flow cap (TCP + UDP); beyond it the oldest idle flow is evicted. 10,000 concurrent
/// connections, all served, with room for the DNS and UDP flows beside them. It also sizes
/// the engine's flow tables up front (16,384 buckets: a std `HashMap` holds at most 7/8 of its
/// power-of-two buckets), and their entries land at hashed positions, so 1,000 flows already
/// touch nearly every page of a table sized for the cap (docs/decisions.md). With rings held
/// only while bytes wait, the worst case is 12.5 MiB of sockets beside the ring budgets.
pub const DEFAULT_MAX_FLOWS: usize = 10_240;
/// Bytes read from one connection to find its SNI/Host: the HTTP head limit
/// (`inspect::http::SNIFF_LIMIT`, 32 KiB), above the largest TLS record a ClientHello fills
/// (16 KiB + 5). A ClientHello with post-quantum key shares is about 1.8 KB. Only the bytes a
/// flow actually sent are held, and all flows together stay within [`INSPECT_TOTAL`].
pub const INSPECT_MAX: usize = 32 * 1024;
/// All inspection buffers together (a client-first flow beyond it is refused: fail closed).
pub const INSPECT_TOTAL: usize = 1024 * 1024;
/// Packets queued for the tunnel before the oldest are dropped (the driver drains every batch).
pub const MAX_QUEUED_PACKETS: usize = 256;
/// Fixed cost of one TCP flow besides its rings, measured: `tests/engine_memory.rs` counts
/// ~1.1 KiB per flow at 10,000 flows (smoltcp socket slot 448 B + meta, flow record 232 B + map
/// entry, 4-tuple map entry 72 B, timer and eviction entries; the tables are sized to
/// `max_flows` up front so they never double). Rounded up to 1.25 KiB.
pub const TCP_FLOW_OVERHEAD: usize = 1280;
/// Cost of one UDP flow record with its hash-map entries.
pub const UDP_FLOW_OVERHEAD: usize = 384;
/// One pending DNS question (record + the question bytes kept for the cache key).
pub const DNS_PENDING_BYTES: usize = 640;
/// One cached DNS answer (bounded answer bytes + key).
pub const DNS_CACHE_ENTRY_BYTES: usize = 1024;
/// Events held for a slow driver (see `MAX_QUEUED_EVENTS` in the engine) and their boxed
/// decisions with names.
pub const EVENT_QUEUE_BYTES: usize = 4096 * 320;
/// What the engine may use with the default configuration: 40 MiB of iOS's 50 MiB.
pub const ENGINE_BUDGET: usize = 40 * 1024 * 1024;
/// The iOS packet-tunnel cap since iOS 15.
pub const IOS_EXTENSION_CAP: usize = 50 * 1024 * 1024;

/// The inputs of the worst case (all from [`crate::EngineConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct BudgetInputs {
    pub max_flows: usize,
    pub ring_total: usize,
    pub grow_total: usize,
    pub mtu: usize,
    pub max_pending_dns: usize,
    pub dns_cache_entries: usize,
}

/// Worst-case bytes the engine holds: every flow a TCP flow, the ring and grow budgets spent,
/// the inspection pool full, every queue full.
pub const fn worst_case_bytes(b: BudgetInputs) -> usize {
    let flows = b.max_flows * TCP_FLOW_OVERHEAD + b.ring_total + b.grow_total;
    // Packets for the tunnel plus the command queue's datagrams (both bounded by MTU each).
    let queues = 2 * MAX_QUEUED_PACKETS * (b.mtu + 64);
    let dns = b.max_pending_dns * DNS_PENDING_BYTES + b.dns_cache_entries * DNS_CACHE_ENTRY_BYTES;
    flows + INSPECT_TOTAL + queues + dns + EVENT_QUEUE_BYTES + REASSEMBLY_TOTAL
}

/// Fragments held for reassembly at most, with the per-datagram records.
pub const REASSEMBLY_TOTAL: usize =
    crate::reassembly::MAX_BYTES + crate::reassembly::MAX_DATAGRAMS * 128;

/// The defaults as budget inputs.
pub const DEFAULT_INPUTS: BudgetInputs = BudgetInputs {
    max_flows: DEFAULT_MAX_FLOWS,
    ring_total: RING_TOTAL,
    grow_total: GROW_TOTAL,
    mtu: 1500,
    max_pending_dns: 1024,
    dns_cache_entries: 1024,
};

// The default configuration fits the budget; a change that breaks this does not compile.
const _: () = assert!(worst_case_bytes(DEFAULT_INPUTS) <= ENGINE_BUDGET);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_budget_fits_ios() {
        let bytes = worst_case_bytes(DEFAULT_INPUTS);
        assert!(bytes <= ENGINE_BUDGET, "{bytes}");
        assert!(bytes <= IOS_EXTENSION_CAP);
    }
}
