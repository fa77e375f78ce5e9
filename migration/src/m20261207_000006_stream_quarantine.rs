//! `stream.quarantine`: where a stream's rejected rows go, recorded at upload
//! (`txp upload --quarantine`, default beside the input). Consumers used to derive it from the
//! message's `store`, which let anyone who may publish choose where consumers write; now it comes
//! from the stream's registry row, as the input root does. Streams recorded before this migration
//! have none: consumers then use the folder beside the registered input, as before.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Stream {
    Table,
    Quarantine,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Stream::Table)
                    .add_column(ColumnDef::new(Stream::Quarantine).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Stream::Table).drop_column(Stream::Quarantine).to_owned())
            .await
    }
}
