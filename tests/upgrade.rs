//! Upgrading in mid-stream (issue 27): chunks committed before the encoding have per-pair
//! `chunk_pair` rows and no encoded value. After the upgrade the detector reads them as before,
//! the later chunks are committed encoded, and the stream's output agrees with `txp verify`.
//! The earlier commits are written the way the previous release wrote them (the record and its
//! pair rows in one transaction, `chunks::insert_pairs`), on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;

use std::time::Duration;

use common::*;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, Database, EntityTrait, PaginatorTrait, Set, TransactionTrait,
};
use txp_connectors::queue::{DbQueue, Queue, QueueSettings};
use txp_consumer::chunks::{PairInsert, insert_pairs};
use txp_core::aggregate::ChunkAggregate;

const ROWS: u64 = 6_000;
/// Chunks committed before the upgrade, per-pair.
const BEFORE: usize = 3;

fn run(database: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (source, importance) = dataset(root, ROWS, 9);
    let input = root.join("input");
    let txp_db = |args: &[&str]| {
        let mut cmd = txp(root);
        cmd.args(["--preset", "seed"])
            .args(args)
            .args(["--database", database])
            .timeout(Duration::from_secs(300));
        cmd
    };
    // Uploaded with its messages on a staging queue; the test publishes them itself.
    let upload = ["upload", "--source", source.to_str().unwrap(), "--to", input.to_str().unwrap()];
    txp_db(&upload)
        .args(["--interval", "0", "--chunk-rows", "1000", "--set", "queue.name=staging"])
        .assert()
        .success();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(txp_connectors::database::connect(database)).unwrap();
    let messages = recorded_messages(&rt, &db);
    assert_eq!(messages.len(), 6);
    // The first chunks committed as the previous release did: record and pair rows.
    rt.block_on(async {
        for message in &messages[..BEFORE] {
            let part = std::fs::read(input.join(&message.objects[0])).unwrap();
            let aggregate = ChunkAggregate::from_part(message.chunk, &message.objects[0], &part[..]).unwrap();
            let txn = db.begin().await.unwrap();
            txp_entity::chunk_record::ActiveModel {
                stream: Set("default".to_owned()),
                chunk_index: Set(message.chunk as i64),
                sha256: Set(message.sha256.clone()),
                valid_rows: Set(aggregate.valid_rows as i64),
                rejected_rows: Set(aggregate.rejected.len() as i64),
                pairs: Set(aggregate.pairs.len() as i64),
                skipped_reason: Set(None),
                committed_at_ms: Set(0),
            }
            .insert(&txn)
            .await
            .unwrap();
            let method = PairInsert::for_backend(txn.get_database_backend());
            insert_pairs(&txn, "default", message.chunk, &aggregate.pairs, method).await.unwrap();
            txn.commit().await.unwrap();
        }
        // Every message published, the early ones too (a redelivery is a duplicate).
        let settings = QueueSettings {
            name: "txp-chunks".to_owned(),
            delivery_limit: 5,
            visibility_timeout: Duration::from_secs(60),
        };
        let queue = DbQueue::new(db.clone(), settings);
        queue.setup().await.unwrap();
        for message in &messages {
            queue.publish(&message.encode()).await.unwrap();
        }
    });
    let consumed = stdout(&mut txp_db(&["consume", "--until-idle"]));
    assert!(consumed.contains("consumed    3 committed, 3 duplicates acked"), "{consumed}");
    let (pair_rows, encoded) = rt.block_on(async {
        (
            txp_entity::chunk_pair::Entity::find().count(&db).await.unwrap(),
            txp_entity::chunk_aggregate::Entity::find().count(&db).await.unwrap(),
        )
    });
    assert!(pair_rows > 0 && encoded == 3, "{pair_rows} pair rows, {encoded} encoded chunks");
    let output = root.join("output");
    let detect = [
        "detect",
        "--until-idle",
        "--output",
        output.to_str().unwrap(),
        "--importance",
        importance.to_str().unwrap(),
    ];
    stdout(&mut txp_db(&detect));
    assert_seed_output_verified(root, &source, 1000, &importance, &output);
}

#[test]
fn chunks_committed_per_pair_before_the_upgrade_are_read_as_before_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    run(&format!("sqlite://{}", dir.path().join("txp.db").display()));
}

#[test]
fn chunks_committed_per_pair_before_the_upgrade_are_read_as_before_on_postgres() {
    const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
    let name = format!(
        "t_upgrade_{}_{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let admin = rt.block_on(Database::connect(ADMIN)).expect("PostgreSQL on 127.0.0.1:5432 (user postgres)");
    rt.block_on(admin.execute_unprepared(&format!("CREATE DATABASE {name}"))).unwrap();
    let result = std::panic::catch_unwind(|| run(&format!("postgres://postgres@127.0.0.1:5432/{name}")));
    let _ = rt.block_on(admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")));
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
