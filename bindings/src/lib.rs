//! Embargo's API for the Android and iOS apps (and any UniFFI language): one [`Embargo`]
//! object owning the rules, the history, the live events and the tunnel.
//!
//! Generated with UniFFI proc-macros (no UDL); `bindings/generate.sh` builds the library and
//! writes Kotlin, Swift and Python bindings. Layers:
//! - rules and check ([`Embargo::set_list`], app settings, the allowlist, [`Embargo::check`]),
//!   persisted in the storage directory ([`rules`]);
//! - history: queries with cursor pages, aggregates, hide filters, exports ([`history`]);
//! - live events: [`Embargo::next_event`], async without any runtime ([`events`]);
//! - the tunnel: [`Embargo::start`] with the tunnel's descriptor (packets never cross the FFI),
//!   or [`Embargo::start_with_packets`] on platforms without one ([`hooks`]), or in batches
//!   ([`Embargo::start_with_packet_batches`], [`Embargo::push_packets`]; iOS) ([`packets`]).
//!
//! No panic crosses the boundary: every exported body runs under `catch_unwind` and a panic
//! becomes [`EmbargoError::Internal`] ([`Embargo::debug_panic`] proves it in the tests). Every
//! foreign method returns `Result`, so an exception thrown in Kotlin or Swift inside a hook
//! becomes a [`HookError`], not a crash.
#![warn(missing_docs)]

uniffi::setup_scaffolding!();

pub mod codec;
pub mod config;
pub mod embargo;
mod error;
pub mod events;
pub mod history;
pub mod hooks;
pub mod packets;
pub mod records;
mod reload;
pub mod rules;
#[cfg(target_os = "linux")]
pub mod tun;
pub mod updates;

/// The engine's test harness (packet builders).
#[cfg(test)]
use embargo_test_support as engine_harness;

pub use config::EmbargoConfig;
pub use embargo::{Embargo, ProcessRole, TunnelStatus};
pub use error::{EmbargoError, HookError};
pub use events::{ConnectionEvent, LiveEvent, TunnelState};
pub use hooks::{LogLevel, LogSink, PacketSink, PlatformHooks};
pub use packets::PacketBatchSink;
pub use reload::CompiledRules;

/// Sends the core's log lines at `level` and above to `sink` (replacing an earlier sink).
/// Returns `false` if the process already had another logger (then lines go there).
#[uniffi::export]
pub fn set_log_sink(sink: std::sync::Arc<dyn LogSink>, level: LogLevel) -> bool {
    hooks::set_log_sink(sink, level)
}

/// The version of this library (the crate version).
#[uniffi::export]
pub fn library_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
