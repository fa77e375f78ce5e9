//! `txp upload`: store every chunk of a source, then announce it; resumable and idempotent.
//!
//! Per chunk, in this order, each step idempotent:
//! 1. the part file, then `_SUCCESS`, are written (same key, same bytes on a retry);
//! 2. a ledger row records the chunk (its SHA-256 and the exact message body), unconfirmed;
//! 3. the message is published and confirmed by the broker;
//! 4. the ledger row is marked published.
//!
//! A crash between 1 and 2 leaves objects that the next run finds with the same content and
//! records; between 2 and 3 or 3 and 4, the next run publishes the recorded body again (a
//! consumer drops the duplicate). No message is ever sent for a chunk that is not fully stored,
//! and a chunk whose content differs from what was stored under its index is refused.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, IntoActiveModel, Set};
use tokio::sync::mpsc;
use tokio_util::io::SyncIoBridge;
use txp_connectors::database::now_ms;
use txp_connectors::queue::{Queue, QueueError};
use txp_connectors::retry::{Backoff, retry};
use txp_connectors::source::Source;
use txp_connectors::store::{ObjectStore, StoreError};
use txp_core::layout::{PART_FILE, SUCCESS, chunk_folder, quarantine_beside};
use txp_core::message::{ChunkMessage, MESSAGE_VERSION};
use txp_entity::{stream, upload_ledger};
use txp_telemetry::events;

use crate::cut::{ChunkCutter, CutError, SourceChunk};

/// What to upload, and how.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// The stream's name: one source, one destination, one chunking.
    pub stream: String,
    /// The source as the user gave it (credentials masked), recorded with the stream.
    pub source_description: String,
    pub chunk_rows: NonZeroU64,
    /// Where consumers write the stream's rejected rows, as a store URL (`--quarantine`);
    /// `None`: beside the input (`…/input` → `…/quarantine`). Recorded with the stream: consumers
    /// take it from there, never from a message.
    pub quarantine: Option<String>,
    /// Chunk i (counted from the first one this run stores) is due i × interval after the
    /// first one's publish confirm.
    pub interval: Duration,
    /// For crash tests only: abort the process (as `kill -9` would) at this point of this chunk.
    pub crash_at: Option<(CrashPoint, u64)>,
}

/// The points where a crash test stops an upload (`txp upload --crash-at POINT:CHUNK`, hidden).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The part file is written, `_SUCCESS` is not.
    MidObject,
    /// The chunk is stored and recorded, its message not yet published.
    AfterStore,
    /// The broker confirmed the message, the ledger does not know yet.
    AfterConfirm,
}

impl std::str::FromStr for CrashPoint {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "mid-object" => Ok(Self::MidObject),
            "after-store" => Ok(Self::AfterStore),
            "after-confirm" => Ok(Self::AfterConfirm),
            _ => Err(format!("unknown crash point `{text}`: mid-object, after-store or after-confirm")),
        }
    }
}

/// What an upload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadReport {
    /// Chunks stored and announced by this run.
    pub published: u64,
    /// Chunks already stored and announced by an earlier run (nothing done).
    pub skipped: u64,
    /// Chunks stored by an earlier run whose message this run sent again.
    pub republished: u64,
    /// Rows in all chunks of the source.
    pub rows: u64,
    /// The stream's last chunk index (end of stream), `None` for a source with no rows.
    pub last_chunk: Option<u64>,
}

/// Progress of an upload, for a progress bar or log lines.
pub trait UploadProgress: Send + Sync {
    /// A chunk is done (published, republished or skipped); `source_bytes` read so far.
    fn chunk_done(&self, chunk: u64, rows: u64, source_bytes: u64);
}

/// Why an upload stopped.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("{0}")]
    Source(#[from] CutError),
    #[error("cannot read the source: {0}")]
    SourceRead(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Queue(#[from] QueueError),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error(
        "chunk {chunk} of stream `{stream}` differs from what was stored under that index (stored SHA-256 {stored}, now {now}): a different source needs a new --stream"
    )]
    Conflict { stream: String, chunk: u64, stored: String, now: String },
    #[error(
        "stream `{stream}` was uploaded to {destination} with {chunk_rows} rows per chunk: resume it with the same --to and --chunk-rows, or use a new --stream"
    )]
    StreamMismatch { stream: String, destination: String, chunk_rows: i64 },
    #[error(
        "stream `{stream}` records its quarantine at {recorded}, not {asked}: resume it without --quarantine (or with the same one), or use a new --stream"
    )]
    QuarantineMismatch { stream: String, recorded: String, asked: String },
    #[error("interrupted")]
    Interrupted,
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub use txp_core::message::sha256_hex;

/// The uploader of one stream.
#[derive(Debug)]
pub struct Uploader {
    pub options: UploadOptions,
    pub store: Arc<dyn ObjectStore>,
    pub queue: Arc<dyn Queue>,
    pub db: DatabaseConnection,
    pub backoff: Backoff,
}

