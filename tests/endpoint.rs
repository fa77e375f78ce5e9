//! The metrics endpoint of a real process: 2,000 `/readyz` probes, 40 at a time, against an idle
//! `txp consume` run at most about one readiness check (database, queue) a second, while
//! `/healthz` keeps answering. The checks are counted from the process's own debug log line
//! `readiness checked`, written once per check run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One GET on a connection of its own: the status line, or `None` when it failed.
fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.lines().next().map(str::to_owned)
}

#[test]
fn a_probe_flood_on_a_real_consumer_runs_about_one_readiness_check_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = dir.path().join("consume.log");
    let database = format!("sqlite://{}", dir.path().join("txp.db").display());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_txp"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TXP_") {
            cmd.env_remove(key);
        }
    }
    let mut consumer = cmd
        .current_dir(dir.path())
        .env("TXP_LOG", "warn,txp_telemetry::endpoint=debug")
        .args(["--quiet", "--metrics-addr", &format!("127.0.0.1:{port}"), "consume", "--database", &database])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while get(addr, "/readyz").as_deref() != Some("HTTP/1.1 200 OK") {
        assert!(consumer.try_wait().unwrap().is_none(), "{}", std::fs::read_to_string(&log).unwrap());
        assert!(started.elapsed() < Duration::from_secs(60), "the consumer never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Past the cached answer's second, so the flood's first probe runs a check.
    std::thread::sleep(Duration::from_millis(1_200));
    let checks_before = std::fs::read_to_string(&log).unwrap().matches("readiness checked").count();

    let (ready, other) = (AtomicU64::new(0), AtomicU64::new(0));
    let next = AtomicU64::new(0);
    let healthz_slowest = AtomicU64::new(0);
    let flooding = std::sync::atomic::AtomicBool::new(true);
    let flood_started = Instant::now();
    std::thread::scope(|threads| {
        threads.spawn(|| {
            while flooding.load(Ordering::Relaxed) {
                let asked = Instant::now();
                assert_eq!(get(addr, "/healthz").as_deref(), Some("HTTP/1.1 200 OK"));
                let took = u64::try_from(asked.elapsed().as_millis()).unwrap();
                healthz_slowest.fetch_max(took, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let clients: Vec<_> = (0..40)
            .map(|_| {
                threads.spawn(|| {
                    while next.fetch_add(1, Ordering::Relaxed) < 2_000 {
                        match get(addr, "/readyz").as_deref() {
                            Some("HTTP/1.1 200 OK") => ready.fetch_add(1, Ordering::Relaxed),
                            _ => other.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        for client in clients {
            client.join().unwrap();
        }
        flooding.store(false, Ordering::Relaxed);
    });
    let flood = flood_started.elapsed();
    assert_eq!((ready.into_inner(), other.into_inner()), (2_000, 0));
    // The log is written as each check ends; give the last line a moment.
    std::thread::sleep(Duration::from_millis(300));
    consumer.kill().unwrap();
    let _ = consumer.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let checks = text.matches("readiness checked").count() - checks_before;
    // At most one check per started second of the flood, plus the one in flight at its start.
    let bound = usize::try_from(flood.as_secs()).unwrap() + 2;
    assert!(checks >= 1 && checks <= bound, "{checks} readiness checks in {flood:?} for 2,000 probes");
    assert!(healthz_slowest.into_inner() < 2_000, "/healthz was slow during the flood");
}
