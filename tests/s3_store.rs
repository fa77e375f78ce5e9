//! The S3 object store and the `s3://` source against a real SeaweedFS on 127.0.0.1 (started
//! and stopped by each test; `make tools` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support {
    pub mod seaweedfs;
}

use std::sync::Arc;

use support::seaweedfs::SeaweedFs;
use tokio::io::AsyncReadExt;
use txp_connectors::source::open_source;
use txp_connectors::store::{ObjectStore, S3Settings, open_store};

/// Settings for a SeaweedFS endpoint: path-style, static keys (it accepts any without a config).
fn settings(server: &SeaweedFs) -> S3Settings {
    S3Settings {
        endpoint_url: Some(server.endpoint.clone()),
        region: Some("us-east-1".to_owned()),
        force_path_style: true,
        access_key_id: Some("test-key".to_owned()),
        secret_access_key: Some("test-secret".to_owned()),
    }
}

/// Bytes that differ from one position to the next, so that a misplaced part shows.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| u8::try_from((i * 31 + i / 4096) % 251).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_put_get_list_delete() {
    let server = SeaweedFs::start();
    server.create_bucket("chunks");
    let store = open_store("s3://chunks/run-1/", &settings(&server)).await.unwrap();
    assert_eq!(store.url(), "s3://chunks/run-1");
    store.check().await.unwrap();

    assert_eq!(store.get("in/0001.csv").await.unwrap(), None);
    assert!(!store.exists("in/0001.csv").await.unwrap());
    let keys = ["in/0002.csv", "in/0001.csv", "in/deep/x/0003.csv", "out/a.json", "top.txt"];
    for key in keys {
        store.put(key, key.as_bytes().to_vec()).await.unwrap();
    }
    for key in keys {
        assert_eq!(store.get(key).await.unwrap().as_deref(), Some(key.as_bytes()), "{key}");
        assert!(store.exists(key).await.unwrap(), "{key}");
    }
    assert_eq!(
        store.list("").await.unwrap(),
        ["in/0001.csv", "in/0002.csv", "in/deep/x/0003.csv", "out/a.json", "top.txt"]
    );
    assert_eq!(store.list("in/").await.unwrap(), ["in/0001.csv", "in/0002.csv", "in/deep/x/0003.csv"]);
    assert!(store.list("nothing/").await.unwrap().is_empty());

    // Another prefix in the same bucket sees none of it.
    let other = open_store("s3://chunks/run-10", &settings(&server)).await.unwrap();
    assert!(other.list("").await.unwrap().is_empty());

    store.delete("in/0002.csv").await.unwrap();
    store.delete("in/0002.csv").await.unwrap();
    store.delete("never/there").await.unwrap();
    assert!(!store.exists("in/0002.csv").await.unwrap());
    assert_eq!(store.get("in/0002.csv").await.unwrap(), None);
    assert_eq!(store.list("in/").await.unwrap(), ["in/0001.csv", "in/deep/x/0003.csv"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_overwrite_large_put_and_pagination() {
    let server = SeaweedFs::start();
    server.create_bucket("big");
    let store: Arc<dyn ObjectStore> = open_store("s3://big/p", &settings(&server)).await.unwrap();

    // Writing the same key with the same bytes again changes nothing.
    let bytes = payload(100_000);
    store.put("same", bytes.clone()).await.unwrap();
    store.put("same", bytes.clone()).await.unwrap();
    assert_eq!(store.get("same").await.unwrap().unwrap(), bytes);
    assert_eq!(store.list("").await.unwrap(), ["same"]);

    // One object above 5 MiB: larger than SeaweedFS's chunk size, with the store's own
    // checksum settings (no AWS_* variable set by the test).
    let large = payload(6 * 1024 * 1024 + 123);
    store.put("large.bin", large.clone()).await.unwrap();
    assert_eq!(store.get("large.bin").await.unwrap().unwrap(), large);

    // More keys than one ListObjectsV2 page (1000) holds.
    let mut tasks = tokio::task::JoinSet::new();
    for batch in 0..10 {
        let store = store.clone();
        tasks.spawn(async move {
            for i in (batch..1_050).step_by(10) {
                store.put(&format!("many/{i:05}"), vec![1]).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let listed = store.list("many/").await.unwrap();
    let expected: Vec<String> = (0..1_050).map(|i| format!("many/{i:05}")).collect();
    assert_eq!(listed, expected);
    assert_eq!(store.list("").await.unwrap().len(), 1_052);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bucket_and_s3_source() {
    let server = SeaweedFs::start();
    let missing = open_store("s3://no-such-bucket/x", &settings(&server)).await.unwrap();
    let err = missing.check().await.unwrap_err();
    assert!(!err.is_transient(), "{err}");
    assert!(err.to_string().contains("bucket no-such-bucket does not exist"), "{err}");
    assert!(err.hint().unwrap().contains("AWS_ENDPOINT_URL"), "{err:?}");

    server.create_bucket("src");
    let store = open_store("s3://src/data", &settings(&server)).await.unwrap();
    let bytes = payload(3 * 1024 * 1024 + 7);
    store.put("transactions.csv", bytes.clone()).await.unwrap();
    let source = open_source("s3://src/data/transactions.csv", &settings(&server)).await.unwrap();
    assert_eq!(source.size, Some(bytes.len() as u64));
    assert_eq!(source.description, "s3://src/data/transactions.csv");
    let mut reader = source.reader;
    let mut read = Vec::new();
    reader.read_to_end(&mut read).await.unwrap();
    assert_eq!(read, bytes);

    let err = open_source("s3://src/data/absent.csv", &settings(&server)).await.unwrap_err();
    assert!(err.to_string().contains("s3://src/data/absent.csv"), "{err}");
    assert!(err.to_string().contains("not found"), "{err}");
}

/// The SDK's own checksum default ("when supported": CRC32 trailers on every upload) must work
/// too, for users who choose it through the environment. Setting variables in this process is
/// not allowed (unsafe), so this runs the test below in a child process with them set.
#[test]
fn large_put_with_sdk_default_checksums() {
    let server = SeaweedFs::start();
    server.create_bucket("defaults");
    // Output captured, so that the child's summary line does not mix with this run's.
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "sdk_default_checksums_child", "--nocapture"])
        .env("AWS_REQUEST_CHECKSUM_CALCULATION", "when_supported")
        .env("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_supported")
        .env("TXP_TEST_S3_ENDPOINT", &server.endpoint)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success() && stdout.contains("1 passed"),
        "the child test failed ({}):\n{stdout}\n{}",
        child.status,
        String::from_utf8_lossy(&child.stderr)
    );
}

/// Run by [`large_put_with_sdk_default_checksums`]; does nothing when run on its own.
#[tokio::test]
#[ignore = "run by large_put_with_sdk_default_checksums with its environment"]
async fn sdk_default_checksums_child() {
    let Ok(endpoint) = std::env::var("TXP_TEST_S3_ENDPOINT") else { return };
    let settings = S3Settings {
        endpoint_url: Some(endpoint),
        region: Some("us-east-1".to_owned()),
        force_path_style: true,
        access_key_id: Some("test-key".to_owned()),
        secret_access_key: Some("test-secret".to_owned()),
    };
    let store = open_store("s3://defaults/x", &settings).await.unwrap();
    let large = payload(5 * 1024 * 1024 + 1);
    store.put("large.bin", large.clone()).await.unwrap();
    assert_eq!(store.get("large.bin").await.unwrap().unwrap(), large);
    let source = open_source("s3://defaults/x/large.bin", &settings).await.unwrap();
    let mut reader = source.reader;
    let mut read = Vec::new();
    reader.read_to_end(&mut read).await.unwrap();
    assert_eq!(read, large);
}
