//! `txp upload` (Mechanism X): chunks stored byte for byte, exactly one message per chunk, a
//! finished upload repeats nothing, crashes at every step lose and double nothing that matters,
//! pacing keeps its schedule, and errors say what to fix. On a local folder with the embedded
//! queue (SQLite), and on S3 (SeaweedFS).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;
mod support {
    pub mod seaweedfs;
}

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use common::*;
use predicates::prelude::*;
use txp_connectors::queue::{DbQueue, Queue, QueueSettings};
use txp_core::message::ChunkMessage;

fn queue_settings() -> QueueSettings {
    QueueSettings {
        name: "txp-chunks".into(),
        delivery_limit: 5,
        visibility_timeout: Duration::from_secs(60),
    }
}

/// Every message waiting in the embedded queue of the SQLite database at `db`, decoded.
fn drain(db: &Path) -> Vec<ChunkMessage> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let url = format!("sqlite://{}", db.display());
        let conn = txp_connectors::database::connect(&url).await.unwrap();
        let queue = DbQueue::new(conn, queue_settings());
        let mut out = Vec::new();
        loop {
            let batch = queue.receive(100, Duration::ZERO).await.unwrap();
            if batch.is_empty() {
                return out;
            }
            for d in batch {
                out.push(ChunkMessage::decode(&d.body).unwrap());
                queue.ack(&d).await.unwrap();
            }
        }
    })
}

fn sha256(bytes: &[u8]) -> String {
    txp_uploader::upload::sha256_hex(bytes)
}

/// Runs `txp upload` in `dir` with the embedded queue in `dir/txp.db`.
fn upload(dir: &Path, source: &Path, to: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
    txp(dir)
        .args(["upload", "--source", source.to_str().unwrap(), "--to", to, "--interval", "0"])
        .args(["--database", &format!("sqlite://{}", dir.join("txp.db").display())])
        .args(extra)
        .assert()
}

/// The source's rows, cut as the contract says: header + rows of each chunk.
fn expected_chunks(source: &Path, rows: usize) -> Vec<Vec<u8>> {
    let text = fs::read(source).unwrap();
    let mut lines = text.split_inclusive(|&b| b == b'\n');
    let header = lines.next().unwrap().to_vec();
    let rows_: Vec<&[u8]> = lines.collect();
    rows_.chunks(rows).map(|c| [header.clone(), c.concat()].concat()).collect()
}

#[test]
fn chunks_are_the_source_byte_for_byte_with_one_message_each() {
    for (total, per_chunk) in [(1_000_u64, 250_usize), (1_003, 250)] {
        let dir = tempfile::tempdir().unwrap();
        let (tx, imp) = dataset(dir.path(), total, 9);
        upload(dir.path(), &tx, "input", &["--chunk-rows", &per_chunk.to_string()])
            .success()
            .stdout(predicate::str::contains("published"));
        let expected = expected_chunks(&tx, per_chunk);
        for (i, bytes) in expected.iter().enumerate() {
            let folder = dir.path().join(format!("input/chunk_{i}.csv"));
            assert_eq!(&fs::read(folder.join("part-00000.csv")).unwrap(), bytes, "chunk {i}");
            assert!(folder.join("_SUCCESS").is_file());
        }
        assert!(!dir.path().join(format!("input/chunk_{}.csv", expected.len())).exists());
        let messages = drain(&dir.path().join("txp.db"));
        assert_eq!(messages.len(), expected.len(), "one message per chunk");
        let mut by_chunk: BTreeMap<u64, ChunkMessage> = BTreeMap::new();
        for m in messages {
            assert_eq!(m.sha256, sha256(&expected[m.chunk as usize]));
            assert_eq!(m.objects, vec![format!("chunk_{}.csv/part-00000.csv", m.chunk)]);
            assert_eq!(m.bytes, expected[m.chunk as usize].len() as u64);
            assert!(m.store.starts_with("file:///"));
            assert!(by_chunk.insert(m.chunk, m).is_none());
        }
        assert_eq!(by_chunk.values().map(|m| m.rows).sum::<u64>(), total);

        // verify --input replays the stored chunks exactly as --source cuts the file.
        let a = stdout(txp(dir.path()).args([
            "verify",
            "--input",
            "input",
            "--importance",
            imp.to_str().unwrap(),
        ]));
        let b = stdout(txp(dir.path()).args([
            "verify",
            "--source",
            tx.to_str().unwrap(),
            "--chunk-rows",
            &per_chunk.to_string(),
            "--importance",
            imp.to_str().unwrap(),
        ]));
        assert_eq!(counts(&a), counts(&b));

        // Running the finished upload again stores and publishes nothing.
        let before: Vec<_> = (0..expected.len())
            .map(|i| {
                fs::metadata(dir.path().join(format!("input/chunk_{i}.csv/part-00000.csv")))
                    .unwrap()
                    .modified()
                    .unwrap()
            })
            .collect();
        upload(dir.path(), &tx, "input", &["--chunk-rows", &per_chunk.to_string()]).success().stdout(
            predicate::str::contains(format!(
                "0 published, 0 announced again, {} already done",
                expected.len()
            )),
        );
        let after: Vec<_> = (0..expected.len())
            .map(|i| {
                fs::metadata(dir.path().join(format!("input/chunk_{i}.csv/part-00000.csv")))
                    .unwrap()
                    .modified()
                    .unwrap()
            })
            .collect();
        assert_eq!(before, after, "no object was rewritten");
        assert!(drain(&dir.path().join("txp.db")).is_empty(), "no message was added");
    }
}

