//! `txp verify`: computes the detections of a chunk sequence with the incremental engine, the
//! reference engine or both, prints them per pattern, writes them with `--emit`, and compares a
//! pipeline's output files with them (`--output`).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Instant;

use txp_connectors::store::{StoreError, open_store};
use txp_consumer::chunk_folder::{list_chunks, read_parts};
use txp_core::aggregate::ChunkAggregator;
use txp_core::contract::{OnWrongHeader, read_transactions};
use txp_core::layout::{SUCCESS, is_part_file, parse_chunk_folder};
use txp_core::output::{OutputDiff, OutputKeys, is_output_folder, write_emit};
use txp_core::reference::ReferenceRow;
use txp_core::{Detection, Engine, ImportanceTable, Pattern, ReferenceEngine, Rejection};
use txp_uploader::cut::ChunkCutter;

use super::generate::thousands;
use crate::Outcome;
use crate::cli::{EngineChoice, VerifyArgs};
use crate::error::Error;
use crate::interrupt::Interrupt;
use crate::progress::Ui;
use crate::settings::Settings;

/// One chunk to replay: its index and its part files.
struct InputChunk {
    index: u64,
    parts: Vec<(String, Vec<u8>)>,
}

/// The engines being run, and what they found.
struct Engines {
    incremental: Option<Engine>,
    reference: Option<ReferenceEngine>,
    detections: Vec<Detection>,
    valid_rows: u64,
    rejected: Vec<(u64, String, Rejection)>,
    rejected_rows: u64,
    /// Chunks recorded as lost: applied as empty chunks.
    skip: std::collections::BTreeSet<u64>,
}

/// How many rejected rows the summary shows.
const SHOWN_REJECTIONS: usize = 5;
/// How many keys of each kind of difference the summary shows.
const SHOWN_DIFFERENCES: usize = 10;

fn read_error(path: &Path, e: &std::io::Error) -> Error {
    Error::usage(format!("cannot read {}: {e}", path.display())).hint("check the path and its permissions")
}

impl Engines {
    fn new(args: &VerifyArgs, settings: &Settings) -> Result<Self, Error> {
        let path = &args.importance;
        let bytes = fs::read(path).map_err(|e| read_error(path, &e))?;
        let bad_file = |e: txp_core::ContractError| {
            Error::usage(format!("{}: {e}", path.display()))
                .hint("--importance takes BankSim's CustomerImportance.csv")
        };
        let run_incremental = matches!(args.engine, EngineChoice::Incremental | EngineChoice::Both);
        let run_reference = matches!(args.engine, EngineChoice::Reference | EngineChoice::Both);
        let table = ImportanceTable::read(&bytes[..]).map_err(bad_file)?;
        print_importance(path, &table);
        Ok(Self {
            reference: if run_reference {
                Some(ReferenceEngine::new(settings.thresholds, &bytes[..]).map_err(bad_file)?)
            } else {
                None
            },
            incremental: run_incremental.then(|| Engine::new(settings.thresholds, table)),
            detections: Vec::new(),
            valid_rows: 0,
            rejected: Vec::new(),
            rejected_rows: 0,
            skip: args.skip.iter().copied().collect(),
        })
    }

    /// Applies one chunk to every engine; with both, their detections must be equal.
    fn apply(&mut self, mut chunk: InputChunk) -> Result<(), Error> {
        if self.skip.contains(&chunk.index) {
            chunk.parts.clear();
        }
        let engine_error = |e: txp_core::engine::EngineError| Error::usage(e.to_string());
        let mut from_incremental = None;
        if let Some(engine) = &mut self.incremental {
            let mut aggregator = ChunkAggregator::new(chunk.index);
            for (name, bytes) in &chunk.parts {
                aggregator
                    .add_part(name, &bytes[..])
                    .map_err(|e| Error::usage(format!("chunk {}: {e}", chunk.index)))?;
            }
            let aggregate = aggregator.finish();
            self.valid_rows += aggregate.valid_rows;
            self.rejected_rows += aggregate.rejected.len() as u64;
            for q in aggregate.rejected.iter().take(SHOWN_REJECTIONS.saturating_sub(self.rejected.len())) {
                self.rejected.push((chunk.index, q.part.clone(), q.rejection.clone()));
            }
            from_incremental = Some(engine.apply(&aggregate).map_err(engine_error)?);
        }
        if let Some(engine) = &mut self.reference {
            let mut rows = Vec::new();
            let mut rejected = Vec::new();
            for (name, bytes) in &chunk.parts {
                read_transactions(&bytes[..], OnWrongHeader::RejectAll, |row| match row {
                    Ok(row) => rows.push(ReferenceRow::from_transaction(&row)),
                    Err(r) => rejected.push((chunk.index, name.clone(), r)),
                })
                .map_err(|e| Error::usage(format!("chunk {}: {e}", chunk.index)))?;
            }
            if from_incremental.is_none() {
                self.valid_rows += rows.len() as u64;
                self.rejected_rows += rejected.len() as u64;
                let room = SHOWN_REJECTIONS.saturating_sub(self.rejected.len());
                self.rejected.extend(rejected.into_iter().take(room));
            }
            let found = engine.apply(chunk.index, rows).map_err(engine_error)?;
            if let Some(incremental) = &from_incremental
                && *incremental != found
            {
                return Err(Error::usage(format!(
                    "the incremental and reference engines disagree after chunk {}: {} against {} detections",
                    chunk.index,
                    incremental.len(),
                    found.len()
                ))
                .hint("this is a bug in txpatterns: please report it with the input that shows it"));
            }
            from_incremental.get_or_insert(found);
        }
        self.detections.extend(from_incremental.unwrap_or_default());
        Ok(())
    }
}

