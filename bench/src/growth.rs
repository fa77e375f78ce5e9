//! Growth: 6,000,000 rows (600 chunks) uploaded unpaced, then one `txp consume` (2 workers) and
//! one `txp detect` process catch up on PostgreSQL, RabbitMQ and SeaweedFS. A chunk's cost is
//! the consumer's time on it (fetch, parse, commit) plus the detector's (load, evaluate,
//! record, output, persist); the last 60 chunks are compared with the first 60. Run twice:
//! with the default retention (aggregates pruned 100 chunks behind the persisted statistics)
//! and with retention off, to compare the database's size at the end.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use crate::catch_up::{Dataset, dataset};
use crate::logs;
use crate::plot;
use crate::results::{Check, mib, ratio, seconds, thousands};
use crate::rig::{ProcessFigures, Rig, millis};

/// One pass over the dataset.
#[derive(Debug, Clone, Serialize)]
pub struct Pass {
    pub retention: String,
    pub upload: ProcessFigures,
    pub pipeline_ms: u64,
    pub consumer: ProcessFigures,
    pub detector: ProcessFigures,
    pub database_bytes: Option<u64>,
    /// Per chunk: (chunk, consumer µs, detector µs).
    pub per_chunk_us: Vec<(u64, u64, u64)>,
    pub first_60_us: u64,
    pub last_60_us: u64,
    /// Wall clock from the first to the last fold commit of the first 60 chunks, and of the
    /// last 60: what the stage times cannot show (work beside the fold, such as pruning, and
    /// contention for the two cores).
    pub first_60_wall_ms: u64,
    pub last_60_wall_ms: u64,
}

fn pass(rig: &Rig, data: &Dataset, retention: Option<u64>) -> Result<Pass> {
    let mut scenario = rig.services("growth")?;
    if let Some(chunks) = retention {
        scenario.sets.push(format!("detector.retention_chunks={chunks}"));
    }
    let label = retention.map_or_else(|| "on (default, 100 chunks)".to_owned(), |c| format!("{c} (off)"));
    println!("growth: retention {label}: uploading");
    let outcome = (|| {
        let source = data.transactions.display().to_string();
        let upload = rig.run(
            &scenario,
            "upload",
            &["upload", "--source", &source, "--to", &scenario.input, "--interval", "0"],
            Duration::from_secs(1800),
        )?;
        println!("        uploaded in {}; catching up", seconds(upload.wall_ms));
        let importance = data.importance.display().to_string();
        let started = Instant::now();
        let consumer = rig.spawn(&scenario, "consume", &["consume", "--workers", "2", "--until-idle"])?;
        let detector = rig.spawn(
            &scenario,
            "detect",
            &["detect", "--output", &scenario.output, "--importance", &importance, "--until-idle"],
        )?;
        let detector = detector.wait(Duration::from_secs(3600))?;
        let consumer = consumer.wait(Duration::from_secs(3600))?;
        let pipeline_ms = millis(started.elapsed());
        let database_bytes = rig.database_bytes(&scenario)?;
        let consumed = logs::consumed(&[&scenario.dir.join("consume.log")])?;
        let folded = logs::folded(&scenario.dir.join("detect.log"))?;
        let per_chunk_us: Vec<(u64, u64, u64)> = folded
            .iter()
            .map(|f| {
                let c = consumed.iter().find(|c| c.chunk == f.chunk).map_or(0, logs::Consumed::total_us);
                (f.chunk, c, f.total_us())
            })
            .collect();
        let total = |w: &[(u64, u64, u64)]| w.iter().map(|(_, c, d)| c + d).sum::<u64>();
        let wall = |w: &[logs::Folded]| match (w.first(), w.last()) {
            (Some(a), Some(b)) => u64::try_from(b.committed_at_ms - a.committed_at_ms).unwrap_or(0),
            _ => 0,
        };
        let first_60_wall_ms = wall(&folded[..folded.len().min(60)]);
        let last_60_wall_ms = wall(&folded[folded.len().saturating_sub(60)..]);
        let first_60_us = total(&per_chunk_us[..per_chunk_us.len().min(60)]);
        let last_60_us = total(&per_chunk_us[per_chunk_us.len().saturating_sub(60)..]);
        Ok::<Pass, anyhow::Error>(Pass {
            retention: label.clone(),
            upload,
            pipeline_ms,
            consumer,
            detector,
            database_bytes,
            per_chunk_us,
            first_60_us,
            last_60_us,
            first_60_wall_ms,
            last_60_wall_ms,
        })
    })();
    rig.clean(&scenario);
    let pass = outcome?;
    println!(
        "        {} chunks in {}; last 60 / first 60 = {}; database {} MiB; peak RSS consumer {}, detector {}",
        pass.per_chunk_us.len(),
        seconds(pass.pipeline_ms),
        ratio(pass.last_60_us, pass.first_60_us),
        pass.database_bytes.map_or(0, |b| b / (1024 * 1024)),
        mib(pass.consumer.peak_rss_kib),
        mib(pass.detector.peak_rss_kib)
    );
    Ok(pass)
}

