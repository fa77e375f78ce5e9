//! A store in an S3 bucket (AWS or an S3-compatible server such as SeaweedFS or MinIO), through
//! the AWS SDK so that credentials, region and endpoint come from the standard places
//! (environment, profile, instance role) exactly as for any AWS tool.

use std::fmt;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;

use super::{ObjectStore, StoreError};
use crate::redact::error_chain;

/// The region used when nothing (settings, `AWS_REGION`, profile) names one: S3-compatible
/// servers accept any region, and AWS redirects from this one.
const DEFAULT_REGION: &str = "us-east-1";

/// How many times the SDK tries a request (the first try included) before giving up, with its
/// standard exponential backoff and jitter.
const MAX_ATTEMPTS: u32 = 5;

/// What the user may set beyond the SDK's standard configuration chain. Every field is an
/// override: when unset, the SDK's own sources (environment, profile) decide.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// An S3-compatible endpoint such as `http://127.0.0.1:8333` (else `AWS_ENDPOINT_URL_S3`,
    /// `AWS_ENDPOINT_URL`, or AWS itself).
    pub endpoint_url: Option<String>,
    /// The region (else `AWS_REGION`, the profile, then us-east-1).
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible servers need.
    pub force_path_style: bool,
    /// A static access key id, used only together with `secret_access_key` (else the standard
    /// credentials chain). Tests use it, since they cannot set environment variables safely.
    pub access_key_id: Option<String>,
    /// The static secret key paired with `access_key_id`.
    pub secret_access_key: Option<String>,
}

/// Written by hand so that the secret key never reaches a log.
impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("force_path_style", &self.force_path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Objects under `prefix/` in one bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    /// Where requests go, for error messages: the custom endpoint or "AWS S3 (region R)".
    endpoint: String,
}

impl S3Store {
    /// A store over `bucket`, keys under `prefix` (no leading or trailing `/` needed). Builds the
    /// client from the SDK's standard chain with `settings` as overrides; contacts nothing yet
    /// ([`ObjectStore::check`] does).
    pub async fn new(bucket: &str, prefix: &str, settings: &S3Settings) -> Self {
        let (client, endpoint) = build_client(settings).await;
        Self { client, bucket: bucket.to_owned(), prefix: prefix.trim_matches('/').to_owned(), endpoint }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object key a store key maps to.
    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() { key.to_owned() } else { format!("{}/{key}", self.prefix) }
    }

    /// `s3://bucket/full-key`, the name every error message gives.
    fn location(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full_key(key))
    }

    /// Opens an object for streaming: its body and length, or `None` when it does not exist.
    /// The source module reads `s3://` sources through this, without holding them in memory.
    pub(crate) async fn get_stream(
        &self,
        key: &str,
    ) -> Result<Option<(ByteStream, Option<u64>)>, StoreError> {
        let answer = self.client.get_object().bucket(&self.bucket).key(self.full_key(key)).send().await;
        match answer {
            Ok(output) => {
                let size = output.content_length().and_then(|len| u64::try_from(len).ok());
                Ok(Some((output.body, size)))
            }
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(err) => Err(self.classify(&err, &self.location(key))),
        }
    }

    /// Sorts an SDK error into transient or permanent, naming `location` and adding a hint.
    fn classify<E>(&self, err: &SdkError<E, HttpResponse>, location: &str) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        classify(err, location, &self.endpoint)
    }

    /// The error `check` gives for a HeadBucket failure: a missing bucket, refused access and an
    /// unreachable endpoint each say what to check.
    fn bucket_error<E>(&self, err: &SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let location = format!("s3://{}", self.bucket);
        let status = err.raw_response().map(|raw| raw.status().as_u16());
        let code = err.code();
        if status == Some(404) || code == Some("NoSuchBucket") || code == Some("NotFound") {
            return StoreError::Permanent {
                location,
                message: format!("bucket {} does not exist at {}", self.bucket, self.endpoint),
                hint: Some("create it, or check the bucket name and AWS_ENDPOINT_URL".to_owned()),
            };
        }
        if status == Some(403) {
            return StoreError::Permanent {
                location,
                message: format!("access denied to bucket {} at {}", self.bucket, self.endpoint),
                hint: Some(
                    "check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE) \
                     and the bucket policy"
                        .to_owned(),
                ),
            };
        }
        classify(err, &location, &self.endpoint)
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let request = self.client.put_object().bucket(&self.bucket).key(self.full_key(key));
        match request.body(ByteStream::from(bytes)).send().await {
            Ok(_) => Ok(()),
            Err(err) => Err(self.classify(&err, &self.location(key))),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((body, _)) = self.get_stream(key).await? else {
            return Ok(None);
        };
        match body.collect().await {
            Ok(data) => Ok(Some(data.into_bytes().to_vec())),
            Err(err) => Err(StoreError::Transient {
                location: self.location(key),
                message: format!("reading the object failed: {}", error_chain(&err)),
            }),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let answer = self.client.head_object().bucket(&self.bucket).key(self.full_key(key)).send().await;
        match answer {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
            Err(err) => Err(self.classify(&err, &self.location(key))),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let full_prefix =
            if self.prefix.is_empty() { prefix.to_owned() } else { format!("{}/{prefix}", self.prefix) };
        let strip = if self.prefix.is_empty() { 0 } else { self.prefix.len() + 1 };
        let mut pages =
            self.client.list_objects_v2().bucket(&self.bucket).prefix(&full_prefix).into_paginator().send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| self.classify(&err, &self.location(prefix)))?;
            let names = page.contents().iter().filter_map(|object| object.key());
            keys.extend(names.filter_map(|name| name.get(strip..)).map(str::to_owned));
        }
        keys.sort();
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let answer = self.client.delete_object().bucket(&self.bucket).key(self.full_key(key)).send().await;
        match answer {
            Ok(_) => Ok(()),
            Err(err) if err.raw_response().is_some_and(|raw| raw.status().as_u16() == 404) => Ok(()),
            Err(err) => Err(self.classify(&err, &self.location(key))),
        }
    }

    async fn check(&self) -> Result<(), StoreError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(err) => Err(self.bucket_error(&err)),
        }
    }

    fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Builds the client from the SDK's standard chain with the settings as overrides, and says
