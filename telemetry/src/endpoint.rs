//! The HTTP endpoint of a long-running process, on one port (`--metrics-addr`, default 9464):
//! `/metrics` (Prometheus text format), `/healthz` (the process is alive) and `/readyz` (the
//! database, queue and store answer and the migrations are applied).
//!
//! The port is open to whatever reaches the pod or host, so the HTTP is left to maintained code:
//! hyper parses HTTP/1.1 (a malformed request gets its 400, an oversized head its 431) and axum
//! routes (GET and HEAD, 404 for unknown paths, 405 for other methods; query strings are
//! ignored). What a client can hold is bounded, so that neither a flood of probes nor a
//! deliberately slow client can exhaust the process or starve the scrapes:
//!
//! - at most [`Limits::max_connections`] connections are served at once. When all are taken
//!   the accept loop waits for one to end, so new connections wait in the kernel's backlog
//!   rather than being accepted and dropped;
//! - a request head must arrive within [`Limits::header_read_timeout`] (hyper's own timer, an
//!   absolute deadline from the connection's start), so a client trickling its headers
//!   (slowloris) is cut instead of keeping its connection;
//! - a request is answered within [`Limits::request_timeout`] (tower-http; 408 otherwise);
//! - at most [`Limits::accepts_per_second`] connections are accepted a second (after a burst):
//!   a client that reconnects as fast as it can waits in the backlog instead of taking the
//!   cores from the pipeline;
//! - each connection serves one request and closes (no keep-alive, as before), so an idle
//!   client holds nothing, and a connection as a whole has a deadline, so one that never reads
//!   its answer is dropped too.
//!
//! `/readyz` asks the database, the broker and the store, and kubelets, load balancers and
//! people probe it at whatever rate they like. Its answer is therefore cached: refreshed at most
//! once per [`Limits::ready_refresh`], concurrent requests sharing the one check in flight, each
//! check cut after 5 s. However many probes arrive, the dependencies see about one check a
//! second.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::future::BoxFuture;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tower_http::timeout::TimeoutLayer;

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

/// What one client, or many, may take from the endpoint. [`Limits::default`] is what a process
/// serves with; tests shorten the times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; further ones wait in the kernel's backlog until one ends.
    pub max_connections: usize,
    /// How long a client may take to send its request line and headers, counted from the
    /// connection's start.
    pub header_read_timeout: Duration,
    /// How long a request may take to be answered once its head is read.
    pub request_timeout: Duration,
    /// How long a readiness answer is reused before the checks run again.
    pub ready_refresh: Duration,
    /// Connections accepted per second, after a burst of [`ACCEPT_BURST`]; more wait in the
    /// kernel's backlog, costing no CPU. However fast a flood reconnects, the endpoint's share
    /// of the cores stays small, and the pipeline's work goes on.
    pub accepts_per_second: u32,
}

/// Connections accepted at once before [`Limits::accepts_per_second`] paces them.
pub const ACCEPT_BURST: u32 = 64;

impl Default for Limits {
    fn default() -> Self {
        Self {
            // A scraper or two and the kubelet's probes make a handful of concurrent requests,
            // each answered in milliseconds; 64 leaves ample room for more scrapers and people
            // while capping the sockets, buffers and tasks a flood or slow clients can take.
            max_connections: 64,
            // A real client sends its head in one packet; 5 s allows a slow network, not a
            // client that trickles its headers to hold a connection.
            header_read_timeout: Duration::from_secs(5),
            // Above the readiness checks' own 5 s bound, so /readyz reports "took more than
            // 5 s" rather than a bare 408.
            request_timeout: Duration::from_secs(10),
            // Probes every few seconds see a fresh answer; a flood costs one check a second.
            ready_refresh: Duration::from_secs(1),
            // Scrapes and probes make a few requests a second; answering a flood at full speed
            // took over half of a 2-core machine and slowed a catch-up 2.5× (docs/performance.md).
            // 500 a second costs a few percent of one core, and a request waits for at most
            // (connections ahead of it) / 500 s: under 0.2 s behind a 64-connection flood.
            accepts_per_second: 500,
        }
    }
}

/// Prometheus' text exposition format.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The longest request head (request line and headers) read: the routes take no body and few
/// headers. hyper answers a longer one with 431.
const MAX_HEAD: usize = 8 * 1024;

/// How long the readiness checks may take together before `/readyz` says they are too slow.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Added to the header and request timeouts to make a connection's whole deadline: time to
/// write the answer (`/metrics` can be large) to a client that reads slowly, but not forever to
/// one that never reads and would otherwise keep its connection.
const RESPONSE_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The pause after a failed accept: its causes (no file descriptors left, say) last a while, and
/// retrying at once would spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Histograms and summaries keep their samples until upkeep drains them.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

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

/// The running endpoint; it stops when dropped, and with it every connection it serves.
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

/// Binds `addr` and serves `/metrics`, `/healthz` and `/readyz` until the endpoint is dropped,
/// with the default [`Limits`].
pub async fn serve(
    addr: SocketAddr,
    handle: PrometheusHandle,
    ready: ReadyCheck,
) -> Result<Endpoint, EndpointError> {
    serve_with(addr, handle, ready, Limits::default()).await
}

