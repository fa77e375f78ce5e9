//! `txp consume`: workers that take chunk messages, check and aggregate the chunk, write its
//! rejected rows to the quarantine, commit the aggregate with its idempotency record in one
//! transaction, and only then ack the message.
//!
//! Failures are sorted before anything is retried:
//! - permanent (a body that does not decode, an unknown version, a message the stream's registry
//!   does not allow (another store, keys outside its chunk's folder, a chunk no upload stored:
//!   [`crate::registry`]), an object still missing after retries, a SHA-256 mismatch, other
//!   content already committed under the same index): the message goes to the dead-letter queue
//!   at once, with its reason;
//! - transient (store, database or broker unreachable): the message is released for redelivery,
//!   which counts toward the queue's delivery limit, after a backoff; on its last delivery it is
//!   dead-lettered with the last error as its reason.
//!
//! While a chunk is worked on, its lease is extended (SQS `ChangeMessageVisibility`, the
//! embedded queue's `visible_at_ms`; RabbitMQ keeps an unacked delivery with its channel).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tracing::Instrument;
use txp_connectors::queue::{Delivery, Queue, QueueError};
use txp_connectors::retry::Backoff;
use txp_connectors::store::{ObjectStore, S3Settings, StoreError, open_store};
use txp_core::aggregate::{ChunkAggregate, ChunkAggregator};
use txp_core::layout::chunk_folder;
use txp_core::message::ChunkMessage;
use txp_telemetry::events::{self, ErrorKind, Stage};

use crate::chunks::{CommitOutcome, commit_chunk};
use crate::registry::{self, Refusal, RegisteredStream};
use crate::shutdown::Shutdown;

/// Where a crash test stops a consumer (`txp consume --crash-at POINT:CHUNK`, hidden).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerCrash {
    /// Aggregate rows written, the transaction not committed.
    MidTransaction,
    /// Committed, the message not acked.
    AfterCommit,
    /// Not a crash: waits 3 s before the commit, so a test can stop the consumer mid-chunk.
    SlowCommit,
}

impl std::str::FromStr for ConsumerCrash {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "mid-transaction" => Ok(Self::MidTransaction),
            "after-commit" => Ok(Self::AfterCommit),
            "slow-commit" => Ok(Self::SlowCommit),
            _ => Err(format!("unknown crash point `{text}`: mid-transaction, after-commit or slow-commit")),
        }
    }
}

/// How a consumer works.
#[derive(Debug, Clone, Default)]
pub struct ConsumerOptions {
    /// Where rejected rows go, for every stream; `None`: each stream's own, from its registry row.
    pub quarantine: Option<String>,
    pub s3: S3Settings,
    /// Retries of a store read within one delivery.
    pub fetch_backoff: Backoff,
    /// Told of every commit, for the detectors of the same process.
    pub handoff: Option<crate::handoff::Handoff>,
    /// For crash tests only.
    pub crash_at: Option<(ConsumerCrash, u64)>,
}

/// What happened to one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The chunk was committed, then the message acked (in the commit's own transaction when the
    /// queue lives in the same database: `acked_in_commit`).
    Committed { stream: String, chunk: u64, valid: u64, rejected: u64, acked_in_commit: bool },
    /// The chunk was already committed with the same content: acked with no effect.
    Duplicate { stream: String, chunk: u64 },
    /// Moved to the dead-letter queue.
    DeadLettered { reason: String },
    /// Given back for redelivery after a transient failure.
    Released { error: String },
}

/// Why processing a delivery failed.
#[derive(Debug)]
enum Failure {
    Permanent(String),
    Transient(String),
}

/// A registry refusal: permanent when the message is not allowed, transient when the database
/// could not say.
fn refused(refusal: Refusal) -> Failure {
    match refusal {
        Refusal::Untrusted(reason) => Failure::Permanent(reason),
        Refusal::Database(e) => Failure::Transient(format!("database: {e}")),
    }
}

fn store_failure(e: StoreError) -> Failure {
    if e.is_transient() { Failure::Transient(e.to_string()) } else { Failure::Permanent(e.to_string()) }
}

/// What a consumer process did in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumeReport {
    pub committed: u64,
    pub duplicates: u64,
    pub dead_lettered: u64,
    pub released: u64,
}

