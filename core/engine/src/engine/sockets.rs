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

/// What the flows hold of the engine's memory budget (see [`crate::budget`]): socket slots and
/// inspection bytes.
#[derive(Default)]
pub(crate) struct SocketBudget {
    /// TCP flows holding a socket (each with at least its initial rings).
    flows: usize,
    /// Bytes of ring grown beyond the initial sizes, all flows together.
    grown: usize,
    /// Ring growths since the engine started.
    growths: u64,
    /// Flows whose (initial) send ring is given back while it has nothing to send.
    tx_released: usize,
    /// Flows whose (initial) receive ring is given back while it holds nothing.
    rx_released: usize,
    /// Bytes held by inspection buffers and QUIC sniffers.
    inspect_bytes: usize,
    /// Inspected flows waiting for room in the inspection pool (their bytes wait in their
    /// socket's ring meanwhile): serviced again once the pool is under its bound.
    inspect_waiting: Vec<FlowId>,
}

impl SocketBudget {
    /// A flow took a socket.
    pub fn open(&mut self) {
        self.flows += 1;
    }

    /// A flow gave its socket back, with the `grown` bytes its rings had grown by, and its
    /// send ring given back already or not.
    pub fn close(&mut self, grown: usize, tx_released: bool, rx_released: bool) {
        self.flows -= 1;
        self.grown -= grown;
        self.tx_released -= usize::from(tx_released);
        self.rx_released -= usize::from(rx_released);
    }

    /// Give back the receive ring of a flow that holds nothing from its app (every byte
    /// relayed, nothing out of order) at its initial size; the window stays advertised, and
    /// [`SocketBudget::restore_rx`] supplies a ring before the next segment with data.
    /// Returns whether it was given back.
    pub fn release_rx(&mut self, config: &EngineConfig, sock: &mut tcp::Socket<'static>) -> bool {
        if sock.recv_capacity() != config.tcp_small_rx || sock.release_recv_buffer().is_none() {
            return false;
        }
        self.rx_released += 1;
        true
    }

    /// A receive ring again for a flow that gave its own back, before a segment with data.
    pub fn restore_rx(&mut self, config: &EngineConfig, sock: &mut tcp::Socket<'static>) {
        drop(sock.replace_recv_buffer(vec![0u8; config.tcp_small_rx]));
        self.rx_released -= 1;
    }

    /// Give back the send ring of a flow with nothing to send (all of it acknowledged) that
    /// never grew it: a connection kept open between requests holds no send ring. Returns
    /// whether it was given back.
    pub fn release_tx(&mut self, sock: &mut tcp::Socket<'static>) -> bool {
        if sock.send_queue() > 0 || sock.send_capacity() == 0 {
            return false;
        }
        if sock.replace_send_buffer(Vec::new()).is_err() {
            return false;
        }
        self.tx_released += 1;
        true
    }

    /// A send ring again for a flow that gave its own back, before bytes are written to it.
    pub fn restore_tx(&mut self, config: &EngineConfig, sock: &mut tcp::Socket<'static>) {
        if sock
            .replace_send_buffer(vec![0u8; config.tcp_small_tx])
            .is_ok()
        {
            self.tx_released -= 1;
        }
    }

    /// Ring growths since the engine started.
    pub fn growths(&self) -> u64 {
        self.growths
    }

    /// Double `ring` of a flow's socket that filled it, up to the configured maximum and
    /// within the grow budget. Returns the bytes it grew by (0: at its maximum, or the
    /// budget is spent).
    pub fn grow(
        &mut self,
        config: &EngineConfig,
        sock: &mut tcp::Socket<'static>,
        ring: Ring,
    ) -> usize {
        let (capacity, max) = match ring {
            Ring::Rx => (sock.recv_capacity(), config.tcp_max_rx),
            Ring::Tx => (sock.send_capacity(), config.tcp_max_tx),
        };
        let to = capacity.saturating_mul(2).min(max);
        if to <= capacity {
            return 0;
        }
        let by = to - capacity;
        if self.grown + by > config.tcp_grow_total {
            return 0;
        }
        // Zero-allocated: above the allocator's mmap threshold, fresh pages that become
        // resident only as the flow fills them.
        let storage = vec![0u8; to];
        match ring {
            Ring::Rx => drop(sock.replace_recv_buffer(storage)),
            Ring::Tx => {
                if sock.replace_send_buffer(storage).is_err() {
                    return 0;
                }
            }
        }
        self.grown += by;
        self.growths += 1;
        by
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
    pub fn memory_bytes(&self, config: &EngineConfig) -> usize {
        let initial = config.tcp_small_rx + config.tcp_small_tx;
        self.flows * (initial + budget::TCP_FLOW_OVERHEAD) + self.grown + self.inspect_bytes
            - self.tx_released * config.tcp_small_tx
            - self.rx_released * config.tcp_small_rx
    }
}
