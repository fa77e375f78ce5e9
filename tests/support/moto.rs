//! moto's standalone server as a test SQS endpoint: started on a free port of 127.0.0.1 from
//! the workspace's tool environment (`make tools`), stopped when dropped.
//!
//! Use it from a test file with `mod support { pub mod moto; }`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long moto may take to answer after starting (it imports a lot of Python).
const STARTUP: Duration = Duration::from_secs(30);
/// Ports tried before giving up: another process can take a free port before moto binds it.
const TRIES: usize = 3;

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Child,
    log: PathBuf,
    /// Where moto's request recorder writes, once started ([`Moto::record`]).
    recording: PathBuf,
}

impl Moto {
    /// Credentials and region moto accepts (any static pair does).
    pub fn options(&self) -> txp_connectors::queue::SqsOptions {
        txp_connectors::queue::SqsOptions {
            endpoint_url: Some(self.endpoint.clone()),
            region: Some("us-east-1".to_owned()),
            access_key_id: Some("testing".to_owned()),
            secret_access_key: Some("testing".to_owned()),
        }
    }
}

impl Moto {
    /// Starts (true) or stops moto's request recorder.
    pub fn record(&self, on: bool) {
        let path = if on { "start-recording" } else { "stop-recording" };
        let port = self.endpoint.rsplit(':').next().unwrap();
        let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        let request = format!(
            "POST /moto-api/recorder/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"), "{answer}");
    }

    /// The SQS actions recorded so far (`CreateQueue`, `GetQueueUrl`, …), in order.
    pub fn recorded_sqs_actions(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.recording).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let entry: serde_json::Value = serde_json::from_str(line).ok()?;
                let headers = entry.get("headers")?.as_object()?;
                let target =
                    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))?.1.as_str()?;
                target.strip_prefix("AmazonSQS.").map(str::to_owned)
            })
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_file(&self.recording);
    }
}

/// The `moto_server` executable: `TXP_TEST_MOTO`, else the workspace's `.tools/venv`.
fn executable() -> PathBuf {
    let path = std::env::var_os("TXP_TEST_MOTO").map(PathBuf::from).unwrap_or_else(|| {
        // The workspace's `.tools`: the package's own folder, or above it for a member crate
        // (the bench's chaos suite) that shares this file.
        let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let installed = here.ancestors().map(|d| d.join(".tools/venv/bin/moto_server")).find(|p| p.is_file());
        installed.unwrap_or_else(|| here.join(".tools/venv/bin/moto_server"))
    });
    if !path.is_file() {
        panic!(
            "moto_server not found at {}: run `make tools` (installs moto[server] into .tools/venv) or set \
             TXP_TEST_MOTO to a moto_server executable",
            path.display()
        );
    }
    path
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// True once the server answers an HTTP request on `port`.
fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// Starts moto on a free port and waits until it answers (blocking).
pub fn start() -> Moto {
    let exe = executable();
    let mut failures = Vec::new();
    for _ in 0..TRIES {
        match try_start(&exe) {
            Ok(moto) => return moto,
            Err(why) => failures.push(why),
        }
    }
    panic!("moto_server did not start:\n{}", failures.join("\n---\n"));
}

fn try_start(exe: &PathBuf) -> Result<Moto, String> {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("txp-moto-{}-{port}.log", std::process::id()));
    let log_file = std::fs::File::create(&log).unwrap();
    let recording = std::env::temp_dir().join(format!("txp-moto-{}-{port}.recording", std::process::id()));
    let child = Command::new(exe)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("MOTO_RECORDER_FILEPATH", &recording)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let mut moto = Moto { endpoint: format!("http://127.0.0.1:{port}"), child, log, recording };
    let started = Instant::now();
    while started.elapsed() < STARTUP {
        if let Ok(Some(status)) = moto.child.try_wait() {
            let output = std::fs::read_to_string(&moto.log).unwrap_or_default();
            return Err(format!("moto_server on port {port} exited with {status}:\n{output}"));
        }
        if answers(port) {
            return Ok(moto);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("moto_server on port {port} did not answer within {STARTUP:?}"))
}