impl ConsumeReport {
    fn add(&mut self, handled: &Handled) {
        match handled {
            Handled::Committed { .. } => self.committed += 1,
            Handled::Duplicate { .. } => self.duplicates += 1,
            Handled::DeadLettered { .. } => self.dead_lettered += 1,
            Handled::Released { .. } => self.released += 1,
        }
    }
}

/// The consumer of one queue; shared by its workers.
#[derive(Debug)]
pub struct ChunkConsumer {
    db: DatabaseConnection,
    queue: Arc<dyn Queue>,
    options: ConsumerOptions,
    /// Stores by URL, opened on first use.
    stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
    /// Registry rows of the streams seen, by name. Rows are never deleted and their input and
    /// quarantine never change, so a stream found once is not looked up again.
    streams: Mutex<HashMap<String, RegisteredStream>>,
}

/// The quarantine file of a chunk: one row per rejected row, with where and why.
pub fn quarantine_csv(aggregate: &ChunkAggregate) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    let mut write = || -> csv::Result<()> {
        writer.write_record(["chunkIndex", "part", "line", "column", "reason", "raw"])?;
        let chunk = aggregate.index.to_string();
        for q in &aggregate.rejected {
            let r = &q.rejection;
            writer.write_record([
                chunk.as_str(),
                q.part.as_str(),
                &r.line.to_string(),
                r.column.unwrap_or(""),
                &r.reason,
                &r.raw_text(),
            ])?;
        }
        writer.flush()?;
        Ok(())
    };
    // Writing into memory cannot fail.
    let _ = write();
    writer.into_inner().unwrap_or_default()
}

impl ChunkConsumer {
    pub fn new(db: DatabaseConnection, queue: Arc<dyn Queue>, options: ConsumerOptions) -> Self {
        Self { db, queue, options, stores: Mutex::new(HashMap::new()), streams: Mutex::new(HashMap::new()) }
    }