#[test]
fn a_different_source_for_the_same_stream_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _) = dataset(dir.path(), 600, 1);
    upload(dir.path(), &tx, "input", &["--chunk-rows", "200"]).success();
    let other = dir.path().join("other.csv");
    let text = fs::read_to_string(&tx).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.swap(1, 2);
    fs::write(&other, lines.join("\n") + "\n").unwrap();
    upload(dir.path(), &other, "input", &["--chunk-rows", "200"]).code(2).stderr(
        predicate::str::contains("chunk 0 of stream `default` differs")
            .and(predicate::str::contains("--stream")),
    );
    // Another chunking of the same stream is refused too; a new stream is fine.
    upload(dir.path(), &tx, "input", &["--chunk-rows", "100"])
        .code(2)
        .stderr(predicate::str::contains("200 rows per chunk"));
    upload(dir.path(), &other, "input2", &["--chunk-rows", "200", "--stream", "second"]).success();
}

#[test]
fn a_wrong_header_is_refused_before_anything_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    fs::write(&bad, "a,b,c\n1,2,3\n").unwrap();
    upload(dir.path(), &bad, "input", &[]).code(2).stderr(predicate::str::contains(
        "expected `step,customer,age,gender,zipcodeOri,merchant,zipMerchant,category,amount,fraud`",
    ));
    let stored = fs::read_dir(dir.path().join("input")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(stored, 0);
    assert!(drain(&dir.path().join("txp.db")).is_empty());
}

#[test]
fn errors_name_what_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _) = dataset(dir.path(), 100, 1);
    upload(dir.path(), &dir.path().join("absent.csv"), "input", &[])
        .code(2)
        .stderr(predicate::str::contains("absent.csv"));
    // A broker that does not answer is waited for `startup.wait`, then named (password masked).
    let to_absent_broker = |wait: &str| {
        let wait = format!("startup.wait={wait}");
        upload(dir.path(), &tx, "input", &["--queue", "amqp://guest:secret@127.0.0.1:1/%2f", "--set", &wait])
            .code(2)
            .stderr(predicate::str::contains("127.0.0.1").and(predicate::str::contains("secret").not()))
    };
    let started = std::time::Instant::now();
    to_absent_broker("2s").stderr(predicate::str::contains("transient failure, retrying"));
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "startup.wait=2s was not waited");
    // 0: one attempt, no retry.
    to_absent_broker("0").stderr(predicate::str::contains("transient failure, retrying").not());
    upload(dir.path(), &tx, "input", &["--queue", "kafka://x"])
        .code(2)
        .stderr(predicate::str::contains("not a queue URL"));
    txp(dir.path())
        .args([
            "upload",
            "--source",
            tx.to_str().unwrap(),
            "--to",
            "input",
            "--database",
            "postgres://nobody:pw@127.0.0.1:1/x",
            "--set",
            "startup.wait=0",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("127.0.0.1:1").and(predicate::str::contains("pw@").not()));
}

/// Every message in the queue names objects that are stored (with `_SUCCESS`).
fn assert_messages_point_at_stored_chunks(dir: &Path, messages: &[ChunkMessage]) {
    for m in messages {
        let root = m.store.strip_prefix("file://").unwrap();
        for object in &m.objects {
            let bytes = fs::read(Path::new(root).join(object)).unwrap();
            assert_eq!(sha256(&bytes), m.sha256);
        }
        assert!(Path::new(root).join(&m.success).is_file(), "message for chunk {} without _SUCCESS", m.chunk);
        assert!(dir.exists());
    }
}

