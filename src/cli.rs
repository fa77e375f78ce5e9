//! The command line: `txp` and its subcommands, with an example in every `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::settings::Overrides;

const EXAMPLES: &str = "\
Examples:
  txp generate --out txp-data
  txp verify --source txp-data/transactions.csv --importance txp-data/CustomerImportance.csv
  txp --preset seed config show

Exit codes:
  0 success, 1 `verify` found differences (or `explain` no such detection), 2 bad usage, settings or input, 130 interrupted
Settings:
  defaults < txp.toml (or --config FILE) < TXP_* environment variables < flags";

/// txpatterns: exact, verifiable detection of behavioural patterns in payment streams.
#[derive(Debug, Parser)]
#[command(name = "txp", version, after_help = EXAMPLES, propagate_version = true)]
pub struct Cli {
    /// Settings file (TOML); default: ./txp.toml when it exists.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Threshold preset: banksim (default) or seed.
    #[arg(long, global = true, value_name = "NAME")]
    pub preset: Option<String>,
    /// Set any setting, e.g. --set patterns.child.min_txns=80 (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Serve /metrics, /healthz and /readyz here (long-running commands): HOST:PORT, auto or off
    /// [setting metrics.addr, default auto: 0.0.0.0:9464 in a container, else 127.0.0.1:9464].
    #[arg(long, global = true, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's arguments. Unlike `Cli::parse`, every `--set` counts wherever it
    /// stands: clap keeps only the last command level's values of a global option
    /// (clap-rs/clap#1570), so `txp --set a=1 upload --set b=2` would silently lose `a=1`.
    pub fn parse_args() -> Cli {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        let mut cli = Cli::parse_from(&args);
        cli.set = every_set(&args);
        cli
    }
}

/// The values of every `--set VALUE` and `--set=VALUE` in `args`, in order, up to a `--`.
fn every_set(args: &[std::ffi::OsString]) -> Vec<String> {
    let mut values = Vec::new();
    let mut args = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        } else if arg == "--set" {
            values.extend(args.next().map(|v| v.into_owned()));
        } else if let Some(value) = arg.strip_prefix("--set=") {
            values.push(value.to_owned());
        }
    }
    values
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a BankSim-shaped transactions.csv and CustomerImportance.csv.
    #[command(after_help = "Example:\n  txp generate --out txp-data --rows 100000 --seed 7")]
    Generate(GenerateArgs),
    /// Run the reference detections over chunks and optionally check a pipeline's output.
    #[command(after_help = "\
Examples:
  txp verify --source txp-data/transactions.csv --importance txp-data/CustomerImportance.csv
  txp verify --input out/input --importance imp.csv --output out/output
  txp verify --source tx.csv --importance imp.csv --emit expected.csv --engine reference

Exit codes: 0 agreement (or no --output), 1 differences, 2 bad usage or input.")]
    Verify(VerifyArgs),
    /// Mechanism X: store a source as chunks and announce each with one queue message.
    #[command(after_help = "\
Examples:
  txp upload --source txp-data/transactions.csv --to txp-data/input
  AWS_ENDPOINT_URL=http://127.0.0.1:8333 txp upload --source tx.csv --to s3://bucket/streaming/input \\
      --queue amqp://guest:guest@127.0.0.1:5672/%2f --stream banksim --interval 0
  txp upload --source 'https://drive.google.com/file/d/ID/view' --to s3://bucket/streaming/input --queue sqs://txp-chunks
  txp upload --source tx.csv --to s3://bucket/streaming/input --quarantine s3://bucket/rejected --stream banksim

The stream's input and quarantine are recorded in the database: consumers read and write only there.
A restarted upload resumes after the last confirmed chunk; a finished one stores and publishes nothing.")]
    Upload(UploadArgs),
    /// Mechanism Y: consume chunk messages, commit their aggregates, then ack (any number of processes).
    #[command(after_help = "\
Examples:
  txp consume --workers 4
  DATABASE_URL=postgres://postgres@127.0.0.1:5432/txp txp consume --queue amqp://guest:guest@127.0.0.1:5672/%2f
  txp consume --until-idle --quarantine s3://bucket/streaming/quarantine

Each chunk is committed with its idempotency record in one transaction before its message is acked;
poison messages go to the dead-letter queue with a reason. A chunk is read only from its stream's
registered input: a message naming another store, or a chunk no upload stored, is dead-lettered unread.
SIGTERM finishes what is in flight, exit 0.")]
    Consume(ConsumeArgs),
    /// Fold committed chunks in order, evaluate the patterns and write output files exactly once.
    #[command(after_help = "\
