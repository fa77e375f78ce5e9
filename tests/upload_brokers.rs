//! `txp upload` on RabbitMQ and on SQS (moto): exactly one message per chunk, matching its
//! object's SHA-256, and a finished upload re-run adds no message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;
mod support {
    pub mod moto;
}

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use txp_connectors::queue::{AmqpQueue, Queue, QueueSettings, SqsQueue};
use txp_core::message::ChunkMessage;

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

fn settings(name: &str) -> QueueSettings {
    QueueSettings { name: name.to_owned(), delivery_limit: 5, visibility_timeout: Duration::from_secs(30) }
}

/// Receives everything waiting, acks it, and returns the decoded messages.
async fn drain(queue: &dyn Queue) -> Vec<ChunkMessage> {
    let mut out = Vec::new();
    loop {
        let batch = queue.receive(10, Duration::from_secs(2)).await.unwrap();
        if batch.is_empty() {
            return out;
        }
        for d in batch {
            out.push(ChunkMessage::decode(&d.body).unwrap());
            queue.ack(&d).await.unwrap();
        }
    }
}

/// Checks one message per chunk, each matching the stored part file.
fn check_one_per_chunk(messages: &[ChunkMessage], dir: &Path, chunks: u64) {
    let mut by_chunk: BTreeMap<u64, &ChunkMessage> = BTreeMap::new();
    for m in messages {
        assert!(by_chunk.insert(m.chunk, m).is_none(), "chunk {} announced twice", m.chunk);
        let bytes = std::fs::read(dir.join("input").join(&m.objects[0])).unwrap();
        assert_eq!(txp_uploader::upload::sha256_hex(&bytes), m.sha256);
    }
    assert_eq!(by_chunk.keys().copied().collect::<Vec<_>>(), (0..chunks).collect::<Vec<_>>());
}

fn upload(dir: &Path, source: &Path, queue: &str, name: &str, env: &[(&str, String)]) -> String {
    let mut cmd = txp(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    stdout(
        cmd.args(["upload", "--source", source.to_str().unwrap(), "--to", "input", "--interval", "0"])
            .args(["--chunk-rows", "300", "--queue", queue, "--set", &format!("queue.name={name}")])
            .args(["--database", &format!("sqlite://{}", dir.join("txp.db").display())]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_on_rabbitmq_one_message_per_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _) = dataset(dir.path(), 1_000, 6);
    let name = unique("txp-upload");
    let out = upload(dir.path(), &tx, AMQP, &name, &[]);
    assert!(out.contains("4 published") && out.contains("via rabbitmq"), "{out}");
    let queue = AmqpQueue::connect(AMQP, settings(&name)).await.unwrap();
    let messages = drain(&queue).await;
    check_one_per_chunk(&messages, dir.path(), 4);
    let again = upload(dir.path(), &tx, AMQP, &name, &[]);
    assert!(again.contains("0 published, 0 announced again, 4 already done"), "{again}");
    assert!(drain(&queue).await.is_empty());
    delete_amqp_queues(&name).await;
}

async fn delete_amqp_queues(name: &str) {
    let conn = lapin::Connection::connect(AMQP, lapin::ConnectionProperties::default()).await.unwrap();
    let channel = conn.create_channel().await.unwrap();
    for queue in [name.to_owned(), format!("{name}-dlq")] {
        let _ =
            channel.queue_delete(queue.as_str().into(), lapin::options::QueueDeleteOptions::default()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_on_sqs_one_message_per_chunk() {
    let moto = support::moto::start();
    let dir = tempfile::tempdir().unwrap();
    let (tx, _) = dataset(dir.path(), 1_000, 7);
    let env = [
        ("AWS_ENDPOINT_URL_SQS", moto.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ];
    let out = upload(dir.path(), &tx, "sqs://txp-chunks", "txp-chunks", &env);
    assert!(out.contains("4 published") && out.contains("via sqs"), "{out}");
    let queue =
        SqsQueue::connect_with("sqs://txp-chunks", settings("txp-chunks"), moto.options()).await.unwrap();
    let messages = drain(&queue).await;
    check_one_per_chunk(&messages, dir.path(), 4);
    let again = upload(dir.path(), &tx, "sqs://txp-chunks", "txp-chunks", &env);
    assert!(again.contains("0 published, 0 announced again, 4 already done"), "{again}");
    assert!(drain(&queue).await.is_empty());
}