#[test]
fn kill_9_at_every_step_then_restart_loses_and_doubles_nothing_that_matters() {
    for point in ["mid-object", "after-store", "after-confirm"] {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _) = dataset(dir.path(), 1_000, 4);
        let crashed =
            upload(dir.path(), &tx, "input", &["--chunk-rows", "200", "--crash-at", &format!("{point}:2")]);
        assert!(!crashed.get_output().status.success(), "{point}: the upload should have been killed");
        let before_restart = drain(&dir.path().join("txp.db"));
        assert_messages_point_at_stored_chunks(dir.path(), &before_restart);
        assert!(before_restart.iter().all(|m| m.chunk <= 2));

        upload(dir.path(), &tx, "input", &["--chunk-rows", "200"]).success();
        let after_restart = drain(&dir.path().join("txp.db"));
        assert_messages_point_at_stored_chunks(dir.path(), &after_restart);
        let mut announced: Vec<u64> = before_restart.iter().chain(&after_restart).map(|m| m.chunk).collect();
        announced.sort_unstable();
        let distinct: std::collections::BTreeSet<u64> = announced.iter().copied().collect();
        assert_eq!(distinct, (0..5).collect(), "{point}: every chunk announced at least once");
        // At most the crashed chunk is announced twice.
        assert!(announced.len() <= 6, "{point}: {announced:?}");
        let expected = expected_chunks(&tx, 200);
        for (i, bytes) in expected.iter().enumerate() {
            assert_eq!(
                &fs::read(dir.path().join(format!("input/chunk_{i}.csv/part-00000.csv"))).unwrap(),
                bytes
            );
        }
    }
}

#[test]
fn pacing_keeps_a_fixed_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _) = dataset(dir.path(), 1_000, 2);
    txp(dir.path())
        .args([
            "upload",
            "--source",
            tx.to_str().unwrap(),
            "--to",
            "input",
            "--chunk-rows",
            "100",
            "--interval",
            "200ms",
        ])
        .args(["--database", &format!("sqlite://{}", dir.join_db())])
        .assert()
        .success();
    let times = ledger_times(&dir.path().join("txp.db"));
    assert_eq!(times.len(), 10);
    let start = times[0];
    for (i, t) in times.iter().enumerate() {
        let offset = t - start;
        let due = 200 * i as i64;
        // Chunk i is stored at start + i × 200 ms, at most 150 ms late. The reference is chunk 0's
        // stored time, which lags the schedule's start by chunk 0's own store time (tens of ms on
        // a loaded machine), so "not early" allows that lag.
        assert!(
            offset >= due - 50 && offset <= due + 150,
            "chunk {i} stored at +{offset} ms, due at +{due} ms: {times:?}"
        );
    }
}

trait DbPath {
    fn join_db(&self) -> String;
}

impl DbPath for tempfile::TempDir {
    fn join_db(&self) -> String {
        self.path().join("txp.db").display().to_string()
    }
}

/// `stored_at_ms` of every ledger row, in chunk order.
fn ledger_times(db: &Path) -> Vec<i64> {
    use sea_orm::{EntityTrait, QueryOrder};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let conn = txp_connectors::database::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        txp_entity::upload_ledger::Entity::find()
            .order_by_asc(txp_entity::upload_ledger::Column::ChunkIndex)
            .all(&conn)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.stored_at_ms)
            .collect()
    })
}

#[test]
fn upload_to_s3_then_verify_from_s3() {
    let server = support::seaweedfs::SeaweedFs::start();
    server.create_bucket("txp-test");
    let dir = tempfile::tempdir().unwrap();
    let (tx, imp) = dataset(dir.path(), 2_500, 3);
    let s3 = |cmd: &mut assert_cmd::Command| {
        cmd.env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .args([
                "--set",
                &format!("s3.endpoint_url={}", server.endpoint),
                "--set",
                "s3.force_path_style=true",
            ]);
    };
    let mut cmd = txp(dir.path());
    s3(&mut cmd);
    cmd.args([
        "upload",
        "--source",
        tx.to_str().unwrap(),
        "--to",
        "s3://txp-test/streaming/input",
        "--interval",
        "0",
    ])
    .args(["--chunk-rows", "1000", "--database", &format!("sqlite://{}", dir.join_db())])
    .assert()
    .success()
    .stdout(predicate::str::contains("3 published"));
    let messages = drain(&dir.path().join("txp.db"));
    assert_eq!(messages.len(), 3);
    assert!(messages.iter().all(|m| m.store == "s3://txp-test/streaming/input"));

    let mut cmd = txp(dir.path());
    s3(&mut cmd);
    let from_s3 = stdout(cmd.args([
        "verify",
        "--input",
        "s3://txp-test/streaming/input",
        "--importance",
        imp.to_str().unwrap(),
    ]));
    assert!(from_s3.contains("3 complete chunks"), "{from_s3}");
    let from_file = stdout(txp(dir.path()).args([
        "verify",
        "--source",
        tx.to_str().unwrap(),
        "--chunk-rows",
        "1000",
        "--importance",
        imp.to_str().unwrap(),
    ]));
    assert_eq!(counts(&from_s3), counts(&from_file));

    // A missing bucket is named, with what to check.
    let mut cmd = txp(dir.path());
    s3(&mut cmd);
    cmd.args([
        "upload",
        "--source",
        tx.to_str().unwrap(),
        "--to",
        "s3://no-such-bucket/x",
        "--stream",
        "other",
    ])
    .args(["--database", &format!("sqlite://{}", dir.join_db())])
    .assert()
    .code(2)
    .stderr(predicate::str::contains("no-such-bucket"));
}

