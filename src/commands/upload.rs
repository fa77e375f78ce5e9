//! `txp upload`, `txp queue setup` and `txp migrate`: the commands of Mechanism X and the
//! database they keep their ledger in. Each builds a tokio runtime of its own; the rest of the
//! binary stays synchronous.

use std::sync::Arc;

use indicatif::ProgressBar;
use sea_orm::DatabaseConnection;
use txp_connectors::database::{self, DatabaseError};
use txp_connectors::queue::{Queue, QueueError, open_queue};
use txp_connectors::retry::{Backoff, retry};
use txp_connectors::source::open_source;
use txp_connectors::store::{ObjectStore, StoreError, open_store};
use txp_uploader::upload::{CrashPoint, UploadError, UploadOptions, UploadProgress, Uploader};

use super::generate::thousands;
use super::observe::{self, Readiness};
use crate::Outcome;
use crate::cli::UploadArgs;
use crate::error::Error;
use crate::interrupt::Interrupt;
use crate::progress::Ui;
use crate::settings::{Settings, mask_secrets};

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::usage(format!("cannot start the async runtime: {e}")))
}

pub(super) fn database_error(e: DatabaseError) -> Error {
    Error::usage(e.to_string()).hint(e.hint)
}

pub(super) fn store_error(e: &StoreError) -> Error {
    let error = Error::usage(e.to_string());
    match e.hint() {
        Some(hint) => error.hint(hint),
        None => error.hint("check that the store is reachable, then run the same command again: it resumes"),
    }
}

pub(super) fn queue_error(e: &QueueError) -> Error {
    let error = Error::usage(mask_secrets(&e.to_string()));
    match e.hint() {
        Some(hint) => error.hint(hint),
        None => error.hint("check that the broker is reachable, then run the same command again: it resumes"),
    }
}

fn upload_error(e: UploadError) -> Error {
    match e {
        UploadError::Interrupted => Error::Interrupted,
        UploadError::Store(e) => store_error(&e),
        UploadError::Queue(e) => queue_error(&e),
        UploadError::Source(e) => {
            Error::usage(e.to_string()).hint("--source takes a transactions file such as BankSim's")
        }
        UploadError::Conflict { .. }
        | UploadError::StreamMismatch { .. }
        | UploadError::QuarantineMismatch { .. } => {
            Error::usage(e.to_string()).hint("`txp upload --stream NAME` starts a new stream")
        }
        other => Error::usage(other.to_string()),
    }
}

pub(super) async fn connect(settings: &Settings) -> Result<DatabaseConnection, Error> {
    database::connect(&settings.database_url).await.map_err(database_error)
}

pub(super) async fn queue(settings: &Settings, db: &DatabaseConnection) -> Result<Arc<dyn Queue>, Error> {
    open_queue(&settings.queue_url, &settings.queue, db).await.map_err(|e| queue_error(&e))
}

/// [`connect`] for a long-running command: waits out a database that is not reachable yet.
pub(super) async fn connect_waiting(settings: &Settings) -> Result<DatabaseConnection, Error> {
    let backoff = settings.startup_backoff();
    retry(backoff, |e: &DatabaseError| e.transient, || database::connect(&settings.database_url))
        .await
        .map_err(database_error)
}

/// The queue, declared, for a long-running command: waits out a broker that is not reachable yet.
pub(super) async fn queue_waiting(
    settings: &Settings,
    db: &DatabaseConnection,
) -> Result<Arc<dyn Queue>, Error> {
    retry(settings.startup_backoff(), QueueError::is_transient, || async {
        let queue = open_queue(&settings.queue_url, &settings.queue, db).await?;
        queue.setup().await?;
        Ok(queue)
    })
    .await
    .map_err(|e| queue_error(&e))
}

/// A progress bar over the source's bytes (or a counter when its size is unknown).
#[derive(Debug)]
struct Bar(ProgressBar);

impl UploadProgress for Bar {
    fn chunk_done(&self, chunk: u64, _rows: u64, source_bytes: u64) {
        self.0.set_position(source_bytes);
        self.0.set_message(format!("chunk {chunk}"));
        tracing::info!(chunk, source_bytes, "chunk done");
    }
}

