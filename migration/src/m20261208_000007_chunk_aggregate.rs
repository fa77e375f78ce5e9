//! `chunk_aggregate`: a committed chunk's aggregate as one encoded value (txp_core::encoding),
//! one row per chunk, written in the transaction that inserts the chunk's `chunk_record`. It
//! replaces the ~6,500 `chunk_pair` rows a 10,000-row chunk used to cost (docs/performance.md,
//! "The chunk aggregate encoding"). `chunk_pair` stays for chunks committed before this
//! migration: the detector reads them as before until they are folded and pruned.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ChunkAggregate {
    Table,
    Stream,
    ChunkIndex,
    Encoding,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ChunkAggregate::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(ChunkAggregate::Stream).text().not_null())
                    .col(ColumnDef::new(ChunkAggregate::ChunkIndex).big_integer().not_null())
                    .col(ColumnDef::new(ChunkAggregate::Encoding).blob().not_null())
                    .primary_key(Index::create().col(ChunkAggregate::Stream).col(ChunkAggregate::ChunkIndex))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ChunkAggregate::Table).to_owned()).await
    }
}
