//! The events that update the metrics of [`crate::catalogue`]: each is one small function, the
//! only place its metric is touched, so a name or a label is spelled once. Without an installed
//! recorder (a command that serves no metrics, a unit test) every event does nothing.

use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

use crate::catalogue::{
    BUILD_INFO, CATALOGUE, CHUNK_STAGE_SECONDS, CHUNKS_STORED, DETECTIONS, DETECTOR_FOLDED_THROUGH,
    DETECTOR_LAG, DETECTOR_WAITING_FOR, DUPLICATES_SUPPRESSED, END_TO_END_SECONDS, ERROR_KINDS, ERRORS,
    MESSAGES_ACKED, MESSAGES_DEAD_LETTERED, MESSAGES_PUBLISHED, MESSAGES_RECEIVED, MESSAGES_RETRIED,
    MetricKind, OLDEST_UNFOLDED_AGE, OUTPUT_FILES, PATTERNS, QUEUE_DEPTH, REDELIVERIES, ROWS, STAGES,
};

/// A stage of the work on one chunk: the consumer's (fetch, parse, commit), then the
/// detector's (load, evaluate, record, output, persist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Fetch,
    Parse,
    Commit,
    Load,
    Evaluate,
    Record,
    Output,
    Persist,
}

impl Stage {
    fn label(self) -> &'static str {
        match self {
            Self::Fetch => STAGES[0],
            Self::Parse => STAGES[1],
            Self::Commit => STAGES[2],
            Self::Load => STAGES[3],
            Self::Evaluate => STAGES[4],
            Self::Record => STAGES[5],
            Self::Output => STAGES[6],
            Self::Persist => STAGES[7],
        }
    }
}

/// What kind of thing failed, for `txp_errors_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Queue,
    Store,
    Database,
    Input,
    Output,
}

impl ErrorKind {
    fn label(self) -> &'static str {
        match self {
            Self::Queue => ERROR_KINDS[0],
            Self::Store => ERROR_KINDS[1],
            Self::Database => ERROR_KINDS[2],
            Self::Input => ERROR_KINDS[3],
            Self::Output => ERROR_KINDS[4],
        }
    }
}

/// Registers the metrics every process has, at their starting values, so that a scrape shows
/// them (and a dashboard has a zero to draw) before the first event: build info, errors by kind,
/// detections by pattern, output files and the stage and end-to-end histograms.
pub fn process_started(command: &'static str) {
    for metric in CATALOGUE {
        match metric.kind {
            MetricKind::Counter => describe_counter!(metric.name, metric.help),
            MetricKind::Gauge => describe_gauge!(metric.name, metric.help),
            MetricKind::Histogram => describe_histogram!(metric.name, metric.help),
        }
    }
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "command" => command).set(1.0);
    for kind in ERROR_KINDS {
        counter!(ERRORS, "kind" => *kind).absolute(0);
    }
    for pattern in PATTERNS {
        counter!(DETECTIONS, "pattern" => *pattern).absolute(0);
    }
    counter!(OUTPUT_FILES).absolute(0);
    for stage in STAGES {
        let _ = histogram!(CHUNK_STAGE_SECONDS, "stage" => *stage);
    }
    let _ = histogram!(END_TO_END_SECONDS);
}

/// Registers the queue counters of a backend at zero (a consumer's or an uploader's queue).
pub fn queue_opened(backend: &'static str) {
    for name in [
        MESSAGES_PUBLISHED,
        MESSAGES_RECEIVED,
        MESSAGES_ACKED,
        MESSAGES_RETRIED,
        MESSAGES_DEAD_LETTERED,
        REDELIVERIES,
        DUPLICATES_SUPPRESSED,
    ] {
        counter!(name, "backend" => backend).absolute(0);
    }
}

/// The uploader stored a chunk (`store`: `local` or `s3`).
pub fn chunk_stored(store: &'static str) {
    counter!(CHUNKS_STORED, "store" => store).increment(1);
}

/// A message was published and confirmed.
pub fn message_published(backend: &'static str) {
    counter!(MESSAGES_PUBLISHED, "backend" => backend).increment(1);
}

