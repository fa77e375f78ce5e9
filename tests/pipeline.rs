//! Mechanism Y end to end, through the `txp` binary: upload, then consumers and detectors, then
//! `txp verify --output` must report exact agreement. Covers several consumer processes and
//! detector shards on PostgreSQL, `txp run` on SQLite, messages out of order, twice and held
//! back, `kill -9` (process abort) at each commit point, poison messages with their reasons,
//! and `txp skip`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;
mod support {
    pub mod dashboard;
    pub mod moto;
    pub mod prometheus;
    pub mod seaweedfs;
}

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait, QueryOrder, Statement};
use txp_connectors::queue::{DbQueue, Queue, QueueSettings};

const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const ROWS: u64 = 20_000;
const CHUNK_ROWS: &str = "1000";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// A fresh PostgreSQL database, dropped at the end of the test.
struct FreshDatabase {
    name: String,
    url: String,
}

impl FreshDatabase {
    fn create() -> Self {
        let name = format!(
            "t_pipe_{}_{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        );
        runtime().block_on(async {
            let admin = Database::connect(ADMIN).await.expect("PostgreSQL on 127.0.0.1:5432 (user postgres)");
            admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
        });
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        Self { name, url }
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            runtime().block_on(async {
                if let Ok(admin) = Database::connect(ADMIN).await {
                    let _ = admin
                        .execute_raw(Statement::from_string(
                            admin.get_database_backend(),
                            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                        ))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A test folder with a generated dataset, and the database URL its commands use.
struct Setup {
    dir: tempfile::TempDir,
    importance: PathBuf,
    source: PathBuf,
    database: String,
    /// Where chunks and output files go: local folders unless a test points them at S3.
    input: String,
    output: String,
    /// Global flags and environment of every command (queue, S3 endpoint, credentials).
    global: Vec<String>,
    env: Vec<(String, String)>,
    /// The threshold preset and the rows per chunk.
    preset: &'static str,
    chunk_rows: &'static str,
    _pg: Option<FreshDatabase>,
}

impl Setup {
    /// 20,000 rows in chunks of 1,000 under the seed preset (the brief's scaled-down figures).
    fn new(postgres: bool) -> Self {
        Self::with(postgres, ROWS, "seed", CHUNK_ROWS)
    }

    /// The full-size dataset (594,643 rows) in chunks of 10,000 under the banksim preset.
    fn banksim(postgres: bool) -> Self {
        Self::with(postgres, txp_core::generate::DEFAULT_ROWS, "banksim", "10000")
    }

    fn with(postgres: bool, rows: u64, preset: &'static str, chunk_rows: &'static str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (source, importance) = dataset(dir.path(), rows, 11);
        let pg = postgres.then(FreshDatabase::create);
        let database = match &pg {
            Some(pg) => pg.url.clone(),
            None => format!("sqlite://{}", dir.path().join("txp.db").display()),
        };
        let input = dir.path().join("input").display().to_string();
        let output = dir.path().join("output").display().to_string();
        Self {
            dir,
            importance,
            source,
            database,
            input,
            output,
            global: Vec::new(),
            env: Vec::new(),
            preset,
            chunk_rows,
            _pg: pg,
        }
    }

    /// Chunks and output files on this S3 server's bucket `pipe` instead of local folders.
    fn on_s3(&mut self, server: &support::seaweedfs::SeaweedFs) {
        server.create_bucket("pipe");
        self.input = "s3://pipe/streaming/input".to_owned();
        self.output = "s3://pipe/streaming/output".to_owned();
        self.global.extend(["--set".to_owned(), format!("s3.endpoint_url={}", server.endpoint)]);
        self.global.extend(["--set".to_owned(), "s3.force_path_style=true".to_owned()]);
        self.credentials();
    }

    /// Messages on this queue URL (named `name`) instead of the embedded queue.
    fn on_queue(&mut self, url: &str, name: &str) {
        self.global.extend(["--set".to_owned(), format!("queue.url={url}")]);
        self.global.extend(["--set".to_owned(), format!("queue.name={name}")]);
    }

    fn credentials(&mut self) {
        for (k, v) in
            [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_REGION", "us-east-1")]
        {
            self.env.push((k.to_owned(), v.to_owned()));
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn input(&self) -> String {
        self.input.clone()
    }

    fn output(&self) -> String {
        self.output.clone()
    }

    /// `txp --preset seed … --database URL` in the test folder.
    fn txp(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = txp(self.path());
        cmd.args(["--preset", self.preset])
            .args(&self.global)
            .args(args)
            .args(["--database", &self.database]);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.timeout(Duration::from_secs(300));
        cmd
    }

    /// The same, as a background process.
    fn spawn(&self, args: &[&str]) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_txp"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("TXP_") {
                cmd.env_remove(key);
            }
        }
        cmd.current_dir(self.path())
            .env("TXP_METRICS_ADDR", "127.0.0.1:0")
            .args(["--quiet", "--preset", self.preset])
            .args(&self.global)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .args(["--database", &self.database])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().unwrap()
    }

    fn upload(&self, extra: &[&str]) {
        self.txp(&["upload", "--source", self.source.to_str().unwrap(), "--to", &self.input()])
            .args(["--interval", "0", "--chunk-rows", self.chunk_rows])
            .args(extra)
            .assert()
            .success();
    }

    fn detect_args(&self) -> Vec<String> {
        vec!["--output".into(), self.output(), "--importance".into(), self.importance.display().to_string()]
    }

    /// `txp verify --input … --output …` (with `--skip` chunks): its exit code and output.
    fn verify(&self, skip: &[u64]) -> (i32, String) {
        let mut cmd = txp(self.path());
        cmd.args(["--preset", self.preset]).args(&self.global).envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.args(["verify", "--input", &self.input(), "--output", &self.output()]);
        cmd.args(["--importance", self.importance.to_str().unwrap(), "--engine", "both"]);
        for s in skip {
            cmd.args(["--skip", &s.to_string()]);
        }
        let out = cmd.output().unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }

    fn assert_verified(&self, skip: &[u64]) {
        let (code, text) = self.verify(skip);
        assert_eq!(code, 0, "verify did not agree:\n{text}");
        assert!(text.contains("OK: the output equals the reference exactly."), "{text}");
        let detections = counts(&text);
        assert!(!detections.last().unwrap().ends_with(" 0"), "no detections at all: {detections:?}");
    }

    /// Every output file: at most 50 rows each, and how many files.
    fn output_files(&self) -> usize {
        let mut files = 0;
        for entry in std::fs::read_dir(self.output()).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(path.join("part-00000.csv")).unwrap();
            assert!(path.join("_SUCCESS").is_file(), "{}", path.display());
            let rows = text.lines().count() - 1;
            assert!((1..=50).contains(&rows), "{} has {rows} rows", path.display());
            files += 1;
        }
        files
    }

    /// The embedded queue of this setup's database.
    fn queue(&self, name: &str) -> (tokio::runtime::Runtime, DbQueue, DatabaseConnection) {
        let rt = runtime();
        let db = rt.block_on(txp_connectors::database::connect(&self.database)).unwrap();
        let settings = QueueSettings {
            name: name.to_owned(),
            delivery_limit: 5,
            visibility_timeout: Duration::from_secs(60),
        };
        (rt, DbQueue::new(db.clone(), settings), db)
    }

    /// The message bodies the uploader recorded, in chunk order.
    fn recorded_messages(&self) -> Vec<String> {
        let (rt, _, db) = self.queue("unused");
        recorded_bodies(&rt, &db)
    }
}

fn wait_success(mut child: Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            assert!(
                status.success(),
                "{what}: {status}\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        assert!(Instant::now() < deadline, "{what} did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn run_on_sqlite_writes_every_detection_once() {
    let setup = Setup::new(false);
    setup.upload(&[]);
    let mut args = vec!["run".to_owned(), "--until-idle".to_owned()];
    args.extend(setup.detect_args());
    for set in ["detector.persist_every=3", "detector.retention_chunks=5"] {
        args.extend(["--set".to_owned(), set.to_owned()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = stdout(&mut setup.txp(&args));
    assert!(out.contains("20 committed"), "{out}");
    assert!(out.contains("shard 0/1: folded through chunk 19"), "{out}");
    assert!(setup.output_files() >= 2);
    setup.assert_verified(&[]);
    // Each detection carries the figures that made it, and they satisfy its pattern's
    // condition under the seed preset (docs/patterns.md §2).
    let (rt, _, db) = setup.queue("unused");
    let seed = txp_core::Preset::Seed.thresholds();
    let detections = rt.block_on(txp_entity::detection::Entity::find().all(&db)).unwrap();
    assert!(!detections.is_empty());
    for d in &detections {
        let text = d.figures.as_deref().unwrap_or_else(|| panic!("no figures: {d:?}"));
        let f: txp_core::engine::Figures = serde_json::from_str(text).unwrap();
        match d.pattern.as_str() {
            "PatId1" => {
                assert!(f.merchant_txns > seed.upgrade_min_merchant_txns, "{text}");
                assert!(f.pair_txns.unwrap() >= f.count_cutoff.unwrap(), "{text}");
                assert!(f.k.is_some() && f.j.is_some() && f.weight_cutoff.is_some(), "{text}");
            }
            "PatId2" => {
                assert!(f.pair_txns.unwrap() > seed.child_min_txns && f.pair_amount.is_some(), "{text}")
            }
            _ => assert!(
                f.female_customers > seed.dei_min_female_customers && f.female_customers < f.male_customers,
                "{text}"
            ),
        }
    }
    // The running statistics are persisted, current now that the run is idle, and every
    // aggregate more than 5 chunks behind them is pruned.
    let (pairs, merchants, state, kept) = rt.block_on(async {
        (
            txp_entity::pair_stats::Entity::find().all(&db).await.unwrap(),
            txp_entity::merchant_stats::Entity::find().all(&db).await.unwrap(),
            txp_entity::detector_state::Entity::find().one(&db).await.unwrap().unwrap(),
            txp_entity::chunk_aggregate::Entity::find().all(&db).await.unwrap(),
        )
    });
    assert_eq!((state.folded_through, state.persisted_through), (Some(19), Some(19)));
    let rows = i64::try_from(ROWS).unwrap();
    assert_eq!(pairs.iter().map(|p| p.txn_count).sum::<i64>(), rows);
    assert_eq!(merchants.iter().map(|m| m.txn_count).sum::<i64>(), rows);
    for m in &merchants {
        let of: Vec<_> = pairs.iter().filter(|p| p.merchant == m.merchant).collect();
        assert_eq!(usize::try_from(m.customers).unwrap(), of.len(), "{m:?}");
        assert_eq!(m.txn_count, of.iter().map(|p| p.txn_count).sum::<i64>(), "{m:?}");
    }
    assert!(!kept.is_empty() && kept.iter().all(|p| p.chunk_index >= 15), "pruned through chunk 14 only");
    // Running again changes nothing: every chunk is committed and folded.
    let before = setup.output_files();
    stdout(&mut setup.txp(&args));
    assert_eq!(setup.output_files(), before);
    setup.assert_verified(&[]);
}

/// Uploads, then runs `consumers` consumer processes and `shards` detector processes until idle.
fn consumers_and_shards(setup: &Setup, consumers: usize, shards: u32) {
    setup.upload(&[]);
    let consumers: Vec<Child> =
        (0..consumers).map(|_| setup.spawn(&["consume", "--until-idle", "--workers", "2"])).collect();
    let detectors: Vec<Child> = (0..shards)
        .map(|shard| {
            let mut args =
                vec!["detect".to_owned(), "--until-idle".to_owned(), "--shards".into(), shards.to_string()];
            args.extend(["--shard".to_owned(), shard.to_string()]);
            args.extend(setup.detect_args());
            setup.spawn(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .collect();
    for c in consumers {
        wait_success(c, "consumer");
    }
    for d in detectors {
        wait_success(d, "detector");
    }
    setup.assert_verified(&[]);
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

#[test]
fn rabbitmq_and_s3_with_three_consumers_and_two_shards_then_one_and_one() {
    let server = support::seaweedfs::SeaweedFs::start();
    let mut setup = Setup::new(true);
    setup.on_s3(&server);
    let name = unique("txp-pipe");
    setup.on_queue("amqp://guest:guest@127.0.0.1:5672/%2f", &name);
    consumers_and_shards(&setup, 3, 2);
    // And one consumer with one shard on the same data, as a second stream.
    setup.global.extend(["--set".to_owned(), "upload.stream=second".to_owned()]);
    setup.output = "s3://pipe/streaming/output-second".to_owned();
    consumers_and_shards(&setup, 1, 1);
}

#[test]
fn sqs_and_a_local_folder_with_three_consumers_and_two_shards_then_one_and_one() {
    let moto = support::moto::start();
    let mut setup = Setup::new(true);
    setup.credentials();
    setup.env.push(("AWS_ENDPOINT_URL_SQS".to_owned(), moto.endpoint.clone()));
    setup.on_queue("sqs://txp-pipe", "txp-pipe");
    consumers_and_shards(&setup, 3, 2);
    setup.output_files();
    // And one consumer with one shard on the same data, as a second stream.
    setup.global.extend(["--set".to_owned(), "upload.stream=second".to_owned()]);
    setup.output = setup.path().join("output-second").display().to_string();
    consumers_and_shards(&setup, 1, 1);
    setup.output_files();
}

#[test]
fn three_consumers_and_two_shards_on_postgres() {
    let setup = Setup::new(true);
    consumers_and_shards(&setup, 3, 2);
    setup.output_files();
}

#[test]
fn one_consumer_and_one_shard_on_postgres() {
    let setup = Setup::new(true);
    consumers_and_shards(&setup, 1, 1);
    setup.output_files();
}

#[test]
fn out_of_order_duplicated_and_held_back_messages() {
    let setup = Setup::new(true);
    // Store every chunk, announcing it on a queue nobody consumes; then publish the recorded
    // bodies to the real queue ourselves: shuffled, some twice, one held back.
    setup.upload(&["--set", "queue.name=staging"]);
    let bodies = setup.recorded_messages();
    assert_eq!(bodies.len(), 20);
    let (rt, queue, _db) = setup.queue("txp-chunks");
    let mut order: Vec<usize> = (0..bodies.len()).filter(|i| *i != 7).collect();
    // A fixed permutation: reversed halves, interleaved.
    order.reverse();
    order.rotate_left(5);
    rt.block_on(async {
        for i in &order {
            queue.publish(bodies[*i].as_bytes()).await.unwrap();
        }
        for i in [0, 3, 19] {
            queue.publish(bodies[i].as_bytes()).await.unwrap();
        }
    });
    let mut args = vec!["run".to_owned(), "--until-idle".to_owned()];
    args.extend(setup.detect_args());
    let run = setup.spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // The detector folds 0..=6 and waits for 7.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let position = rt.block_on(async {
            txp_entity::detector_state::Entity::find()
                .all(&_db)
                .await
                .unwrap()
                .first()
                .and_then(|s| s.folded_through)
        });
        if position == Some(6) {
            break;
        }
        assert!(position.is_none_or(|p| p < 7), "folded past the held-back chunk: {position:?}");
        assert!(Instant::now() < deadline, "the detector never reached chunk 6: {position:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    rt.block_on(queue.publish(bodies[7].as_bytes())).unwrap();
    wait_success(run, "txp run");
    setup.output_files();
    setup.assert_verified(&[]);
}

#[test]
fn kill_9_at_each_commit_point_then_restart() {
    let setup = Setup::new(true);
    setup.upload(&[]);
    let detect = setup.detect_args();
    let detect: Vec<&str> = detect.iter().map(String::as_str).collect();
    let crash = |args: &[&str]| {
        let out = setup.txp(args).output().unwrap();
        assert!(!out.status.success(), "expected an abort: {}", String::from_utf8_lossy(&out.stderr));
    };
    // A consumer dies mid-transaction at chunk 2, another between commit and ack at chunk 5.
    // Leases of 2 s, so that what a dead consumer held comes back soon.
    let lease = ["--set", "queue.visibility_timeout=2s"];
    crash(&["consume", "--workers", "1", "--crash-at", "mid-transaction:2", lease[0], lease[1]]);
    crash(&["consume", "--workers", "1", "--crash-at", "after-commit:5", lease[0], lease[1]]);
    // A detector dies between its state commit and the file write, then mid-file.
    let mut args = vec!["detect", "--crash-at", "after-state-commit:1"];
    args.extend(&detect);
    crash(&args);
    // The chunks the dead consumers held come back once their leases end.
    stdout(&mut setup.txp(&["consume", "--until-idle", "--workers", "2", lease[0], lease[1]]));
    // Dies after writing the part of file 2 (if that file is still unwritten by now), before
    // its `_SUCCESS`.
    let mut args = vec!["detect", "--until-idle", "--crash-at", "mid-file:2"];
    args.extend(&detect);
    let _ = setup.txp(&args).output().unwrap();
    // Dies after folding chunk 13 with its statistics persisted through 11 (every 4 chunks):
    // the restart resumes from them and folds 12 and 13 again.
    let mut args = vec!["detect", "--crash-at", "after-state-commit:13", "--set", "detector.persist_every=4"];
    args.extend(&detect);
    let _ = setup.txp(&args).output().unwrap();
    let (rt, _, db) = setup.queue("unused");
    let state = rt.block_on(txp_entity::detector_state::Entity::find().one(&db)).unwrap().unwrap();
    assert_eq!((state.folded_through, state.persisted_through), (Some(13), Some(11)));
    let mut args = vec!["detect", "--until-idle"];
    args.extend(&detect);
    stdout(&mut setup.txp(&args));
    setup.output_files();
    setup.assert_verified(&[]);
}

/// The dead letters of the embedded queue: (reason, deliveries) of each.
fn dead_letters(rt: &tokio::runtime::Runtime, db: &DatabaseConnection) -> Vec<(String, i32)> {
    rt.block_on(async {
        txp_entity::queue_message::Entity::find()
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| Some((m.dead_reason?, m.receive_count)))
            .collect()
    })
}

#[test]
fn poison_messages_go_to_the_dead_letter_queue_and_replay_or_skip_lets_the_run_finish() {
    let setup = Setup::new(false);
    setup.upload(&["--set", "queue.name=staging"]);
    let bodies = setup.recorded_messages();
    let (rt, queue, db) = setup.queue("txp-chunks");
    let wrong_sha = bodies[4].replace("\"sha256\":\"", "\"sha256\":\"00");
    let wrong_sha = {
        // Keep 64 hex digits: replace the first two.
        let at = wrong_sha.find("\"sha256\":\"00").unwrap() + 12;
        format!("{}{}", &wrong_sha[..at], &wrong_sha[at + 2..])
    };
    let unknown_version = bodies[5].replace("\"version\":1", "\"version\":9");
    // Chunk 6's object goes missing (moved aside) until the test restores it.
    let part_6 = Path::new(&setup.input()).join("chunk_6.csv").join("part-00000.csv");
    let aside = setup.path().join("part-6-aside.csv");
    std::fs::rename(&part_6, &aside).unwrap();
    let missing_object = bodies[6].clone();
    // A store that does not answer: transient failures until the delivery limit. Consumers read
    // only a stream's registered input, so this is a second stream registered on S3 (with its
    // ledger row), whose endpoint does not answer.
    let input_url = format!("file://{}", setup.input());
    assert!(bodies[7].contains(&input_url), "{}", bodies[7]);
    let unreachable = bodies[7]
        .replace(&input_url, "s3://pipe/streaming/input")
        .replace("\"stream\":\"default\"", "\"stream\":\"remote\"");
    rt.block_on(register_remote_stream(&db, &bodies[7]));
    // The same chunk naming another store than its stream's registered input: refused before
    // anything is read.
    let other_store = bodies[7].replace(&input_url, &format!("file://{}/elsewhere", setup.path().display()));
    // Copies of chunks 8 and 9 (published as well, unchanged): one padded past the size limit
    // with an unknown field (otherwise a valid message), one for a stream no upload recorded.
    let oversized = format!("{{\"pad\":\"{}\",{}", "x".repeat(300 * 1024), &bodies[8][1..]);
    assert!(bodies[9].contains("\"stream\":\"default\""), "{}", bodies[9]);
    let unknown_stream = bodies[9].replace("\"stream\":\"default\"", "\"stream\":\"elsewhere\"");
    rt.block_on(async {
        for (i, body) in bodies.iter().enumerate() {
            if !(4..=7).contains(&i) {
                queue.publish(body.as_bytes()).await.unwrap();
            }
        }
        for body in [
            &wrong_sha,
            &unknown_version,
            &missing_object,
            &unreachable,
            &other_store,
            &oversized,
            &unknown_stream,
        ] {
            queue.publish(body.as_bytes()).await.unwrap();
        }
        queue.publish(b"not json").await.unwrap();
    });
    let mut first = setup.txp(&["consume", "--until-idle"]);
    first.args(["--set", "queue.delivery_limit=2", "--set", "s3.endpoint_url=http://127.0.0.1:9"]);
    first.args(["--set", "s3.force_path_style=true"]);
    first.envs([
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ]);
    stdout(&mut first);
    let dead = dead_letters(&rt, &db);
    assert_eq!(dead.len(), 8, "{dead:?}");
    for expected in [
        "sha256 mismatch",
        "store mismatch: the message names file://",
        "unknown message version 9",
        "object missing",
        "not a chunk message: expected",
        "not a chunk message: 307",
        "over the limit of 262144 bytes",
        "unknown stream `elsewhere`",
        "delivery limit 2 reached; last error:",
    ] {
        assert!(dead.iter().any(|(r, _)| r.contains(expected)), "no `{expected}` in {dead:?}");
    }
    // Permanent failures at the first delivery, the transient one after two.
    for (reason, deliveries) in &dead {
        let expected = if reason.starts_with("delivery limit") { 2 } else { 1 };
        assert_eq!(*deliveries, expected, "{reason}");
    }

    // A dry run lists them all and moves nothing. The chunk messages that their stream's
    // registry does not allow (a tampered digest, another store, an unknown stream) are not
    // replayed at all.
    let listed = stdout(&mut setup.txp(&["replay", "--dry-run"]));
    assert!(
        listed.contains("dry run: 5 would be replayed, 0 left by the loop guard, 3 not allowed"),
        "{listed}"
    );
    for chunk in ["chunk 4,", "chunk 5,", "chunk 6,", "chunk 7,", "chunk 9,", "(body names no chunk)"] {
        assert!(listed.contains(chunk), "no `{chunk}` in:\n{listed}");
    }
    assert_eq!(dead_letters(&rt, &db).len(), 8);

    // Chunk 6's object is restored: a replay of the `object missing` dead letters fixes it,
    // and touches no other.
    std::fs::rename(&aside, &part_6).unwrap();
    let replayed = stdout(&mut setup.txp(&["replay", "--reason", "OBJECT MISSING", "--rate", "5/s"]));
    assert!(replayed.contains("1 replayed to txp-chunks"), "{replayed}");
    assert!(replayed.contains("7 not matching --reason"), "{replayed}");
    stdout(&mut setup.txp(&["consume", "--until-idle"]));
    assert_eq!(dead_letters(&rt, &db).len(), 7);

    // The loop guard: a message whose cause is not fixed comes back; it is replayed at most
    // --max-replays times.
    let guard = ["replay", "--reason", "unknown message version", "--max-replays", "1"];
    assert!(stdout(&mut setup.txp(&guard)).contains("1 replayed"));
    stdout(&mut setup.txp(&["consume", "--until-idle"]));
    let refused = stdout(&mut setup.txp(&guard));
    assert!(refused.contains("left (1 replays already)") && refused.contains("0 replayed"), "{refused}");
    assert_eq!(dead_letters(&rt, &db).len(), 7);
    let audit: Vec<(Option<i64>, String)> = rt.block_on(async {
        txp_entity::replay_audit::Entity::find()
            .order_by_asc(txp_entity::replay_audit::Column::Id)
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|row| (row.chunk_index, row.action))
            .collect()
    });
    let expected = [(Some(6), "replayed"), (Some(5), "replayed"), (Some(5), "refused")];
    assert_eq!(audit, expected.map(|(c, a)| (c, a.to_owned())));

    // 4, 5 and 7 are lost for good. The database holds two streams now: they are named.
    for chunk in ["4", "5", "7"] {
        stdout(&mut setup.txp(&[
            "skip",
            "--stream",
            "default",
            "--chunk",
            chunk,
            "--reason",
            "lost in a test",
        ]));
    }
    let refused =
        setup.txp(&["skip", "--stream", "default", "--chunk", "6", "--reason", "x"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let mut args =
        vec!["detect".to_owned(), "--until-idle".to_owned(), "--stream".to_owned(), "default".to_owned()];
    args.extend(setup.detect_args());
    stdout(&mut setup.txp(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    setup.assert_verified(&[4, 5, 7]);
    let (code, text) = setup.verify(&[]);
    assert_eq!(code, 1, "without the same skip verify must disagree:\n{text}");
}

/// Registers a stream `remote` whose input is on S3 (s3://pipe/streaming/input), with a ledger
/// row for the chunk of `body` (a message of stream `default`), as `txp upload` would have.
async fn register_remote_stream(db: &DatabaseConnection, body: &str) {
    use sea_orm::{ActiveModelTrait, Set};
    let message = txp_core::message::ChunkMessage::decode(body.as_bytes()).unwrap();
    txp_entity::stream::ActiveModel {
        name: Set("remote".to_owned()),
        source: Set("test".to_owned()),
        destination: Set("s3://pipe/streaming/input".to_owned()),
        quarantine: Set(None),
        chunk_rows: Set(1000),
        last_chunk: Set(None),
        created_at_ms: Set(0),
        finished_at_ms: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    txp_entity::upload_ledger::ActiveModel {
        stream: Set("remote".to_owned()),
        chunk_index: Set(message.chunk as i64),
        sha256: Set(message.sha256.clone()),
        rows: Set(message.rows as i64),
        bytes: Set(message.bytes as i64),
        message: Set(body.to_owned()),
        stored_at_ms: Set(0),
        published_at_ms: Set(Some(0)),
    }
    .insert(db)
    .await
    .unwrap();
}

#[test]
fn bad_rows_are_quarantined_once_with_their_reasons() {
    let setup = Setup::new(false);
    // Break three rows of the source: a bad amount, a wrong field count, an empty line.
    let text = std::fs::read_to_string(&setup.source).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[10] = lines[10].rsplit_once(',').map(|(a, _)| a.to_owned()).unwrap();
    lines[1500] = lines[1500].replace(",0", ",x").replacen('.', "..", 1);
    lines[2500] = String::new();
    std::fs::write(&setup.source, lines.join("\n") + "\n").unwrap();
    setup.upload(&[]);
    let mut args = vec!["run".to_owned(), "--until-idle".to_owned()];
    args.extend(setup.detect_args());
    stdout(&mut setup.txp(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    let quarantine = setup.path().join("quarantine");
    let mut files: Vec<String> = std::fs::read_dir(&quarantine)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, vec!["chunk_0.csv", "chunk_1.csv", "chunk_2.csv"]);
    let all: Vec<String> = files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(quarantine.join(f)).unwrap();
            text.lines().skip(1).map(str::to_owned).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all[0].starts_with("0,chunk_0.csv/part-00000.csv,11,"), "{}", all[0]);
    assert!(all[1].starts_with("1,chunk_1.csv/part-00000.csv,501,"), "{}", all[1]);
    assert!(all[2].starts_with("2,chunk_2.csv/part-00000.csv,501,"), "{}", all[2]);
    setup.assert_verified(&[]);
}

#[test]
fn a_standby_detector_takes_over_when_the_active_one_is_killed() {
    let setup = Setup::new(true);
    setup.upload(&["--set", "queue.name=staging"]);
    let bodies = setup.recorded_messages();
    let (rt, queue, db) = setup.queue("txp-chunks");
    let publish = |range: std::ops::Range<usize>| {
        rt.block_on(async {
            for body in &bodies[range] {
                queue.publish(body.as_bytes()).await.unwrap();
            }
        });
    };
    publish(0..10);
    stdout(&mut setup.txp(&["consume", "--until-idle"]));
    let mut args = vec!["detect".to_owned(), "--until-idle".to_owned()];
    args.extend(setup.detect_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut active = setup.spawn(&args);
    let position = || {
        rt.block_on(async {
            txp_entity::detector_state::Entity::find()
                .all(&db)
                .await
                .unwrap()
                .first()
                .and_then(|s| s.folded_through)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while position() != Some(9) {
        assert!(Instant::now() < deadline, "the active detector never folded chunk 9");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The standby starts while the active one holds the shard, then the active one dies.
    let mut standby = setup.spawn(&args);
    std::thread::sleep(Duration::from_secs(2));
    assert!(standby.try_wait().unwrap().is_none(), "the standby exited while the shard was held");
    active.kill().unwrap();
    active.wait().unwrap();
    publish(10..20);
    stdout(&mut setup.txp(&["consume", "--until-idle"]));
    wait_success(standby, "standby detector");
    assert_eq!(position(), Some(19));
    setup.output_files();
    setup.assert_verified(&[]);
}

#[test]
fn a_partial_file_after_max_wait_and_sigterm_exits_zero() {
    let setup = Setup::new(true);
    setup.upload(&["--set", "queue.name=staging"]);
    let bodies = setup.recorded_messages();
    let (rt, queue, _db) = setup.queue("txp-chunks");
    rt.block_on(queue.publish(bodies[0].as_bytes())).unwrap();
    let consumer = setup.spawn(&["consume"]);
    let mut args = vec!["detect".to_owned(), "--set".to_owned(), "output.max_wait=1s".to_owned()];
    args.extend(setup.detect_args());
    let detector = setup.spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // Chunk 0 alone: its detections (fewer than 50 or not) must all be in files after ~1 s,
    // while the stream is still open (chunk 1 never comes before the check).
    let deadline = Instant::now() + Duration::from_secs(60);
    let rows_written = || -> usize {
        let Ok(entries) = std::fs::read_dir(setup.output()) else { return 0 };
        entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("_SUCCESS").is_file())
            .map(|p| std::fs::read_to_string(p.join("part-00000.csv")).unwrap().lines().count() - 1)
            .sum()
    };
    let (pg_rt, _, db) = setup.queue("unused");
    let detections = || -> usize {
        pg_rt.block_on(async { txp_entity::detection::Entity::find().all(&db).await.unwrap().len() })
    };
    loop {
        let (written, found) = (rows_written(), detections());
        if found > 0 && written == found {
            break;
        }
        assert!(Instant::now() < deadline, "no partial file: {written} of {found} detections written");
        std::thread::sleep(Duration::from_millis(200));
    }
    // SIGTERM: both stop cleanly with exit 0.
    for child in [consumer, detector] {
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        wait_success(child, "SIGTERM");
    }
    // The rest of the stream, then everything agrees.
    rt.block_on(async {
        for body in &bodies[1..] {
            queue.publish(body.as_bytes()).await.unwrap();
        }
    });
    let mut args = vec!["run".to_owned(), "--until-idle".to_owned()];
    args.extend(setup.detect_args());
    stdout(&mut setup.txp(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    setup.output_files();
    setup.assert_verified(&[]);
}

#[test]
fn reconcile_publishes_lost_chunks_and_a_stalled_detector_says_what_helps() {
    let setup = Setup::new(false);
    setup.upload(&[]);
    let (rt, _queue, db) = setup.queue("txp-chunks");
    // The broker loses the messages of chunks 2 and 9; chunk 5's is dead-lettered.
    let chunk_of = |body: &str| txp_core::message::ChunkMessage::decode(body.as_bytes()).unwrap().chunk;
    rt.block_on(async {
        use sea_orm::{ActiveModelTrait, Set};
        for row in txp_entity::queue_message::Entity::find().all(&db).await.unwrap() {
            match chunk_of(&row.body) {
                2 | 9 => {
                    txp_entity::queue_message::Entity::delete_by_id(row.id).exec(&db).await.unwrap();
                }
                5 => {
                    let mut row: txp_entity::queue_message::ActiveModel = row.into();
                    row.queue = Set("txp-chunks-dlq".to_owned());
                    row.dead_reason = Set(Some("object missing: test".to_owned()));
                    row.update(&db).await.unwrap();
                }
                _ => {}
            }
        }
    });
    // While messages wait, the lost chunks may be among them: refused.
    let early = setup.txp(&["reconcile", "--dry-run"]).output().unwrap();
    assert_eq!(early.status.code(), Some(2), "{}", String::from_utf8_lossy(&early.stderr));
    assert!(String::from_utf8_lossy(&early.stderr).contains("still holds 17 ready"));
    stdout(&mut setup.txp(&["consume", "--until-idle"]));

    let dry = stdout(&mut setup.txp(&["reconcile", "--dry-run"]));
    for line in ["would publish chunk 2 ", "would publish chunk 9 ", "left          chunk 5 "] {
        assert!(dry.contains(line), "no `{line}` in:\n{dry}");
    }
    let (ready, dead) = rt.block_on(async {
        let rows = txp_entity::queue_message::Entity::find().all(&db).await.unwrap();
        (rows.iter().filter(|r| r.queue == "txp-chunks").count(), rows.len())
    });
    assert_eq!((ready, dead), (0, 1), "a dry run publishes nothing");
    let done = stdout(&mut setup.txp(&["reconcile"]));
    assert!(done.contains("published     chunk 2 ") && done.contains("published     chunk 9 "), "{done}");
    stdout(&mut setup.txp(&["consume", "--until-idle"]));
    let again = stdout(&mut setup.txp(&["reconcile"]));
    assert!(!again.contains("published"), "{again}");

    // The detector folds 0..=4 and waits for 5, which is stored: after output.stall_warning it
    // says so, naming replay and reconcile.
    let mut args = vec!["detect".to_owned(), "--until-idle".to_owned()];
    args.extend(setup.detect_args());
    args.extend(["--set".to_owned(), "output.stall_warning=1s".to_owned()]);
    let mut detect = setup.spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut stderr = detect.stderr.take().unwrap();
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buffer) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while !log.lock().unwrap().contains("chunk 5 is stored but not committed") {
        assert!(Instant::now() < deadline, "no stall warning:\n{}", log.lock().unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(log.lock().unwrap().contains("txp reconcile --stream default"), "{}", log.lock().unwrap());
    stdout(&mut setup.txp(&["replay", "--reason", "object missing"]));
    stdout(&mut setup.txp(&["consume", "--until-idle"]));
    wait_success(detect, "txp detect");
    reader.join().unwrap();
    setup.output_files();
    setup.assert_verified(&[]);
}

#[test]
fn three_consumers_and_two_shards_on_the_full_dataset_with_the_banksim_preset() {
    let setup = Setup::banksim(true);
    consumers_and_shards(&setup, 3, 2);
}

#[test]
fn demo_on_embedded_defaults_ends_in_exact_agreement() {
    // What `make demo` runs, in a fresh folder: generate, upload, consume, detect, verify.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = txp(dir.path());
    cmd.args(["demo", "--interval", "0"]).timeout(Duration::from_secs(900));
    let out = stdout(&mut cmd);
    assert!(out.contains("preset banksim"), "{out}");
    assert!(out.contains("OK: the output equals the reference exactly."), "{out}");
    let detections = counts(&out);
    assert!(!detections.last().unwrap().ends_with(" 0"), "no detections at all: {detections:?}");
    assert!(dir.path().join("txp-data/txp.db").is_file());
}

/// The names in a scrape's `# TYPE` lines.
fn exported_names(scrape: &str) -> std::collections::BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect()
}

/// A real Prometheus scrapes the uploader, a consumer and a detector (each on its own port)
/// during a run with one poison message: every scrape passes `promtool check metrics`, the
/// three together export exactly the catalogue's metrics, health and readiness answer 200,
/// every dashboard panel's expression returns data, and the DLQ alert fires.
#[test]
fn prometheus_scrapes_every_process_and_every_dashboard_panel_has_data() {
    use support::prometheus::{Prometheus, free_port, http_get, promtool_check_metrics};
    let setup = Setup::new(true);
    let ports = [free_port(), free_port(), free_port()];
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yml");
    let prometheus = Prometheus::start(
        &[
            ("txp-uploader", addrs[0].clone()),
            ("txp-consumer", addrs[1].clone()),
            ("txp-detector", addrs[2].clone()),
        ],
        &rules,
    );
    // A poison message first: it goes to the dead-letter queue and stays there.
    let (rt, queue, db) = setup.queue("txp-chunks");
    rt.block_on(async {
        queue.setup().await.unwrap();
        queue.publish(b"this is not a chunk message").await.unwrap();
    });
    let mut detect = vec!["detect".to_owned(), "--metrics-addr".to_owned(), addrs[2].clone()];
    detect.extend(setup.detect_args());
    let detector = setup.spawn(&detect.iter().map(String::as_str).collect::<Vec<_>>());
    let consumer = setup.spawn(&["consume", "--metrics-addr", &addrs[1]]);
    let uploader = setup.spawn(&[
        "upload",
        "--source",
        setup.source.to_str().unwrap(),
        "--to",
        &setup.input(),
        "--interval",
        "1s",
        "--chunk-rows",
        CHUNK_ROWS,
        "--metrics-addr",
        &addrs[0],
    ]);
    // While all three run: health, readiness, and a clean scrape from each.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut scrapes: Vec<Option<String>> = vec![None, None, None];
    while scrapes.iter().any(Option::is_none) {
        assert!(Instant::now() < deadline, "not every process served /readyz and /metrics");
        for (i, addr) in addrs.iter().enumerate() {
            if scrapes[i].is_some() {
                continue;
            }
            if http_get(addr, "/healthz").map(|r| r.0) == Some(200)
                && http_get(addr, "/readyz").map(|r| r.0) == Some(200)
            {
                let (status, body) = http_get(addr, "/metrics").unwrap();
                assert_eq!(status, 200);
                scrapes[i] = Some(body);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for scrape in scrapes.iter().flatten() {
        assert_eq!(promtool_check_metrics(scrape), "", "promtool check metrics:\n{scrape}");
        assert!(!scrape.contains("customer") && !scrape.contains("merchant"), "{scrape}");
    }
    // The detector folds the whole stream (20 chunks, one a second).
    let position = || {
        rt.block_on(async {
            txp_entity::detector_state::Entity::find().one(&db).await.unwrap().and_then(|s| s.folded_through)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    while position() != Some(19) {
        assert!(Instant::now() < deadline, "the detector never folded chunk 19");
        // The uploader's latest scrape, while it still runs.
        if let Some((200, body)) = http_get(&addrs[0], "/metrics") {
            scrapes[0] = Some(body);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    wait_success(uploader, "uploader");
    // Late scrapes of the two that still run, and the uploader's last one as Prometheus kept it:
    // together they export exactly the catalogue.
    std::thread::sleep(Duration::from_secs(6));
    let mut exported = std::collections::BTreeSet::new();
    for addr in &addrs[1..] {
        let (_, body) = http_get(addr, "/metrics").unwrap();
        assert_eq!(promtool_check_metrics(&body), "", "promtool check metrics:\n{body}");
        exported.extend(exported_names(&body));
    }
    // The consumer's counters tell what happened: 20 chunks and the poison message received,
    // 20 acked, the poison dead-lettered as an input error, 20,000 rows.
    let (_, consumer_scrape) = http_get(&addrs[1], "/metrics").unwrap();
    let sample = |series: &str| -> u64 {
        consumer_scrape
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series} in:\n{consumer_scrape}"))
    };
    assert_eq!(sample("txp_messages_received_total{backend=\"db\"}"), 21);
    assert_eq!(sample("txp_messages_acked_total{backend=\"db\"}"), 20);
    assert_eq!(sample("txp_messages_dead_lettered_total{backend=\"db\"}"), 1);
    assert_eq!(sample("txp_errors_total{kind=\"input\"}"), 1);
    assert_eq!(
        sample("txp_rows_total{outcome=\"valid\"}") + sample("txp_rows_total{outcome=\"quarantined\"}"),
        ROWS
    );
    exported.extend(exported_names(scrapes[0].as_ref().unwrap()));
    let catalogue: std::collections::BTreeSet<String> =
        txp_telemetry::catalogue::CATALOGUE.iter().map(|m| m.name.to_owned()).collect();
    assert_eq!(exported, catalogue, "the processes' metrics and the catalogue differ");
    // Every panel of the dashboard has data.
    let mut empty = Vec::new();
    for (title, expr) in support::dashboard::dashboard_exprs() {
        if prometheus.query(&expr).is_empty() {
            empty.push(format!("{title}: {expr}"));
        }
    }
    assert!(empty.is_empty(), "dashboard panels without data:\n{}", empty.join("\n"));
    // The poison message is in the dead-letter queue: the alert fires.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let alerts = prometheus.alerts();
        if alerts.iter().any(|(name, state)| name == "TxpDeadLetterQueueNotEmpty" && state == "firing") {
            break;
        }
        assert!(Instant::now() < deadline, "TxpDeadLetterQueueNotEmpty never fired: {alerts:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let up = prometheus.targets();
    assert!(up.iter().filter(|(job, _)| job != "txp-uploader").all(|(_, h)| h == "up"), "{up:?}");
    for child in [consumer, detector] {
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        wait_success(child, "SIGTERM");
    }
    setup.output_files();
    setup.assert_verified(&[]);
}

/// SIGTERM while a consumer holds a chunk between its parse and its commit: the chunk is
/// finished (committed, then acked), nothing is acked without its commit, and the process
/// exits 0 well within a Kubernetes grace period.
#[test]
fn sigterm_mid_chunk_finishes_the_chunk_and_acks_nothing_uncommitted() {
    let setup = Setup::new(true);
    setup.upload(&["--set", "queue.name=staging"]);
    let bodies = setup.recorded_messages();
    let (rt, queue, db) = setup.queue("txp-chunks");
    rt.block_on(async {
        queue.setup().await.unwrap();
        for body in &bodies[..3] {
            queue.publish(body.as_bytes()).await.unwrap();
        }
    });
    let consumer = setup.spawn(&["consume", "--workers", "1", "--crash-at", "slow-commit:0"]);
    // Chunk 0 is leased (in flight) and not committed: the consumer is inside it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let depth = rt.block_on(queue.depth()).unwrap();
        if depth.in_flight == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the consumer never took a message: {depth:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let committed = || {
        rt.block_on(async {
            txp_entity::chunk_record::Entity::find()
                .all(&db)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.chunk_index)
                .collect::<Vec<_>>()
        })
    };
    assert!(committed().is_empty(), "chunk 0 committed before the test's SIGTERM");
    let stopped_at = Instant::now();
    Command::new("kill").args(["-TERM", &consumer.id().to_string()]).status().unwrap();
    wait_success(consumer, "consumer after SIGTERM");
    assert!(stopped_at.elapsed() < Duration::from_secs(30), "took {:?} to stop", stopped_at.elapsed());
    // The chunk in hand was committed and acked; the two others are still queued, not taken.
    assert_eq!(committed(), vec![0]);
    let depth = rt.block_on(queue.depth()).unwrap();
    assert_eq!((depth.ready, depth.in_flight, depth.dead), (2, 0, 0), "{depth:?}");
}

/// A RabbitMQ user with a password of its own (the broker's `guest` would also be a user name).
fn rabbitmq_user(user: &str, password: &str) {
    let ctl = |args: &[&str]| {
        let out =
            Command::new("rabbitmqctl").args(args).output().expect("rabbitmqctl (RabbitMQ on this machine)");
        assert!(out.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let _ = Command::new("rabbitmqctl").args(["delete_user", user]).output();
    ctl(&["add_user", user, password]);
    ctl(&["set_permissions", "-p", "/", user, ".*", ".*", ".*"]);
}

/// A run with a password in every URL (database, AMQP) and a secret S3 key, with debug logs in
/// both formats: no log line, status output (text and JSON), or error of a failing command
/// holds a secret.
#[test]
fn no_secret_in_logs_status_or_errors() {
    const PG_PASSWORD: &str = "pg-Secret-4ab1";
    const AMQP_PASSWORD: &str = "amqp-Secret-93f2";
    const S3_SECRET: &str = "s3-Secret-77c0";
    let server = support::seaweedfs::SeaweedFs::start();
    let user = unique("txp_secret");
    rabbitmq_user(&user, AMQP_PASSWORD);
    let mut setup = Setup::new(true);
    setup.on_s3(&server);
    setup.env.retain(|(k, _)| k != "AWS_SECRET_ACCESS_KEY");
    setup.env.push(("AWS_SECRET_ACCESS_KEY".to_owned(), S3_SECRET.to_owned()));
    setup.env.push(("TXP_LOG".to_owned(), "debug".to_owned()));
    // PostgreSQL trusts local connections: the password is sent and ignored.
    setup.database = setup.database.replacen("postgres@", &format!("postgres:{PG_PASSWORD}@"), 1);
    let amqp = format!("amqp://{user}:{AMQP_PASSWORD}@127.0.0.1:5672/%2f");
    setup.on_queue(&amqp, &unique("txp-secret"));
    let mut seen = String::new();
    let mut capture = |out: std::process::Output| {
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
        seen.push_str(&String::from_utf8_lossy(&out.stderr));
        out.status
    };
    let source = setup.source.to_str().unwrap().to_owned();
    for format in ["text", "json"] {
        let status = capture(
            setup
                .txp(&["--log-format", format, "upload", "--source", &source, "--to", &setup.input()])
                .args(["--interval", "0", "--chunk-rows", CHUNK_ROWS])
                .output()
                .unwrap(),
        );
        assert!(status.success(), "upload failed:\n{seen}");
    }
    let mut run =
        vec!["--log-format".to_owned(), "json".to_owned(), "run".to_owned(), "--until-idle".to_owned()];
    run.extend(setup.detect_args());
    let status = capture(setup.txp(&run.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap());
    assert!(status.success(), "run failed:\n{seen}");
    for args in [&["status"][..], &["status", "--json"]] {
        let status = capture(setup.txp(args).output().unwrap());
        assert!(status.success(), "{args:?} failed:\n{seen}");
    }
    let mut show = txp(setup.path());
    show.args(&setup.global).args(["--set", &format!("database.url={}", setup.database), "config", "show"]);
    let status = capture(show.output().unwrap());
    assert!(status.success(), "config show failed:\n{seen}");
    // Errors: a wrong AMQP password, an unreachable database, both with secrets in their URLs.
    let wrong = format!("amqp://{user}:{AMQP_PASSWORD}-wrong@127.0.0.1:5672/%2f");
    let status = capture(setup.txp(&["consume", "--until-idle", "--queue", &wrong]).output().unwrap());
    assert_eq!(status.code(), Some(2), "{seen}");
    let unreachable = format!("postgres://postgres:{PG_PASSWORD}@127.0.0.1:1/nowhere");
    let status = capture(
        setup
            .txp(&["status"])
            .args(["--database", &unreachable])
            .timeout(Duration::from_secs(120))
            .output()
            .unwrap(),
    );
    assert_eq!(status.code(), Some(2), "{seen}");
    assert!(seen.contains("****"), "no masked URL was shown at all:\n{seen}");
    assert!(seen.lines().count() > 100, "the debug logs are missing:\n{seen}");
    for secret in [PG_PASSWORD, AMQP_PASSWORD, S3_SECRET] {
        let leaks: Vec<&str> = seen.lines().filter(|l| l.contains(secret)).take(5).collect();
        assert!(leaks.is_empty(), "{secret} appears in:\n{}", leaks.join("\n"));
    }
    setup.assert_verified(&[]);
}

/// An S3 store of this SeaweedFS, for a test to change objects behind the pipeline's back.
fn s3_store(
    rt: &tokio::runtime::Runtime,
    server: &support::seaweedfs::SeaweedFs,
    url: &str,
) -> std::sync::Arc<dyn txp_connectors::store::ObjectStore> {
    let settings = txp_connectors::store::S3Settings {
        endpoint_url: Some(server.endpoint.clone()),
        region: Some("us-east-1".to_owned()),
        force_path_style: true,
        access_key_id: Some("test".to_owned()),
        secret_access_key: Some("test".to_owned()),
    };
    rt.block_on(txp_connectors::store::open_store(url, &settings)).unwrap()
}

#[test]
fn a_chunk_deleted_from_s3_after_its_message_was_sent_is_dead_lettered_then_replayed() {
    let server = support::seaweedfs::SeaweedFs::start();
    let mut setup = Setup::new(false);
    setup.on_s3(&server);
    setup.upload(&["--set", "queue.name=staging"]);
    let bodies = setup.recorded_messages();
    let (rt, queue, db) = setup.queue("txp-chunks");
    let input = s3_store(&rt, &server, &setup.input());
    let part = "chunk_3.csv/part-00000.csv";
    let kept = rt.block_on(input.get(part)).unwrap().expect("chunk 3 is stored");
    rt.block_on(input.delete(part)).unwrap();
    rt.block_on(async {
        for body in &bodies {
            queue.publish(body.as_bytes()).await.unwrap();
        }
    });
    stdout(&mut setup.txp(&["consume", "--until-idle"]));
    let dead = dead_letters(&rt, &db);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].0.starts_with("object missing: s3://pipe/streaming/input/chunk_3.csv/part-00000.csv"),
        "{dead:?}"
    );
    assert_eq!(dead[0].1, 1, "a missing object is permanent: dead-lettered at its first delivery");
    // The object is restored: the replayed message commits the chunk, and nothing is lost.
    rt.block_on(input.put(part, kept)).unwrap();
    let replayed = stdout(&mut setup.txp(&["replay", "--reason", "object missing"]));
    assert!(replayed.contains("1 replayed"), "{replayed}");
    let mut args = vec!["run".to_owned(), "--until-idle".to_owned()];
    args.extend(setup.detect_args());
    stdout(&mut setup.txp(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    assert!(dead_letters(&rt, &db).is_empty());
    setup.assert_verified(&[]);
}

#[test]
fn output_files_wait_for_a_bucket_deleted_mid_run_and_are_written_once_when_it_is_back() {
    let server = support::seaweedfs::SeaweedFs::start();
    let mut setup = Setup::new(false);
    setup.on_s3(&server);
    server.create_bucket("out");
    setup.output = "s3://out/streaming/output".to_owned();
    setup.upload(&["--set", "queue.name=staging"]);
    let bodies = setup.recorded_messages();
    let (rt, queue, db) = setup.queue("txp-chunks");
    let mut args = vec!["run".to_owned(), "--until-idle".to_owned()];
    args.extend(setup.detect_args());
    let run = setup.spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // Once the detector has opened (its output store checked), the bucket goes away.
    let deadline = Instant::now() + Duration::from_secs(60);
    while rt.block_on(txp_entity::detector_state::Entity::find().all(&db)).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the detector did not open");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.delete_bucket("out");
    rt.block_on(async {
        for body in &bodies {
            queue.publish(body.as_bytes()).await.unwrap();
        }
    });
    // Detections are committed and files decided, but none can be written.
    let files = || rt.block_on(txp_entity::output_file::Entity::find().all(&db)).unwrap();
    while files().is_empty() {
        assert!(Instant::now() < deadline, "no output file was decided");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        files().iter().all(|f| f.written_at_ms.is_none()),
        "a file was marked written without its bucket"
    );
    server.create_bucket("out");
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut run = run;
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "txp run did not finish once the bucket was back");
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "{status}\n{stderr}");
    assert!(
        stderr.contains("the output store failed; the committed detections wait for their files"),
        "{stderr}"
    );
    // What to do depends on the store's answer: AWS says NoSuchBucket ("create the bucket"),
    // SeaweedFS AccessDenied ("check the credentials … and the bucket policy").
    assert!(
        stderr.contains("s3://out/streaming/output/") && stderr.contains("hint=\"check the"),
        "the warning names the file and what to check:\n{stderr}"
    );
    assert!(files().iter().all(|f| f.written_at_ms.is_some()));
    setup.assert_verified(&[]);
}

#[test]
fn an_importance_file_with_duplicate_and_invalid_rows_is_reported_and_agrees_with_verify() {
    let setup = Setup::new(false);
    let text = std::fs::read_to_string(&setup.importance).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // A row repeated as it is, and the same pair with another weight: both count in the pair's
    // mean. Then a weight that is no decimal and a row with a field missing: rejected.
    let fields: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(fields.len(), 5, "{}", lines[1]);
    let (repeated, other_weight) =
        (lines[1].clone(), format!("{},{},999.5,{},{}", fields[0], fields[1], fields[3], fields[4]));
    let bad_weight = format!("{},{},1e3,{},{}", fields[0], fields[1], fields[3], fields[4]);
    let missing_field = fields[..4].join(",");
    lines.extend([repeated, other_weight, bad_weight, missing_field]);
    let (bad_line, missing_line) = (lines.len() - 1, lines.len());
    std::fs::write(&setup.importance, lines.join("\n") + "\n").unwrap();
    setup.upload(&[]);
    let mut args = vec!["run".to_owned(), "--until-idle".to_owned()];
    args.extend(setup.detect_args());
    let out = setup.txp(&args.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("2 importance rows rejected"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "line {bad_line} (Weight): not a decimal with at most 15 digits before the point and 6 after: '1e3'"
        )),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("line {missing_line}: expected 5 fields, found 4")), "{stderr}");
    let (code, text) = setup.verify(&[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(", 2 rejected"), "{text}");
    setup.assert_verified(&[]);
}
