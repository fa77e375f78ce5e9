//! Committed chunks on SQLite and PostgreSQL: a chunk with more pairs than one multi-row INSERT
//! can bind round-trips exactly; a second commit of the same chunk writes nothing; other content
//! under the same index is a conflict; a skipped chunk cannot be committed; on PostgreSQL a
//! commit is announced to the listeners of its stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use txp_consumer::chunks::{CommitOutcome, commit_chunk, load_chunk, skip_chunk};
use txp_consumer::handoff::listen_for_commits;
use txp_core::aggregate::{ChunkAggregate, Genders, PairAggregate};

/// A chunk with `pairs` distinct pairs and amounts beyond 64 bits.
fn big_chunk(index: u64, pairs: usize) -> ChunkAggregate {
    let mut out: Vec<PairAggregate> = (0..pairs)
        .map(|i| PairAggregate {
            merchant: format!("'M{}'", i % 50),
            customer: format!("'C{i}'"),
            count: 1 + (i as u64 % 7),
            amount_micros: u128::from(u64::MAX) * 3 + i as u128,
            // Every valid row has a gender: a pair's set is never empty (the encoding refuses one).
            genders: Genders::from_bits((i % 15) as u8 + 1),
        })
        .collect();
    out.sort_unstable();
    ChunkAggregate { index, valid_rows: out.iter().map(|p| p.count).sum(), pairs: out, rejected: Vec::new() }
}

async fn exercise(db: &DatabaseConnection) {
    let chunk = big_chunk(3, 12_345);
    assert_eq!(commit_chunk(db, "s", "aa", &chunk, None, false).await.unwrap(), CommitOutcome::Committed);
    assert_eq!(load_chunk(db, "s", 3).await.unwrap().unwrap(), chunk);
    assert_eq!(
        commit_chunk(db, "s", "aa", &chunk, None, false).await.unwrap(),
        CommitOutcome::AlreadyCommitted
    );
    assert!(matches!(
        commit_chunk(db, "s", "bb", &chunk, None, false).await.unwrap(),
        CommitOutcome::Conflict { recorded_sha256, skipped_reason: None } if recorded_sha256 == "aa"
    ));
    assert!(load_chunk(db, "s", 4).await.unwrap().is_none());
    assert!(skip_chunk(db, "s", 4, "lost").await.unwrap().is_ok());
    assert!(skip_chunk(db, "s", 3, "lost").await.unwrap().is_err());
    assert!(matches!(
        commit_chunk(db, "s", "cc", &big_chunk(4, 3), None, false).await.unwrap(),
        CommitOutcome::Conflict { skipped_reason: Some(_), .. }
    ));
    let skipped = load_chunk(db, "s", 4).await.unwrap().unwrap();
    assert!(skipped.pairs.is_empty());
}

#[tokio::test]
async fn sqlite_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = txp_connectors::database::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    exercise(&db).await;
}

#[tokio::test]
async fn postgres_round_trip() {
    const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
    let name = format!(
        "t_chunks_{}_{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    );
    let admin = Database::connect(ADMIN).await.expect("PostgreSQL on 127.0.0.1:5432 (user postgres)");
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let db = txp_connectors::database::connect(&url).await.unwrap();
    let mut woken = listen_for_commits(&url, "s").await.expect("a listener on PostgreSQL");
    let mut other = listen_for_commits(&url, "other").await.expect("a listener on PostgreSQL");
    exercise(&db).await;
    assert_eq!(
        commit_chunk(&db, "other", "dd", &big_chunk(0, 3), None, false).await.unwrap(),
        CommitOutcome::Committed
    );
    // A commit wakes the listeners of its stream, in any process (LISTEN/NOTIFY), and only them:
    // stream s had one commit (the duplicate and the conflicts rolled back), stream other one.
    for listener in [&mut woken, &mut other] {
        tokio::time::timeout(std::time::Duration::from_secs(10), listener.changed())
            .await
            .expect("a commit is announced")
            .unwrap();
    }
    // Both notifications were sent before either was seen: anything extra would be here by now.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(*woken.borrow(), 1, "stream s: one commit, one wake-up");
    assert_eq!(*other.borrow(), 1, "stream other: one commit, one wake-up");
    db.close().await.unwrap();
    admin
        .execute_raw(Statement::from_string(
            admin.get_database_backend(),
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        ))
        .await
        .unwrap();
}

/// On the embedded queue a message's ack is a statement of the commit's own transaction: the
/// message is gone exactly when the chunk is committed, and a commit refused (a conflict) acks
/// nothing.
#[tokio::test]
async fn the_embedded_queue_acks_in_the_commit_transaction() {
    use std::time::Duration;
    use txp_connectors::queue::{DbQueue, Queue, QueueSettings};
    let dir = tempfile::tempdir().unwrap();
    let db = txp_connectors::database::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    let settings = QueueSettings {
        name: "q".to_owned(),
        delivery_limit: 5,
        visibility_timeout: Duration::from_secs(60),
    };
    let queue = DbQueue::new(db.clone(), settings);
    queue.setup().await.unwrap();
    queue.publish(b"first").await.unwrap();
    queue.publish(b"second").await.unwrap();
    let deliveries = queue.receive(2, Duration::from_secs(1)).await.unwrap();
    assert_eq!(deliveries.len(), 2);
    let ack = queue.ack_in_commit(&deliveries[0]);
    assert!(ack.is_some());
    assert_eq!(
        commit_chunk(&db, "s", "aa", &big_chunk(0, 3), ack, false).await.unwrap(),
        CommitOutcome::Committed
    );
    let depth = queue.depth().await.unwrap();
    assert_eq!((depth.ready, depth.in_flight), (0, 1), "the first message is acked with its commit");
    let ack = queue.ack_in_commit(&deliveries[1]);
    assert!(matches!(
        commit_chunk(&db, "s", "bb", &big_chunk(0, 3), ack, false).await.unwrap(),
        CommitOutcome::Conflict { .. }
    ));
    let depth = queue.depth().await.unwrap();
    assert_eq!((depth.ready, depth.in_flight), (0, 1), "a refused commit acks nothing");
}
