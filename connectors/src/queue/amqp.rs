//! RabbitMQ through lapin. The main queue is a durable quorum queue whose delivery limit
//! dead-letters, at least once, through the default exchange into a quorum dead-letter queue.
//! Publishes wait for the broker's confirm. lapin does not reconnect by itself, so the
//! connection and its two channels (one publishing, in confirm mode; one consuming) sit behind a
//! mutex and are reopened, with backoff, by the first operation that finds them closed. A
//! delivery handle names the consuming channel's generation, because a delivery tag means
//! nothing on any other channel: acking a delivery of a closed channel fails cleanly instead of
//! acking some other message.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
    BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer, ErrorKind};
use tokio::sync::Mutex;

use super::{DeadLetter, Delivery, Depth, Queue, QueueError, QueueSettings};

/// How long a connection attempt may take before it counts as failed (an unroutable host would
/// otherwise hang for the operating system's TCP timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a publish waits for the broker's confirm; a broker under a resource alarm blocks
/// publishers without answering.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// The first pause between reconnection attempts; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long an operation keeps reconnecting before it gives up with a transient error.
const RECONNECT_BUDGET: Duration = Duration::from_secs(20);
/// After the first delivery, how long a receive waits for each further one: prefetched
/// messages arrive in a burst, so a short pause fills a batch without delaying it noticeably.
const LINGER: Duration = Duration::from_millis(20);
/// AMQP delivery mode of a message written to disk.
const PERSISTENT: u8 = 2;
/// Every body is a JSON document.
const CONTENT_TYPE: &str = "application/json";

/// A RabbitMQ queue and its dead-letter queue.
pub struct AmqpQueue {
    /// The URL as given, credentials included: used to reconnect, never shown.
    uri: String,
    /// The URL without credentials, for messages.
    location: String,
    settings: QueueSettings,
    link: Mutex<Link>,
    /// The long-lived consumer, created by the first receive and after each reconnection.
    consumer: Mutex<Option<ActiveConsumer>>,
    /// Set once `setup` has declared the queues, so that a reconnection declares them again.
    declared: AtomicBool,
    /// The channel dead letters are fetched on (`basic_get`) and held unacked until replayed,
    /// with its number: a dead-letter handle names it, as a delivery handle names its channel.
    dead: Mutex<Option<(u64, Channel)>>,
    dead_channels: AtomicU64,
    /// The workers receiving at once: the prefetch is at least this (`set_receivers`).
    receivers: AtomicU16,
}

impl fmt::Debug for AmqpQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpQueue")
            .field("location", &self.location)
            .field("settings", &self.settings)
            .finish()
    }
}

/// The connection and its channels.
#[derive(Debug)]
struct Link {
    connection: Connection,
    /// The channel messages are published on, in confirm mode.
    publisher: Channel,
    /// The channel messages are consumed, acked and rejected on.
    receiver: Channel,
    /// Counts the receiving channels opened so far; part of every delivery handle.
    generation: u64,
    /// Delivery tags received on the current receiving channel and not yet settled: acking a
    /// tag twice would make the broker close the channel and redeliver every unacked message.
    outstanding: Arc<StdMutex<HashSet<u64>>>,
}

impl Link {
    fn healthy(&self) -> bool {
        self.connection.status().connected()
            && self.publisher.status().connected()
            && self.receiver.status().connected()
    }

    fn handles(&self) -> Handles {
        Handles {
            publisher: self.publisher.clone(),
            receiver: self.receiver.clone(),
            generation: self.generation,
            outstanding: Arc::clone(&self.outstanding),
        }
    }
}

/// Clones of the link's channels, used without holding the link's lock.
#[derive(Debug)]
struct Handles {
    publisher: Channel,
    receiver: Channel,
    generation: u64,
    outstanding: Arc<StdMutex<HashSet<u64>>>,
}

impl Handles {
    /// Claims an outstanding tag: true the first time only.
    fn settle(&self, tag: u64) -> bool {
        self.outstanding.lock().unwrap_or_else(PoisonError::into_inner).remove(&tag)
    }

    fn track(&self, tag: u64) {
        self.outstanding.lock().unwrap_or_else(PoisonError::into_inner).insert(tag);
    }
}

/// A consumer and the receiving-channel generation it belongs to.
#[derive(Debug)]
struct ActiveConsumer {
    generation: u64,
    /// The prefetch it was started with: RabbitMQ applies a later `basic_qos` to new consumers
    /// only (checked on 3.10.8).
    prefetch: u16,
    consumer: Consumer,
}

