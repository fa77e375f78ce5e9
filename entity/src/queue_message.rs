//! The embedded queue (`--queue db`): messages of every queue, the dead-letter queue included,
//! in one table. A receive leases rows (`visible_at_ms` in the future) with
//! `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL; dead-lettering moves a row to the DLQ's name
//! with a reason.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "queue_message")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The queue's name (`txp-chunks`, `txp-chunks-dlq`).
    pub queue: String,
    pub body: String,
    pub enqueued_at_ms: i64,
    /// Not receivable before this time (leases and retries push it forward).
    pub visible_at_ms: i64,
    /// How many times it has been received.
    pub receive_count: i32,
    /// Why it was dead-lettered; `None` on the main queue.
    pub dead_reason: Option<String>,
    /// The queue it was dead-lettered from.
    pub dead_from: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
