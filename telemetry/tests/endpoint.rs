//! The metrics endpoint over real TCP on 127.0.0.1: its routes and answers, what a flood of
//! readiness probes costs the dependencies, and that slow, garbled or too many clients neither
//! hang it nor starve the probes. The client is a raw socket (every answer closes its
//! connection), so the tests see exactly what goes over the wire.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;
use txp_telemetry::endpoint::{self, Endpoint, Limits, ReadyCheck};

/// How long any one exchange may take before the test fails instead of hanging.
const NO_HANG: Duration = Duration::from_secs(10);

/// One answer: its status line, its header lines (lower-cased) and its body.
#[derive(Debug)]
struct Answer {
    status: String,
    headers: Vec<String>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.headers.iter().find_map(|h| h.strip_prefix(&prefix))
    }
}

/// Writes `bytes` and reads until the server closes: the raw answer, or the error that ended it.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(bytes).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok(answer)
    };
    tokio::time::timeout(NO_HANG, exchange).await.expect("the server neither answered nor closed")
}

async fn request(addr: SocketAddr, method: &str, path: &str) -> Answer {
    let raw =
        exchange(addr, format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head in {text:?}"));
    let mut lines = head.lines();
    let status = lines.next().unwrap().to_owned();
    Answer { status, headers: lines.map(str::to_ascii_lowercase).collect(), body: body.to_owned() }
}

/// A readiness check that answers `Ok` while `ready` is set, after `delay`, counting its calls.
fn counted_check(ready: Arc<AtomicBool>, calls: Arc<AtomicUsize>, delay: Duration) -> ReadyCheck {
    Arc::new(move || {
        calls.fetch_add(1, Ordering::SeqCst);
        let ok = ready.load(Ordering::SeqCst);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            if ok { Ok(()) } else { Err("database: connection refused".to_owned()) }
        })
    })
}

async fn start(ready: ReadyCheck, limits: Limits) -> Endpoint {
    let handle = endpoint::build_recorder().unwrap().handle();
    endpoint::serve_with("127.0.0.1:0".parse().unwrap(), handle, ready, limits).await.unwrap()
}

