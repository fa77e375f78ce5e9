//! `txp consume`, `txp detect`, `txp run`, `txp demo`, `txp skip` and `txp replay`: Mechanism Y and the demo
//! that runs the whole pipeline on embedded defaults. Each builds its own tokio runtime; a
//! signal (Ctrl-C, SIGTERM) raises the shutdown that every loop watches, so in-flight work is
//! finished or released before the process exits.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use txp_connectors::queue::Queue;
use txp_connectors::retry::{Backoff, retry};
use txp_connectors::source::open_source;
use txp_connectors::store::{ObjectStore, StoreError, open_store};
use txp_consumer::chunks::skip_chunk;
use txp_consumer::consume::{ChunkConsumer, ConsumeReport, ConsumerCrash, ConsumerOptions};
use txp_consumer::detect::{
    DetectError, Detector, DetectorCrash, DetectorOptions, hold_shard_lock, still_holds_shard_lock,
};
use txp_consumer::handoff::{Handoff, listen_for_commits};
use txp_consumer::reconcile::ReconcileError;
use txp_consumer::replay::{ReplayAction, ReplayError, ReplayOptions};
use txp_consumer::shutdown::{self, Shutdown, ShutdownSignal};
use txp_core::ImportanceTable;
use txp_core::message::Sha256Reader;
use txp_entity::{chunk_record, detector_state};
use txp_uploader::upload::UploadProgress;

use super::observe::{self, Readiness};
use super::upload::{
    connect, connect_waiting, crash_at, queue, queue_error, queue_waiting, runtime, store_error, uploader,
};
use crate::Outcome;
use crate::cli::{
    ConsumeArgs, ConsumeOptions, DemoArgs, DetectArgs, EngineChoice, GenerateArgs, ReconcileArgs, ReplayArgs,
    RunArgs, SkipArgs, VerifyArgs, Weights,
};
use crate::error::Error;
use crate::interrupt::Interrupt;
use crate::progress::Ui;
use crate::settings::{Origin, Settings};

/// Raises the shutdown signal when the process is interrupted.
fn shutdown_on(interrupt: &Interrupt) -> (ShutdownSignal, Shutdown) {
    let (signal, shutdown) = shutdown::channel();
    let (watcher, interrupt) = (signal.clone(), interrupt.clone());
    tokio::spawn(async move {
        while interrupt.check().is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::info!("stopping: finishing the work in flight");
        watcher.raise();
    });
    (signal, shutdown)
}

/// The output store, checked, for a long-running command: waits out a store that is not
/// reachable yet (an S3 outage while a detector starts), as for the database and the broker.
async fn output_waiting(location: &str, settings: &Settings) -> Result<Arc<dyn ObjectStore>, Error> {
    let store = open_store(location, &settings.s3).await.map_err(|e| store_error(&e))?;
    retry(settings.startup_backoff(), StoreError::is_transient, || store.check())
        .await
        .map_err(|e| store_error(&e))?;
    Ok(store)
}

/// Reads the importance file (a path or `s3://`) and its SHA-256 in one streaming pass: at
/// 6,000,000 rows the file is 320 MB, which a detector need not hold (the table keeps one entry
/// per pair).
async fn load_importance(location: &str, settings: &Settings) -> Result<(ImportanceTable, String), Error> {
    let reader: Box<dyn std::io::Read + Send> = if location.starts_with("s3://") {
        let source = open_source(location, &settings.s3)
            .await
            .map_err(|e| Error::usage(e.to_string()).hint("check the --importance URL"))?;
        Box::new(tokio_util::io::SyncIoBridge::new(source.reader))
    } else {
        Box::new(std::fs::File::open(location).map_err(|e| {
            Error::usage(format!("cannot read {location}: {e}"))
                .hint("--importance takes a path or s3://BUCKET/KEY")
        })?)
    };
    let location = location.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut hashing = Sha256Reader::new(reader);
        let table =
            ImportanceTable::read(std::io::BufReader::with_capacity(1 << 18, &mut hashing)).map_err(|e| {
                Error::usage(format!("{location}: {e}"))
                    .hint("--importance takes BankSim's CustomerImportance.csv")
            })?;
        let sha256 = hashing.finish().map_err(|e| Error::usage(format!("cannot read {location}: {e}")))?;
        warn_of_rejected_importance(&location, &table);
        Ok((table, sha256))
    })
    .await
    .map_err(|e| Error::usage(format!("reading the importance file stopped: {e}")))?
}

