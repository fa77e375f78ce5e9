//! The bench rig: the services a benchmark runs on (a SeaweedFS it starts, the machine's
//! PostgreSQL and RabbitMQ, a fresh database and queue per scenario), the `txp` processes it
//! starts with their logs in JSON, and each process's wall time and peak resident memory.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde::Serialize;

#[path = "../../tests/support/seaweedfs.rs"]
mod seaweedfs;

pub use seaweedfs::SeaweedFs;

/// The machine's PostgreSQL (trust auth), as the tests use it.
pub const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
/// The machine's RabbitMQ.
pub const RABBITMQ: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The bucket every scenario writes under (its own prefix each).
pub const BUCKET: &str = "bench";
/// How often a process's peak RSS is read from /proc.
const RSS_EVERY: Duration = Duration::from_millis(20);

/// Where the rig runs: the txp binary, the services, a scratch folder.
#[derive(Debug)]
pub struct Rig {
    pub txp: PathBuf,
    pub s3: SeaweedFs,
    /// Datasets, logs and local folders; removed at the end unless `TXP_BENCH_KEEP` is set.
    pub scratch: PathBuf,
    keep: bool,
    pub runtime: tokio::runtime::Runtime,
    /// Distinguishes this run's databases, queues and streams from any other's.
    pub run_id: String,
    scenarios: AtomicU64,
}

/// The services of one scenario: a fresh database, queue, stream and S3 prefix (or, for the
/// embedded defaults, a SQLite file, a local folder and the queue in the database).
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub database_url: String,
    /// The PostgreSQL database to drop at the end; `None` on SQLite.
    pub pg_database: Option<String>,
    pub queue_url: String,
    pub queue_name: String,
    pub stream: String,
    pub input: String,
    pub output: String,
    pub dir: PathBuf,
    pub s3_endpoint: String,
    /// Extra `--set KEY=VALUE` for every process.
    pub sets: Vec<String>,
    /// Extra environment variables for every process (they override the rig's own).
    pub envs: Vec<(String, String)>,
    /// The threshold preset of every process (`--preset`).
    pub preset: &'static str,
}

/// What a finished process measured.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessFigures {
    pub name: String,
    pub wall_ms: u64,
    pub peak_rss_kib: u64,
    pub exit: Option<i32>,
}

/// A running `txp` process whose peak RSS is watched.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Child,
    started: Instant,
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    watcher: Option<JoinHandle<()>>,
}

impl Rig {
    /// Starts SeaweedFS (the `weed` of `make tools`) with the bench bucket.
    pub fn start(txp: PathBuf) -> Result<Rig> {
        if !txp.is_file() {
            bail!(
                "{} is missing: build it with `cargo build --release --bin txp` (make bench does)",
                txp.display()
            );
        }
        // Processes run in scenario folders: a relative path would not be found from there.
        let txp = txp.canonicalize()?;
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        let s3 = SeaweedFs::start();
        s3.create_bucket(BUCKET);
        let stamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        let run_id = format!("{}{}", stamp % 1_000_000, std::process::id() % 1000);
        let scratch = std::env::temp_dir().join(format!("txp-bench-{run_id}"));
        std::fs::create_dir_all(&scratch)?;
        let keep = std::env::var_os("TXP_BENCH_KEEP").is_some();
        Ok(Rig { txp, s3, scratch, keep, runtime, run_id, scenarios: AtomicU64::new(0) })
    }

