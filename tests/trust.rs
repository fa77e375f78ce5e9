//! Trust boundaries (docs/operations.md, "Trust boundaries"): a queue message is not trusted
//! beyond what its stream's registry allows. On each backend (embedded, RabbitMQ, SQS), forged
//! and tampered messages (another store, another prefix, keys outside the chunk's folder, a
//! chunk index that does not match its keys, chunks no upload stored, a tampered SHA-256) are
//! dead-lettered at their first delivery with their reason, while the genuine ones commit; and
//! Linux's inotify shows that no file outside the stream's registered input and quarantine was
//! opened, read or written. Rejected rows go to the quarantine recorded at upload.
//!
//! And commands find their stream: `txp run` with no `--stream` uses the only one, exits 2
//! naming them when there are several, and a detector started before any upload waits, saying
//! so once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;
mod support {
    pub mod moto;
}

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use inotify::{Inotify, WatchMask};
use txp_connectors::queue::{AmqpQueue, DbQueue, Queue, QueueSettings, SqsQueue};
use txp_core::message::ChunkMessage;

const ROWS: u64 = 3_000;
const CHUNK_ROWS: &str = "1000";
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// Copies a folder tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every folder of a tree, the root included.
fn folders(root: &Path) -> Vec<PathBuf> {
    let mut found = vec![root.to_path_buf()];
    for entry in std::fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            found.extend(folders(&entry.path()));
        }
    }
    found
}

/// Watches every folder of some trees for any access (open, read, write, create, delete,
/// attribute change, listing): what a test then requires to be none at all.
struct AccessWatch {
    inotify: Inotify,
    watched: Vec<PathBuf>,
}

impl AccessWatch {
    fn on(roots: &[&Path]) -> Self {
        let inotify = Inotify::init().unwrap();
        let mut watched = Vec::new();
        for root in roots {
            for folder in folders(root) {
                inotify.watches().add(&folder, WatchMask::ALL_EVENTS).unwrap();
                watched.push(folder);
            }
        }
        Self { inotify, watched }
    }

