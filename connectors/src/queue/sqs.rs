//! Amazon SQS (or an SQS-compatible server such as moto) through aws-sdk-sqs. A standard queue
//! with a redrive policy to `NAME-dlq`: SQS itself moves a message received `delivery_limit`
//! times to the dead-letter queue at its next receive. A delivery's handle is its receipt
//! handle; releasing sets its visibility timeout to zero.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::config::{Credentials, Region};
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use tokio::sync::OnceCell;

use super::{DeadLetter, Delivery, Depth, Queue, QueueError, QueueSettings};

// SQS's classic message size limit, which every consumer applies too (see the constant).
use txp_core::message::MAX_MESSAGE_BYTES;

/// ReceiveMessage returns at most this many messages.
const MAX_BATCH: usize = 10;
/// The longest long poll SQS allows.
const MAX_WAIT_SECONDS: u64 = 20;
/// The shortest lease of a received dead letter.
const DEAD_LEASE: Duration = Duration::from_secs(30);
/// The longest visibility timeout SQS allows (12 hours).
const MAX_VISIBILITY_SECONDS: u64 = 43_200;
/// Attempts per request, the first included, under the SDK's standard retry mode.
const MAX_ATTEMPTS: u32 = 5;
/// The region used when neither the options, the queue URL nor the environment name one.
const DEFAULT_REGION: &str = "us-east-1";

/// How to reach SQS when the environment should not decide (tests, explicit configuration).
/// Each `None` falls back to the SDK's defaults: `AWS_ENDPOINT_URL_SQS` / `AWS_ENDPOINT_URL`,
/// `AWS_REGION`, and the credentials chain.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SqsOptions {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl fmt::Debug for SqsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret key never goes into logs.
        f.debug_struct("SqsOptions")
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What a queue URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// The main queue's name.
    name: String,
    /// The queue URL, when given as one.
    queue_url: Option<String>,
    /// `scheme://host[:port]` of a queue URL that is not on amazonaws.com: where an
    /// SQS-compatible server answers.
    origin: Option<String>,
    /// The region of an `sqs.REGION.amazonaws.com` queue URL.
    region: Option<String>,
}

impl Target {
    /// Parses `sqs://NAME` or `http(s)://HOST/ACCOUNT/NAME`.
    fn parse(url: &str) -> Result<Self, QueueError> {
        if let Some(name) = url.strip_prefix("sqs://") {
            check_name(name, url)?;
            return Ok(Self { name: name.to_owned(), queue_url: None, origin: None, region: None });
        }
        let parsed = url::Url::parse(url).map_err(|e| invalid_url(url, &e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid_url(url, "the scheme must be sqs, https or http"));
        }
        let host = parsed.host_str().ok_or_else(|| invalid_url(url, "no host"))?.to_owned();
        let segments: Vec<&str> = parsed.path().trim_matches('/').split('/').collect();
        let [_account, name] = segments.as_slice() else {
            return Err(invalid_url(url, "a queue URL's path is /ACCOUNT/NAME"));
        };
        check_name(name, url)?;
        let region = aws_region(&host);
        let origin = region.is_none().then(|| parsed.origin().ascii_serialization());
        Ok(Self { name: (*name).to_owned(), queue_url: Some(url.to_owned()), origin, region })
    }
}

/// SQS queue names: 1 to 80 letters, digits, `-` and `_`; the DLQ's name adds 4.
fn check_name(name: &str, url: &str) -> Result<(), QueueError> {
    let valid = !name.is_empty()
        && name.len() <= 76
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid { Ok(()) } else { Err(invalid_url(url, "a queue name is 1 to 76 letters, digits, - or _")) }
}

fn invalid_url(url: &str, why: &str) -> QueueError {
    QueueError::Permanent {
        location: url.to_owned(),
        message: format!("not an SQS queue URL: {why}"),
        hint: Some(
            "use sqs://NAME or a queue URL such as https://sqs.REGION.amazonaws.com/ACCOUNT/NAME".to_owned(),
        ),
    }
}

/// REGION of `sqs.REGION.amazonaws.com` (or the legacy `REGION.queue.amazonaws.com`).
fn aws_region(host: &str) -> Option<String> {
    let rest = host.strip_suffix(".amazonaws.com").or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let region = rest.strip_prefix("sqs.").or_else(|| rest.strip_suffix(".queue"))?;
    (!region.is_empty() && !region.contains('.')).then(|| region.to_owned())
}

