//! Queues: one message per stored chunk. Three backends behind one trait: a table in the
//! pipeline's database (`db`, the embedded default), RabbitMQ (`amqp://`) and SQS (`sqs://NAME`
//! or a queue URL). Each has a main queue and its dead-letter queue (`NAME-dlq`), with the same
//! semantics: a delivery is leased for a visibility timeout, counts toward a delivery limit, and
//! is dead-lettered past it; `publish` returns only once the broker has the message durably.

mod amqp;
mod db;
mod sqs;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::DatabaseConnection;

pub use amqp::AmqpQueue;
pub use db::DbQueue;
pub use sqs::{SqsOptions, SqsQueue};

/// The queue settings every backend needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// The main queue (`queue.name`, default `txp-chunks`).
    pub name: String,
    /// How many deliveries before a message is dead-lettered (`queue.delivery_limit`).
    pub delivery_limit: u32,
    /// How long a received message stays invisible to others (`queue.visibility_timeout`).
    pub visibility_timeout: Duration,
}

impl QueueSettings {
    /// The dead-letter queue's name: the main queue's with `-dlq`.
    pub fn dlq_name(&self) -> String {
        format!("{}-dlq", self.name)
    }
}

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Worth retrying with backoff: the broker was unreachable or the connection dropped.
    #[error("{location}: {message} (transient; retrying may help)")]
    Transient { location: String, message: String },
    /// Retrying cannot help: refused credentials, a missing queue that cannot be created,
    /// a message over the size limit, an invalid URL.
    #[error("{location}: {message}")]
    Permanent { location: String, message: String, hint: Option<String> },
}

impl QueueError {
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

/// A received message, leased to its receiver until acked, released or dead-lettered.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub body: Vec<u8>,
    /// 1 on the first delivery.
    pub attempt: u32,
    /// The backend's handle (delivery tag, receipt handle, row id).
    pub handle: String,
}

/// A message leased from the dead-letter queue, with why it is there.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub delivery: Delivery,
    /// The reason recorded when it was dead-lettered (by a consumer, or the broker's delivery
    /// limit).
    pub reason: String,
    /// How many deliveries it had on the main queue.
    pub attempts: u32,
}

/// Depths of the main queue and its dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Depth {
    /// Messages waiting to be received.
    pub ready: u64,
    /// Messages received and not yet acked (where the backend can tell).
    pub in_flight: u64,
    /// Messages in the dead-letter queue.
    pub dead: u64,
}

/// A message queue with a dead-letter queue.
#[async_trait]
pub trait Queue: Send + Sync + fmt::Debug {
    /// Declares the main queue, its dead-letter queue and the policy between them; idempotent.
    async fn setup(&self) -> Result<(), QueueError>;
    /// Publishes one persistent message; returns only when the broker has confirmed it.
    async fn publish(&self, body: &[u8]) -> Result<(), QueueError>;
    /// Receives up to `max` messages (SQS: at most 10), waiting up to `wait` for the first.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError>;
    /// How many receives this process runs at once (a consumer's workers, each holding one
    /// message). A broker that pushes messages (RabbitMQ) is let send that many unacked, so
    /// that no worker waits for another's ack; a queue that is pulled from needs nothing.
    fn set_receivers(&self, _receivers: usize) {}
    /// Removes a delivered message for good (after the commit it stands for).
    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError>;
    /// The ack as a statement to run inside the commit it stands for, when the queue lives in
    /// the same database as the commit (the embedded queue): the commit and the ack are then
    /// one transaction, and [`Queue::ack`] is not called after it. `None` for a broker: its ack
    /// follows the commit.
    fn ack_in_commit(&self, _delivery: &Delivery) -> Option<sea_orm::Statement> {
        None
    }
    /// Gives a delivery back for redelivery; it counts toward the delivery limit.
    async fn release(&self, delivery: &Delivery) -> Result<(), QueueError>;
    /// Moves a delivery to the dead-letter queue at once, with a reason.
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError>;
    /// Keeps a delivery leased for `by` from now, while it is still being worked on. RabbitMQ
    /// has no lease to extend (an unacked delivery stays with its channel; the broker's
    /// `consumer_timeout` bounds how long): there it does nothing.
    async fn extend_lease(&self, delivery: &Delivery, by: Duration) -> Result<(), QueueError>;
    /// Leases up to `max` messages of the dead-letter queue (what is there now; no wait). A
    /// leased dead letter stays invisible to other receivers until acked or released.
    async fn receive_dead(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError>;
    /// Removes a dead letter for good (after its copy is confirmed on the main queue).
    async fn ack_dead(&self, dead: &DeadLetter) -> Result<(), QueueError>;
    /// Gives a dead letter back to the dead-letter queue unchanged.
    async fn release_dead(&self, dead: &DeadLetter) -> Result<(), QueueError>;
    /// Its name, delivery limit and visibility timeout (for SQS, the name its URL gives).
    fn settings(&self) -> &QueueSettings;
    /// Current depths.
    async fn depth(&self) -> Result<Depth, QueueError>;
    /// `db`, `rabbitmq` or `sqs`: a low-cardinality label for logs and metrics.
    fn backend(&self) -> &'static str;
}

/// The backend a queue URL names, as [`Queue::backend`] will say once it is open: `db`,
/// `rabbitmq` (`amqp://`, `amqps://`) or `sqs` (`sqs://NAME` or an `http(s)://` queue URL);
/// `None` for anything else.
pub fn backend_of(url: &str) -> Option<&'static str> {
    if url == "db" {
        Some("db")
    } else if url.starts_with("amqp://") || url.starts_with("amqps://") {
        Some("rabbitmq")
    } else if url.starts_with("sqs://") || url.starts_with("https://") || url.starts_with("http://") {
        Some("sqs")
    } else {
        None
    }
}

/// Opens the queue a URL names: `db` (the pipeline's database), `amqp://…`, `sqs://NAME` or an
/// SQS queue URL (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`, or any `http(s)://` queue URL
/// of an SQS-compatible server).
pub async fn open_queue(
    url: &str,
    settings: &QueueSettings,
    database: &DatabaseConnection,
) -> Result<Arc<dyn Queue>, QueueError> {
    match backend_of(url) {
        Some("db") => return Ok(Arc::new(DbQueue::new(database.clone(), settings.clone()))),
        Some("rabbitmq") => return Ok(Arc::new(AmqpQueue::connect(url, settings.clone()).await?)),
        Some("sqs") => return Ok(Arc::new(SqsQueue::connect(url, settings.clone()).await?)),
        _ => {}
    }
    Err(QueueError::Permanent {
        location: url.to_owned(),
        message: "not a queue URL".to_owned(),
        hint: Some("use db, amqp://USER:PASS@HOST:5672/VHOST, sqs://NAME or an SQS queue URL".to_owned()),
    })
}