/// Opens a connection that sends a request line and one header, then one more header byte
/// every `drip` and never ends its head. Returns how long until the server closed it and what,
/// if anything, the server sent.
async fn slowloris(addr: SocketAddr, drip: Duration) -> (Duration, Vec<u8>) {
    let opened = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    let closed = async {
        loop {
            tokio::select! {
                read = stream.read(&mut buf) => match read {
                    // A reset is as good as a close: the server let go.
                    Ok(0) | Err(_) => return,
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                },
                () = tokio::time::sleep(drip) => {
                    if stream.write_all(b"X").await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::time::timeout(NO_HANG, closed).await.expect("a slowloris connection was never closed");
    (opened.elapsed(), received)
}

/// The server let go of a slowloris connection: nothing sent, or a 408.
fn assert_cut(received: &[u8]) {
    let text = String::from_utf8_lossy(received);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "a slowloris connection got {text:?}");
}

#[tokio::test]
async fn routes_answer_and_readiness_reports_its_reason() {
    let ready_now = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    // No caching here: the answer must follow the flag at once (the cache has its own test).
    let limits = Limits { ready_refresh: Duration::ZERO, ..Limits::default() };
    let endpoint = start(counted_check(ready_now.clone(), calls, Duration::ZERO), limits).await;
    let addr = endpoint.addr();

    let healthz = request(addr, "GET", "/healthz").await;
    assert_eq!(healthz.status, "HTTP/1.1 200 OK");
    assert_eq!(healthz.body, "ok\n");
    assert_eq!(healthz.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(healthz.header("connection"), Some("close"), "{healthz:?}");

    let readyz = request(addr, "GET", "/readyz").await;
    assert_eq!(readyz.status, "HTTP/1.1 503 Service Unavailable");
    assert_eq!(readyz.body, "not ready: database: connection refused\n");
    ready_now.store(true, Ordering::SeqCst);
    let readyz = request(addr, "GET", "/readyz").await;
    assert_eq!(readyz.status, "HTTP/1.1 200 OK");
    assert_eq!(readyz.body, "ready\n");

    let metrics = request(addr, "GET", "/metrics").await;
    assert_eq!(metrics.status, "HTTP/1.1 200 OK");
    assert_eq!(metrics.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));

    let nope = request(addr, "GET", "/nope").await;
    assert_eq!(nope.status, "HTTP/1.1 404 Not Found");
    assert_eq!(nope.body, "not found: try /metrics, /healthz or /readyz\n");

    // Query strings are ignored.
    assert_eq!(request(addr, "GET", "/healthz?verbose=1").await.body, "ok\n");
    assert_eq!(request(addr, "GET", "/readyz?x").await.status, "HTTP/1.1 200 OK");

    // HEAD: the GET's status and headers, no body.
    for (path, length) in [("/healthz", "3"), ("/readyz", "6")] {
        let head = request(addr, "HEAD", path).await;
        assert_eq!(head.status, "HTTP/1.1 200 OK", "{path}");
        assert_eq!(head.header("content-length"), Some(length), "{path}: {head:?}");
        assert_eq!(head.body, "", "{path}");
    }
    let head = request(addr, "HEAD", "/metrics").await;
    assert_eq!(head.status, "HTTP/1.1 200 OK");
    assert_eq!(head.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    assert_eq!(head.body, "");
    let head = request(addr, "HEAD", "/nope").await;
    assert_eq!(head.status, "HTTP/1.1 404 Not Found");
    assert_eq!(head.body, "");

    // Any other method, on a known path or not: 405.
    for (method, path) in
        [("POST", "/healthz"), ("PUT", "/metrics"), ("DELETE", "/readyz"), ("POST", "/nope")]
    {
        let answer = request(addr, method, path).await;
        assert_eq!(answer.status, "HTTP/1.1 405 Method Not Allowed", "{method} {path}");
        assert_eq!(answer.body, "only GET\n", "{method} {path}");
        assert_eq!(answer.header("allow"), Some("get, head"), "{method} {path}");
    }
    drop(endpoint);
    // Dropped, the endpoint no longer listens (once the aborted task has been dropped).
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(TcpStream::connect(addr).await.is_err());
}

/// 2,000 probes of /readyz, 40 at a time, against a check that takes 20 ms: every one is
/// answered, the check runs about once a second however many wait, and /healthz keeps
/// answering promptly throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_readiness_probes_costs_about_one_check_a_second() {
    const PROBES: usize = 2_000;
    const CONCURRENT: usize = 40;
    let calls = Arc::new(AtomicUsize::new(0));
    // A refresh well under the flood's length, so that the flood spans several.
    let limits = Limits { ready_refresh: Duration::from_millis(100), ..Limits::default() };
    let check = counted_check(Arc::new(AtomicBool::new(true)), calls.clone(), Duration::from_millis(20));
    let endpoint = start(check, limits).await;
    let addr = endpoint.addr();

    let flooding = Arc::new(AtomicBool::new(true));
    let health = tokio::spawn({
        let flooding = flooding.clone();
        async move {
            let (mut answered, mut slowest) = (0usize, Duration::ZERO);
            while flooding.load(Ordering::SeqCst) {
                let sent = Instant::now();
                let answer = request(addr, "GET", "/healthz").await;
                assert_eq!(answer.status, "HTTP/1.1 200 OK");
                slowest = slowest.max(sent.elapsed());
                answered += 1;
            }
            (answered, slowest)
        }
    });

    let started = Instant::now();
    let mut probes = JoinSet::new();
    for _ in 0..CONCURRENT {
        probes.spawn(async move {
            let mut statuses = Vec::with_capacity(PROBES / CONCURRENT);
            for _ in 0..PROBES / CONCURRENT {
                statuses.push(request(addr, "GET", "/readyz").await.status);
            }
            statuses
        });
    }
    let statuses: Vec<String> = probes.join_all().await.into_iter().flatten().collect();
    let elapsed = started.elapsed();
    flooding.store(false, Ordering::SeqCst);
    let (healthz_answered, healthz_slowest) = health.await.unwrap();
    let checks = calls.load(Ordering::SeqCst);
    println!(
        "{PROBES} probes in {elapsed:?}: {checks} checks; /healthz answered {healthz_answered} times, slowest {healthz_slowest:?}"
    );

    assert_eq!(statuses.len(), PROBES);
    assert!(
        statuses.iter().all(|s| s == "HTTP/1.1 200 OK"),
        "{:?}",
        statuses.iter().find(|s| *s != "HTTP/1.1 200 OK")
    );
    // A check starts at most once per refresh interval: over the flood, at most one per
    // interval elapsed plus the first, with one more for rounding.
    assert!(
        checks >= 1 && checks as f64 <= elapsed.as_secs_f64() / limits.ready_refresh.as_secs_f64() + 2.0,
        "{checks} checks in {elapsed:?}"
    );
    assert!(healthz_answered >= 1, "no /healthz was answered during the flood");
    assert!(healthz_slowest < Duration::from_secs(2), "a /healthz took {healthz_slowest:?} during the flood");
}

/// Connections that trickle their headers (faster than any idle timeout, so only a deadline
/// on the whole head stops them) or send nothing are cut after the header-read timeout, and
/// meanwhile /healthz answers at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_after_the_header_timeout() {
    let header_read_timeout = Duration::from_millis(500);
    let limits = Limits { header_read_timeout, ..Limits::default() };
    let calls = Arc::new(AtomicUsize::new(0));
    let endpoint = start(counted_check(Arc::new(AtomicBool::new(true)), calls, Duration::ZERO), limits).await;
    let addr = endpoint.addr();

    let mut slow = JoinSet::new();
    for _ in 0..3 {
        slow.spawn(slowloris(addr, Duration::from_millis(100)));
    }
    // Connected, silent.
    slow.spawn(async move {
        let opened = Instant::now();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut received = Vec::new();
        let _ = tokio::time::timeout(NO_HANG, stream.read_to_end(&mut received))
            .await
            .expect("a silent connection was never closed");
        (opened.elapsed(), received)
    });

    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = Instant::now();
    assert_eq!(request(addr, "GET", "/healthz").await.body, "ok\n");
    assert!(
        sent.elapsed() < Duration::from_millis(400),
        "/healthz took {:?} beside slow clients",
        sent.elapsed()
    );

    for (open_for, received) in slow.join_all().await {
        assert_cut(&received);
        // Not before the timeout (the timer starts at the accept, after the connect), and not
        // much after it.
        assert!(open_for >= header_read_timeout, "cut after {open_for:?}");
        assert!(open_for < header_read_timeout + Duration::from_millis(1500), "cut after {open_for:?}");
    }
}

/// Bytes that are not HTTP get a 400 or a closed connection, at once; a head over the limit gets
/// a 431 or a closed connection, never an answer.
#[tokio::test]
async fn garbage_is_refused_at_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let endpoint =
        start(counted_check(Arc::new(AtomicBool::new(true)), calls, Duration::ZERO), Limits::default()).await;
    let addr = endpoint.addr();
    for garbage in [&b"\x16\x03\x01 garbage\r\n\r\n"[..], b"HELLO\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n"] {
        let sent = Instant::now();
        let answer = exchange(addr, garbage).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&answer);
        assert!(text.is_empty() || text.starts_with("HTTP/1.1 400 Bad Request"), "{garbage:?} got {text:?}");
        // Well under the 5 s header timeout: refused, not timed out.
        assert!(sent.elapsed() < Duration::from_secs(2), "{garbage:?} took {:?}", sent.elapsed());
    }
    let huge = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n", "a".repeat(16 * 1024));
    // The server may close before reading all of it, and the client then see a reset.
    let answer = exchange(addr, huge.as_bytes()).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 431"), "an oversized head got {text:?}");
}

