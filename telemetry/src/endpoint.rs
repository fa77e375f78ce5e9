//! The HTTP endpoint of a long-running process, on one port (`--metrics-addr`, default 9464):
//! `/metrics` (Prometheus text format), `/healthz` (the process is alive) and `/readyz` (the
//! database, queue and store answer and the migrations are applied). A few GET routes do not
//! need a web framework: requests are read up to their blank line and answered, one per
//! connection.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::catalogue::CATALOGUE;

/// Answers whether the process can do its work: `Err` says what is not reachable.
pub type ReadyCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The recorder could not be built or installed.
    #[error("cannot set up the metrics recorder: {0}")]
    Recorder(String),
    /// The address could not be bound.
    #[error("cannot serve metrics on {addr}: {error}")]
    Bind { addr: SocketAddr, error: std::io::Error },
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// A recorder with the catalogue's histogram buckets (explicit buckets: real histograms).
pub fn build_recorder() -> Result<metrics_exporter_prometheus::PrometheusRecorder, EndpointError> {
    let mut builder = PrometheusBuilder::new();
    for metric in CATALOGUE.iter().filter(|m| !m.buckets.is_empty()) {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(metric.name.to_owned()), metric.buckets)
            .map_err(|e| EndpointError::Recorder(e.to_string()))?;
    }
    Ok(builder.build_recorder())
}

/// Installs the process-wide recorder once and returns its handle (the same on later calls).
pub fn install() -> Result<PrometheusHandle, EndpointError> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = build_recorder()?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| EndpointError::Recorder(e.to_string()))?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// The running endpoint; it stops when dropped.
#[derive(Debug)]
pub struct Endpoint {
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Endpoint {
    /// The address it listens on (the bound port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Binds `addr` and serves `/metrics`, `/healthz` and `/readyz` until the endpoint is dropped.
pub async fn serve(
    addr: SocketAddr,
    handle: PrometheusHandle,
    ready: ReadyCheck,
) -> Result<Endpoint, EndpointError> {
    let listener = TcpListener::bind(addr).await.map_err(|error| EndpointError::Bind { addr, error })?;
    let bound = listener.local_addr().map_err(|error| EndpointError::Bind { addr, error })?;
    tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    let upkeep_handle = handle.clone();
    // Histograms and summaries keep their samples until upkeep drains them.
    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep_handle.run_upkeep();
        }
    });
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let (handle, ready) = (handle.clone(), ready.clone());
            tokio::spawn(async move {
                if let Err(e) = answer(stream, &handle, &ready).await {
                    tracing::debug!(error = %e, "a metrics request failed");
                }
            });
        }
    });
    Ok(Endpoint { addr: bound, tasks: vec![upkeep, server] })
}

/// The longest request head read: the routes take no body and few headers.
const MAX_HEAD: usize = 8 * 1024;

async fn answer(mut stream: TcpStream, handle: &PrometheusHandle, ready: &ReadyCheck) -> std::io::Result<()> {
    let head =
        tokio::time::timeout(Duration::from_secs(5), read_head(&mut stream)).await.map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "request head not received in 5 s")
        })??;
    let request_line = head.lines().next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = target.split('?').next().unwrap_or_default();
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", handle.render())
        }
        ("GET" | "HEAD", "/healthz") => ("200 OK", "text/plain; charset=utf-8", "ok\n".to_owned()),
        ("GET" | "HEAD", "/readyz") => match tokio::time::timeout(Duration::from_secs(5), ready()).await {
            Ok(Ok(())) => ("200 OK", "text/plain; charset=utf-8", "ready\n".to_owned()),
            Ok(Err(reason)) => {
                ("503 Service Unavailable", "text/plain; charset=utf-8", format!("not ready: {reason}\n"))
            }
            Err(_) => (
                "503 Service Unavailable",
                "text/plain; charset=utf-8",
                "not ready: the checks took more than 5 s\n".to_owned(),
            ),
        },
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: try /metrics, /healthz or /readyz\n".to_owned(),
        ),
        _ => ("405 Method Not Allowed", "text/plain; charset=utf-8", "only GET\n".to_owned()),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response).await?;
    stream.shutdown().await
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "request head too large"));
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{CATALOGUE, MetricKind};
    use crate::events;

    async fn get(addr: SocketAddr, path: &str) -> (String, String) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.lines().next().unwrap().to_owned(), body.to_owned())
    }

    /// Every event fired once under a local recorder: the exporter's output holds exactly the
    /// catalogue's names, each with its type, help text and labels; histograms have buckets.
    #[test]
    fn the_exporter_output_matches_the_catalogue() {
        let recorder = build_recorder().unwrap();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            events::process_started("run");
            events::queue_opened("db");
            events::rows_registered();
            events::chunk_stored("local");
            events::message_received("db", 2);
            events::stage_finished(events::Stage::Fetch, Duration::from_millis(3));
            events::chunk_detected(Duration::from_millis(700));
            events::shard_position(
                "s",
                0,
                events::ShardPosition {
                    folded_through: Some(3),
                    lag: 1,
                    oldest_unfolded: Duration::from_secs(2),
                },
            );
            events::queue_depth("db", 1, 2, 3);
        });
        let text = handle.render();
        let mut exported: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| {
                let (name, kind) = l.split_once(' ').unwrap();
                (name.to_owned(), kind.to_owned())
            })
            .collect();
        exported.sort();
        let mut expected: Vec<(String, String)> =
            CATALOGUE.iter().map(|m| (m.name.to_owned(), m.kind.as_str().to_owned())).collect();
        expected.sort();
        assert_eq!(exported, expected, "{text}");
        for metric in CATALOGUE {
            assert!(text.contains(&format!("# HELP {} {}", metric.name, metric.help)), "{}", metric.name);
            let sample = text
                .lines()
                .find(|l| l.starts_with(metric.name) && !l.starts_with('#'))
                .unwrap_or_else(|| panic!("no sample of {}", metric.name));
            for label in metric.labels {
                assert!(
                    sample.contains(&format!("{label}=\"")),
                    "{} lacks label {label}: {sample}",
                    metric.name
                );
            }
            if metric.kind == MetricKind::Histogram {
                assert!(
                    text.contains(&format!("{}_bucket{{", metric.name)),
                    "{} is not a histogram",
                    metric.name
                );
            }
        }
    }

    #[tokio::test]
    async fn routes_answer_and_readiness_reports_its_reason() {
        let handle = build_recorder().unwrap().handle();
        let ready_now = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ready_now.clone();
        let ready: ReadyCheck = Arc::new(move || {
            let ok = flag.load(std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move { if ok { Ok(()) } else { Err("database: connection refused".to_owned()) } })
        });
        let endpoint = serve("127.0.0.1:0".parse().unwrap(), handle, ready).await.unwrap();
        let addr = endpoint.addr();
        assert_eq!(get(addr, "/healthz").await.0, "HTTP/1.1 200 OK");
        let (status, body) = get(addr, "/readyz").await;
        assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
        assert!(body.contains("database: connection refused"), "{body}");
        ready_now.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(get(addr, "/readyz").await.0, "HTTP/1.1 200 OK");
        assert_eq!(get(addr, "/metrics").await.0, "HTTP/1.1 200 OK");
        assert_eq!(get(addr, "/nope").await.0, "HTTP/1.1 404 Not Found");
        drop(endpoint);
    }
}
