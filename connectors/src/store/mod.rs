//! Object stores: where chunks, quarantine files and output files live. Writes are whole-object
//! and idempotent (writing the same key with the same bytes again changes nothing), which is
//! what lets every retry repeat an effect safely.

mod local;
mod s3;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

pub use local::LocalStore;
pub use s3::{S3Settings, S3Store};

/// Why a store operation failed, sorted by what a caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Worth retrying with backoff: the store was unreachable, throttled, or answered 5xx.
    #[error("{location}: {message} (transient; retrying may help)")]
    Transient { location: String, message: String },
    /// Retrying cannot help: no such bucket, access denied, invalid URL, a local I/O error.
    #[error("{location}: {message}")]
    Permanent { location: String, message: String, hint: Option<String> },
}

impl StoreError {
    /// True when a retry may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    /// What the user can check, when known.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Self::Permanent { hint, .. } => hint.as_deref(),
            Self::Transient { .. } => None,
        }
    }
}

/// A place holding objects by key. Keys are `/`-separated and relative to the store's root.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// Writes an object whole; readers see either nothing or all of it.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError>;
    /// Reads an object; `Ok(None)` when it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Whether an object exists.
    async fn exists(&self, key: &str) -> Result<bool, StoreError>;
    /// Every key under `prefix` (recursively), sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Deletes an object; deleting a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Checks that the store is reachable and usable (the bucket exists, the folder can be
    /// created), with an error that names it and says what to check.
    async fn check(&self) -> Result<(), StoreError>;
    /// The store's root as a URL: `s3://bucket/prefix` or `file:///absolute/folder`.
    fn url(&self) -> String;
}

/// Opens the store a URL names: `s3://bucket/prefix`, `file:///folder`, or a plain path.
pub async fn open_store(url: &str, s3: &S3Settings) -> Result<Arc<dyn ObjectStore>, StoreError> {
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StoreError::Permanent {
                location: url.to_owned(),
                message: "no bucket in the URL".to_owned(),
                hint: Some("write it as s3://BUCKET/PREFIX".to_owned()),
            });
        }
        return Ok(Arc::new(S3Store::new(bucket, prefix.trim_end_matches('/'), s3).await));
    }
    let path = url.strip_prefix("file://").unwrap_or(url);
    Ok(Arc::new(LocalStore::new(path)?))
}