/// What a failed request means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Transient,
    Permanent(&'static str),
}

/// Sorts SQS error codes (both the JSON protocol's and the query-compatible ones) and, for
/// unknown codes, HTTP statuses: throttling and server errors pass, the rest needs a person.
fn classify(code: Option<&str>, status: Option<u16>) -> Class {
    match code.unwrap_or_default() {
        "AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist" => Class::Permanent(
            "the queue does not exist: run the setup, which creates it, or check the name and region",
        ),
        "AccessDenied"
        | "AccessDeniedException"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "UnrecognizedClientException"
        | "InvalidSecurity"
        | "MissingAuthenticationToken"
        | "ExpiredToken"
        | "IncompleteSignature"
        | "KmsAccessDenied" => Class::Permanent(
            "check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile or role) and that they allow \
             this SQS action on the queue",
        ),
        "InvalidParameterValue"
        | "InvalidAttributeName"
        | "InvalidAttributeValue"
        | "MissingParameter"
        | "InvalidMessageContents"
        | "InvalidAddress"
        | "UnsupportedOperation"
        | "InvalidAction"
        | "ValidationError"
        | "ValidationException"
        | "InvalidIdFormat" => Class::Permanent(
            "SQS refused the request's parameters: check queue.delivery_limit and visibility_timeout",
        ),
        "ReceiptHandleIsInvalid" | "MessageNotInflight" => Class::Permanent(
            "the delivery's lease has ended (visibility timeout passed); SQS delivers it again",
        ),
        "QueueAlreadyExists" | "QueueNameExists" => Class::Permanent(
            "the queue exists with other attributes: delete it or set queue.name to another name",
        ),
        "RequestThrottled"
        | "ThrottlingException"
        | "Throttling"
        | "KmsThrottled"
        | "OverLimit"
        | "ServiceUnavailable"
        | "InternalFailure"
        | "InternalError"
        | "QueueDeletedRecently"
        | "RequestTimeout" => Class::Transient,
        _ => match status {
            Some(status) if (400..500).contains(&status) && status != 408 && status != 429 => {
                Class::Permanent("SQS refused the request; check the queue URL, region and credentials")
            }
            _ => Class::Transient,
        },
    }
}

/// Whole seconds, rounded up (a visibility timeout or lease shorter than asked would let
/// another consumer in early), at most `max`.
fn seconds_up(d: Duration, max: u64) -> i32 {
    let whole = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(whole.min(max)).unwrap_or(i32::MAX)
}

/// The long-poll wait in whole seconds, rounded to the nearest, at most 20.
fn wait_seconds(wait: Duration) -> i32 {
    let rounded = (wait.as_millis() + 500) / 1000;
    i32::try_from(rounded.min(u128::from(MAX_WAIT_SECONDS))).unwrap_or(0)
}

/// The redrive policy's `maxReceiveCount`: SQS accepts 1 to 1000.
fn max_receive_count(delivery_limit: u32) -> u32 {
    delivery_limit.clamp(1, 1000)
}

fn redrive_policy(dlq_arn: &str, delivery_limit: u32) -> String {
    serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count(delivery_limit) })
        .to_string()
}

/// (target ARN, count) of a redrive policy; SQS writes the count as a number, some servers as
/// a string.
fn parse_redrive(policy: &str) -> Option<(String, u64)> {
    let value: serde_json::Value = serde_json::from_str(policy).ok()?;
    let arn = value.get("deadLetterTargetArn")?.as_str()?.to_owned();
    let count = value.get("maxReceiveCount")?;
    let count = count.as_u64().or_else(|| count.as_str().and_then(|s| s.parse().ok()))?;
    Some((arn, count))
}

/// An SQS queue and its dead-letter queue.
pub struct SqsQueue {
    client: Client,
    /// `name` is the URL's queue name.
    settings: QueueSettings,
    /// Where requests go, for messages.
    endpoint: String,
    main_url: OnceCell<String>,
    dlq_url: OnceCell<String>,
}

impl fmt::Debug for SqsQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqsQueue")
            .field("settings", &self.settings)
            .field("endpoint", &self.endpoint)
            .field("main_url", &self.main_url.get())
            .finish_non_exhaustive()
    }
}