/// What waiting for the next delivery gave.
#[derive(Debug)]
enum Next {
    Delivery(Box<lapin::message::Delivery>),
    /// Nothing arrived in time.
    Idle,
    /// The consumer ended: cancelled by the broker (queue deleted) or its channel closed.
    Ended(Option<lapin::Error>),
}

impl AmqpQueue {
    /// Connects to `url` (`amqp://USER:PASS@HOST:PORT/VHOST`, `%2f` for the vhost `/`) and opens
    /// the publishing channel in confirm mode. Tries once: a refused connection is a transient
    /// error the caller may retry.
    pub async fn connect(url: &str, settings: QueueSettings) -> Result<Self, QueueError> {
        let location = redacted(url)?;
        let link = open_link(url, &location, 1).await?;
        Ok(Self {
            uri: url.to_owned(),
            location,
            settings,
            link: Mutex::new(link),
            consumer: Mutex::new(None),
            declared: AtomicBool::new(false),
            dead: Mutex::new(None),
            dead_channels: AtomicU64::new(0),
            receivers: AtomicU16::new(0),
        })
    }

    /// Closes the connection as a broker restart would. Lets tests exercise reconnection.
    #[doc(hidden)]
    pub async fn drop_connection(&self) {
        let link = self.link.lock().await;
        if let Err(e) = link.connection.close(200, "txpatterns test: dropping the connection".into()).await {
            tracing::debug!(error = %e, "closing the RabbitMQ connection");
        }
    }

    fn queue_location(&self, queue: &str) -> String {
        format!("{} queue {queue}", self.location)
    }

    /// The link's channels, reopened first if any of them has closed.
    async fn handles(&self) -> Result<Handles, QueueError> {
        let mut link = self.link.lock().await;
        if !link.healthy() {
            self.repair(&mut link).await?;
        }
        Ok(link.handles())
    }

