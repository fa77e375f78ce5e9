//! The SQS queue against moto's server, one per test (it keeps wall-clock time, so the tests
//! that wait for visibility timeouts really wait; the timeouts are 1 s).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support {
    pub mod dead_letters;
    pub mod moto;
}

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::QueueAttributeName;
use support::moto;
use txp_connectors::queue::{Delivery, Depth, Queue, QueueSettings, SqsQueue};

fn settings(delivery_limit: u32, visibility_timeout: Duration) -> QueueSettings {
    // The name in the URL wins over this one.
    QueueSettings { name: "ignored".to_owned(), delivery_limit, visibility_timeout }
}

async fn queue(moto: &moto::Moto, name: &str, settings: QueueSettings) -> SqsQueue {
    let queue = SqsQueue::connect_with(&format!("sqs://{name}"), settings, moto.options()).await.unwrap();
    queue.setup().await.unwrap();
    queue
}

/// A plain SDK client on moto, to look behind the queue's back.
fn raw(moto: &moto::Moto) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&moto.endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

async fn attributes(moto: &moto::Moto, name: &str) -> HashMap<QueueAttributeName, String> {
    let client = raw(moto);
    let url = client.get_queue_url().queue_name(name).send().await.unwrap().queue_url().unwrap().to_owned();
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    out.attributes().cloned().unwrap()
}

/// A JSON document without blanks (and with numbers unquoted), for substring checks.
fn compact(json: &str) -> String {
    json.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .replace("\"maxReceiveCount\":\"", "\"maxReceiveCount\":")
}

/// Receives until `n` deliveries have arrived (or 10 s have passed).
async fn receive_n(queue: &SqsQueue, n: usize) -> Vec<Delivery> {
    let started = Instant::now();
    let mut got = Vec::new();
    while got.len() < n && started.elapsed() < Duration::from_secs(10) {
        got.extend(queue.receive(n - got.len(), Duration::from_secs(1)).await.unwrap());
    }
    got
}