Examples:
  txp detect --output txp-data/output --importance txp-data/CustomerImportance.csv
  txp detect --output s3://bucket/streaming/output --importance s3://bucket/CustomerImportance.csv \\
      --shard 0 --shards 2 --database postgres://postgres@127.0.0.1:5432/txp

On PostgreSQL one detector per (stream, shard) is active; a second one waits as a hot standby.")]
    Detect(DetectArgs),
    /// Consume and detect (every shard) in one process.
    #[command(after_help = "\
Example:
  txp run --output txp-data/output --importance txp-data/CustomerImportance.csv --until-idle")]
    Run(RunArgs),
    /// Generate data, upload it paced, consume and detect side by side, then verify the output.
    #[command(after_help = "\
Examples:
  txp demo
  txp demo --rows 100000 --interval 200ms
  txp demo --database postgres://postgres@127.0.0.1:5432/txp --queue amqp://guest:guest@127.0.0.1:5672/%2f

Embedded defaults: SQLite under ./txp-data, chunks in a local folder, the queue in the database.")]
    Demo(DemoArgs),
    /// Record a chunk as lost for good (an audited empty chunk) so that the detector can go on.
    #[command(
        after_help = "Example:\n  txp skip --stream banksim --chunk 17 --reason 'source file truncated'"
    )]
    Skip(SkipArgs),
    /// Move dead letters back to the main queue once their cause is fixed (audited, rate-limited).
    #[command(after_help = "\
Examples:
  txp replay --dry-run
  txp replay --reason 'object missing' --max 10 --rate 5/s
  txp replay --queue sqs://txp-chunks

Each dead letter is republished (confirmed), recorded in the replay_audit table, then removed from
the dead-letter queue. A message already replayed --max-replays times is left where it is (loop
guard): fix its cause, or record its chunk as lost with `txp skip`.")]
    Replay(ReplayArgs),
    /// Publish again the chunks a stream stored that have no commit and no message anywhere.
    #[command(after_help = "\
Examples:
  txp reconcile --stream banksim --dry-run
  txp reconcile --stream banksim --queue amqp://guest:guest@127.0.0.1:5672/%2f

A chunk whose message is in the dead-letter queue is left to `txp replay`. While the queue still holds
messages the missing chunks may be among them: reconcile refuses unless --force (a duplicate is harmless:
consumers ack a committed chunk with no effect). RabbitMQ does not report unacked messages.")]
    Reconcile(ReconcileArgs),
    /// How far each stream got: chunks stored, published, committed, folded; detections, files, queue depth.
    #[command(after_help = "\
Examples:
  txp status
  txp status --stream banksim --json
  txp status --database postgres://postgres@127.0.0.1:5432/txp --queue amqp://guest:guest@127.0.0.1:5672/%2f

--json prints one object with stable keys (docs/operations.md). A queue that cannot be reached is
reported as {\"queue\": {\"error\": …}}; the rest is printed and the exit code is 0.
Exit codes: 0 success, 2 unknown stream, bad usage or unreachable database.")]
    Status(StatusArgs),
    /// Why a detection was made: its chunk, its output file and the figures that met each threshold.
    #[command(after_help = "\
Examples:
  txp explain --pattern CHILD --customer C1093826151 --merchant M348934600
  txp explain --pattern UPGRADE --customer C1093826151 --merchant M348934600 --stream banksim --json
  txp explain --pattern DEI-NEEDED --merchant M1823072687

PATTERN is UPGRADE, CHILD or DEI-NEEDED (or PatId1, PatId2, PatId3); DEI-NEEDED takes no --customer.
Exit codes: 0 found, 1 no such detection, 2 bad usage or unreachable database.")]
    Explain(ExplainArgs),
    /// Manage queues.
    #[command(
        subcommand,
        after_help = "Example:\n  txp queue setup --queue amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    Queue(QueueCommand),
    /// Apply the database migrations (the embedded SQLite file, or PostgreSQL).
    #[command(after_help = "Example:\n  DATABASE_URL=postgres://postgres@127.0.0.1:5432/txp txp migrate")]
    Migrate(DatabaseArgs),
    /// Inspect settings.
    #[command(subcommand, after_help = "Example:\n  txp --config prod.toml config show")]
    Config(ConfigCommand),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Folder to write transactions.csv and CustomerImportance.csv into (created if needed).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of transactions.
    #[arg(long, default_value_t = txp_core::generate::DEFAULT_ROWS)]
    pub rows: u64,
    /// Random seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Importance weights: equal to the amount (BankSim) or drawn independently.
    #[arg(long, value_enum, default_value_t = Weights::Amount)]
    pub weights: Weights,
}