    /// Reopens what has closed, retrying with doubling pauses within [`RECONNECT_BUDGET`].
    async fn repair(&self, link: &mut Link) -> Result<(), QueueError> {
        let started = Instant::now();
        let mut pause = BACKOFF_FIRST;
        loop {
            match self.try_repair(link).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() && started.elapsed() + pause < RECONNECT_BUDGET => {
                    tracing::warn!(error = %e, retry_in = ?pause, "reconnecting to RabbitMQ");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(BACKOFF_MAX);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One reconnection attempt: a new connection when the old one is gone, else new channels
    /// for those that closed (a channel error leaves the connection and the other channel up).
    async fn try_repair(&self, link: &mut Link) -> Result<(), QueueError> {
        if !link.connection.status().connected() {
            let fresh = open_link(&self.uri, &self.location, link.generation + 1).await?;
            if self.declared.load(Ordering::Relaxed) {
                let channel = temporary_channel(&fresh.connection, &self.location).await?;
                declare(&channel, &self.settings, &self.location).await?;
                close_quietly(&channel).await;
            }
            *link = fresh;
            tracing::info!(location = %self.location, "reconnected to RabbitMQ");
            return Ok(());
        }
        if !link.publisher.status().connected() {
            link.publisher = open_publisher(&link.connection)
                .await
                .map_err(|e| lapin_error(&self.location, "reopening the publishing channel", &e))?;
        }
        if !link.receiver.status().connected() {
            link.receiver = link
                .connection
                .create_channel()
                .await
                .map_err(|e| lapin_error(&self.location, "reopening the receiving channel", &e))?;
            link.generation += 1;
            link.outstanding = Arc::default();
        }
        Ok(())
    }

    /// A short-lived channel on a healthy connection, for declarations: a failed declaration
    /// closes its channel, which must not be one that holds unacked deliveries.
    async fn scratch_channel(&self) -> Result<Channel, QueueError> {
        let mut link = self.link.lock().await;
        if !link.healthy() {
            self.repair(&mut link).await?;
        }
        temporary_channel(&link.connection, &self.location).await
    }

    /// Publishes on the confirm channel and waits for the broker's answer.
    async fn publish_to(
        &self,
        publisher: &Channel,
        queue: &str,
        body: &[u8],
        headers: Option<FieldTable>,
    ) -> Result<(), QueueError> {
        let location = self.queue_location(queue);
        let mut properties =
            BasicProperties::default().with_delivery_mode(PERSISTENT).with_content_type(CONTENT_TYPE.into());
        if let Some(headers) = headers {
            properties = properties.with_headers(headers);
        }
        // mandatory: an unroutable message (no such queue) comes back instead of vanishing.
        let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
        let confirm = publisher
            .basic_publish(ShortString::from(""), ShortString::from(queue), options, body, properties)
            .await
            .map_err(|e| lapin_error(&location, "publishing", &e))?;
        let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
            .await
            .map_err(|_| QueueError::Transient {
                location: location.clone(),
                message: format!(
                    "no publish confirm within {CONFIRM_TIMEOUT:?} (a resource alarm on the broker blocks publishers)"
                ),
            })?
            .map_err(|e| lapin_error(&location, "waiting for the publish confirm", &e))?;
        check_confirmation(confirmation, &location)
    }

    /// Parses a handle and checks that its delivery is still settleable on the current
    /// receiving channel; `claim` also marks it settled so that no second settle is sent.
    async fn lease(&self, delivery: &Delivery, claim: bool) -> Result<(Handles, u64), QueueError> {
        let location = self.queue_location(&self.settings.name);
        let (generation, tag) = parse_handle(&delivery.handle).ok_or_else(|| QueueError::Permanent {
            location: location.clone(),
            message: format!("`{}` is not a delivery handle of a RabbitMQ queue", delivery.handle),
            hint: None,
        })?;
        let handles = self.link.lock().await.handles();
        if generation != handles.generation || !handles.receiver.status().connected() {
            return Err(QueueError::Transient {
                location,
                message: "the channel this message was received on has closed; RabbitMQ delivers it again"
                    .to_owned(),
            });
        }
        let known = if claim {
            handles.settle(tag)
        } else {
            handles.outstanding.lock().unwrap_or_else(PoisonError::into_inner).contains(&tag)
        };
        if !known {
            return Err(QueueError::Permanent {
                location,
                message: format!("delivery {tag} was already acked, released or dead-lettered"),
                hint: None,
            });
        }
        Ok((handles, tag))
    }

    /// The consumer of the current receiving channel, created (after `basic_qos`) when missing.
    async fn consumer<'a>(
        &self,
        slot: &'a mut Option<ActiveConsumer>,
        handles: &Handles,
        prefetch: u16,
    ) -> Result<&'a mut Consumer, QueueError> {
        if slot.is_none() {
            let location = self.queue_location(&self.settings.name);
            // Prefetch bounds the unacked messages the broker pushes; without it, it pushes all.
            handles
                .receiver
                .basic_qos(prefetch, BasicQosOptions::default())
                .await
                .map_err(|e| lapin_error(&location, "setting the prefetch", &e))?;
            let consumer = handles
                .receiver
                .basic_consume(
                    ShortString::from(self.settings.name.as_str()),
                    ShortString::from(""),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| lapin_error(&location, "starting to consume", &e))?;
            *slot = Some(ActiveConsumer { generation: handles.generation, prefetch, consumer });
        }
        slot.as_mut().map(|active| &mut active.consumer).ok_or_else(|| QueueError::Transient {
            location: self.queue_location(&self.settings.name),
            message: "no consumer".to_owned(),
        })
    }

    /// Drops a consumer that cannot serve this receive: one of a closed channel, or one whose
    /// prefetch is smaller than `prefetch`. The latter is cancelled first, and the deliveries it
    /// had already buffered (unacked, still settleable on this channel) are returned.
    async fn retire(
        &self,
        slot: &mut Option<ActiveConsumer>,
        handles: &Handles,
        prefetch: u16,
    ) -> Result<Vec<Delivery>, QueueError> {
        let Some(active) = slot.as_mut() else { return Ok(Vec::new()) };
        if active.generation != handles.generation {
            *slot = None;
            return Ok(Vec::new());
        }
        if active.prefetch >= prefetch {
            return Ok(Vec::new());
        }
        handles.receiver.basic_cancel(active.consumer.tag(), BasicCancelOptions::default()).await.map_err(
            |e| lapin_error(&self.queue_location(&self.settings.name), "cancelling the consumer", &e),
        )?;
        // The broker sends nothing for a consumer after its cancel-ok: what it sent is buffered.
        let mut leftovers = Vec::new();
        while let Some(Some(Ok(delivery))) = active.consumer.next().now_or_never() {
            leftovers.push(self.delivery(&delivery, handles));
        }
        *slot = None;
        Ok(leftovers)
    }

    /// Turns a lapin delivery into ours and records its tag as outstanding.
    fn delivery(&self, delivery: &lapin::message::Delivery, handles: &Handles) -> Delivery {
        handles.track(delivery.delivery_tag);
        let previous = delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|headers| headers.inner().get("x-delivery-count"))
            .and_then(as_count);
        Delivery {
            body: delivery.data.clone(),
            attempt: previous.map_or(1, |count| count.saturating_add(1)),
            handle: format_handle(handles.generation, delivery.delivery_tag),
        }
    }

