//! `txp status` and `txp explain` on a finished pipeline, through the `txp` binary: on embedded
//! SQLite (20,000 rows in chunks of 1,000 under the seed preset, so that every pattern is
//! detected), the numbers status prints are the database's and the output files', and explain
//! finds each pattern's detection at the chunk the reference engine gives and with figures that
//! meet its condition. On PostgreSQL with RabbitMQ, status reports the broker's depth and masks
//! every password.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use sea_orm::{ColumnTrait, ConnectionTrait, Database, EntityTrait, PaginatorTrait, QueryFilter, Statement};
use serde_json::Value;
use txp_core::engine::{Figures, compare_means};
use txp_core::importance::WeightSum;
use txp_entity::{chunk_record, detection, detector_state, output_file, upload_ledger};

const ROWS: u64 = 20_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// A test folder whose stream `default` was uploaded and run until idle on SQLite.
struct Finished {
    dir: tempfile::TempDir,
    database: String,
    importance: PathBuf,
}

impl Finished {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (source, importance) = dataset(dir.path(), ROWS, 11);
        let database = format!("sqlite://{}", dir.path().join("txp.db").display());
        let finished = Self { dir, database, importance };
        let source = source.display().to_string();
        finished
            .txp(&["upload", "--source", &source, "--to", "input", "--interval", "0", "--chunk-rows", "1000"])
            .assert()
            .success();
        let importance = finished.importance.display().to_string();
        let run = ["run", "--until-idle", "--output", "output", "--importance", &importance];
        stdout(&mut finished.txp(&run));
        finished
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `txp --preset seed ARGS --database URL` in the test folder.
    fn txp(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = txp(self.path());
        cmd.args(["--preset", "seed"]).args(args).args(["--database", &self.database]);
        cmd.timeout(Duration::from_secs(300));
        cmd
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&stdout(&mut self.txp(args))).unwrap()
    }

    /// Every output file's rows: (folder name, patternId, ActionType, customerName, MerchantId).
    fn output_rows(&self) -> Vec<(String, String, String, String, String)> {
        let mut rows = Vec::new();
        for entry in std::fs::read_dir(self.path().join("output")).unwrap() {
            let path = entry.unwrap().path();
            assert!(path.join("_SUCCESS").is_file(), "{}", path.display());
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let mut reader = csv::Reader::from_path(path.join("part-00000.csv")).unwrap();
            for record in reader.records() {
                let r = record.unwrap();
                rows.push((name.clone(), r[2].to_owned(), r[3].to_owned(), r[4].to_owned(), r[5].to_owned()));
            }
        }
        rows
    }

    fn output_folders(&self) -> usize {
        std::fs::read_dir(self.path().join("output")).unwrap().count()
    }
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

fn sorted(mut keys: Vec<&str>) -> Vec<&str> {
    keys.sort_unstable();
    keys
}

const STREAM_KEYS: [&str; 18] = [
    "stream",
    "source",
    "destination",
    "chunk_rows",
    "chunks_stored",
    "chunks_published",
    "upload_finished",
    "last_chunk",
    "chunks_committed",
    "chunks_skipped",
    "rows_valid",
    "rows_rejected",
    "high_water",
    "shards",
    "detections",
    "detections_pending",
    "output_files_written",
    "output_files_pending",
];

