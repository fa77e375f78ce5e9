//! Reconnection: each client reaches its server through a TCP relay that the test cuts in the
//! middle of the work (every open connection shut down; for an outage, new ones refused for a
//! while). RabbitMQ (lapin does not reconnect by itself: the queue does, with backoff, and
//! declares its queues again), SQS and S3 (the SDK's retry configuration, then ours), and the
//! database (a whole `txp run` whose PostgreSQL connections are cut three times). Nothing is
//! lost: every message is received and acked, every object is there, the output verifies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod support {
    pub mod moto;
    pub mod relay;
    pub mod seaweedfs;
}

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use support::relay::Relay;
use txp_connectors::queue::{AmqpQueue, Depth, Queue, QueueError, QueueSettings, SqsQueue};
use txp_connectors::retry::{Backoff, retry};
use txp_connectors::store::{S3Settings, StoreError, open_store};

/// A name no other test or run uses.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

fn settings(name: String) -> QueueSettings {
    QueueSettings { name, delivery_limit: 10, visibility_timeout: Duration::from_secs(5) }
}

/// As the uploader and the consumers retry.
const BACKOFF: Backoff =
    Backoff { first: Duration::from_millis(100), max: Duration::from_secs(2), attempts: 20, within: None };

/// Publishes `n` numbered messages, cutting the relay's connections after `cut_after` of them
/// (`outage`: and refusing new ones that long), each publish retried as the uploader does.
async fn publish_across_a_cut(queue: &dyn Queue, relay: &Relay, n: u32, cut_after: u32, outage: Duration) {
    for i in 0..n {
        let body = i.to_string();
        if i == cut_after {
            relay.cut();
            let started = Instant::now();
            // A publish during the outage waits for it to end.
            let publishing = retry(BACKOFF, QueueError::is_transient, || queue.publish(body.as_bytes()));
            let restoring = async {
                tokio::time::sleep(outage).await;
                relay.restore();
            };
            let (published, ()) = tokio::join!(publishing, restoring);
            published.unwrap();
            assert!(started.elapsed() >= outage);
            continue;
        }
        retry(BACKOFF, QueueError::is_transient, || queue.publish(body.as_bytes())).await.unwrap();
    }
}

/// Receives and acks until every one of `0..n` was acked at least once, cutting the relay's
/// connections once in the middle (a delivery whose channel died cannot be acked: the broker
/// delivers it again). Returns how many deliveries there were.
async fn consume_across_a_cut(queue: &dyn Queue, relay: &Relay, n: u32) -> usize {
    let mut acked: BTreeSet<u32> = BTreeSet::new();
    let mut deliveries = 0;
    let mut cut = false;
    let deadline = Instant::now() + Duration::from_secs(90);
    while acked.len() < n as usize {
        assert!(Instant::now() < deadline, "acked {} of {n}", acked.len());
        let got = match queue.receive(5, Duration::from_millis(500)).await {
            Ok(got) => got,
            Err(e) if e.is_transient() => continue,
            Err(e) => panic!("{e}"),
        };
        for delivery in got {
            deliveries += 1;
            if !cut && acked.len() >= n as usize / 2 {
                relay.reset_connections();
                cut = true;
            }
            let number: u32 = std::str::from_utf8(&delivery.body).unwrap().parse().unwrap();
            match queue.ack(&delivery).await {
                Ok(()) => {
                    acked.insert(number);
                }
                Err(e) => assert!(e.is_transient(), "{e}"),
            }
        }
    }
    assert!(cut, "the connection was never cut");
    deliveries
}

