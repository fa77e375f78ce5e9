//! `txp status`: how far each stream got, read from the database (upload ledger, idempotency
//! records, detector positions, detections, output files) and the queue's depth. Read-only: it
//! changes nothing, and a queue that cannot be reached is reported, not fatal.

use std::collections::BTreeSet;
use std::time::Duration;

use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};
use serde::Serialize;
use txp_connectors::queue::{backend_of, open_queue};
use txp_consumer::chunks::high_water;
use txp_core::Pattern;
use txp_entity::{chunk_record, detection, detector_state, output_file, stream, upload_ledger};

use super::generate::thousands;
use super::upload::{connect, runtime};
use crate::Outcome;
use crate::cli::StatusArgs;
use crate::error::Error;
use crate::settings::{Settings, mask_secrets};

/// How long opening the queue and reading its depth may take before it is reported unreachable.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// What `txp status --json` prints (docs/operations.md lists every key).
#[derive(Debug, Serialize)]
pub struct Status {
    /// The database URL, password masked.
    pub database: String,
    pub queue: QueueStatus,
    pub streams: Vec<StreamStatus>,
}

/// The queue (global: every stream shares it).
#[derive(Debug, Serialize)]
pub struct QueueStatus {
    /// `db`, `rabbitmq`, `sqs` (or `unknown` for a URL that names none).
    pub backend: String,
    /// The queue URL, password masked.
    pub url: String,
    pub name: String,
    pub dead_letter_queue: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead: Option<u64>,
    /// Why the depth could not be read (then the three counts are absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One stream.
#[derive(Debug, Serialize)]
pub struct StreamStatus {
    pub stream: String,
    /// The upload's source and destination (masked); `None` when no upload recorded the stream.
    pub source: Option<String>,
    pub destination: Option<String>,
    pub chunk_rows: Option<i64>,
    /// Upload ledger rows: chunks stored.
    pub chunks_stored: u64,
    /// Ledger rows whose message the broker confirmed.
    pub chunks_published: u64,
    /// The source is exhausted and its end recorded.
    pub upload_finished: bool,
    /// The stream's last chunk once finished; -1 for an empty stream; `None` before.
    pub last_chunk: Option<i64>,
    /// Idempotency records: chunks committed, the skipped ones included.
    pub chunks_committed: u64,
    /// Of those, chunks recorded as lost with `txp skip`.
    pub chunks_skipped: u64,
    pub rows_valid: u64,
    pub rows_rejected: u64,
    /// The highest chunk index stored or committed; `None` when there is none.
    pub high_water: Option<i64>,
    pub shards: Vec<ShardStatus>,
    /// Detections per pattern (`UPGRADE`, `CHILD`, `DEI-NEEDED`; 0 when none).
    pub detections: Detections,
    /// Detections not yet in a written output file.
    pub detections_pending: u64,
    pub output_files_written: u64,
    /// Output files decided but not written yet.
    pub output_files_pending: u64,
}

/// Detections per pattern, every key always present.
#[derive(Debug, Default, Serialize)]
pub struct Detections {
    #[serde(rename = "UPGRADE")]
    pub upgrade: u64,
    #[serde(rename = "CHILD")]
    pub child: u64,
    #[serde(rename = "DEI-NEEDED")]
    pub dei_needed: u64,
}

/// One detector shard of a stream.
#[derive(Debug, Serialize)]
pub struct ShardStatus {
    pub shard: i32,
    pub shards: i32,
    pub folded_through: Option<i64>,
    pub persisted_through: Option<i64>,
    /// The chunk it folds next (waits for): `folded_through + 1`, or 0.
    pub next_chunk: i64,
    /// Chunks stored or committed that it has not folded yet: `high_water + 1 - next_chunk`, at least 0.
    pub lag_chunks: i64,
    /// It has folded through the stream's recorded last chunk.
    pub done: bool,
}

pub(super) fn db_error(e: &DbErr) -> Error {
    Error::usage(format!("database: {}", mask_secrets(&e.to_string())))
        .hint("check that the database is reachable (--database / DATABASE_URL)")
}

/// Every stream the database knows: uploaded, committed or folded.
pub(super) async fn known_streams(db: &DatabaseConnection) -> Result<BTreeSet<String>, DbErr> {
    let mut names: BTreeSet<String> = BTreeSet::new();
    names.extend(
        stream::Entity::find()
            .select_only()
            .column(stream::Column::Name)
            .into_tuple::<String>()
            .all(db)
            .await?,
    );
    names.extend(
        upload_ledger::Entity::find()
            .select_only()
            .column(upload_ledger::Column::Stream)
            .distinct()
            .into_tuple::<String>()
            .all(db)
            .await?,
    );
    names.extend(
        chunk_record::Entity::find()
            .select_only()
            .column(chunk_record::Column::Stream)
            .distinct()
            .into_tuple::<String>()
            .all(db)
            .await?,
    );
    names.extend(
        detector_state::Entity::find()
            .select_only()
            .column(detector_state::Column::Stream)
            .distinct()
            .into_tuple::<String>()
            .all(db)
            .await?,
    );
    Ok(names)
}

/// A hint naming the known streams.
pub(super) fn streams_hint(known: &BTreeSet<String>) -> String {
    if known.is_empty() {
        "the database has no stream yet: `txp upload --stream NAME` starts one".to_owned()
    } else {
        let list: Vec<&str> = known.iter().map(String::as_str).collect();
        format!("known streams: {}; `txp status` shows them all", list.join(", "))
    }
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

async fn stream_status(db: &DatabaseConnection, name: &str) -> Result<StreamStatus, DbErr> {
    let row = stream::Entity::find_by_id(name.to_owned()).one(db).await?;
    let ledger = upload_ledger::Entity::find().filter(upload_ledger::Column::Stream.eq(name));
    let chunks_stored = ledger.clone().count(db).await?;
    let chunks_published =
        ledger.clone().filter(upload_ledger::Column::PublishedAtMs.is_not_null()).count(db).await?;
    let records: Vec<(i64, i64, i64, Option<String>)> = chunk_record::Entity::find()
        .filter(chunk_record::Column::Stream.eq(name))
        .select_only()
        .column(chunk_record::Column::ChunkIndex)
        .column(chunk_record::Column::ValidRows)
        .column(chunk_record::Column::RejectedRows)
        .column(chunk_record::Column::SkippedReason)
        .into_tuple()
        .all(db)
        .await?;
    let high_water = high_water(db, name).await?;
    let last_chunk = row.as_ref().and_then(|r| r.last_chunk);
    let upload_finished = row.as_ref().is_some_and(|r| r.finished_at_ms.is_some());
    let shards = detector_state::Entity::find()
        .filter(detector_state::Column::Stream.eq(name))
        .all(db)
        .await?
        .into_iter()
        .map(|s| {
            let next_chunk = s.folded_through.map_or(0, |f| f + 1);
            ShardStatus {
                shard: s.shard,
                shards: s.shards,
                folded_through: s.folded_through,
                persisted_through: s.persisted_through,
                next_chunk,
                lag_chunks: high_water.map_or(0, |h| (h + 1 - next_chunk).max(0)),
                done: upload_finished && last_chunk.is_some_and(|last| next_chunk > last),
            }
        })
        .collect();
    let mut detections = Detections::default();
    let per_pattern: Vec<(String, i64)> = detection::Entity::find()
        .filter(detection::Column::Stream.eq(name))
        .select_only()
        .column(detection::Column::Pattern)
        .column_as(detection::Column::Pattern.count(), "n")
        .group_by(detection::Column::Pattern)
        .into_tuple()
        .all(db)
        .await?;
    for (pattern, n) in per_pattern {
        let n = unsigned(n);
        match Pattern::from_id(&pattern) {
            Some(Pattern::Upgrade) => detections.upgrade += n,
            Some(Pattern::Child) => detections.child += n,
            Some(Pattern::DeiNeeded) => detections.dei_needed += n,
            None => tracing::warn!(pattern, "a detection row with an unknown pattern id"),
        }
    }
    let detections_pending = detection::Entity::find()
        .filter(detection::Column::Stream.eq(name))
        .filter(detection::Column::FileId.is_null())
        .count(db)
        .await?;
    let files = output_file::Entity::find().filter(output_file::Column::Stream.eq(name));
    let output_files_written =
        files.clone().filter(output_file::Column::WrittenAtMs.is_not_null()).count(db).await?;
    let output_files_pending = files.filter(output_file::Column::WrittenAtMs.is_null()).count(db).await?;
    Ok(StreamStatus {
        stream: name.to_owned(),
        source: row.as_ref().map(|r| mask_secrets(&r.source)),
        destination: row.as_ref().map(|r| mask_secrets(&r.destination)),
        chunk_rows: row.as_ref().map(|r| r.chunk_rows),
        chunks_stored,
        chunks_published,
        upload_finished,
        last_chunk,
        chunks_committed: records.len() as u64,
        chunks_skipped: records.iter().filter(|r| r.3.is_some()).count() as u64,
        rows_valid: records.iter().map(|r| unsigned(r.1)).sum(),
        rows_rejected: records.iter().map(|r| unsigned(r.2)).sum(),
        high_water,
        shards,
        detections,
        detections_pending,
        output_files_written,
        output_files_pending,
    })
}

/// The queue's depth, or why it could not be read.
async fn queue_status(settings: &Settings, db: &DatabaseConnection) -> QueueStatus {
    let mut status = QueueStatus {
        backend: backend_of(&settings.queue_url).unwrap_or("unknown").to_owned(),
        url: mask_secrets(&settings.queue_url),
        name: settings.queue.name.clone(),
        dead_letter_queue: settings.queue.dlq_name(),
        ready: None,
        in_flight: None,
        dead: None,
        error: None,
    };
    let read = async {
        let queue = open_queue(&settings.queue_url, &settings.queue, db).await?;
        let depth = queue.depth().await?;
        Ok::<_, txp_connectors::queue::QueueError>((queue.backend(), depth))
    };
    match tokio::time::timeout(QUEUE_TIMEOUT, read).await {
        Ok(Ok((backend, depth))) => {
            backend.clone_into(&mut status.backend);
            status.ready = Some(depth.ready);
            status.in_flight = Some(depth.in_flight);
            status.dead = Some(depth.dead);
        }
        Ok(Err(e)) => status.error = Some(mask_secrets(&e.to_string())),
        Err(_) => {
            status.error = Some(format!("no answer within {} s", QUEUE_TIMEOUT.as_secs()));
        }
    }
    status
}

/// Reads the status of one stream (`Some`) or every stream.
async fn read(settings: &Settings, only: Option<&str>) -> Result<Status, Error> {
    let db = connect(settings).await?;
    let known = known_streams(&db).await.map_err(|e| db_error(&e))?;
    let names: Vec<String> = match only {
        Some(name) if known.contains(name) => vec![name.to_owned()],
        Some(name) => {
            return Err(Error::usage(format!("there is no stream `{name}` in this database"))
                .hint(streams_hint(&known)));
        }
        None => known.into_iter().collect(),
    };
    let mut streams = Vec::with_capacity(names.len());
    for name in &names {
        streams.push(stream_status(&db, name).await.map_err(|e| db_error(&e))?);
    }
    let queue = queue_status(settings, &db).await;
    Ok(Status { database: mask_secrets(&settings.database_url), queue, streams })
}

fn position(p: Option<i64>) -> String {
    p.map_or_else(|| "nothing".to_owned(), |p| p.to_string())
}

fn print_human(status: &Status) {
    println!("database    {}", status.database);
    let q = &status.queue;
    match (&q.error, q.ready, q.in_flight, q.dead) {
        (None, Some(ready), Some(in_flight), Some(dead)) => println!(
            "queue       {} on {} ({}): {ready} ready, {in_flight} in flight, {dead} dead letters",
            q.name, q.backend, q.url
        ),
        (error, ..) => println!(
            "queue       {} on {} ({}): cannot be read: {}",
            q.name,
            q.backend,
            q.url,
            error.as_deref().unwrap_or("unknown error")
        ),
    }
    if status.streams.is_empty() {
        println!("streams     none yet: `txp upload` starts one");
    }
    for s in &status.streams {
        println!();
        match (&s.source, &s.destination, s.chunk_rows) {
            (Some(source), Some(destination), Some(rows)) => {
                println!(
                    "stream      {}: {source} → {destination}, {} rows per chunk",
                    s.stream,
                    thousands(unsigned(rows))
                );
            }
            _ => println!("stream      {}: no upload recorded", s.stream),
        }
        let end = match (s.upload_finished, s.last_chunk) {
            (true, Some(-1)) => "finished: the source had no rows".to_owned(),
            (true, Some(last)) => format!("finished: ends at chunk {last}"),
            _ => "not finished".to_owned(),
        };
        println!("  upload    {} chunks stored, {} published; {end}", s.chunks_stored, s.chunks_published);
        println!(
            "  consume   {} chunks committed ({} skipped): {} valid rows, {} rejected",
            s.chunks_committed,
            s.chunks_skipped,
            thousands(s.rows_valid),
            thousands(s.rows_rejected)
        );
        if s.shards.is_empty() {
            println!("  detect    no detector has started");
        }
        for shard in &s.shards {
            let state =
                if shard.done { "done".to_owned() } else { format!("waits for chunk {}", shard.next_chunk) };
            println!(
                "  shard {}/{} folded through {}, persisted through {}; {state}; lag {} chunks",
                shard.shard,
                shard.shards,
                position(shard.folded_through),
                position(shard.persisted_through),
                shard.lag_chunks
            );
        }
        let d = &s.detections;
        println!(
            "  detected  UPGRADE {}, CHILD {}, DEI-NEEDED {}; {} not yet in a written file",
            d.upgrade, d.child, d.dei_needed, s.detections_pending
        );
        println!("  output    {} files written, {} pending", s.output_files_written, s.output_files_pending);
    }
}

/// Runs `txp status`.
pub fn run(args: &StatusArgs, settings: &Settings) -> Result<Outcome, Error> {
    let status = runtime()?.block_on(read(settings, args.stream.as_deref()))?;
    if args.json {
        let text = serde_json::to_string_pretty(&status)
            .map_err(|e| Error::usage(format!("cannot write the status as JSON: {e}")))?;
        println!("{text}");
    } else {
        print_human(&status);
    }
    Ok(Outcome::Success)
}
