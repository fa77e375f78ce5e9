//! The RabbitMQ queue against the machine's broker (127.0.0.1:5672, guest/guest; override with
//! `TXP_TEST_AMQP_URL`). Each test uses queues of its own and deletes them at the end, even
//! when it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod support {
    pub mod dead_letters;
}

use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use txp_connectors::queue::{AmqpQueue, Delivery, Queue, QueueSettings};

fn broker_url() -> String {
    std::env::var("TXP_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// Settings with a queue name no other test (or run) uses.
fn settings(delivery_limit: u32) -> QueueSettings {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    let name =
        format!("txp-test-{}-{}-{nanos:x}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    QueueSettings { name, delivery_limit, visibility_timeout: Duration::from_secs(30) }
}

/// Deletes a test's queues when dropped, on a thread of its own so that it also runs while a
/// failed test unwinds.
struct Cleanup(Vec<String>);

impl Cleanup {
    fn of(settings: &QueueSettings) -> Self {
        Self(vec![settings.name.clone(), settings.dlq_name()])
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let queues = std::mem::take(&mut self.0);
        let deleting = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let connection =
                    Connection::connect(&broker_url(), ConnectionProperties::default()).await.unwrap();
                for queue in queues {
                    let channel = connection.create_channel().await.unwrap();
                    let _ = channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
                }
            });
        });
        let _ = deleting.join();
    }
}

async fn queue(settings: &QueueSettings) -> AmqpQueue {
    let queue = AmqpQueue::connect(&broker_url(), settings.clone()).await.unwrap();
    queue.setup().await.unwrap();
    queue
}

/// Receives until `n` deliveries have arrived (or 10 s have passed).
async fn receive_n(queue: &AmqpQueue, n: usize) -> Vec<Delivery> {
    let started = Instant::now();
    let mut got = Vec::new();
    while got.len() < n && started.elapsed() < Duration::from_secs(10) {
        got.extend(queue.receive(n - got.len(), Duration::from_secs(2)).await.unwrap());
    }
    got
}

