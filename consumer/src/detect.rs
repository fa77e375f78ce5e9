//! `txp detect`: one detector per (stream, shard). It folds the committed chunk aggregates of its
//! merchants into the incremental engine strictly in chunk-index order, commits each chunk's new
//! detections together with the new fold position, and writes output files exactly once.
//!
//! - The committed aggregates are the changelog; the engine's state is their fold, in memory.
//!   At start it is rebuilt by folding the committed aggregates up to the recorded position
//!   (their detections are already committed and are not emitted again).
//! - The fold position is a fence: a fold commits only if the position is still the one it
//!   started from, so a second detector of the same shard (a standby that took over, an
//!   operator's mistake) can never commit a chunk twice. On PostgreSQL an advisory lock keeps
//!   one active detector per shard and lets others wait as hot standbys.
//! - Files: see [`crate::output_files`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, Set, Statement, TransactionTrait,
};
use txp_connectors::store::{ObjectStore, StoreError};
use txp_core::aggregate::ChunkAggregate;
use txp_core::layout::{PART_FILE, SUCCESS};
use txp_core::shard::{fnv1a64, shard_of};
use txp_core::{Detection, Engine, ImportanceTable, Thresholds};
use txp_entity::{chunk_record, detection, detector_state, stream, upload_ledger};
use txp_telemetry::events::{self, ErrorKind, ShardPosition, Stage};

use crate::chunks::{high_water, load_chunk_shard, now_ms};
use crate::consume::micros;
use crate::output_files::{self, FILE_ROWS};
use crate::shutdown::Shutdown;
use crate::statistics;

/// How often a running detector publishes its position, lag and the age of what it has not
/// folded (each costs three small queries).
const POSITION_EVERY: Duration = Duration::from_secs(1);

/// Where a crash test stops a detector (`txp detect --crash-at POINT:N`, hidden).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectorCrash {
    /// Chunk N's detections and position are committed; no file written yet.
    AfterStateCommit,
    /// File N's part is written, its `_SUCCESS` is not.
    MidFile,
}

impl std::str::FromStr for DetectorCrash {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "after-state-commit" => Ok(Self::AfterStateCommit),
            "mid-file" => Ok(Self::MidFile),
            _ => Err(format!("unknown crash point `{text}`: after-state-commit or mid-file")),
        }
    }
}

/// What one detector does.
#[derive(Debug, Clone)]
pub struct DetectorOptions {
    pub stream: String,
    pub shard: u32,
    pub shards: u32,
    /// SHA-256 of the importance file, recorded with the stream's shards.
    pub importance_sha256: String,
    /// A partial file is written once its oldest detection has waited this long.
    pub max_wait: Duration,
    /// How often a detector waiting for a chunk looks again.
    pub poll: Duration,
    /// After waiting this long for a chunk the uploader stored, warn and say what can help.
    pub stall_warning: Duration,
    /// Persist the running statistics at least every this many chunks (and when idle).
    pub persist_every: u64,
    /// Prune chunk aggregates this many chunks behind every shard's persisted statistics; 0
    /// keeps them all.
    pub retention_chunks: u64,
    /// Changes at each commit of the stream (the consumers of the same process, or PostgreSQL's
    /// `LISTEN` for a detector of its own), so that a waiting detector folds a new chunk at
    /// once instead of at its next poll; `None` (SQLite, or no listener) polls.
    pub committed: Option<tokio::sync::watch::Receiver<u64>>,
    /// The consumers of the same process, whose committed aggregates are taken from here
    /// before the database is asked.
    pub handoff: Option<crate::handoff::Handoff>,
    /// For crash tests only.
    pub crash_at: Option<(DetectorCrash, u64)>,
}

/// Why a detector stopped.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error(
        "stream `{stream}` is detected with another importance file (SHA-256 {recorded}; this one has {given}): use the same file, or a new stream"
    )]
    ImportanceMismatch { stream: String, recorded: String, given: String },
    #[error(
        "stream `{stream}` is detected with {recorded} shards, not {given}: every detector of a stream needs the same --shards"
    )]
    ShardsMismatch { stream: String, recorded: i32, given: u32 },
    #[error("another detector advanced shard {shard} of stream `{stream}`: this one stops folding")]
    Fenced { stream: String, shard: u32 },
    #[error("{0}")]
    Engine(#[from] txp_core::engine::EngineError),
}

