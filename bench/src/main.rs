//! `txp-bench`: the end-to-end benchmarks of txpatterns on real services (docs/performance.md).
//! Each benchmark starts what the machine does not run (SeaweedFS), uses the machine's
//! PostgreSQL and RabbitMQ with a fresh database and queue, drives the release `txp` binary,
//! prints a table with PASS or MISS per target, writes `bench/results/<name>.json` (and its
//! plots), and refreshes the table of targets in docs/performance.md.

mod catch_up;
mod chaos;
mod floors;
mod growth;
mod live;
mod logs;
mod plot;
mod results;
mod rig;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

use crate::results::{Results, environment, load_average, workspace};
use crate::rig::Rig;

/// The full sizes the targets are set for; other sizes write under `results/partial/`.
const FULL_ROWS: u64 = 594_643;
const GROWTH_ROWS: u64 = 6_000_000;
const LIVE_CHUNKS: u64 = 60;

#[derive(Debug, Parser)]
#[command(
    name = "txp-bench",
    about = "End-to-end benchmarks of txpatterns on PostgreSQL, RabbitMQ and SeaweedFS",
    after_help = "Examples:\n  make bench                       # catch-up, live and growth, then docs/performance.md\n  make bench-catch-up              # one benchmark\n  txp-bench catch-up --rows 100000 # a smaller run, written under bench/results/partial/\n\nNeeds: `make tools` (SeaweedFS), PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and RabbitMQ on\n127.0.0.1:5672 (guest/guest), and the release binary (cargo build --release --bin txp).\nSet TXP_BENCH_KEEP=1 to keep the logs and data of a run.\n\nExit codes: 0 the benchmark ran (PASS or MISS is in its table), 1 it could not run."
)]
struct Cli {
    /// The txp binary to measure.
    #[arg(long, value_name = "FILE")]
    txp: Option<PathBuf>,
    /// Where results (JSON, PNG) go.
    #[arg(long, value_name = "DIR")]
    results: Option<PathBuf>,
    #[command(subcommand)]
    command: Benchmark,
}

#[derive(Debug, Subcommand)]
enum Benchmark {
    /// Upload everything unpaced, then time the pipeline until every detection is committed and
    /// every file written; with the floors (core alone, COPY alone) and peak RSS.
    CatchUp {
        #[arg(long, default_value_t = FULL_ROWS)]
        rows: u64,
    },
    /// One chunk a second into a waiting pipeline: publish confirm → committed detections.
    Live {
        #[arg(long, default_value_t = LIVE_CHUNKS)]
        chunks: u64,
        #[arg(long, default_value = "1s")]
        interval: humantime::Duration,
    },
    /// 6,000,000 rows: cost per chunk of the last 60 against the first 60, database size with
    /// retention on and off, peak RSS of the consumer and the detector.
    Growth {
        #[arg(long, default_value_t = GROWTH_ROWS)]
        rows: u64,
    },
    /// Catch-up, live and growth, one after the other.
    All,
    /// Rewrites docs/performance.md's table of targets from bench/results/*.json.
    Report,
    /// The chaos suite: the pipeline (uploader, 3 consumers, 2 shards with standbys) under seeded
    /// kill -9s, a broker restart, a PostgreSQL restart and S3 (and SQS) outages; then the output
    /// must match the reference exactly (docs/operations.md). Exit 1 when it does not.
    Chaos {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, value_enum, default_value = "rabbitmq")]
        broker: chaos::Broker,
        /// The short form `make test` runs (24 chunks, 8 kills, shorter outages).
        #[arg(long)]
        short: bool,
    },
    /// Rewrites docs/operations.md's table of chaos runs from bench/results/chaos/*.json.
    ChaosReport,
}

/// One benchmark to run, at its size.
#[derive(Debug, Clone, Copy)]
enum Job {
    CatchUp { rows: u64 },
    Live { chunks: u64, interval_ms: u64 },
    Growth { rows: u64 },
}

impl Job {
    fn name(self) -> &'static str {
        match self {
            Job::CatchUp { .. } => "catch-up",
            Job::Live { .. } => "live",
            Job::Growth { .. } => "growth",
        }
    }

    /// At the sizes the targets are set for (else its results go under `partial/`).
    fn is_full_size(self) -> bool {
        match self {
            Job::CatchUp { rows } => rows == FULL_ROWS,
            Job::Live { chunks, interval_ms } => chunks == LIVE_CHUNKS && interval_ms == 1000,
            Job::Growth { rows } => rows == GROWTH_ROWS,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let root = workspace();
    let results_dir = cli.results.clone().unwrap_or_else(|| root.join("bench/results"));
    let doc = root.join("docs/performance.md");
    let txp = cli.txp.clone().unwrap_or_else(|| root.join("target/release/txp"));
    let jobs = match cli.command {
        Benchmark::Report => {
            results::update_doc(&results_dir, &doc)?;
            println!("{} updated", doc.display());
            return Ok(());
        }
        Benchmark::ChaosReport => {
            chaos::update_doc(&results_dir.join("chaos"), &root.join("docs/operations.md"))?;
            println!("docs/operations.md updated");
            return Ok(());
        }
        Benchmark::Chaos { seed, broker, short } => {
            let plan = if short { chaos::Plan::short(seed, broker) } else { chaos::Plan::full(seed, broker) };
            let rig = Rig::start(txp)?;
            let report = chaos::run(&rig, &plan)?;
            let dir = if short { results_dir.join("partial") } else { results_dir.join("chaos") };
            let path = chaos::write(&report, &dir)?;
            println!("  written to {}", path.display());
            if !report.pass {
                anyhow::bail!("chaos run failed:\n{}", report.failures.join("\n"));
            }
            return Ok(());
        }
        Benchmark::CatchUp { rows } => vec![Job::CatchUp { rows }],
        Benchmark::Live { chunks, interval } => {
            vec![Job::Live { chunks, interval_ms: u64::try_from(interval.as_millis()).unwrap_or(1000) }]
        }
        Benchmark::Growth { rows } => vec![Job::Growth { rows }],
        Benchmark::All => vec![
            Job::CatchUp { rows: FULL_ROWS },
            Job::Live { chunks: LIVE_CHUNKS, interval_ms: 1000 },
            Job::Growth { rows: GROWTH_ROWS },
        ],
    };
    let rig = Rig::start(txp.clone())?;
    let postgres = rig.postgres_version().unwrap_or_else(|_| "unknown".to_owned());
    for job in jobs {
        let full = job.is_full_size();
        let dir = if full { results_dir.clone() } else { results_dir.join("partial") };
        std::fs::create_dir_all(&dir)?;
        let (started, load) = (Instant::now(), load_average());
        let measured = match job {
            Job::CatchUp { rows } => catch_up::bench(&rig, rows)?,
            Job::Live { chunks, interval_ms } => live::bench(&rig, chunks, interval_ms, &dir)?,
            Job::Growth { rows } => growth::bench(&rig, rows, &dir)?,
        };
        let results = Results::new(job.name(), started, measured, environment(&txp, postgres.clone(), load));
        results.print();
        let path = results.write(&dir)?;
        println!("  written to {}", path.display());
        if full {
            results::update_doc(&results_dir, &doc)?;
        }
    }
    Ok(())
}
