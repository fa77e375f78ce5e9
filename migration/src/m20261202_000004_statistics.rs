//! The detector's persisted running statistics, for users to query and for a restart to resume
//! from (`pair_stats`, `merchant_stats`, `detector_state.persisted_through`), and the figures
//! behind each detection (`detection.figures`, JSON). Detections committed before this
//! migration keep no figures.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Detection {
    Table,
    Figures,
}

#[derive(DeriveIden)]
enum DetectorState {
    Table,
    PersistedThrough,
}

#[derive(DeriveIden)]
enum PairStats {
    Table,
    Stream,
    Merchant,
    Customer,
    Shard,
    TxnCount,
    AmountMicros,
    Genders,
}

#[derive(DeriveIden)]
enum MerchantStats {
    Table,
    Stream,
    Merchant,
    Shard,
    TxnCount,
    Customers,
    FemaleCustomers,
    MaleCustomers,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("detection", "figures").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(Detection::Table)
                        .add_column(ColumnDef::new(Detection::Figures).text().null())
                        .to_owned(),
                )
                .await?;
        }
        if !manager.has_column("detector_state", "persisted_through").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(DetectorState::Table)
                        .add_column(ColumnDef::new(DetectorState::PersistedThrough).big_integer().null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(PairStats::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(PairStats::Stream).string().not_null())
                    .col(ColumnDef::new(PairStats::Merchant).string().not_null())
                    .col(ColumnDef::new(PairStats::Customer).string().not_null())
                    .col(ColumnDef::new(PairStats::Shard).integer().not_null())
                    .col(ColumnDef::new(PairStats::TxnCount).big_integer().not_null())
                    // Micro-units as decimal text: exact beyond 64 bits.
                    .col(ColumnDef::new(PairStats::AmountMicros).string().not_null())
                    .col(ColumnDef::new(PairStats::Genders).small_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(PairStats::Stream)
                            .col(PairStats::Merchant)
                            .col(PairStats::Customer),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MerchantStats::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(MerchantStats::Stream).string().not_null())
                    .col(ColumnDef::new(MerchantStats::Merchant).string().not_null())
                    .col(ColumnDef::new(MerchantStats::Shard).integer().not_null())
                    .col(ColumnDef::new(MerchantStats::TxnCount).big_integer().not_null())
                    .col(ColumnDef::new(MerchantStats::Customers).big_integer().not_null())
                    .col(ColumnDef::new(MerchantStats::FemaleCustomers).big_integer().not_null())
                    .col(ColumnDef::new(MerchantStats::MaleCustomers).big_integer().not_null())
                    .primary_key(Index::create().col(MerchantStats::Stream).col(MerchantStats::Merchant))
                    .to_owned(),
            )
            .await
    }
}