/// With room for 4 connections held by slow clients, a 5th request waits (in the kernel's
/// backlog) until the first of them is cut, and is then answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_bound_wait_for_a_free_one() {
    let header_read_timeout = Duration::from_secs(1);
    let limits = Limits { max_connections: 4, header_read_timeout, ..Limits::default() };
    let calls = Arc::new(AtomicUsize::new(0));
    let endpoint = start(counted_check(Arc::new(AtomicBool::new(true)), calls, Duration::ZERO), limits).await;
    let addr = endpoint.addr();

    let opened = Instant::now();
    let mut slow = JoinSet::new();
    for _ in 0..4 {
        slow.spawn(slowloris(addr, Duration::from_millis(100)));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = request(addr, "GET", "/healthz").await;
    let answered = opened.elapsed();
    assert_eq!(answer.body, "ok\n");
    // Served only once a slow connection was cut (at the header timeout), and soon after.
    assert!(answered >= header_read_timeout, "the 5th connection was answered after {answered:?}");
    assert!(answered < header_read_timeout + Duration::from_millis(1500), "answered after {answered:?}");
    for (_, received) in slow.join_all().await {
        assert_cut(&received);
    }
    // With the slow clients gone, requests are answered at once again.
    let sent = Instant::now();
    assert_eq!(request(addr, "GET", "/healthz").await.body, "ok\n");
    assert!(sent.elapsed() < Duration::from_millis(400));
}