    /// The dead-letter channel a handle names, if it is still open.
    async fn dead_channel_of(&self, dead: &DeadLetter) -> Result<(Channel, u64), QueueError> {
        let location = self.queue_location(&self.settings.dlq_name());
        let (number, tag) = parse_handle(&dead.delivery.handle).ok_or_else(|| QueueError::Permanent {
            location: location.clone(),
            message: format!("`{}` is not a dead-letter handle", dead.delivery.handle),
            hint: None,
        })?;
        match self.dead.lock().await.as_ref() {
            Some((current, channel)) if *current == number && channel.status().connected() => {
                Ok((channel.clone(), tag))
            }
            _ => Err(QueueError::Transient {
                location,
                message: "the channel this dead letter was fetched on has closed; it is back in the dead-letter queue"
                    .to_owned(),
            }),
        }
    }

    async fn message_count(&self, channel: &Channel, queue: &str) -> Result<u64, QueueError> {
        let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        let declared = channel
            .queue_declare(ShortString::from(queue), options, FieldTable::default())
            .await
            .map_err(|e| lapin_error(&self.queue_location(queue), "reading the depth", &e))?;
        Ok(u64::from(declared.message_count()))
    }
}

#[async_trait]
impl Queue for AmqpQueue {
    async fn setup(&self) -> Result<(), QueueError> {
        let channel = self.scratch_channel().await?;
        declare(&channel, &self.settings, &self.location).await?;
        close_quietly(&channel).await;
        self.declared.store(true, Ordering::Relaxed);
        Ok(())
    }

    async fn publish(&self, body: &[u8]) -> Result<(), QueueError> {
        let handles = self.handles().await?;
        self.publish_to(&handles.publisher, &self.settings.name, body, None).await
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let max = max.max(1);
        let mut slot = self.consumer.lock().await;
        let handles = self.handles().await?;
        // The first receive sets the prefetch to its `max`, or to the number of workers receiving
        // at once if larger (with a prefetch of 1, one worker's unacked message would hold every
        // other worker of the channel idle); RabbitMQ applies a new prefetch to new consumers
        // only, so a larger one later restarts the consumer.
        let prefetch = u16::try_from(max).unwrap_or(u16::MAX).max(self.receivers.load(Ordering::Relaxed));
        let mut batch = self.retire(&mut slot, &handles, prefetch).await?;
        let consumer = self.consumer(&mut slot, &handles, prefetch).await?;
        let mut timeout = if batch.is_empty() { wait } else { LINGER };
        let mut ended = None;
        while batch.len() < max {
            match next(consumer, timeout).await {
                Next::Delivery(delivery) => batch.push(self.delivery(&delivery, &handles)),
                Next::Idle => break,
                Next::Ended(error) => {
                    ended = Some(error);
                    break;
                }
            }
            timeout = LINGER;
        }
        if let Some(error) = ended {
            // The next receive starts a new consumer, on a new channel if this one closed.
            *slot = None;
            if batch.is_empty() {
                let message = error.map_or_else(
                    || "RabbitMQ cancelled the consumer (was the queue deleted?)".to_owned(),
                    |e| format!("the consumer stopped: {e}"),
                );
                return Err(QueueError::Transient {
                    location: self.queue_location(&self.settings.name),
                    message,
                });
            }
        }
        Ok(batch)
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let (handles, tag) = self.lease(delivery, true).await?;
        handles
            .receiver
            .basic_ack(tag, BasicAckOptions::default())
            .await
            .map_err(|e| lapin_error(&self.queue_location(&self.settings.name), "acking", &e))
    }

