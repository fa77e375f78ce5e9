//! A huge line is read in pieces: reading one of 200 MB through a reader's buffer raises the
//! process's peak memory by far less than the line. Alone in its test binary so that no other
//! test's memory counts; skipped where /proc/self/status is missing (not Linux).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufReader, Read};

use txp_core::aggregate::ChunkAggregator;
use txp_core::contract::{MAX_LINE_BYTES, TRANSACTIONS_HEADER};

/// The process's peak resident memory (VmHWM), in KiB.
fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_200_mb_line_never_sits_in_memory_whole() {
    const HUGE: u64 = 200 * 1024 * 1024;
    let Some(before) = peak_kib() else { return };
    let header = format!("{TRANSACTIONS_HEADER}\n");
    let row = "\n0,'C1','2','F','28007','M1','28007','es_food',26.9,0\n";
    // The line is produced as it is read: only the parser could hold it whole.
    let reader = header.as_bytes().chain(std::io::repeat(b'x').take(HUGE)).chain(row.as_bytes());
    let mut aggregator = ChunkAggregator::new(0);
    aggregator.add_part("part-00000.csv", BufReader::new(reader)).unwrap();
    let chunk = aggregator.finish();
    assert_eq!(chunk.valid_rows, 1);
    assert_eq!(chunk.rejected.len(), 1);
    let rejection = &chunk.rejected[0].rejection;
    assert_eq!((rejection.line, rejection.raw.len()), (2, MAX_LINE_BYTES));
    assert_eq!(rejection.reason, format!("line longer than 65536 bytes ({HUGE} bytes)"));
    let grown_mib = (peak_kib().unwrap() - before) / 1024;
    assert!(grown_mib < 16, "peak memory grew by {grown_mib} MiB reading a line of 200 MiB");
}
