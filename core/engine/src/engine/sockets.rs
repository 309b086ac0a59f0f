//! The socket budget: large and small slots in use, finished large-slot sockets kept for the
//! next flow, and the bytes inspection buffers hold.
//!
//! Finished large-slot sockets are kept for the next flow instead of freed.
//! A large slot's two 64 KiB rings are zero-allocated fresh for every flow, so that only the
//! pages a flow fills are resident (see [`crate::budget::LARGE_RX`]); with glibc that is a
//! `mmap` per ring when the flow starts and a `munmap` per ring, with a TLB shootdown across
//! the cores, when it ends, plus a page fault for every page it touches. A short request
//! (most of what apps do, and every connection of a sequence of `curl`s) paid all of that for
//! a page or two, on the packet path: the SYN waits for the allocation. smoltcp sockets are
//! made to be reused: `listen` on a closed socket resets its connection state and empties its
//! rings (the bytes stay; smoltcp never reads a ring beyond what the new connection wrote).
//!
//! Only sockets whose flow moved little are kept ([`RECYCLE_MAX_BYTES`]): their rings hold
//! just a few resident pages, so the pool costs little memory while it waits, and a ring that
//! a bulk transfer filled is given back to the system at once as before. The pool only takes
//! sockets of flows that held a large slot and every large flow takes from it first, so pooled
//! plus live large sockets never exceed the slots: the worst case in [`crate::budget`] is
//! unchanged.

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;

use crate::api::FlowId;
use crate::budget;
use crate::config::EngineConfig;

/// Sockets kept. A sequence of requests needs one; a browser opens about six connections to a
/// host at once. Eight sockets of at most [`RECYCLE_MAX_BYTES`] each way hold at most
/// 8 x 2 x 12 KiB of touched pages (the rings restart at their first byte).
pub(crate) const POOLED_LARGE: usize = 8;

/// A flow that moved more than this in either direction gives its rings back to the system
/// instead of the pool: up to 3 pages of each ring, what a request and a small response fill.
pub(crate) const RECYCLE_MAX_BYTES: u64 = 12 * 1024;

/// One flow's socket: the set it lives in alone, and its handle there.
pub(crate) type OwnSocket = (SocketSet<'static>, SocketHandle);

/// Closed large-slot sockets waiting for a flow (last in, first out: the most recently used
/// rings are the likeliest to be in the cache).
#[derive(Default)]
struct SocketPool {
    idle: Vec<OwnSocket>,
    /// Sockets handed out again since the engine started.
    reused: u64,
}

impl SocketPool {
    /// Sockets waiting.
    fn len(&self) -> usize {
        self.idle.len()
    }

    /// A kept socket, closed and ready for `listen`.
    fn take(&mut self) -> Option<OwnSocket> {
        let own = self.idle.pop()?;
        self.reused += 1;
        Some(own)
    }

    /// Keeps the socket of a finished large-slot flow that moved `from_app` and `to_app`
    /// bytes, or frees it (drops it) when the pool is full or the flow moved much.
    fn give(&mut self, (mut set, handle): OwnSocket, from_app: u64, to_app: u64) {
        if self.idle.len() >= POOLED_LARGE || from_app.max(to_app) > RECYCLE_MAX_BYTES {
            return;
        }
        // Closed now, whatever state the flow ended in: a pooled socket is never polled, and
        // `listen` accepts only a closed socket.
        set.get_mut::<tcp::Socket>(handle).abort();
        self.idle.push((set, handle));
    }
}

/// What the flows hold of the engine's memory budget (see [`crate::budget`]): socket slots and
/// inspection bytes.
#[derive(Default)]
pub(crate) struct SocketBudget {
    large_in_use: usize,
    small_in_use: usize,
    /// Finished large-slot sockets kept for the next large flow.
    pool: SocketPool,
    /// Bytes held by inspection buffers and QUIC sniffers.
    inspect_bytes: usize,
    /// Inspected flows waiting for room in the inspection pool (their bytes wait in their
    /// socket's ring meanwhile): serviced again once the pool is under its bound.
    inspect_waiting: Vec<FlowId>,
}

impl SocketBudget {
    /// Whether a new flow gets a large slot.
    pub fn large_free(&self, config: &EngineConfig) -> bool {
        self.large_in_use < config.tcp_large_slots
    }

    /// A pooled large-slot socket, if one waits.
    pub fn take_pooled(&mut self) -> Option<OwnSocket> {
        self.pool.take()
    }

    /// A flow took a slot.
    pub fn open(&mut self, large: bool) {
        if large {
            self.large_in_use += 1;
        } else {
            self.small_in_use += 1;
        }
    }

    /// A flow gave its slot back.
    pub fn close(&mut self, large: bool) {
        if large {
            self.large_in_use -= 1;
        } else {
            self.small_in_use -= 1;
        }
    }

    /// Keep (or free) a finished large-slot flow's socket: see [`SocketPool::give`].
    pub fn recycle(&mut self, own: OwnSocket, from_app: u64, to_app: u64) {
        self.pool.give(own, from_app, to_app);
    }

    /// Sockets handed out again since the engine started.
    pub fn reused(&self) -> u64 {
        self.pool.reused
    }

    /// Inspection buffers grew by `n` bytes.
    #[inline]
    pub fn hold(&mut self, n: usize) {
        self.inspect_bytes += n;
    }

    /// Inspection buffers shrank by `n` bytes.
    #[inline]
    pub fn release(&mut self, n: usize) {
        self.inspect_bytes -= n;
    }

    /// An inspection buffer went from `before` to `after` bytes of capacity.
    #[inline]
    pub fn resize(&mut self, before: usize, after: usize) {
        self.inspect_bytes = self.inspect_bytes + after - before;
    }

    /// The inspection pool is over its bound: read nothing more into it now.
    #[inline]
    pub fn inspect_full(&self) -> bool {
        self.inspect_bytes > budget::INSPECT_TOTAL
    }

    /// Whether `n` more inspection bytes stay within the bound.
    #[inline]
    pub fn inspect_room(&self, n: usize) -> bool {
        self.inspect_bytes + n <= budget::INSPECT_TOTAL
    }

    /// Service `id` again once the inspection pool has room (`flows`: flows in the table, which
    /// bounds the list once duplicates are dropped).
    pub fn wait_for_room(&mut self, id: FlowId, flows: usize) {
        self.inspect_waiting.push(id);
        if self.inspect_waiting.len() > 2 * flows + 64 {
            self.inspect_waiting.sort_unstable();
            self.inspect_waiting.dedup();
        }
    }

    /// Move the flows waiting for inspection room into `dirty` once the pool has room.
    #[inline]
    pub fn wake_waiting(&mut self, dirty: &mut Vec<FlowId>) {
        if !self.inspect_waiting.is_empty() && self.inspect_bytes <= budget::INSPECT_TOTAL {
            dirty.append(&mut self.inspect_waiting);
        }
    }

    /// Bytes the slots in use, the pooled sockets and the inspection buffers account for.
    pub fn memory_bytes(&self, config: &EngineConfig) -> usize {
        let small = config.tcp_small_rx + config.tcp_small_tx;
        let large = config.tcp_large_rx + config.tcp_large_tx;
        self.small_in_use * (small + budget::TCP_FLOW_OVERHEAD)
            + (self.large_in_use + self.pool.len()) * (large + budget::TCP_FLOW_OVERHEAD)
            + self.inspect_bytes
    }
}
