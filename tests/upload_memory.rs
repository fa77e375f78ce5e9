//! A 500 MB source streamed from the test's own HTTP server: the uploader's peak memory stays
//! under 64 MiB, and every row arrives (the chunk count and the last chunk's rows add up).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::cast_possible_truncation)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use common::*;

const TARGET_BYTES: u64 = 500 * 1024 * 1024;

/// Serves one GET: the header, then rows cycled from `rows` until `TARGET_BYTES`, with a
/// Content-Length, never holding more than one block in memory.
fn serve(listener: TcpListener, header: String, rows: Vec<u8>) -> (u64, u64) {
    let (stream, _) = listener.accept().unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 2 {
        line.clear();
    }
    let per_cycle = rows.iter().filter(|&&b| b == b'\n').count() as u64;
    let cycles = (TARGET_BYTES - header.len() as u64) / rows.len() as u64;
    let length = header.len() as u64 + cycles * rows.len() as u64;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stream);
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nContent-Type: text/csv\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    out.write_all(header.as_bytes()).unwrap();
    for _ in 0..cycles {
        out.write_all(&rows).unwrap();
    }
    out.flush().unwrap();
    (length, cycles * per_cycle)
}

/// The peak resident memory (VmHWM) of a process, in KiB, while it runs.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_500_mb_http_source_keeps_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _) = dataset(dir.path(), 20_000, 1);
    let text = std::fs::read_to_string(&tx).unwrap();
    let (header, rows) = text.split_once('\n').unwrap();
    let (header, rows) = (format!("{header}\n"), rows.as_bytes().to_vec());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/transactions.csv", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || serve(listener, header, rows));

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_txp"))
        .current_dir(dir.path())
        .args([
            "--quiet",
            "upload",
            "--source",
            &url,
            "--to",
            "input",
            "--interval",
            "0",
            "--chunk-rows",
            "50000",
        ])
        .args(["--database", &format!("sqlite://{}", dir.path().join("txp.db").display())])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(peak_kib(child.id()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (bytes, total_rows) = server.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let chunks = total_rows.div_ceil(50_000);
    assert!(stdout.contains(&format!("{chunks} published")), "{stdout}");
    println!("streamed {bytes} bytes, {total_rows} rows in {chunks} chunks; peak RSS {peak} KiB");
    assert!(peak > 0, "could not read the uploader's memory");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB is not under 64 MiB");
}