    /// The events seen so far, as "FOLDER/NAME MASK" lines.
    fn events(&mut self) -> Vec<String> {
        let mut buffer = [0u8; 8192];
        let mut seen = Vec::new();
        loop {
            match self.inotify.read_events(&mut buffer) {
                Ok(events) => {
                    let mut any = false;
                    for event in events {
                        any = true;
                        seen.push(format!("{:?} {:?}", event.name, event.mask));
                    }
                    if !any {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("inotify: {e}"),
            }
        }
        seen
    }
}

/// Where the test's chunks and messages are, and the backend's queues.
struct Backend {
    /// `queue.url`.
    url: String,
    env: Vec<(String, String)>,
    _moto: Option<support::moto::Moto>,
}

impl Backend {
    fn embedded() -> Self {
        Self { url: "db".to_owned(), env: Vec::new(), _moto: None }
    }

    fn rabbitmq() -> Self {
        Self { url: AMQP.to_owned(), env: Vec::new(), _moto: None }
    }

    fn sqs() -> Self {
        let moto = support::moto::start();
        let env = vec![
            ("AWS_ENDPOINT_URL_SQS".to_owned(), moto.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".to_owned(), "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "testing".to_owned()),
            ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
        ];
        Self { url: "sqs://txp-trust".to_owned(), env, _moto: Some(moto) }
    }

    /// The queue named `name` of this backend, declared (with its dead-letter queue).
    async fn queue(&self, name: &str, db: &sea_orm::DatabaseConnection) -> Arc<dyn Queue> {
        let settings = QueueSettings {
            name: name.to_owned(),
            // txp's default, which the commands declare the queues with.
            delivery_limit: 5,
            visibility_timeout: Duration::from_secs(30),
        };
        let queue: Arc<dyn Queue> = match self.url.as_str() {
            "db" => Arc::new(DbQueue::new(db.clone(), settings)),
            AMQP => Arc::new(AmqpQueue::connect(AMQP, settings).await.unwrap()),
            _ => {
                let moto = self._moto.as_ref().unwrap();
                Arc::new(
                    SqsQueue::connect_with(&format!("sqs://{name}"), settings, moto.options()).await.unwrap(),
                )
            }
        };
        queue.setup().await.unwrap();
        queue
    }
}

/// Deletes RabbitMQ queues when dropped, even when the test fails.
struct AmqpCleanup(Vec<String>);

impl Drop for AmqpCleanup {
    fn drop(&mut self) {
        let queues = std::mem::take(&mut self.0);
        let _ = std::thread::spawn(move || {
            runtime().block_on(async {
                let Ok(connection) =
                    lapin::Connection::connect(AMQP, lapin::ConnectionProperties::default()).await
                else {
                    return;
                };
                for queue in queues {
                    if let Ok(channel) = connection.create_channel().await {
                        let _ = channel
                            .queue_delete(
                                queue.as_str().into(),
                                lapin::options::QueueDeleteOptions::default(),
                            )
                            .await;
                    }
                }
            });
        })
        .join();
    }
}

/// `txp ARGS` of the test: its folder, the backend's queue and environment, SQLite.
fn txp_in(
    dir: &Path,
    backend: &Backend,
    queue_name: &str,
    database: &str,
    args: &[&str],
) -> assert_cmd::Command {
    // An SQS URL names its queue; the other backends take `queue.name`.
    let url =
        if backend.url.starts_with("sqs://") { format!("sqs://{queue_name}") } else { backend.url.clone() };
    let mut cmd = txp(dir);
    cmd.args(["--preset", "seed", "--set", &format!("queue.url={url}")])
        .args(["--set", &format!("queue.name={queue_name}")])
        .args(args)
        .args(["--database", database])
        .envs(backend.env.iter().map(|(k, v)| (k, v)))
        .timeout(Duration::from_secs(300));
    cmd
}

/// `txp upload` of `source` into `input`, unpaced, its messages on the queue `queue_name`.
fn upload_to(
    dir: &Path,
    backend: &Backend,
    queue_name: &str,
    database: &str,
    source: &Path,
    input: &Path,
    extra: &[&str],
) {
    let mut args = vec!["upload", "--source", source.to_str().unwrap(), "--to", input.to_str().unwrap()];
    args.extend(["--interval", "0", "--chunk-rows", CHUNK_ROWS]);
    args.extend(extra);
    txp_in(dir, backend, queue_name, database, &args).assert().success();
}

fn body(message: &ChunkMessage) -> Vec<u8> {
    message.encode()
}

/// The forged messages, each with the text its dead letter's reason must hold.
fn forgeries(genuine: &[ChunkMessage], dir: &Path) -> Vec<(Vec<u8>, &'static str)> {
    let [m0, m1, m2] = [&genuine[0], &genuine[1], &genuine[2]];
    let url = |folder: &str| format!("file://{}", dir.join(folder).display());
    let huge = 1u64 << 63;
    let negative = String::from_utf8(body(m0)).unwrap().replace("\"chunk\":0", "\"chunk\":-1");
    let mut tampered = m2.clone();
    tampered.sha256 = format!("00{}", &m2.sha256[2..]);
    vec![
        // Another store: a full copy of the input, which would commit if it were read.
        (body(&ChunkMessage { store: url("decoy"), ..m0.clone() }), "store mismatch"),
        // Another prefix beside the registered one.
        (body(&ChunkMessage { store: url("input-other"), ..m1.clone() }), "store mismatch"),
        // A key that climbs out of the chunk's folder.
        (
            body(&ChunkMessage {
                objects: vec!["chunk_0.csv/../../outside/chunk_0.csv/part-00000.csv".into()],
                ..m0.clone()
            }),
            "is not a part file of chunk 0",
        ),
        // Another chunk's part file under chunk 0's index.
        (body(&ChunkMessage { objects: m1.objects.clone(), ..m0.clone() }), "is not a part file of chunk 0"),
        // A chunk index that does not match its keys.
        (body(&ChunkMessage { chunk: 2, ..m0.clone() }), "not the layout's key for chunk 2"),
        // A chunk no upload stored, with keys that match it.
        (
            body(&ChunkMessage {
                chunk: 7,
                objects: vec!["chunk_7.csv/part-00000.csv".into()],
                success: "chunk_7.csv/_SUCCESS".into(),
                ..m0.clone()
            }),
            "chunk 7 of stream `default` is not in the upload ledger",
        ),
        // An index the ledger cannot record.
        (
            body(&ChunkMessage {
                chunk: huge,
                objects: vec![format!("chunk_{huge}.csv/part-00000.csv")],
                success: format!("chunk_{huge}.csv/_SUCCESS"),
                ..m0.clone()
            }),
            "beyond what the ledger can record",
        ),
        // A negative index.
        (negative.into_bytes(), "not a chunk message: invalid value: integer `-1`"),
        // A tampered digest.
        (body(&tampered), "sha256 mismatch: the message announces 00"),
    ]
}

/// `txp detect --until-idle` (no `--stream`: the database's only one) into DIR/output, which
/// `txp verify` must then find exact.
fn detect_and_verify(
    dir: &Path,
    backend: &Backend,
    queue_name: &str,
    database: &str,
    source: &Path,
    importance: &Path,
) {
    let output = dir.join("output");
    let detect = [
        "detect",
        "--until-idle",
        "--output",
        output.to_str().unwrap(),
        "--importance",
        importance.to_str().unwrap(),
    ];
    stdout(&mut txp_in(dir, backend, queue_name, database, &detect));
    assert_seed_output_verified(dir, source, 1000, importance, &output);
}

/// Uploads a stream to a staging queue, publishes forged messages and the genuine ones to the
/// main queue, consumes, and checks dead letters, commits, file accesses and the quarantine;
/// then detects with no `--stream` and verifies the output.
fn forged_messages_are_dead_lettered_and_nothing_outside_is_touched(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (source, importance) = dataset(&root, ROWS, 5);
    // One bad row in chunk 0: its quarantine file shows where rejected rows go.
    let text = std::fs::read_to_string(&source).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[10] = lines[10].rsplit_once(',').map(|(a, _)| a.to_owned()).unwrap();
    std::fs::write(&source, lines.join("\n") + "\n").unwrap();

    let database = format!("sqlite://{}", root.join("txp.db").display());
    let (staging, main) = (unique("txp-trust-staging"), unique("txp-trust"));
    let _cleanup = (backend.url == AMQP).then(|| {
        AmqpCleanup(vec![staging.clone(), format!("{staging}-dlq"), main.clone(), format!("{main}-dlq")])
    });
    let input = root.join("input");
    let quarantine = root.join("q-registered");
    let quarantine = ["--quarantine", quarantine.to_str().unwrap()];
    upload_to(&root, backend, &staging, &database, &source, &input, &quarantine);

    // Decoys: full copies of the input elsewhere, and a folder a key could climb to.
    copy_tree(&input, &root.join("decoy"));
    copy_tree(&input, &root.join("input-other"));
    copy_tree(&input.join("chunk_0.csv"), &root.join("outside/chunk_0.csv"));
    let before: BTreeSet<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();

    let rt = runtime();
    let db = rt.block_on(txp_connectors::database::connect(&database)).unwrap();
    let genuine = recorded_messages(&rt, &db);
    assert_eq!(genuine.len(), 3);
    let forged = forgeries(&genuine, &root);
    let queue = rt.block_on(backend.queue(&main, &db));
    rt.block_on(async {
        for (body, _) in &forged {
            queue.publish(body).await.unwrap();
        }
        for message in &genuine {
            queue.publish(&body(message)).await.unwrap();
        }
    });

    let mut watch = AccessWatch::on(&[&root.join("decoy"), &root.join("input-other"), &root.join("outside")]);
    assert!(watch.watched.len() >= 9, "{:?}", watch.watched);
    let consumed = stdout(&mut txp_in(&root, backend, &main, &database, &["consume", "--until-idle"]));
    assert!(
        consumed.contains(&format!(
            "consumed    3 committed, 0 duplicates acked, {} dead-lettered",
            forged.len()
        )),
        "{consumed}"
    );

    // Each forged message dead-lettered at its first delivery, with its own reason.
    let dead = rt.block_on(async {
        let mut dead = Vec::new();
        let started = Instant::now();
        while dead.len() < forged.len() && started.elapsed() < Duration::from_secs(30) {
            for letter in queue.receive_dead(10).await.unwrap() {
                dead.push(letter);
            }
        }
        for letter in &dead {
            queue.release_dead(letter).await.unwrap();
        }
        dead
    });
    assert_eq!(dead.len(), forged.len(), "{:?}", dead.iter().map(|d| &d.reason).collect::<Vec<_>>());
    for (body, expected) in &forged {
        let letter = dead.iter().find(|d| &d.delivery.body == body).unwrap_or_else(|| {
            panic!("not dead-lettered: {}", String::from_utf8_lossy(body));
        });
        assert!(letter.reason.contains(expected), "expected `{expected}` in `{}`", letter.reason);
        assert_eq!(letter.attempts, 1, "{}", letter.reason);
    }

    // Nothing outside the registered input and quarantine was opened, listed or written.
    let events = watch.events();
    assert!(events.is_empty(), "the consumers touched files outside the stream's input: {events:?}");
    let after: BTreeSet<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
    // SQLite's own files (-wal, -shm) come and go beside the database.
    let new: Vec<_> =
        after.difference(&before).filter(|n| !n.to_string_lossy().starts_with("txp.db")).collect();
    assert_eq!(new, vec![std::ffi::OsStr::new("q-registered")], "new folders beside the input");
    let quarantined = std::fs::read_to_string(root.join("q-registered/chunk_0.csv")).unwrap();
    assert!(quarantined.lines().count() == 2 && quarantined.contains("expected 10 fields"), "{quarantined}");

    // Replay keeps to the same rules: the forged chunk messages stay where they are.
    let listed = stdout(&mut txp_in(&root, backend, &main, &database, &["replay", "--dry-run"]));
    let decodable = forged.len() - 1;
    assert!(
        listed.contains(&format!(
            "dry run: 1 would be replayed, 0 left by the loop guard, {decodable} not allowed"
        )),
        "{listed}"
    );
    assert!(listed.contains("its stream's registry does not allow it: store mismatch"), "{listed}");

    // The detector finds the only stream by itself; the output is exact.
    detect_and_verify(&root, backend, &main, &database, &source, &importance);
}

#[test]
fn embedded_queue_dead_letters_forged_messages_and_reads_nothing_outside_the_registry() {
    forged_messages_are_dead_lettered_and_nothing_outside_is_touched(&Backend::embedded());
}

#[test]
fn rabbitmq_dead_letters_forged_messages_and_reads_nothing_outside_the_registry() {
    forged_messages_are_dead_lettered_and_nothing_outside_is_touched(&Backend::rabbitmq());
}

#[test]
fn sqs_dead_letters_forged_messages_and_reads_nothing_outside_the_registry() {
    forged_messages_are_dead_lettered_and_nothing_outside_is_touched(&Backend::sqs());
}

/// A background `txp` with its stderr in a file (read while it runs).
fn spawn(dir: &Path, database: &str, args: &[&str], log: &Path) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_txp"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TXP_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(dir)
        .env("TXP_METRICS_ADDR", "off")
        .args(["--quiet", "--preset", "seed"])
        .args(args)
        .args(["--database", database])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    cmd.spawn().unwrap()
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn commands_find_the_only_stream_refuse_to_guess_among_several_and_wait_for_a_first_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (source, importance) = dataset(root, ROWS, 8);
    let detect_args = |output: &str| {
        vec![
            "--output".to_owned(),
            root.join(output).display().to_string(),
            "--importance".to_owned(),
            importance.display().to_string(),
        ]
    };
    let txp_db = |database: &str, args: &[&str]| {
        let mut cmd = txp(root);
        cmd.args(["--preset", "seed"])
            .args(args)
            .args(["--database", database])
            .timeout(Duration::from_secs(300));
        cmd
    };
    let upload = |database: &str, stream: &str, input: &str| {
        txp_db(
            database,
            &["upload", "--source", source.to_str().unwrap(), "--to", input, "--stream", stream],
        )
        .args(["--interval", "0", "--chunk-rows", CHUNK_ROWS])
        .assert()
        .success();
    };

    // A detector started before any upload waits, says so once, then finds the stream that
    // appears and detects it.
    let early_db = format!("sqlite://{}", root.join("early.db").display());
    std::fs::create_dir_all(root.join("logs")).unwrap();
    let log = root.join("logs/detect.log");
    let mut args = vec!["detect".to_owned(), "--until-idle".to_owned()];
    args.extend(detect_args("output-early"));
    let mut early = spawn(root, &early_db, &args.iter().map(String::as_str).collect::<Vec<_>>(), &log);
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the waiting message", Duration::from_secs(60), || {
        read_log().contains("no stream in this database yet")
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(read_log().matches("no stream in this database yet").count(), 1, "{}", read_log());
    upload(&early_db, "late", "input-late");
    stdout(&mut txp_db(&early_db, &["consume", "--until-idle"]));
    wait_for("the early detector", Duration::from_secs(120), || early.try_wait().unwrap().is_some());
    assert!(early.wait().unwrap().success(), "{}", read_log());
    assert_seed_output_verified(root, &source, 1000, &importance, &root.join("output-early"));

    // One stream: `run` with no --stream consumes and detects it.
    let database = format!("sqlite://{}", root.join("txp.db").display());
    let txp_db = |args: &[&str]| txp_db(&database, args);
    let upload = |stream: &str, input: &str| upload(&database, stream, input);
    upload("s1", "input-s1");
    let mut run = vec!["run", "--until-idle"];
    let run_detect = detect_args("output-s1");
    run.extend(run_detect.iter().map(String::as_str));
    stdout(&mut txp_db(&run));
    assert_seed_output_verified(root, &source, 1000, &importance, &root.join("output-s1"));

    // Two streams: commands that need one exit 2 naming both.
    upload("s2", "input-s2");
    for args in [run.clone(), vec!["skip", "--chunk", "0", "--reason", "x"], vec!["reconcile", "--dry-run"]] {
        let out = txp_db(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("this database holds 2 streams (s1, s2): name one with --stream"),
            "{stderr}"
        );
    }
    // Named, it works; named but not uploaded yet, the detector says which streams exist.
    let mut s2 = vec!["run", "--until-idle", "--stream", "s2"];
    let s2_detect = detect_args("output-s2");
    s2.extend(s2_detect.iter().map(String::as_str));
    stdout(&mut txp_db(&s2));
    let log = root.join("logs/named.log");
    let mut args = vec!["detect".to_owned(), "--stream".to_owned(), "s3".to_owned()];
    args.extend(detect_args("output-s3"));
    let mut waiting = spawn(root, &database, &args.iter().map(String::as_str).collect::<Vec<_>>(), &log);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the named stream's message", Duration::from_secs(60), || {
        read().contains("stream `s3` has no upload yet; waiting for it (streams in this database: s1, s2)")
    });
    waiting.kill().unwrap();
    let _ = waiting.wait();
}

