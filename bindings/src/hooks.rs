//! Foreign traits the app implements (platform hooks, packet sink, log sink), and the adapter
//! that plugs them into the driver.
//!
//! Every foreign method returns `Result<_, HookError>`: an exception thrown in Kotlin or Swift
//! arrives as an error here (via `From<UnexpectedUniFFICallbackError>`), is logged and shown as
//! a [`LiveEvent::Error`], and never unwinds through the packet path.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::{Arc, OnceLock, RwLock};

use embargo_engine::{Event, FlowId};

use crate::events::{ConnectionEvent, EventBus, LiveEvent};
use crate::records::Protocol;
use crate::rules::explain;
use crate::HookError;

/// What the platform does for the tunnel. Android: `VpnService.protect` and
/// `ConnectivityManager.getConnectionOwnerUid` + the package name; iOS: protect is a no-op
/// (the extension's sockets bypass the tunnel) and the app of a flow is unknown.
#[uniffi::export(foreign)]
pub trait PlatformHooks: Send + Sync {
    /// Keeps socket `fd` out of the tunnel (called before every upstream connect).
    fn protect(&self, fd: i32) -> Result<(), HookError>;
    /// The app the flow `src -> dst` belongs to (`"ip:port"` text, IPv6 in brackets), if the
    /// platform can tell. Called on a worker thread, never on the packet path. Published as
    /// `app_owner` (`appOwner`), the name the apps implement.
    #[uniffi::method(name = "app_owner")]
    fn app_of_flow(
        &self,
        protocol: Protocol,
        src: String,
        dst: String,
    ) -> Result<Option<String>, HookError>;
}

/// Receives packets for the apps in packet-interface mode (platforms with no descriptor).
#[uniffi::export(foreign)]
pub trait PacketSink: Send + Sync {
    /// Writes one IP packet towards the apps.
    fn write_packet(&self, packet: Vec<u8>) -> Result<(), HookError>;
}

/// Level of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, uniffi::Enum)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something is off.
    Warn,
    /// Normal operation worth noting.
    Info,
    /// Detail for debugging.
    Debug,
    /// Everything.
    Trace,
}

impl From<log::Level> for LogLevel {
    fn from(l: log::Level) -> Self {
        match l {
            log::Level::Error => LogLevel::Error,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Info => LogLevel::Info,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Trace => LogLevel::Trace,
        }
    }
}

impl From<LogLevel> for log::LevelFilter {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// Receives the core's log lines (Android: Logcat; iOS: os_log).
#[uniffi::export(foreign)]
pub trait LogSink: Send + Sync {
    /// One log line: level, module path (e.g. `embargo_driver`), text.
    fn log(&self, level: LogLevel, target: String, message: String) -> Result<(), HookError>;
}

/// The current sink; the `log` facade allows one logger per process, so the logger installed
/// once forwards to whatever sink is set now.
static SINK: RwLock<Option<Arc<dyn LogSink>>> = RwLock::new(None);
static INSTALLED: OnceLock<bool> = OnceLock::new();

struct Forwarder;

impl log::Log for Forwarder {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let sink = match SINK.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if let Some(sink) = sink {
            // A failing sink has nowhere to report to; logging its failure would recurse.
            let _ = sink.log(
                record.level().into(),
                record.target().to_owned(),
                record.args().to_string(),
            );
        }
    }

    fn flush(&self) {}
}

/// Sets where log lines go and the most detailed level sent. Replaces an earlier sink.
/// Returns `false` when another logger was installed in this process before (then the lines
/// go there, not to this sink).
pub(crate) fn set_log_sink(sink: Arc<dyn LogSink>, level: LogLevel) -> bool {
    match SINK.write() {
        Ok(mut s) => *s = Some(sink),
        Err(poisoned) => *poisoned.into_inner() = Some(sink),
    }
    let installed = *INSTALLED.get_or_init(|| log::set_logger(&Forwarder).is_ok());
    if installed {
        log::set_max_level(level.into());
    }
    installed
}

/// The driver's hooks: the app's platform hooks plus live events (the history is recorded
/// by `embargo_app::start`).
pub(crate) struct DriverHooks {
    pub(crate) platform: Arc<dyn PlatformHooks>,
    pub(crate) bus: Arc<EventBus>,
}

impl embargo_driver::Hooks for DriverHooks {
    fn protect(&self, fd: RawFd) -> Result<(), embargo_driver::HookError> {
        self.platform.protect(fd).map_err(|e| {
            let message = format!("protect({fd}) failed: {e}");
            self.bus.push(LiveEvent::Error {
                message: message.clone(),
            });
            embargo_driver::HookError::new(message)
        })
    }

    fn app_of_flow(
        &self,
        protocol: embargo_policy::Protocol,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> Option<String> {
        match self
            .platform
            .app_of_flow(protocol, src.to_string(), dst.to_string())
        {
            Ok(app) => app,
            Err(e) => {
                log::warn!("app_owner hook ({src} -> {dst}) failed: {e}");
                self.bus.push(LiveEvent::Error {
                    message: format!("app_owner hook failed: {e}"),
                });
                None
            }
        }
    }

    fn on_event(&self, event: &Event) {
        let Event::Decision(d) = event else {
            return;
        };
        let time_ms = embargo_history::now_ms();
        let protocol = if d.flow == FlowId::DNS || d.dns_type.is_some() {
            Protocol::Dns
        } else {
            d.protocol
        };
        let target = d.name.clone().unwrap_or_else(|| d.addr.to_string());
        self.bus.push(LiveEvent::Decision {
            event: ConnectionEvent {
                time_ms,
                app: d.app.clone(),
                name: d.name.clone(),
                addr: d.addr.to_string(),
                port: d.port,
                protocol,
                decision: explain(target, d.app.as_deref(), &d.decision),
            },
        });
    }
}

/// Hooks that protect nothing and name no app: the crate's tests of the packet paths.
#[cfg(test)]
pub(crate) struct NoHooks;

#[cfg(test)]
impl PlatformHooks for NoHooks {
    fn protect(&self, _fd: i32) -> Result<(), HookError> {
        Ok(())
    }
    fn app_of_flow(
        &self,
        _p: crate::records::Protocol,
        _s: String,
        _d: String,
    ) -> Result<Option<String>, HookError> {
        Ok(None)
    }
}
