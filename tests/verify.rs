//! `txp verify`: both engines agree through the command line, on a source and on chunk folders;
//! `--emit`; `--output` finds exactly what is missing, extra or duplicated; Ctrl-C exits 130.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;

use common::*;
use predicates::prelude::*;
use std::fs;
use std::num::NonZeroU64;
use std::path::Path;
use txp_core::layout::{PART_FILE, SUCCESS, chunk_folder};
use txp_uploader::cut::ChunkCutter;

/// Writes the chunks of `source` into `dir` in the layout of docs/patterns.md.
fn write_chunks(source: &Path, dir: &Path, rows: u64) -> usize {
    let file = std::io::BufReader::new(fs::File::open(source).unwrap());
    let mut n = 0;
    for chunk in ChunkCutter::new(file, NonZeroU64::new(rows).unwrap()).unwrap() {
        let chunk = chunk.unwrap();
        let folder = dir.join(chunk_folder(chunk.index));
        fs::create_dir_all(&folder).unwrap();
        fs::write(folder.join(PART_FILE), &chunk.bytes).unwrap();
        fs::write(folder.join(SUCCESS), "").unwrap();
        n += 1;
    }
    n
}

/// Writes detections (rows of an `--emit` file) as output files of `per_file` rows each.
fn write_output(emit: &Path, dir: &Path, per_file: usize, mutate: impl Fn(&mut Vec<Vec<String>>)) {
    let mut reader = csv::Reader::from_path(emit).unwrap();
    let mut rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            vec![
                "2026-11-30 16:34:23".into(),
                "2026-11-30 16:34:24".into(),
                r[0].into(),
                r[1].into(),
                r[2].into(),
                r[3].into(),
            ]
        })
        .collect();
    mutate(&mut rows);
    for (n, group) in rows.chunks(per_file).enumerate() {
        let folder = dir.join(format!("pattern_detected_20261130T163423_{n}.csv"));
        fs::create_dir_all(&folder).unwrap();
        let mut w = csv::Writer::from_path(folder.join(PART_FILE)).unwrap();
        w.write_record([
            "YStartTime(IST)",
            "detectionTime(IST)",
            "patternId",
            "ActionType",
            "customerName",
            "MerchantId",
        ])
        .unwrap();
        for row in group {
            w.write_record(row).unwrap();
        }
        w.flush().unwrap();
        fs::write(folder.join(SUCCESS), "").unwrap();
    }
}

#[test]
fn both_engines_and_both_inputs_give_the_same_detections() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, imp) = dataset(dir.path(), 3_000, 2);
    let verify = |extra: &[&str]| {
        let mut cmd = txp(dir.path());
        cmd.args(["--preset", "seed", "verify", "--importance", imp.to_str().unwrap()]).args(extra);
        stdout(&mut cmd)
    };
    let source = ["--source", tx.to_str().unwrap(), "--chunk-rows", "250"];
    let a = verify(&[&source[..], &["--emit", "a.csv"]].concat());
    let b = verify(&[&source[..], &["--emit", "b.csv", "--engine", "reference"]].concat());
    let c = verify(&[&source[..], &["--engine", "both"]].concat());
    assert_eq!(counts(&a), counts(&b));
    assert_eq!(counts(&a), counts(&c));
    assert!(c.contains("they agree"));
    assert!(a.contains("cut into 12 chunks of 250 rows"), "{a}");
    let emitted = fs::read_to_string(dir.path().join("a.csv")).unwrap();
    assert_eq!(emitted, fs::read_to_string(dir.path().join("b.csv")).unwrap());
    assert!(emitted.starts_with("patternId,ActionType,customerName,MerchantId,chunkIndex\n"));
    for action in ["UPGRADE", "CHILD", "DEI-NEEDED"] {
        assert!(emitted.contains(&format!(",{action},")), "no {action} in\n{emitted}");
    }
    // Ordered by chunk index, then key.
    let keys: Vec<(u64, String)> = emitted
        .lines()
        .skip(1)
        .map(|l| {
            let (rest, chunk) = l.rsplit_once(',').unwrap();
            (chunk.parse().unwrap(), rest.to_owned())
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);

    // The same chunks as folders give the same file.
    let input = dir.path().join("input");
    assert_eq!(write_chunks(&tx, &input, 250), 12);
    fs::create_dir_all(input.join("chunk_12.csv")).unwrap(); // incomplete: no _SUCCESS
    let d = verify(&["--input", input.to_str().unwrap(), "--emit", "d.csv"]);
    assert!(d.contains("12 complete chunks, 1 incomplete (ignored)"), "{d}");
    assert_eq!(emitted, fs::read_to_string(dir.path().join("d.csv")).unwrap());
}

