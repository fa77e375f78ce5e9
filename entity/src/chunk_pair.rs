//! A committed chunk's aggregate: one row per (merchant, customer) pair of the chunk. These rows
//! are the changelog the detector folds, in chunk order.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "chunk_pair")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub stream: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub chunk_index: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub merchant: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer: String,
    /// Valid rows of the pair in the chunk.
    pub txn_count: i64,
    /// Their amounts summed exactly, in micro-units, as decimal text (it can exceed 64 bits).
    pub amount_micros: String,
    /// Genders seen, as bits: F = 1, M = 2, E = 4, U = 8.
    pub genders: i16,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