/// A consumer received a delivery (`attempt` 1 on the first).
pub fn message_received(backend: &'static str, attempt: u32) {
    counter!(MESSAGES_RECEIVED, "backend" => backend).increment(1);
    if attempt > 1 {
        counter!(REDELIVERIES, "backend" => backend).increment(1);
    }
}

/// A delivery was acked after its commit.
pub fn message_acked(backend: &'static str) {
    counter!(MESSAGES_ACKED, "backend" => backend).increment(1);
}

/// A delivery was released after a transient failure.
pub fn message_retried(backend: &'static str) {
    counter!(MESSAGES_RETRIED, "backend" => backend).increment(1);
}

/// A delivery was moved to the dead-letter queue.
pub fn message_dead_lettered(backend: &'static str) {
    counter!(MESSAGES_DEAD_LETTERED, "backend" => backend).increment(1);
}

/// A delivery of a chunk already committed was acked with no effect.
pub fn duplicate_suppressed(backend: &'static str) {
    counter!(DUPLICATES_SUPPRESSED, "backend" => backend).increment(1);
}

/// A chunk's rows were committed: `valid` aggregated, `quarantined` set aside with reasons.
pub fn rows_committed(valid: u64, quarantined: u64) {
    counter!(ROWS, "outcome" => "valid").increment(valid);
    counter!(ROWS, "outcome" => "quarantined").increment(quarantined);
}

/// Registers the row counters at zero.
pub fn rows_registered() {
    rows_committed(0, 0);
}

/// How long one stage of a chunk took.
pub fn stage_finished(stage: Stage, took: Duration) {
    histogram!(CHUNK_STAGE_SECONDS, "stage" => stage.label()).record(took.as_secs_f64());
}

/// A chunk's detections were committed `latency` after the chunk was uploaded.
pub fn chunk_detected(latency: Duration) {
    histogram!(END_TO_END_SECONDS).record(latency.as_secs_f64());
}

/// Detections were committed for a pattern (`pattern`: its id, as in the output files).
pub fn detections_committed(pattern: &str, count: u64) {
    let pattern = PATTERNS.iter().find(|p| **p == pattern).copied().unwrap_or("other");
    counter!(DETECTIONS, "pattern" => pattern).increment(count);
}

/// An output file was written.
pub fn output_file_written() {
    counter!(OUTPUT_FILES).increment(1);
}

/// Something failed.
pub fn error(kind: ErrorKind) {
    counter!(ERRORS, "kind" => kind.label()).increment(1);
}

/// Where a detector shard stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardPosition {
    /// The last chunk folded, if any.
    pub folded_through: Option<u64>,
    /// Chunks stored or committed but not folded.
    pub lag: u64,
    /// Age of the oldest of those.
    pub oldest_unfolded: Duration,
}

/// A detector shard's position, lag and the age of what it has not folded.
pub fn shard_position(stream: &str, shard: u32, position: ShardPosition) {
    let labels = [("stream", stream.to_owned()), ("shard", shard.to_string())];
    let folded = position.folded_through.map_or(-1.0, |c| c as f64);
    let next = position.folded_through.map_or(0.0, |c| (c + 1) as f64);
    gauge!(DETECTOR_FOLDED_THROUGH, &labels).set(folded);
    gauge!(DETECTOR_WAITING_FOR, &labels).set(next);
    gauge!(DETECTOR_LAG, &labels).set(position.lag as f64);
    gauge!(OLDEST_UNFOLDED_AGE, &labels).set(position.oldest_unfolded.as_secs_f64());
}

/// Depths of a queue and its dead-letter queue, as polled.
pub fn queue_depth(backend: &'static str, ready: u64, in_flight: u64, dead: u64) {
    gauge!(QUEUE_DEPTH, "backend" => backend, "queue" => "main", "state" => "ready").set(ready as f64);
    gauge!(QUEUE_DEPTH, "backend" => backend, "queue" => "main", "state" => "in_flight")
        .set(in_flight as f64);
    gauge!(QUEUE_DEPTH, "backend" => backend, "queue" => "dead", "state" => "ready").set(dead as f64);
}
