//! Measures the two ways of writing a chunk's aggregate rows on PostgreSQL inside a sea-orm
//! transaction: sea-orm's multi-row `insert_many` (batches of 4,000 rows) and one
//! `INSERT … SELECT FROM UNNEST(arrays)`. `make bench-insert` runs it; the figures are in
//! docs/performance.md. It creates a database of its own on `TXP_BENCH_POSTGRES`
//! (default postgres://postgres@127.0.0.1:5432/postgres) and drops it at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::cast_possible_truncation)]

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, Statement, TransactionTrait};
use txp_consumer::chunks::{PairInsert, insert_pairs};
use txp_core::aggregate::{Genders, PairAggregate};

const REPEATS: usize = 7;

fn pairs(n: usize) -> Vec<PairAggregate> {
    (0..n)
        .map(|i| PairAggregate {
            merchant: format!("'M{:09}'", i % 50),
            customer: format!("'C{:010}'", i * 7919 % 1_000_003),
            count: 1 + (i as u64 % 9),
            amount_micros: 12_345_678 + i as u128,
            genders: Genders::from_bits(1),
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let admin_url = std::env::var("TXP_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("txp_bench_insert_{}", std::process::id());
    let admin = Database::connect(&admin_url).await.expect("PostgreSQL reachable");
    let backend = admin.get_database_backend();
    admin.execute_raw(Statement::from_string(backend, format!("CREATE DATABASE {name}"))).await.unwrap();
    let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
    let db = txp_connectors::database::connect(&url).await.unwrap();
    println!("rows per chunk | insert_many median | UNNEST median | speed-up");
    let mut chunk = 0u64;
    for n in [1_000, 5_000, 20_000, 50_000] {
        let rows = pairs(n);
        let mut medians = Vec::new();
        for method in [PairInsert::InsertMany, PairInsert::Unnest] {
            let mut times: Vec<Duration> = Vec::new();
            for _ in 0..REPEATS {
                let started = Instant::now();
                let txn = db.begin().await.unwrap();
                insert_pairs(&txn, "bench", chunk, &rows, method).await.unwrap();
                txn.commit().await.unwrap();
                times.push(started.elapsed());
                chunk += 1;
            }
            times.sort();
            medians.push(times[REPEATS / 2]);
        }
        println!(
            "{n:>14} | {:>15.1} ms | {:>10.1} ms | {:.2}×",
            medians[0].as_secs_f64() * 1e3,
            medians[1].as_secs_f64() * 1e3,
            medians[0].as_secs_f64() / medians[1].as_secs_f64()
        );
    }
    db.close().await.unwrap();
    admin
        .execute_raw(Statement::from_string(backend, format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .await
        .unwrap();
}
