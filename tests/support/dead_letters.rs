//! One contract for every queue backend's dead letters, run by each backend's test file: what
//! `txp replay` relies on. Use it with `mod support { pub mod dead_letters; }`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use txp_connectors::queue::{DeadLetter, Delivery, Queue};

/// Receives until `n` items came or 20 s passed.
async fn collect<T, F, Fut>(n: usize, mut receive: F) -> Vec<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        let batch = receive().await;
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        got.extend(batch);
    }
    got
}

/// Two messages dead-lettered with reasons come back from `receive_dead` with those reasons
/// and their attempts; a leased dead letter is invisible to a second receive; a released one
/// comes back unchanged; an acked one is gone. Also: `extend_lease` keeps a delivery of the
/// main queue leased past its visibility timeout (`visibility`), where the backend has leases.
pub async fn dead_letter_contract(queue: &dyn Queue, visibility: Option<Duration>) {
    queue.publish(br#"{"n":1}"#).await.unwrap();
    queue.publish(br#"{"n":2}"#).await.unwrap();
    let got: Vec<Delivery> =
        collect(2, || async { queue.receive(2, Duration::from_secs(1)).await.unwrap() }).await;
    assert_eq!(got.len(), 2);
    if let Some(visibility) = visibility {
        queue.extend_lease(&got[0], visibility * 10).await.unwrap();
        tokio::time::sleep(visibility + Duration::from_millis(500)).await;
        let back = queue.receive(10, Duration::ZERO).await.unwrap();
        assert_eq!(back.len(), 1, "only the delivery whose lease was not extended comes back");
        queue.dead_letter(&back[0], "object missing").await.unwrap();
    } else {
        queue.dead_letter(&got[1], "object missing").await.unwrap();
    }
    queue.dead_letter(&got[0], "schema mismatch").await.unwrap();

    let mut dead: Vec<DeadLetter> = collect(2, || async { queue.receive_dead(10).await.unwrap() }).await;
    dead.sort_by(|a, b| a.reason.cmp(&b.reason));
    let seen: Vec<(String, &str, u32)> = dead
        .iter()
        .map(|d| (String::from_utf8_lossy(&d.delivery.body).into_owned(), d.reason.as_str(), d.attempts))
        .collect();
    let second_attempts = if visibility.is_some() { 2 } else { 1 };
    assert_eq!(
        seen,
        [
            (r#"{"n":2}"#.to_owned(), "object missing", second_attempts),
            (r#"{"n":1}"#.to_owned(), "schema mismatch", 1)
        ]
    );
    assert!(queue.receive_dead(10).await.unwrap().is_empty(), "leased dead letters are not received twice");

    queue.release_dead(&dead[0]).await.unwrap();
    let again = collect(1, || async { queue.receive_dead(10).await.unwrap() }).await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].delivery.body.as_slice(), again[0].reason.as_str()),
        (&br#"{"n":2}"#[..], "object missing")
    );
    queue.ack_dead(&again[0]).await.unwrap();
    queue.ack_dead(&dead[1]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while queue.depth().await.unwrap().dead > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(queue.depth().await.unwrap().dead, 0);
    assert!(queue.receive_dead(10).await.unwrap().is_empty());
    assert!(
        queue.receive(10, Duration::ZERO).await.unwrap().is_empty(),
        "nothing went back to the main queue"
    );
}
