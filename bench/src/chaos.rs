//! The chaos suite (`make chaos`; docs/operations.md): the whole pipeline as it is deployed (a
//! paced uploader, 3 consumer processes, 2 detector shards each with a hot standby) on
//! PostgreSQL, RabbitMQ or SQS, and SeaweedFS, while a seeded driver injects faults at random
//! times: `kill -9` of any process (restarted after a short delay, as Kubernetes would), a
//! broker restart, a PostgreSQL restart, an S3 outage and, on SQS, an SQS outage. At the end the
//! output must match the reference exactly (`txp verify --output`), every bad row must be in the
//! quarantine once, and the queue and its dead-letter queue must be empty.
//!
//! The run's own PostgreSQL server (so that restarting it touches no other user of the machine's)
//! and TCP relays in front of S3 and SQS (an outage cuts every connection and refuses new ones)
//! come from tests/support. RabbitMQ is the machine's, restarted with `rabbitmqctl stop_app` /
//! `start_app`: the short form in `make test` runs alone (.config/nextest.toml).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::rig::{Proc, Rig, Scenario, millis, tail};

#[path = "../../tests/support/moto.rs"]
mod moto;
#[path = "../../tests/support/postgres.rs"]
mod postgres;
#[path = "../../tests/support/relay.rs"]
mod relay;

use postgres::PgCluster;
use relay::Relay;

/// The broker a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Broker {
    Rabbitmq,
    Sqs,
}

impl Broker {
    pub fn name(self) -> &'static str {
        match self {
            Broker::Rabbitmq => "rabbitmq",
            Broker::Sqs => "sqs",
        }
    }
}

/// What a run does: its size, pace and faults. Everything random comes from `seed`.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub seed: u64,
    pub broker: Broker,
    pub rows: u64,
    pub chunk_rows: u64,
    pub interval_ms: u64,
    /// `kill -9`s injected (at least one per process).
    pub kills: usize,
    /// Rows of the source made invalid (each must reach the quarantine once).
    pub bad_rows: usize,
    /// How long the S3 (and, on SQS, the SQS) outage lasts.
    pub outage_ms: u64,
    /// How long RabbitMQ stays stopped in its restart.
    pub broker_down_ms: u64,
    /// The longest the pipeline may take to finish once the faults are over.
    pub settle_timeout_ms: u64,
}

impl Plan {
    /// `make chaos`: 120,000 rows in 60 chunks, one every 500 ms, 20 kills, a 10 s outage.
    pub fn full(seed: u64, broker: Broker) -> Plan {
        Plan {
            seed,
            broker,
            rows: 120_000,
            chunk_rows: 2_000,
            interval_ms: 500,
            kills: 20,
            bad_rows: 12,
            outage_ms: 10_000,
            broker_down_ms: 3_000,
            settle_timeout_ms: 300_000,
        }
    }

    /// The form `make test` runs (debug binaries, under 3 minutes): 24 chunks, 8 kills (one per
    /// process), every other fault shorter.
    pub fn short(seed: u64, broker: Broker) -> Plan {
        Plan {
            seed,
            broker,
            rows: 24_000,
            chunk_rows: 1_000,
            interval_ms: 400,
            kills: 8,
            bad_rows: 5,
            outage_ms: 3_000,
            broker_down_ms: 1_500,
            settle_timeout_ms: 120_000,
        }
    }

    fn chunks(&self) -> u64 {
        self.rows.div_ceil(self.chunk_rows)
    }

    /// When the faults are injected: over the upload and a little after it.
    fn fault_window_ms(&self) -> u64 {
        self.chunks() * self.interval_ms + 4_000
    }
}

