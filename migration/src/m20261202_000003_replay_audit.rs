//! The replay audit: every dead letter `txp replay` moved back to its queue (or refused to, by
//! its loop guard), with the chunk, the reason and the attempts it had.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReplayAudit {
    Table,
    Id,
    Queue,
    Backend,
    Stream,
    ChunkIndex,
    Reason,
    Attempts,
    BodySha256,
    Action,
    AtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ReplayAudit::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ReplayAudit::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ReplayAudit::Queue).string().not_null())
                    .col(ColumnDef::new(ReplayAudit::Backend).string().not_null())
                    .col(ColumnDef::new(ReplayAudit::Stream).string().null())
                    .col(ColumnDef::new(ReplayAudit::ChunkIndex).big_integer().null())
                    .col(ColumnDef::new(ReplayAudit::Reason).text().not_null())
                    .col(ColumnDef::new(ReplayAudit::Attempts).integer().not_null())
                    .col(ColumnDef::new(ReplayAudit::BodySha256).string().not_null())
                    .col(ColumnDef::new(ReplayAudit::Action).string().not_null())
                    .col(ColumnDef::new(ReplayAudit::AtMs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        // The loop guard counts earlier replays of the same message on the same queue.
        manager
            .create_index(
                Index::create()
                    .name("replay_audit_queue_body")
                    .table(ReplayAudit::Table)
                    .col(ReplayAudit::Queue)
                    .col(ReplayAudit::BodySha256)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }
}
