//! Retrying transient failures with exponential backoff. The AWS SDK retries its own calls; this
//! is for everything else (lapin does not reconnect by itself, databases restart) and for the
//! operations we compose from several calls.

use std::future::Future;
use std::time::Duration;

/// How long to keep trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub attempts: u32,
    /// Also stop once this long has passed since the first attempt (an attempt can itself take
    /// long: a pool that retries its own connections until its acquire timeout).
    pub within: Option<Duration>,
}

impl Backoff {
    /// How a long-running command (`upload`, `consume`, `detect`, `run`) waits at start for a
    /// database, broker or store that is not reachable yet (a pod started before its server, a
    /// server restarting): pauses from 200 ms doubling to 5 s, for `within` in all (the
    /// `startup.wait` setting, a minute by default). Zero: one attempt, no wait.
    pub fn startup(within: Duration) -> Backoff {
        Backoff {
            first: Duration::from_millis(200),
            max: Duration::from_secs(5),
            attempts: u32::MAX,
            within: Some(within),
        }
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self { first: Duration::from_millis(100), max: Duration::from_secs(5), attempts: 8, within: None }
    }
}

/// Runs `op` until it succeeds, fails with an error `transient` says is final, or the attempts
/// or the time run out (then the last error is returned).
pub async fn retry<T, E, F, Fut>(backoff: Backoff, transient: impl Fn(&E) -> bool, mut op: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let started = std::time::Instant::now();
    // The pause before the next attempt: the backoff's, cut short so that the last attempt
    // starts when the time budget ends (a budget of a minute waits a minute); none once spent.
    let pause = |delay: Duration| match backoff.within {
        None => Some(delay),
        Some(within) => {
            within.checked_sub(started.elapsed()).filter(|left| !left.is_zero()).map(|left| left.min(delay))
        }
    };
    let mut delay = backoff.first;
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(e) => {
                let retrying = transient(&e) && attempt < backoff.attempts;
                let Some(pause) = pause(delay).filter(|_| retrying) else { return Err(e) };
                tracing::warn!(attempt, delay_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX), error = %e, "transient failure, retrying");
                tokio::time::sleep(pause).await;
                delay = (delay * 2).min(backoff.max);
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_time_budget_stops_retrying_when_the_attempts_never_run_out() {
        let calls = AtomicU32::new(0);
        let budget = Backoff {
            first: Duration::from_millis(10),
            max: Duration::from_millis(10),
            attempts: u32::MAX,
            within: Some(Duration::from_millis(100)),
        };
        let retrying = retry(
            budget,
            |_| true,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), String>("down".to_owned())
            },
        );
        // Without the budget this would retry for ever.
        let started = std::time::Instant::now();
        let out = tokio::time::timeout(Duration::from_secs(10), retrying).await;
        assert!(started.elapsed() >= Duration::from_millis(100), "gave up before the budget ended");
        assert_eq!(out, Ok(Err("down".to_owned())));
        // Every retry sleeps 10 ms (the last one less, to end on the budget), so at most 11
        // attempts fit in 100 ms, and the budget is waited out in full.
        let calls = calls.load(Ordering::SeqCst);
        assert!((2..=11).contains(&calls), "{calls} calls");
    }

    #[tokio::test]
    async fn retries_transient_failures_only() {
        let calls = AtomicU32::new(0);
        let fast = Backoff {
            first: Duration::from_millis(1),
            max: Duration::from_millis(2),
            attempts: 5,
            within: None,
        };
        let ok: Result<u32, String> = retry(
            fast,
            |_| true,
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 2 { Err("down".to_owned()) } else { Ok(n) }
            },
        )
        .await;
        assert_eq!(ok, Ok(2));
        calls.store(0, Ordering::SeqCst);
        let permanent: Result<u32, String> = retry(
            fast,
            |e: &String| e != "final",
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("final".to_owned())
            },
        )
        .await;
        assert_eq!(permanent, Err("final".to_owned()));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        calls.store(0, Ordering::SeqCst);
        let exhausted: Result<u32, String> = retry(
            fast,
            |_| true,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("down".to_owned())
            },
        )
        .await;
        assert!(exhausted.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }
}