/// How many rejected importance rows a detector names in its warning.
const SHOWN_IMPORTANCE_REJECTIONS: usize = 5;

/// Rejected importance rows take no part in any weight (docs/patterns.md §1): a detector says so
/// at start, with how many and the first few, instead of leaving pairs unweighted silently.
fn warn_of_rejected_importance(location: &str, table: &ImportanceTable) {
    let rejected = table.rejected();
    if rejected.is_empty() {
        return;
    }
    let first: Vec<String> =
        rejected.iter().take(SHOWN_IMPORTANCE_REJECTIONS).map(|r| r.where_and_why()).collect();
    tracing::warn!(
        importance = %location,
        rejected = rejected.len(),
        valid = table.valid_rows(),
        "{} importance rows rejected; they take no part in any weight (`txp verify` reports them too): {}",
        rejected.len(),
        first.join("; ")
    );
}

fn detect_error(e: DetectError) -> Error {
    let hint = match &e {
        DetectError::ImportanceMismatch { .. } | DetectError::ShardsMismatch { .. } => {
            "a stream keeps its importance file and shard count; start a new stream with --stream"
        }
        _ => {
            "check that the database and the output store are reachable, then start the detector again: it resumes"
        }
    };
    Error::usage(e.to_string()).hint(hint)
}

fn consumer(
    settings: &Settings,
    db: &DatabaseConnection,
    queue: Arc<dyn Queue>,
    options: &ConsumeOptions,
    handoff: Option<Handoff>,
    crash: Option<(ConsumerCrash, u64)>,
) -> Arc<ChunkConsumer> {
    Arc::new(ChunkConsumer::new(
        db.clone(),
        queue,
        ConsumerOptions {
            quarantine: options.quarantine.clone(),
            s3: settings.s3.clone(),
            fetch_backoff: Backoff::default(),
            handoff,
            crash_at: crash,
        },
    ))
}

/// What every detector shard of a process shares.
#[derive(Clone)]
struct Detection {
    settings: Settings,
    db: DatabaseConnection,
    output: Arc<dyn ObjectStore>,
    importance: Arc<(ImportanceTable, String)>,
}

/// The longest pause between two tries of a detector whose output store fails.
const OUTPUT_RETRY_MAX: Duration = Duration::from_secs(30);

