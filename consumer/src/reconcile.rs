//! `txp reconcile`: finds the chunks a stream's uploader stored that never reached a commit,
//! though no message for them waits anywhere (a message lost outside our control: a purged
//! queue, a broker that lost unreplicated data), and publishes their recorded message again.
//!
//! A chunk is unaccounted for when the upload ledger has it and `chunk_record` does not. Those
//! whose message sits in the dead-letter queue are left to `txp replay` (their cause may need a
//! fix first). While the main queue still holds messages, the missing chunk may be among them:
//! reconcile then refuses unless forced. Republishing is always safe: a consumer acks a chunk
//! that is already committed with no effect.

use std::collections::BTreeSet;
use std::sync::Arc;

use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder};
use txp_connectors::queue::{Depth, Queue, QueueError};
use txp_core::message::ChunkMessage;
use txp_entity::{chunk_record, upload_ledger};

use crate::registry::{self, Refusal};

/// What reconcile found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Chunks stored and not committed, whose message is nowhere: published again (or, on a
    /// dry run, to be).
    pub republished: Vec<u64>,
    /// Chunks stored and not committed whose message is in the dead-letter queue.
    pub dead_lettered: Vec<u64>,
    /// Chunks whose recorded message the stream's registry does not allow (the consumers'
    /// rules): not published, with the reason.
    pub not_allowed: Vec<(u64, String)>,
}

/// Why reconcile stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("database: {0}")]
    Database(#[from] DbErr),
    /// Messages still wait: the missing chunks may be among them.
    #[error(
        "the queue still holds {} ready and {} in-flight messages; chunks {missing:?} may be among them",
        depth.ready,
        depth.in_flight
    )]
    StillQueued { depth: Depth, missing: Vec<u64> },
}

/// The ledger rows of `stream` that have no idempotency record (committed or skipped), in
/// chunk order.
pub async fn unaccounted(db: &DatabaseConnection, stream: &str) -> Result<Vec<upload_ledger::Model>, DbErr> {
    let recorded: BTreeSet<i64> = chunk_record::Entity::find()
        .filter(chunk_record::Column::Stream.eq(stream))
        .all(db)
        .await?
        .into_iter()
        .map(|r| r.chunk_index)
        .collect();
    Ok(upload_ledger::Entity::find()
        .filter(upload_ledger::Column::Stream.eq(stream))
        .order_by_asc(upload_ledger::Column::ChunkIndex)
        .all(db)
        .await?
        .into_iter()
        .filter(|row| !recorded.contains(&row.chunk_index))
        .collect())
}

/// The chunks of `stream` named by messages in the dead-letter queue. Every dead letter is
/// leased to look at it, then given back unchanged.
async fn dead_lettered(queue: &Arc<dyn Queue>, stream: &str) -> Result<BTreeSet<u64>, QueueError> {
    let mut held = Vec::new();
    let mut chunks = BTreeSet::new();
    let outcome = loop {
        match queue.receive_dead(10).await {
            Ok(batch) if batch.is_empty() => break Ok(()),
            Ok(batch) => {
                for dead in batch {
                    if let Ok(message) = ChunkMessage::decode(&dead.delivery.body)
                        && message.stream == stream
                    {
                        chunks.insert(message.chunk);
                    }
                    held.push(dead);
                }
            }
            Err(e) => break Err(e),
        }
    };
    for dead in &held {
        if let Err(e) = queue.release_dead(dead).await {
            tracing::warn!(error = %e, "could not give a dead letter back; it returns when its lease expires");
        }
    }
    outcome.map(|()| chunks)
}

/// Republishes the recorded message of every chunk of `stream` that is stored, not committed,
/// and neither dead-lettered nor (unless `force`) possibly still queued. With `dry_run` it only
/// reports.
pub async fn reconcile(
    db: &DatabaseConnection,
    queue: &Arc<dyn Queue>,
    stream: &str,
    dry_run: bool,
    force: bool,
) -> Result<ReconcileReport, ReconcileError> {
    let missing = unaccounted(db, stream).await?;
    let mut report = ReconcileReport::default();
    if missing.is_empty() {
        return Ok(report);
    }
    let dead = dead_lettered(queue, stream).await?;
    let lost: Vec<&upload_ledger::Model> = missing
        .iter()
        .filter(|row| {
            let chunk = u64::try_from(row.chunk_index).unwrap_or(0);
            if dead.contains(&chunk) {
                report.dead_lettered.push(chunk);
                false
            } else {
                true
            }
        })
        .collect();
    let depth = queue.depth().await?;
    if !lost.is_empty() && depth.ready + depth.in_flight > 0 && !force {
        let missing = lost.iter().filter_map(|row| u64::try_from(row.chunk_index).ok()).collect();
        return Err(ReconcileError::StillQueued { depth, missing });
    }
    for row in lost {
        let chunk = u64::try_from(row.chunk_index).unwrap_or(0);
        // The consumers' rules apply to what reconcile publishes too: a recorded message that
        // does not decode, or that its stream's registry no longer allows, is reported instead.
        let admitted = match ChunkMessage::decode(row.message.as_bytes()) {
            Ok(message) => match registry::admit(db, &message).await {
                Ok(_) => Ok(()),
                Err(Refusal::Untrusted(reason)) => Err(reason),
                Err(Refusal::Database(e)) => return Err(e.into()),
            },
            Err(e) => Err(e.to_string()),
        };
        if let Err(reason) = admitted {
            tracing::warn!(%stream, chunk, %reason, "a recorded message is not allowed; not published");
            report.not_allowed.push((chunk, reason));
            continue;
        }
        if !dry_run {
            queue.publish(row.message.as_bytes()).await?;
            txp_telemetry::events::message_published(queue.backend());
            tracing::info!(%stream, chunk, "chunk message published again");
        }
        report.republished.push(chunk);
    }
    Ok(report)
}
