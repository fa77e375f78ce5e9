//! The `txp` command line: help with examples, exit codes, errors that say what to do, and the
//! settings layers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;

use common::*;
use predicates::prelude::*;
use std::fs;

#[test]
fn every_help_shows_an_example() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--help"],
        vec!["generate", "--help"],
        vec!["verify", "--help"],
        vec!["config", "--help"],
        vec!["config", "show", "--help"],
    ] {
        txp(dir.path()).args(&args).assert().success().stdout(predicate::str::contains("Example"));
    }
    txp(dir.path()).arg("--help").assert().stdout(predicate::str::contains("130 interrupted"));
}

#[test]
fn bad_usage_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    txp(dir.path()).arg("frobnicate").assert().code(2);
    // verify needs an input.
    txp(dir.path()).args(["verify", "--importance", "x.csv"]).assert().code(2);
    txp(dir.path())
        .args(["generate", "--out", "d", "--rows", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--rows must be at least 1"));
}

#[test]
fn input_errors_say_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, imp) = dataset(dir.path(), 300, 1);
    txp(dir.path())
        .args(["verify", "--source", tx.to_str().unwrap(), "--importance", "missing.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read missing.csv").and(predicate::str::contains("hint:")));
    fs::write(dir.path().join("wrong.csv"), "a,b,c\n1,2,3\n").unwrap();
    txp(dir.path())
        .args(["verify", "--source", "wrong.csv", "--importance", imp.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "expected `step,customer,age,gender,zipcodeOri,merchant,zipMerchant,category,amount,fraud`, found `a,b,c`",
        ));
    txp(dir.path())
        .args(["verify", "--source", tx.to_str().unwrap(), "--importance", tx.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Source,Target,Weight,typeTrans,fraud"));
    txp(dir.path())
        .args(["verify", "--input", "no-such-folder", "--importance", imp.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no-such-folder"));
}

#[test]
fn settings_layers_file_env_flags() {
    let dir = tempfile::tempdir().unwrap();
    let show = |cmd: &mut assert_cmd::Command| stdout(cmd.args(["config", "show"]));
    let line = |out: &str, name: &str| {
        out.lines().find(|l| l.starts_with(&format!("{name} = "))).unwrap().to_owned()
    };

    let out = show(&mut txp(dir.path()));
    assert!(line(&out, "preset").contains("\"banksim\"") && line(&out, "preset").contains("# default"));
    assert!(
        line(&out, "min_txns").starts_with("min_txns = 80 ")
            && line(&out, "min_txns").contains("# preset banksim")
    );

    fs::write(
        dir.path().join("txp.toml"),
        "[patterns]\npreset = \"seed\"\n[patterns.child]\nmin_txns = 5\nmax_avg_amount = 12.5\n",
    )
    .unwrap();
    let out = show(&mut txp(dir.path()));
    assert!(line(&out, "preset").contains("\"seed\"") && line(&out, "preset").contains("# file txp.toml"));
    assert!(
        line(&out, "min_txns").starts_with("min_txns = 5 ")
            && line(&out, "min_txns").contains("# file txp.toml")
    );
    assert!(line(&out, "max_avg_amount").starts_with("max_avg_amount = 12.5 "));
    // A threshold not set anywhere comes from the preset chosen in the file.
    assert!(
        line(&out, "min_merchant_txns").starts_with("min_merchant_txns = 500 ")
            && line(&out, "min_merchant_txns").contains("# preset seed")
    );

    let out = show(txp(dir.path()).env("TXP_PATTERNS_CHILD_MIN_TXNS", "6").env("TXP_PRESET", "banksim"));
    assert!(
        line(&out, "min_txns").starts_with("min_txns = 6 ")
            && line(&out, "min_txns").contains("# env TXP_PATTERNS_CHILD_MIN_TXNS")
    );
    assert!(
        line(&out, "preset").contains("\"banksim\"") && line(&out, "preset").contains("# env TXP_PRESET")
    );

    let out = show(txp(dir.path()).env("TXP_PATTERNS_CHILD_MIN_TXNS", "6").args([
        "--set",
        "patterns.child.min_txns=7",
        "--preset",
        "seed",
    ]));
    assert!(
        line(&out, "min_txns").starts_with("min_txns = 7 ")
            && line(&out, "min_txns").contains("# flag --set patterns.child.min_txns")
    );
    assert!(line(&out, "preset").contains("# flag --preset"));

    // --config FILE replaces ./txp.toml and works after the subcommand too.
    fs::write(dir.path().join("other.toml"), "[upload]\nchunk_rows = 77\n").unwrap();
    let out = stdout(txp(dir.path()).args(["config", "show", "--config", "other.toml"]));
    assert!(
        line(&out, "chunk_rows").starts_with("chunk_rows = 77 ")
            && line(&out, "chunk_rows").contains("# file other.toml")
    );
    assert!(line(&out, "min_txns").contains("# preset banksim"));
    // Every --set counts, before the subcommand, after it, and after the sub-subcommand
    // (clap alone keeps only the last level's).
    let every = stdout(txp(dir.path()).args([
        "--set",
        "queue.name=first",
        "config",
        "--set=upload.chunk_rows=7",
        "show",
        "--set",
        "startup.wait=5s",
    ]));
    assert!(line(&every, "name").starts_with("name = \"first\" "), "{every}");
    assert!(line(&every, "chunk_rows").starts_with("chunk_rows = 7 "), "{every}");
    assert!(line(&every, "wait").starts_with("wait = \"5s\" "), "{every}");
    // The output is TOML that reads back.
    let parsed: toml::Table = out.parse().unwrap();
    assert_eq!(parsed["upload"]["chunk_rows"].as_integer(), Some(77));
}

#[test]
fn bad_settings_name_the_key_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let fails = |cmd: &mut assert_cmd::Command, needle: &str| {
        cmd.args(["config", "show"]).assert().code(2).stderr(predicate::str::contains(needle));
    };
    fails(txp(dir.path()).args(["--set", "patterns.child.nope=1"]), "unknown setting `patterns.child.nope`");
    fails(txp(dir.path()).args(["--set", "nonsense"]), "is not KEY=VALUE");
    fails(txp(dir.path()).args(["--preset", "huge"]), "unknown preset `huge`: use one of banksim, seed");
    fails(txp(dir.path()).env("TXP_PATTERNS_UPGRADE_TOP_PCT", "101"), "setting patterns.upgrade.top_pct");
    fails(
        txp(dir.path()).args(["--set", "patterns.child.max_avg_amount=1.1234567"]),
        "patterns.child.max_avg_amount",
    );
    fails(txp(dir.path()).args(["--set", "upload.chunk_rows=0"]), "upload.chunk_rows: must be at least 1");
    fails(txp(dir.path()).args(["--config", "absent.toml"]), "settings file absent.toml does not exist");
    fs::write(dir.path().join("bad.toml"), "[patterns]\nnope = 1\n").unwrap();
    fails(txp(dir.path()).args(["--config", "bad.toml"]), "nope");
    fs::write(dir.path().join("float.toml"), "[patterns.child]\nmax_avg_amount = 1234567890.1234567\n")
        .unwrap();
    fails(txp(dir.path()).args(["--config", "float.toml"]), "write it as a string");
}

#[test]
fn percentages_are_read_exactly() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("txp.toml"), "[patterns.upgrade]\ntop_pct = 7.5\nbottom_pct = \"0.000001\"\n")
        .unwrap();
    let out = stdout(txp(dir.path()).args(["config", "show"]));
    assert!(out.contains("top_pct = 7.5 "), "{out}");
    assert!(out.contains("bottom_pct = 0.000001 "), "{out}");
}

#[test]
fn generate_is_deterministic_per_seed() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, imp) = dataset(dir.path(), 2_000, 3);
    let (a, b) = (fs::read(&tx).unwrap(), fs::read(&imp).unwrap());
    dataset(dir.path(), 2_000, 3);
    assert_eq!(fs::read(&tx).unwrap(), a);
    assert_eq!(fs::read(&imp).unwrap(), b);
    dataset(dir.path(), 2_000, 4);
    assert_ne!(fs::read(&tx).unwrap(), a);
    assert_eq!(a.iter().filter(|&&c| c == b'\n').count(), 2_001);
    // No partial files are left behind.
    let names: Vec<String> = fs::read_dir(dir.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// `txp status | head`: a reader that goes away is not an internal error; txp stops quietly
/// with 141, as a program killed by SIGPIPE would.
#[test]
fn a_closed_standard_output_is_not_an_internal_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_txp"))
        .current_dir(dir.path())
        .env("TXP_METRICS_ADDR", "off")
        .args(["status", "--database", "sqlite://fresh.db"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader closes before txp has created and migrated its database, so before it prints.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("internal error"), "{stderr}");
}
