//! The upload ledger: one row per chunk stored, completed when its message is confirmed. A
//! restarted upload resumes after the last confirmed chunk, re-publishes a stored but
//! unconfirmed one, and refuses a chunk whose content differs from what was stored.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "upload_ledger")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub stream: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub chunk_index: i64,
    /// SHA-256 of the part file, lowercase hex.
    pub sha256: String,
    pub rows: i64,
    pub bytes: i64,
    /// The message published for the chunk (JSON), so that a re-publish sends the same body.
    pub message: String,
    pub stored_at_ms: i64,
    /// When the broker confirmed the message; `None` while unconfirmed.
    pub published_at_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
