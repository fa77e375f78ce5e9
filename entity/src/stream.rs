//! One uploaded stream: where it came from, how it was cut, and (once the source is exhausted)
//! its last chunk index, which tells the detector when it is done.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "stream")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// The source as given to `txp upload --source` (credentials masked).
    pub source: String,
    /// The store's root URL the chunks were written to.
    pub destination: String,
    /// Where consumers write the stream's rejected rows (`txp upload --quarantine`); `None` for
    /// streams recorded before it was kept: beside `destination`.
    pub quarantine: Option<String>,
    pub chunk_rows: i64,
    /// The last chunk index, set when the source is exhausted (end of stream); `None` before.
    pub last_chunk: Option<i64>,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