#[test]
fn status_json_equals_what_the_database_and_the_output_files_hold() {
    let done = Finished::new();
    let status = done.json(&["status", "--json"]);
    assert_eq!(keys(&status), ["database", "queue", "streams"]);
    assert_eq!(status["database"], done.database.as_str());
    let queue = &status["queue"];
    assert_eq!(
        keys(queue),
        sorted(vec!["backend", "url", "name", "dead_letter_queue", "ready", "in_flight", "dead"])
    );
    assert_eq!((queue["backend"].as_str(), queue["url"].as_str()), (Some("db"), Some("db")));
    assert_eq!(
        (queue["ready"].as_u64(), queue["in_flight"].as_u64(), queue["dead"].as_u64()),
        (Some(0), Some(0), Some(0))
    );
    let streams = status["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "{status:#}");
    let s = &streams[0];
    assert_eq!(keys(s), sorted(STREAM_KEYS.to_vec()));
    assert_eq!(s["stream"], "default");
    assert_eq!(keys(&s["detections"]), ["CHILD", "DEI-NEEDED", "UPGRADE"]);
    let shard = &s["shards"][0];
    assert_eq!(
        keys(shard),
        sorted(vec![
            "shard",
            "shards",
            "folded_through",
            "persisted_through",
            "next_chunk",
            "lag_chunks",
            "done"
        ])
    );

    // The database's own counts.
    let rt = runtime();
    let db = rt.block_on(Database::connect(&done.database)).unwrap();
    let (stored, published, committed, skipped, state, by_pattern, written) = rt.block_on(async {
        let ledger = || upload_ledger::Entity::find().filter(upload_ledger::Column::Stream.eq("default"));
        let records = || chunk_record::Entity::find().filter(chunk_record::Column::Stream.eq("default"));
        let mut by_pattern = BTreeMap::new();
        for d in detection::Entity::find().all(&db).await.unwrap() {
            *by_pattern.entry(d.pattern).or_insert(0u64) += 1;
        }
        (
            ledger().count(&db).await.unwrap(),
            ledger().filter(upload_ledger::Column::PublishedAtMs.is_not_null()).count(&db).await.unwrap(),
            records().count(&db).await.unwrap(),
            records().filter(chunk_record::Column::SkippedReason.is_not_null()).count(&db).await.unwrap(),
            detector_state::Entity::find().all(&db).await.unwrap(),
            by_pattern,
            output_file::Entity::find()
                .filter(output_file::Column::WrittenAtMs.is_not_null())
                .count(&db)
                .await
                .unwrap(),
        )
    });
    assert_eq!((stored, published, committed, skipped), (20, 20, 20, 0));
    assert_eq!(s["chunks_stored"].as_u64(), Some(stored));
    assert_eq!(s["chunks_published"].as_u64(), Some(published));
    assert_eq!(s["chunks_committed"].as_u64(), Some(committed));
    assert_eq!(s["chunks_skipped"].as_u64(), Some(skipped));
    assert_eq!(s["rows_valid"].as_u64(), Some(ROWS));
    assert_eq!(s["upload_finished"], true);
    assert_eq!((s["last_chunk"].as_i64(), s["high_water"].as_i64()), (Some(19), Some(19)));
    assert_eq!(state.len(), 1);
    assert_eq!(s["shards"].as_array().unwrap().len(), 1);
    assert_eq!(shard["folded_through"].as_i64(), state[0].folded_through);
    assert_eq!(shard["persisted_through"].as_i64(), state[0].persisted_through);
    assert_eq!((shard["next_chunk"].as_i64(), shard["lag_chunks"].as_i64()), (Some(20), Some(0)));
    assert_eq!(shard["done"], true);
    for (id, action) in [("PatId1", "UPGRADE"), ("PatId2", "CHILD"), ("PatId3", "DEI-NEEDED")] {
        let n = by_pattern.get(id).copied().unwrap_or(0);
        assert!(n > 0, "no {action} detection: choose data that has every pattern");
        assert_eq!(s["detections"][action].as_u64(), Some(n), "{action}");
    }
    assert_eq!(s["detections_pending"].as_u64(), Some(0));
    assert_eq!(s["output_files_pending"].as_u64(), Some(0));
    assert_eq!(s["output_files_written"].as_u64(), Some(written));

    // And the output files on disk: as many, holding every detection once.
    assert_eq!(done.output_folders() as u64, written);
    let rows = done.output_rows();
    let total: u64 =
        ["UPGRADE", "CHILD", "DEI-NEEDED"].iter().map(|p| s["detections"][*p].as_u64().unwrap()).sum();
    assert_eq!(rows.len() as u64, total);
    for action in ["UPGRADE", "CHILD", "DEI-NEEDED"] {
        let in_files = rows.iter().filter(|r| r.2 == action).count() as u64;
        assert_eq!(s["detections"][action].as_u64(), Some(in_files), "{action}");
    }

    // `--stream default` gives the same stream; the human form names it and its figures.
    let one = done.json(&["status", "--json", "--stream", "default"]);
    assert_eq!(one["streams"], status["streams"]);
    let text = stdout(&mut done.txp(&["status"]));
    assert!(text.contains("stream      default"), "{text}");
    assert!(text.contains("20 chunks stored, 20 published; finished: ends at chunk 19"), "{text}");
    assert!(text.contains("shard 0/1 folded through 19, persisted through 19; done; lag 0 chunks"), "{text}");
    assert!(text.contains(&format!("UPGRADE {}", s["detections"]["UPGRADE"])), "{text}");
    assert!(text.contains("0 ready, 0 in flight, 0 dead letters"), "{text}");

    // An unknown stream is bad usage, with the known ones named.
    let out = done.txp(&["status", "--stream", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no stream `nope`") && err.contains("known streams: default"), "{err}");
}

/// `verify --emit`: the reference engine's chunk index of every key.
fn reference_chunks(done: &Finished) -> BTreeMap<(String, String, String), i64> {
    let importance = done.importance.display().to_string();
    let verify = [
        "--preset",
        "seed",
        "verify",
        "--input",
        "input",
        "--importance",
        &importance,
        "--emit",
        "expected.csv",
    ];
    stdout(txp(done.path()).args(verify));
    let mut chunks = BTreeMap::new();
    let mut reader = csv::Reader::from_path(done.path().join("expected.csv")).unwrap();
    for record in reader.records() {
        let r = record.unwrap();
        chunks.insert((r[0].to_owned(), r[2].to_owned(), r[3].to_owned()), r[4].parse().unwrap());
    }
    chunks
}

fn weight(value: &Value) -> WeightSum {
    let sum = value[0].as_str().unwrap();
    WeightSum {
        sum_micros: txp_core::decimal::parse_signed_micros(sum.as_bytes()).unwrap(),
        count: value[1].as_u64().unwrap(),
    }
}

/// The pattern's condition (docs/patterns.md §3) on the figures explain printed, seed preset.
fn assert_condition(action: &str, figures: &Value) {
    let seed = txp_core::Preset::Seed.thresholds();
    let f: Figures = serde_json::from_value(figures.clone()).unwrap();
    match action {
        "UPGRADE" => {
            assert!(f.merchant_txns > seed.upgrade_min_merchant_txns, "{figures}");
            assert_eq!(f.k, Some(seed.upgrade_top_pct.rank_of(f.merchant_customers)), "{figures}");
            assert!(f.pair_txns.unwrap() >= f.count_cutoff.unwrap(), "{figures}");
            let (pair, cutoff) = (weight(&figures["pair_weight"]), weight(&figures["weight_cutoff"]));
            assert!(compare_means(pair, cutoff).is_le(), "{figures}");
        }
        "CHILD" => {
            let n = f.pair_txns.unwrap();
            assert!(n > seed.child_min_txns, "{figures}");
            let sum = txp_core::decimal::parse_unsigned_micros(f.pair_amount.unwrap().as_bytes()).unwrap();
            assert!(sum < seed.child_max_avg_amount.micros() * u128::from(n), "{figures}");
        }
        _ => {
            assert!(f.pair_txns.is_none(), "{figures}");
            assert!(f.female_customers > seed.dei_min_female_customers, "{figures}");
            assert!(f.female_customers < f.male_customers, "{figures}");
        }
    }
}

#[test]
fn explain_gives_each_pattern_its_chunk_file_and_figures() {
    let done = Finished::new();
    let reference = reference_chunks(&done);
    let rows = done.output_rows();
    for action in ["UPGRADE", "CHILD", "DEI-NEEDED"] {
        let (file, id, _, customer, merchant) =
            rows.iter().find(|r| r.2 == action).unwrap_or_else(|| panic!("no {action} row in the output"));
        let chunk = reference[&(id.clone(), customer.clone(), merchant.clone())];
        let mut args = vec!["explain", "--pattern", action, "--merchant", merchant];
        if action != "DEI-NEEDED" {
            args.extend(["--customer", customer]);
        }
        // JSON: the stored figures, the chunk, the file.
        let mut json_args = args.clone();
        json_args.push("--json");
        let e = done.json(&json_args);
        assert_eq!(e["pattern"], action);
        assert_eq!(e["pattern_id"], id.as_str());
        assert_eq!(e["chunk"].as_i64(), Some(chunk), "{e:#}");
        assert_eq!(e["file"]["name"], file.as_str(), "{e:#}");
        assert_eq!(e["file"]["written"], true);
        assert_condition(action, &e["figures"]);
        let checks = e["checks"].as_array().unwrap();
        assert!(checks.len() >= 2 && checks.iter().all(|c| c["met"] == true), "{e:#}");
        // Text: the chunk, the file and a line per threshold it met.
        let text = stdout(&mut done.txp(&args));
        assert!(text.contains(&format!("chunk       {chunk} ")), "{text}");
        assert!(text.contains(file.as_str()), "{text}");
        let setting = match action {
            "UPGRADE" => "(patterns.upgrade.min_merchant_txns)",
            "CHILD" => "(patterns.child.max_avg_amount)",
            _ => "(patterns.dei.min_female_customers)",
        };
        assert!(text.lines().any(|l| l.contains("met: ") && l.contains(setting)), "{text}");
        assert!(!text.contains("NOT MET"), "{text}");
    }

    // No such detection: exit 1, saying so.
    let out = done
        .txp(&["explain", "--pattern", "CHILD", "--customer", "C0", "--merchant", "M0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no CHILD detection of customer C0 at merchant M0") && err.contains("txp status"),
        "{err}"
    );
    // DEI-NEEDED has no customer; the others need one.
    let out = done
        .txp(&["explain", "--pattern", "DEI-NEEDED", "--customer", "C0", "--merchant", "M0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = done.txp(&["explain", "--pattern", "UPGRADE", "--merchant", "M0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--customer is required"));
    let out = done.txp(&["explain", "--pattern", "nope", "--merchant", "M0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh PostgreSQL database, dropped at the end of the test.
struct FreshDatabase(String);

impl FreshDatabase {
    fn create() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let name = format!("t_status_{}_{nanos}", std::process::id());
        runtime().block_on(async {
            let admin = Database::connect(ADMIN).await.expect("PostgreSQL on 127.0.0.1:5432 (user postgres)");
            admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
        });
        Self(name)
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            runtime().block_on(async {
                if let Ok(admin) = Database::connect(ADMIN).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ =
                        admin.execute_raw(Statement::from_string(admin.get_database_backend(), drop)).await;
                }
            });
        })
        .join();
    }
}

/// Deletes the test's RabbitMQ queues when dropped, even when the test fails.
struct DeleteQueues(String);

impl Drop for DeleteQueues {
    fn drop(&mut self) {
        let names = [self.0.clone(), format!("{}-dlq", self.0)];
        let _ = std::thread::spawn(move || {
            runtime().block_on(async {
                use lapin::options::QueueDeleteOptions;
                let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
                if let Ok(connection) =
                    lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await
                {
                    for name in names {
                        if let Ok(channel) = connection.create_channel().await {
                            let _ = channel
                                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                                .await;
                        }
                    }
                }
            });
        })
        .join();
    }
}

#[test]
fn status_on_postgres_reports_the_rabbitmq_depth_with_passwords_masked() {
    let pg = FreshDatabase::create();
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = dataset(dir.path(), 3_000, 5);
    // Trust authentication ignores the password: it is there to be masked.
    let database = format!("postgres://postgres:db-secret@127.0.0.1:5432/{}", pg.0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let name = format!("txp-status-{}-{nanos:x}", std::process::id());
    let _queues = DeleteQueues(name.clone());
    let amqp = "amqp://guest:guest@127.0.0.1:5672/%2f";
    let with = |args: &[&str]| {
        let mut cmd = txp(dir.path());
        cmd.args(["--set", &format!("queue.name={name}")]).args(args).args(["--database", &database]);
        cmd.timeout(Duration::from_secs(120));
        cmd
    };
    let source = source.display().to_string();
    with(&["upload", "--source", &source, "--to", "input", "--interval", "0", "--chunk-rows", "1000"])
        .args(["--queue", amqp, "--stream", "pg"])
        .assert()
        .success();
    // Three chunks announced, none consumed yet.
    let out = stdout(&mut with(&["status", "--json", "--queue", amqp]));
    assert!(!out.contains("guest:guest") && !out.contains("db-secret"), "{out}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["database"], database.replace("db-secret", "****").as_str());
    let queue = &status["queue"];
    assert_eq!(queue["backend"], "rabbitmq", "{status:#}");
    assert_eq!(queue["url"], "amqp://guest:****@127.0.0.1:5672/%2f");
    assert_eq!(queue["name"], name.as_str());
    assert_eq!((queue["ready"].as_u64(), queue["dead"].as_u64()), (Some(3), Some(0)), "{status:#}");
    let s = &status["streams"][0];
    assert_eq!(s["stream"], "pg");
    assert_eq!((s["chunks_stored"].as_u64(), s["chunks_published"].as_u64()), (Some(3), Some(3)));
    assert_eq!((s["chunks_committed"].as_u64(), s["upload_finished"].as_bool()), (Some(0), Some(true)));
    assert_eq!(s["shards"].as_array().map(Vec::len), Some(0));
    assert_eq!(s["detections"]["UPGRADE"].as_u64(), Some(0));
    let text = stdout(&mut with(&["status", "--queue", amqp]));
    assert!(
        text.contains("3 ready") && text.contains("amqp://guest:****@") && !text.contains("db-secret"),
        "{text}"
    );

    // A broker that cannot be reached is reported, and the rest is still printed: exit 0.
    let out = stdout(&mut with(&["status", "--json", "--queue", "amqp://guest:guest@127.0.0.1:1/%2f"]));
    assert!(!out.contains("guest:guest"), "{out}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert!(status["queue"]["error"].is_string(), "{status:#}");
    assert!(status["queue"].get("ready").is_none(), "{status:#}");
    assert_eq!(status["streams"][0]["chunks_stored"].as_u64(), Some(3));
}
