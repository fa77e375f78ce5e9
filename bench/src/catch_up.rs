//! Catch-up: the whole dataset is uploaded unpaced first, then the pipeline is started and
//! timed until every detection is committed and every file written (its processes exit with
//! `--until-idle`). Three shapes: `txp run` (2 workers, 1 shard) on PostgreSQL, RabbitMQ and
//! SeaweedFS; two `txp consume` processes and one `txp detect` on the same services; and
//! `txp run` on the embedded defaults (SQLite, a local folder, the queue in the database).
//! Each is compared with the floors measured in the same run. And `txp run` once more while 40
//! clients flood its `/readyz` for 10 s: compared with the plain `txp run`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::json;

use crate::floors::{self, Floors};
use crate::logs::{self, Consumed, Folded};
use crate::results::{Check, mib, ratio, seconds, thousands};
use crate::rig::{ProcessFigures, Rig, Scenario, millis};

/// No single process of a catch-up may take longer than this.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(600);

/// A generated dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub transactions: PathBuf,
    pub importance: PathBuf,
    pub rows: u64,
    pub generate: ProcessFigures,
}

/// Generates `rows` rows (seed 0) with `txp generate`.
pub fn dataset(rig: &Rig, rows: u64) -> Result<Dataset> {
    let scenario = rig.embedded("dataset")?;
    let dir = scenario.dir.join("data");
    let generate = rig.run(
        &scenario,
        "generate",
        &["generate", "--out", &dir.display().to_string(), "--rows", &rows.to_string()],
        PROCESS_TIMEOUT,
    )?;
    Ok(Dataset {
        transactions: dir.join("transactions.csv"),
        importance: dir.join("CustomerImportance.csv"),
        rows,
        generate,
    })
}

/// One catch-up: how long the upload and the pipeline took, what each process peaked at.
#[derive(Debug, Clone, Serialize)]
pub struct CatchUp {
    pub shape: String,
    pub upload: ProcessFigures,
    /// From the start of the pipeline's processes to the exit of the one that commits the last
    /// detections and writes the last file (`txp run`, or `txp detect` beside consumers).
    pub pipeline_ms: u64,
    pub processes: Vec<ProcessFigures>,
    pub detections: u64,
    pub rows_per_s: u64,
}

/// Where a chunk's time goes: the mean and p50 of each stage over the chunks.
#[derive(Debug, Clone, Serialize)]
pub struct StageFigure {
    pub stage: &'static str,
    pub mean_us: u64,
    pub p50_us: u64,
    pub p95_us: u64,
}

/// The stages of `consumed` and `folded` chunks.
pub fn profile(consumed: &[Consumed], folded: &[Folded]) -> Vec<StageFigure> {
    let stages: [(&'static str, Vec<u64>); 8] = [
        ("fetch", consumed.iter().map(|c| c.fetch_us).collect()),
        ("parse + aggregate", consumed.iter().map(|c| c.parse_us).collect()),
        ("commit (consumer)", consumed.iter().map(|c| c.commit_us).collect()),
        ("load (detector)", folded.iter().map(|f| f.load_us).collect()),
        ("fold + evaluate", folded.iter().map(|f| f.evaluate_us).collect()),
        ("record detections", folded.iter().map(|f| f.record_us).collect()),
        ("output files", folded.iter().map(|f| f.output_us).collect()),
        ("persist statistics", folded.iter().map(|f| f.persist_us).collect()),
    ];
    stages
        .into_iter()
        .map(|(stage, mut values)| {
            values.sort_unstable();
            let mean_us =
                if values.is_empty() { 0 } else { values.iter().sum::<u64>() / values.len() as u64 };
            StageFigure { stage, mean_us, p50_us: percentile(&values, 50), p95_us: percentile(&values, 95) }
        })
        .collect()
}

/// The nearest-rank percentile of sorted values (integer arithmetic).
pub fn percentile(sorted: &[u64], pct: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len() as u64;
    let rank = (pct * n).div_ceil(100).max(1);
    sorted[usize::try_from(rank - 1).unwrap_or(0).min(sorted.len() - 1)]
}

/// Detections committed for a scenario's stream.
fn detections(rig: &Rig, scenario: &Scenario) -> Result<u64> {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    use txp_entity::detection;
    let db = rig.connect(scenario)?;
    let n = rig.runtime.block_on(
        detection::Entity::find().filter(detection::Column::Stream.eq(&scenario.stream)).count(&db),
    )?;
    rig.runtime.block_on(db.close())?;
    Ok(n)
}

fn upload(rig: &Rig, scenario: &Scenario, data: &Dataset, interval: &str) -> Result<ProcessFigures> {
    let source = data.transactions.display().to_string();
    rig.run(
        scenario,
        "upload",
        &["upload", "--source", &source, "--to", &scenario.input, "--interval", interval],
        PROCESS_TIMEOUT,
    )
}

fn detect_args<'a>(scenario: &'a Scenario, importance: &'a str) -> [&'a str; 5] {
    ["--output", &scenario.output, "--importance", importance, "--until-idle"]
}