    /// A fresh PostgreSQL database, RabbitMQ queue, stream and S3 prefix.
    pub fn services(&self, name: &str) -> Result<Scenario> {
        let n = self.scenarios.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}_{n}", self.run_id);
        let database = format!("txp_bench_{tag}");
        self.admin(&format!("CREATE DATABASE {database}"))?;
        let dir = self.scratch.join(format!("{name}-{n}"));
        std::fs::create_dir_all(&dir)?;
        Ok(Scenario {
            name: name.to_owned(),
            database_url: format!("{POSTGRES}/{database}"),
            pg_database: Some(database),
            queue_url: RABBITMQ.to_owned(),
            queue_name: format!("txp-bench-{tag}"),
            stream: format!("bench-{tag}"),
            input: format!("s3://{BUCKET}/{tag}/input"),
            output: format!("s3://{BUCKET}/{tag}/output"),
            dir,
            s3_endpoint: self.s3.endpoint.clone(),
            sets: Vec::new(),
            envs: Vec::new(),
            preset: "banksim",
        })
    }

    /// The embedded defaults: SQLite, local folders, the queue in the database.
    pub fn embedded(&self, name: &str) -> Result<Scenario> {
        let n = self.scenarios.fetch_add(1, Ordering::Relaxed);
        let dir = self.scratch.join(format!("{name}-{n}"));
        std::fs::create_dir_all(&dir)?;
        Ok(Scenario {
            name: name.to_owned(),
            database_url: format!("sqlite://{}", dir.join("txp.db").display()),
            pg_database: None,
            queue_url: "db".to_owned(),
            queue_name: "txp-chunks".to_owned(),
            stream: "default".to_owned(),
            input: dir.join("input").display().to_string(),
            output: dir.join("output").display().to_string(),
            dir,
            s3_endpoint: self.s3.endpoint.clone(),
            sets: Vec::new(),
            envs: Vec::new(),
            preset: "banksim",
        })
    }

    /// Runs one statement on the `postgres` database.
    pub fn admin(&self, sql: &str) -> Result<()> {
        let sql = sql.to_owned();
        self.runtime.block_on(async move {
            let db = Database::connect(format!("{POSTGRES}/postgres")).await?;
            db.execute_unprepared(&sql).await?;
            db.close().await?;
            Ok::<(), anyhow::Error>(())
        })
    }

    /// PostgreSQL's version.
    pub fn postgres_version(&self) -> Result<String> {
        self.runtime.block_on(async {
            let db = Database::connect(format!("{POSTGRES}/postgres")).await?;
            let row = db
                .query_one_raw(Statement::from_string(db.get_database_backend(), "SHOW server_version"))
                .await?;
            let version = match row {
                Some(row) => row.try_get_by_index::<String>(0)?,
                None => String::new(),
            };
            db.close().await?;
            Ok(version)
        })
    }

    /// Connects to a scenario's database.
    pub fn connect(&self, scenario: &Scenario) -> Result<DatabaseConnection> {
        let url = scenario.database_url.clone();
        Ok(self.runtime.block_on(Database::connect(url))?)
    }

    /// One `i64` from a query (`None` when it returns no row or NULL).
    pub fn query_i64(&self, db: &DatabaseConnection, sql: &str) -> Result<Option<i64>> {
        let statement = Statement::from_string(db.get_database_backend(), sql.to_owned());
        let row = self.runtime.block_on(db.query_one_raw(statement))?;
        Ok(match row {
            Some(row) => row.try_get_by_index::<Option<i64>>(0)?,
            None => None,
        })
    }

    /// The size of a scenario's PostgreSQL database after `VACUUM FULL`, in bytes.
    pub fn database_bytes(&self, scenario: &Scenario) -> Result<Option<u64>> {
        if scenario.pg_database.is_none() {
            return Ok(None);
        }
        let db = self.connect(scenario)?;
        // Deleted rows keep their space until a vacuum rewrites the tables: without it, pruning
        // would not show in the size.
        self.runtime.block_on(db.execute_unprepared("VACUUM FULL"))?;
        let size = self.query_i64(&db, "SELECT pg_database_size(current_database())::bigint")?;
        self.runtime.block_on(db.close())?;
        Ok(size.and_then(|s| u64::try_from(s).ok()))
    }

    /// Drops a scenario's database and queues (keeps nothing a bench made on the machine's
    /// services).
    pub fn clean(&self, scenario: &Scenario) {
        if let Some(database) = &scenario.pg_database
            && let Err(e) = self.admin(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        {
            println!("note: could not drop database {database}: {e}");
        }
        if scenario.queue_url.starts_with("amqp") {
            for queue in [scenario.queue_name.clone(), format!("{}-dlq", scenario.queue_name)] {
                let _ = Command::new("rabbitmqctl")
                    .args(["delete_queue", &queue])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }

    /// Starts `txp ARGS` for a scenario; its log (JSON) and output go to `DIR/NAME.log`.
    pub fn spawn(&self, scenario: &Scenario, name: &str, args: &[&str]) -> Result<Proc> {
        let log = scenario.dir.join(format!("{name}.log"));
        let file = File::create(&log)?;
        let mut cmd = Command::new(&self.txp);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("TXP_") {
                cmd.env_remove(key);
            }
        }
        cmd.current_dir(&scenario.dir)
            .args(["--quiet", "--log-format", "json", "--preset", scenario.preset])
            .args(["--set", &format!("queue.url={}", scenario.queue_url)])
            .args(["--set", &format!("queue.name={}", scenario.queue_name)])
            .args(["--set", &format!("upload.stream={}", scenario.stream)])
            .args(["--set", &format!("s3.endpoint_url={}", scenario.s3_endpoint)])
            .args(["--set", "s3.force_path_style=true"]);
        for set in &scenario.sets {
            cmd.args(["--set", set]);
        }
        cmd.args(args)
            .env("DATABASE_URL", &scenario.database_url)
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_REGION", "us-east-1")
            .env("TXP_METRICS_ADDR", "off")
            // The per-chunk events the benchmarks read: consumer commits, detector folds.
            .env("TXP_LOG", "warn,txp_consumer::consume=info,txp_consumer::detect=debug,txp_uploader=info")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        for (key, value) in &scenario.envs {
            cmd.env(key, value);
        }
        let started = Instant::now();
        let child = cmd.spawn().with_context(|| format!("cannot run {}", self.txp.display()))?;
        let (peak_kib, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let watcher = {
            let (peak, stop, pid) = (peak_kib.clone(), stop.clone(), child.id());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kib) = peak_rss_kib(pid) {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    std::thread::sleep(RSS_EVERY);
                }
            })
        };
        Ok(Proc { name: name.to_owned(), log, child, started, peak_kib, stop, watcher: Some(watcher) })
    }

    /// Runs `txp ARGS` to its end; fails unless it exits 0.
    pub fn run(
        &self,
        scenario: &Scenario,
        name: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<ProcessFigures> {
        self.spawn(scenario, name, args)?.wait(timeout)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if self.keep {
            println!("logs and data kept in {} (TXP_BENCH_KEEP)", self.scratch.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.scratch);
        }
    }
}

impl Proc {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no clean-up, as an evicted pod or an OOM kill.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM: the graceful stop Kubernetes asks for first.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// The exit status once it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the process to exit; fails (after killing it) past `timeout`, and when it
    /// exits with an error (its log's tail in the message).
    pub fn wait(mut self, timeout: Duration) -> Result<ProcessFigures> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                return self.finished(status);
            }
            if self.started.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("{} did not finish within {timeout:?}; log:\n{}", self.name, tail(&self.log, 20));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn finished(mut self, status: ExitStatus) -> Result<ProcessFigures> {
        let wall = self.started.elapsed();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
        if !status.success() {
            bail!("{} failed ({status}); log:\n{}", self.name, tail(&self.log, 20));
        }
        Ok(ProcessFigures {
            name: self.name.clone(),
            wall_ms: millis(wall),
            peak_rss_kib: self.peak_kib.load(Ordering::Relaxed),
            exit: status.code(),
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A process's peak resident set (VmHWM), in KiB; `None` once it is gone.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Whole milliseconds.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
