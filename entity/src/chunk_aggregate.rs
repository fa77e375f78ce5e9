//! A committed chunk's aggregate as one encoded value (`txp_core::encoding`): one row per
//! chunk, inserted in the transaction of its `chunk_record`, read by every detector shard (each
//! decodes only its merchants), deleted by retention like the `chunk_pair` rows it replaces.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "chunk_aggregate")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub stream: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub chunk_index: i64,
    /// The encoded pairs (bytea on PostgreSQL, blob on SQLite).
    #[sea_orm(column_type = "Blob")]
    pub encoding: Vec<u8>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