impl SqsQueue {
    /// Opens `sqs://NAME` or a queue URL with the SDK's defaults (environment, profile,
    /// credentials chain; region us-east-1 when nothing names one). The queue's name comes
    /// from the URL, not from `settings.name`. No request is made until the first operation.
    pub async fn connect(url: &str, settings: QueueSettings) -> Result<Self, QueueError> {
        Self::connect_with(url, settings, SqsOptions::default()).await
    }

    /// Like [`connect`](Self::connect), with explicit endpoint, region or credentials taking
    /// precedence over the environment's.
    pub async fn connect_with(
        url: &str,
        settings: QueueSettings,
        options: SqsOptions,
    ) -> Result<Self, QueueError> {
        let target = Target::parse(url)?;
        let (client, endpoint) = client(&target, &options).await;
        let settings = QueueSettings { name: target.name.clone(), ..settings };
        Ok(Self {
            client,
            settings,
            endpoint,
            main_url: OnceCell::new_with(target.queue_url),
            dlq_url: OnceCell::new(),
        })
    }

    /// ChangeMessageVisibility of a delivery of the main queue, or of the DLQ when `dead`.
    async fn change_visibility(
        &self,
        delivery: &Delivery,
        seconds: i32,
        dead: bool,
        doing: &str,
    ) -> Result<(), QueueError> {
        let (url, name) = self.queue_of(dead).await?;
        self.client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(&delivery.handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|e| self.error(&name, doing, &e))?;
        Ok(())
    }