/// One shard: stands by for its lock (PostgreSQL), opens the detector and runs it; a transient
/// failure (database gone, fenced by another detector) re-opens it from the committed state.
async fn run_shard(
    detection: &Detection,
    shard: u32,
    shards: u32,
    until_idle: bool,
    handoff: Option<Handoff>,
    crash: Option<(DetectorCrash, u64)>,
    mut shutdown: Shutdown,
) -> Result<(), Error> {
    let Detection { settings, db, output: store, importance } = detection;
    let startup = settings.startup_backoff();
    let stand_by = |shutdown: Shutdown| {
        hold_shard_lock(&settings.database_url, &settings.stream, shard, startup, shutdown)
    };
    let mut lock = stand_by(shutdown.clone()).await.map_err(|e| Error::usage(format!("database: {e}")))?;
    if shutdown.is_raised() {
        return Ok(());
    }
    let options = DetectorOptions {
        stream: settings.stream.clone(),
        shard,
        shards,
        importance_sha256: importance.1.clone(),
        max_wait: settings.output_max_wait,
        stall_warning: settings.output_stall_warning,
        persist_every: settings.persist_every,
        retention_chunks: settings.retention_chunks,
        poll: Duration::from_millis(200),
        committed: match &handoff {
            Some(handoff) => Some(handoff.commits()),
            None if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres => {
                listen_for_commits(&settings.database_url, &settings.stream).await
            }
            None => None,
        },
        handoff,
        crash_at: crash,
    };
    let (mut failures, mut store_failures) = (0u32, 0u32);
    loop {
        let opened = Detector::open(
            db.clone(),
            store.clone(),
            settings.thresholds,
            importance.0.clone(),
            options.clone(),
        )
        .await;
        let result = match opened {
            Ok(mut detector) => detector.run(until_idle, shutdown.clone()).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            txp_telemetry::events::error(e.kind());
        }
        match result {
            Ok(()) => break,
            // Stopping while another detector holds the shard: what is ours is committed, and
            // the other one writes the files.
            Err(DetectError::Fenced { .. }) if shutdown.is_raised() => {
                tracing::warn!(shard, "another detector advanced the shard while this one stopped");
                break;
            }
            // The output store failed mid-run (an outage, a bucket deleted, a permission taken
            // away): the folds are committed and the files decided wait in the database. Wait
            // for the store for as long as it takes, then write them, each once. (At start an
            // output store that does not work is an error: see `output_waiting`.)
            Err(DetectError::Store(e)) if !shutdown.is_raised() => {
                store_failures += 1;
                let delay =
                    Duration::from_millis(500 * (1u64 << store_failures.min(6))).min(OUTPUT_RETRY_MAX);
                tracing::warn!(
                    shard,
                    error = %e,
                    hint = e.hint().unwrap_or("check the output store"),
                    retry_in_s = delay.as_secs_f32(),
                    "the output store failed; the committed detections wait for their files, trying again"
                );
                shutdown.sleep(delay).await;
            }
            Err(e) if e.is_transient() && failures < 20 && !shutdown.is_raised() => {
                failures += 1;
                tracing::warn!(shard, error = %e, "detector failed; starting again from the committed state");
                tokio::time::sleep(Duration::from_millis(500 * u64::from(failures.min(10)))).await;
                // A database restart ends the session holding the shard's lock, and a standby
                // may have taken it: this one then stands by again, instead of the two fencing
                // each other in turn until one gives up.
                if let Some(conn) = &lock {
                    match still_holds_shard_lock(conn, &settings.stream, shard).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(
                                shard,
                                "another detector took the shard's lock (after a database restart): standing by"
                            );
                            drop(lock.take());
                            lock = stand_by(shutdown.clone())
                                .await
                                .map_err(|e| Error::usage(format!("database: {e}")))?;
                            if shutdown.is_raised() {
                                break;
                            }
                            failures = 0;
                        }
                        // The database still unreachable: the next failure checks again.
                        Err(e) => tracing::warn!(shard, error = %e, "could not check the shard's lock"),
                    }
                }
            }
            Err(e) => return Err(detect_error(e)),
        }
    }
    drop(lock);
    Ok(())
}

fn print_report(report: &ConsumeReport) {
    println!(
        "consumed    {} committed, {} duplicates acked, {} dead-lettered, {} released for retry",
        report.committed, report.duplicates, report.dead_lettered, report.released
    );
}

/// Runs `txp consume`.
pub fn consume(args: &ConsumeArgs, settings: &Settings, interrupt: &Interrupt) -> Result<Outcome, Error> {
    let crash = crash_at::<ConsumerCrash>(args.crash_at.as_ref())?;
    runtime()?.block_on(async {
        let db = connect_waiting(settings).await?;
        let queue = queue_waiting(settings, &db).await?;
        let readiness = Readiness { db: Some(db.clone()), queue: Some(queue.clone()), stores: Vec::new() };
        let _observed = observe::start(settings, "consume", readiness).await?;
        let (_signal, shutdown) = shutdown_on(interrupt);
        let consumer = consumer(settings, &db, queue, &args.consume, None, crash);
        let report = consumer
            .run(args.consume.workers, args.until_idle, shutdown)
            .await
            .map_err(|e| queue_error(&e))?;
        print_report(&report);
        Ok(Outcome::Success)
    })
}