/// The growth benchmark on `rows` rows.
pub fn bench(
    rig: &Rig,
    rows: u64,
    results: &Path,
) -> Result<(serde_json::Value, Vec<Check>, serde_json::Value)> {
    println!("growth: generating {} rows", thousands(rows));
    let data = dataset(rig, rows)?;
    let on = pass(rig, &data, None)?;
    let off = pass(rig, &data, Some(0))?;
    let ms = |p: &Pass| -> Vec<(u64, f64)> {
        p.per_chunk_us.iter().map(|(chunk, c, d)| (*chunk, (c + d) as f64 / 1000.0)).collect()
    };
    let first_mean_ms = on.first_60_us as f64 / 60_000.0;
    plot::per_chunk(
        &results.join("growth-per-chunk.png"),
        &format!("Growth: cost per chunk over {} chunks (consumer + detector)", on.per_chunk_us.len()),
        "milliseconds per chunk",
        &[("retention on (default)", ms(&on)), ("retention off", ms(&off))],
        &[("mean of the first 60 (on)", first_mean_ms), ("1.15 × that", first_mean_ms * 1.15)],
    )?;
    let mut checks = Vec::new();
    for p in [&on, &off] {
        checks.push(Check {
            what: format!("growth, last 60 / first 60 chunks' cost, retention {}", p.retention),
            target: "≤ 1.15×".to_owned(),
            measured: ratio(p.last_60_us, p.first_60_us),
            pass: u128::from(p.last_60_us) * 100 <= u128::from(p.first_60_us) * 115,
        });
    }
    for p in [&on, &off] {
        checks.push(Check {
            what: format!(
                "growth, last 60 / first 60 chunks' wall clock between fold commits, retention {}",
                p.retention
            ),
            target: "≤ 1.15×".to_owned(),
            measured: format!(
                "{} ({} vs {})",
                ratio(p.last_60_wall_ms, p.first_60_wall_ms),
                seconds(p.last_60_wall_ms),
                seconds(p.first_60_wall_ms)
            ),
            pass: u128::from(p.last_60_wall_ms) * 100 <= u128::from(p.first_60_wall_ms) * 115,
        });
    }
    checks.push(Check {
        what: format!("peak RSS, txp consume (2 workers), {} rows", thousands(rows)),
        target: "≤ 64 MiB".to_owned(),
        measured: mib(on.consumer.peak_rss_kib.max(off.consumer.peak_rss_kib)),
        pass: on.consumer.peak_rss_kib.max(off.consumer.peak_rss_kib) <= 64 * 1024,
    });
    checks.push(Check {
        what: format!("peak RSS, txp detect, {} rows", thousands(rows)),
        target: "≤ 256 MiB".to_owned(),
        measured: mib(on.detector.peak_rss_kib.max(off.detector.peak_rss_kib)),
        pass: on.detector.peak_rss_kib.max(off.detector.peak_rss_kib) <= 256 * 1024,
    });
    let settings = json!({ "rows": rows, "chunk_rows": 10_000, "consumer_workers": 2, "detector_shards": 1,
        "retention": ["default (100 chunks)", "0 (off)"] });
    let figures = json!({ "generate": data.generate, "passes": [on, off] });
    Ok((settings, checks, figures))
}