    /// ReceiveMessage on the main queue, or on the DLQ when `dead` (with the message
    /// attributes the dead-lettering recorded).
    async fn receive_from(
        &self,
        dead: bool,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<aws_sdk_sqs::types::Message>, QueueError> {
        let (url, name) = self.queue_of(dead).await?;
        let max = i32::try_from(max.clamp(1, MAX_BATCH)).unwrap_or(1);
        // A replay holds the dead letters it does not move until its run ends: at least
        // DEAD_LEASE, so that they do not come back while it still receives.
        let lease = if dead {
            self.settings.visibility_timeout.max(DEAD_LEASE)
        } else {
            self.settings.visibility_timeout
        };
        let mut request = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait_seconds(wait))
            .visibility_timeout(seconds_up(lease, MAX_VISIBILITY_SECONDS))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount);
        if dead {
            request = request.message_attribute_names("All");
        }
        let out = request.send().await.map_err(|e| self.error(&name, "receiving", &e))?;
        Ok(out.messages().to_vec())
    }

    /// The URL and name of the main queue, or of the DLQ when `dead`.
    async fn queue_of(&self, dead: bool) -> Result<(&str, String), QueueError> {
        if dead {
            Ok((self.dlq_url().await?, self.settings.dlq_name()))
        } else {
            Ok((self.main_url().await?, self.settings.name.clone()))
        }
    }

    async fn main_url(&self) -> Result<&str, QueueError> {
        self.main_url.get_or_try_init(|| self.lookup(&self.settings.name)).await.map(String::as_str)
    }

    async fn dlq_url(&self) -> Result<&str, QueueError> {
        let dlq = self.settings.dlq_name();
        self.dlq_url.get_or_try_init(|| async move { self.lookup(&dlq).await }).await.map(String::as_str)
    }

    /// GetQueueUrl.
    async fn lookup(&self, name: &str) -> Result<String, QueueError> {
        let out = self
            .client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| self.error(name, "looking up the queue URL", &e))?;
        out.queue_url().map(str::to_owned).ok_or_else(|| self.missing(name, "GetQueueUrl", "QueueUrl"))
    }

    /// The existing queue's URL (GetQueueUrl; the caller then checks its attributes), else
    /// CreateQueue. Looking up first means that a process whose queues were made by `txp queue
    /// setup` needs no `sqs:CreateQueue` grant (docs/deploy.md, "IAM").
    async fn create(
        &self,
        name: &str,
        attributes: HashMap<QueueAttributeName, String>,
    ) -> Result<String, QueueError> {
        match self.client.get_queue_url().queue_name(name).send().await {
            Ok(out) => {
                if let Some(url) = out.queue_url() {
                    return Ok(url.to_owned());
                }
            }
            Err(e)
                if matches!(
                    e.code(),
                    Some("QueueDoesNotExist" | "AWS.SimpleQueueService.NonExistentQueue")
                ) => {}
            Err(e) => return Err(self.error(name, "looking up the queue URL", &e)),
        }
        let created =
            self.client.create_queue().queue_name(name).set_attributes(Some(attributes)).send().await;
        match created {
            Ok(out) => out
                .queue_url()
                .map(str::to_owned)
                .ok_or_else(|| self.missing(name, "CreateQueue", "QueueUrl")),
            Err(e) if matches!(e.code(), Some("QueueAlreadyExists" | "QueueNameExists")) => {
                self.lookup(name).await
            }
            Err(e) => Err(self.error(name, "creating the queue", &e)),
        }
    }

    /// GetQueueAttributes.
    async fn attributes(
        &self,
        url: &str,
        name: &str,
        wanted: &[QueueAttributeName],
    ) -> Result<HashMap<QueueAttributeName, String>, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .set_attribute_names(Some(wanted.to_vec()))
            .send()
            .await
            .map_err(|e| self.error(name, "reading the queue's attributes", &e))?;
        Ok(out.attributes().cloned().unwrap_or_default())
    }

    /// Sets the main queue's redrive policy and visibility timeout unless they already match.
    async fn ensure_attributes(
        &self,
        url: &str,
        wanted: HashMap<QueueAttributeName, String>,
    ) -> Result<(), QueueError> {
        let name = &self.settings.name;
        let names = [QueueAttributeName::RedrivePolicy, QueueAttributeName::VisibilityTimeout];
        let current = self.attributes(url, name, &names).await?;
        let same = |key: &QueueAttributeName| match key {
            QueueAttributeName::RedrivePolicy => {
                current.get(key).and_then(|p| parse_redrive(p))
                    == wanted.get(key).and_then(|p| parse_redrive(p))
            }
            _ => current.get(key) == wanted.get(key),
        };
        if names.iter().all(same) {
            return Ok(());
        }
        tracing::info!(queue = %name, "updating the SQS queue's redrive policy and visibility timeout");
        self.client
            .set_queue_attributes()
            .queue_url(url)
            .set_attributes(Some(wanted))
            .send()
            .await
            .map_err(|e| self.error(name, "setting the queue's attributes", &e))?;
        Ok(())
    }

    fn main_attributes(&self, dlq_arn: &str) -> HashMap<QueueAttributeName, String> {
        let visibility = seconds_up(self.settings.visibility_timeout, MAX_VISIBILITY_SECONDS);
        HashMap::from([
            (QueueAttributeName::RedrivePolicy, redrive_policy(dlq_arn, self.settings.delivery_limit)),
            (QueueAttributeName::VisibilityTimeout, visibility.to_string()),
        ])
    }

    /// SendMessage, after checking what SQS would refuse anyway.
    async fn send(
        &self,
        url: &str,
        queue: &str,
        body: &[u8],
        attributes: Option<HashMap<String, MessageAttributeValue>>,
    ) -> Result<(), QueueError> {
        let body = self.checked_body(queue, body)?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .set_message_attributes(attributes)
            .send()
            .await
            .map_err(|e| self.error(queue, "sending a message", &e))?;
        Ok(())
    }

    fn checked_body<'a>(&self, queue: &str, body: &'a [u8]) -> Result<&'a str, QueueError> {
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(QueueError::Permanent {
                location: format!("SQS queue {queue}"),
                message: format!(
                    "the message is {} bytes; SQS takes at most 256 KiB ({MAX_MESSAGE_BYTES} bytes)",
                    body.len()
                ),
                hint: Some(
                    "a chunk message is under 1 KiB: this body was not written by txp upload".to_owned(),
                ),
            });
        }
        std::str::from_utf8(body).map_err(|_| QueueError::Permanent {
            location: format!("SQS queue {queue}"),
            message: "SQS message bodies must be UTF-8 text".to_owned(),
            hint: None,
        })
    }

    /// DeleteMessage, from the main queue or from the DLQ when `dead`.
    async fn delete(&self, delivery: &Delivery, dead: bool, doing: &str) -> Result<(), QueueError> {
        let (url, name) = self.queue_of(dead).await?;
        self.client
            .delete_message()
            .queue_url(url)
            .receipt_handle(&delivery.handle)
            .send()
            .await
            .map_err(|e| self.error(&name, doing, &e))?;
        Ok(())
    }

    fn count(&self, attributes: &HashMap<QueueAttributeName, String>, key: &QueueAttributeName) -> u64 {
        attributes.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    fn missing(&self, queue: &str, operation: &str, field: &str) -> QueueError {
        QueueError::Transient {
            location: format!("SQS queue {queue}"),
            message: format!("{operation} answered without {field} ({})", self.endpoint),
        }
    }

    /// Maps an SDK error: unreachable endpoints, timeouts and throttling are transient;
    /// missing queues, refused credentials and invalid parameters are not.
    fn error<E>(&self, queue: &str, doing: &str, err: &SdkError<E, HttpResponse>) -> QueueError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let location = format!("SQS queue {queue}");
        let message = format!("{doing}: {}", causes(err));
        match err {
            SdkError::ServiceError(service) => {
                match classify(service.err().code(), Some(service.raw().status().as_u16())) {
                    Class::Transient => QueueError::Transient { location, message },
                    Class::Permanent(hint) => {
                        QueueError::Permanent { location, message, hint: Some(hint.to_owned()) }
                    }
                }
            }
            SdkError::ConstructionFailure(_) => QueueError::Permanent {
                location,
                message,
                hint: Some(
                    "check the SQS region and credentials (AWS_REGION, AWS_PROFILE, AWS_ACCESS_KEY_ID)"
                        .to_owned(),
                ),
            },
            _ => QueueError::Transient {
                location,
                message: format!("{message} (endpoint {}: check that it is reachable)", self.endpoint),
            },
        }
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn setup(&self) -> Result<(), QueueError> {
        let dlq = self.settings.dlq_name();
        let dlq_url = self.create(&dlq, HashMap::new()).await?;
        let arn = self
            .attributes(&dlq_url, &dlq, &[QueueAttributeName::QueueArn])
            .await?
            .remove(&QueueAttributeName::QueueArn)
            .ok_or_else(|| self.missing(&dlq, "GetQueueAttributes", "QueueArn"))?;
        // Already set means another setup resolved the same URL.
        let _ = self.dlq_url.set(dlq_url);
        let wanted = self.main_attributes(&arn);
        let created = self.create(&self.settings.name, wanted.clone()).await?;
        // A queue URL given in the configuration is used as is.
        let url = self.main_url.get_or_init(|| async { created }).await;
        self.ensure_attributes(url, wanted).await
    }

    async fn publish(&self, body: &[u8]) -> Result<(), QueueError> {
        let url = self.main_url().await?;
        self.send(url, &self.settings.name, body, None).await
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let messages = self.receive_from(false, max, wait).await?;
        Ok(messages.iter().filter_map(delivery).collect())
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        self.delete(delivery, false, "deleting (acking) a message").await
    }

    async fn release(&self, delivery: &Delivery) -> Result<(), QueueError> {
        self.change_visibility(delivery, 0, false, "releasing a message").await
    }

    async fn extend_lease(&self, delivery: &Delivery, by: Duration) -> Result<(), QueueError> {
        self.change_visibility(delivery, seconds_up(by, MAX_VISIBILITY_SECONDS), false, "extending a lease")
            .await
    }

    async fn receive_dead(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        // A long poll, however short: a short poll samples only some of SQS's servers and can
        // answer empty while dead letters wait.
        let messages = self.receive_from(true, max, Duration::from_secs(1)).await?;
        let limit = self.settings.delivery_limit;
        Ok(messages
            .iter()
            .filter_map(|message| {
                let delivery = delivery(message)?;
                let attribute = |key: &str| {
                    message.message_attributes().and_then(|a| a.get(key)).and_then(|v| v.string_value())
                };
                // No attributes: SQS's redrive moved it after `limit` receives.
                let reason = attribute("txp-reason").map_or_else(
                    || format!("delivery limit {limit} reached (moved by the SQS redrive policy)"),
                    str::to_owned,
                );
                let attempts = attribute("txp-attempts").and_then(|a| a.parse().ok()).unwrap_or(limit);
                Some(DeadLetter { delivery, reason, attempts })
            })
            .collect())
    }

    async fn ack_dead(&self, dead: &DeadLetter) -> Result<(), QueueError> {
        self.delete(&dead.delivery, true, "deleting a replayed dead letter").await
    }

    async fn release_dead(&self, dead: &DeadLetter) -> Result<(), QueueError> {
        self.change_visibility(&dead.delivery, 0, true, "releasing a dead letter").await
    }

    fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError> {
        // At least once: the copy is in the DLQ before the original is deleted.
        let dlq = self.settings.dlq_name();
        let url = self.dlq_url().await?;
        let attributes = HashMap::from([
            ("txp-reason".to_owned(), string_attribute(reason, &dlq)?),
            ("txp-attempts".to_owned(), string_attribute(&delivery.attempt.to_string(), &dlq)?),
            ("txp-from".to_owned(), string_attribute(&self.settings.name, &dlq)?),
        ]);
        self.send(url, &dlq, &delivery.body, Some(attributes)).await?;
        self.delete(delivery, false, "deleting a dead-lettered message").await
    }

    async fn depth(&self) -> Result<Depth, QueueError> {
        let name = &self.settings.name;
        let ready = QueueAttributeName::ApproximateNumberOfMessages;
        let in_flight = QueueAttributeName::ApproximateNumberOfMessagesNotVisible;
        let main = self.attributes(self.main_url().await?, name, &[ready.clone(), in_flight.clone()]).await?;
        let dlq_url = self.dlq_url().await?;
        let dead = self.attributes(dlq_url, &self.settings.dlq_name(), std::slice::from_ref(&ready)).await?;
        Ok(Depth {
            ready: self.count(&main, &ready),
            in_flight: self.count(&main, &in_flight),
            dead: self.count(&dead, &ready),
        })
    }

    fn backend(&self) -> &'static str {
        "sqs"
    }
}