/// /readyz answers from its cache until the cache is older than the refresh interval; then the
/// next request runs the checks again.
#[tokio::test]
async fn readiness_is_cached_for_the_refresh_interval() {
    let refresh = Duration::from_millis(300);
    let limits = Limits { ready_refresh: refresh, ..Limits::default() };
    let (ready_now, calls) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let endpoint = start(counted_check(ready_now.clone(), calls.clone(), Duration::ZERO), limits).await;
    let addr = endpoint.addr();

    assert_eq!(request(addr, "GET", "/readyz").await.status, "HTTP/1.1 503 Service Unavailable");
    ready_now.store(true, Ordering::SeqCst);
    let cached = Instant::now();
    let answer = request(addr, "GET", "/readyz").await;
    // Only meaningful when the second request came within the interval (it takes milliseconds).
    if cached.elapsed() < refresh / 2 {
        assert_eq!(answer.status, "HTTP/1.1 503 Service Unavailable", "the cached answer was not used");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
    tokio::time::sleep(refresh + Duration::from_millis(100)).await;
    let answer = request(addr, "GET", "/readyz").await;
    assert_eq!(answer.status, "HTTP/1.1 200 OK");
    assert_eq!(answer.body, "ready\n");
    let checks = calls.load(Ordering::SeqCst);
    assert!(checks >= 2, "{checks} checks");
}

/// Accepts are paced: after a burst of `ACCEPT_BURST`, at most `accepts_per_second` connections a
/// second, so a client reconnecting as fast as it can waits (in the backlog) instead of taking
/// the cores; every request is still answered.
#[tokio::test]
async fn accepts_are_paced_after_a_burst() {
    let calls = Arc::new(AtomicUsize::new(0));
    let check = counted_check(Arc::new(AtomicBool::new(true)), calls, Duration::ZERO);
    let limits = Limits { accepts_per_second: 100, ..Limits::default() };
    let endpoint = start(check, limits).await;
    let n = endpoint::ACCEPT_BURST + 100;
    let started = Instant::now();
    for _ in 0..n {
        assert_eq!(request(endpoint.addr(), "GET", "/healthz").await.status, "HTTP/1.1 200 OK");
    }
    let took = started.elapsed();
    // 100 beyond the burst at 100 a second: about a second (less one interval), not at once.
    assert!(took >= Duration::from_millis(950), "{n} requests in {took:?}");
    assert!(took < Duration::from_secs(5), "{n} requests in {took:?}");
}