/// `POINT:N` of a hidden `--crash-at` flag (crash tests).
pub(super) fn crash_at<P: std::str::FromStr<Err = String>>(
    text: Option<&String>,
) -> Result<Option<(P, u64)>, Error> {
    let Some(text) = text else { return Ok(None) };
    let (point, n) = text.split_once(':').unwrap_or((text, "0"));
    let point = point.parse::<P>().map_err(Error::usage)?;
    let n = n.parse::<u64>().map_err(|e| Error::usage(format!("--crash-at: {e}")))?;
    Ok(Some((point, n)))
}

/// The uploader of the settings' stream, cutting and pacing as the settings say; `quarantine`
/// is a store URL (`None`: beside the input).
pub(super) fn uploader(
    settings: &Settings,
    source_description: &str,
    store: Arc<dyn ObjectStore>,
    queue: Arc<dyn Queue>,
    db: DatabaseConnection,
    quarantine: Option<String>,
    crash_at: Option<(CrashPoint, u64)>,
) -> Uploader {
    Uploader {
        options: UploadOptions {
            stream: settings.stream.clone(),
            source_description: source_description.to_owned(),
            chunk_rows: settings.chunk_rows,
            interval: settings.interval,
            quarantine,
            crash_at,
        },
        store,
        queue,
        db,
        backoff: Backoff::default(),
    }
}

/// Runs `txp upload`.
pub fn run(args: &UploadArgs, settings: &Settings, ui: Ui, interrupt: &Interrupt) -> Result<Outcome, Error> {
    runtime()?.block_on(async {
        let db = connect_waiting(settings).await?;
        let store = open_store(&args.to, &settings.s3).await.map_err(|e| store_error(&e))?;
        // Recorded as the store's URL (an absolute file:// for a folder), as the input root is:
        // consumers on other hosts and folders read it from the stream's row.
        let quarantine = match &args.quarantine {
            Some(location) => {
                Some(open_store(location, &settings.s3).await.map_err(|e| store_error(&e))?.url())
            }
            None => None,
        };
        let queue = queue_waiting(settings, &db).await?;
        let readiness =
            Readiness { db: Some(db.clone()), queue: Some(queue.clone()), stores: vec![store.clone()] };
        let _observed = observe::start(settings, "upload", readiness).await?;
        let source = open_source(&args.source, &settings.s3)
            .await
            .map_err(|e| Error::usage(e.to_string()).hint("check the --source path or URL"))?;
        let crash_at = crash_at::<CrashPoint>(args.crash_at.as_ref())?;
        let bar = Bar(ui.bytes_bar(source.size.unwrap_or(0), "uploading"));
        let uploader = uploader(settings, &source.description, store, queue, db, quarantine, crash_at);
        let stop = interrupt.clone();
        let result = uploader.run(source, &bar, &move || stop.check().is_err()).await;
        bar.0.finish_and_clear();
        let report = result.map_err(upload_error)?;
        println!(
            "stream      {} → {} via {} ({})",
            settings.stream,
            uploader.store.url(),
            uploader.queue.backend(),
            mask_secrets(&settings.queue_url)
        );
        println!(
            "chunks      {} published, {} announced again, {} already done; {} rows",
            report.published,
            report.republished,
            report.skipped,
            thousands(report.rows)
        );
        match report.last_chunk {
            Some(last) => println!("end         the stream ends at chunk {last} (recorded)"),
            None => println!("end         the source has no rows: the stream is empty (recorded)"),
        }
        Ok(Outcome::Success)
    })
}

/// Runs `txp queue setup`.
pub fn queue_setup(settings: &Settings) -> Result<Outcome, Error> {
    runtime()?.block_on(async {
        let db = connect(settings).await?;
        let queue = queue(settings, &db).await?;
        queue.setup().await.map_err(|e| queue_error(&e))?;
        let depth = queue.depth().await.map_err(|e| queue_error(&e))?;
        println!(
            "queue       {} and {} ready on {} ({}): {} waiting, {} in flight, {} dead letters",
            settings.queue.name,
            settings.queue.dlq_name(),
            queue.backend(),
            mask_secrets(&settings.queue_url),
            depth.ready,
            depth.in_flight,
            depth.dead
        );
        Ok(Outcome::Success)
    })
}

/// Runs `txp migrate`.
pub fn migrate(settings: &Settings) -> Result<Outcome, Error> {
    runtime()?.block_on(async {
        connect(settings).await?;
        println!("database    {}: migrations applied", mask_secrets(&settings.database_url));
        Ok(Outcome::Success)
    })
}