/// Waits until the queue's depth is `want` (the broker's counts lag a little).
async fn settles(queue: &dyn Queue, want: Depth) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(depth) = queue.depth().await {
            if depth.ready == want.ready && depth.dead == want.dead {
                return;
            }
            assert!(Instant::now() < deadline, "depth {depth:?}, want {want:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_reconnects_with_backoff_and_loses_no_message() {
    let relay = Relay::start((Ipv4Addr::LOCALHOST, 5672).into());
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", relay.port);
    let settings = settings(unique("txp-reconnect"));
    let queue = AmqpQueue::connect(&url, settings.clone()).await.unwrap();
    queue.setup().await.unwrap();
    publish_across_a_cut(&queue, &relay, 40, 20, Duration::from_secs(2)).await;
    // The queues were declared again on the new connection, and every message is there.
    settles(&queue, Depth { ready: 40, in_flight: 0, dead: 0 }).await;
    let deliveries = consume_across_a_cut(&queue, &relay, 40).await;
    assert!(deliveries >= 40);
    settles(&queue, Depth::default()).await;
    assert!(relay.connections() >= 3, "reconnected {} times", relay.connections() - 1);
    // Clean up through the machine's broker directly.
    for name in [settings.name.clone(), settings.dlq_name()] {
        let _ = std::process::Command::new("rabbitmqctl").args(["delete_queue", &name]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_requests_are_retried_through_an_outage() {
    let moto = support::moto::start();
    let port: u16 = moto.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let relay = Relay::start((Ipv4Addr::LOCALHOST, port).into());
    let mut options = moto.options();
    options.endpoint_url = Some(relay.http_endpoint());
    let name = unique("txp-reconnect");
    let queue = SqsQueue::connect_with(&format!("sqs://{name}"), settings(name), options).await.unwrap();
    queue.setup().await.unwrap();
    publish_across_a_cut(&queue, &relay, 20, 10, Duration::from_secs(3)).await;
    settles(&queue, Depth { ready: 20, in_flight: 0, dead: 0 }).await;
    consume_across_a_cut(&queue, &relay, 20).await;
    settles(&queue, Depth::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_writes_are_retried_through_an_outage() {
    let server = support::seaweedfs::SeaweedFs::start();
    server.create_bucket("chunks");
    let relay = Relay::start((Ipv4Addr::LOCALHOST, server.s3_port).into());
    let s3 = S3Settings {
        endpoint_url: Some(relay.http_endpoint()),
        region: Some("us-east-1".to_owned()),
        force_path_style: true,
        access_key_id: Some("test-key".to_owned()),
        secret_access_key: Some("test-secret".to_owned()),
    };
    let store = open_store("s3://chunks/reconnect", &s3).await.unwrap();
    for i in 0..20u32 {
        let key = format!("part-{i:03}");
        let body = format!("object {i}").into_bytes();
        if i == 10 {
            relay.cut();
            let started = Instant::now();
            let putting = retry(BACKOFF, StoreError::is_transient, || store.put(&key, body.clone()));
            let restoring = async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                relay.restore();
            };
            let (put, ()) = tokio::join!(putting, restoring);
            put.unwrap();
            assert!(started.elapsed() >= Duration::from_secs(3));
        } else {
            retry(BACKOFF, StoreError::is_transient, || store.put(&key, body.clone())).await.unwrap();
        }
        if i == 15 {
            relay.reset_connections();
        }
    }
    let keys = store.list("").await.unwrap();
    assert_eq!(keys.len(), 20, "{keys:?}");
    for i in 0..20u32 {
        let got = store.get(&format!("part-{i:03}")).await.unwrap().unwrap();
        assert_eq!(got, format!("object {i}").into_bytes());
    }
}

#[test]
fn txp_run_finishes_and_verifies_when_its_database_connections_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let database = unique("txp_reconnect").replace('-', "_");
    let admin = |sql: &str| {
        let out = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    };
    admin(&format!("CREATE DATABASE {database}"));
    let relay = Relay::start((Ipv4Addr::LOCALHOST, 5432).into());
    let url = format!("postgres://postgres@127.0.0.1:{}/{database}", relay.port);
    let (source, importance) = dataset(dir.path(), 20_000, 3);
    let (source, importance) = (source.display().to_string(), importance.display().to_string());
    // Chunks of 1,000 rows announced one every 150 ms keep `txp run` busy for about 3 s.
    let upload = std::process::Command::new(env!("CARGO_BIN_EXE_txp"))
        .current_dir(dir.path())
        .args([
            "--quiet",
            "upload",
            "--source",
            &source,
            "--to",
            "input",
            "--chunk-rows",
            "1000",
            "--interval",
            "150ms",
        ])
        .env("DATABASE_URL", &url)
        .env("TXP_METRICS_ADDR", "off")
        .spawn()
        .unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_txp"))
        .current_dir(dir.path())
        .args([
            "--quiet",
            "run",
            "--until-idle",
            "--shards",
            "2",
            "--output",
            "output",
            "--importance",
            &importance,
        ])
        .env("DATABASE_URL", &url)
        .env("TXP_METRICS_ADDR", "off")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(900));
        relay.reset_connections();
    }
    let upload = upload.wait_with_output().unwrap();
    assert!(upload.status.success(), "the upload failed");
    // Bounded: a pipeline that lost its consumers must not hang the suite.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut run = run;
    while run.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            run.kill().unwrap();
            panic!("txp run did not finish within 120 s of its connections being cut");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let run = run.wait_with_output().unwrap();
    assert!(run.status.success(), "txp run failed:\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(relay.connections() > 3, "no connection was made again ({})", relay.connections());
    assert_output_verified(dir.path(), &source, 1000, &importance, "output");
    admin(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"));
}
