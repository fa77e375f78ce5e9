//! Live: `txp run` (2 workers, 1 shard) waits on PostgreSQL, RabbitMQ and SeaweedFS while the
//! uploader publishes one 10,000-row chunk a second. Per chunk: the time from the upload's
//! publish confirm (the ledger's `published_at_ms`) to its detections committed (the
//! detector's "chunk folded" event), and whether the pipeline fell behind (a chunk's
//! detections committed only after the next chunk was published).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::json;

use crate::catch_up::{dataset, percentile};
use crate::logs;
use crate::plot;
use crate::results::{Check, mib, thousands};
use crate::rig::{Rig, Scenario};

#[path = "../../tests/support/prometheus.rs"]
mod prometheus;

/// One chunk's way through the pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkLatency {
    pub chunk: u64,
    pub published_at_ms: i64,
    pub committed_at_ms: i64,
    pub latency_ms: u64,
}

/// Each chunk's publish-confirm time, from the upload ledger.
fn published(rig: &Rig, scenario: &Scenario) -> Result<Vec<(u64, i64)>> {
    let db = rig.connect(scenario)?;
    let rows = rig.runtime.block_on(async {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        use txp_entity::upload_ledger;
        upload_ledger::Entity::find()
            .filter(upload_ledger::Column::Stream.eq(&scenario.stream))
            .order_by_asc(upload_ledger::Column::ChunkIndex)
            .all(&db)
            .await
    })?;
    rig.runtime.block_on(db.close())?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((u64::try_from(r.chunk_index).ok()?, r.published_at_ms?)))
        .collect())
}

/// Waits until a process answers 200 on /readyz.
fn wait_ready(addr: &str, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Some((200, _)) = prometheus::http_get(addr, "/readyz") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("txp run was not ready on {addr} within {timeout:?}")
}

/// The live benchmark: `chunks` chunks of 10,000 rows, one every `interval_ms`.
pub fn bench(
    rig: &Rig,
    chunks: u64,
    interval_ms: u64,
    results: &Path,
) -> Result<(serde_json::Value, Vec<Check>, serde_json::Value)> {
    let rows = (chunks * 10_000).min(594_643);
    println!("live: generating {} rows", thousands(rows));
    let data = dataset(rig, rows)?;
    let scenario = rig.services("live")?;
    let outcome = run(rig, &scenario, &data, interval_ms);
    rig.clean(&scenario);
    let (run, upload, mut latencies) = outcome?;
    latencies.sort_by_key(|l| l.chunk);
    let behind: Vec<u64> = latencies
        .windows(2)
        .filter(|w| w[0].committed_at_ms > w[1].published_at_ms)
        .map(|w| w[0].chunk)
        .collect();
    let mut sorted: Vec<u64> = latencies.iter().map(|l| l.latency_ms).collect();
    sorted.sort_unstable();
    let (p50, p95, max) =
        (percentile(&sorted, 50), percentile(&sorted, 95), sorted.last().copied().unwrap_or(0));
    println!("live: p50 {p50} ms, p95 {p95} ms, max {max} ms; behind at {} chunks", behind.len());
    let values: Vec<f64> = sorted.iter().map(|&ms| ms as f64).collect();
    plot::latency_distribution(
        &results.join("live-latency.png"),
        &format!(
            "Live: {} chunks of 10,000 rows, one every {interval_ms} ms (txp run, 2 workers)",
            latencies.len()
        ),
        "milliseconds from publish confirm to committed detections",
        &values,
        &[("p50", p50 as f64), ("p95", p95 as f64), ("target p50", 50.0), ("target p95", 150.0)],
    )?;
    let checks = vec![
        Check {
            what: "live, publish confirm → committed detections, p50".to_owned(),
            target: "≤ 50 ms".to_owned(),
            measured: format!("{p50} ms"),
            pass: p50 <= 50,
        },
        Check {
            what: "live, publish confirm → committed detections, p95".to_owned(),
            target: "≤ 150 ms".to_owned(),
            measured: format!("{p95} ms (max {max} ms)"),
            pass: p95 <= 150,
        },
        Check {
            what: "live, never behind (each chunk committed before the next is published)".to_owned(),
            target: "never".to_owned(),
            measured: if behind.is_empty() {
                "never behind".to_owned()
            } else {
                format!("behind after {} of {} chunks", behind.len(), latencies.len())
            },
            pass: behind.is_empty(),
        },
        Check {
            what: "live, every chunk measured".to_owned(),
            target: format!("{chunks} chunks"),
            measured: format!("{} chunks", latencies.len()),
            pass: latencies.len() as u64 == chunks,
        },
    ];
    println!("live: peak RSS txp run {}, upload {}", mib(run.peak_rss_kib), mib(upload.peak_rss_kib));
    let settings = json!({ "chunks": chunks, "chunk_rows": 10_000, "interval_ms": interval_ms, "workers": 2, "shards": 1 });
    let figures = json!({
        "p50_ms": p50, "p95_ms": p95, "max_ms": max,
        "behind_after_chunks": behind,
        "processes": [run, upload],
        "chunks": latencies,
    });
    Ok((settings, checks, figures))
}

type LiveRun = (crate::rig::ProcessFigures, crate::rig::ProcessFigures, Vec<ChunkLatency>);

fn run(rig: &Rig, scenario: &Scenario, data: &crate::catch_up::Dataset, interval_ms: u64) -> Result<LiveRun> {
    let addr = format!("127.0.0.1:{}", prometheus::free_port());
    let importance = data.importance.display().to_string();
    let source = data.transactions.display().to_string();
    let args = [
        "--metrics-addr",
        &addr,
        "run",
        "--workers",
        "2",
        "--shards",
        "1",
        "--until-idle",
        "--output",
        &scenario.output,
        "--importance",
        &importance,
    ];
    let pipeline = rig.spawn(scenario, "run", &args)?;
    wait_ready(&addr, Duration::from_secs(60))?;
    let interval = format!("{interval_ms}ms");
    let upload = rig.run(
        scenario,
        "upload",
        &["upload", "--source", &source, "--to", &scenario.input, "--interval", &interval],
        Duration::from_secs(600),
    )?;
    let run = pipeline.wait(Duration::from_secs(120))?;
    let folded = logs::folded(&scenario.dir.join("run.log"))?;
    let published = published(rig, scenario)?;
    let latencies = published
        .iter()
        .filter_map(|&(chunk, published_at_ms)| {
            let f = folded.iter().find(|f| f.chunk == chunk)?;
            Some(ChunkLatency {
                chunk,
                published_at_ms,
                committed_at_ms: f.committed_at_ms,
                latency_ms: u64::try_from(f.committed_at_ms - published_at_ms).unwrap_or(0),
            })
        })
        .collect();
    Ok((run, upload, latencies))
}