/// A stored part file changed after its upload is caught by its digest (dead-lettered, `the
/// stored chunk has …`) and recovers once restored (`txp replay`); a message announcing other
/// content for a committed chunk is a conflict. Embedded queue, one worker (chunk order).
#[test]
fn a_chunk_changed_in_the_store_is_refused_then_replayed_and_other_content_conflicts() {
    let backend = Backend::embedded();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (source, importance) = dataset(&root, ROWS, 6);
    let database = format!("sqlite://{}", root.join("txp.db").display());
    let input = root.join("input");
    upload_to(&root, &backend, "staging", &database, &source, &input, &[]);
    let rt = runtime();
    let db = rt.block_on(txp_connectors::database::connect(&database)).unwrap();
    let genuine = recorded_messages(&rt, &db);

    // Chunk 1's part file is changed in the store after its upload.
    let part = input.join("chunk_1.csv/part-00000.csv");
    let original = std::fs::read(&part).unwrap();
    let text = String::from_utf8(original.clone()).unwrap();
    let changed = text.replacen("'es_transportation'", "'es_health'", 1);
    assert_ne!(changed, text);
    std::fs::write(&part, changed).unwrap();
    // And a message that announces other content for chunk 0, after chunk 0's own.
    let other = ChunkMessage { sha256: genuine[2].sha256.clone(), ..genuine[0].clone() };
    let queue = rt.block_on(backend.queue("main", &db));
    rt.block_on(async {
        for message in [&genuine[0], &other, &genuine[1], &genuine[2]] {
            queue.publish(&body(message)).await.unwrap();
        }
    });
    let consume = ["consume", "--until-idle", "--workers", "1"];
    let consumed = stdout(&mut txp_in(&root, &backend, "main", &database, &consume));
    assert!(consumed.contains("consumed    2 committed, 0 duplicates acked, 2 dead-lettered"), "{consumed}");
    let reasons: Vec<String> = rt.block_on(async {
        let dead = queue.receive_dead(10).await.unwrap();
        for letter in &dead {
            queue.release_dead(letter).await.unwrap();
        }
        dead.into_iter().map(|d| d.reason).collect()
    });
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("sha256 mismatch: the message announced")
                && r.contains("the stored chunk has")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("conflicting content: chunk 0 of stream `default` was committed")),
        "{reasons:?}"
    );

    // Restored, the chunk is replayed and committed; the conflicting message stays.
    std::fs::write(&part, original).unwrap();
    let replayed =
        stdout(&mut txp_in(&root, &backend, "main", &database, &["replay", "--reason", "stored chunk"]));
    assert!(replayed.contains("1 replayed to main"), "{replayed}");
    let consumed = stdout(&mut txp_in(&root, &backend, "main", &database, &consume));
    assert!(consumed.contains("consumed    1 committed"), "{consumed}");
    let listed = stdout(&mut txp_in(&root, &backend, "main", &database, &["replay", "--dry-run"]));
    assert!(listed.contains("0 would be replayed, 0 left by the loop guard, 1 not allowed"), "{listed}");

    detect_and_verify(&root, &backend, "main", &database, &source, &importance);
}
