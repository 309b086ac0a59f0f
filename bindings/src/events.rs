//! Live events for the app's live view and notification counter: decisions, errors and tunnel
//! state changes, through a bounded queue that never blocks the packet path.
//!
//! The queue is an [`async_channel`]: its `recv` future needs no runtime (it is woken by the
//! sender), so UniFFI can drive it from a Kotlin coroutine or a Swift task directly. When the app
//! does not read for a while the oldest events are dropped (and counted): the live view wants
//! the newest, and the history keeps everything anyway.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::records::Protocol;
use crate::rules::CheckResult;

/// State of the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, uniffi::Enum)]
#[serde(rename_all = "snake_case")]
pub enum TunnelState {
    /// Not running.
    Stopped,
    /// Running: packets are inspected.
    Running,
    /// Stopped by an error (see the event's message or [`crate::TunnelStatus::error`]).
    Failed,
}

/// One decision about a connection or a DNS question, as it happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, uniffi::Record)]
pub struct ConnectionEvent {
    /// When (ms since the Unix epoch, UTC).
    pub time_ms: i64,
    /// The app, if known.
    pub app: Option<String>,
    /// The host name, if known.
    pub name: Option<String>,
    /// Destination address (for DNS: the resolver asked).
    pub addr: String,
    /// Destination port.
    pub port: u16,
    /// Transport, or DNS for a name lookup.
    pub protocol: Protocol,
    /// The decision, explained (verdict, reason, rule, owner, country, certainty).
    pub decision: CheckResult,
}

/// Something the live view shows.
// A decision is the common case, so the size difference costs nothing; boxing would not cross
// the FFI (UniFFI lowers records by value).
// Its byte form (`crate::codec::encode_live_event`) is serde's, tagged by `kind`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, uniffi::Enum)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A connection or DNS question was allowed or blocked.
    Decision {
        /// What happened.
        event: ConnectionEvent,
    },
    /// Something failed while running (a platform hook, the history store).
    Error {
        /// For a person.
        message: String,
    },
    /// The tunnel started, stopped or failed.
    StateChanged {
        /// The new state.
        state: TunnelState,
        /// Why, when it failed.
        message: Option<String>,
    },
}

/// The bounded queue behind [`crate::Embargo::next_event`].
pub(crate) struct EventBus {
    tx: async_channel::Sender<LiveEvent>,
    rx: async_channel::Receiver<LiveEvent>,
    dropped: AtomicU64,
}

impl EventBus {
    /// A queue holding at most `capacity` events (at least 1).
    pub(crate) fn new(capacity: usize) -> EventBus {
        let (tx, rx) = async_channel::bounded(capacity.max(1));
        EventBus {
            tx,
            rx,
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues an event without waiting; when full, the oldest event makes room.
    pub(crate) fn push(&self, event: LiveEvent) {
        let mut event = event;
        // Two tries: a concurrent pusher can refill the slot we freed; then this event is the
        // one dropped rather than looping on the packet path.
        for _ in 0..2 {
            match self.tx.try_send(event) {
                Ok(()) => return,
                Err(async_channel::TrySendError::Full(back)) => {
                    event = back;
                    if self.rx.try_recv().is_ok() {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(async_channel::TrySendError::Closed(_)) => return,
            }
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits for the next event; `None` once the queue is closed and empty.
    pub(crate) async fn next(&self) -> Option<LiveEvent> {
        self.rx.recv().await.ok()
    }

    /// The next event if one is queued.
    pub(crate) fn try_next(&self) -> Option<LiveEvent> {
        self.rx.try_recv().ok()
    }

    /// Events dropped because the app did not read them in time.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Ends every wait (with `None` once drained).
    pub(crate) fn close(&self) {
        self.tx.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    fn err(n: u32) -> LiveEvent {
        LiveEvent::Error {
            message: n.to_string(),
        }
    }

    #[test]
    fn full_queue_drops_the_oldest() {
        let bus = EventBus::new(2);
        bus.push(err(1));
        bus.push(err(2));
        bus.push(err(3));
        assert_eq!(bus.dropped(), 1);
        assert_eq!(bus.try_next(), Some(err(2)));
        assert_eq!(bus.try_next(), Some(err(3)));
        assert_eq!(bus.try_next(), None);
    }

    #[test]
    fn closed_queue_ends_waits() {
        let bus = EventBus::new(4);
        bus.push(err(1));
        bus.close();
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(bus.next());
        assert_eq!(
            f.as_mut().poll(&mut cx),
            std::task::Poll::Ready(Some(err(1)))
        );
        let mut f = std::pin::pin!(bus.next());
        assert_eq!(f.as_mut().poll(&mut cx), std::task::Poll::Ready(None));
    }
}
