//! The stream registry: the `stream` and `upload_ledger` rows that `txp upload` writes are the
//! authority on where a stream's chunks are, where its rejected rows go and which chunks exist.
//! A queue message only names a chunk: whatever else it says is checked against the registry
//! before anything is read or written, because the grant to publish on a queue is wider than the
//! grant to write the input bucket (docs/operations.md, "Trust boundaries").
//!
//! It also finds the stream a command means when none was named: the only one there is.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr, EntityTrait, QueryOrder, QuerySelect};
use txp_core::layout::quarantine_beside;
use txp_core::message::ChunkMessage;
use txp_entity::{stream, upload_ledger};

use crate::shutdown::Shutdown;

/// A stream as its registry row records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredStream {
    pub name: String,
    /// The root of its chunk folders (a store URL): the only place consumers read its chunks.
    pub input: String,
    /// Where consumers write its rejected rows (a store URL).
    pub quarantine: String,
}

impl From<stream::Model> for RegisteredStream {
    fn from(row: stream::Model) -> Self {
        // Rows recorded before streams kept their quarantine: beside the registered input,
        // which is where consumers wrote it then (derived from the registry, not a message).
        let quarantine = row.quarantine.unwrap_or_else(|| quarantine_beside(&row.destination));
        Self { name: row.name, input: row.destination, quarantine }
    }
}

/// The registry row of `name`, if any.
pub async fn registered<C: ConnectionTrait>(db: &C, name: &str) -> Result<Option<RegisteredStream>, DbErr> {
    Ok(stream::Entity::find_by_id(name.to_owned()).one(db).await?.map(RegisteredStream::from))
}

/// Every stream's name, sorted.
pub async fn stream_names<C: ConnectionTrait>(db: &C) -> Result<Vec<String>, DbErr> {
    stream::Entity::find()
        .select_only()
        .column(stream::Column::Name)
        .order_by_asc(stream::Column::Name)
        .into_tuple::<String>()
        .all(db)
        .await
}

/// Why a message is not admitted for processing.
#[derive(Debug)]
pub enum Refusal {
    /// The message names something the registry does not allow: dead-letter it with this reason.
    Untrusted(String),
    /// The registry could not be read: try again later.
    Database(DbErr),
}

impl From<DbErr> for Refusal {
    fn from(e: DbErr) -> Self {
        Self::Database(e)
    }
}

/// The checks that need no database: the message names its own chunk's keys in the layout.
pub fn check_layout(message: &ChunkMessage) -> Result<(), Refusal> {
    match message.layout_error() {
        Some(reason) => Err(Refusal::Untrusted(reason)),
        None => Ok(()),
    }
}

/// The message's `store` is its stream's registered input root.
pub fn check_store(message: &ChunkMessage, stream: &RegisteredStream) -> Result<(), Refusal> {
    if message.store == stream.input {
        return Ok(());
    }
    Err(Refusal::Untrusted(format!(
        "store mismatch: the message names {}, stream `{}` is registered with input {}",
        message.store, stream.name, stream.input
    )))
}

/// The stream's registry row, or a refusal naming the unknown stream.
pub async fn find_registered<C: ConnectionTrait>(db: &C, name: &str) -> Result<RegisteredStream, Refusal> {
    registered(db, name).await?.ok_or_else(|| {
        Refusal::Untrusted(format!(
            "unknown stream `{name}`: no upload recorded it in this database (txp upload records a stream before its first message)"
        ))
    })
}

/// The chunk is one the uploader stored, with the content the message announces: its ledger row
/// exists (the uploader commits it before it publishes) and records the same SHA-256.
pub async fn check_ledger<C: ConnectionTrait>(db: &C, message: &ChunkMessage) -> Result<(), Refusal> {
    let index = i64::try_from(message.chunk).map_err(|_| {
        Refusal::Untrusted(format!("chunk index {} is beyond what the ledger can record", message.chunk))
    })?;
    let row = upload_ledger::Entity::find_by_id((message.stream.clone(), index)).one(db).await?;
    match row {
        None => Err(Refusal::Untrusted(format!(
            "chunk {} of stream `{}` is not in the upload ledger: no upload stored it",
            message.chunk, message.stream
        ))),
        Some(row) if row.sha256 != message.sha256 => Err(Refusal::Untrusted(format!(
            "sha256 mismatch: the message announces {}, the upload ledger recorded {} for chunk {} of stream `{}`",
            message.sha256, row.sha256, message.chunk, message.stream
        ))),
        Some(_) => Ok(()),
    }
}

/// Every check of a message against the registry, in the consumer's order; the stream it
/// belongs to when admitted. What `txp replay` and `txp reconcile` check before they publish.
pub async fn admit<C: ConnectionTrait>(db: &C, message: &ChunkMessage) -> Result<RegisteredStream, Refusal> {
    check_layout(message)?;
    let stream = find_registered(db, &message.stream).await?;
    check_store(message, &stream)?;
    check_ledger(db, message).await?;
    Ok(stream)
}

/// Why no stream could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum ChooseError {
    #[error("this database holds {} streams ({}): name one with --stream", .0.len(), .0.join(", "))]
    Several(Vec<String>),
    #[error("there is no stream in this database yet")]
    NoneYet,
    #[error("database: {0}")]
    Database(#[from] DbErr),
}

/// The stream a command works on. `named` (from `--stream` or the `upload.stream` setting) is
/// taken as it is; a named stream with no upload yet is said once, with the streams that exist,
/// and the command waits for it as it waits for chunks. Otherwise, the only stream in the
/// database; with several, an error naming them; with none yet (a detector started before its
/// uploader), this waits for one, saying so once (with `wait`; else [`ChooseError::NoneYet`]).
/// `None` when shut down while waiting.
pub async fn choose_stream<C: ConnectionTrait>(
    db: &C,
    named: Option<&str>,
    wait: bool,
    shutdown: &mut Shutdown,
) -> Result<Option<String>, ChooseError> {
    let poll = Duration::from_secs(1);
    if let Some(name) = named {
        if registered(db, name).await?.is_none() {
            let names = stream_names(db).await?;
            let existing = if names.is_empty() { "none yet".to_owned() } else { names.join(", ") };
            tracing::warn!(
                stream = name,
                "stream `{name}` has no upload yet; waiting for it (streams in this database: {existing})"
            );
        }
        return Ok(Some(name.to_owned()));
    }
    let mut said = false;
    loop {
        let mut names = stream_names(db).await?;
        match names.len() {
            1 => {
                let name = names.remove(0);
                tracing::info!(stream = %name, "working on the only stream in the database");
                return Ok(Some(name));
            }
            0 if !wait => return Err(ChooseError::NoneYet),
            0 => {}
            _ => return Err(ChooseError::Several(names)),
        }
        if !said {
            tracing::warn!("no stream in this database yet: waiting for `txp upload` to record one");
            said = true;
        }
        shutdown.sleep(poll).await;
        if shutdown.is_raised() {
            return Ok(None);
        }
    }
}