/// `txp run --workers 2 --shards 1` after an unpaced upload.
pub fn run_in_one(rig: &Rig, scenario: &Scenario, data: &Dataset, expected: u64) -> Result<CatchUp> {
    let upload = upload(rig, scenario, data, "0")?;
    let importance = data.importance.display().to_string();
    let mut args = vec!["run", "--workers", "2", "--shards", "1"];
    args.extend(detect_args(scenario, &importance));
    let run = rig.run(scenario, "run", &args, PROCESS_TIMEOUT)?;
    finish(rig, scenario, data, expected, upload, run.wall_ms, vec![run])
}

/// Clients flooding `/readyz` in the flood shape, and how long the flood lasts.
const FLOOD_CLIENTS: usize = 40;
const FLOOD_FOR: Duration = Duration::from_secs(10);

/// What a probe flood sent and got.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Flood {
    /// `/readyz` requests answered (200 or 503).
    pub answered: u64,
    /// Of those, answered 200.
    pub ready: u64,
    /// Connections refused or cut (the endpoint not bound yet, or gone at exit).
    pub failed: u64,
    pub flood_ms: u64,
}

/// One `/readyz` request on a connection of its own: whether it was answered, and with 200.
fn probe(addr: std::net::SocketAddr) -> Option<bool> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let status = answer.split(|b| *b == b'\r').next()?;
    Some(status.starts_with(b"HTTP/1.1 200"))
}

