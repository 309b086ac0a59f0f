//! Embargo's sans-IO tunnel engine: raw IP packets, upstream socket events and the time go in;
//! packets for the tunnel, commands for the driver and decision events come out.
//!
//! # Architecture
//!
//! TODO: filled in below as the engine lands.

pub mod api;
pub mod budget;
pub mod config;
pub mod dns;
mod engine;
pub mod inspect;

pub use api::{Command, Decide, DecisionEvent, DropReason, Event, FlowId, Stats, UpstreamEvent};
pub use config::{DnsBlockAnswer, EngineConfig};
pub use engine::Engine;