/// The importance file's Weight column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Weights {
    Amount,
    Independent,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A transactions file, cut into chunks exactly as `txp upload` cuts it.
    #[arg(long, value_name = "FILE", conflicts_with = "input", required_unless_present = "input")]
    pub source: Option<PathBuf>,
    /// Rows per chunk with --source [setting upload.chunk_rows, default 10000].
    #[arg(long, value_name = "N", requires = "source")]
    pub chunk_rows: Option<u64>,
    /// Chunks in the layout of docs/patterns.md (chunk_<i>.csv/part-*.csv + _SUCCESS): a folder or s3://BUCKET/PREFIX.
    #[arg(long, value_name = "DIR")]
    pub input: Option<PathBuf>,
    /// The importance file (Source,Target,Weight,typeTrans,fraud).
    #[arg(long, value_name = "FILE")]
    pub importance: PathBuf,
    /// Write the detections as CSV: patternId,ActionType,customerName,MerchantId,chunkIndex.
    #[arg(long, value_name = "FILE")]
    pub emit: Option<PathBuf>,
    /// A pipeline's output (a folder or s3://BUCKET/PREFIX) to compare with the detections; exit 1 on any difference.
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Which engine computes the detections; `both` runs the two and requires them to agree.
    #[arg(long, value_enum, default_value_t = EngineChoice::Incremental)]
    pub engine: EngineChoice,
    /// A chunk recorded as lost with `txp skip`: counted as empty, as the pipeline does (repeatable).
    #[arg(long, value_name = "I")]
    pub skip: Vec<u64>,
}

/// The engine `verify` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineChoice {
    Incremental,
    Reference,
    Both,
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The transactions file: a path, http(s)://, s3://BUCKET/KEY or a Google Drive share link.
    #[arg(long, value_name = "SRC")]
    pub source: String,
    /// Where chunks go: s3://BUCKET/PREFIX or a local folder.
    #[arg(long, value_name = "DEST")]
    pub to: String,
    /// The queue [setting queue.url, default db]: db, amqp://…, sqs://NAME or an SQS queue URL.
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,
    /// Rows per chunk [setting upload.chunk_rows, default 10000].
    #[arg(long, value_name = "N")]
    pub chunk_rows: Option<u64>,
    /// Time between chunks, e.g. 1s, 200ms, 0 [setting upload.interval, default 1s].
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,
    /// The stream's name [setting upload.stream, default "default"].
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
    /// Where consumers write the stream's rejected rows: s3://BUCKET/PREFIX or a folder
    /// [default: beside --to, …/input → …/quarantine]. Recorded with the stream; consumers take
    /// it from there, never from a message.
    #[arg(long, value_name = "DEST")]
    pub quarantine: Option<String>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// For crash tests: abort (as kill -9 would) at POINT of chunk CHUNK
    /// (mid-object, after-store, after-confirm).
    #[arg(long, value_name = "POINT:CHUNK", hide = true)]
    pub crash_at: Option<String>,
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// The database [setting database.url, env DATABASE_URL; default sqlite://txp-data/txp.db].
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
}

/// Options shared by the commands that consume.
#[derive(Debug, Args)]
pub struct ConsumeOptions {
    /// The queue [setting queue.url, default db]: db, amqp://…, sqs://NAME or an SQS queue URL.
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,
    /// Concurrent workers in this process.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub workers: usize,
    /// Where rejected rows go, for every stream [default: each stream's own, recorded by
    /// `txp upload --quarantine`].
    #[arg(long, value_name = "DEST")]
    pub quarantine: Option<String>,
}