    async fn release(&self, delivery: &Delivery) -> Result<(), QueueError> {
        // A reject, not a nack: on RabbitMQ 3.10 both count toward the delivery limit, on 4.3+
        // only a reject does.
        let (handles, tag) = self.lease(delivery, true).await?;
        handles
            .receiver
            .basic_reject(tag, BasicRejectOptions { requeue: true })
            .await
            .map_err(|e| lapin_error(&self.queue_location(&self.settings.name), "releasing", &e))
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError> {
        // At least once: the copy is confirmed in the DLQ before the original is acked.
        self.lease(delivery, false).await?;
        let handles = self.handles().await?;
        let mut headers = FieldTable::default();
        headers.insert("x-txp-reason".into(), AMQPValue::LongString(LongString::from(reason)));
        headers.insert("x-txp-attempts".into(), AMQPValue::LongLongInt(i64::from(delivery.attempt)));
        headers.insert(
            "x-txp-from".into(),
            AMQPValue::LongString(LongString::from(self.settings.name.as_str())),
        );
        self.publish_to(&handles.publisher, &self.settings.dlq_name(), &delivery.body, Some(headers)).await?;
        self.ack(delivery).await
    }

    async fn depth(&self) -> Result<Depth, QueueError> {
        let channel = self.scratch_channel().await?;
        let ready = self.message_count(&channel, &self.settings.name).await?;
        let dead = self.message_count(&channel, &self.settings.dlq_name()).await?;
        close_quietly(&channel).await;
        // A passive declare counts ready messages only; unacked ones are not reported over AMQP.
        Ok(Depth { ready, in_flight: 0, dead })
    }

    async fn extend_lease(&self, _delivery: &Delivery, _by: Duration) -> Result<(), QueueError> {
        // Nothing to extend: an unacked delivery stays with this channel until the broker's
        // consumer_timeout (30 min by default), far beyond the work on one chunk.
        Ok(())
    }

    async fn receive_dead(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let dlq = self.settings.dlq_name();
        let location = self.queue_location(&dlq);
        let mut slot = self.dead.lock().await;
        let (number, channel) = match slot.as_ref() {
            Some((number, channel)) if channel.status().connected() => (*number, channel.clone()),
            _ => {
                let channel = self.scratch_channel().await?;
                let number = self.dead_channels.fetch_add(1, Ordering::Relaxed) + 1;
                *slot = Some((number, channel.clone()));
                (number, channel)
            }
        };
        let mut dead = Vec::new();
        while dead.len() < max.max(1) {
            let got = channel
                .basic_get(ShortString::from(dlq.as_str()), BasicGetOptions { no_ack: false })
                .await
                .map_err(|e| lapin_error(&location, "fetching a dead letter", &e))?;
            let Some(got) = got else { break };
            let delivery = &got.delivery;
            let headers = delivery.properties.headers().clone().unwrap_or_default();
            let (reason, attempts) = dead_letter_reason(&headers, self.settings.delivery_limit);
            dead.push(DeadLetter {
                delivery: Delivery {
                    body: delivery.data.clone(),
                    attempt: attempts,
                    handle: format_handle(number, delivery.delivery_tag),
                },
                reason,
                attempts,
            });
        }
        Ok(dead)
    }

    async fn ack_dead(&self, dead: &DeadLetter) -> Result<(), QueueError> {
        let (channel, tag) = self.dead_channel_of(dead).await?;
        channel.basic_ack(tag, BasicAckOptions::default()).await.map_err(|e| {
            lapin_error(&self.queue_location(&self.settings.dlq_name()), "acking a dead letter", &e)
        })
    }

    async fn release_dead(&self, dead: &DeadLetter) -> Result<(), QueueError> {
        let (channel, tag) = self.dead_channel_of(dead).await?;
        channel.basic_reject(tag, BasicRejectOptions { requeue: true }).await.map_err(|e| {
            lapin_error(&self.queue_location(&self.settings.dlq_name()), "releasing a dead letter", &e)
        })
    }

    fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    fn set_receivers(&self, receivers: usize) {
        self.receivers.store(u16::try_from(receivers).unwrap_or(u16::MAX), Ordering::Relaxed);
    }

    fn backend(&self) -> &'static str {
        "rabbitmq"
    }
}

/// Opens the connection and both channels.
async fn open_link(uri: &str, location: &str, generation: u64) -> Result<Link, QueueError> {
    let properties = ConnectionProperties::default().with_connection_name(LongString::from("txpatterns"));
    let connection = tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(uri, properties))
        .await
        .map_err(|_| QueueError::Transient {
            location: location.to_owned(),
            message: format!(
                "no answer from RabbitMQ within {CONNECT_TIMEOUT:?}; check that the URL's host and port are \
                 right and reachable from here"
            ),
        })?
        .map_err(|e| connect_error(location, &e))?;
    let publisher = open_publisher(&connection)
        .await
        .map_err(|e| lapin_error(location, "opening the publishing channel", &e))?;
    let receiver = connection
        .create_channel()
        .await
        .map_err(|e| lapin_error(location, "opening the receiving channel", &e))?;
    Ok(Link { connection, publisher, receiver, generation, outstanding: Arc::default() })
}