    /// The queue it consumes.
    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.queue
    }

    async fn store(&self, url: &str) -> Result<Arc<dyn ObjectStore>, Failure> {
        let mut stores = self.stores.lock().await;
        if let Some(store) = stores.get(url) {
            return Ok(store.clone());
        }
        let store = open_store(url, &self.options.s3).await.map_err(store_failure)?;
        stores.insert(url.to_owned(), store.clone());
        Ok(store)
    }

    /// The registry row of a stream, cached: a stream's input root and quarantine never change
    /// once recorded.
    async fn registered(&self, name: &str) -> Result<RegisteredStream, Failure> {
        if let Some(stream) = self.streams.lock().await.get(name) {
            return Ok(stream.clone());
        }
        let stream = registry::find_registered(&self.db, name).await.map_err(refused)?;
        self.streams.lock().await.insert(name.to_owned(), stream.clone());
        Ok(stream)
    }

    /// Reads one object, retrying transient failures and a missing object (it may not be
    /// visible yet); still missing after the retries is permanent.
    async fn fetch(&self, store: &Arc<dyn ObjectStore>, key: &str) -> Result<Vec<u8>, Failure> {
        let backoff = self.options.fetch_backoff;
        let mut delay = backoff.first;
        let mut attempt = 1;
        loop {
            let failure = match store.get(key).await {
                Ok(Some(bytes)) => return Ok(bytes),
                Ok(None) => Failure::Permanent(format!("object missing: {}/{key}", store.url())),
                Err(e) if e.is_transient() => Failure::Transient(e.to_string()),
                Err(e) => return Err(Failure::Permanent(e.to_string())),
            };
            if attempt >= backoff.attempts {
                return Err(failure);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(backoff.max);
            attempt += 1;
        }
    }

    /// Everything but the ack: decode, check against the registry, fetch, check, aggregate,
    /// quarantine, commit. A message that names anything the stream's registry does not allow
    /// (another store, keys outside its chunk's folder, a chunk the uploader never stored) is
    /// refused before anything is read or written: the store and the quarantine are the
    /// registry's, never the message's.
    async fn process(&self, delivery: &Delivery) -> Result<Handled, Failure> {
        let message = ChunkMessage::decode(&delivery.body).map_err(|e| Failure::Permanent(e.to_string()))?;
        let stream = message.stream.clone();
        let chunk = message.chunk;
        registry::check_layout(&message).map_err(refused)?;
        let registered = self.registered(&stream).await?;
        registry::check_store(&message, &registered).map_err(refused)?;
        // A redelivery of a committed chunk needs no fetch.
        match crate::chunks::find_record(&self.db, &stream, chunk).await {
            Ok(Some(r)) if r.sha256 == message.sha256 && r.skipped_reason.is_none() => {
                return Ok(Handled::Duplicate { stream, chunk });
            }
            Ok(Some(r)) => return Err(conflict(&message, &r.sha256, r.skipped_reason.as_deref())),
            Ok(None) => registry::check_ledger(&self.db, &message).await.map_err(refused)?,
            Err(e) => return Err(Failure::Transient(format!("database: {e}"))),
        }
        let store = self.store(&registered.input).await?;
        let mut hasher = Sha256::new();
        let mut aggregator = ChunkAggregator::new(chunk);
        let (mut fetching, mut parsing) = (Duration::ZERO, Duration::ZERO);
        for key in &message.objects {
            let started = Instant::now();
            let bytes = self.fetch(&store, key).await?;
            fetching += started.elapsed();
            let started = Instant::now();
            hasher.update(&bytes);
            aggregator
                .add_part(key, &bytes[..])
                .map_err(|e| Failure::Permanent(format!("{}/{key}: {e}", store.url())))?;
            parsing += started.elapsed();
        }
        events::stage_finished(Stage::Fetch, fetching);
        let sha256 = txp_core::message::hex(&hasher.finalize());
        if sha256 != message.sha256 {
            return Err(Failure::Permanent(format!(
                "sha256 mismatch: the message announced {}, the stored chunk has {sha256}",
                message.sha256
            )));
        }
        let started = Instant::now();
        let aggregate = aggregator.finish();
        parsing += started.elapsed();
        events::stage_finished(Stage::Parse, parsing);
        let (valid, rejected) = (aggregate.valid_rows, aggregate.rejected.len() as u64);
        if rejected > 0 {
            let url = self.options.quarantine.as_deref().unwrap_or(&registered.quarantine);
            let quarantine = self.store(url).await?;
            quarantine.put(&chunk_folder(chunk), quarantine_csv(&aggregate)).await.map_err(store_failure)?;
        }
        let crash = self.options.crash_at.filter(|(_, at)| *at == chunk).map(|(point, _)| point);
        if crash == Some(ConsumerCrash::SlowCommit) {
            tracing::warn!(chunk, "test hook: waiting 3 s before the commit");
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        let started = Instant::now();
        let ack = self.queue.ack_in_commit(delivery);
        let acked_in_commit = ack.is_some();
        let outcome = commit_chunk(
            &self.db,
            &stream,
            &sha256,
            &aggregate,
            ack,
            crash == Some(ConsumerCrash::MidTransaction),
        )
        .await
        .map_err(|e| Failure::Transient(format!("database: {e}")))?;
        let committing = started.elapsed();
        events::stage_finished(Stage::Commit, committing);
        match outcome {
            CommitOutcome::Committed => {
                if crash == Some(ConsumerCrash::AfterCommit) {
                    std::process::abort();
                }
                // Per-chunk stage times (µs) for `txp-bench` and anyone reading JSON logs.
                tracing::info!(
                    %stream, chunk, valid, rejected, attempt = delivery.attempt,
                    fetch_us = micros(fetching), parse_us = micros(parsing), commit_us = micros(committing),
                    "chunk committed"
                );
                if let Some(handoff) = &self.options.handoff {
                    handoff.committed(&stream, aggregate);
                }
                Ok(Handled::Committed { stream, chunk, valid, rejected, acked_in_commit })
            }
            CommitOutcome::AlreadyCommitted => Ok(Handled::Duplicate { stream, chunk }),
            CommitOutcome::Conflict { recorded_sha256, skipped_reason } => {
                Err(conflict(&message, &recorded_sha256, skipped_reason.as_deref()))
            }
        }
    }

    /// [`process`](Self::process), extending the delivery's lease every third of the queue's
    /// visibility timeout while it runs, so that no other consumer takes a chunk that is slow
    /// to fetch or commit. A failed extension is only logged: at worst another consumer takes
    /// the message too, and the idempotency record makes the second commit a no-op.
    async fn process_leased(&self, delivery: &Delivery) -> Result<Handled, Failure> {
        let lease = self.queue.settings().visibility_timeout;
        let every = (lease / 3).max(Duration::from_millis(100));
        let work = self.process(delivery);
        tokio::pin!(work);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                result = &mut work => return result,
                _ = ticker.tick() => {
                    if let Err(e) = self.queue.extend_lease(delivery, lease).await {
                        tracing::warn!(error = %e, "could not extend a lease; another consumer may take the message");
                    }
                }
            }
        }
    }

    /// Handles one delivery to its end: ack, dead-letter or release. Only a queue failure is an
    /// error (the delivery then stays leased and comes back after its visibility timeout).
    pub async fn handle(&self, delivery: &Delivery) -> Result<Handled, QueueError> {
        // One span per chunk: every log line of its handling names the stream, the chunk and
        // the message (its content hash: the same for every copy of the same chunk message).
        let span = match ChunkMessage::decode(&delivery.body) {
            Ok(m) => {
                tracing::info_span!("chunk", stream = %m.stream, chunk = m.chunk, message_id = %&m.sha256[..m.sha256.len().min(16)], attempt = delivery.attempt)
            }
            Err(_) => tracing::info_span!(
                "chunk",
                stream = "?",
                chunk = "?",
                message_id = "?",
                attempt = delivery.attempt
            ),
        };
        self.handle_in_span(delivery).instrument(span).await
    }

    async fn handle_in_span(&self, delivery: &Delivery) -> Result<Handled, QueueError> {
        let backend = self.queue.backend();
        events::message_received(backend, delivery.attempt);
        let limit = self.queue.settings().delivery_limit;
        let handled = match self.process_leased(delivery).await {
            Ok(handled) => {
                if !matches!(handled, Handled::Committed { acked_in_commit: true, .. }) {
                    self.queue.ack(delivery).await?;
                }
                events::message_acked(backend);
                match &handled {
                    Handled::Committed { valid, rejected, .. } => events::rows_committed(*valid, *rejected),
                    Handled::Duplicate { .. } => events::duplicate_suppressed(backend),
                    Handled::DeadLettered { .. } | Handled::Released { .. } => {}
                }
                handled
            }
            Err(Failure::Permanent(reason)) => {
                events::error(ErrorKind::Input);
                tracing::warn!(attempt = delivery.attempt, %reason, "dead-lettering a message");
                self.queue.dead_letter(delivery, &reason).await?;
                Handled::DeadLettered { reason }
            }
            Err(Failure::Transient(error)) if delivery.attempt >= limit => {
                // The last delivery: dead-letter it ourselves, so the reason says what failed
                // (the broker's own move past the limit would only say that it was reached).
                events::error(transient_kind(&error));
                let reason = format!("delivery limit {limit} reached; last error: {error}");
                tracing::warn!(attempt = delivery.attempt, %reason, "dead-lettering a message");
                self.queue.dead_letter(delivery, &reason).await?;
                Handled::DeadLettered { reason }
            }
            Err(Failure::Transient(error)) => {
                events::error(transient_kind(&error));
                tracing::warn!(attempt = delivery.attempt, %error, "transient failure; releasing the message");
                self.queue.release(delivery).await?;
                events::message_retried(backend);
                Handled::Released { error }
            }
        };
        if let Handled::DeadLettered { .. } = &handled {
            events::message_dead_lettered(backend);
        }
        Ok(handled)
    }

    /// Receives at most one message, waiting up to `wait`, and handles it; `None` when none came.
    pub async fn step(&self, wait: Duration) -> Result<Option<Handled>, QueueError> {
        let Some(delivery) = self.queue.receive(1, wait).await?.into_iter().next() else {
            return Ok(None);
        };
        self.handle(&delivery).await.map(Some)
    }

    /// Whether the queue holds nothing ready or in flight.
    pub async fn queue_is_empty(&self) -> Result<bool, QueueError> {
        let depth = self.queue.depth().await?;
        Ok(depth.ready == 0 && depth.in_flight == 0)
    }

    /// One worker: steps until shutdown (or, with `until_idle`, until the queue is empty).
    pub async fn work(
        &self,
        until_idle: bool,
        mut shutdown: Shutdown,
        report: &Mutex<ConsumeReport>,
    ) -> Result<(), QueueError> {
        let backoff = Backoff::default();
        let mut failures = 0u32;
        while !shutdown.is_raised() {
            // Only the wait for a message is cut short by a shutdown: a chunk in hand is finished
            // (committed, then acked) before the worker stops.
            let received = tokio::select! {
                result = self.queue.receive(1, Duration::from_secs(1)) => result,
                () = shutdown.raised() => break,
            };
            let handled = match received {
                Ok(deliveries) => match deliveries.into_iter().next() {
                    Some(delivery) => self.handle(&delivery).await.map(Some),
                    None => Ok(None),
                },
                Err(e) => Err(e),
            };
            match handled {
                Ok(Some(handled)) => {
                    let transient = matches!(handled, Handled::Released { .. });
                    report.lock().await.add(&handled);
                    failures = if transient { failures + 1 } else { 0 };
                }
                Ok(None) => {
                    failures = 0;
                    if until_idle {
                        match self.queue_is_empty().await {
                            Ok(true) => return Ok(()),
                            Ok(false) => {}
                            // The queue cannot tell now (a cut, a restart): keep working.
                            Err(e) if e.is_transient() => {
                                tracing::warn!(error = %e, "queue unavailable");
                                failures += 1;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) if e.is_transient() => {
                    events::error(ErrorKind::Queue);
                    tracing::warn!(error = %e, "queue unavailable");
                    failures += 1;
                }
                Err(e) => return Err(e),
            }
            if failures > 0 {
                let exponent = failures.min(6) - 1;
                let delay = (backoff.first * 2u32.pow(exponent)).min(backoff.max);
                shutdown.sleep(delay).await;
            }
        }
        Ok(())
    }

    /// `workers` workers at once until shutdown (or until the queue is empty).
    pub async fn run(
        self: Arc<Self>,
        workers: usize,
        until_idle: bool,
        shutdown: Shutdown,
    ) -> Result<ConsumeReport, QueueError> {
        let report = Arc::new(Mutex::new(ConsumeReport::default()));
        self.queue.set_receivers(workers.max(1));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers.max(1) {
            let (consumer, shutdown, report) = (self.clone(), shutdown.clone(), report.clone());
            tasks.spawn(async move { consumer.work(until_idle, shutdown, &report).await });
        }
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    first_error.get_or_insert(QueueError::Permanent {
                        location: "consumer".to_owned(),
                        message: format!("a worker stopped: {e}"),
                        hint: None,
                    });
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(report.lock().await.clone()),
        }
    }
}

/// What a transient failure was about: its message starts with `database:` when the database
/// failed; otherwise the store did.
fn transient_kind(error: &str) -> ErrorKind {
    if error.starts_with("database:") { ErrorKind::Database } else { ErrorKind::Store }
}

fn conflict(message: &ChunkMessage, recorded: &str, skipped: Option<&str>) -> Failure {
    Failure::Permanent(match skipped {
        Some(reason) => format!(
            "conflicting content: chunk {} of stream `{}` was skipped for good ({reason})",
            message.chunk, message.stream
        ),
        None => format!(
            "conflicting content: chunk {} of stream `{}` was committed with SHA-256 {recorded}, this message announces {}",
            message.chunk, message.stream, message.sha256
        ),
    })
}

/// A duration in whole microseconds, for log fields.
pub(crate) fn micros(took: Duration) -> u64 {
    u64::try_from(took.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_rows_keep_line_column_reason_and_raw() {
        let text = "step,customer,age,gender,zipcodeOri,merchant,zipMerchant,category,amount,fraud\n\
            0,'C1','2','F','28007','M1','28007','es_food',1.00,0\n\
            0,'C1','2','F','28007','M1','28007','es_food',abc,0\n";
        let aggregate = ChunkAggregate::from_part(4, "chunk_4.csv/part-00000.csv", text.as_bytes()).unwrap();
        let csv = String::from_utf8(quarantine_csv(&aggregate)).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "chunkIndex,part,line,column,reason,raw");
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with("4,chunk_4.csv/part-00000.csv,3,amount,"), "{}", lines[1]);
        assert!(
            lines[1].ends_with("\"0,'C1','2','F','28007','M1','28007','es_food',abc,0\""),
            "{}",
            lines[1]
        );
    }
}