/// An error and its causes, `: `-separated, without the repetitions and the debug dumps of
/// the SDK's own rendering.
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// A received message as a delivery; one without a receipt handle cannot be acked and is left
/// to come back.
fn delivery(message: &aws_sdk_sqs::types::Message) -> Option<Delivery> {
    let handle = message.receipt_handle()?.to_owned();
    let attempt = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|count| count.parse().ok())
        .unwrap_or(1);
    Some(Delivery { body: message.body().unwrap_or_default().as_bytes().to_vec(), attempt, handle })
}

fn string_attribute(value: &str, queue: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder().data_type("String").string_value(value).build().map_err(|e| {
        QueueError::Permanent { location: format!("SQS queue {queue}"), message: e.to_string(), hint: None }
    })
}

/// The client and a description of its endpoint. Precedence: the options, then the queue
/// URL (its region; its host when not AWS), then the environment, then us-east-1.
async fn client(target: &Target, options: &SqsOptions) -> (Client, String) {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
    if let Some(region) = options.region.clone().or_else(|| target.region.clone()) {
        loader = loader.region(Region::new(region));
    }
    if let Some(endpoint) = &options.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    if let (Some(key), Some(secret)) = (&options.access_key_id, &options.secret_access_key) {
        loader = loader.credentials_provider(Credentials::new(key, secret, None, None, "txpatterns"));
    }
    let sdk = loader.load().await;
    let region = sdk.region().map_or_else(|| DEFAULT_REGION.to_owned(), ToString::to_string);
    let mut config = aws_sdk_sqs::config::Builder::from(&sdk).region(Region::new(region.clone()));
    // The environment's endpoint (global or for SQS) wins over a queue URL's host, so that
    // AWS_ENDPOINT_URL_SQS can redirect any configuration.
    let configured =
        sdk.endpoint_url().map(str::to_owned).or_else(|| std::env::var("AWS_ENDPOINT_URL_SQS").ok());
    let endpoint = configured.or_else(|| target.origin.clone());
    if let Some(endpoint) = &endpoint {
        config = config.endpoint_url(endpoint);
    }
    let described = endpoint.unwrap_or_else(|| format!("SQS in {region}"));
    (Client::from_conf(config.build()), described)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqs_urls_name_the_queue() {
        let target = Target::parse("sqs://txp-chunks").unwrap();
        assert_eq!(target, Target { name: "txp-chunks".into(), queue_url: None, origin: None, region: None });
    }

    #[test]
    fn aws_queue_urls_give_name_and_region() {
        let url = "https://sqs.eu-west-1.amazonaws.com/123456789012/txp_chunks";
        let target = Target::parse(url).unwrap();
        assert_eq!(target.name, "txp_chunks");
        assert_eq!(target.queue_url.as_deref(), Some(url));
        assert_eq!(target.region.as_deref(), Some("eu-west-1"));
        assert_eq!(target.origin, None);
    }

    #[test]
    fn other_queue_urls_give_their_origin_as_endpoint() {
        let target = Target::parse("http://127.0.0.1:4566/000000000000/q/").unwrap();
        assert_eq!(target.name, "q");
        assert_eq!(target.origin.as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!(target.region, None);
    }

    #[test]
    fn invalid_urls_are_permanent() {
        for url in [
            "sqs://",
            "sqs://a/b",
            "sqs://bad.name",
            "https://host/onlyname",
            "ftp://h/1/q",
            "https://h/1/q/x",
        ] {
            let error = Target::parse(url).unwrap_err();
            assert!(!error.is_transient(), "{url}");
            assert!(error.hint().is_some(), "{url}");
        }
        assert!(Target::parse(&format!("sqs://{}", "a".repeat(77))).is_err());
    }

    #[test]
    fn region_from_host() {
        assert_eq!(aws_region("sqs.us-east-2.amazonaws.com").as_deref(), Some("us-east-2"));
        assert_eq!(aws_region("eu-west-1.queue.amazonaws.com").as_deref(), Some("eu-west-1"));
        assert_eq!(aws_region("localhost"), None);
        assert_eq!(aws_region("sqs.amazonaws.com"), None);
    }

    #[test]
    fn error_codes_are_sorted() {
        assert_eq!(classify(Some("RequestThrottled"), Some(400)), Class::Transient);
        assert_eq!(classify(None, Some(503)), Class::Transient);
        assert_eq!(classify(Some("Whatever"), Some(500)), Class::Transient);
        assert_eq!(classify(Some("Whatever"), Some(429)), Class::Transient);
        assert!(
            matches!(classify(Some("AWS.SimpleQueueService.NonExistentQueue"), Some(400)), Class::Permanent(h) if h.contains("setup"))
        );
        assert!(matches!(classify(Some("QueueDoesNotExist"), Some(400)), Class::Permanent(_)));
        assert!(
            matches!(classify(Some("AccessDenied"), Some(403)), Class::Permanent(h) if h.contains("credentials"))
        );
        assert!(matches!(classify(Some("InvalidParameterValue"), Some(400)), Class::Permanent(_)));
        assert!(matches!(classify(Some("Unknown"), Some(400)), Class::Permanent(_)));
    }

    #[test]
    fn durations_in_seconds() {
        assert_eq!(wait_seconds(Duration::from_millis(400)), 0);
        assert_eq!(wait_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(wait_seconds(Duration::from_secs(60)), 20);
        assert_eq!(seconds_up(Duration::from_millis(1), 43_200), 1);
        assert_eq!(seconds_up(Duration::from_secs(30), 43_200), 30);
        assert_eq!(seconds_up(Duration::from_secs(100_000), 43_200), 43_200);
    }

    #[test]
    fn redrive_policies_compare_by_value() {
        let policy = redrive_policy("arn:aws:sqs:us-east-1:1:q-dlq", 5);
        assert_eq!(parse_redrive(&policy), Some(("arn:aws:sqs:us-east-1:1:q-dlq".to_owned(), 5)));
        let as_string = r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:q-dlq","maxReceiveCount":"5"}"#;
        assert_eq!(parse_redrive(as_string), parse_redrive(&policy));
        assert_eq!(max_receive_count(0), 1);
        assert_eq!(max_receive_count(5000), 1000);
    }

    #[derive(Debug)]
    struct Wrapper(&'static str, std::io::Error);

    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn causes_are_chained_once() {
        let refused = || std::io::Error::other("connection refused");
        assert_eq!(causes(&Wrapper("dispatch failure", refused())), "dispatch failure: connection refused");
        let repeated = Wrapper("io error: connection refused", refused());
        assert_eq!(causes(&repeated), "io error: connection refused");
    }

    #[test]
    fn options_hide_the_secret() {
        let options = SqsOptions { secret_access_key: Some("s3cret".into()), ..SqsOptions::default() };
        assert!(!format!("{options:?}").contains("s3cret"));
    }
}
