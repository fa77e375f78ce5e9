//! A real Prometheus server (Debian's `prometheus`, installed by `make tools`) for tests: it
//! scrapes the given targets every second, evaluates deploy/prometheus/alerts.yml every second,
//! and answers PromQL through its HTTP API. Stopped when dropped. Also a small HTTP GET over a
//! plain TCP stream (HTTP/1.0: the body runs to the end of the connection), enough for
//! Prometheus' API and txp's own /metrics, /healthz and /readyz.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET path` on `addr`: (status code, body). `None` when nothing answers.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Percent-encodes a query string value.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Where `make tools` leaves Prometheus (Debian's package).
fn binary(name: &str) -> PathBuf {
    let path = PathBuf::from("/usr/bin").join(name);
    assert!(
        path.is_file(),
        "{} not found: run `make tools` (installs Debian's prometheus package)",
        path.display()
    );
    path
}

/// Lints a scrape with `promtool check metrics`: its complaints, empty when clean.
pub fn promtool_check_metrics(scrape: &str) -> String {
    let mut child = Command::new(binary("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(scrape.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() { String::new() } else { format!("exit {}: {text}", out.status) }
}

/// A running Prometheus.
pub struct Prometheus {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts one scraping `targets` (job name, HOST:PORT) every second, with `rules` loaded.
    pub fn start(targets: &[(&str, String)], rules: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files:\n",
        );
        config.push_str(&format!("  - {}\nscrape_configs:\n", rules.display()));
        for (job, target) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
            ));
        }
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(binary("prometheus"))
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap();
        let server = Self { child, addr, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(&server.addr, "/-/ready").map(|(s, _)| s) != Some(200) {
            assert!(Instant::now() < deadline, "Prometheus did not become ready: {}", server.log());
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query: the `data.result` array (panics when the query is refused).
    pub fn query(&self, expr: &str) -> Vec<Value> {
        let (status, body) = http_get(&self.addr, &format!("/api/v1/query?query={}", encode(expr)))
            .unwrap_or_else(|| panic!("Prometheus did not answer {expr}"));
        let json: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{expr}: {e}: {body}"));
        assert_eq!(status, 200, "{expr}: {body}");
        assert_eq!(json["status"], "success", "{expr}: {body}");
        json["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The alerts and their states (`pending`, `firing`).
    pub fn alerts(&self) -> Vec<(String, String)> {
        let (_, body) = http_get(&self.addr, "/api/v1/alerts").unwrap();
        let json: Value = serde_json::from_str(&body).unwrap();
        json["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap_or_default().to_owned(),
                    a["state"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// The health of every scrape target: (job, health).
    pub fn targets(&self) -> Vec<(String, String)> {
        let (_, body) = http_get(&self.addr, "/api/v1/targets").unwrap();
        let json: Value = serde_json::from_str(&body).unwrap();
        json["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|t| {
                (
                    t["labels"]["job"].as_str().unwrap_or_default().to_owned(),
                    t["health"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
