//! Every detection, once: the key is the primary key. Committed with the fold position of the
//! chunk after which its condition first held; assigned to an output file (and a row in it)
//! before that file is written, so that a rewrite after a crash has the same bytes.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "detection")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub stream: String,
    /// `PatId1`, `PatId2` or `PatId3`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub pattern: String,
    /// Empty for DEI-NEEDED.
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub merchant: String,
    pub shard: i32,
    pub chunk_index: i64,
    /// When the fold that found it committed: the output's `detectionTime(IST)`.
    pub detected_at_ms: i64,
    /// The output file it is in; `None` while pending.
    pub file_id: Option<i64>,
    /// Its row in that file, from 0.
    pub file_row: Option<i32>,
    /// The figures that made it (JSON: counts, exact sums, cut-offs, k and j; see
    /// `txp_core::engine::Figures`).
    pub figures: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
