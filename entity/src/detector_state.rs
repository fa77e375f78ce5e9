//! One detector shard of a stream: how far it has folded the committed chunks. The position is
//! also a fence: a fold commits only if the position is still the one it started from, so two
//! detectors of the same shard can never both commit a chunk.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "detector_state")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub stream: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub shard: i32,
    /// How many shards the stream's merchants are spread over.
    pub shards: i32,
    /// The last chunk folded; `None` before the first.
    pub folded_through: Option<i64>,
    /// The last chunk whose running statistics are in `pair_stats` and `merchant_stats`; a
    /// restart resumes from there. `None` until first persisted.
    pub persisted_through: Option<i64>,
    /// SHA-256 of the importance file: a different file for the same stream is refused.
    pub importance_sha256: String,
    /// When this shard's detector first started: the output's `YStartTime(IST)`.
    pub started_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