/// A channel in confirm mode: every publish on it gets an ack or nack from the broker.
async fn open_publisher(connection: &Connection) -> lapin::Result<Channel> {
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(channel)
}

async fn temporary_channel(connection: &Connection, location: &str) -> Result<Channel, QueueError> {
    connection.create_channel().await.map_err(|e| lapin_error(location, "opening a channel", &e))
}

/// Closes a short-lived channel; one that a broker error already closed needs nothing more.
async fn close_quietly(channel: &Channel) {
    if channel.status().connected()
        && let Err(e) = channel.close(200, "done".into()).await
    {
        tracing::debug!(error = %e, "closing a RabbitMQ channel");
    }
}

/// Declares the dead-letter queue, then the main queue whose arguments point to it.
async fn declare(channel: &Channel, settings: &QueueSettings, location: &str) -> Result<(), QueueError> {
    let dlq = settings.dlq_name();
    declare_one(channel, &dlq, quorum_arguments(), location).await?;
    declare_one(channel, &settings.name, main_arguments(settings), location).await
}

async fn declare_one(
    channel: &Channel,
    queue: &str,
    arguments: FieldTable,
    location: &str,
) -> Result<(), QueueError> {
    let options = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    match channel.queue_declare(ShortString::from(queue), options, arguments).await {
        Ok(_) => Ok(()),
        Err(e) if is_soft(&e, AMQPSoftError::PRECONDITIONFAILED) => Err(QueueError::Permanent {
            location: format!("{location} queue {queue}"),
            message: format!("the queue exists with other arguments than txpatterns declares: {e}"),
            hint: Some(format!(
                "delete the queue `{queue}` (after draining it: rabbitmqctl delete_queue {queue}) so that it is \
                 declared again as a quorum queue with a delivery limit, or set queue.name to another name"
            )),
        }),
        Err(e) => Err(lapin_error(&format!("{location} queue {queue}"), "declaring the queue", &e)),
    }
}

/// A durable quorum queue: replicated, and the only kind with a delivery limit.
fn quorum_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    arguments
}

/// The main queue's arguments: a delivery limit, dead-lettering at least once (which needs
/// `reject-publish` overflow, or RabbitMQ silently falls back to at most once) to the DLQ
/// through the default exchange.
fn main_arguments(settings: &QueueSettings) -> FieldTable {
    let mut arguments = quorum_arguments();
    arguments
        .insert("x-delivery-limit".into(), AMQPValue::LongLongInt(x_delivery_limit(settings.delivery_limit)));
    arguments.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
    arguments.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(LongString::from(settings.dlq_name().as_str())),
    );
    arguments.insert("x-dead-letter-strategy".into(), AMQPValue::LongString("at-least-once".into()));
    arguments.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
    arguments
}

/// RabbitMQ's `x-delivery-limit` counts returns, not deliveries: a quorum queue dead-letters a
/// message returned more than that many times, so a limit of L allows L + 1 deliveries (measured
/// on 3.10.8). Our `delivery_limit` counts deliveries, as SQS's `maxReceiveCount` and the
/// embedded queue do, hence one less; 0 dead-letters at the first return.
fn x_delivery_limit(delivery_limit: u32) -> i64 {
    i64::from(delivery_limit.saturating_sub(1))
}

fn check_confirmation(confirmation: Confirmation, location: &str) -> Result<(), QueueError> {
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) => Err(QueueError::Permanent {
            location: location.to_owned(),
            message: format!(
                "RabbitMQ returned the message as unroutable ({} {}): the queue does not exist",
                returned.reply_code, returned.reply_text
            ),
            hint: Some("run the setup, which declares the queues, or check queue.name".to_owned()),
        }),
        Confirmation::Nack(_) => Err(QueueError::Transient {
            location: location.to_owned(),
            message: "RabbitMQ refused the message (nack): the queue may be full or without a leader"
                .to_owned(),
        }),
        Confirmation::NotRequested => Err(QueueError::Transient {
            location: location.to_owned(),
            message: "the publishing channel is not in confirm mode".to_owned(),
        }),
    }
}

/// Waits up to `timeout` for the consumer's next delivery.
async fn next(consumer: &mut Consumer, timeout: Duration) -> Next {
    match tokio::time::timeout(timeout, consumer.next()).await {
        Err(_) => Next::Idle,
        Ok(Some(Ok(delivery))) => Next::Delivery(Box::new(delivery)),
        Ok(Some(Err(e))) => Next::Ended(Some(e)),
        Ok(None) => Next::Ended(None),
    }
}

