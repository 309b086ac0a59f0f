//! Embargo's application layer: what every shell needs and none should write again.
//!
//! The core crates below it decide (`embargo-policy`), inspect (`embargo-engine`), move packets
//! (`embargo-driver`) and remember (`embargo-history`); this crate puts them together the one
//! way every shell uses them, so the Linux `embargo` command and the UniFFI bindings behind
//! the Android and iOS apps are thin: argument parsing and output, FFI types and hooks.
//!
//! - [`store`]: the state directory, one layout on every platform: owner-only, every file
//!   written atomically (lists, per-app settings, pauses, allowlist, settings).
//! - [`list`]: [`load_list`] with one format-detection window, and the judgement of a load.
//! - [`rules`]: policy assembly ([`assemble`]) and [`Rules`], through which every change of
//!   settings or lists reaches a running engine.
//! - [`compiled`]: the policy's rule sets in one file, compiled by one process and mapped
//!   by another (iOS: the app, and the extension that must not parse lists).
//! - [`record`]: engine decisions as history rows, so the history stays a leaf; the
//!   history's health for status screens.
//! - [`start()`]: the engine, the driver loop and the history recording over a tunnel.
//! - [`fetch`]: lists that keep themselves current (conditional downloads, the schedule, the
//!   atomic swap that keeps the last good copy); [`catalogue`]: well-known lists by name.
//! - [`input`]: bounded reads of the files a person points Embargo at.

pub mod catalogue;
pub mod compiled;
pub mod fetch;
pub mod input;
pub mod list;
pub mod record;
pub mod rules;
mod start;
pub mod store;

pub use list::{load_list, LoadedList, DETECT_WINDOW};
pub use record::{history_event, HistoryHealth, HistoryWatch, WallClock};
pub use rules::{assemble, load_ip_database, with_ip_databases, IpDatabase, ReloadReport, Rules};
pub use start::{start, Config, Started};
pub use store::{check_private, write_atomic, DefaultRules, Settings, Store};
