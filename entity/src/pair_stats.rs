//! The running statistics of each (merchant, customer) pair, as the detector of the merchant's
//! shard has folded them: at most `detector.persist_every` chunks behind, current when the
//! detector is idle. A restarted detector resumes from them.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "pair_stats")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub stream: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub merchant: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer: String,
    pub shard: i32,
    /// `n(c,m)`.
    pub txn_count: i64,
    /// The exact amount sum in micro-units, as decimal text.
    pub amount_micros: String,
    /// Genders seen: bit 1 F, 2 M, 4 E, 8 U.
    pub genders: i16,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
