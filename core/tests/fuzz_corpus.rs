//! The fuzz targets' committed inputs (docs/fuzzing.md), replayed on stable without cargo-fuzz:
//! every file under `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` goes through the
//! same checks as in the fuzz target, `txp_core::fuzzing::check_<target>`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use txp_core::fuzzing::{Violation, check_chunk, check_encoding, check_importance, check_message};

type Check = fn(&[u8]) -> Result<(), Violation>;

const TARGETS: [(&str, Check); 4] = [
    ("chunk", check_chunk),
    ("importance", check_importance),
    ("message", check_message),
    ("encoding", check_encoding),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of a folder, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    out.sort();
    out
}

fn replay(kind: &str, expect_some: bool) {
    for (target, check) in TARGETS {
        let dir = fuzz_dir().join(kind).join(target);
        let inputs = files(&dir);
        assert!(!expect_some || !inputs.is_empty(), "no inputs in {}", dir.display());
        for input in inputs {
            let bytes = std::fs::read(&input).unwrap();
            if let Err(violation) = check(&bytes) {
                panic!("{}: {violation}", input.display());
            }
        }
    }
}

#[test]
fn the_seed_corpus_passes_every_check() {
    replay("corpus", true);
}

#[test]
fn every_corpus_folder_is_a_target_replayed_here() {
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind)) else { continue };
        for entry in entries {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                TARGETS.iter().any(|(target, _)| *target == name),
                "fuzz/{kind}/{name} is not replayed: add its check to TARGETS"
            );
        }
    }
}

#[test]
fn every_crash_found_by_fuzzing_stays_fixed() {
    replay("regressions", false);
}
