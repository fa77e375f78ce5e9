//! PostgreSQL: `chunk_pair` is keyed by a plain index on (stream, chunk_index) instead of its
//! four-column primary key. Each chunk's rows are inserted once, in the transaction that inserts
//! its idempotency record first (a second commit of the chunk conflicts on the record and writes
//! nothing), the aggregator makes (merchant, customer) unique within a chunk, and the detector
//! checks a chunk's row count against its record when it reads it back; the wide unique index
//! only made every insert slower (measured: ~45% of the time of inserting a chunk's rows,
//! docs/performance.md). Reads and pruning go by (stream, chunk_index). SQLite keeps the
//! primary key: dropping one there means rebuilding the table, for little gain.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "idx_chunk_pair_chunk";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(&format!(
            "CREATE INDEX IF NOT EXISTS {INDEX} ON chunk_pair (stream, chunk_index)"
        ))
        .await?;
        db.execute_unprepared("ALTER TABLE chunk_pair DROP CONSTRAINT IF EXISTS chunk_pair_pkey").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(
            "ALTER TABLE chunk_pair ADD PRIMARY KEY (stream, chunk_index, merchant, customer)",
        )
        .await?;
        db.execute_unprepared(&format!("DROP INDEX IF EXISTS {INDEX}")).await?;
        Ok(())
    }
}
