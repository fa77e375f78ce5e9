//! Mechanism Y: consumers that commit chunk aggregates, and detectors that fold them in chunk
//! order and write output files exactly once.
//!
//! - [`consume`]: queue workers (fetch, check, aggregate, quarantine, commit, then ack);
//! - [`chunks`]: the committed aggregates and idempotency records in the database;
//! - [`detect`]: one detector per (stream, shard), fenced by its fold position;
//! - [`output_files`]: output files decided in the database before they are written;
//! - [`reconcile`]: chunks stored but never committed, whose message was lost, published again;
//! - [`registry`]: the stream registry, the authority a message is checked against, and
//!   the stream a command means when none is named;
//! - [`replay`]: dead letters back to the main queue, audited, with a loop guard;
//! - [`chunk_folder`]: chunk folders in a local directory (`txp verify --input`);
//! - [`statistics`]: the persisted running statistics a restart resumes from, and pruning;
//! - [`handoff`]: commits (and, with one shard, aggregates) handed from consumers to the
//!   detectors of the same process;
//! - [`shutdown`]: the signal every loop watches.

pub mod chunk_folder;
pub mod chunks;
pub mod consume;
pub mod detect;
pub mod handoff;
pub mod output_files;
pub mod reconcile;
pub mod registry;
pub mod replay;
pub mod shutdown;
pub mod statistics;
