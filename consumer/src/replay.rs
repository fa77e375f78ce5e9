//! `txp replay`: moves dead letters back to the main queue once their cause is fixed.
//!
//! Each dead letter is republished (the publish returns only once the broker confirmed it),
//! recorded in the `replay_audit` table, and only then removed from the dead-letter queue: at
//! least once, and consumers are idempotent, so a crash between the steps repeats nothing that
//! matters. Dead letters that are not moved (filtered out by reason, over `--max`, a dry run,
//! refused by the loop guard) are held until the end of the run, then given back unchanged, so
//! that one run sees each at most once.
//!
//! A dead letter that is a chunk message its stream's registry does not allow (docs/operations.md,
//! "Trust boundaries") is left where it is: the consumers' rules apply before a publish too.
//!
//! The loop guard: a message replayed `max_replays` times already (counted in the audit by its
//! body's SHA-256) is not replayed again; its cause is evidently not fixed, and `txp skip` is
//! the way on. Within one run, a message that comes back to the dead-letter queue while the run
//! goes on is not replayed a second time.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, Set,
};
use txp_connectors::database::now_ms;
use txp_connectors::queue::{DeadLetter, Queue, QueueError};
use txp_core::message::{ChunkMessage, sha256_hex};
use txp_entity::replay_audit;

use crate::registry::{self, Refusal};
use crate::shutdown::Shutdown;

/// How many dead letters one receive asks for (SQS's maximum).
const BATCH: usize = 10;

/// What to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayOptions {
    /// Only dead letters whose reason contains this text (case-insensitive).
    pub reason: Option<String>,
    /// At most this many replayed.
    pub max: Option<u64>,
    /// At most this many replayed per second.
    pub rate: Option<u32>,
    /// List what would be replayed; move and record nothing.
    pub dry_run: bool,
    /// The loop guard: a message replayed this many times already is left where it is.
    pub max_replays: u32,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self { reason: None, max: None, rate: None, dry_run: false, max_replays: 3 }
    }
}

/// What became of one dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayAction {
    /// Back on the main queue.
    Replayed,
    /// A dry run: it would have been replayed.
    WouldReplay,
    /// Left in the dead-letter queue: replayed `times` times already.
    Refused { times: u64 },
    /// Left in the dead-letter queue: a chunk message that its stream's registry does not allow
    /// (another store, keys outside its chunk's folder, a chunk no upload stored); consumers
    /// would dead-letter it again, whatever was fixed.
    Untrusted { reason: String },
}

/// One dead letter the run took, and what it did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayedLetter {
    /// The chunk the message announces, when its body says.
    pub stream: Option<String>,
    pub chunk: Option<u64>,
    pub reason: String,
    pub attempts: u32,
    pub action: ReplayAction,
}

/// What a replay run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Every dead letter that matched the filter, in the order taken.
    pub letters: Vec<ReplayedLetter>,
    /// Dead letters left because their reason did not match `--reason`.
    pub not_matching: u64,
    /// Dead letters left because `--max` was reached.
    pub over_max: u64,
    /// Dead letters that came back during this run after it had replayed them.
    pub returned: u64,
}

impl ReplayReport {
    /// How many letters ended with `action`.
    pub fn count(&self, action: fn(&ReplayAction) -> bool) -> usize {
        self.letters.iter().filter(|l| action(&l.action)).count()
    }
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("database: {0}")]
    Database(#[from] DbErr),
}

/// The stream and chunk a body names, read leniently: a dead letter may be a message of an
/// unknown version or not even JSON.
fn chunk_of(body: &[u8]) -> (Option<String>, Option<u64>) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else { return (None, None) };
    let stream = value.get("stream").and_then(serde_json::Value::as_str).map(str::to_owned);
    (stream, value.get("chunk").and_then(serde_json::Value::as_u64))
}

/// Moves matching dead letters of `queue` back to it; see the module's comment.
pub async fn replay(
    db: &DatabaseConnection,
    queue: &Arc<dyn Queue>,
    options: &ReplayOptions,
    shutdown: &Shutdown,
) -> Result<ReplayReport, ReplayError> {
    let mut held: Vec<DeadLetter> = Vec::new();
    let outcome = take(db, queue, options, shutdown, &mut held).await;
    // Give back what was held, even after a failure (a lease would expire anyway, later).
    for dead in &held {
        if let Err(e) = queue.release_dead(dead).await {
            tracing::warn!(error = %e, "could not give a dead letter back; it returns when its lease expires");
        }
    }
    outcome
}

