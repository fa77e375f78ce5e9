//! The first schema: streams, the upload ledger and the embedded queue.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Stream {
    Table,
    Name,
    Source,
    Destination,
    ChunkRows,
    LastChunk,
    CreatedAtMs,
    FinishedAtMs,
}

#[derive(DeriveIden)]
enum UploadLedger {
    Table,
    Stream,
    ChunkIndex,
    Sha256,
    Rows,
    Bytes,
    Message,
    StoredAtMs,
    PublishedAtMs,
}

#[derive(DeriveIden)]
enum QueueMessage {
    Table,
    Id,
    Queue,
    Body,
    EnqueuedAtMs,
    VisibleAtMs,
    ReceiveCount,
    DeadReason,
    DeadFrom,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Stream::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Stream::Name).string().not_null().primary_key())
                    .col(ColumnDef::new(Stream::Source).text().not_null())
                    .col(ColumnDef::new(Stream::Destination).text().not_null())
                    .col(ColumnDef::new(Stream::ChunkRows).big_integer().not_null())
                    .col(ColumnDef::new(Stream::LastChunk).big_integer().null())
                    .col(ColumnDef::new(Stream::CreatedAtMs).big_integer().not_null())
                    .col(ColumnDef::new(Stream::FinishedAtMs).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UploadLedger::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(UploadLedger::Stream).string().not_null())
                    .col(ColumnDef::new(UploadLedger::ChunkIndex).big_integer().not_null())
                    .col(ColumnDef::new(UploadLedger::Sha256).string().not_null())
                    .col(ColumnDef::new(UploadLedger::Rows).big_integer().not_null())
                    .col(ColumnDef::new(UploadLedger::Bytes).big_integer().not_null())
                    .col(ColumnDef::new(UploadLedger::Message).text().not_null())
                    .col(ColumnDef::new(UploadLedger::StoredAtMs).big_integer().not_null())
                    .col(ColumnDef::new(UploadLedger::PublishedAtMs).big_integer().null())
                    .primary_key(Index::create().col(UploadLedger::Stream).col(UploadLedger::ChunkIndex))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(QueueMessage::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(QueueMessage::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(QueueMessage::Queue).string().not_null())
                    .col(ColumnDef::new(QueueMessage::Body).text().not_null())
                    .col(ColumnDef::new(QueueMessage::EnqueuedAtMs).big_integer().not_null())
                    .col(ColumnDef::new(QueueMessage::VisibleAtMs).big_integer().not_null())
                    .col(ColumnDef::new(QueueMessage::ReceiveCount).integer().not_null().default(0))
                    .col(ColumnDef::new(QueueMessage::DeadReason).text().null())
                    .col(ColumnDef::new(QueueMessage::DeadFrom).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("queue_message_receivable")
                    .table(QueueMessage::Table)
                    .col(QueueMessage::Queue)
                    .col(QueueMessage::VisibleAtMs)
                    .col(QueueMessage::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }
}
