//! Finished large-slot sockets kept for the next flow instead of freed.
//!
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
pub(crate) struct SocketPool {
    idle: Vec<OwnSocket>,
    /// Sockets handed out again since the engine started.
    pub reused: u64,
}

impl SocketPool {
    /// Sockets waiting.
    pub fn len(&self) -> usize {
        self.idle.len()
    }

    /// A kept socket, closed and ready for `listen`.
    pub fn take(&mut self) -> Option<OwnSocket> {
        let own = self.idle.pop()?;
        self.reused += 1;
        Some(own)
    }

    /// Keeps the socket of a finished large-slot flow that moved `from_app` and `to_app`
    /// bytes, or frees it (drops it) when the pool is full or the flow moved much.
    pub fn give(&mut self, (mut set, handle): OwnSocket, from_app: u64, to_app: u64) {
        if self.idle.len() >= POOLED_LARGE || from_app.max(to_app) > RECYCLE_MAX_BYTES {
            return;
        }
        // Closed now, whatever state the flow ended in: a pooled socket is never polled, and
        // `listen` accepts only a closed socket.
        set.get_mut::<tcp::Socket>(handle).abort();
        self.idle.push((set, handle));
    }
}