/// Runs `txp detect`.
pub fn detect(args: &DetectArgs, settings: &Settings, interrupt: &Interrupt) -> Result<Outcome, Error> {
    if args.shards == 0 || args.shard >= args.shards {
        return Err(Error::usage(format!("--shard {} is not below --shards {}", args.shard, args.shards))
            .hint("shards are numbered from 0: --shard 0 --shards 2 and --shard 1 --shards 2"));
    }
    let crash = crash_at::<DetectorCrash>(args.crash_at.as_ref())?;
    runtime()?.block_on(async {
        let db = connect_waiting(settings).await?;
        let store = output_waiting(&args.detect.output, settings).await?;
        let importance = Arc::new(load_importance(&args.detect.importance, settings).await?);
        let readiness = Readiness { db: Some(db.clone()), queue: None, stores: vec![store.clone()] };
        let _observed = observe::start(settings, "detect", readiness).await?;
        let (_signal, shutdown) = shutdown_on(interrupt);
        let Some(settings) = super::with_stream(settings, &db, true, shutdown.clone()).await? else {
            return Ok(Outcome::Success);
        };
        let detection = Detection { settings: settings.clone(), db: db.clone(), output: store, importance };
        run_shard(&detection, args.shard, args.shards, args.until_idle, None, crash, shutdown).await?;
        print_status(&db, &settings).await;
        Ok(Outcome::Success)
    })
}