fn print_importance(path: &Path, table: &ImportanceTable) {
    println!(
        "importance  {}: {} rows ({} pairs), {} rejected",
        path.display(),
        thousands(table.valid_rows()),
        thousands(table.pairs() as u64),
        thousands(table.rejected().len() as u64)
    );
    for r in table.rejected().iter().take(SHOWN_REJECTIONS) {
        println!("            {}", r.where_and_why());
    }
}

/// Runs the command.
pub fn run(args: &VerifyArgs, settings: &Settings, ui: Ui, interrupt: &Interrupt) -> Result<Outcome, Error> {
    let started = Instant::now();
    let mut engines = Engines::new(args, settings)?;
    let mut chunks = 0u64;
    if let Some(source) = &args.source {
        let file = File::open(source).map_err(|e| read_error(source, &e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut cutter = ChunkCutter::new(BufReader::with_capacity(1 << 20, file), settings.chunk_rows)
            .map_err(|e| {
                Error::usage(format!("{}: {e}", source.display()))
                    .hint("--source takes a transactions file such as BankSim's")
            })?;
        let bar = ui.bytes_bar(size, "verifying");
        while let Some(chunk) = cutter.next() {
            interrupt.check()?;
            let chunk = chunk.map_err(|e| Error::usage(format!("{}: {e}", source.display())))?;
            engines.apply(InputChunk {
                index: chunk.index,
                parts: vec![(source.display().to_string(), chunk.bytes)],
            })?;
            chunks += 1;
            bar.set_position(cutter.bytes_read());
        }
        bar.finish_and_clear();
        println!(
            "input       {}: cut into {} chunks of {} rows",
            source.display(),
            chunks,
            thousands(settings.chunk_rows.get())
        );
    } else if let Some(input) = &args.input {
        let text = input.to_string_lossy();
        if text.starts_with("s3://") {
            replay_store(&text, settings, &mut engines, ui, interrupt)?;
        } else {
            let listing = list_chunks(input).map_err(|e| read_error(input, &e))?;
            let bar = ui.bar(listing.complete.len() as u64, "verifying", "chunks");
            for entry in &listing.complete {
                interrupt.check()?;
                let parts = read_parts(entry).map_err(|e| read_error(&entry.path, &e))?;
                engines.apply(InputChunk { index: entry.index, parts })?;
                chunks += 1;
                bar.inc(1);
            }
            bar.finish_and_clear();
            println!(
                "input       {}: {} complete chunks, {} incomplete (ignored)",
                input.display(),
                chunks,
                listing.incomplete.len()
            );
            for path in listing.incomplete.iter().take(SHOWN_REJECTIONS) {
                println!("            incomplete: {} (no {SUCCESS})", path.display());
            }
        }
    }
    if !engines.skip.is_empty() {
        let list: Vec<String> = engines.skip.iter().map(u64::to_string).collect();
        println!("skipped     chunks {} counted as empty (--skip)", list.join(", "));
    }
    print_summary(&engines, settings, args.engine);
    if let Some(path) = &args.emit {
        let file =
            File::create(path).map_err(|e| Error::usage(format!("cannot write {}: {e}", path.display())))?;
        write_emit(BufWriter::new(file), &engines.detections)
            .map_err(|e| Error::usage(format!("cannot write {}: {e}", path.display())))?;
        println!(
            "emitted     {} detections to {}",
            thousands(engines.detections.len() as u64),
            path.display()
        );
    }
    let mut outcome = Outcome::Success;
    if let Some(output) = &args.output {
        outcome = compare_output(output, &engines.detections, settings)?;
    }
    println!("time        {:.2} s", started.elapsed().as_secs_f64());
    Ok(outcome)
}

fn print_summary(engines: &Engines, settings: &Settings, engine: EngineChoice) {
    println!(
        "rows        {} valid, {} rejected",
        thousands(engines.valid_rows),
        thousands(engines.rejected_rows)
    );
    for (chunk, part, r) in &engines.rejected {
        println!("            chunk {chunk} {part} {}", r.where_and_why());
    }
    let t = &settings.thresholds;
    println!(
        "thresholds  preset {}: UPGRADE N(m) > {}, top {}%, bottom {}%; CHILD n > {}, average < {}; DEI-NEEDED F > {}",
        settings.preset,
        t.upgrade_min_merchant_txns,
        t.upgrade_top_pct,
        t.upgrade_bottom_pct,
        t.child_min_txns,
        t.child_max_avg_amount,
        t.dei_min_female_customers
    );
    let name = match engine {
        EngineChoice::Incremental => "incremental engine",
        EngineChoice::Reference => "reference engine",
        EngineChoice::Both => "incremental and reference engines (they agree)",
    };
    println!("detections  by the {name}");
    let mut per_pattern: BTreeMap<Pattern, u64> = Pattern::ALL.iter().map(|p| (*p, 0)).collect();
    for d in &engines.detections {
        *per_pattern.entry(d.pattern).or_default() += 1;
    }
    for (pattern, n) in &per_pattern {
        println!("  {:<10} {:>10}", pattern.action_type(), thousands(*n));
    }
    println!("  {:<10} {:>10}", "total", thousands(engines.detections.len() as u64));
}

/// An output folder: its name, whether `_SUCCESS` is there, and its part files in name order.
struct OutputFolder {
    name: String,
    complete: bool,
    parts: Vec<(String, Vec<u8>)>,
}

/// The output folders under a local folder.
fn output_folders_local(dir: &Path) -> Result<Vec<OutputFolder>, Error> {
    let entries = fs::read_dir(dir).map_err(|e| read_error(dir, &e))?;
    let mut folders: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok().map(|n| (n, e.path())))
        .filter(|(name, path)| is_output_folder(name) && path.is_dir())
        .collect();
    folders.sort();
    let mut out = Vec::with_capacity(folders.len());
    for (name, path) in folders {
        let complete = path.join(SUCCESS).is_file();
        let mut parts = Vec::new();
        if complete {
            let mut paths: Vec<PathBuf> = fs::read_dir(&path)
                .map_err(|e| read_error(&path, &e))?
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_str().is_some_and(is_part_file))
                .map(|e| e.path())
                .collect();
            paths.sort();
            for part in paths {
                let bytes = fs::read(&part).map_err(|e| read_error(&part, &e))?;
                parts.push((part.display().to_string(), bytes));
            }
        }
        out.push(OutputFolder { name, complete, parts });
    }
    Ok(out)
}

