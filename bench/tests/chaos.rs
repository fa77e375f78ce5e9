//! The chaos suite's short form, in `make test`: the whole pipeline on PostgreSQL (a server of
//! its own), the machine's RabbitMQ and SeaweedFS, under 8 `kill -9`s (one per process), a
//! RabbitMQ restart, a PostgreSQL restart and a 3 s S3 outage; then `txp verify --output` must
//! pass, every bad row must be in the quarantine once and the queues must be empty. It restarts
//! the machine's RabbitMQ, so it runs alone (.config/nextest.toml). `make chaos` runs the full
//! form (docs/operations.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

#[test]
fn chaos_short_on_rabbitmq_loses_and_doubles_nothing() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_txp-bench"));
    let txp = bench.with_file_name("txp");
    assert!(txp.is_file(), "{} is missing: run the workspace's tests", txp.display());
    let results = tempfile::tempdir().unwrap();
    let out = Command::new(&bench)
        .arg("--txp")
        .arg(&txp)
        .arg("--results")
        .arg(results.path())
        .args(["chaos", "--short", "--seed", "11", "--broker", "rabbitmq"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the chaos run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(results.path().join("partial/chaos-rabbitmq-seed11.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["pass"], true);
    assert!(report["kills"].as_u64().unwrap() >= 5, "{}", report["kills"]);
    assert_eq!(report["broker_restarts"], 1);
    assert_eq!(report["database_restarts"], 1);
    assert!(report["detections"].as_u64().unwrap() > 0);
    // The run prints its seed and each fault with its time.
    assert!(stdout.contains("chaos: seed 11 on rabbitmq"), "{stdout}");
    assert!(stdout.contains("kill -9 ") && stdout.contains("RabbitMQ: stop_app"), "{stdout}");
}