/// SplitMix64: a small, seedable generator whose sequence never changes between versions (a
/// seed must replay the same run forever).
#[derive(Debug)]
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..high` (`low` when the range is empty).
    fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low { low } else { low + self.next() % (high - low) }
    }
}

/// A fault the driver injects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    /// `kill -9` of a process (another running one when it is not running then), restarted
    /// after `restart_after_ms`.
    Kill {
        process: usize,
        restart_after_ms: u64,
    },
    /// RabbitMQ stopped and started again.
    BrokerRestart,
    /// The run's PostgreSQL stopped as a crash would and started again.
    DatabaseRestart,
    /// Every S3 connection cut, new ones refused.
    S3Down,
    S3Up,
    /// Every SQS connection cut, new ones refused.
    SqsDown,
    SqsUp,
}

/// The seeded schedule: `(ms after the start, fault)`, in time order.
pub fn schedule(plan: &Plan, processes: usize) -> Vec<(u64, Fault)> {
    let mut random = Random(plan.seed);
    let window = plan.fault_window_ms();
    let upload_ms = plan.chunks() * plan.interval_ms;
    let mut faults = Vec::new();
    for k in 0..plan.kills {
        // One kill per process first (the uploader's while it uploads), then any process.
        let process =
            if k < processes { k } else { usize::try_from(random.between(0, processes as u64)).unwrap_or(0) };
        let at = if process == 0 {
            random.between(upload_ms / 10, upload_ms * 7 / 10)
        } else {
            random.between(window / 20, window)
        };
        faults.push((at, Fault::Kill { process, restart_after_ms: random.between(200, 1_500) }));
    }
    faults.push((random.between(window / 4, window * 3 / 5), Fault::BrokerRestart));
    faults.push((random.between(window * 2 / 5, window * 4 / 5), Fault::DatabaseRestart));
    let s3_down = random.between(window / 10, window / 2);
    faults.push((s3_down, Fault::S3Down));
    faults.push((s3_down + plan.outage_ms, Fault::S3Up));
    if plan.broker == Broker::Sqs {
        let sqs_down = random.between(window / 2, window * 3 / 4);
        faults.push((sqs_down, Fault::SqsDown));
        faults.push((sqs_down + plan.outage_ms, Fault::SqsUp));
    }
    faults.sort_by_key(|(at, _)| *at);
    faults
}

/// One line of the run's story.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub at_ms: u64,
    pub what: String,
}

/// What a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub plan: Plan,
    pub events: Vec<Event>,
    pub kills: usize,
    pub kills_per_process: BTreeMap<String, usize>,
    pub broker_restarts: usize,
    pub database_restarts: usize,
    pub s3_outages: usize,
    pub sqs_outages: usize,
    /// Processes that exited by themselves (not killed, not asked to stop), restarted.
    pub exits_by_themselves: Vec<String>,
    pub wall_ms: u64,
    pub detections: u64,
    pub verify: String,
    pub quarantined_rows: usize,
    pub queue_ready: u64,
    pub queue_dead: u64,
    pub failures: Vec<String>,
    pub pass: bool,
}

/// One process the run keeps alive.
#[derive(Debug)]
struct Slot {
    name: String,
    args: Vec<String>,
    proc: Option<Proc>,
    starts: usize,
    /// When to start it again (after a kill or an exit of its own).
    restart_at: Option<Instant>,
    /// The uploader's job is done once it exits 0.
    finished: bool,
    kills: usize,
}

/// Secrets the processes are given and must never print.
const DATABASE_SECRET: &str = "chaos-db-Secret-7431";
const S3_SECRET: &str = "chaos-s3-Secret-9204";

/// Every file in the scenario's folder that shows a secret.
fn leaked_secrets(dir: &Path) -> Vec<String> {
    let mut leaks = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for secret in [DATABASE_SECRET, S3_SECRET] {
            if text.contains(secret) {
                leaks.push(format!("{} shows a secret", entry.path().display()));
            }
        }
    }
    leaks
}

/// The services of a run.
struct Services {
    scenario: Scenario,
    pg: Arc<PgCluster>,
    s3_relay: Relay,
    sqs_relay: Option<Relay>,
    _moto: Option<moto::Moto>,
    queue_name: String,
}

/// Runs one chaos run and reports; `Err` only when it could not run at all.
pub fn run(rig: &Rig, plan: &Plan) -> Result<Report> {
    let data = prepare_data(rig, plan)?;
    let services = start_services(rig, plan)?;
    let outcome = drive(rig, plan, &services, &data);
    if plan.broker == Broker::Rabbitmq {
        for queue in [services.queue_name.clone(), format!("{}-dlq", services.queue_name)] {
            let _ = Command::new("rabbitmqctl")
                .args(["delete_queue", &queue])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    outcome
}

/// The source and importance file, with `bad_rows` rows made invalid (amount `'bad-I'`).
struct Data {
    transactions: PathBuf,
    importance: PathBuf,
}

fn prepare_data(rig: &Rig, plan: &Plan) -> Result<Data> {
    let scenario = rig.embedded("chaos-data")?;
    let dir = scenario.dir.join("data");
    rig.run(
        &scenario,
        "generate",
        &[
            "generate",
            "--out",
            &dir.display().to_string(),
            "--rows",
            &plan.rows.to_string(),
            "--seed",
            &plan.seed.to_string(),
        ],
        Duration::from_secs(120),
    )?;
    let transactions = dir.join("transactions.csv");
    let text = std::fs::read_to_string(&transactions)?;
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut random = Random(plan.seed ^ 0xBAD);
    let mut chosen = std::collections::BTreeSet::new();
    while chosen.len() < plan.bad_rows.min(lines.len().saturating_sub(1)) {
        chosen.insert(usize::try_from(random.between(1, lines.len() as u64)).unwrap_or(1));
    }
    for (i, &line) in chosen.iter().enumerate() {
        let mut fields: Vec<String> = lines[line].split(',').map(str::to_owned).collect();
        if fields.len() != 10 {
            bail!("line {} of the generated file has {} fields", line + 1, fields.len());
        }
        fields[8] = format!("'bad-{i}'");
        lines[line] = fields.join(",");
    }
    std::fs::write(&transactions, lines.join("\n") + "\n")?;
    Ok(Data { transactions, importance: dir.join("CustomerImportance.csv") })
}

fn start_services(rig: &Rig, plan: &Plan) -> Result<Services> {
    let mut scenario = rig.services(&format!("chaos-{}-{}", plan.broker.name(), plan.seed))?;
    // The machine's database made for the scenario is not used: the run has its own server.
    rig.clean(&scenario);
    let pg = Arc::new(PgCluster::start());
    pg.create_database("txp");
    // The server trusts every local connection: the password is there to be looked for in
    // what the processes print (it must never appear).
    scenario.database_url = pg.url("txp").replacen("postgres@", &format!("postgres:{DATABASE_SECRET}@"), 1);
    scenario.envs.push(("AWS_SECRET_ACCESS_KEY".to_owned(), S3_SECRET.to_owned()));
    scenario.pg_database = None;
    let weed: SocketAddr = (Ipv4Addr::LOCALHOST, rig.s3.s3_port).into();
    let s3_relay = Relay::start(weed);
    scenario.s3_endpoint = s3_relay.http_endpoint();
    let queue_name = format!("txp-chaos-{}", scenario.stream);
    let (sqs_relay, moto) = match plan.broker {
        Broker::Rabbitmq => {
            scenario.queue_url = crate::rig::RABBITMQ.to_owned();
            (None, None)
        }
        Broker::Sqs => {
            let moto = moto::start();
            let port: u16 = moto.endpoint.rsplit(':').next().unwrap_or_default().parse()?;
            let relay = Relay::start((Ipv4Addr::LOCALHOST, port).into());
            scenario.queue_url = format!("sqs://{queue_name}");
            scenario.envs.push(("AWS_ENDPOINT_URL_SQS".to_owned(), relay.http_endpoint()));
            (Some(relay), Some(moto))
        }
    };
    scenario.queue_name = queue_name.clone();
    // The seed preset's thresholds detect every pattern many times in a small stream: more
    // detections, more files, more for a fault to lose or double.
    scenario.preset = "seed";
    // Short leases and quick redeliveries: a killed consumer's chunk comes back in seconds.
    scenario.sets.push("queue.visibility_timeout=10s".to_owned());
    scenario.sets.push(format!("upload.chunk_rows={}", plan.chunk_rows));
    Ok(Services { scenario, pg, s3_relay, sqs_relay, _moto: moto, queue_name })
}

fn slots(plan: &Plan, scenario: &Scenario, data: &Data) -> Vec<Slot> {
    let source = data.transactions.display().to_string();
    let importance = data.importance.display().to_string();
    let slot = |name: String, args: Vec<String>| Slot {
        name,
        args,
        proc: None,
        starts: 0,
        restart_at: Some(Instant::now()),
        finished: false,
        kills: 0,
    };
    let mut slots = vec![slot(
        "uploader".to_owned(),
        vec![
            "upload".into(),
            "--source".into(),
            source,
            "--to".into(),
            scenario.input.clone(),
            "--interval".into(),
            format!("{}ms", plan.interval_ms),
        ],
    )];
    for i in 1..=3 {
        slots.push(slot(format!("consumer-{i}"), vec!["consume".into(), "--workers".into(), "2".into()]));
    }
    for shard in 0..2 {
        for copy in ["a", "b"] {
            slots.push(slot(
                format!("detector-{shard}{copy}"),
                vec![
                    "detect".into(),
                    "--output".into(),
                    scenario.output.clone(),
                    "--importance".into(),
                    importance.clone(),
                    "--shard".into(),
                    shard.to_string(),
                    "--shards".into(),
                    "2".into(),
                ],
            ));
        }
    }
    slots
}

/// The run's clock and story.
struct Story {
    started: Instant,
    events: Vec<Event>,
}

impl Story {
    fn say(&mut self, what: String) {
        let at_ms = millis(self.started.elapsed());
        println!("  {:>7.1} s  {what}", at_ms as f64 / 1000.0);
        self.events.push(Event { at_ms, what });
    }
}

fn drive(rig: &Rig, plan: &Plan, services: &Services, data: &Data) -> Result<Report> {
    let scenario = &services.scenario;
    let mut slots = slots(plan, scenario, data);
    let mut faults = schedule(plan, slots.len()).into_iter().peekable();
    let mut story = Story { started: Instant::now(), events: Vec::new() };
    println!(
        "chaos: seed {} on {} ({} rows, {} chunks, one every {} ms); {} processes",
        plan.seed,
        plan.broker.name(),
        plan.rows,
        plan.chunks(),
        plan.interval_ms,
        slots.len()
    );
    let mut counts = Counts::default();
    let mut background: Vec<std::thread::JoinHandle<()>> = Vec::new();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<String>();
    let settle_deadline = |story: &Story| {
        story.started + Duration::from_millis(plan.fault_window_ms() + plan.settle_timeout_ms)
    };
    let mut last_status_check = Instant::now();
    let mut complete = false;
    loop {
        let now = Instant::now();
        let elapsed = millis(story.started.elapsed());
        while let Some((at, _)) = faults.peek() {
            if *at > elapsed {
                break;
            }
            let Some((_, fault)) = faults.next() else { break };
            inject(&fault, &mut slots, services, plan, &mut story, &mut counts, &mut background, &done_tx);
        }
        while let Ok(message) = done_rx.try_recv() {
            story.say(message);
        }
        for slot in &mut slots {
            tend(rig, scenario, slot, &mut story, &mut counts)?;
        }
        let faults_over = faults.peek().is_none() && background.iter().all(|h| h.is_finished());
        if faults_over && slots[0].finished && now.duration_since(last_status_check) >= Duration::from_secs(1)
        {
            last_status_check = now;
            if pipeline_finished(rig, scenario)? {
                story.say("every chunk committed and folded, every file written".to_owned());
                complete = true;
                break;
            }
        }
        if Instant::now() > settle_deadline(&story) {
            story.say(format!(
                "the pipeline did not finish within {} s of the faults' end",
                plan.settle_timeout_ms / 1000
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for handle in background {
        let _ = handle.join();
    }
    let mut failures = Vec::new();
    if !complete {
        failures.push("the pipeline did not finish".to_owned());
    }
    // Kubernetes' graceful stop: SIGTERM, in-flight work finished, exit 0.
    for slot in &mut slots {
        if let Some(proc) = slot.proc.as_mut() {
            proc.terminate();
        }
    }
    for slot in &mut slots {
        if let Some(mut proc) = slot.proc.take() {
            let stopped = Instant::now();
            let status = loop {
                if let Some(status) = proc.exited() {
                    break Some(status);
                }
                if stopped.elapsed() > Duration::from_secs(60) {
                    proc.kill9();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            match status {
                Some(status) if status.success() => {}
                Some(status) => failures.push(format!(
                    "{} exited with {status} on SIGTERM; log:\n{}",
                    slot.name,
                    tail(&proc.log, 15)
                )),
                None => failures.push(format!("{} did not stop within 60 s of SIGTERM", slot.name)),
            }
        }
    }
    story.say("every process stopped (SIGTERM)".to_owned());
    let wall_ms = millis(story.started.elapsed());
    let status = status_json(rig, scenario)?;
    let stream = stream_status(&status, &scenario.stream);
    let detections = ["UPGRADE", "CHILD", "DEI-NEEDED"]
        .iter()
        .map(|p| stream.and_then(|s| s["detections"][p].as_u64()).unwrap_or(0))
        .sum();
    let queue_ready = status["queue"]["ready"].as_u64().unwrap_or(u64::MAX);
    let queue_dead = status["queue"]["dead"].as_u64().unwrap_or(u64::MAX);
    if queue_ready != 0 || queue_dead != 0 {
        failures.push(format!("the queue is not empty: {}", status["queue"]));
    }
    let verify = verify(rig, scenario, plan, data);
    let verify_text = match &verify {
        Ok(text) => text.clone(),
        Err(e) => {
            failures.push(format!("txp verify --output failed: {e:#}"));
            format!("{e:#}")
        }
    };
    let quarantined = quarantine(rig, services, plan, &mut failures)?;
    failures.extend(leaked_secrets(&scenario.dir));
    let pass = failures.is_empty();
    story.say(if pass { "PASS".to_owned() } else { format!("FAIL: {}", failures.join("; ")) });
    Ok(Report {
        plan: plan.clone(),
        events: story.events,
        kills: counts.kills,
        kills_per_process: slots.iter().map(|s| (s.name.clone(), s.kills)).collect(),
        broker_restarts: counts.broker_restarts,
        database_restarts: counts.database_restarts,
        s3_outages: counts.s3_outages,
        sqs_outages: counts.sqs_outages,
        exits_by_themselves: counts.exits,
        wall_ms,
        detections,
        verify: verify_text,
        quarantined_rows: quarantined,
        queue_ready,
        queue_dead,
        failures,
        pass,
    })
}

#[derive(Debug, Default)]
struct Counts {
    kills: usize,
    broker_restarts: usize,
    database_restarts: usize,
    s3_outages: usize,
    sqs_outages: usize,
    exits: Vec<String>,
}

/// Starts a slot's process when it is due, and notices one that exited.
fn tend(
    rig: &Rig,
    scenario: &Scenario,
    slot: &mut Slot,
    story: &mut Story,
    counts: &mut Counts,
) -> Result<()> {
    if let Some(proc) = slot.proc.as_mut()
        && let Some(status) = proc.exited()
    {
        let log = proc.log.clone();
        slot.proc = None;
        if slot.name == "uploader" && status.success() {
            slot.finished = true;
            story.say("uploader finished".to_owned());
        } else {
            // As Kubernetes does with a container that exits: start it again after a pause.
            let what = format!("{} exited by itself ({status}); restarted in 1 s", slot.name);
            counts.exits.push(format!("{what}; log:\n{}", tail(&log, 8)));
            story.say(what);
            slot.restart_at = Some(Instant::now() + Duration::from_secs(1));
        }
    }
    if slot.proc.is_none() && !slot.finished && slot.restart_at.is_some_and(|at| Instant::now() >= at) {
        slot.restart_at = None;
        slot.starts += 1;
        let name = format!("{}.{}", slot.name, slot.starts);
        let args: Vec<&str> = slot.args.iter().map(String::as_str).collect();
        slot.proc = Some(rig.spawn(scenario, &name, &args)?);
        if slot.starts > 1 {
            story.say(format!("{} started again", slot.name));
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn inject(
    fault: &Fault,
    slots: &mut [Slot],
    services: &Services,
    plan: &Plan,
    story: &mut Story,
    counts: &mut Counts,
    background: &mut Vec<std::thread::JoinHandle<()>>,
    done: &std::sync::mpsc::Sender<String>,
) {
    match fault {
        Fault::Kill { process, restart_after_ms } => {
            // The chosen process, else the next one that is running.
            let n = slots.len();
            let Some(index) = (0..n).map(|i| (process + i) % n).find(|&i| slots[i].proc.is_some()) else {
                story.say("kill -9: no process running".to_owned());
                return;
            };
            let slot = &mut slots[index];
            if let Some(mut proc) = slot.proc.take() {
                let pid = proc.pid();
                proc.kill9();
                slot.kills += 1;
                counts.kills += 1;
                slot.restart_at = Some(Instant::now() + Duration::from_millis(*restart_after_ms));
                story.say(format!("kill -9 {} (pid {pid}); restart in {restart_after_ms} ms", slot.name));
            }
        }
        Fault::BrokerRestart => {
            if plan.broker != Broker::Rabbitmq {
                return;
            }
            counts.broker_restarts += 1;
            story.say("RabbitMQ: stop_app".to_owned());
            let (down, done) = (Duration::from_millis(plan.broker_down_ms), done.clone());
            background.push(std::thread::spawn(move || {
                let stop = rabbitmqctl("stop_app");
                std::thread::sleep(down);
                let start = rabbitmqctl("start_app");
                let _ = done.send(format!("RabbitMQ: start_app (stop: {stop}, start: {start})"));
            }));
        }
        Fault::DatabaseRestart => {
            counts.database_restarts += 1;
            story.say("PostgreSQL: restart -m immediate".to_owned());
            let (pg, done) = (services.pg.clone(), done.clone());
            background.push(std::thread::spawn(move || {
                let started = Instant::now();
                pg.restart();
                let _ = done.send(format!("PostgreSQL: up again after {} ms", millis(started.elapsed())));
            }));
        }
        Fault::S3Down => {
            counts.s3_outages += 1;
            services.s3_relay.cut();
            story.say(format!("S3: every connection cut, new ones refused for {} s", plan.outage_ms / 1000));
        }
        Fault::S3Up => {
            services.s3_relay.restore();
            story.say("S3: back".to_owned());
        }
        Fault::SqsDown => {
            if let Some(relay) = &services.sqs_relay {
                counts.sqs_outages += 1;
                relay.cut();
                story.say(format!(
                    "SQS: every connection cut, new ones refused for {} s",
                    plan.outage_ms / 1000
                ));
            }
        }
        Fault::SqsUp => {
            if let Some(relay) = &services.sqs_relay {
                relay.restore();
                story.say("SQS: back".to_owned());
            }
        }
    }
}

/// `rabbitmqctl COMMAND` on the machine's broker: "ok" or why not.
fn rabbitmqctl(command: &str) -> String {
    match Command::new("rabbitmqctl").arg(command).stdout(Stdio::null()).stderr(Stdio::piped()).output() {
        Ok(out) if out.status.success() => "ok".to_owned(),
        Ok(out) => format!("failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Err(e) => format!("cannot run rabbitmqctl: {e}"),
    }
}

/// `txp status --json`.
fn status_json(rig: &Rig, scenario: &Scenario) -> Result<serde_json::Value> {
    let name =
        format!("status-{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis());
    rig.run(scenario, &name, &["status", "--json", "--stream", &scenario.stream], Duration::from_secs(60))?;
    let text = std::fs::read_to_string(scenario.dir.join(format!("{name}.log")))?;
    if text.contains(DATABASE_SECRET) || text.contains(S3_SECRET) {
        bail!("txp status showed a secret:\n{text}");
    }
    let _ = std::fs::remove_file(scenario.dir.join(format!("{name}.log")));
    // The file holds stdout and stderr (log lines, one JSON object each): the status is the
    // pretty-printed object, from a line `{` to a line `}`.
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| *l == "{");
    let end = lines.iter().rposition(|l| *l == "}");
    let (Some(start), Some(end)) = (start, end) else {
        bail!("txp status --json printed no object:\n{text}")
    };
    serde_json::from_str(&lines[start..=end].join("\n"))
        .with_context(|| format!("txp status --json printed:\n{text}"))
}

fn stream_status<'a>(status: &'a serde_json::Value, stream: &str) -> Option<&'a serde_json::Value> {
    status["streams"].as_array()?.iter().find(|s| s["stream"] == stream)
}

/// Every chunk committed and folded by every shard, every detection in a written file.
fn pipeline_finished(rig: &Rig, scenario: &Scenario) -> Result<bool> {
    let Ok(status) = status_json(rig, scenario) else { return Ok(false) };
    let Some(stream) = stream_status(&status, &scenario.stream) else { return Ok(false) };
    let shards = stream["shards"].as_array().map(Vec::as_slice).unwrap_or_default();
    Ok(stream["upload_finished"] == true
        && shards.len() == 2
        && shards.iter().all(|s| s["done"] == true)
        && stream["detections_pending"] == 0
        && stream["output_files_pending"] == 0)
}

/// `txp verify --output`: the output against the reference; the summary it printed.
fn verify(rig: &Rig, scenario: &Scenario, plan: &Plan, data: &Data) -> Result<String> {
    rig.run(
        scenario,
        "verify",
        &[
            "verify",
            "--source",
            &data.transactions.display().to_string(),
            "--chunk-rows",
            &plan.chunk_rows.to_string(),
            "--importance",
            &data.importance.display().to_string(),
            "--output",
            &scenario.output,
        ],
        Duration::from_secs(300),
    )?;
    Ok(tail(&scenario.dir.join("verify.log"), 12))
}

/// Every bad row in the quarantine exactly once, and nothing else there. Returns the rows found.
fn quarantine(rig: &Rig, services: &Services, plan: &Plan, failures: &mut Vec<String>) -> Result<usize> {
    let scenario = &services.scenario;
    let url = txp_core::layout::quarantine_beside(&scenario.input);
    let s3 = txp_connectors::store::S3Settings {
        endpoint_url: Some(rig.s3.endpoint.clone()),
        region: Some("us-east-1".to_owned()),
        force_path_style: true,
        access_key_id: Some("bench".to_owned()),
        secret_access_key: Some("bench".to_owned()),
    };
    let rows: Vec<String> = rig.runtime.block_on(async {
        let store = txp_connectors::store::open_store(&url, &s3).await?;
        let mut rows = Vec::new();
        for key in store.list("").await? {
            let bytes = store.get(&key).await?.unwrap_or_default();
            let mut reader = csv::Reader::from_reader(bytes.as_slice());
            for record in reader.records() {
                rows.push(record?.get(5).unwrap_or_default().to_owned());
            }
        }
        Ok::<Vec<String>, anyhow::Error>(rows)
    })?;
    for i in 0..plan.bad_rows {
        let marker = format!("'bad-{i}'");
        let found = rows.iter().filter(|raw| raw.contains(&marker)).count();
        if found != 1 {
            failures.push(format!("bad row {i} is in the quarantine {found} times"));
        }
    }
    if rows.len() != plan.bad_rows {
        failures.push(format!("the quarantine holds {} rows, {} were bad", rows.len(), plan.bad_rows));
    }
    Ok(rows.len())
}

/// Writes a run's report as JSON: `DIR/chaos-BROKER-seedN.json`.
pub fn write(report: &Report, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("chaos-{}-seed{}.json", report.plan.broker.name(), report.plan.seed));
    std::fs::write(&path, serde_json::to_string_pretty(report)? + "\n")?;
    Ok(path)
}

const DOC_BEGIN: &str = "<!-- chaos:runs:begin (written by `make chaos`; do not edit by hand) -->";
const DOC_END: &str = "<!-- chaos:runs:end -->";

/// Rewrites docs/operations.md's table of chaos runs from `DIR/chaos-*.json`.
pub fn update_doc(dir: &Path, doc: &Path) -> Result<()> {
    let mut reports: Vec<Report> = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("chaos-"))
                && p.extension().is_some_and(|e| e == "json")
        })
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path)?;
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| path.display().to_string())?;
        reports.push(report_of(&value));
    }
    let mut table = String::from(
        "| broker | seed | rows / chunks | kill -9 (per process) | broker restarts | PostgreSQL restarts | S3 outages | SQS outages | exits by themselves | detections | quarantined | wall | result |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &reports {
        let per: Vec<String> = r.kills_per_process.iter().map(|(p, n)| format!("{p} {n}")).collect();
        table.push_str(&format!(
            "| {} | {} | {} / {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {:.0} s | {} |\n",
            r.plan.broker.name(),
            r.plan.seed,
            r.plan.rows,
            r.plan.chunks(),
            r.kills,
            per.join(", "),
            r.broker_restarts,
            r.database_restarts,
            r.s3_outages,
            r.sqs_outages,
            r.exits_by_themselves.len(),
            r.detections,
            r.quarantined_rows,
            r.wall_ms as f64 / 1000.0,
            if r.pass { "PASS" } else { "FAIL" },
        ));
    }
    let text = std::fs::read_to_string(doc)?;
    let (Some(begin), Some(end)) = (text.find(DOC_BEGIN), text.find(DOC_END)) else {
        bail!("{} has no {DOC_BEGIN} … {DOC_END} block", doc.display());
    };
    let updated = format!("{}{DOC_BEGIN}\n{table}{}", &text[..begin], &text[end..]);
    std::fs::write(doc, updated)?;
    Ok(())
}

/// The fields of a report the table needs (a report read back from JSON).
fn report_of(value: &serde_json::Value) -> Report {
    let plan = &value["plan"];
    let u = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let n = |v: &serde_json::Value| usize::try_from(v.as_u64().unwrap_or(0)).unwrap_or(0);
    Report {
        plan: Plan {
            seed: u(&plan["seed"]),
            broker: if plan["broker"] == "sqs" { Broker::Sqs } else { Broker::Rabbitmq },
            rows: u(&plan["rows"]),
            chunk_rows: u(&plan["chunk_rows"]).max(1),
            interval_ms: u(&plan["interval_ms"]),
            kills: n(&plan["kills"]),
            bad_rows: n(&plan["bad_rows"]),
            outage_ms: u(&plan["outage_ms"]),
            broker_down_ms: u(&plan["broker_down_ms"]),
            settle_timeout_ms: u(&plan["settle_timeout_ms"]),
        },
        events: Vec::new(),
        kills: n(&value["kills"]),
        kills_per_process: value["kills_per_process"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), n(v))).collect())
            .unwrap_or_default(),
        broker_restarts: n(&value["broker_restarts"]),
        database_restarts: n(&value["database_restarts"]),
        s3_outages: n(&value["s3_outages"]),
        sqs_outages: n(&value["sqs_outages"]),
        exits_by_themselves: value["exits_by_themselves"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect())
            .unwrap_or_default(),
        wall_ms: u(&value["wall_ms"]),
        detections: u(&value["detections"]),
        verify: String::new(),
        quarantined_rows: n(&value["quarantined_rows"]),
        queue_ready: u(&value["queue_ready"]),
        queue_dead: u(&value["queue_dead"]),
        failures: Vec::new(),
        pass: value["pass"] == true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_schedule_and_another_seed_another() {
        let plan = Plan::full(1, Broker::Rabbitmq);
        assert_eq!(schedule(&plan, 8), schedule(&plan, 8));
        assert_ne!(schedule(&plan, 8), schedule(&Plan::full(2, Broker::Rabbitmq), 8));
    }

    #[test]
    fn every_process_is_killed_and_every_fault_is_in_the_window() {
        for broker in [Broker::Rabbitmq, Broker::Sqs] {
            let plan = Plan::full(7, broker);
            let faults = schedule(&plan, 8);
            let killed: std::collections::BTreeSet<usize> = faults
                .iter()
                .filter_map(|(_, f)| match f {
                    Fault::Kill { process, .. } => Some(*process),
                    _ => None,
                })
                .collect();
            assert_eq!(killed.len(), 8);
            assert_eq!(faults.iter().filter(|(_, f)| matches!(f, Fault::Kill { .. })).count(), 20);
            assert!(faults.iter().any(|(_, f)| *f == Fault::BrokerRestart));
            assert!(faults.iter().any(|(_, f)| *f == Fault::DatabaseRestart));
            assert_eq!(faults.iter().any(|(_, f)| *f == Fault::SqsDown), broker == Broker::Sqs);
            let window = plan.fault_window_ms() + plan.outage_ms;
            assert!(faults.iter().all(|(at, _)| *at <= window));
            assert!(faults.windows(2).all(|w| w[0].0 <= w[1].0));
        }
    }
}