/// A one-thread runtime for the few store calls of `verify`, which is synchronous otherwise.
fn current_thread_runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::usage(format!("cannot start the async runtime: {e}")))
}

/// A store failure as a usage error with what to check.
fn store_error(e: StoreError) -> Error {
    let hint = e.hint().unwrap_or("check the URL and that the store is reachable").to_owned();
    Error::usage(e.to_string()).hint(hint)
}

/// The output folders under an `s3://` prefix.
fn output_folders_s3(url: &str, settings: &Settings) -> Result<Vec<OutputFolder>, Error> {
    let runtime = current_thread_runtime()?;
    runtime.block_on(async {
        let store = open_store(url, &settings.s3).await.map_err(store_error)?;
        let mut folders: BTreeMap<String, (bool, Vec<String>)> = BTreeMap::new();
        for key in store.list("").await.map_err(store_error)? {
            let Some((folder, name)) = key.split_once('/') else { continue };
            if !is_output_folder(folder) {
                continue;
            }
            let entry = folders.entry(folder.to_owned()).or_default();
            if name == SUCCESS {
                entry.0 = true;
            } else if is_part_file(name) {
                entry.1.push(key.clone());
            }
        }
        let mut out = Vec::with_capacity(folders.len());
        for (name, (complete, mut keys)) in folders {
            keys.sort();
            let mut parts = Vec::new();
            if complete {
                for key in keys {
                    let bytes = store.get(&key).await.map_err(store_error)?.unwrap_or_default();
                    parts.push((format!("{url}/{key}"), bytes));
                }
            }
            out.push(OutputFolder { name, complete, parts });
        }
        Ok(out)
    })
}

