//! Each benchmark still runs from its one command, end to end, on a small size: it starts
//! SeaweedFS, uses the machine's PostgreSQL and RabbitMQ, drives the `txp` binary the workspace
//! built, and writes its results and plots. Nothing here checks a figure against a target:
//! benchmark numbers live in docs/performance.md, never in tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `txp` binary of this build (the workspace's tests build every binary first).
fn txp() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_txp-bench"));
    let txp = bench.with_file_name("txp");
    assert!(
        txp.is_file(),
        "{} is missing: run the workspace's tests (cargo nextest run --workspace)",
        txp.display()
    );
    txp
}

fn run(results: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_txp-bench"))
        .arg("--txp")
        .arg(txp())
        .arg("--results")
        .arg(results)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "txp-bench {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The result a small run wrote (under `partial/`: smaller than the targets' sizes).
fn result(results: &Path, name: &str) -> serde_json::Value {
    let path = results.join("partial").join(format!("{name}.json"));
    let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(value["benchmark"], name);
    assert!(value["environment"]["cpus"].as_u64().unwrap() > 0);
    assert!(value["environment"]["versions"].as_array().unwrap().iter().any(|v| v[0] == "postgresql"));
    let checks = value["checks"].as_array().unwrap();
    assert!(!checks.is_empty());
    for check in checks {
        assert!(check["pass"].is_boolean() && check["measured"].is_string(), "{check}");
    }
    value
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.starts_with(b"\x89PNG\r\n\x1a\n"))
}

#[test]
fn catch_up_live_and_growth_run_end_to_end_on_a_small_stream() {
    let results = tempfile::tempdir().unwrap();
    let out = run(results.path(), &["catch-up", "--rows", "30000"]);
    assert!(out.contains("PASS") || out.contains("MISS"), "{out}");
    let catch_up = result(results.path(), "catch-up");
    let runs = catch_up["figures"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "run, split and embedded");
    for run in runs {
        assert!(run["detections"].as_u64().is_some(), "{run}");
        assert!(run["processes"].as_array().unwrap().iter().all(|p| p["peak_rss_kib"].as_u64().unwrap() > 0));
    }
    assert_eq!(catch_up["figures"]["profile_txp_run"].as_array().unwrap().len(), 8);

    run(results.path(), &["live", "--chunks", "3", "--interval", "300ms"]);
    let live = result(results.path(), "live");
    assert_eq!(live["figures"]["chunks"].as_array().unwrap().len(), 3);
    assert!(is_png(&results.path().join("partial/live-latency.png")));

    run(results.path(), &["growth", "--rows", "30000"]);
    let growth = result(results.path(), "growth");
    assert_eq!(growth["figures"]["passes"].as_array().unwrap().len(), 2);
    assert!(is_png(&results.path().join("partial/growth-per-chunk.png")));
    assert!(!results.path().join("catch-up.json").exists(), "a small run wrote over the full-size results");
}