/// where its requests go. Checksums are only computed "when required" with a custom endpoint:
/// since SDK 1.69 the default adds CRC trailers to every upload, which S3-compatible servers do
/// not all accept; AWS itself keeps the SDK's default, and so does a user who sets
/// `AWS_REQUEST_CHECKSUM_CALCULATION` / `AWS_RESPONSE_CHECKSUM_VALIDATION`.
async fn build_client(settings: &S3Settings) -> (Client, String) {
    let region = RegionProviderChain::first_try(settings.region.clone().map(Region::new))
        .or_default_provider()
        .or_else(Region::new(DEFAULT_REGION));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
    if let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
        loader = loader.credentials_provider(Credentials::new(id, secret, None, None, "txp-settings"));
    }
    let sdk = loader.load().await;
    let mut config = aws_sdk_s3::config::Builder::from(&sdk);
    if let Some(url) = &settings.endpoint_url {
        config = config.endpoint_url(url);
    }
    if settings.force_path_style {
        config = config.force_path_style(true);
    }
    let custom =
        settings.endpoint_url.clone().or_else(env_endpoint).or_else(|| sdk.endpoint_url().map(str::to_owned));
    if custom.is_some() {
        if !env_is_set("AWS_REQUEST_CHECKSUM_CALCULATION") {
            config = config.request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        }
        if !env_is_set("AWS_RESPONSE_CHECKSUM_VALIDATION") {
            config = config.response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
    }
    let region_name = sdk.region().map_or(DEFAULT_REGION, Region::as_ref);
    let endpoint = custom.unwrap_or_else(|| format!("AWS S3 (region {region_name})"));
    tracing::debug!(%endpoint, path_style = settings.force_path_style, "S3 client configured");
    (Client::from_conf(config.build()), endpoint)
}

/// The S3 endpoint the environment names, as the SDK reads it (the service-specific variable
/// first), unless the SDK is told to ignore configured endpoints.
fn env_endpoint() -> Option<String> {
    let ignored = std::env::var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_ok_and(|value| value.trim().eq_ignore_ascii_case("true"));
    if ignored {
        return None;
    }
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.trim().is_empty())
}

/// Whether the user chose a setting through the environment, which then wins over ours (the
/// loaded SDK config cannot tell: it fills in the SDK's default when nothing is set).
fn env_is_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|value| !value.trim().is_empty())
}

/// Error codes that mean "slow down" or "try again": retrying later may succeed.
const TRANSIENT_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "TooManyRequestsException",
];

