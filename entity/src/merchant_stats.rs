//! Each merchant's running statistics (`N(m)`, customers, female and male customers), persisted
//! with `pair_stats` for users to query.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "merchant_stats")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub stream: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub merchant: String,
    pub shard: i32,
    pub txn_count: i64,
    pub customers: i64,
    pub female_customers: i64,
    pub male_customers: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