#[test]
fn a_chunk_with_a_wrong_header_is_rejected_whole_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, imp) = dataset(dir.path(), 500, 1);
    let input = dir.path().join("input");
    write_chunks(&tx, &input, 100);
    let part = input.join("chunk_2.csv").join(PART_FILE);
    let text = fs::read_to_string(&part).unwrap().replacen("step,", "stop,", 1);
    fs::write(&part, text).unwrap();
    let out =
        stdout(txp(dir.path()).args(["verify", "--input", "input", "--importance", imp.to_str().unwrap()]));
    assert!(out.contains("rows        400 valid, 101 rejected"), "{out}");
    assert!(
        out.contains("chunk 2 part-00000.csv line 1: wrong file header, expected step,customer,"),
        "{out}"
    );
}

#[test]
fn output_comparison_finds_missing_extra_and_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, imp) = dataset(dir.path(), 3_000, 5);
    let base = [
        "--preset",
        "seed",
        "verify",
        "--source",
        tx.to_str().unwrap(),
        "--chunk-rows",
        "500",
        "--importance",
        imp.to_str().unwrap(),
    ];
    txp(dir.path()).args(base).args(["--emit", "expected.csv"]).assert().success();
    let emit = dir.path().join("expected.csv");
    let check = |name: &str, mutate: &dyn Fn(&mut Vec<Vec<String>>)| {
        let out = dir.path().join(name);
        write_output(&emit, &out, 50, mutate);
        txp(dir.path()).args(base).args(["--output", out.to_str().unwrap()]).assert()
    };

    check("exact", &|_| {})
        .code(0)
        .stdout(predicate::str::contains("OK: the output equals the reference exactly."));
    // An incomplete folder is ignored and reported.
    let partial = dir.path().join("exact/pattern_detected_20261130T170000_99.csv");
    fs::create_dir_all(&partial).unwrap();
    fs::write(partial.join(PART_FILE), "garbage").unwrap();
    check("exact", &|_| {}).code(0).stdout(predicate::str::contains("1 incomplete (ignored)"));

    check("missing", &|rows| {
        rows.remove(3);
    })
    .code(1)
    .stdout(predicate::str::contains("missing             1").and(predicate::str::contains("DIFFERENT")));
    check("extra", &|rows| {
        rows.push(vec!["x".into(), "y".into(), "PatId2".into(), "CHILD".into(), "C0".into(), "M0".into()])
    })
    .code(1)
    .stdout(
        predicate::str::contains("extra               1").and(predicate::str::contains("PatId2,CHILD,C0,M0")),
    );
    check("duplicated", &|rows| {
        let again = rows[0].clone();
        rows.push(again);
    })
    .code(1)
    .stdout(predicate::str::contains("duplicated          1").and(predicate::str::contains("(2 times)")));
    check("mislabelled", &|rows| rows[0][3] = "UPGRADE-ISH".into())
        .code(1)
        .stdout(predicate::str::contains("bad rows            1"));
}

#[test]
fn full_dataset_banksim_both_engines_agree() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, imp) = dataset(dir.path(), txp_core::generate::DEFAULT_ROWS, 0);
    let started = std::time::Instant::now();
    let out = stdout(txp(dir.path()).args([
        "verify",
        "--source",
        tx.to_str().unwrap(),
        "--importance",
        imp.to_str().unwrap(),
        "--engine",
        "both",
    ]));
    println!("verify --engine both on the full dataset: {:.1} s\n{out}", started.elapsed().as_secs_f64());
    assert!(out.contains("preset banksim"));
    assert!(out.contains("cut into 60 chunks"));
    assert!(out.contains("594,643 valid, 0 rejected"));
    for line in counts(&out) {
        let n: u64 = line.split_whitespace().last().unwrap().replace(',', "").parse().unwrap();
        assert!(n > 0, "no detections: {line}");
    }
}

#[test]
fn interrupt_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, imp) = dataset(dir.path(), txp_core::generate::DEFAULT_ROWS, 0);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_txp"))
        .current_dir(dir.path())
        .args([
            "verify",
            "--source",
            tx.to_str().unwrap(),
            "--importance",
            imp.to_str().unwrap(),
            "--engine",
            "reference",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert!(child.try_wait().unwrap().is_none(), "verify finished before it could be interrupted");
    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
}
