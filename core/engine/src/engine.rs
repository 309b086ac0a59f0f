//! The engine: the one public state machine.

use std::sync::Arc;
use std::time::Instant;

use crate::api::{Command, Decide, Event, FlowId, Stats, UpstreamEvent};
use crate::config::EngineConfig;

/// The sans-IO tunnel engine. See the crate documentation for the architecture and the driver
/// loop that runs it.
pub struct Engine {
    config: EngineConfig,
    policy: Arc<dyn Decide>,
    stats: Stats,
    epoch: Instant,
}

impl Engine {
    /// A new engine. `now` is the driver's clock at start (all later `now`s must not go back).
    pub fn new(config: EngineConfig, policy: Arc<dyn Decide>, now: Instant) -> Self {
        Engine {
            config,
            policy,
            stats: Stats::default(),
            epoch: now,
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

    /// One raw IP packet the app sent into the tunnel. Never panics; bad packets are counted.
    pub fn handle_tun_packet(&mut self, now: Instant, packet: &[u8]) {
        let _ = (now, packet, self.epoch);
        self.stats.packets_in += 1;
    }

    /// Something happened on a host socket.
    pub fn handle_upstream(&mut self, now: Instant, event: UpstreamEvent<'_>) {
        let _ = (now, event);
    }

    /// How many bytes from the server the engine can take for `flow` right now (what the driver
    /// should read from the host socket at most). 0 for unknown flows.
    pub fn upstream_window(&self, flow: FlowId) -> usize {
        let _ = flow;
        0
    }

    /// Bytes the server sent on `flow`; returns how many were taken (at most
    /// [`Engine::upstream_window`]). Prefer [`Engine::recv_upstream_with`], which lets the driver
    /// read straight into the stack's buffer.
    pub fn write_upstream_data(&mut self, now: Instant, flow: FlowId, data: &[u8]) -> usize {
        let _ = (now, flow, data);
        0
    }

    /// Zero-copy variant of [`Engine::write_upstream_data`]: `read` is called with the free
    /// part of the flow's send buffer (e.g. `|buf| socket.read(buf)`) and returns how many bytes
    /// it filled. Returns `read`'s result, or `None` when the flow is unknown or has no room
    /// (then `read` is not called).
    pub fn recv_upstream_with<F, E>(
        &mut self,
        now: Instant,
        flow: FlowId,
        read: F,
    ) -> Option<Result<usize, E>>
    where
        F: FnOnce(&mut [u8]) -> Result<usize, E>,
    {
        let _ = (now, flow, read);
        None
    }

    /// Bytes the app sent on `flow`, for the upstream socket: `write` is called with the next
    /// contiguous bytes (e.g. `|buf| socket.write(buf)`) and returns how many it took; the rest
    /// stays in the engine (and its window closes: backpressure to the app). Returns `write`'s
    /// result, or `None` when nothing is waiting. Call until it returns `None`, `Some(Ok(0))` or
    /// an error.
    pub fn read_app_data<F, E>(
        &mut self,
        now: Instant,
        flow: FlowId,
        write: F,
    ) -> Option<Result<usize, E>>
    where
        F: FnOnce(&[u8]) -> Result<usize, E>,
    {
        let _ = (now, flow, write);
        None
    }

    /// The driver's answer to [`Command::ResolveApp`] (`None`: the owner could not be found).
    pub fn app_resolved(&mut self, now: Instant, flow: FlowId, app: Option<String>) {
        let _ = (now, flow, app);
    }

    /// Run timers (retransmissions, inspection and connect deadlines, idle expiry). Call when
    /// [`Engine::poll_timeout`] has passed; calling early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
    }

    /// The next deadline, `None` when nothing is scheduled: the driver then sleeps until IO
    /// (no wake-ups while idle).
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Next packet for the tunnel (to the app): written into `buf`, returns its length. A packet
    /// longer than `buf` is dropped (size `buf` to the MTU).
    pub fn poll_tun_packet(&mut self, buf: &mut [u8]) -> Option<usize> {
        let _ = buf;
        None
    }

    /// Next command for the driver.
    pub fn poll_command(&mut self) -> Option<Command> {
        None
    }

    /// Next event for the history.
    pub fn poll_event(&mut self) -> Option<Event> {
        None
    }

    /// Counters and gauges.
    pub fn stats(&self) -> Stats {
        self.stats
    }
}