/// Options shared by the commands that detect.
#[derive(Debug, Args)]
pub struct DetectOptions {
    /// Where output files go: a folder or s3://BUCKET/PREFIX.
    #[arg(long, value_name = "DEST")]
    pub output: String,
    /// The importance file: a path or s3://BUCKET/KEY.
    #[arg(long, value_name = "FILE")]
    pub importance: String,
    /// The stream [setting upload.stream; default: the only stream in the database].
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub consume: ConsumeOptions,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Exit 0 once the queue has nothing ready or in flight.
    #[arg(long)]
    pub until_idle: bool,
    /// For crash tests: abort at POINT of chunk CHUNK (mid-transaction, after-commit).
    #[arg(long, value_name = "POINT:CHUNK", hide = true)]
    pub crash_at: Option<String>,
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    #[command(flatten)]
    pub detect: DetectOptions,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// This detector's shard, from 0 (in a StatefulSet: the pod's ordinal).
    #[arg(long, value_name = "I", default_value_t = 0, env = "TXP_SHARD")]
    pub shard: u32,
    /// How many shards the stream's merchants are spread over.
    #[arg(long, value_name = "S", default_value_t = 1, env = "TXP_SHARDS")]
    pub shards: u32,
    /// Exit 0 once every announced chunk is folded and every file written.
    #[arg(long)]
    pub until_idle: bool,
    /// For crash tests: abort at POINT (after-state-commit:CHUNK, mid-file:FILE_ID).
    #[arg(long, value_name = "POINT:N", hide = true)]
    pub crash_at: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub consume: ConsumeOptions,
    #[command(flatten)]
    pub detect: DetectOptions,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Detector shards, all run by this process.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub shards: u32,
    /// Exit 0 once the stream is announced whole, every chunk folded and every file written.
    #[arg(long)]
    pub until_idle: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The demo's folder: data, chunks, output and the embedded database.
    #[arg(long, value_name = "DIR", default_value = "txp-data")]
    pub dir: PathBuf,
    /// Transactions to generate when DIR has none.
    #[arg(long, default_value_t = txp_core::generate::DEFAULT_ROWS)]
    pub rows: u64,
    /// Time between chunks [setting upload.interval, default 1s].
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,
    /// Where chunks go [default DIR/input]: a folder or s3://BUCKET/PREFIX.
    #[arg(long, value_name = "DEST")]
    pub store: Option<String>,
    /// Where output files go [default DIR/output].
    #[arg(long, value_name = "DEST")]
    pub output: Option<String>,
    /// The queue [setting queue.url, default db].
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Consumer workers.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub workers: usize,
}

