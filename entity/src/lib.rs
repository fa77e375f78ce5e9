//! The tables of the txpatterns database, as sea-orm entities (schema in `migration`). Times are
//! stored as milliseconds since the Unix epoch (`i64`), the same on PostgreSQL and SQLite, so
//! that comparisons such as "visible now" are plain integer comparisons in SQL.

pub mod chunk_aggregate;
pub mod chunk_pair;
pub mod chunk_record;
pub mod detection;
pub mod detector_state;
pub mod merchant_stats;
pub mod output_file;
pub mod pair_stats;
pub mod queue_message;
pub mod replay_audit;
pub mod stream;
pub mod upload_ledger;

pub mod prelude {
    pub use super::chunk_aggregate::Entity as ChunkAggregate;
    pub use super::chunk_pair::Entity as ChunkPair;
    pub use super::chunk_record::Entity as ChunkRecord;
    pub use super::detection::Entity as Detection;
    pub use super::detector_state::Entity as DetectorState;
    pub use super::merchant_stats::Entity as MerchantStats;
    pub use super::output_file::Entity as OutputFile;
    pub use super::pair_stats::Entity as PairStats;
    pub use super::queue_message::Entity as QueueMessage;
    pub use super::replay_audit::Entity as ReplayAudit;
    pub use super::stream::Entity as Stream;
    pub use super::upload_ledger::Entity as UploadLedger;
}