/// Sorts an SDK error: no answer (dispatch failure, timeout), 5xx and throttling are transient,
/// everything else is permanent. The message names `location`, and a hint says what to check
/// for the common permanent causes.
pub(crate) fn classify<E>(err: &SdkError<E, HttpResponse>, location: &str, endpoint: &str) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let location = location.to_owned();
    let status = err.raw_response().map(|raw| raw.status().as_u16());
    let message = describe(err, status);
    let transient = match err {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(failure) => !failure.is_user(),
        SdkError::ResponseError(_) | SdkError::ServiceError(_) => {
            status.is_some_and(|s| s >= 500 || s == 429)
                || err.code().is_some_and(|c| TRANSIENT_CODES.contains(&c))
        }
        _ => false,
    };
    if transient {
        let message = match err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
                format!("cannot reach the S3 endpoint {endpoint}: {message}")
            }
            _ => message,
        };
        return StoreError::Transient { location, message };
    }
    StoreError::Permanent { location, message, hint: hint_for(err.code(), status) }
}

/// A short description of an SDK error: the service's code and message with the HTTP status
/// when there was an answer, the whole error chain otherwise.
fn describe<E>(err: &SdkError<E, HttpResponse>, status: Option<u16>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match (err.code(), status) {
        (Some(code), Some(status)) => {
            format!("{code}: {} (HTTP {status})", err.message().unwrap_or("no message"))
        }
        (None, Some(status)) if matches!(err, SdkError::ServiceError(_)) => format!("HTTP {status}"),
        _ => error_chain(err),
    }
}

/// What to check for the common permanent failures.
fn hint_for(code: Option<&str>, status: Option<u16>) -> Option<String> {
    let hint = match (code, status) {
        (Some("NoSuchBucket"), _) => "create the bucket, or check the bucket name and AWS_ENDPOINT_URL",
        (Some("InvalidAccessKeyId" | "SignatureDoesNotMatch"), _) => {
            "check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE)"
        }
        (_, Some(403)) => "check the credentials (AWS_PROFILE or AWS_ACCESS_KEY_ID) and the bucket policy",
        (Some("PermanentRedirect" | "AuthorizationHeaderMalformed"), _) | (_, Some(301)) => {
            "the bucket is in another region: set AWS_REGION"
        }
        _ => return None,
    };
    Some(hint.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret() {
        let settings = S3Settings {
            access_key_id: Some("AKIDEXAMPLE".to_owned()),
            secret_access_key: Some("very-secret".to_owned()),
            ..S3Settings::default()
        };
        let shown = format!("{settings:?}");
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(!shown.contains("very-secret"), "{shown}");
    }

    async fn store_at(endpoint: &str, prefix: &str) -> S3Store {
        let settings = S3Settings {
            endpoint_url: Some(endpoint.to_owned()),
            region: None,
            force_path_style: true,
            access_key_id: Some("k".to_owned()),
            secret_access_key: Some("s".to_owned()),
        };
        S3Store::new("bucket", prefix, &settings).await
    }

    #[tokio::test]
    async fn url_and_keys_carry_the_prefix() {
        let store = store_at("http://127.0.0.1:9", "/a/b/").await;
        assert_eq!(store.url(), "s3://bucket/a/b");
        assert_eq!(store.full_key("c/d"), "a/b/c/d");
        assert_eq!(store.location("c"), "s3://bucket/a/b/c");
        let bare = store_at("http://127.0.0.1:9", "").await;
        assert_eq!(bare.url(), "s3://bucket");
        assert_eq!(bare.full_key("c"), "c");
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_transient_and_named() {
        // Port 9 (discard) is closed here: the connection is refused at once.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let endpoint = format!("http://127.0.0.1:{port}");
        let store = store_at(&endpoint, "p").await;
        // Both at once: the SDK retries each with backoff before giving up.
        let (checked, put) = tokio::join!(store.check(), store.put("k", b"x".to_vec()));
        let err = checked.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains(&endpoint), "{err}");
        let err = put.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains("s3://bucket/p/k"), "{err}");
    }

    #[tokio::test]
    async fn checksums_only_when_required_with_a_custom_endpoint() {
        let chosen_by_env = ["AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION"]
            .iter()
            .any(|name| std::env::var_os(name).is_some());
        if chosen_by_env {
            return;
        }
        let custom = store_at("http://127.0.0.1:9", "").await;
        let config = custom.client.config();
        assert_eq!(config.request_checksum_calculation(), Some(&RequestChecksumCalculation::WhenRequired));
        assert_eq!(config.response_checksum_validation(), Some(&ResponseChecksumValidation::WhenRequired));
        if env_endpoint().is_none() {
            let aws = S3Store::new("bucket", "", &S3Settings::default()).await;
            let config = aws.client.config();
            assert_ne!(
                config.request_checksum_calculation(),
                Some(&RequestChecksumCalculation::WhenRequired)
            );
            assert!(aws.endpoint.starts_with("AWS S3 (region "), "{}", aws.endpoint);
        }
    }
}