#[derive(Debug, Args)]
pub struct SkipArgs {
    /// The stream [setting upload.stream; default: the only stream in the database].
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
    /// The chunk index to record as lost.
    #[arg(long, value_name = "I")]
    pub chunk: u64,
    /// Why (kept with the record).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The queue whose dead letters to replay [setting queue.url, default db].
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,
    /// List what would be replayed; move and record nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only dead letters whose reason contains TEXT (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Replay at most N messages.
    #[arg(long, value_name = "N")]
    pub max: Option<u64>,
    /// At most N messages a second, e.g. 5/s.
    #[arg(long, value_name = "N/s", value_parser = parse_rate)]
    pub rate: Option<u32>,
    /// Loop guard: leave a message that was replayed N times already.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_replays: u32,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The stream [setting upload.stream; default: the only stream in the database].
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
    /// The queue to publish on [setting queue.url, default db].
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,
    /// List the chunks that would be published; publish nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Publish even while the queue still holds messages.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this stream [default: every stream].
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
    /// Print one JSON object with stable keys (docs/operations.md).
    #[arg(long)]
    pub json: bool,
    /// The queue whose depth to report [setting queue.url, default db].
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The pattern: UPGRADE, CHILD or DEI-NEEDED (or PatId1, PatId2, PatId3).
    #[arg(long, value_name = "PATTERN", value_parser = parse_pattern)]
    pub pattern: txp_core::Pattern,
    /// The customer (customerName); not for DEI-NEEDED.
    #[arg(long, value_name = "ID")]
    pub customer: Option<String>,
    /// The merchant (MerchantId).
    #[arg(long, value_name = "ID")]
    pub merchant: String,
    /// The stream [setting upload.stream; default: the only stream in the database].
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
    /// Print the stored figures, the chunk and the file as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// `UPGRADE`, `CHILD`, `DEI-NEEDED` or `PatId1`…`PatId3`, in any case.
fn parse_pattern(text: &str) -> Result<txp_core::Pattern, String> {
    txp_core::Pattern::ALL
        .into_iter()
        .find(|p| {
            p.action_type().eq_ignore_ascii_case(text.trim()) || p.id().eq_ignore_ascii_case(text.trim())
        })
        .ok_or_else(|| {
            format!("`{text}` is not a pattern: use UPGRADE, CHILD or DEI-NEEDED (or PatId1, PatId2, PatId3)")
        })
}

/// `5/s` or `5`: messages per second, at least 1.
fn parse_rate(text: &str) -> Result<u32, String> {
    let number = text.strip_suffix("/s").unwrap_or(text);
    match number.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{text}` is not a rate: use N/s with N a whole number from 1, e.g. 5/s")),
    }
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Declare the queue, its dead-letter queue and the policy between them (idempotent).
    #[command(after_help = "Example:\n  txp queue setup --queue sqs://txp-chunks")]
    Setup {
        /// The queue [setting queue.url, default db].
        #[arg(long, value_name = "QUEUE")]
        queue: Option<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings as TOML, each with its origin; secrets masked.
    #[command(after_help = "Example:\n  TXP_PATTERNS_CHILD_MIN_TXNS=5 txp --preset seed config show")]
    Show,
}

impl Cli {
    /// The settings layers the command line adds.
    pub fn overrides(&self) -> Overrides {
        let mut flags = Vec::new();
        let quoted = |text: &str| toml::Value::String(text.to_owned()).to_string();
        let database = |args: &DatabaseArgs, flags: &mut Vec<(&'static str, String, &'static str)>| {
            if let Some(url) = &args.database {
                flags.push(("database.url", quoted(url), "--database"));
            }
        };
        if let Some(addr) = &self.metrics_addr {
            flags.push(("metrics.addr", quoted(addr), "--metrics-addr"));
        }
        match &self.command {
            Command::Verify(VerifyArgs { chunk_rows: Some(n), .. }) => {
                flags.push(("upload.chunk_rows", n.to_string(), "--chunk-rows"));
            }
            Command::Upload(args) => {
                if let Some(n) = args.chunk_rows {
                    flags.push(("upload.chunk_rows", n.to_string(), "--chunk-rows"));
                }
                if let Some(queue) = &args.queue {
                    flags.push(("queue.url", quoted(queue), "--queue"));
                }
                if let Some(interval) = &args.interval {
                    flags.push(("upload.interval", quoted(interval), "--interval"));
                }
                if let Some(stream) = &args.stream {
                    flags.push(("upload.stream", quoted(stream), "--stream"));
                }
                database(&args.database, &mut flags);
            }
            Command::Queue(QueueCommand::Setup { queue, database: db }) => {
                if let Some(queue) = queue {
                    flags.push(("queue.url", quoted(queue), "--queue"));
                }
                database(db, &mut flags);
            }
            Command::Migrate(db) => database(db, &mut flags),
            Command::Consume(args) => {
                if let Some(queue) = &args.consume.queue {
                    flags.push(("queue.url", quoted(queue), "--queue"));
                }
                database(&args.database, &mut flags);
            }
            Command::Detect(args) => {
                if let Some(stream) = &args.detect.stream {
                    flags.push(("upload.stream", quoted(stream), "--stream"));
                }
                database(&args.database, &mut flags);
            }
            Command::Run(args) => {
                if let Some(queue) = &args.consume.queue {
                    flags.push(("queue.url", quoted(queue), "--queue"));
                }
                if let Some(stream) = &args.detect.stream {
                    flags.push(("upload.stream", quoted(stream), "--stream"));
                }
                database(&args.database, &mut flags);
            }
            Command::Demo(args) => {
                if let Some(queue) = &args.queue {
                    flags.push(("queue.url", quoted(queue), "--queue"));
                }
                if let Some(interval) = &args.interval {
                    flags.push(("upload.interval", quoted(interval), "--interval"));
                }
                database(&args.database, &mut flags);
            }
            Command::Skip(args) => {
                if let Some(stream) = &args.stream {
                    flags.push(("upload.stream", quoted(stream), "--stream"));
                }
                database(&args.database, &mut flags);
            }
            Command::Reconcile(args) => {
                if let Some(stream) = &args.stream {
                    flags.push(("upload.stream", quoted(stream), "--stream"));
                }
                if let Some(queue) = &args.queue {
                    flags.push(("queue.url", quoted(queue), "--queue"));
                }
                database(&args.database, &mut flags);
            }
            Command::Replay(args) => {
                if let Some(queue) = &args.queue {
                    flags.push(("queue.url", quoted(queue), "--queue"));
                }
                database(&args.database, &mut flags);
            }
            Command::Status(args) => {
                if let Some(stream) = &args.stream {
                    flags.push(("upload.stream", quoted(stream), "--stream"));
                }
                if let Some(queue) = &args.queue {
                    flags.push(("queue.url", quoted(queue), "--queue"));
                }
                database(&args.database, &mut flags);
            }
            Command::Explain(args) => {
                if let Some(stream) = &args.stream {
                    flags.push(("upload.stream", quoted(stream), "--stream"));
                }
                database(&args.database, &mut flags);
            }
            _ => {}
        }
        Overrides { config: self.config.clone(), preset: self.preset.clone(), set: self.set.clone(), flags }
    }
}