/// A store whose put of one key takes `delay` longer.
#[derive(Debug)]
struct SlowStore {
    inner: std::sync::Arc<dyn txp_connectors::store::ObjectStore>,
    slow_key: String,
    delay: Duration,
}

#[async_trait::async_trait]
impl txp_connectors::store::ObjectStore for SlowStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), txp_connectors::store::StoreError> {
        if key == self.slow_key {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.put(key, bytes).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, txp_connectors::store::StoreError> {
        self.inner.get(key).await
    }
    async fn exists(&self, key: &str) -> Result<bool, txp_connectors::store::StoreError> {
        self.inner.exists(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, txp_connectors::store::StoreError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), txp_connectors::store::StoreError> {
        self.inner.delete(key).await
    }
    async fn check(&self) -> Result<(), txp_connectors::store::StoreError> {
        self.inner.check().await
    }
    fn url(&self) -> String {
        self.inner.url()
    }
}

#[derive(Debug)]
struct NoProgress;

impl txp_uploader::upload::UploadProgress for NoProgress {
    fn chunk_done(&self, _chunk: u64, _rows: u64, _source_bytes: u64) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_store_delays_one_chunk_not_the_schedule() {
    use txp_uploader::upload::{UploadOptions, Uploader};
    let dir = tempfile::tempdir().unwrap();
    let (tx, _) = dataset(dir.path(), 1_000, 2);
    let db_url = format!("sqlite://{}", dir.path().join("txp.db").display());
    let db = txp_connectors::database::connect(&db_url).await.unwrap();
    let inner =
        txp_connectors::store::open_store(dir.path().join("input").to_str().unwrap(), &Default::default())
            .await
            .unwrap();
    let store = std::sync::Arc::new(SlowStore {
        inner,
        slow_key: "chunk_3.csv/part-00000.csv".into(),
        delay: Duration::from_millis(300),
    });
    let uploader = Uploader {
        options: UploadOptions {
            stream: "paced".into(),
            source_description: "test".into(),
            chunk_rows: std::num::NonZeroU64::new(100).unwrap(),
            interval: Duration::from_millis(200),
            quarantine: None,
            crash_at: None,
        },
        store,
        queue: std::sync::Arc::new(DbQueue::new(db.clone(), queue_settings())),
        db,
        backoff: Default::default(),
    };
    let source =
        txp_connectors::source::open_source(tx.to_str().unwrap(), &Default::default()).await.unwrap();
    let report = uploader.run(source, &NoProgress, &|| false).await.unwrap();
    assert_eq!(report.published, 10);
    use sea_orm::{EntityTrait, QueryOrder};
    let times: Vec<i64> = txp_entity::upload_ledger::Entity::find()
        .order_by_asc(txp_entity::upload_ledger::Column::ChunkIndex)
        .all(&uploader.db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.stored_at_ms)
        .collect();
    let start = times[0];
    // Chunk 3 is late by the store's delay; from chunk 5 on, every chunk is back on schedule.
    // (The reference, chunk 0's stored time, lags the schedule's start by that chunk's store time.)
    assert!(times[3] - start >= 600 + 300 - 50, "{times:?}");
    for (i, t) in times.iter().enumerate().skip(5) {
        let (offset, due) = (t - start, 200 * i as i64);
        assert!(
            offset >= due - 50 && offset <= due + 150,
            "chunk {i} at +{offset} ms, due +{due} ms: {times:?}"
        );
    }
}
