//! Embargo's sans-IO tunnel engine: raw IP packets, upstream socket events and the time go in;
//! packets for the tunnel, commands for the driver and decision events come out.
//!
//! # Architecture
//!
//! TODO: filled in below as the engine lands.

pub mod api;
pub mod budget;
pub mod config;
mod device;
pub mod dns;
mod dnswire;
mod engine;
pub mod inspect;
mod names;
mod packet;

pub use api::{Command, Decide, DecisionEvent, DropReason, Event, FlowId, Stats, UpstreamEvent};
pub use config::{DnsBlockAnswer, EngineConfig};
pub use engine::Engine;
