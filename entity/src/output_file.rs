//! An output file, decided before it is written: its name and its detections (in `detection`)
//! are committed first, then the object is written, then `written_at_ms` is set. A file found
//! unwritten after a crash is written again with the same key and the same bytes.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "output_file")]
pub struct Model {
    /// Also the `<n>` of the file's name, unique over every stream and shard.
    #[sea_orm(primary_key)]
    pub id: i64,
    pub stream: String,
    pub shard: i32,
    /// The folder's name: `pattern_detected_<YYYYMMDDTHHMMSS>_<n>.csv`.
    pub name: String,
    pub rows: i32,
    pub created_at_ms: i64,
    pub written_at_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
