//! The embedded queue on PostgreSQL (a fresh database per test) and SQLite: leases, acks,
//! releases, the delivery limit, dead letters with reasons, stale acks, and concurrent receivers
//! that never get the same message (FOR UPDATE SKIP LOCKED).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

mod support {
    pub mod dead_letters;
}

use std::collections::BTreeSet;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use txp_connectors::queue::{DbQueue, Queue, QueueSettings};

const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh PostgreSQL database, dropped when the guard goes.
struct FreshDatabase {
    name: String,
}

impl FreshDatabase {
    async fn create() -> (Self, DatabaseConnection) {
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        );
        let admin = Database::connect(ADMIN).await.expect("PostgreSQL on 127.0.0.1:5432 (user postgres)");
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
        let db = txp_connectors::database::connect(&format!("postgres://postgres@127.0.0.1:5432/{name}"))
            .await
            .unwrap();
        (Self { name }, db)
    }

    async fn drop_now(self, db: DatabaseConnection) {
        db.close().await.unwrap();
        let admin = Database::connect(ADMIN).await.unwrap();
        admin
            .execute_raw(Statement::from_string(
                admin.get_database_backend(),
                format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ))
            .await
            .unwrap();
    }
}

fn settings(limit: u32, visibility_ms: u64) -> QueueSettings {
    QueueSettings {
        name: "txp-chunks".into(),
        delivery_limit: limit,
        visibility_timeout: Duration::from_millis(visibility_ms),
    }
}

async fn semantics(db: DatabaseConnection) {
    let queue = DbQueue::new(db.clone(), settings(2, 1_000));
    queue.setup().await.unwrap();
    for body in ["a", "b", "c"] {
        queue.publish(body.as_bytes()).await.unwrap();
    }
    let first = queue.receive(2, Duration::ZERO).await.unwrap();
    assert_eq!(
        first.iter().map(|d| (d.body.clone(), d.attempt)).collect::<Vec<_>>(),
        vec![(b"a".to_vec(), 1), (b"b".to_vec(), 1)]
    );
    let depth = queue.depth().await.unwrap();
    assert_eq!((depth.ready, depth.in_flight, depth.dead), (1, 2, 0));
    queue.ack(&first[0]).await.unwrap();
    queue.release(&first[1]).await.unwrap();
    let second = queue.receive(10, Duration::ZERO).await.unwrap();
    assert_eq!(
        second.iter().map(|d| (d.body.clone(), d.attempt)).collect::<Vec<_>>(),
        vec![(b"b".to_vec(), 2), (b"c".to_vec(), 1)]
    );
    // b has been delivered twice (the limit): released again, its next receive dead-letters it.
    queue.release(&second[0]).await.unwrap();
    queue.dead_letter(&second[1], "conflicting content").await.unwrap();
    assert!(queue.receive(10, Duration::ZERO).await.unwrap().is_empty());
    let depth = queue.depth().await.unwrap();
    assert_eq!((depth.ready, depth.in_flight, depth.dead), (0, 0, 2));
    let dlq =
        DbQueue::new(db.clone(), QueueSettings { name: "txp-chunks-dlq".into(), ..settings(100, 1_000) });
    let dead = dlq.receive(10, Duration::ZERO).await.unwrap();
    assert_eq!(dead.len(), 2);

    // A lease that expired and was taken again: the old delivery's ack changes nothing.
    queue.publish(b"d").await.unwrap();
    let old = queue.receive(1, Duration::ZERO).await.unwrap().remove(0);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let new = queue.receive(1, Duration::ZERO).await.unwrap().remove(0);
    assert_eq!((old.attempt, new.attempt), (1, 2));
    queue.ack(&old).await.unwrap();
    assert_eq!(queue.depth().await.unwrap().in_flight, 1, "the stale ack removed nothing");
    queue.ack(&new).await.unwrap();
    assert_eq!(queue.depth().await.unwrap().in_flight, 0);

    // receive waits for a message up to its deadline.
    let started = std::time::Instant::now();
    assert!(queue.receive(1, Duration::from_millis(300)).await.unwrap().is_empty());
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn embedded_queue_semantics_on_postgres() {
    let (fresh, db) = FreshDatabase::create().await;
    semantics(db.clone()).await;
    fresh.drop_now(db).await;
}

#[tokio::test]
async fn dead_letters_are_received_released_and_acked_on_postgres() {
    let (fresh, db) = FreshDatabase::create().await;
    let queue = DbQueue::new(db.clone(), settings(5, 1_000));
    support::dead_letters::dead_letter_contract(&queue, Some(Duration::from_secs(1))).await;
    fresh.drop_now(db).await;
}

#[tokio::test]
async fn dead_letters_are_received_released_and_acked_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = txp_connectors::database::connect(&format!("sqlite://{}", dir.path().join("q.db").display()))
        .await
        .unwrap();
    let queue = DbQueue::new(db, settings(5, 1_000));
    support::dead_letters::dead_letter_contract(&queue, Some(Duration::from_secs(1))).await;
}

#[tokio::test]
async fn embedded_queue_semantics_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = txp_connectors::database::connect(&format!("sqlite://{}", dir.path().join("q.db").display()))
        .await
        .unwrap();
    semantics(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_receivers_never_share_a_message_on_postgres() {
    let (fresh, db) = FreshDatabase::create().await;
    let queue = DbQueue::new(db.clone(), settings(5, 60_000));
    for i in 0..200 {
        queue.publish(format!("m{i}").as_bytes()).await.unwrap();
    }
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = queue.receive(7, Duration::ZERO).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                for d in batch {
                    got.push(String::from_utf8(d.body.clone()).unwrap());
                    queue.ack(&d).await.unwrap();
                }
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 200, "every message received once");
    assert_eq!(distinct.len(), 200);
    fresh.drop_now(db).await;
}