/// Consumers and every detector shard in this runtime, until shutdown or (with `until_idle`)
/// until the stream is folded whole and the queue is empty.
async fn pipeline(
    detection: &Detection,
    queue: Arc<dyn Queue>,
    consume: &ConsumeOptions,
    shards: u32,
    until_idle: bool,
    interrupt: &Interrupt,
) -> Result<ConsumeReport, Error> {
    let (settings, db) = (&detection.settings, &detection.db);
    let (signal, shutdown) = shutdown_on(interrupt);
    let (consumers_stop, consumers_shutdown) = shutdown::channel();
    // Consumers hand each commit (and, with one shard, its aggregate) to the detectors here.
    let handoff = Handoff::new((shards == 1).then_some(settings.stream.as_str()));
    let consumer = consumer(settings, db, queue, consume, Some(handoff.clone()), None);
    let workers = {
        let (consumer, mut outer, everything) = (consumer.clone(), shutdown.clone(), signal.clone());
        let workers = consume.workers;
        tokio::spawn(async move {
            let stop = consumers_stop.clone();
            tokio::spawn(async move {
                outer.raised().await;
                stop.raise();
            });
            let report = consumer.run(workers, false, consumers_shutdown).await;
            // Consumers that stopped on an error leave nothing for the detectors to wait for:
            // stop them too, so that the process exits with the error instead of hanging.
            if report.is_err() {
                everything.raise();
            }
            report
        })
    };
    let mut detectors = tokio::task::JoinSet::new();
    for shard in 0..shards {
        let (detection, shutdown, handoff) = (detection.clone(), shutdown.clone(), handoff.clone());
        detectors.spawn(async move {
            run_shard(&detection, shard, shards, until_idle, Some(handoff), None, shutdown).await
        });
    }
    let mut result = Ok(());
    while let Some(joined) = detectors.join_next().await {
        let outcome = joined.unwrap_or_else(|e| Err(Error::usage(format!("a detector stopped: {e}"))));
        if outcome.is_err() && result.is_ok() {
            result = outcome;
            signal.raise();
        }
    }
    // Detectors are done: let consumers drain what is left (redeliveries), then stop them.
    if result.is_ok() && !shutdown.is_raised() {
        for _ in 0..50 {
            if consumer.queue_is_empty().await.unwrap_or(true) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    signal.raise();
    let report = workers
        .await
        .map_err(|e| Error::usage(format!("the consumers stopped: {e}")))?
        .map_err(|e| queue_error(&e))?;
    result.map(|()| report)
}

/// Runs `txp run`.
pub fn run(args: &RunArgs, settings: &Settings, interrupt: &Interrupt) -> Result<Outcome, Error> {
    if args.shards == 0 {
        return Err(Error::usage("--shards must be at least 1"));
    }
    runtime()?.block_on(async {
        let db = connect_waiting(settings).await?;
        let queue = queue_waiting(settings, &db).await?;
        let output = output_waiting(&args.detect.output, settings).await?;
        let importance = Arc::new(load_importance(&args.detect.importance, settings).await?);
        let readiness =
            Readiness { db: Some(db.clone()), queue: Some(queue.clone()), stores: vec![output.clone()] };
        let _observed = observe::start(settings, "run", readiness).await?;
        let (_waiting, shutdown) = shutdown_on(interrupt);
        let Some(settings) = super::with_stream(settings, &db, true, shutdown).await? else {
            return Ok(Outcome::Success);
        };
        let detection = Detection { settings: settings.clone(), db: db.clone(), output, importance };
        let report =
            pipeline(&detection, queue, &args.consume, args.shards, args.until_idle, interrupt).await?;
        print_report(&report);
        print_status(&db, &settings).await;
        Ok(Outcome::Success)
    })
}

/// Prints how far each shard of the stream got.
async fn print_status(db: &DatabaseConnection, settings: &Settings) {
    let committed = chunk_record::Entity::find()
        .filter(chunk_record::Column::Stream.eq(&settings.stream))
        .count(db)
        .await
        .unwrap_or(0);
    let shards = detector_state::Entity::find()
        .filter(detector_state::Column::Stream.eq(&settings.stream))
        .all(db)
        .await
        .unwrap_or_default();
    println!("stream      {}: {committed} chunks committed", settings.stream);
    for s in shards {
        let position = s.folded_through.map_or_else(|| "nothing".to_owned(), |p| format!("chunk {p}"));
        println!("            shard {}/{}: folded through {position}", s.shard, s.shards);
    }
}

/// Runs `txp skip`.
pub fn skip(args: &SkipArgs, settings: &Settings) -> Result<Outcome, Error> {
    runtime()?.block_on(async {
        let db = connect(settings).await?;
        let (_signal, never) = shutdown::channel();
        let Some(settings) = &super::with_stream(settings, &db, false, never).await? else {
            return Ok(Outcome::Success);
        };
        match skip_chunk(&db, &settings.stream, args.chunk, &args.reason)
            .await
            .map_err(|e| Error::usage(format!("database: {e}")))?
        {
            Ok(()) => {
                println!(
                    "skipped     chunk {} of stream {} recorded as lost for good: {}",
                    args.chunk, settings.stream, args.reason
                );
                Ok(Outcome::Success)
            }
            Err(existing) => Err(Error::usage(format!(
                "chunk {} of stream {} is already {}",
                args.chunk,
                settings.stream,
                match existing.skipped_reason {
                    Some(reason) => format!("skipped ({reason})"),
                    None => format!("committed ({} valid rows)", existing.valid_rows),
                }
            ))
            .hint("only a chunk that was never committed can be skipped")),
        }
    })
}

/// Runs `txp replay`: prints one line per dead letter taken, then a summary.
pub fn replay(args: &ReplayArgs, settings: &Settings, interrupt: &Interrupt) -> Result<Outcome, Error> {
    runtime()?.block_on(async {
        let db = connect(settings).await?;
        let queue = queue(settings, &db).await?;
        queue.setup().await.map_err(|e| queue_error(&e))?;
        let (_signal, shutdown) = shutdown_on(interrupt);
        let options = ReplayOptions {
            reason: args.reason.clone(),
            max: args.max,
            rate: args.rate,
            dry_run: args.dry_run,
            max_replays: args.max_replays,
        };
        let report = txp_consumer::replay::replay(&db, &queue, &options, &shutdown).await.map_err(|e| match e {
            ReplayError::Queue(e) => queue_error(&e),
            ReplayError::Database(e) => Error::usage(format!("database: {e}")),
        })?;
        for letter in &report.letters {
            let action = match &letter.action {
                ReplayAction::Replayed => "replayed".to_owned(),
                ReplayAction::WouldReplay => "would replay".to_owned(),
                ReplayAction::Refused { times } => format!("left ({times} replays already)"),
                ReplayAction::Untrusted { .. } => "left (not allowed)".to_owned(),
            };
            let chunk = match (&letter.stream, letter.chunk) {
                (Some(stream), Some(chunk)) => format!("stream {stream} chunk {chunk}"),
                (None, Some(chunk)) => format!("chunk {chunk}"),
                _ => "(body names no chunk)".to_owned(),
            };
            println!("{action:<14}{chunk}, {} attempts: {}", letter.attempts, letter.reason);
            if let ReplayAction::Untrusted { reason } = &letter.action {
                println!("{:<14}its stream's registry does not allow it: {reason}", "");
            }
        }
        let replayed = report.count(|a| matches!(a, ReplayAction::Replayed));
        let would = report.count(|a| matches!(a, ReplayAction::WouldReplay));
        let refused = report.count(|a| matches!(a, ReplayAction::Refused { .. }));
        let untrusted = report.count(|a| matches!(a, ReplayAction::Untrusted { .. }));
        if args.dry_run {
            println!("dry run: {would} would be replayed, {refused} left by the loop guard, {untrusted} not allowed; nothing moved");
        } else {
            println!(
                "{replayed} replayed to {} ({}), {refused} left by the loop guard, {untrusted} not allowed by their stream's registry",
                &queue.settings().name,
                queue.backend()
            );
        }
        if report.not_matching + report.over_max + report.returned > 0 {
            println!(
                "left in the dead-letter queue: {} not matching --reason, {} over --max, {} back again during this run",
                report.not_matching, report.over_max, report.returned
            );
        }
        if refused > 0 {
            tracing::warn!(
                "a message replayed {} times keeps failing: fix its cause, or record its chunk as lost with `txp skip`",
                args.max_replays
            );
        }
        Ok(Outcome::Success)
    })
}

/// Runs `txp reconcile`.
pub fn reconcile(args: &ReconcileArgs, settings: &Settings) -> Result<Outcome, Error> {
    runtime()?.block_on(async {
        let db = connect(settings).await?;
        let (_signal, never) = shutdown::channel();
        let Some(settings) = &super::with_stream(settings, &db, false, never).await? else {
            return Ok(Outcome::Success);
        };
        let queue = queue(settings, &db).await?;
        queue.setup().await.map_err(|e| queue_error(&e))?;
        let stream = &settings.stream;
        let report = txp_consumer::reconcile::reconcile(&db, &queue, stream, args.dry_run, args.force)
            .await
            .map_err(|e| match e {
                ReconcileError::Queue(e) => queue_error(&e),
                ReconcileError::Database(e) => Error::usage(format!("database: {e}")),
                e @ ReconcileError::StillQueued { .. } => Error::usage(e.to_string()).hint(
                    "wait until the consumers have drained the queue, or pass --force (a duplicate is harmless)",
                ),
            })?;
        let verb = if args.dry_run { "would publish" } else { "published" };
        for chunk in &report.republished {
            println!("{verb:<14}chunk {chunk} of stream {stream}: stored, never committed, no message anywhere");
        }
        for chunk in &report.dead_lettered {
            println!("{:<14}chunk {chunk} of stream {stream}: its message is in the dead-letter queue (txp replay)", "left");
        }
        for (chunk, reason) in &report.not_allowed {
            println!("{:<14}chunk {chunk} of stream {stream}: its recorded message is not allowed: {reason}", "left");
        }
        if report.republished.is_empty() && report.dead_lettered.is_empty() && report.not_allowed.is_empty() {
            println!("stream {stream}: every stored chunk is committed or skipped");
        }
        Ok(Outcome::Success)
    })
}

/// Progress of the demo's upload on its bar.
#[derive(Debug)]
struct DemoProgress(indicatif::ProgressBar);

impl UploadProgress for DemoProgress {
    fn chunk_done(&self, chunk: u64, _rows: u64, _source_bytes: u64) {
        self.0.set_message(format!("uploaded chunk {chunk}"));
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Runs `txp demo`.
pub fn demo(args: &DemoArgs, settings: &Settings, ui: Ui, interrupt: &Interrupt) -> Result<Outcome, Error> {
    let dir = absolute(&args.dir);
    let transactions = dir.join("transactions.csv");
    let importance_path = dir.join("CustomerImportance.csv");
    if !transactions.is_file() || !importance_path.is_file() {
        super::generate::run(
            &GenerateArgs { out: dir.clone(), rows: args.rows, seed: 0, weights: Weights::Amount },
            ui,
            interrupt,
        )?;
    }
    let mut settings = settings.clone();
    let database_is_default =
        settings.shown.iter().any(|(key, _, origin)| *key == "database.url" && *origin == Origin::Default);
    if database_is_default {
        settings.database_url = format!("sqlite://{}", dir.join("txp.db").display());
    }
    let store_url = args.store.clone().unwrap_or_else(|| dir.join("input").display().to_string());
    let output_url = args.output.clone().unwrap_or_else(|| dir.join("output").display().to_string());
    let source_bytes = std::fs::read(&transactions)
        .map_err(|e| Error::usage(format!("cannot read {}: {e}", transactions.display())))?;
    let rows = newlines(&source_bytes).saturating_sub(1);
    let chunks = rows.div_ceil(settings.chunk_rows.get());
    drop(source_bytes);
    println!(
        "demo        {} rows in {chunks} chunks, one every {}; database {}, queue {}",
        super::generate::thousands(rows),
        humantime::format_duration(settings.interval),
        crate::settings::mask_secrets(&settings.database_url),
        crate::settings::mask_secrets(&settings.queue_url)
    );
    runtime()?.block_on(async {
        let db = connect(&settings).await?;
        let queue = queue(&settings, &db).await?;
        queue.setup().await.map_err(|e| queue_error(&e))?;
        let store = open_store(&store_url, &settings.s3).await.map_err(|e| store_error(&e))?;
        store.check().await.map_err(|e| store_error(&e))?;
        let output = open_store(&output_url, &settings.s3).await.map_err(|e| store_error(&e))?;
        output.check().await.map_err(|e| store_error(&e))?;
        let importance = Arc::new(load_importance(&importance_path.display().to_string(), &settings).await?);
        let readiness = Readiness {
            db: Some(db.clone()),
            queue: Some(queue.clone()),
            stores: vec![store.clone(), output.clone()],
        };
        let _observed = observe::start(&settings, "demo", readiness).await?;
        let source = open_source(&transactions.display().to_string(), &settings.s3)
            .await
            .map_err(|e| Error::usage(e.to_string()))?;
        let bar = ui.bar(chunks, "folded", "chunks");
        let uploader = uploader(&settings, &source.description, store, queue.clone(), db.clone(), None, None);
        let progress = DemoProgress(bar.clone());
        let stop = interrupt.clone();
        let upload = tokio::spawn(async move {
            let stop = move || stop.check().is_err();
            uploader.run(source, &progress, &stop).await
        });
        let watch = {
            let (db, bar, stream) = (db.clone(), bar.clone(), settings.stream.clone());
            tokio::spawn(async move {
                loop {
                    let folded = detector_state::Entity::find()
                        .filter(detector_state::Column::Stream.eq(&stream))
                        .one(&db)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|s| s.folded_through)
                        .map_or(0, |p| u64::try_from(p + 1).unwrap_or(0));
                    bar.set_position(folded);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        };
        let consume = ConsumeOptions { queue: None, workers: args.workers, quarantine: None };
        let detection = Detection { settings: settings.clone(), db: db.clone(), output, importance };
        let result = pipeline(&detection, queue, &consume, 1, true, interrupt).await;
        watch.abort();
        bar.finish_and_clear();
        let uploaded = upload.await.map_err(|e| Error::usage(format!("the upload stopped: {e}")))?;
        let report = result?;
        let uploaded = uploaded.map_err(|e| Error::usage(e.to_string()))?;
        println!(
            "uploaded    {} chunks published ({} already done before)",
            uploaded.published, uploaded.skipped
        );
        print_report(&report);
        print_status(&db, &settings).await;
        Ok::<(), Error>(())
    })?;
    if output_url.starts_with("s3://") || store_url.starts_with("s3://") {
        println!(
            "verify      run `txp verify --input {store_url} --importance {} --output {output_url}`",
            importance_path.display()
        );
        return Ok(Outcome::Success);
    }
    super::verify::run(
        &VerifyArgs {
            source: None,
            chunk_rows: None,
            input: Some(PathBuf::from(&store_url)),
            importance: importance_path,
            emit: None,
            output: Some(PathBuf::from(&output_url)),
            engine: EngineChoice::Both,
            skip: Vec::new(),
        },
        &settings,
        ui,
        interrupt,
    )
}

/// Newlines in a buffer.
fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}