/// Polls the depth until `check` holds.
async fn eventually(queue: &SqsQueue, check: impl Fn(&Depth) -> bool) {
    let started = Instant::now();
    loop {
        let depth = queue.depth().await.unwrap();
        if check(&depth) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "depth stayed at {depth:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_is_idempotent_and_updates_attributes() {
    let moto = moto::start();
    let queue = queue(&moto, "txp-setup", settings(5, Duration::from_secs(30))).await;
    queue.setup().await.unwrap();
    assert_eq!(queue.depth().await.unwrap(), Depth::default());
    assert_eq!(queue.backend(), "sqs");
    let main = attributes(&moto, "txp-setup").await;
    assert_eq!(main[&QueueAttributeName::VisibilityTimeout], "30");
    let dlq_arn = attributes(&moto, "txp-setup-dlq").await[&QueueAttributeName::QueueArn].clone();
    let policy = compact(&main[&QueueAttributeName::RedrivePolicy]);
    assert!(policy.contains(&format!("\"deadLetterTargetArn\":\"{dlq_arn}\"")), "{policy}");
    assert!(policy.contains("\"maxReceiveCount\":5"), "{policy}");

    // New settings on an existing queue: setup brings the queue's attributes in line.
    let changed = self::queue(&moto, "txp-setup", settings(3, Duration::from_secs(7))).await;
    changed.setup().await.unwrap();
    let main = attributes(&moto, "txp-setup").await;
    assert_eq!(main[&QueueAttributeName::VisibilityTimeout], "7");
    let policy = compact(&main[&QueueAttributeName::RedrivePolicy]);
    assert!(policy.contains("\"maxReceiveCount\":3"), "{policy}");
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_receive_ack() {
    let moto = moto::start();
    let queue = queue(&moto, "txp-basic", settings(5, Duration::from_secs(30))).await;
    let bodies: Vec<Vec<u8>> = (0..13).map(|i| format!("{{\"chunk\":{i}}}").into_bytes()).collect();
    for body in &bodies {
        queue.publish(body).await.unwrap();
    }
    eventually(&queue, |d| d.ready == 13).await;
    let first = queue.receive(50, Duration::from_secs(1)).await.unwrap();
    assert!(!first.is_empty() && first.len() <= 10, "at most 10 a receive: {}", first.len());
    let mut got = first;
    got.extend(receive_n(&queue, 13 - got.len()).await);
    let mut received: Vec<Vec<u8>> = got.iter().map(|d| d.body.clone()).collect();
    received.sort();
    let mut expected = bodies.clone();
    expected.sort();
    assert_eq!(received, expected);
    assert!(got.iter().all(|d| d.attempt == 1), "{got:?}");
    eventually(&queue, |d| d.ready == 0 && d.in_flight == 13).await;
    for delivery in &got {
        queue.ack(delivery).await.unwrap();
    }
    assert!(queue.receive(10, Duration::ZERO).await.unwrap().is_empty());
    eventually(&queue, |d| *d == Depth::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_lease_counts_as_an_attempt() {
    let moto = moto::start();
    let queue = queue(&moto, "txp-attempts", settings(5, Duration::from_secs(1))).await;
    queue.publish(b"{}").await.unwrap();
    assert_eq!(receive_n(&queue, 1).await[0].attempt, 1);
    // Not acked: visible again after the 1 s visibility timeout.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let again = receive_n(&queue, 1).await;
    assert_eq!(again[0].attempt, 2);
    queue.ack(&again[0]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn release_makes_it_visible_at_once() {
    let moto = moto::start();
    let queue = queue(&moto, "txp-release", settings(5, Duration::from_secs(30))).await;
    queue.publish(b"{\"n\":1}").await.unwrap();
    let first = receive_n(&queue, 1).await;
    queue.release(&first[0]).await.unwrap();
    let second = queue.receive(1, Duration::ZERO).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].body, b"{\"n\":1}");
    assert_eq!(second[0].attempt, 2);
    queue.ack(&second[0]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn extend_lease_keeps_it_invisible() {
    let moto = moto::start();
    let queue = queue(&moto, "txp-lease", settings(5, Duration::from_secs(1))).await;
    queue.publish(b"{}").await.unwrap();
    let got = receive_n(&queue, 1).await;
    queue.extend_lease(&got[0], Duration::from_secs(10)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(queue.receive(1, Duration::ZERO).await.unwrap().is_empty());
    queue.ack(&got[0]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn redrive_to_the_dlq_after_delivery_limit_receives() {
    let moto = moto::start();
    let queue = queue(&moto, "txp-redrive", settings(2, Duration::from_secs(1))).await;
    queue.publish(b"{\"poison\":true}").await.unwrap();
    let mut attempts = Vec::new();
    for _ in 0..2 {
        let got = receive_n(&queue, 1).await;
        assert_eq!(got.len(), 1, "after attempts {attempts:?}");
        attempts.push(got[0].attempt);
        queue.release(&got[0]).await.unwrap();
    }
    assert_eq!(attempts, [1, 2]);
    // The next receive finds the count reached and moves the message instead.
    assert!(queue.receive(1, Duration::from_secs(1)).await.unwrap().is_empty());
    eventually(&queue, |d| d.ready == 0 && d.dead == 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letter_moves_with_attributes() {
    let moto = moto::start();
    let queue = queue(&moto, "txp-dead", settings(5, Duration::from_secs(30))).await;
    queue.publish(b"{\"bad\":1}").await.unwrap();
    let got = receive_n(&queue, 1).await;
    queue.dead_letter(&got[0], "schema mismatch").await.unwrap();
    eventually(&queue, |d| d.ready == 0 && d.in_flight == 0 && d.dead == 1).await;

    let client = raw(&moto);
    let url = client
        .get_queue_url()
        .queue_name("txp-dead-dlq")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let out = client.receive_message().queue_url(url).message_attribute_names("All").send().await.unwrap();
    let message = &out.messages()[0];
    assert_eq!(message.body(), Some("{\"bad\":1}"));
    let attributes = message.message_attributes().unwrap();
    let text = |key: &str| attributes[key].string_value().unwrap().to_owned();
    assert_eq!(text("txp-reason"), "schema mismatch");
    assert_eq!(text("txp-attempts"), "1");
    assert_eq!(text("txp-from"), "txp-dead");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_256_kib_is_refused() {
    let moto = moto::start();
    let queue = queue(&moto, "txp-big", settings(5, Duration::from_secs(30))).await;
    let body = vec![b'x'; 300 * 1024];
    let error = queue.publish(&body).await.unwrap_err();
    assert!(!error.is_transient());
    assert!(error.to_string().contains("256 KiB"), "{error}");
    assert!(error.to_string().contains("txp-big"), "{error}");
    assert_eq!(queue.depth().await.unwrap(), Depth::default());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_url_is_used_as_is() {
    let moto = moto::start();
    let by_name = queue(&moto, "txp-by-url", settings(5, Duration::from_secs(30))).await;
    let url = raw(&moto)
        .get_queue_url()
        .queue_name("txp-by-url")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    // No endpoint option: the URL's own host is the endpoint.
    let options = txp_connectors::queue::SqsOptions { endpoint_url: None, ..moto.options() };
    let by_url = SqsQueue::connect_with(&url, settings(5, Duration::from_secs(30)), options).await.unwrap();
    by_url.setup().await.unwrap();
    by_url.publish(b"{\"via\":\"url\"}").await.unwrap();
    let got = receive_n(&by_name, 1).await;
    assert_eq!(got[0].body, b"{\"via\":\"url\"}");
    by_url.ack(&got[0]).await.unwrap();
    assert_eq!(by_url.depth().await.unwrap(), Depth::default());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_queue_is_a_permanent_error_naming_it() {
    let moto = moto::start();
    let queue =
        SqsQueue::connect_with("sqs://txp-nowhere", settings(5, Duration::from_secs(30)), moto.options())
            .await
            .unwrap();
    let error = queue.publish(b"{}").await.unwrap_err();
    assert!(!error.is_transient(), "{error}");
    assert!(error.to_string().contains("txp-nowhere"), "{error}");
    assert!(error.hint().unwrap().contains("setup"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_received_released_and_acked() {
    let moto = moto::start();
    let visibility = Duration::from_secs(1);
    let queue = queue(&moto, "txp-replay", settings(5, visibility)).await;
    support::dead_letters::dead_letter_contract(&queue, Some(visibility)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_moved_by_the_redrive_policy_says_so() {
    let moto = moto::start();
    let queue = queue(&moto, "txp-redriven", settings(1, Duration::from_secs(1))).await;
    queue.publish(b"{}").await.unwrap();
    let got = receive_n(&queue, 1).await;
    queue.release(&got[0]).await.unwrap();
    assert!(queue.receive(1, Duration::from_secs(1)).await.unwrap().is_empty());
    let dead = queue.receive_dead(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].reason.as_str(), dead[0].attempts),
        ("delivery limit 1 reached (moved by the SQS redrive policy)", 1)
    );
}

/// A process whose queues exist (made by `txp queue setup`) looks them up and never creates
/// them: its IAM role needs no `sqs:CreateQueue` (docs/deploy.md, "IAM").
#[tokio::test]
async fn setup_of_existing_queues_looks_them_up_and_creates_nothing() {
    let moto = moto::start();
    let first = queue(&moto, "txp-existing", settings(5, Duration::from_secs(30))).await;
    drop(first);
    moto.record(true);
    let again = queue(&moto, "txp-existing", settings(5, Duration::from_secs(30))).await;
    again.publish(b"{}").await.unwrap();
    moto.record(false);
    let actions = moto.recorded_sqs_actions();
    assert!(actions.iter().any(|a| a == "GetQueueUrl"), "{actions:?}");
    assert!(actions.iter().any(|a| a == "SendMessage"), "{actions:?}");
    assert!(!actions.iter().any(|a| a == "CreateQueue" || a == "SetQueueAttributes"), "{actions:?}");
}