/// Reads every complete output folder under `dir` (a folder or `s3://`) and compares its keys
/// with the detections.
fn compare_output(dir: &Path, detections: &[Detection], settings: &Settings) -> Result<Outcome, Error> {
    let text = dir.to_string_lossy();
    let folders = if text.starts_with("s3://") {
        output_folders_s3(&text, settings)?
    } else {
        output_folders_local(dir)?
    };
    let mut found = OutputKeys::default();
    let (mut complete, mut incomplete) = (0u64, Vec::new());
    for folder in folders {
        if !folder.complete {
            incomplete.push(folder.name);
            continue;
        }
        complete += 1;
        for (part, bytes) in folder.parts {
            found.add_part(&part, &bytes).map_err(|e| Error::usage(e.to_string()))?;
        }
    }
    let diff = OutputDiff::new(detections, &found);
    println!(
        "output      {}: {} complete files, {} incomplete (ignored); {} keys",
        dir.display(),
        complete,
        incomplete.len(),
        thousands(found.keys.values().sum())
    );
    for name in incomplete.iter().take(SHOWN_DIFFERENCES) {
        println!("            incomplete: {name} (no {SUCCESS})");
    }
    println!("  missing    {:>10}", thousands(diff.missing.len() as u64));
    for d in diff.missing.iter().take(SHOWN_DIFFERENCES) {
        println!(
            "    {},{},{},{} (chunk {})",
            d.pattern.id(),
            d.pattern.action_type(),
            d.customer,
            d.merchant,
            d.chunk
        );
    }
    println!("  extra      {:>10}", thousands(diff.extra.len() as u64));
    for (p, c, m) in diff.extra.iter().take(SHOWN_DIFFERENCES) {
        println!("    {},{},{},{}", p.id(), p.action_type(), c, m);
    }
    println!("  duplicated {:>10}", thousands(diff.duplicated.len() as u64));
    for ((p, c, m), n) in diff.duplicated.iter().take(SHOWN_DIFFERENCES) {
        println!("    {},{},{},{} ({n} times)", p.id(), p.action_type(), c, m);
    }
    println!("  bad rows   {:>10}", thousands(found.problems.len() as u64));
    for p in found.problems.iter().take(SHOWN_DIFFERENCES) {
        println!("    {} line {}: {}", p.file, p.line, p.message);
    }
    if diff.is_empty() && found.problems.is_empty() {
        println!("OK: the output equals the reference exactly.");
        Ok(Outcome::Success)
    } else {
        println!("DIFFERENT: the output does not equal the reference (see above).");
        Ok(Outcome::Differences)
    }
}

/// Replays the complete chunks under an `s3://` prefix, fetching one chunk at a time.
fn replay_store(
    url: &str,
    settings: &Settings,
    engines: &mut Engines,
    ui: Ui,
    interrupt: &Interrupt,
) -> Result<(), Error> {
    let runtime = current_thread_runtime()?;
    let store = runtime.block_on(open_store(url, &settings.s3)).map_err(store_error)?;
    let keys = runtime.block_on(store.list("")).map_err(store_error)?;
    // chunk index -> (part keys in name order, whether _SUCCESS is there)
    let mut folders: BTreeMap<u64, (Vec<String>, bool)> = BTreeMap::new();
    for key in keys {
        let Some((folder, name)) = key.split_once('/') else { continue };
        let Some(index) = parse_chunk_folder(folder) else { continue };
        let entry = folders.entry(index).or_default();
        if name == SUCCESS {
            entry.1 = true;
        } else if is_part_file(name) {
            entry.0.push(key.clone());
        }
    }
    let complete: Vec<(u64, Vec<String>)> =
        folders.iter().filter(|(_, (_, done))| *done).map(|(i, (parts, _))| (*i, parts.clone())).collect();
    let incomplete = folders.len() - complete.len();
    let bar = ui.bar(complete.len() as u64, "verifying", "chunks");
    for (index, mut keys) in complete.iter().cloned() {
        interrupt.check()?;
        keys.sort();
        let mut parts = Vec::with_capacity(keys.len());
        for key in keys {
            let bytes = runtime.block_on(store.get(&key)).map_err(store_error)?.unwrap_or_default();
            parts.push((key, bytes));
        }
        engines.apply(InputChunk { index, parts })?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("input       {url}: {} complete chunks, {incomplete} incomplete (ignored)", complete.len());
    Ok(())
}
