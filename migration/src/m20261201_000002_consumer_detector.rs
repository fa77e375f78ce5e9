//! Mechanism Y's tables: the consumer's idempotency records and chunk aggregates, the detector
//! shards' positions, every detection, and the output files decided before they are written.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ChunkRecord {
    Table,
    Stream,
    ChunkIndex,
    Sha256,
    ValidRows,
    RejectedRows,
    Pairs,
    SkippedReason,
    CommittedAtMs,
}

#[derive(DeriveIden)]
enum ChunkPair {
    Table,
    Stream,
    ChunkIndex,
    Merchant,
    Customer,
    TxnCount,
    AmountMicros,
    Genders,
}

#[derive(DeriveIden)]
enum DetectorState {
    Table,
    Stream,
    Shard,
    Shards,
    FoldedThrough,
    ImportanceSha256,
    StartedAtMs,
    UpdatedAtMs,
}

#[derive(DeriveIden)]
enum Detection {
    Table,
    Stream,
    Pattern,
    Customer,
    Merchant,
    Shard,
    ChunkIndex,
    DetectedAtMs,
    FileId,
    FileRow,
}

#[derive(DeriveIden)]
enum OutputFile {
    Table,
    Id,
    Stream,
    Shard,
    Name,
    Rows,
    CreatedAtMs,
    WrittenAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ChunkRecord::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(ChunkRecord::Stream).string().not_null())
                    .col(ColumnDef::new(ChunkRecord::ChunkIndex).big_integer().not_null())
                    .col(ColumnDef::new(ChunkRecord::Sha256).string().not_null())
                    .col(ColumnDef::new(ChunkRecord::ValidRows).big_integer().not_null())
                    .col(ColumnDef::new(ChunkRecord::RejectedRows).big_integer().not_null())
                    .col(ColumnDef::new(ChunkRecord::Pairs).big_integer().not_null())
                    .col(ColumnDef::new(ChunkRecord::SkippedReason).text().null())
                    .col(ColumnDef::new(ChunkRecord::CommittedAtMs).big_integer().not_null())
                    .primary_key(Index::create().col(ChunkRecord::Stream).col(ChunkRecord::ChunkIndex))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ChunkPair::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(ChunkPair::Stream).string().not_null())
                    .col(ColumnDef::new(ChunkPair::ChunkIndex).big_integer().not_null())
                    .col(ColumnDef::new(ChunkPair::Merchant).string().not_null())
                    .col(ColumnDef::new(ChunkPair::Customer).string().not_null())
                    .col(ColumnDef::new(ChunkPair::TxnCount).big_integer().not_null())
                    .col(ColumnDef::new(ChunkPair::AmountMicros).string().not_null())
                    .col(ColumnDef::new(ChunkPair::Genders).small_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(ChunkPair::Stream)
                            .col(ChunkPair::ChunkIndex)
                            .col(ChunkPair::Merchant)
                            .col(ChunkPair::Customer),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DetectorState::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(DetectorState::Stream).string().not_null())
                    .col(ColumnDef::new(DetectorState::Shard).integer().not_null())
                    .col(ColumnDef::new(DetectorState::Shards).integer().not_null())
                    .col(ColumnDef::new(DetectorState::FoldedThrough).big_integer().null())
                    .col(ColumnDef::new(DetectorState::ImportanceSha256).string().not_null())
                    .col(ColumnDef::new(DetectorState::StartedAtMs).big_integer().not_null())
                    .col(ColumnDef::new(DetectorState::UpdatedAtMs).big_integer().not_null())
                    .primary_key(Index::create().col(DetectorState::Stream).col(DetectorState::Shard))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Detection::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Detection::Stream).string().not_null())
                    .col(ColumnDef::new(Detection::Pattern).string().not_null())
                    .col(ColumnDef::new(Detection::Customer).string().not_null())
                    .col(ColumnDef::new(Detection::Merchant).string().not_null())
                    .col(ColumnDef::new(Detection::Shard).integer().not_null())
                    .col(ColumnDef::new(Detection::ChunkIndex).big_integer().not_null())
                    .col(ColumnDef::new(Detection::DetectedAtMs).big_integer().not_null())
                    .col(ColumnDef::new(Detection::FileId).big_integer().null())
                    .col(ColumnDef::new(Detection::FileRow).integer().null())
                    .primary_key(
                        Index::create()
                            .col(Detection::Stream)
                            .col(Detection::Pattern)
                            .col(Detection::Customer)
                            .col(Detection::Merchant),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("detection_by_file")
                    .table(Detection::Table)
                    .col(Detection::Stream)
                    .col(Detection::Shard)
                    .col(Detection::FileId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OutputFile::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(OutputFile::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(OutputFile::Stream).string().not_null())
                    .col(ColumnDef::new(OutputFile::Shard).integer().not_null())
                    .col(ColumnDef::new(OutputFile::Name).string().not_null())
                    .col(ColumnDef::new(OutputFile::Rows).integer().not_null())
                    .col(ColumnDef::new(OutputFile::CreatedAtMs).big_integer().not_null())
                    .col(ColumnDef::new(OutputFile::WrittenAtMs).big_integer().null())
                    .to_owned(),
            )
            .await
    }
}
