//! The floors a catch-up is compared with, measured in the same run on the same file: the core
//! alone (parse, validate and aggregate every chunk in memory, no I/O), and PostgreSQL alone
//! (the same per-chunk aggregate rows written with COPY, one COPY and commit per chunk, into a
//! freshly migrated database, nothing else).

use std::num::NonZeroU64;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use txp_consumer::chunks::copy_rows;
use txp_core::aggregate::ChunkAggregate;
use txp_core::{Engine, ImportanceTable, Preset};
use txp_migration::{Migrator, MigratorTrait};
use txp_uploader::cut::ChunkCutter;

use crate::rig::{Rig, Scenario, millis};

/// The core's floor is the best of this many passes (the machine is shared and noisy).
const CORE_PASSES: usize = 3;

/// What the floors measured.
#[derive(Debug, Clone, Serialize)]
pub struct Floors {
    pub chunks: u64,
    pub rows: u64,
    pub pairs: u64,
    /// Parse + validate + aggregate of every chunk, in memory: the best of three passes.
    pub core_ms: u64,
    /// COPY of every chunk's aggregate rows into PostgreSQL.
    pub copy_ms: u64,
    /// Detections the incremental engine finds on the file: what every run must commit.
    pub expected_detections: u64,
}

impl Floors {
    /// The sum of both floors.
    pub fn sum_ms(&self) -> u64 {
        self.core_ms + self.copy_ms
    }
}

/// The file cut into chunks as the uploader cuts it.
pub fn cut(transactions: &Path, chunk_rows: u64) -> Result<Vec<(u64, Vec<u8>)>> {
    let file = std::fs::File::open(transactions)
        .with_context(|| format!("cannot read {}", transactions.display()))?;
    let rows = NonZeroU64::new(chunk_rows).context("chunk rows must be at least 1")?;
    let cutter = ChunkCutter::new(std::io::BufReader::new(file), rows)?;
    let mut chunks = Vec::new();
    for chunk in cutter {
        let chunk = chunk?;
        chunks.push((chunk.index, chunk.bytes));
    }
    Ok(chunks)
}

/// Aggregates every chunk; the time of the pass.
pub fn aggregate_all(chunks: &[(u64, Vec<u8>)]) -> Result<(Vec<ChunkAggregate>, Duration)> {
    let started = Instant::now();
    let aggregates = chunks
        .iter()
        .map(|(index, bytes)| ChunkAggregate::from_part(*index, "part-00000.csv", bytes))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((aggregates, started.elapsed()))
}

/// Measures both floors on `transactions`, the COPY one in `scenario`'s (fresh) database.
pub fn measure(rig: &Rig, scenario: &Scenario, transactions: &Path, importance: &Path) -> Result<Floors> {
    let chunks = cut(transactions, 10_000)?;
    let mut best = Duration::MAX;
    let mut aggregates = Vec::new();
    for _ in 0..CORE_PASSES {
        let (pass, took) = aggregate_all(&chunks)?;
        best = best.min(took);
        aggregates = pass;
    }
    let table = ImportanceTable::read(&std::fs::read(importance)?[..])?;
    let mut engine = Engine::new(Preset::Banksim.thresholds(), table);
    let mut expected = 0u64;
    for aggregate in &aggregates {
        expected += engine.apply(aggregate)?.len() as u64;
    }
    let copy = copy_floor(rig, scenario, &aggregates)?;
    Ok(Floors {
        chunks: chunks.len() as u64,
        rows: aggregates.iter().map(|a| a.valid_rows + a.rejected.len() as u64).sum(),
        pairs: aggregates.iter().map(|a| a.pairs.len() as u64).sum(),
        core_ms: millis(best),
        copy_ms: millis(copy),
        expected_detections: expected,
    })
}

/// COPY of each chunk's rows (built beforehand, untimed) into `chunk_pair`, one COPY a chunk.
fn copy_floor(rig: &Rig, scenario: &Scenario, aggregates: &[ChunkAggregate]) -> Result<Duration> {
    // The rows as the consumer sends them (its COPY), built beforehand.
    let bodies: Vec<Vec<u8>> =
        aggregates.iter().map(|a| copy_rows(&scenario.stream, a.index, &a.pairs).into_bytes()).collect();
    let db = rig.connect(scenario)?;
    rig.runtime.block_on(async {
        Migrator::up(&db, None).await?;
        let pool = db.get_postgres_connection_pool();
        let mut conn = pool.acquire().await?;
        let started = Instant::now();
        for body in bodies {
            let mut copy = conn
                .copy_in_raw(
                    "COPY chunk_pair (stream, chunk_index, merchant, customer, txn_count, amount_micros, genders) \
                     FROM STDIN",
                )
                .await?;
            copy.send(body).await?;
            copy.finish().await?;
        }
        let took = started.elapsed();
        drop(conn);
        db.close().await?;
        Ok(took)
    })
}