impl DetectError {
    /// Whether waiting and starting again may help.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(_) | Self::Fenced { .. } => true,
            Self::Store(e) => e.is_transient(),
            _ => false,
        }
    }

    /// Its kind for `txp_errors_total`: the database, the output store, or the input (a
    /// stream's settings, its data).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Database(_) | Self::Fenced { .. } => ErrorKind::Database,
            Self::Store(_) => ErrorKind::Output,
            Self::ImportanceMismatch { .. } | Self::ShardsMismatch { .. } | Self::Engine(_) => {
                ErrorKind::Input
            }
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Chunk folded, with how many new detections.
    Folded { chunk: u64, detections: usize },
    /// The next chunk is not committed yet.
    Waiting { chunk: u64 },
}

/// One shard's detector.
#[derive(Debug)]
pub struct Detector {
    db: DatabaseConnection,
    store: Arc<dyn ObjectStore>,
    options: DetectorOptions,
    engine: Engine,
    /// The last chunk folded.
    position: Option<u64>,
    /// The last chunk whose statistics are persisted.
    persisted: Option<u64>,
    /// `YStartTime(IST)` of every file of this shard.
    started_at_ms: i64,
    files_written: u64,
    /// The prune started by the last persist, running beside the fold.
    pruning: Option<tokio::task::JoinHandle<Result<u64, DbErr>>>,
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn shard_i32(shard: u32) -> i32 {
    i32::try_from(shard).unwrap_or(i32::MAX)
}

impl Detector {
    /// Opens a shard's detector: records (or checks) its importance file and shard count, then
    /// rebuilds the engine from the committed aggregates up to the recorded position.
    pub async fn open(
        db: DatabaseConnection,
        store: Arc<dyn ObjectStore>,
        thresholds: Thresholds,
        importance: ImportanceTable,
        options: DetectorOptions,
    ) -> Result<Self, DetectError> {
        let now = now_ms();
        let state = detector_state::ActiveModel {
            stream: Set(options.stream.clone()),
            shard: Set(shard_i32(options.shard)),
            shards: Set(shard_i32(options.shards)),
            folded_through: Set(None),
            persisted_through: Set(None),
            importance_sha256: Set(options.importance_sha256.clone()),
            started_at_ms: Set(now),
            updated_at_ms: Set(now),
        };
        let inserted = detector_state::Entity::insert(state)
            .on_conflict(
                OnConflict::columns([detector_state::Column::Stream, detector_state::Column::Shard])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&db)
            .await;
        match inserted {
            Ok(_) | Err(DbErr::RecordNotInserted) => {}
            Err(e) => return Err(e.into()),
        }
        let states = detector_state::Entity::find()
            .filter(detector_state::Column::Stream.eq(&options.stream))
            .all(&db)
            .await?;
        for s in &states {
            if s.importance_sha256 != options.importance_sha256 {
                return Err(DetectError::ImportanceMismatch {
                    stream: options.stream.clone(),
                    recorded: s.importance_sha256.clone(),
                    given: options.importance_sha256.clone(),
                });
            }
            if s.shards != shard_i32(options.shards) {
                return Err(DetectError::ShardsMismatch {
                    stream: options.stream.clone(),
                    recorded: s.shards,
                    given: options.shards,
                });
            }
        }
        let mine = states.into_iter().find(|s| s.shard == shard_i32(options.shard)).ok_or_else(|| {
            DbErr::RecordNotFound(format!("detector_state {} {}", options.stream, options.shard))
        })?;
        let position = mine.folded_through.and_then(|p| u64::try_from(p).ok());
        let persisted =
            mine.persisted_through.and_then(|p| u64::try_from(p).ok()).filter(|p| Some(*p) <= position);
        let shard = shard_i32(options.shard);
        // Resume from the persisted statistics, then fold what came after them.
        let (engine, first) = match persisted {
            Some(p) => {
                let pairs = statistics::load_pairs(&db, &options.stream, shard).await?;
                let emitted = statistics::emitted_through(&db, &options.stream, shard, p).await?;
                let engine = Engine::restore(thresholds, importance, pairs, &emitted, p)
                    .map_err(|e| DbErr::Custom(format!("stream {} shard {}: {e}", options.stream, shard)))?;
                (engine, p + 1)
            }
            None => (Engine::new(thresholds, importance), 0),
        };
        let mut detector = Self {
            db,
            store,
            engine,
            position: None,
            persisted,
            started_at_ms: mine.started_at_ms,
            options,
            files_written: 0,
            pruning: None,
        };
        if let Some(last) = position {
            for chunk in first..=last {
                let aggregate = detector.load(chunk).await?.unwrap_or_else(|| empty(chunk));
                detector.engine.apply(&aggregate)?;
            }
            detector.position = Some(last);
            tracing::info!(stream = %detector.options.stream, shard = detector.options.shard, persisted_through = ?persisted, folded_through = last, "detector state rebuilt");
        }
        // Files decided before a crash and not yet written: written now, same key, same bytes.
        // After this every file is written right after the transaction that decides it.
        detector.write_files().await?;
        Ok(detector)
    }

