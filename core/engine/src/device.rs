//! The smoltcp device: a slot for the one packet being ingested and a queue of packets for the
//! tunnel. No IO: the engine fills the slot, smoltcp fills the queue, the driver drains it.

use std::collections::VecDeque;

use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Packets for the tunnel, with their buffers recycled so the steady state allocates nothing.
pub(crate) struct TxQueue {
    mtu: usize,
    /// Packets for the tunnel, oldest first.
    pub(crate) packets: VecDeque<Vec<u8>>,
    /// Spare buffers.
    pool: Vec<Vec<u8>>,
    /// Bound on `packets` (oldest dropped beyond it: the driver is not draining).
    max_queued: usize,
    /// Packets dropped because the queue was full.
    pub(crate) overflow: u64,
    /// smoltcp was refused a transmit token (queue full) since the engine last cleared this:
    /// the flow being egressed must run again once the driver has drained the queue.
    pub(crate) starved: bool,
}

impl TxQueue {
    /// A cleared buffer from the pool.
    pub(crate) fn buffer(&mut self) -> Vec<u8> {
        let mut b = self
            .pool
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.mtu));
        b.clear();
        b
    }

    /// Give a buffer back.
    pub(crate) fn recycle(&mut self, b: Vec<u8>) {
        // Keep the pool bounded, and let oversized one-off buffers go.
        if self.pool.len() < 64 && b.capacity() <= self.mtu.max(1500) * 2 {
            self.pool.push(b);
        }
    }

    /// Whether smoltcp may queue another packet (it gets no token beyond `max_queued` and
    /// keeps its data for the next egress: backpressure instead of loss).
    fn has_room(&mut self) -> bool {
        let room = self.packets.len() < self.max_queued;
        if !room {
            self.starved = true;
        }
        room
    }

    /// Queue a packet for the tunnel. Hand-built packets (RSTs, DNS answers, UDP replies) may
    /// use twice the smoltcp allowance before the oldest are dropped.
    pub(crate) fn push(&mut self, packet: Vec<u8>) {
        if self.packets.len() >= 2 * self.max_queued {
            if let Some(old) = self.packets.pop_front() {
                self.overflow += 1;
                self.recycle(old);
            }
        }
        self.packets.push_back(packet);
    }
}

/// The device smoltcp's interface polls.
pub(crate) struct QueueDevice {
    /// The packet smoltcp should receive next (at most one: the engine ingests packet by packet
    /// so each new flow's socket exists before its SYN is processed).
    rx: Vec<u8>,
    rx_ready: bool,
    pub(crate) tx: TxQueue,
}

impl QueueDevice {
    pub(crate) fn new(mtu: usize, max_queued: usize) -> Self {
        QueueDevice {
            rx: Vec::with_capacity(mtu),
            rx_ready: false,
            tx: TxQueue {
                mtu,
                packets: VecDeque::new(),
                pool: Vec::new(),
                max_queued,
                overflow: 0,
                starved: false,
            },
        }
    }

    /// Put `packet` in the receive slot (one copy into a reused buffer).
    pub(crate) fn set_rx(&mut self, packet: &[u8]) {
        self.rx.clear();
        self.rx.extend_from_slice(packet);
        self.rx_ready = true;
    }

    /// Whether the receive slot still holds a packet (smoltcp did not take it).
    pub(crate) fn clear_rx(&mut self) {
        self.rx_ready = false;
    }

    /// Bytes held in queued packets, the pool and the receive slot.
    pub(crate) fn memory(&self) -> usize {
        self.tx
            .packets
            .iter()
            .chain(self.tx.pool.iter())
            .map(Vec::capacity)
            .sum::<usize>()
            + self.rx.capacity()
    }
}

pub(crate) struct RxToken<'a>(&'a [u8]);

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.0)
    }
}

pub(crate) struct TxToken<'a>(&'a mut TxQueue);

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut b = self.0.buffer();
        b.resize(len, 0);
        let r = f(&mut b);
        self.0.push(b);
        r
    }
}

impl phy::Device for QueueDevice {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        if !self.rx_ready {
            return None;
        }
        self.rx_ready = false;
        Some((RxToken(&self.rx), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        if !self.tx.has_room() {
            return None;
        }
        Some(TxToken(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.tx.mtu;
        // The engine verified every incoming checksum in `packet::parse`; smoltcp computes
        // outgoing ones only.
        let mut sums = ChecksumCapabilities::default();
        sums.ipv4 = Checksum::Tx;
        sums.tcp = Checksum::Tx;
        sums.udp = Checksum::Tx;
        sums.icmpv4 = Checksum::Tx;
        sums.icmpv6 = Checksum::Tx;
        caps.checksum = sums;
        caps
    }
}