impl Uploader {
    /// Runs the upload to the end of the source, or until `stop` turns true between chunks.
    pub async fn run(
        &self,
        source: Source,
        progress: &dyn UploadProgress,
        stop: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<UploadReport, UploadError> {
        retry(self.backoff, StoreError::is_transient, || self.store.check()).await?;
        retry(self.backoff, QueueError::is_transient, || self.queue.setup()).await?;
        self.open_stream().await?;

        let (chunks, mut receiver) = mpsc::channel::<Result<(SourceChunk, u64), UploadError>>(2);
        let rows_per_chunk = self.options.chunk_rows;
        // The cutter is synchronous: it runs on a blocking thread over a bridge from the async
        // source, one chunk ahead of the uploads, so memory holds at most three chunks.
        let cutter = tokio::task::spawn_blocking(move || cut_source(source, rows_per_chunk, &chunks));

        let mut report = UploadReport::default();
        let mut paced: u32 = 0;
        // The schedule starts at the first publish confirm: a slow first store (an object
        // store assigning its first volume) must not make the next chunks leave in a burst.
        let mut start: Option<tokio::time::Instant> = None;
        while let Some(item) = receiver.recv().await {
            let (chunk, source_bytes) = item?;
            if stop() {
                return Err(UploadError::Interrupted);
            }
            report.rows += chunk.rows;
            report.last_chunk = Some(chunk.index);
            match self.ledger_state(&chunk).await? {
                LedgerState::Published => report.skipped += 1,
                LedgerState::Stored(message) => {
                    self.publish(chunk.index, &message).await?;
                    report.republished += 1;
                }
                LedgerState::New => {
                    if let Some(start) = start {
                        tokio::time::sleep_until(start + self.options.interval * paced).await;
                    }
                    paced = paced.saturating_add(1);
                    let message = self.store_chunk(&chunk).await?;
                    self.publish(chunk.index, &message).await?;
                    start.get_or_insert_with(tokio::time::Instant::now);
                    report.published += 1;
                }
            }
            progress.chunk_done(chunk.index, chunk.rows, source_bytes);
        }
        cutter.await.map_err(|e| UploadError::SourceRead(e.to_string()))?;
        self.finish_stream(report.last_chunk).await?;
        Ok(report)
    }

    /// Creates the stream's row (its registry entry: input root, quarantine, chunking), or
    /// checks that a resumed stream has the same destination, chunking and quarantine.
    async fn open_stream(&self) -> Result<(), UploadError> {
        let existing = stream::Entity::find_by_id(self.options.stream.clone()).one(&self.db).await?;
        let quarantine =
            self.options.quarantine.clone().unwrap_or_else(|| quarantine_beside(&self.store.url()));
        match existing {
            Some(row) => {
                if row.destination != self.store.url()
                    || row.chunk_rows != as_i64(self.options.chunk_rows.get())
                {
                    return Err(UploadError::StreamMismatch {
                        stream: row.name,
                        destination: row.destination,
                        chunk_rows: row.chunk_rows,
                    });
                }
                match (&row.quarantine, &self.options.quarantine) {
                    (Some(recorded), Some(asked)) if recorded != asked => {
                        return Err(UploadError::QuarantineMismatch {
                            stream: row.name,
                            recorded: recorded.clone(),
                            asked: asked.clone(),
                        });
                    }
                    (Some(_), _) => {}
                    // Recorded before streams kept their quarantine: record it now.
                    (None, _) => {
                        let mut row = row.into_active_model();
                        row.quarantine = Set(Some(quarantine));
                        row.update(&self.db).await?;
                    }
                }
            }
            None => {
                stream::ActiveModel {
                    name: Set(self.options.stream.clone()),
                    source: Set(self.options.source_description.clone()),
                    destination: Set(self.store.url()),
                    quarantine: Set(Some(quarantine)),
                    chunk_rows: Set(as_i64(self.options.chunk_rows.get())),
                    last_chunk: Set(None),
                    created_at_ms: Set(now_ms()),
                    finished_at_ms: Set(None),
                }
                .insert(&self.db)
                .await?;
            }
        }
        Ok(())
    }

    async fn ledger_state(&self, chunk: &SourceChunk) -> Result<LedgerState, UploadError> {
        let key = (self.options.stream.clone(), as_i64(chunk.index));
        let Some(row) = upload_ledger::Entity::find_by_id(key).one(&self.db).await? else {
            return Ok(LedgerState::New);
        };
        let sha = sha256_hex(&chunk.bytes);
        if row.sha256 != sha {
            return Err(self.conflict(chunk.index, row.sha256, sha));
        }
        Ok(if row.published_at_ms.is_some() {
            LedgerState::Published
        } else {
            LedgerState::Stored(row.message)
        })
    }

    /// Aborts the process, with no clean-up at all, when a crash test asks for this point.
    fn crash_if(&self, point: CrashPoint, chunk: u64) {
        if self.options.crash_at == Some((point, chunk)) {
            tracing::error!(?point, chunk, "crash test: aborting");
            std::process::abort();
        }
    }

    fn conflict(&self, chunk: u64, stored: String, now: String) -> UploadError {
        UploadError::Conflict { stream: self.options.stream.clone(), chunk, stored, now }
    }

    /// Writes the part file and `_SUCCESS` (refusing different content already stored under the
    /// index), then records the chunk in the ledger; returns the message body.
    async fn store_chunk(&self, chunk: &SourceChunk) -> Result<String, UploadError> {
        let folder = chunk_folder(chunk.index);
        let part_key = format!("{folder}/{PART_FILE}");
        let success_key = format!("{folder}/{SUCCESS}");
        let sha = sha256_hex(&chunk.bytes);
        let stored = retry(self.backoff, StoreError::is_transient, || self.store.get(&part_key)).await?;
        if let Some(stored) = stored {
            let stored_sha = sha256_hex(&stored);
            if stored_sha != sha {
                return Err(self.conflict(chunk.index, stored_sha, sha));
            }
        }
        retry(self.backoff, StoreError::is_transient, || self.store.put(&part_key, chunk.bytes.clone()))
            .await?;
        self.crash_if(CrashPoint::MidObject, chunk.index);
        retry(self.backoff, StoreError::is_transient, || self.store.put(&success_key, Vec::new())).await?;
        let message = ChunkMessage {
            version: MESSAGE_VERSION,
            stream: self.options.stream.clone(),
            chunk: chunk.index,
            store: self.store.url(),
            objects: vec![part_key],
            success: success_key,
            rows: chunk.rows,
            bytes: chunk.bytes.len() as u64,
            sha256: sha.clone(),
            uploaded_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        };
        let body = String::from_utf8(message.encode()).unwrap_or_default();
        upload_ledger::ActiveModel {
            stream: Set(self.options.stream.clone()),
            chunk_index: Set(as_i64(chunk.index)),
            sha256: Set(sha),
            rows: Set(as_i64(chunk.rows)),
            bytes: Set(as_i64(chunk.bytes.len() as u64)),
            message: Set(body.clone()),
            stored_at_ms: Set(now_ms()),
            published_at_ms: Set(None),
        }
        .insert(&self.db)
        .await?;
        events::chunk_stored(if self.store.url().starts_with("s3://") { "s3" } else { "local" });
        self.crash_if(CrashPoint::AfterStore, chunk.index);
        Ok(body)
    }

    /// Publishes a recorded message and marks it confirmed in the ledger.
    async fn publish(&self, chunk: u64, body: &str) -> Result<(), UploadError> {
        retry(self.backoff, QueueError::is_transient, || self.queue.publish(body.as_bytes())).await?;
        // The broker's confirm: what the ledger records as the publish time.
        let confirmed_at_ms = now_ms();
        events::message_published(self.queue.backend());
        self.crash_if(CrashPoint::AfterConfirm, chunk);
        let key = (self.options.stream.clone(), as_i64(chunk));
        if let Some(row) = upload_ledger::Entity::find_by_id(key).one(&self.db).await? {
            let mut row = row.into_active_model();
            row.published_at_ms = Set(Some(confirmed_at_ms));
            row.update(&self.db).await?;
        }
        tracing::info!(stream = %self.options.stream, chunk, "chunk published");
        Ok(())
    }

    /// Records the end of the stream.
    async fn finish_stream(&self, last_chunk: Option<u64>) -> Result<(), UploadError> {
        if let Some(row) = stream::Entity::find_by_id(self.options.stream.clone()).one(&self.db).await? {
            let mut row = row.into_active_model();
            row.last_chunk = Set(Some(last_chunk.map_or(-1, as_i64)));
            row.finished_at_ms = Set(Some(now_ms()));
            row.update(&self.db).await?;
        }
        Ok(())
    }
}

/// Where a chunk stands in the ledger.
enum LedgerState {
    /// Not stored by an earlier run.
    New,
    /// Stored and recorded, message not confirmed: the recorded body.
    Stored(String),
    /// Stored and announced: nothing to do.
    Published,
}

/// Cuts the source on a blocking thread and sends each chunk with the bytes read so far.
fn cut_source(
    source: Source,
    rows_per_chunk: NonZeroU64,
    chunks: &mpsc::Sender<Result<(SourceChunk, u64), UploadError>>,
) {
    let reader = std::io::BufReader::with_capacity(1 << 20, SyncIoBridge::new(source.reader));
    let mut cutter = match ChunkCutter::new(reader, rows_per_chunk) {
        Ok(cutter) => cutter,
        Err(e) => {
            let _ = chunks.blocking_send(Err(e.into()));
            return;
        }
    };
    while let Some(chunk) = cutter.next() {
        let item = chunk.map(|c| (c, cutter.bytes_read())).map_err(UploadError::from);
        let failed = item.is_err();
        if chunks.blocking_send(item).is_err() || failed {
            return;
        }
    }
}