async fn take(
    db: &DatabaseConnection,
    queue: &Arc<dyn Queue>,
    options: &ReplayOptions,
    shutdown: &Shutdown,
    held: &mut Vec<DeadLetter>,
) -> Result<ReplayReport, ReplayError> {
    let queue_name = &queue.settings().name;
    let wanted = options.reason.as_deref().map(str::to_lowercase);
    let interval = options.rate.map(|rate| Duration::from_secs(1) / rate.max(1));
    let mut report = ReplayReport::default();
    let mut seen = HashSet::new();
    let mut moved = 0u64;
    let mut last_publish: Option<tokio::time::Instant> = None;
    while !shutdown.is_raised() {
        let batch = queue.receive_dead(BATCH).await?;
        if batch.is_empty() {
            break;
        }
        for dead in batch {
            let sha256 = sha256_hex(&dead.delivery.body);
            if wanted.as_ref().is_some_and(|w| !dead.reason.to_lowercase().contains(w.as_str())) {
                report.not_matching += 1;
                held.push(dead);
                continue;
            }
            if !seen.insert(sha256.clone()) {
                report.returned += 1;
                held.push(dead);
                continue;
            }
            if options.max.is_some_and(|max| moved >= max) || shutdown.is_raised() {
                report.over_max += 1;
                held.push(dead);
                continue;
            }
            let (stream, chunk) = chunk_of(&dead.delivery.body);
            let mut letter = ReplayedLetter {
                stream,
                chunk,
                reason: dead.reason.clone(),
                attempts: dead.attempts,
                action: ReplayAction::WouldReplay,
            };
            // The consumers' rules, checked before publishing: a forged or tampered message is
            // not put back on the main queue. A body that does not decode as a chunk message of
            // this version is replayed as it is (consumers of a newer version may read it).
            if let Ok(message) = ChunkMessage::decode(&dead.delivery.body) {
                match registry::admit(db, &message).await {
                    Ok(_) => {}
                    Err(Refusal::Untrusted(reason)) => {
                        letter.action = ReplayAction::Untrusted { reason };
                        if !options.dry_run {
                            audit(db, queue, queue_name, &letter, &sha256, "untrusted").await?;
                        }
                        report.letters.push(letter);
                        held.push(dead);
                        continue;
                    }
                    Err(Refusal::Database(e)) => return Err(e.into()),
                }
            }
            let times = replays_of(db, queue_name, &sha256).await?;
            if times >= u64::from(options.max_replays) {
                letter.action = ReplayAction::Refused { times };
                if !options.dry_run {
                    audit(db, queue, queue_name, &letter, &sha256, "refused").await?;
                }
                tracing::warn!(chunk = ?letter.chunk, times, "not replayed: the loop guard's limit is reached");
                report.letters.push(letter);
                held.push(dead);
                continue;
            }
            if options.dry_run {
                report.letters.push(letter);
                held.push(dead);
                moved += 1;
                continue;
            }
            if let (Some(interval), Some(last)) = (interval, last_publish) {
                tokio::time::sleep_until(last + interval).await;
            }
            queue.publish(&dead.delivery.body).await?;
            txp_telemetry::events::message_published(queue.backend());
            last_publish = Some(tokio::time::Instant::now());
            letter.action = ReplayAction::Replayed;
            audit(db, queue, queue_name, &letter, &sha256, "replayed").await?;
            queue.ack_dead(&dead).await?;
            tracing::info!(stream = ?letter.stream, chunk = ?letter.chunk, reason = %letter.reason, "dead letter replayed");
            report.letters.push(letter);
            moved += 1;
        }
    }
    Ok(report)
}

/// How many times a message (by its body's SHA-256) has been replayed on this queue.
async fn replays_of(db: &DatabaseConnection, queue_name: &str, sha256: &str) -> Result<u64, DbErr> {
    replay_audit::Entity::find()
        .filter(replay_audit::Column::Queue.eq(queue_name))
        .filter(replay_audit::Column::BodySha256.eq(sha256))
        .filter(replay_audit::Column::Action.eq("replayed"))
        .count(db)
        .await
}

async fn audit(
    db: &DatabaseConnection,
    queue: &Arc<dyn Queue>,
    queue_name: &str,
    letter: &ReplayedLetter,
    sha256: &str,
    action: &str,
) -> Result<(), DbErr> {
    replay_audit::ActiveModel {
        queue: Set(queue_name.to_owned()),
        backend: Set(queue.backend().to_owned()),
        stream: Set(letter.stream.clone()),
        chunk_index: Set(letter.chunk.and_then(|c| i64::try_from(c).ok())),
        reason: Set(letter.reason.clone()),
        attempts: Set(i32::try_from(letter.attempts).unwrap_or(i32::MAX)),
        body_sha256: Set(sha256.to_owned()),
        action: Set(action.to_owned()),
        at_ms: Set(now_ms()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_read_from_any_json_body() {
        assert_eq!(chunk_of(br#"{"version":9,"stream":"s","chunk":4}"#), (Some("s".to_owned()), Some(4)));
        assert_eq!(chunk_of(b"not json"), (None, None));
        assert_eq!(chunk_of(br#"{"chunk":"x"}"#), (None, None));
    }
}
