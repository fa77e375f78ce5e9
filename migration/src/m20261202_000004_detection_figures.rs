//! The figures behind each detection (counts, sums, cut-offs, k and j, as JSON), committed with
//! it. Detections committed before this migration keep none.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Detection {
    Table,
    Figures,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.has_column("detection", "figures").await? {
            return Ok(());
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Detection::Table)
                    .add_column(ColumnDef::new(Detection::Figures).text().null())
                    .to_owned(),
            )
            .await
    }
}
