//! The socket budget: the flows' rings, the bytes by which busy flows grew them, and the
//! bytes inspection buffers hold.
//!
//! Every TCP flow starts with small rings (`tcp_small_rx`/`tx`). A flow that fills one (a
//! bulk upload filling the receive ring, a download keeping the send ring full) has it doubled
//! in place (smoltcp patched: `third_party/smoltcp/PATCHES.md`), up to `tcp_max_rx`/`tx`, as
//! long as all flows' growth stays within `tcp_grow_total`; the grown bytes come back when the
//! flow ends. So an idle connection never holds a large ring, and the worst case in
//! [`crate::budget`] is the initial rings of every flow plus `tcp_grow_total`.

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;

use crate::api::FlowId;
use crate::budget;
use crate::config::EngineConfig;

/// One flow's socket: the set it lives in alone, and its handle there.
pub(crate) type OwnSocket = (SocketSet<'static>, SocketHandle);

/// Which of a flow's rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ring {
    /// From the app (what it may send ahead).
    Rx,
    /// To the app (what the server sent that the app has not acknowledged).
    Tx,
}

/// What the flows hold of the engine's memory budget (see [`crate::budget`]): sockets, rings
/// and inspection bytes.
#[derive(Default)]
pub(crate) struct SocketBudget {
    /// TCP flows holding a socket.
    flows: usize,
    /// Bytes of the rings flows hold at their initial sizes (within `tcp_ring_total`).
    rings: usize,
    /// Bytes of ring grown beyond the initial sizes (within `tcp_grow_total`).
    grown: usize,
    /// Ring growths since the engine started.
    growths: u64,
    /// Bytes held by inspection buffers and QUIC sniffers.
    inspect_bytes: usize,
    /// Inspected flows waiting for room in the inspection pool (their bytes wait in their
    /// socket's ring meanwhile): serviced again once the pool is under its bound.
    inspect_waiting: Vec<FlowId>,
}

/// The initial size and the configured maximum of `ring`.
fn sizes(config: &EngineConfig, ring: Ring) -> (usize, usize) {
    match ring {
        Ring::Rx => (config.tcp_small_rx, config.tcp_max_rx),
        Ring::Tx => (config.tcp_small_tx, config.tcp_max_tx),
    }
}

fn capacity(sock: &tcp::Socket<'static>, ring: Ring) -> usize {
    match ring {
        Ring::Rx => sock.recv_capacity(),
        Ring::Tx => sock.send_capacity(),
    }
}

impl SocketBudget {
    /// A new flow's socket: no ring yet (each comes with the first bytes that need it), a
    /// receive window of the initial ring advertised, the window scale chosen for the largest.
    pub fn new_socket(&mut self, config: &EngineConfig) -> tcp::Socket<'static> {
        let mut sock = tcp::Socket::new(
            tcp::SocketBuffer::new(Vec::new()),
            tcp::SocketBuffer::new(Vec::new()),
        );
        sock.set_recv_capacity_max(config.tcp_max_rx);
        sock.set_recv_reserve(config.tcp_small_rx);
        self.flows += 1;
        sock
    }

    /// A flow gave its socket back, with whatever rings it held.
    pub fn close(&mut self, config: &EngineConfig, sock: &tcp::Socket<'static>) {
        self.flows -= 1;
        for ring in [Ring::Rx, Ring::Tx] {
            let (small, _) = sizes(config, ring);
            let held = capacity(sock, ring);
            self.rings -= held.min(small);
            self.grown -= held.saturating_sub(small);
        }
    }

    /// Give a ring to a flow that holds none (its first bytes either way, or the first after
    /// it gave its ring back), at the initial size, within the ring budget. Returns whether
    /// the flow has one now. The caller checks the capacity is 0.
    pub fn take(
        &mut self,
        config: &EngineConfig,
        sock: &mut tcp::Socket<'static>,
        ring: Ring,
    ) -> bool {
        let (small, _) = sizes(config, ring);
        if self.rings + small > config.tcp_ring_total {
            return false;
        }
        let storage = vec![0u8; small];
        let ok = match ring {
            Ring::Rx => {
                drop(sock.replace_recv_buffer(storage));
                true
            }
            Ring::Tx => sock.replace_send_buffer(storage).is_ok(),
        };
        if ok {
            self.rings += small;
        }
        ok
    }

    /// Whether a flow holding no send ring could take one now.
    pub fn tx_room(&self, config: &EngineConfig) -> bool {
        self.rings + config.tcp_small_tx <= config.tcp_ring_total
    }

    /// Give back `ring` of an idle flow: empty (the receive ring: every byte relayed, nothing
    /// out of order; the send ring: all of it acknowledged) and at its initial size (a grown
    /// ring stays: its flow moves bulk data). The receive window stays advertised. Returns
    /// whether it was given back.
    pub fn give_back(
        &mut self,
        config: &EngineConfig,
        sock: &mut tcp::Socket<'static>,
        ring: Ring,
    ) -> bool {
        let (small, _) = sizes(config, ring);
        if capacity(sock, ring) != small {
            return false;
        }
        let given = match ring {
            Ring::Rx => sock.release_recv_buffer().is_some(),
            Ring::Tx => sock.send_queue() == 0 && sock.replace_send_buffer(Vec::new()).is_ok(),
        };
        if given {
            self.rings -= small;
        }
        given
    }

    /// Ring growths since the engine started.
    pub fn growths(&self) -> u64 {
        self.growths
    }

    /// Double `ring` of a flow's socket that filled it, up to the configured maximum and
    /// within the grow budget. Returns whether it grew (not: at its maximum, or the budget
    /// is spent).
    pub fn grow(
        &mut self,
        config: &EngineConfig,
        sock: &mut tcp::Socket<'static>,
        ring: Ring,
    ) -> bool {
        let (_, max) = sizes(config, ring);
        let capacity = capacity(sock, ring);
        let to = capacity.saturating_mul(2).min(max);
        if capacity == 0 || to <= capacity {
            return false;
        }
        let by = to - capacity;
        if self.grown + by > config.tcp_grow_total {
            return false;
        }
        // Zero-allocated: above the allocator's mmap threshold, fresh pages that become
        // resident only as the flow fills them.
        let storage = vec![0u8; to];
        match ring {
            Ring::Rx => drop(sock.replace_recv_buffer(storage)),
            Ring::Tx => {
                if sock.replace_send_buffer(storage).is_err() {
                    return false;
                }
            }
        }
        self.grown += by;
        self.growths += 1;
        true
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

    /// Bytes the flows' sockets and rings and the inspection buffers account for.
    pub fn memory_bytes(&self) -> usize {
        self.flows * budget::TCP_FLOW_OVERHEAD + self.rings + self.grown + self.inspect_bytes
    }
}
