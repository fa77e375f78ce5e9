//! What `txp replay` did with each dead letter it took: moved it back to the main queue
//! (`replayed`) or left it because it had been replayed too often already (`refused`). Rows are
//! never updated; the loop guard counts a message's earlier replays by its body's SHA-256.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "replay_audit")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The main queue it went back to.
    pub queue: String,
    /// `db`, `rabbitmq` or `sqs`.
    pub backend: String,
    /// The chunk the message announces; `None` when the body does not decode.
    pub stream: Option<String>,
    pub chunk_index: Option<i64>,
    /// Why it had been dead-lettered.
    pub reason: String,
    /// Deliveries it had before it was dead-lettered.
    pub attempts: i32,
    pub body_sha256: String,
    /// `replayed` or `refused`.
    pub action: String,
    pub at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