/// Polls the depth until `check` holds (dead-lettering is asynchronous).
async fn eventually(queue: &AmqpQueue, check: impl Fn(&txp_connectors::queue::Depth) -> bool) {
    let started = Instant::now();
    loop {
        let depth = queue.depth().await.unwrap();
        if check(&depth) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "depth stayed at {depth:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Takes one message off a queue with a raw basic.get: (body, headers).
async fn get_raw(queue: &str) -> Option<(Vec<u8>, FieldTable)> {
    let connection = Connection::connect(&broker_url(), ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let message = channel.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.unwrap()?;
    let headers = message.delivery.properties.headers().clone().unwrap_or_default();
    Some((message.delivery.data, headers))
}

fn header_text(headers: &FieldTable, key: &str) -> String {
    match headers.inner().get(key) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("header {key}: {other:?}"),
    }
}

#[tokio::test]
async fn setup_is_idempotent() {
    let settings = settings(5);
    let _cleanup = Cleanup::of(&settings);
    let queue = queue(&settings).await;
    queue.setup().await.unwrap();
    // Another process declaring the same queues agrees with the first.
    let other = AmqpQueue::connect(&broker_url(), settings.clone()).await.unwrap();
    other.setup().await.unwrap();
    assert_eq!(queue.depth().await.unwrap(), Default::default());
    assert_eq!(queue.backend(), "rabbitmq");
}

#[tokio::test]
async fn publish_receive_ack() {
    let settings = settings(5);
    let _cleanup = Cleanup::of(&settings);
    let queue = queue(&settings).await;
    let bodies: Vec<Vec<u8>> = (0..7).map(|i| format!("{{\"chunk\":{i}}}").into_bytes()).collect();
    for body in &bodies {
        queue.publish(body).await.unwrap();
    }
    eventually(&queue, |d| d.ready == 7).await;
    let got = receive_n(&queue, 7).await;
    let mut received: Vec<Vec<u8>> = got.iter().map(|d| d.body.clone()).collect();
    received.sort();
    let mut expected = bodies.clone();
    expected.sort();
    assert_eq!(received, expected);
    assert!(got.iter().all(|d| d.attempt == 1), "{got:?}");
    for delivery in &got {
        queue.ack(delivery).await.unwrap();
    }
    // A second ack of the same delivery is refused without closing the channel.
    let twice = queue.ack(&got[0]).await.unwrap_err();
    assert!(!twice.is_transient(), "{twice}");
    assert!(queue.receive(10, Duration::from_millis(500)).await.unwrap().is_empty());
    assert_eq!(queue.depth().await.unwrap(), Default::default());
}

#[tokio::test]
async fn receive_waits_at_most_wait_and_respects_max() {
    let settings = settings(5);
    let _cleanup = Cleanup::of(&settings);
    let queue = queue(&settings).await;
    let started = Instant::now();
    assert!(queue.receive(3, Duration::from_millis(300)).await.unwrap().is_empty());
    assert!(started.elapsed() < Duration::from_secs(2));
    for i in 0..5 {
        queue.publish(format!("{i}").as_bytes()).await.unwrap();
    }
    // The consumer, started by the first receive with a prefetch of 3, holds at most 3
    // unacked messages: the broker keeps the other 2 ready.
    let first = receive_n(&queue, 3).await;
    assert_eq!(first.len(), 3, "{first:?}");
    eventually(&queue, |d| d.ready == 2).await;
    assert!(queue.receive(3, Duration::from_millis(300)).await.unwrap().is_empty());
    for delivery in &first {
        queue.ack(delivery).await.unwrap();
    }
    let rest = queue.receive(6, Duration::from_secs(2)).await.unwrap();
    assert_eq!(rest.len(), 2, "{rest:?}");
    for delivery in &rest {
        queue.ack(delivery).await.unwrap();
    }
}

#[tokio::test]
async fn a_larger_max_restarts_the_consumer_without_losing_buffered_messages() {
    let settings = settings(5);
    let _cleanup = Cleanup::of(&settings);
    let queue = queue(&settings).await;
    for i in 0..6 {
        queue.publish(format!("{i}").as_bytes()).await.unwrap();
    }
    let mut seen = Vec::new();
    let first = receive_n(&queue, 3).await;
    for delivery in &first {
        queue.ack(delivery).await.unwrap();
    }
    seen.extend(first);
    // The consumer (prefetch 3) now buffers the other three; this takes one of them.
    let one = queue.receive(1, Duration::from_secs(2)).await.unwrap();
    assert_eq!(one.len(), 1);
    seen.extend(one);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A larger max needs a new consumer: the old one's buffered two come back from this
    // receive, still ackable.
    let rest = queue.receive(6, Duration::from_secs(2)).await.unwrap();
    assert_eq!(rest.len(), 2, "{rest:?}");
    seen.extend(rest);
    let mut bodies: Vec<Vec<u8>> = seen.iter().map(|d| d.body.clone()).collect();
    bodies.sort();
    assert_eq!(bodies, (0..6).map(|i| format!("{i}").into_bytes()).collect::<Vec<_>>());
    for delivery in &seen[3..] {
        queue.ack(delivery).await.unwrap();
    }
    eventually(&queue, |d| *d == Default::default()).await;
    assert!(queue.receive(10, Duration::from_millis(300)).await.unwrap().is_empty());
}

#[tokio::test]
async fn release_redelivers_with_the_next_attempt() {
    let settings = settings(5);
    let _cleanup = Cleanup::of(&settings);
    let queue = queue(&settings).await;
    queue.publish(b"{\"n\":1}").await.unwrap();
    let first = receive_n(&queue, 1).await;
    assert_eq!(first[0].attempt, 1);
    queue.release(&first[0]).await.unwrap();
    let second = receive_n(&queue, 1).await;
    assert_eq!(second[0].body, b"{\"n\":1}");
    assert_eq!(second[0].attempt, 2);
    queue.ack(&second[0]).await.unwrap();
}

#[tokio::test]
async fn the_delivery_limit_dead_letters() {
    let settings = settings(3);
    let _cleanup = Cleanup::of(&settings);
    let queue = queue(&settings).await;
    queue.publish(b"{\"poison\":true}").await.unwrap();
    // delivery_limit counts deliveries: three, then the message is in the DLQ.
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let got = receive_n(&queue, 1).await;
        assert_eq!(got.len(), 1, "after attempts {attempts:?}");
        attempts.push(got[0].attempt);
        queue.release(&got[0]).await.unwrap();
    }
    assert_eq!(attempts, [1, 2, 3]);
    assert!(queue.receive(1, Duration::from_secs(1)).await.unwrap().is_empty());
    eventually(&queue, |d| d.ready == 0 && d.dead == 1).await;
    let (body, headers) = get_raw(&settings.dlq_name()).await.unwrap();
    assert_eq!(body, b"{\"poison\":true}");
    assert_eq!(header_text(&headers, "x-first-death-reason"), "delivery_limit");
    assert_eq!(header_text(&headers, "x-first-death-queue"), settings.name);
}

#[tokio::test]
async fn dead_letter_moves_with_the_reason() {
    let settings = settings(5);
    let _cleanup = Cleanup::of(&settings);
    let queue = queue(&settings).await;
    queue.publish(b"{\"bad\":1}").await.unwrap();
    let got = receive_n(&queue, 1).await;
    queue.dead_letter(&got[0], "schema mismatch").await.unwrap();
    eventually(&queue, |d| d.ready == 0 && d.dead == 1).await;
    let (body, headers) = get_raw(&settings.dlq_name()).await.unwrap();
    assert_eq!(body, b"{\"bad\":1}");
    assert_eq!(header_text(&headers, "x-txp-reason"), "schema mismatch");
    assert_eq!(header_text(&headers, "x-txp-from"), settings.name);
    assert_eq!(headers.inner().get("x-txp-attempts"), Some(&AMQPValue::LongLongInt(1)));
    assert!(queue.receive(1, Duration::from_millis(500)).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_conflicting_queue_is_a_permanent_error_naming_it() {
    let settings = settings(5);
    let _cleanup = Cleanup::of(&settings);
    let connection = Connection::connect(&broker_url(), ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    channel.queue_declare(settings.name.as_str().into(), durable, FieldTable::default()).await.unwrap();
    let queue = AmqpQueue::connect(&broker_url(), settings.clone()).await.unwrap();
    let error = queue.setup().await.unwrap_err();
    assert!(!error.is_transient(), "{error}");
    assert!(error.to_string().contains(&settings.name), "{error}");
    let hint = error.hint().unwrap();
    assert!(hint.contains("delete") && hint.contains("queue.name"), "{hint}");
    // The failed declaration closed only its own channel: the queue still publishes (to the
    // classic queue that is there).
    queue.publish(b"{}").await.unwrap();
}

#[tokio::test]
async fn publishing_before_setup_is_refused_as_unroutable() {
    let settings = settings(5);
    let _cleanup = Cleanup::of(&settings);
    let queue = AmqpQueue::connect(&broker_url(), settings.clone()).await.unwrap();
    let error = queue.publish(b"{}").await.unwrap_err();
    assert!(!error.is_transient(), "{error}");
    assert!(error.hint().unwrap().contains("setup"), "{error}");
    let depth = queue.depth().await.unwrap_err();
    assert!(!depth.is_transient() && depth.to_string().contains(&settings.name), "{depth}");
}

#[tokio::test]
async fn a_closed_port_names_the_host_and_not_the_password() {
    let error = AmqpQueue::connect("amqp://guest:s3cret-pw@127.0.0.1:1/%2f", settings(5)).await.unwrap_err();
    let text = error.to_string();
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(text.contains("check that RabbitMQ is running"), "{text}");
    assert!(!text.contains("s3cret-pw"), "{text}");
    assert!(error.is_transient());
}

#[tokio::test]
async fn bad_credentials_are_permanent() {
    let url = broker_url().replacen("guest@", "wrong-pw@", 1);
    let error = AmqpQueue::connect(&url, settings(5)).await.unwrap_err();
    assert!(!error.is_transient(), "{error}");
    assert!(error.to_string().contains("127.0.0.1:5672"), "{error}");
    assert!(!error.to_string().contains("wrong-pw"), "{error}");
    assert!(error.hint().unwrap().contains("password"));
}

#[tokio::test]
async fn reconnects_and_refuses_acks_of_the_old_channel() {
    let settings = settings(5);
    let _cleanup = Cleanup::of(&settings);
    let queue = queue(&settings).await;
    queue.publish(b"{\"n\":7}").await.unwrap();
    let before = receive_n(&queue, 1).await;
    queue.drop_connection().await;
    // The delivery belonged to the closed channel: its ack fails as transient, and the broker
    // delivers the message again on the new connection.
    let error = queue.ack(&before[0]).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    queue.publish(b"{\"n\":8}").await.unwrap();
    let mut after = receive_n(&queue, 2).await;
    after.sort_by(|a, b| a.body.cmp(&b.body));
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(after[0].body, b"{\"n\":7}");
    assert_eq!(after[0].attempt, 2, "a return by connection loss counts as a delivery");
    for delivery in &after {
        queue.ack(delivery).await.unwrap();
    }
    eventually(&queue, |d| *d == Default::default()).await;
}

#[tokio::test]
async fn dead_letters_are_received_released_and_acked() {
    let settings = settings(5);
    let _cleanup = Cleanup::of(&settings);
    let queue = queue(&settings).await;
    support::dead_letters::dead_letter_contract(&queue, None).await;
}

#[tokio::test]
async fn a_dead_letter_moved_by_the_delivery_limit_says_so() {
    let settings = settings(1);
    let _cleanup = Cleanup::of(&settings);
    let queue = queue(&settings).await;
    queue.publish(b"{}").await.unwrap();
    let got = receive_n(&queue, 1).await;
    queue.release(&got[0]).await.unwrap();
    eventually(&queue, |d| d.ready == 0 && d.dead == 1).await;
    let dead = queue.receive_dead(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].reason.as_str(), dead[0].attempts),
        ("delivery limit 1 reached (moved by RabbitMQ)", 1)
    );
    queue.ack_dead(&dead[0]).await.unwrap();
    eventually(&queue, |d| d.dead == 0).await;
}