/// `GENERATION:TAG`.
fn format_handle(generation: u64, tag: u64) -> String {
    format!("{generation}:{tag}")
}

fn parse_handle(handle: &str) -> Option<(u64, u64)> {
    let (generation, tag) = handle.split_once(':')?;
    Some((generation.parse().ok()?, tag.parse().ok()?))
}

/// Why a message is in the dead-letter queue, and after how many deliveries: our own headers
/// when a consumer dead-lettered it, else the broker's `x-death` record (its delivery limit).
fn dead_letter_reason(headers: &FieldTable, delivery_limit: u32) -> (String, u32) {
    let map = headers.inner();
    let text = |value: &AMQPValue| match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    };
    if let Some(reason) = map.get("x-txp-reason").and_then(text) {
        let attempts = map.get("x-txp-attempts").and_then(as_count).unwrap_or(0);
        return (reason, attempts);
    }
    // RabbitMQ moved it: one x-death entry per (queue, reason), newest first.
    let death = match map.get("x-death") {
        Some(AMQPValue::FieldArray(entries)) => entries.as_slice().iter().find_map(|entry| match entry {
            AMQPValue::FieldTable(table) => Some(table.inner().clone()),
            _ => None,
        }),
        _ => None,
    };
    let attempts = delivery_limit;
    match death.as_ref().and_then(|d| d.get("reason")).and_then(text) {
        Some(why) if why == "delivery_limit" => {
            (format!("delivery limit {attempts} reached (moved by RabbitMQ)"), attempts)
        }
        Some(why) => (format!("dead-lettered by RabbitMQ: {why}"), attempts),
        None => ("no reason recorded".to_owned(), 0),
    }
}

/// A header's integer value (`x-delivery-count` comes as a signed 64-bit integer, but any
/// integer type is accepted).
fn as_count(value: &AMQPValue) -> Option<u32> {
    let count = match value {
        AMQPValue::ShortShortInt(v) => i64::from(*v),
        AMQPValue::ShortShortUInt(v) => i64::from(*v),
        AMQPValue::ShortInt(v) => i64::from(*v),
        AMQPValue::ShortUInt(v) => i64::from(*v),
        AMQPValue::LongInt(v) => i64::from(*v),
        AMQPValue::LongUInt(v) => i64::from(*v),
        AMQPValue::LongLongInt(v) => *v,
        _ => return None,
    };
    u32::try_from(count).ok()
}

/// `amqp://HOST:PORT/VHOST`: the URL without user and password, for messages.
fn redacted(url: &str) -> Result<String, QueueError> {
    let invalid = |why: &str| QueueError::Permanent {
        location: "RabbitMQ URL".to_owned(),
        message: format!("not a valid AMQP URL: {why}"),
        hint: Some("use amqp://USER:PASS@HOST:5672/VHOST (%2f for the vhost /)".to_owned()),
    };
    let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    let default_port = match parsed.scheme() {
        "amqp" => 5672,
        "amqps" => 5671,
        _ => return Err(invalid("the scheme must be amqp or amqps")),
    };
    let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| invalid("no host"))?;
    let port = parsed.port().unwrap_or(default_port);
    Ok(format!("{}://{host}:{port}{}", parsed.scheme(), parsed.path()))
}

fn is_soft(e: &lapin::Error, kind: AMQPSoftError) -> bool {
    matches!(e.kind(), ErrorKind::ProtocolError(amqp) if *amqp.kind() == AMQPErrorKind::Soft(kind))
}

/// Errors of the first connection attempt, with what to check.
fn connect_error(location: &str, e: &lapin::Error) -> QueueError {
    match e.kind() {
        ErrorKind::IOError(io) => QueueError::Transient {
            location: location.to_owned(),
            message: format!(
                "cannot connect to RabbitMQ: {io}; check that RabbitMQ is running and that the URL's host and \
                 port are right"
            ),
        },
        ErrorKind::ProtocolError(amqp)
            if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)) =>
        {
            QueueError::Permanent {
                location: location.to_owned(),
                message: format!("RabbitMQ refused the login: {}", amqp.get_message()),
                hint: Some("check the user name and password in the URL".to_owned()),
            }
        }
        _ => lapin_error(location, "connecting", e),
    }
}