/// [`serve`] with the given limits.
pub async fn serve_with(
    addr: SocketAddr,
    handle: PrometheusHandle,
    ready: ReadyCheck,
    limits: Limits,
) -> Result<Endpoint, EndpointError> {
    let listener = TcpListener::bind(addr).await.map_err(|error| EndpointError::Bind { addr, error })?;
    let bound = listener.local_addr().map_err(|error| EndpointError::Bind { addr, error })?;
    tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    let upkeep_handle = handle.clone();
    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tick.tick().await;
            upkeep_handle.run_upkeep();
        }
    });
    let app = router(handle, ready, &limits);
    let server = tokio::spawn(accept(listener, app, limits));
    Ok(Endpoint { addr: bound, tasks: vec![upkeep, server] })
}

/// What the handlers share.
#[derive(Clone)]
struct Shared {
    handle: PrometheusHandle,
    readiness: Arc<Readiness>,
}

fn router(handle: PrometheusHandle, ready: ReadyCheck, limits: &Limits) -> Router {
    let readiness =
        Arc::new(Readiness { check: ready, refresh: limits.ready_refresh, last: Mutex::new(None) });
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .method_not_allowed_fallback(only_get)
        .fallback(not_found)
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout))
        .with_state(Shared { handle, readiness })
}

/// Accepts connections while fewer than `limits.max_connections` are open, each served by its
/// own task; the tasks live in a `JoinSet`, so aborting this task ends them too.
async fn accept(listener: TcpListener, app: Router, limits: Limits) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(MAX_HEAD)
        // One request per connection: a kept-alive idle connection would hold its permit.
        .keep_alive(false);
    let deadline = limits
        .header_read_timeout
        .saturating_add(limits.request_timeout)
        .saturating_add(RESPONSE_WRITE_TIMEOUT);
    let mut connections = JoinSet::new();
    let mut pace = Pace::new(limits.accepts_per_second);
    loop {
        while connections.try_join_next().is_some() {}
        // The permit comes before the accept: when all are taken, new connections wait in the
        // kernel's backlog until one ends. (The semaphore is never closed.)
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        pace.wait().await;
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::debug!(%error, "cannot accept a metrics connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        connections.spawn(async move {
            // Held until the connection is closed.
            let _permit = permit;
            match tokio::time::timeout(deadline, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(%error, "a metrics connection failed"),
                Err(_) => tracing::debug!("a metrics connection outlived its deadline"),
            }
        });
    }
}

/// Paces accepts at a rate, after a burst (the generic cell rate algorithm: one instant to keep,
/// no timer while under the rate).
struct Pace {
    interval: Duration,
    burst: Duration,
    /// When the next accept is due, at the steady rate.
    due: Instant,
}

impl Pace {
    fn new(per_second: u32) -> Self {
        let interval = Duration::from_secs(1) / per_second.max(1);
        Self { interval, burst: interval * ACCEPT_BURST, due: Instant::now() }
    }

    /// Waits until one more accept is allowed, and counts it.
    async fn wait(&mut self) {
        let now = Instant::now();
        // Idle time earns at most a burst's worth of accepts.
        let earliest = now.checked_sub(self.burst).unwrap_or(now);
        if self.due < earliest {
            self.due = earliest;
        }
        if self.due > now {
            tokio::time::sleep_until(self.due).await;
        }
        self.due += self.interval;
    }
}

/// The last readiness answer and when it was found.
struct Readiness {
    check: ReadyCheck,
    refresh: Duration,
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Readiness {
    /// The cached answer, or a fresh one when it is older than `refresh`.
    async fn current(&self) -> Result<(), String> {
        // The lock is held across the check: requests arriving meanwhile queue here and then read
        // the fresh answer, so a burst of probes costs one check.
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = last.as_ref()
            && at.elapsed() < self.refresh
        {
            return answer.clone();
        }
        let answer = match tokio::time::timeout(READY_CHECK_TIMEOUT, (self.check)()).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("the checks took more than {} s", READY_CHECK_TIMEOUT.as_secs())),
        };
        // Stamped when the check ends, so checks start at least `refresh` apart even when slow.
        *last = Some((Instant::now(), answer.clone()));
        // One line per check actually run (not per probe): what shows that probes are cached.
        tracing::debug!(ready = answer.is_ok(), "readiness checked");
        answer
    }
}

async fn metrics(State(shared): State<Shared>) -> Response {
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], shared.handle.render()).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Shared>) -> Response {
    match shared.readiness.current().await {
        Ok(()) => "ready\n".into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")).into_response(),
    }
}

/// Unknown paths: 404 for what the routes would accept, 405 for any other method.
async fn not_found(method: Method) -> Response {
    if method == Method::GET || method == Method::HEAD {
        (StatusCode::NOT_FOUND, "not found: try /metrics, /healthz or /readyz\n").into_response()
    } else {
        only_get().await
    }
}

async fn only_get() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, HEAD")], "only GET\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{CATALOGUE, MetricKind};
    use crate::events;

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
}
