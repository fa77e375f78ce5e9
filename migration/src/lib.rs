//! The migrations of the txpatterns database (PostgreSQL or SQLite). `txp migrate` applies them,
//! and every command that uses the database applies missing ones at start, under a lock:
//! sea-orm's migrator takes none, and replicas starting together would race.

pub use sea_orm_migration::prelude::*;

mod m20261130_000001_pipeline;
mod m20261201_000002_consumer_detector;
mod m20261202_000003_replay_audit;
mod m20261202_000004_statistics;
mod m20261203_000005_chunk_pair_key;
mod m20261207_000006_stream_quarantine;
mod m20261208_000007_chunk_aggregate;

/// Every migration, in order.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261130_000001_pipeline::Migration),
            Box::new(m20261201_000002_consumer_detector::Migration),
            Box::new(m20261202_000003_replay_audit::Migration),
            Box::new(m20261202_000004_statistics::Migration),
            Box::new(m20261203_000005_chunk_pair_key::Migration),
            Box::new(m20261207_000006_stream_quarantine::Migration),
            Box::new(m20261208_000007_chunk_aggregate::Migration),
        ]
    }
}