/// Sorts a lapin error: refused access, missing queues, conflicting declarations and unknown
/// vhosts cannot be fixed by retrying; lost connections and closed channels can.
fn lapin_error(location: &str, doing: &str, e: &lapin::Error) -> QueueError {
    let location = location.to_owned();
    let message = format!("{doing}: {e}");
    let ErrorKind::ProtocolError(amqp) = e.kind() else {
        return QueueError::Transient { location, message };
    };
    let hint = match amqp.kind() {
        AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
        | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => {
            "check the URL's vhost (its path; %2f for /) and the user's permissions on it"
        }
        AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => {
            "the queue does not exist: run the setup, which declares it, or check queue.name"
        }
        AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) => {
            "the queue exists with other arguments: delete it or set queue.name to another name"
        }
        AMQPErrorKind::Soft(AMQPSoftError::CONTENTTOOLARGE) => {
            "the message is larger than the broker's max_message_size: make the chunks smaller"
        }
        _ => return QueueError::Transient { location, message },
    };
    QueueError::Permanent { location, message, hint: Some(hint.to_owned()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_reject_garbage() {
        assert_eq!(parse_handle(&format_handle(3, 17)), Some((3, 17)));
        assert_eq!(parse_handle("17"), None);
        assert_eq!(parse_handle("a:1"), None);
        assert_eq!(parse_handle("1:-1"), None);
    }

    #[test]
    fn redacted_location_has_no_credentials() {
        let location = redacted("amqp://user:s3cret@rabbit.example:5673/prod").unwrap();
        assert_eq!(location, "amqp://rabbit.example:5673/prod");
        assert_eq!(redacted("amqp://u:p@h/%2f").unwrap(), "amqp://h:5672/%2f");
        assert_eq!(redacted("amqps://u:p@h").unwrap(), "amqps://h:5671");
    }

    #[test]
    fn invalid_urls_are_permanent_and_do_not_echo_the_password() {
        for url in ["http://u:s3cret@h/", "amqp://u:s3cret@:5672/", "not a url s3cret"] {
            let e = redacted(url).unwrap_err();
            assert!(!e.is_transient(), "{url}");
            assert!(!e.to_string().contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn delivery_limit_counts_deliveries() {
        assert_eq!(x_delivery_limit(5), 4);
        assert_eq!(x_delivery_limit(1), 0);
        assert_eq!(x_delivery_limit(0), 0);
    }

    #[test]
    fn main_queue_arguments() {
        let settings = QueueSettings {
            name: "q".into(),
            delivery_limit: 3,
            visibility_timeout: Duration::from_secs(30),
        };
        let arguments = main_arguments(&settings);
        let get = |key: &str| arguments.inner().get(key).cloned();
        assert_eq!(get("x-queue-type"), Some(AMQPValue::LongString("quorum".into())));
        assert_eq!(get("x-delivery-limit"), Some(AMQPValue::LongLongInt(2)));
        assert_eq!(get("x-dead-letter-exchange"), Some(AMQPValue::LongString("".into())));
        assert_eq!(get("x-dead-letter-routing-key"), Some(AMQPValue::LongString("q-dlq".into())));
        assert_eq!(get("x-dead-letter-strategy"), Some(AMQPValue::LongString("at-least-once".into())));
        assert_eq!(get("x-overflow"), Some(AMQPValue::LongString("reject-publish".into())));
    }

    #[test]
    fn delivery_count_header_of_any_integer_type() {
        assert_eq!(as_count(&AMQPValue::LongLongInt(2)), Some(2));
        assert_eq!(as_count(&AMQPValue::LongInt(1)), Some(1));
        assert_eq!(as_count(&AMQPValue::LongLongInt(-1)), None);
        assert_eq!(as_count(&AMQPValue::LongString("2".into())), None);
    }

    #[test]
    fn protocol_errors_are_sorted() {
        use lapin::protocol::AMQPError;
        let error = |kind: AMQPErrorKind| {
            lapin::Error::from(ErrorKind::ProtocolError(AMQPError::new(kind, "x".into())))
        };
        let not_found = lapin_error("l", "doing", &error(AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)));
        assert!(!not_found.is_transient());
        assert!(not_found.hint().is_some_and(|h| h.contains("setup")));
        let forced = lapin_error("l", "doing", &error(AMQPErrorKind::Hard(AMQPHardError::CONNECTIONFORCED)));
        assert!(forced.is_transient());
        let io = lapin::Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let refused = connect_error("amqp://h:1/%2f", &io);
        assert!(refused.is_transient());
        assert!(refused.to_string().contains("h:1"));
    }

    #[test]
    fn confirmations() {
        assert!(check_confirmation(Confirmation::Ack(None), "l").is_ok());
        assert!(check_confirmation(Confirmation::Nack(None), "l").unwrap_err().is_transient());
    }
}
