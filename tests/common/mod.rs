//! Helpers shared by the command-line tests: run `txp` in a folder of its own with a clean
//! environment, and make small datasets.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// A `txp` command run in `dir`, with no `TXP_*` variable inherited from the caller.
pub fn txp(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_txp"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TXP_") {
            cmd.env_remove(key);
        }
    }
    // Every test process serves its metrics on a port of its own (parallel tests would
    // otherwise share the default one).
    cmd.current_dir(dir).arg("--quiet").env("TXP_METRICS_ADDR", "127.0.0.1:0");
    cmd
}

/// A generated dataset in `dir`: (transactions, importance).
pub fn dataset(dir: &Path, rows: u64, seed: u64) -> (PathBuf, PathBuf) {
    txp(dir)
        .args(["generate", "--out", "data", "--rows", &rows.to_string(), "--seed", &seed.to_string()])
        .assert()
        .success();
    (dir.join("data/transactions.csv"), dir.join("data/CustomerImportance.csv"))
}

/// Standard output of a successful command as text.
pub fn stdout(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `detections` block of `verify`'s summary: pattern lines and total.
pub fn counts(summary: &str) -> Vec<String> {
    summary.lines().skip_while(|l| !l.starts_with("detections")).skip(1).take(4).map(str::to_owned).collect()
}

/// `txp verify --output`: the output folder holds exactly the reference's detections for the
/// source cut into `chunk_rows`-row chunks (else the command, hence the test, fails). Returns
/// what it printed.
pub fn assert_output_verified(
    dir: &Path,
    source: &str,
    chunk_rows: u64,
    importance: &str,
    output: &str,
) -> String {
    let printed = stdout(txp(dir).args([
        "verify",
        "--source",
        source,
        "--chunk-rows",
        &chunk_rows.to_string(),
        "--importance",
        importance,
        "--output",
        output,
    ]));
    assert!(printed.contains("OK: the output equals the reference exactly."), "{printed}");
    printed
}

/// `txp --preset seed verify --output`: the output folder holds exactly the reference's
/// detections of `source` cut into `chunk_rows`-row chunks under the seed preset, and at least
/// one (else the command, hence the test, fails).
pub fn assert_seed_output_verified(
    dir: &Path,
    source: &Path,
    chunk_rows: u64,
    importance: &Path,
    output: &Path,
) {
    let printed = stdout(txp(dir).args(["--preset", "seed", "verify", "--source"]).arg(source).args([
        "--chunk-rows",
        &chunk_rows.to_string(),
        "--importance",
        importance.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]));
    assert!(printed.contains("OK: the output equals the reference exactly."), "{printed}");
    let detections = counts(&printed);
    assert!(!detections.last().unwrap().ends_with(" 0"), "no detections at all: {detections:?}");
}

/// The message bodies `txp upload` recorded in the upload ledger of `db`, in chunk order.
pub fn recorded_bodies(rt: &tokio::runtime::Runtime, db: &sea_orm::DatabaseConnection) -> Vec<String> {
    use sea_orm::{EntityTrait, QueryOrder};
    rt.block_on(async {
        txp_entity::upload_ledger::Entity::find()
            .order_by_asc(txp_entity::upload_ledger::Column::ChunkIndex)
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .map(|row| row.message)
            .collect()
    })
}

/// [`recorded_bodies`], decoded.
pub fn recorded_messages(
    rt: &tokio::runtime::Runtime,
    db: &sea_orm::DatabaseConnection,
) -> Vec<txp_core::message::ChunkMessage> {
    recorded_bodies(rt, db)
        .iter()
        .map(|body| txp_core::message::ChunkMessage::decode(body.as_bytes()).unwrap())
        .collect()
}