    /// The last chunk folded.
    pub fn position(&self) -> Option<u64> {
        self.position
    }

    /// The next chunk to fold.
    pub fn next_chunk(&self) -> u64 {
        self.position.map_or(0, |p| p + 1)
    }

    /// Files written by this process.
    pub fn files_written(&self) -> u64 {
        self.files_written
    }

    /// A chunk's aggregate restricted to this shard's merchants; `None` when not committed.
    async fn load(&self, chunk: u64) -> Result<Option<ChunkAggregate>, DbErr> {
        let handed = self.options.handoff.as_ref().and_then(|h| h.take(&self.options.stream, chunk));
        let (shard, shards) = (self.options.shard, self.options.shards);
        match handed {
            Some(mut aggregate) => {
                if shards > 1 {
                    aggregate.pairs.retain(|p| shard_of(&p.merchant, shards) == shard);
                }
                Ok(Some(aggregate))
            }
            // Only this shard's merchants are decoded.
            None => load_chunk_shard(&self.db, &self.options.stream, chunk, shard, shards).await,
        }
    }

    /// Folds the next chunk if it is committed, then writes the files its fold decided.
    pub async fn step(&mut self) -> Result<Step, DetectError> {
        let chunk = self.next_chunk();
        let started = Instant::now();
        let Some(aggregate) = self.load(chunk).await? else {
            if self.partial_due().await? {
                self.flush().await?;
            }
            return Ok(Step::Waiting { chunk });
        };
        let loading = started.elapsed();
        let started = Instant::now();
        let found = self.engine.apply(&aggregate)?;
        let count = found.len();
        // The figures as they stand after this chunk: what made each detection.
        let found: Vec<(Detection, Option<String>)> = found
            .into_iter()
            .map(|d| {
                let figures = self.engine.figures(&d).and_then(|f| serde_json::to_string(&f).ok());
                (d, figures)
            })
            .collect();
        let mut by_pattern: Vec<(&'static str, u64)> = Vec::new();
        for (d, _) in &found {
            match by_pattern.iter_mut().find(|(p, _)| *p == d.pattern.id()) {
                Some((_, n)) => *n += 1,
                None => by_pattern.push((d.pattern.id(), 1)),
            }
        }
        let evaluating = started.elapsed();
        let started = Instant::now();
        self.commit_fold(chunk, found).await?;
        let recording = started.elapsed();
        let committed_at_ms = now_ms();
        self.position = Some(chunk);
        for (pattern, n) in by_pattern {
            events::detections_committed(pattern, n);
        }
        self.observe_end_to_end(chunk).await?;
        if self.options.crash_at == Some((DetectorCrash::AfterStateCommit, chunk)) {
            std::process::abort();
        }
        let started = Instant::now();
        self.write_files().await?;
        let writing = started.elapsed();
        let started = Instant::now();
        self.persist(false).await?;
        let persisting = started.elapsed();
        for (stage, took) in [
            (Stage::Load, loading),
            (Stage::Evaluate, evaluating),
            (Stage::Record, recording),
            (Stage::Output, writing),
            (Stage::Persist, persisting),
        ] {
            events::stage_finished(stage, took);
        }
        // Per-chunk stage times (µs) and the commit's wall-clock time, for `txp-bench` and
        // anyone reading JSON logs.
        tracing::debug!(
            stream = %self.options.stream, shard = self.options.shard, chunk, detections = count, committed_at_ms,
            load_us = micros(loading), evaluate_us = micros(evaluating), record_us = micros(recording),
            output_us = micros(writing), persist_us = micros(persisting),
            "chunk folded"
        );
        Ok(Step::Folded { chunk, detections: count })
    }

    /// One transaction: the position moves from the one this detector holds to `chunk` (or
    /// nothing is committed), the chunk's detections are inserted, and full files are decided.
    async fn commit_fold(
        &self,
        chunk: u64,
        found: Vec<(Detection, Option<String>)>,
    ) -> Result<(), DetectError> {
        let (stream, shard) = (&self.options.stream, shard_i32(self.options.shard));
        let now = now_ms();
        let txn = self.db.begin().await?;
        let mut fence = detector_state::Entity::update_many()
            .col_expr(detector_state::Column::FoldedThrough, Expr::value(as_i64(chunk)))
            .col_expr(detector_state::Column::UpdatedAtMs, Expr::value(now))
            .filter(detector_state::Column::Stream.eq(stream))
            .filter(detector_state::Column::Shard.eq(shard));
        fence = match self.position {
            Some(p) => fence.filter(detector_state::Column::FoldedThrough.eq(as_i64(p))),
            None => fence.filter(detector_state::Column::FoldedThrough.is_null()),
        };
        if fence.exec(&txn).await?.rows_affected != 1 {
            txn.rollback().await?;
            return Err(DetectError::Fenced { stream: stream.clone(), shard: self.options.shard });
        }
        for batch in found.chunks(2_000) {
            let rows = batch.iter().map(|(d, figures)| detection::ActiveModel {
                stream: Set(stream.clone()),
                pattern: Set(d.pattern.id().to_owned()),
                customer: Set(d.customer.clone()),
                merchant: Set(d.merchant.clone()),
                shard: Set(shard),
                chunk_index: Set(as_i64(d.chunk)),
                detected_at_ms: Set(now),
                file_id: Set(None),
                file_row: Set(None),
                figures: Set(figures.clone()),
            });
            detection::Entity::insert_many(rows).exec_without_returning(&txn).await?;
        }
        while output_files::pending(&txn, stream, shard).await? >= FILE_ROWS {
            output_files::allocate_file(&txn, stream, shard, now).await.map_err(|e| self.raced(e))?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Persists the running statistics when `persist_every` chunks have been folded since the
    /// last time, or when `idle` and anything was folded since; then prunes what every shard
    /// has persisted past.
    async fn persist(&mut self, idle: bool) -> Result<(), DetectError> {
        let Some(position) = self.position else { return Ok(()) };
        let behind = match self.persisted {
            Some(p) if p >= position => return Ok(()),
            Some(p) => position - p,
            None => position + 1,
        };
        if !idle && behind < self.options.persist_every {
            return Ok(());
        }
        let changes = self.engine.take_changes();
        let (stream, shard) = (&self.options.stream, shard_i32(self.options.shard));
        if !statistics::persist(&self.db, stream, shard, position, &changes).await? {
            return Err(DetectError::Fenced { stream: stream.clone(), shard: self.options.shard });
        }
        self.persisted = Some(position);
        tracing::debug!(%stream, shard, persisted_through = position, pairs = changes.pairs.len(), "statistics persisted");
        // Pruning deletes the aggregates every shard has persisted past: housekeeping, run beside
        // the fold instead of in its way (a prune of 50 chunks' rows took longer than folding
        // them). One at a time; the next persist's prune takes what this one left.
        if self.pruning.as_ref().is_none_or(tokio::task::JoinHandle::is_finished) {
            self.finish_pruning().await;
            let (db, stream) = (self.db.clone(), self.options.stream.clone());
            let (shards, retention) = (self.options.shards, self.options.retention_chunks);
            self.pruning =
                Some(tokio::spawn(async move { statistics::prune(&db, &stream, shards, retention).await }));
        }
        Ok(())
    }

    /// Waits for the prune in flight, if any. A failure is only reported: nothing depends on
    /// it, and the next persist prunes again.
    async fn finish_pruning(&mut self) {
        let Some(pruning) = self.pruning.take() else { return };
        match pruning.await {
            Ok(Ok(pruned)) => tracing::debug!(stream = %self.options.stream, pruned, "aggregates pruned"),
            Ok(Err(e)) => {
                events::error(ErrorKind::Database);
                tracing::warn!(stream = %self.options.stream, error = %e, "pruning failed; the next persist tries again");
            }
            Err(e) => tracing::warn!(stream = %self.options.stream, error = %e, "pruning stopped"),
        }
    }

    /// Whether a partial file is due: something pending for `max_wait` already.
    async fn partial_due(&self) -> Result<bool, DbErr> {
        let oldest =
            output_files::oldest_pending_ms(&self.db, &self.options.stream, shard_i32(self.options.shard))
                .await?;
        let wait = i64::try_from(self.options.max_wait.as_millis()).unwrap_or(i64::MAX);
        Ok(oldest.is_some_and(|t| now_ms().saturating_sub(t) >= wait))
    }

    /// Decides a file for every pending detection (a partial one included), then writes it.
    pub async fn flush(&mut self) -> Result<(), DetectError> {
        let (stream, shard) = (self.options.stream.clone(), shard_i32(self.options.shard));
        let txn = self.db.begin().await?;
        while output_files::allocate_file(&txn, &stream, shard, now_ms())
            .await
            .map_err(|e| self.raced(e))?
            .is_some()
        {}
        txn.commit().await?;
        self.write_files().await
    }

    /// A file allocation that lost a race with another detector of this shard is a fence.
    fn raced(&self, e: DbErr) -> DetectError {
        match e {
            DbErr::RecordNotUpdated => {
                DetectError::Fenced { stream: self.options.stream.clone(), shard: self.options.shard }
            }
            e => DetectError::Database(e),
        }
    }

    /// Writes every decided, unwritten file: part, then `_SUCCESS`, then the mark.
    async fn write_files(&mut self) -> Result<(), DetectError> {
        let files =
            output_files::unwritten(&self.db, &self.options.stream, shard_i32(self.options.shard)).await?;
        for file in files {
            let rows = output_files::file_rows(&self.db, file.id).await?;
            let bytes = output_files::file_bytes(self.started_at_ms, &rows);
            self.store.put(&format!("{}/{PART_FILE}", file.name), bytes).await?;
            if self.options.crash_at == Some((DetectorCrash::MidFile, u64::try_from(file.id).unwrap_or(0))) {
                std::process::abort();
            }
            self.store.put(&format!("{}/{SUCCESS}", file.name), Vec::new()).await?;
            output_files::mark_written(&self.db, file.id, now_ms()).await?;
            self.files_written += 1;
            events::output_file_written();
            tracing::info!(file = %file.name, rows = rows.len(), "output file written");
        }
        Ok(())
    }

    /// Whether the stream's end is recorded and every chunk up to it is folded.
    pub async fn folded_whole(&self) -> Result<bool, DbErr> {
        let last = stream::Entity::find_by_id(self.options.stream.clone())
            .one(&self.db)
            .await?
            .and_then(|s| s.last_chunk)
            .and_then(|l| u64::try_from(l).ok());
        Ok(matches!((last, self.position), (Some(last), Some(position)) if position >= last))
    }

    /// Whether every announced chunk is folded and every detection is in a written file.
    pub async fn is_done(&self) -> Result<bool, DbErr> {
        if !self.folded_whole().await? {
            return Ok(false);
        }
        let shard = shard_i32(self.options.shard);
        Ok(output_files::pending(&self.db, &self.options.stream, shard).await? == 0
            && output_files::unwritten(&self.db, &self.options.stream, shard).await?.is_empty())
    }

    /// Folds until shutdown, or with `until_idle` until done. At shutdown pending detections
    /// go into a last, partial file.
    pub async fn run(&mut self, until_idle: bool, mut shutdown: Shutdown) -> Result<(), DetectError> {
        // The chunk waited for, since when, and whether the stall was reported.
        let mut waiting_for: Option<(u64, tokio::time::Instant, bool)> = None;
        let mut observed_at: Option<tokio::time::Instant> = None;
        while !shutdown.is_raised() {
            if observed_at.is_none_or(|at| at.elapsed() >= POSITION_EVERY) {
                self.observe_position().await?;
                observed_at = Some(tokio::time::Instant::now());
            }
            // Commits from here on wake the wait below.
            if let Some(committed) = &mut self.options.committed {
                committed.borrow_and_update();
            }
            match self.step().await? {
                Step::Folded { .. } => waiting_for = None,
                Step::Waiting { chunk } => {
                    let folded_whole = until_idle && self.folded_whole().await?;
                    // Idle: the statistics are saved once the detector has waited a whole
                    // poll for the same chunk (or the stream is whole), not at every brief
                    // wait for a consumer during a catch-up, where saving each time cost
                    // more than folding.
                    if folded_whole || matches!(waiting_for, Some((waited, ..)) if waited == chunk) {
                        self.persist(true).await?;
                    }
                    if folded_whole {
                        // Nothing more will come: the last detections go out now, in a
                        // partial file if need be.
                        self.flush().await?;
                        if self.is_done().await? {
                            self.finish_pruning().await;
                            return Ok(());
                        }
                    }
                    match &mut waiting_for {
                        Some((waited, since, reported)) if *waited == chunk => {
                            if !*reported && since.elapsed() >= self.options.stall_warning {
                                *reported = self.report_stall(chunk, since.elapsed()).await?;
                            }
                        }
                        _ => {
                            tracing::info!(stream = %self.options.stream, shard = self.options.shard, chunk, "waiting for chunk");
                            waiting_for = Some((chunk, tokio::time::Instant::now(), false));
                        }
                    }
                    let poll = self.options.poll;
                    match &mut self.options.committed {
                        Some(committed) => {
                            // A closed channel (the consumers gone, or the listener
                            // stopped): poll as a detector without wake-ups does.
                            let closed = tokio::select! {
                                () = shutdown.sleep(poll) => false,
                                changed = committed.changed() => changed.is_err(),
                            };
                            if closed {
                                shutdown.sleep(poll).await;
                            }
                        }
                        None => shutdown.sleep(poll).await,
                    }
                }
            }
        }
        self.flush().await?;
        self.observe_position().await?;
        // Shutdown: the statistics are left current.
        self.persist(true).await?;
        self.finish_pruning().await;
        Ok(())
    }
}

impl Detector {
    /// Records how long after its upload a chunk's detections were committed (chunks published
    /// without the uploader's ledger have no upload time and are not counted).
    async fn observe_end_to_end(&self, chunk: u64) -> Result<(), DbErr> {
        let stored = upload_ledger::Entity::find_by_id((self.options.stream.clone(), as_i64(chunk)))
            .one(&self.db)
            .await?;
        if let Some(ledger) = stored {
            let millis = u64::try_from(now_ms().saturating_sub(ledger.stored_at_ms)).unwrap_or(0);
            events::chunk_detected(Duration::from_millis(millis));
        }
        Ok(())
    }

    /// Publishes where this shard stands: its fold position, the chunks stored or committed
    /// beyond it, and the age of the oldest of those.
    pub async fn observe_position(&self) -> Result<(), DbErr> {
        let stream = &self.options.stream;
        let next = self.next_chunk();
        let newest = high_water(&self.db, stream).await?.and_then(|n| u64::try_from(n).ok());
        let lag = newest.map_or(0, |n| (n + 1).saturating_sub(next));
        let mut oldest_unfolded = Duration::ZERO;
        if lag > 0 {
            let since = match upload_ledger::Entity::find_by_id((stream.clone(), as_i64(next)))
                .one(&self.db)
                .await?
            {
                Some(ledger) => Some(ledger.stored_at_ms),
                None => chunk_record::Entity::find_by_id((stream.clone(), as_i64(next)))
                    .one(&self.db)
                    .await?
                    .map(|r| r.committed_at_ms),
            };
            if let Some(since) = since {
                oldest_unfolded =
                    Duration::from_millis(u64::try_from(now_ms().saturating_sub(since)).unwrap_or(0));
            }
        }
        events::shard_position(
            stream,
            self.options.shard,
            ShardPosition { folded_through: self.position, lag, oldest_unfolded },
        );
        Ok(())
    }

    /// Warns when the chunk waited for is stored (in the upload ledger) but not committed: its
    /// message is dead-lettered or lost, and the warning says which command helps. True once
    /// reported; false while the chunk is not even stored (the uploader is behind).
    async fn report_stall(&self, chunk: u64, waited: Duration) -> Result<bool, DbErr> {
        let stream = &self.options.stream;
        let stored =
            upload_ledger::Entity::find_by_id((stream.clone(), i64::try_from(chunk).unwrap_or(i64::MAX)))
                .one(&self.db)
                .await?;
        if stored.is_none() {
            return Ok(false);
        }
        tracing::warn!(
            %stream,
            shard = self.options.shard,
            chunk,
            waited_s = waited.as_secs(),
            "chunk {chunk} is stored but not committed: if its message is in the dead-letter queue, fix the cause and run \
             `txp replay`; if it was lost, `txp reconcile --stream {stream}` publishes it again; if it is gone for good, \
             `txp skip --stream {stream} --chunk {chunk} --reason …`"
        );
        Ok(true)
    }
}

fn empty(chunk: u64) -> ChunkAggregate {
    ChunkAggregate { index: chunk, ..ChunkAggregate::default() }
}

/// The advisory lock key of a (stream, shard): a hash of both, as PostgreSQL's bigint.
pub fn shard_lock_key(stream: &str, shard: u32) -> i64 {
    let hash = fnv1a64(format!("txp-detector/{stream}/{shard}").as_bytes());
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// `pg_try_advisory_lock` on the lock's connection: true when this session holds it now.
async fn try_shard_lock(conn: &DatabaseConnection, key: i64) -> Result<bool, DbErr> {
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_try_advisory_lock($1) AS locked",
            [key.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get::<bool>("", "locked")).transpose()?.unwrap_or(false))
}

/// Whether the lock's connection (from [`hold_shard_lock`]) still holds the shard. A database
/// restart ends the session that held it, and the pool opens a new one: then this takes the lock
/// again if it is free, and answers false if a standby took it meanwhile. (Taking a lock the
/// session already holds only counts it twice; it ends with the session all the same.)
pub async fn still_holds_shard_lock(
    conn: &DatabaseConnection,
    stream: &str,
    shard: u32,
) -> Result<bool, DbErr> {
    try_shard_lock(conn, shard_lock_key(stream, shard)).await
}

/// On PostgreSQL, waits until this process holds the shard's advisory lock (a hot standby until
/// then) and returns the one-connection pool that holds it: the lock lasts as long as that
/// connection. On SQLite returns `None` at once (one process runs the detector). `startup` is
/// how long to wait for the database to answer the first time.
pub async fn hold_shard_lock(
    database_url: &str,
    stream: &str,
    shard: u32,
    startup: txp_connectors::retry::Backoff,
    mut shutdown: Shutdown,
) -> Result<Option<DatabaseConnection>, DbErr> {
    if !database_url.starts_with("postgres") {
        return Ok(None);
    }
    let mut options = ConnectOptions::new(database_url.to_owned());
    options.max_connections(1).min_connections(1).sqlx_logging(false);
    let connect = || Database::connect(options.clone());
    let conn = txp_connectors::retry::retry(startup, txp_connectors::database::is_transient, connect).await?;
    let key = shard_lock_key(stream, shard);
    let mut announced = false;
    loop {
        let locked = match try_shard_lock(&conn, key).await {
            Ok(locked) => locked,
            // The server restarting or unreachable: a standby waits it out (the pool opens a new
            // connection for the next try), as it waits for the active detector.
            Err(e) if txp_connectors::database::is_transient(&e) => {
                tracing::warn!(%stream, shard, error = %e, "database unreachable while standing by; trying again");
                false
            }
            Err(e) => return Err(e),
        };
        if locked {
            if announced {
                tracing::info!(%stream, shard, "standby took over the shard");
            }
            return Ok(Some(conn));
        }
        if !announced {
            tracing::info!(%stream, shard, "another detector holds the shard: standing by");
            announced = true;
        }
        shutdown.sleep(Duration::from_millis(500)).await;
        if shutdown.is_raised() {
            return Ok(None);
        }
    }
}