/// Floods `addr` with `/readyz` requests from [`FLOOD_CLIENTS`] threads for [`FLOOD_FOR`], or
/// until `done`.
fn flood(addr: std::net::SocketAddr, done: &std::sync::atomic::AtomicBool) -> Flood {
    use std::sync::atomic::{AtomicU64, Ordering};
    let (answered, ready, failed) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let started = Instant::now();
    std::thread::scope(|threads| {
        for _ in 0..FLOOD_CLIENTS {
            threads.spawn(|| {
                while started.elapsed() < FLOOD_FOR && !done.load(Ordering::Relaxed) {
                    match probe(addr) {
                        Some(ok) => {
                            answered.fetch_add(1, Ordering::Relaxed);
                            ready.fetch_add(u64::from(ok), Ordering::Relaxed);
                        }
                        None => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
            });
        }
    });
    Flood {
        answered: answered.into_inner(),
        ready: ready.into_inner(),
        failed: failed.into_inner(),
        flood_ms: millis(started.elapsed()),
    }
}

/// [`run_in_one`] while its `/readyz` is flooded for the first [`FLOOD_FOR`] of the pipeline:
/// what probes cost a catch-up. The flood's clients run on the same cores.
pub fn run_flooded(
    rig: &Rig,
    scenario: &Scenario,
    data: &Dataset,
    expected: u64,
) -> Result<(CatchUp, Flood)> {
    let upload = upload(rig, scenario, data, "0")?;
    let importance = data.importance.display().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let metrics = format!("127.0.0.1:{port}");
    let mut args = vec!["run", "--workers", "2", "--shards", "1", "--metrics-addr", &metrics];
    args.extend(detect_args(scenario, &importance));
    let run = rig.spawn(scenario, "run", &args)?;
    let done = std::sync::atomic::AtomicBool::new(false);
    let (flooded, run) = std::thread::scope(|threads| {
        let flooder = threads.spawn(|| flood(addr, &done));
        let run = run.wait(PROCESS_TIMEOUT);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (flooder.join(), run)
    });
    let flooded = flooded.map_err(|_| anyhow::anyhow!("the flood's clients panicked"))?;
    let run = run?;
    Ok((finish(rig, scenario, data, expected, upload, run.wall_ms, vec![run])?, flooded))
}

/// Two `txp consume --workers 1` and one `txp detect`, started together after the upload.
pub fn run_split(rig: &Rig, scenario: &Scenario, data: &Dataset, expected: u64) -> Result<CatchUp> {
    let upload = upload(rig, scenario, data, "0")?;
    let importance = data.importance.display().to_string();
    let started = Instant::now();
    let consume = ["consume", "--workers", "1", "--until-idle"];
    let first = rig.spawn(scenario, "consume-1", &consume)?;
    let second = rig.spawn(scenario, "consume-2", &consume)?;
    let mut detect = vec!["detect"];
    detect.extend(detect_args(scenario, &importance));
    let detector = rig.spawn(scenario, "detect", &detect)?;
    // Done when the detector is: every detection committed, every file written. The consumers
    // exit a moment later, once they have found the queue idle.
    let detector = detector.wait(PROCESS_TIMEOUT)?;
    let wall = millis(started.elapsed());
    let processes = vec![first.wait(PROCESS_TIMEOUT)?, second.wait(PROCESS_TIMEOUT)?, detector];
    finish(rig, scenario, data, expected, upload, wall, processes)
}

fn finish(
    rig: &Rig,
    scenario: &Scenario,
    data: &Dataset,
    expected: u64,
    upload: ProcessFigures,
    pipeline_ms: u64,
    processes: Vec<ProcessFigures>,
) -> Result<CatchUp> {
    let found = detections(rig, scenario)?;
    if found != expected {
        bail!(
            "{}: {found} detections committed, the engine finds {expected}: the run is wrong",
            scenario.name
        );
    }
    Ok(CatchUp {
        shape: scenario.name.clone(),
        upload,
        pipeline_ms,
        processes,
        detections: found,
        rows_per_s: data.rows * 1000 / pipeline_ms.max(1),
    })
}

/// Reads the profile of a finished scenario from its logs.
fn profile_of(scenario: &Scenario, consumers: &[&str], detector: &str) -> Result<Vec<StageFigure>> {
    let paths: Vec<PathBuf> = consumers.iter().map(|n| scenario.dir.join(format!("{n}.log"))).collect();
    let paths: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let consumed = logs::consumed(&paths)?;
    let folded = logs::folded(&scenario.dir.join(format!("{detector}.log")))?;
    Ok(profile(&consumed, &folded))
}

fn rate_check(what: &str, data: &Dataset, run: &CatchUp) -> Check {
    Check {
        what: format!("catch-up, {what}"),
        target: "≥ 300,000 rows/s".to_owned(),
        measured: format!("{} rows/s ({})", thousands(run.rows_per_s), seconds(run.pipeline_ms)),
        pass: u128::from(data.rows) * 1000 >= 300_000 * u128::from(run.pipeline_ms),
    }
}

fn floor_check(what: &str, floors: &Floors, run: &CatchUp) -> Check {
    Check {
        what: format!("catch-up / (core + COPY floors), {what}"),
        target: "≤ 3×".to_owned(),
        measured: format!(
            "{} ({} vs {} + {})",
            ratio(run.pipeline_ms, floors.sum_ms()),
            seconds(run.pipeline_ms),
            seconds(floors.core_ms),
            seconds(floors.copy_ms)
        ),
        pass: run.pipeline_ms <= 3 * floors.sum_ms(),
    }
}

/// How much a `/readyz` flood slowed `txp run`. `/readyz` answers from a result cached for a
/// second, so the flood's cost is HTTP handling (and the clients' own CPU on the same cores), not
/// database, broker or store round trips.
fn flood_check(plain: &CatchUp, flooded: &CatchUp, flood: Option<&Flood>) -> Check {
    let answered = flood.map_or(0, |f| f.answered);
    Check {
        what: format!(
            "catch-up under a {} s /readyz flood ({FLOOD_CLIENTS} clients) / without, txp run on PostgreSQL",
            FLOOD_FOR.as_secs()
        ),
        target: "≤ 1.5×, the flood answered".to_owned(),
        measured: format!(
            "{} ({} vs {}; {} probes answered)",
            ratio(flooded.pipeline_ms, plain.pipeline_ms),
            seconds(flooded.pipeline_ms),
            seconds(plain.pipeline_ms),
            thousands(answered)
        ),
        pass: 2 * flooded.pipeline_ms <= 3 * plain.pipeline_ms && answered > 0,
    }
}

/// The catch-up benchmark on `rows` rows.
pub fn bench(rig: &Rig, rows: u64) -> Result<(serde_json::Value, Vec<Check>, serde_json::Value)> {
    println!("catch-up: generating {} rows", thousands(rows));
    let data = dataset(rig, rows)?;
    println!("catch-up: floors (core alone, COPY alone)");
    let floor_db = rig.services("floors")?;
    let floors = floors::measure(rig, &floor_db, &data.transactions, &data.importance);
    rig.clean(&floor_db);
    let floors = floors?;
    println!(
        "          core {}  COPY {}  ({} chunks, {} pairs, {} detections expected)",
        seconds(floors.core_ms),
        seconds(floors.copy_ms),
        floors.chunks,
        thousands(floors.pairs),
        floors.expected_detections
    );

    let mut runs = Vec::new();
    let mut stage_profile = Vec::new();
    let mut flooded = None;
    for shape in ["run", "flood", "split", "embedded"] {
        let scenario = match shape {
            "embedded" => rig.embedded("embedded")?,
            _ => rig.services(shape)?,
        };
        println!("catch-up: {shape}");
        let result = match shape {
            "split" => run_split(rig, &scenario, &data, floors.expected_detections),
            "flood" => run_flooded(rig, &scenario, &data, floors.expected_detections).map(|(run, flood)| {
                println!(
                    "          /readyz flood: {} answered ({} ready), {} refused or cut, over {}",
                    thousands(flood.answered),
                    thousands(flood.ready),
                    thousands(flood.failed),
                    seconds(flood.flood_ms)
                );
                flooded = Some(flood);
                run
            }),
            _ => run_in_one(rig, &scenario, &data, floors.expected_detections),
        };
        if shape == "run" && result.is_ok() {
            stage_profile = profile_of(&scenario, &["run"], "run")?;
        }
        rig.clean(&scenario);
        let run = result?;
        println!(
            "          upload {}, pipeline {} ({} rows/s), peak RSS {}",
            seconds(run.upload.wall_ms),
            seconds(run.pipeline_ms),
            thousands(run.rows_per_s),
            run.processes
                .iter()
                .map(|p| format!("{} {}", p.name, mib(p.peak_rss_kib)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        runs.push(run);
    }
    // The flooded run is compared with the plain one, not with the rate targets.
    let flood_run = runs.remove(1);
    let names = [
        "txp run (2 workers, 1 shard), PostgreSQL + RabbitMQ + SeaweedFS",
        "2 × txp consume + txp detect, PostgreSQL + RabbitMQ + SeaweedFS",
        "txp run on the embedded defaults (SQLite, local folder, queue in the database)",
    ];
    let mut checks = Vec::new();
    for (run, name) in runs.iter().zip(names) {
        checks.push(rate_check(name, &data, run));
    }
    for (run, name) in runs.iter().zip(names).take(2) {
        checks.push(floor_check(name, &floors, run));
    }
    checks.push(flood_check(&runs[0], &flood_run, flooded.as_ref()));
    let settings = json!({ "rows": rows, "chunk_rows": 10_000, "seed": 0, "preset": "banksim",
        "shapes": names });
    let figures = json!({
        "generate": data.generate,
        "floors": floors,
        "runs": runs,
        "flooded_run": flood_run,
        "flood": flooded,
        "profile_txp_run": stage_profile,
    });
    Ok((settings, checks, figures))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=60).collect();
        assert_eq!(percentile(&values, 50), 30);
        assert_eq!(percentile(&values, 95), 57);
        assert_eq!(percentile(&values, 100), 60);
        assert_eq!(percentile(&[7], 95), 7);
        assert_eq!(percentile(&[], 50), 0);
    }
}
