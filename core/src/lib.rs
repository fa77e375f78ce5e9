//! The pure core of txpatterns: everything that decides what a detection is, with no I/O.
//!
//! docs/patterns.md is the specification. This crate implements it twice: an incremental
//! [`engine`] fast enough for the pipeline, and a [`reference`] engine that recomputes
//! everything from the raw rows after each chunk, written for clarity. Every other crate (the
//! uploader, the consumer, the detector, `txp verify`) uses these types; none of them re-implements
//! a rule. No tokio, no database, no filesystem: callers hand in bytes and get values back.

pub mod aggregate;
pub mod contract;
pub mod decimal;
pub mod detection;
pub mod encoding;
pub mod engine;
pub mod fuzzing;
pub mod generate;
pub mod importance;
pub mod layout;
pub mod message;
mod order_stats;
pub mod output;
pub mod reference;
pub mod shard;
pub mod thresholds;

/// The hash map of the hot paths: foldhash is several times faster than SipHash on short
/// names and still seeded per process.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub use aggregate::{ChunkAggregate, PairAggregate};
pub use contract::{ContractError, Rejection};
pub use detection::{Detection, Pattern};
pub use engine::Engine;
pub use importance::ImportanceTable;
pub use reference::ReferenceEngine;
pub use thresholds::{Preset, Thresholds};
