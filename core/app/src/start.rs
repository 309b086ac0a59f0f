//! Starting the tunnel: the engine over the rules in force, the driver loop over the tunnel,
//! and every decision recorded in the history, wired the same way for every shell (in the
//! manner of onetun's `start_tunnels`). The shell brings what only it has: the tunnel, and
//! hooks that protect sockets, name the app of a flow and show events live.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use embargo_driver::{DriverConfig, DriverHandle, HookError, Hooks, Tunnel};
use embargo_engine::{Engine, EngineConfig, Event};
use embargo_history::Recorder;
use embargo_policy::{PolicyHandle, Protocol};

use crate::record::{history_event, WallClock};

/// What [`start`] runs with, besides the tunnel and the shell's hooks.
pub struct Config {
    /// The engine's settings (MTU, DNS upstream, limits).
    pub engine: EngineConfig,
    /// The driver loop's settings.
    pub driver: DriverConfig,
    /// The policy the engine decides through ([`crate::Rules::handle`]): a policy stored into
    /// it applies to the next decision. The handle itself, not a closure over it: it also
    /// answers `app_can_change`, so traffic no per-app setting could change does not wait for
    /// the platform's app lookup.
    pub policy: Arc<PolicyHandle>,
    /// Where every decision is recorded (`None`: history off).
    pub history: Option<Recorder>,
}

/// A started tunnel: the driver's handle (stop, stats, packets in packet mode) and the thread
/// that runs the loop until it stops or fails.
pub struct Started {
    /// Stops the loop, reads its counters, pushes packets in packet mode.
    pub handle: DriverHandle,
    /// Ends with the loop's outcome.
    pub thread: JoinHandle<std::io::Result<()>>,
}

/// Starts the engine and the driver loop over `tunnel`, with the shell's `hooks` and the
/// history recording of [`Config::history`].
pub fn start(tunnel: Tunnel, hooks: Arc<dyn Hooks>, config: Config) -> std::io::Result<Started> {
    let engine = Engine::new(config.engine, config.policy, Instant::now());
    let hooks = Arc::new(AppHooks {
        shell: hooks,
        history: config.history,
        clock: WallClock::now(),
    });
    let (handle, thread) = embargo_driver::start(tunnel, engine, hooks, config.driver)?;
    Ok(Started { handle, thread })
}

/// The shell's hooks, with every decision recorded in the history first.
struct AppHooks {
    shell: Arc<dyn Hooks>,
    history: Option<Recorder>,
    clock: WallClock,
}

impl Hooks for AppHooks {
    fn protect(&self, fd: RawFd) -> Result<(), HookError> {
        self.shell.protect(fd)
    }

    fn app_of_flow(&self, protocol: Protocol, src: SocketAddr, dst: SocketAddr) -> Option<String> {
        self.shell.app_of_flow(protocol, src, dst)
    }

    fn on_event(&self, event: &Event) {
        if let (Event::Decision(d), Some(history)) = (event, &self.history) {
            // A queue push: never blocks; a full queue is counted by the history.
            history.record(history_event(self.clock.ms(d.time), d));
        }
        self.shell.on_event(event);
    }
}
