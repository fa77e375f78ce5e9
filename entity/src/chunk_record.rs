//! The consumer's idempotency record: one row per chunk committed (or skipped for good), written
//! in the same transaction as the chunk's aggregate (`chunk_aggregate`). A redelivered message finds it and is
//! acked with no effect; a message for the same index with other content is refused.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "chunk_record")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub stream: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub chunk_index: i64,
    /// SHA-256 of the chunk's part files, as the message announced and the consumer checked;
    /// empty for a skipped chunk.
    pub sha256: String,
    pub valid_rows: i64,
    pub rejected_rows: i64,
    /// Distinct (merchant, customer) pairs in the chunk: the pairs encoded in its `chunk_aggregate`
    /// row (or, for a chunk committed before the encoding, its `chunk_pair` rows).
    pub pairs: i64,
    /// Set when `txp skip` recorded the chunk as lost for good (an audited empty chunk).
    pub skipped_reason: Option<String>,
    pub committed_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
