//! Settings, built once at start from four layers, lowest precedence first: built-in defaults,
//! the settings file (`./txp.toml`, or `--config FILE`), `TXP_*` environment variables, then
//! flags (`--preset`, `--set KEY=VALUE` and a command's own options). Every key is listed once,
//! in [`KEYS`]; its environment variable is its dotted name in capitals with `_` for `.`.
//!
//! Layers are merged with figment. Thresholds left unset in every layer take the preset's value.
//! Decimals are read as exact decimals: a TOML float is taken by its shortest text form, and
//! refused when that has more digits than a binary float holds exactly.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Value};
use serde::Deserialize;
use txp_connectors::queue::QueueSettings;
use txp_connectors::store::S3Settings;
use txp_core::thresholds::{Decimal6, Percent, Preset, Thresholds};

use crate::error::Error;

/// The settings file read when `--config` is not given, if it exists.
pub const DEFAULT_FILE: &str = "txp.toml";
/// The embedded database: a SQLite file beside the demo's data.
pub const DEFAULT_DATABASE: &str = "sqlite://txp-data/txp.db";

/// One setting: its dotted name and what it is for.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    pub help: &'static str,
}

/// Every setting, in the order `txp config show` prints them.
pub const KEYS: &[Key] = &[
    Key {
        name: "patterns.preset",
        help: "threshold preset: banksim (the brief's figures) or seed (scaled down)",
    },
    Key {
        name: "patterns.upgrade.min_merchant_txns",
        help: "UPGRADE: a merchant needs more transactions than this",
    },
    Key { name: "patterns.upgrade.top_pct", help: "UPGRADE: top share of customers by count, in percent" },
    Key {
        name: "patterns.upgrade.bottom_pct",
        help: "UPGRADE: bottom share of weighted customers by mean weight, in percent",
    },
    Key { name: "patterns.child.min_txns", help: "CHILD: a pair needs more transactions than this" },
    Key {
        name: "patterns.child.max_avg_amount",
        help: "CHILD: the average amount must be strictly below this",
    },
    Key {
        name: "patterns.dei.min_female_customers",
        help: "DEI-NEEDED: a merchant needs more female customers than this",
    },
    Key { name: "upload.chunk_rows", help: "rows per chunk when a source is cut into chunks" },
    Key {
        name: "upload.interval",
        help: "time between chunks of an upload (1s, 200ms; 0: as fast as it can)",
    },
    Key { name: "upload.stream", help: "the stream's name: one source, one destination, one chunking" },
    Key {
        name: "database.url",
        help: "the pipeline's database: sqlite://PATH (embedded) or postgres://…; also DATABASE_URL",
    },
    Key {
        name: "queue.url",
        help: "db (a queue in the database), amqp://USER:PASS@HOST:PORT/VHOST, sqs://NAME or an SQS URL",
    },
    Key { name: "queue.name", help: "the main queue; its dead-letter queue is NAME-dlq" },
    Key { name: "queue.delivery_limit", help: "deliveries of a message before it is dead-lettered" },
    Key {
        name: "queue.visibility_timeout",
        help: "how long a received message stays leased to its consumer",
    },
    Key {
        name: "output.max_wait",
        help: "a partial output file (fewer than 50 detections) is written once its oldest has waited this long",
    },
    Key {
        name: "output.stall_warning",
        help: "a detector waiting this long for a stored chunk warns, pointing to `txp replay` and `txp reconcile`",
    },
    Key {
        name: "detector.persist_every",
        help: "running statistics (pair_stats, merchant_stats) are persisted at least every this many chunks, and when idle",
    },
    Key {
        name: "detector.retention_chunks",
        help: "chunk aggregates more than this many chunks behind every shard's persisted statistics are pruned; 0 keeps all",
    },
    Key {
        name: "startup.wait",
        help: "how long upload, consume, detect and run wait at start for a database, broker or store that does not answer yet (0: fail at once)",
    },
    Key {
        name: "metrics.addr",
        help: "where long-running commands serve /metrics, /healthz and /readyz: HOST:PORT, `auto` (0.0.0.0:9464 in a container, else 127.0.0.1:9464) or `off`",
    },
    Key {
        name: "s3.endpoint_url",
        help: "S3-compatible endpoint; empty: the AWS SDK's (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL)",
    },
    Key { name: "s3.region", help: "S3 region; empty: the AWS SDK's (AWS_REGION, profile), else us-east-1" },
    Key {
        name: "s3.force_path_style",
        help: "path-style S3 addressing (http://host/bucket/key), for S3-compatible servers",
    },
];

/// Unprefixed environment variables that users expect to work, and the setting each stands for.
/// They rank below the `TXP_*` variable of the same setting.
const CONVENTIONAL_ENV: &[(&str, &str)] = &[("DATABASE_URL", "database.url")];

/// The environment variable of a setting: `patterns.child.min_txns` is `TXP_PATTERNS_CHILD_MIN_TXNS`.
pub fn env_var(key: &str) -> String {
    format!("TXP_{}", key.to_ascii_uppercase().replace('.', "_"))
}

/// A short alias for `TXP_PATTERNS_PRESET`.
const PRESET_ALIAS: &str = "TXP_PRESET";

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    Preset(Preset),
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::Preset(p) => write!(f, "preset {p}"),
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Env(var) => write!(f, "env {var}"),
            Self::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// What the command line adds on top of the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--preset NAME`.
    pub preset: Option<String>,
    /// `--set KEY=VALUE`, in order.
    pub set: Vec<String>,
    /// A command's own options that stand for settings: (key, value as TOML, the flag's name).
    pub flags: Vec<(&'static str, String, &'static str)>,
}

/// The effective settings, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub preset: Preset,
    pub thresholds: Thresholds,
    pub chunk_rows: NonZeroU64,
    pub interval: Duration,
    pub stream: String,
    pub database_url: String,
    pub queue_url: String,
    pub queue: QueueSettings,
    pub s3: S3Settings,
    /// `output.max_wait`.
    pub output_max_wait: Duration,
    /// `output.stall_warning`.
    pub output_stall_warning: Duration,
    /// `detector.persist_every`.
    pub persist_every: u64,
    /// `detector.retention_chunks`; 0 keeps every aggregate.
    pub retention_chunks: u64,
    /// `startup.wait`: how long a long-running command waits for its servers at start.
    pub startup_wait: Duration,
    /// `metrics.addr`.
    pub metrics_addr: MetricsAddr,
    /// Each key's effective value as TOML text, and its origin, in [`KEYS`] order.
    pub shown: Vec<(&'static str, String, Origin)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    patterns: RawPatterns,
    upload: RawUpload,
    database: RawDatabase,
    queue: RawQueue,
    output: RawOutput,
    detector: RawDetector,
    startup: RawStartup,
    metrics: RawMetrics,
    s3: RawS3,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStartup {
    #[serde(deserialize_with = "duration_text")]
    wait: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    addr: String,
}

/// Where the metrics and health endpoint listens (`metrics.addr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAddr {
    /// `off`: no endpoint.
    Off,
    /// `auto`: the default address; a port already taken (another txp process on this host) is
    /// only a warning.
    Auto(SocketAddr),
    /// An address the user asked for: failing to bind it is an error.
    Explicit(SocketAddr),
}

/// The default metrics port: the one the Kubernetes manifests and the compose file scrape.
pub const METRICS_PORT: u16 = 9464;

/// Whether this process runs in a container (Kubernetes, Docker, Podman), where the metrics
/// endpoint must listen on every interface to be scraped.
fn in_container() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        || Path::new("/.dockerenv").exists()
        || Path::new("/run/.containerenv").exists()
}

fn metrics_addr(text: &str) -> Result<MetricsAddr, String> {
    match text.trim() {
        "off" | "" => Ok(MetricsAddr::Off),
        "auto" => {
            let host = if in_container() { [0, 0, 0, 0] } else { [127, 0, 0, 1] };
            Ok(MetricsAddr::Auto(SocketAddr::from((host, METRICS_PORT))))
        }
        other => other.parse::<SocketAddr>().map(MetricsAddr::Explicit).map_err(|e| {
            format!("`{other}` is not HOST:PORT, `auto` or `off` (e.g. 127.0.0.1:9464, 0.0.0.0:0): {e}")
        }),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetector {
    persist_every: u64,
    retention_chunks: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    #[serde(deserialize_with = "duration_text")]
    max_wait: String,
    #[serde(deserialize_with = "duration_text")]
    stall_warning: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    url: String,
    name: String,
    delivery_limit: u32,
    #[serde(deserialize_with = "duration_text")]
    visibility_timeout: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS3 {
    endpoint_url: String,
    region: String,
    force_path_style: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPatterns {
    preset: String,
    #[serde(default)]
    upgrade: RawUpgrade,
    #[serde(default)]
    child: RawChild,
    #[serde(default)]
    dei: RawDei,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpgrade {
    min_merchant_txns: Option<u64>,
    top_pct: Option<DecimalText>,
    bottom_pct: Option<DecimalText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChild {
    min_txns: Option<u64>,
    max_avg_amount: Option<DecimalText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDei {
    min_female_customers: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpload {
    chunk_rows: u64,
    #[serde(deserialize_with = "duration_text")]
    interval: String,
    stream: String,
}

/// A duration setting as text, from a TOML string (`"1s"`) or an integer: `--set startup.wait=0`
/// and `TXP_STARTUP_WAIT=0` read as the integer 0, which must mean what `"0"` means.
fn duration_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    deserializer
        .deserialize_any(ScalarText { expecting: "a duration such as \"1s\", \"200ms\" or 0", floats: false })
}

/// A decimal setting as text, from a TOML string, integer or float.
#[derive(Debug, Clone)]
struct DecimalText(String);

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(ScalarText {
                expecting: "a decimal number, such as 10, 2.5 or \"2.5\"",
                floats: true,
            })
            .map(DecimalText)
    }
}

/// Significant digits a binary float carries exactly through its shortest text form.
const FLOAT_DIGITS: usize = 15;

/// Reads a setting given as a string or a number as its text, for a parser of our own (TOML,
/// `--set` and `TXP_*` values turn `10` into an integer before we see it).
struct ScalarText {
    expecting: &'static str,
    /// Whether a float is taken (as its shortest exact text) or refused.
    floats: bool,
}

impl serde::de::Visitor<'_> for ScalarText {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
        if !self.floats {
            return Err(E::invalid_type(serde::de::Unexpected::Float(v), &self));
        }
        // Rust prints the shortest text that reads back as the same float: 2.5 is "2.5".
        let text = format!("{v}");
        let digits = text.trim_start_matches(['-', '0', '.']).chars().filter(char::is_ascii_digit).count();
        if digits > FLOAT_DIGITS {
            return Err(E::custom(format!(
                "{text} has more digits than a TOML float holds exactly: write it as a string, e.g. \"{text}\""
            )));
        }
        Ok(text)
    }
}

/// The built-in defaults (thresholds come from the preset).
fn defaults() -> Dict {
    let mut patterns = Dict::new();
    patterns.insert("preset".into(), Value::from(Preset::default().name()));
    let mut root = Dict::new();
    root.insert("patterns".into(), Value::from(patterns));
    for (key, value) in [
        ("upload.chunk_rows", Value::from(10_000_u64)),
        ("upload.interval", Value::from("1s")),
        ("upload.stream", Value::from("default")),
        ("database.url", Value::from(DEFAULT_DATABASE)),
        ("queue.url", Value::from("db")),
        ("queue.name", Value::from("txp-chunks")),
        ("queue.delivery_limit", Value::from(5_u64)),
        ("queue.visibility_timeout", Value::from("60s")),
        ("output.max_wait", Value::from("5s")),
        ("output.stall_warning", Value::from("60s")),
        ("detector.persist_every", Value::from(50_u64)),
        ("detector.retention_chunks", Value::from(100_u64)),
        ("startup.wait", Value::from("60s")),
        ("metrics.addr", Value::from("auto")),
        ("s3.endpoint_url", Value::from("")),
        ("s3.region", Value::from("")),
        ("s3.force_path_style", Value::from(false)),
    ] {
        insert(&mut root, key, value);
    }
    root
}

/// Sets `dotted.key = value` in a nested dictionary.
fn insert(dict: &mut Dict, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            dict.insert(key.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry = dict.entry(head.to_owned()).or_insert_with(|| Value::from(Dict::new()));
            if entry.as_dict().is_none() {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

/// A flag's value as TOML (`10`, `2.5`, `"x"`), or else as a string.
fn flag_value(text: &str) -> Value {
    match text.parse::<toml::Value>() {
        Ok(toml::Value::String(s)) => Value::from(s),
        Ok(toml::Value::Integer(i)) => Value::from(i),
        Ok(toml::Value::Float(f)) => Value::from(f),
        Ok(toml::Value::Boolean(b)) => Value::from(b),
        _ => Value::from(text.to_owned()),
    }
}

fn known(key: &str) -> Result<&'static Key, Error> {
    KEYS.iter().find(|k| k.name == key).ok_or_else(|| {
        Error::usage(format!("unknown setting `{key}`"))
            .hint(format!("settings are: {}", KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")))
    })
}

impl Settings {
    /// The stream named by `--stream` or by the `upload.stream` setting in a file or the
    /// environment; `None` when only the default (`default`, the name `txp upload` gives) applies:
    /// the commands that read a stream then find it in the database.
    pub fn named_stream(&self) -> Option<&str> {
        let named =
            self.shown.iter().any(|(key, _, origin)| *key == "upload.stream" && *origin != Origin::Default);
        named.then_some(self.stream.as_str())
    }

    /// How a long-running command retries a server that does not answer at start.
    pub fn startup_backoff(&self) -> txp_connectors::retry::Backoff {
        txp_connectors::retry::Backoff::startup(self.startup_wait)
    }

    /// Builds the settings from every layer and validates them.
    pub fn load(overrides: &Overrides) -> Result<Self, Error> {
        let file = match &overrides.config {
            Some(path) if !path.is_file() => {
                return Err(Error::usage(format!("settings file {} does not exist", path.display()))
                    .hint("check the path given to --config"));
            }
            Some(path) => Some(path.clone()),
            None => Some(PathBuf::from(DEFAULT_FILE)).filter(|p| p.is_file()),
        };
        let file_layer = file.as_ref().map(|p| Figment::from(Toml::file(p)));
        let env_layer = Figment::from(
            Env::prefixed("TXP_")
                .filter_map(|k| {
                    let var = format!("TXP_{}", k.as_str().to_ascii_uppercase());
                    if var == PRESET_ALIAS {
                        return Some("patterns.preset".into());
                    }
                    KEYS.iter().find(|key| env_var(key.name) == var).map(|key| key.name.into())
                })
                .lowercase(false),
        );
        let conventional_layer = Figment::from(
            Env::raw()
                .filter_map(|k| {
                    let var = k.as_str().to_ascii_uppercase();
                    CONVENTIONAL_ENV.iter().find(|(name, _)| *name == var).map(|(_, key)| (*key).into())
                })
                .lowercase(false),
        );
        let mut flags = Dict::new();
        let mut flag_names: Vec<(&'static str, String)> = Vec::new();
        for pair in &overrides.set {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(Error::usage(format!("--set `{pair}` is not KEY=VALUE"))
                    .hint("e.g. --set patterns.child.min_txns=80"));
            };
            let key = known(key.trim())?;
            insert(&mut flags, key.name, flag_value(value.trim()));
            flag_names.push((key.name, format!("--set {}", key.name)));
        }
        if let Some(preset) = &overrides.preset {
            insert(&mut flags, "patterns.preset", Value::from(preset.clone()));
            flag_names.push(("patterns.preset", "--preset".to_owned()));
        }
        for (key, value, flag) in &overrides.flags {
            insert(&mut flags, key, flag_value(value));
            flag_names.push((key, (*flag).to_owned()));
        }

        let mut figment = Figment::from(Serialized::defaults(defaults()));
        if let Some(layer) = &file_layer {
            figment = figment.merge(layer.clone());
        }
        figment = figment
            .merge(conventional_layer.clone())
            .merge(env_layer.clone())
            .merge(Serialized::defaults(flags));
        let raw: RawSettings = figment.extract().map_err(|e| settings_error(&e, file.as_deref()))?;

        let origin = |key: &str| -> Option<Origin> {
            if let Some((_, flag)) = flag_names.iter().rev().find(|(k, _)| *k == key) {
                return Some(Origin::Flag(flag.clone()));
            }
            if env_layer.contains(key) {
                let var = if key == "patterns.preset" && std::env::var_os(env_var(key)).is_none() {
                    PRESET_ALIAS.to_owned()
                } else {
                    env_var(key)
                };
                return Some(Origin::Env(var));
            }
            if conventional_layer.contains(key) {
                return CONVENTIONAL_ENV
                    .iter()
                    .find(|(_, k)| *k == key)
                    .map(|(var, _)| Origin::Env((*var).to_owned()));
            }
            match (&file_layer, &file) {
                (Some(layer), Some(path)) if layer.contains(key) => Some(Origin::File(path.clone())),
                _ => None,
            }
        };
        Self::validate(raw, origin)
    }

    fn validate(raw: RawSettings, origin: impl Fn(&str) -> Option<Origin>) -> Result<Self, Error> {
        let invalid = |key: &str, message: String| {
            Error::usage(format!("setting {key}: {message}"))
                .hint(format!("set it in {DEFAULT_FILE}, with {} or with --set {key}=VALUE", env_var(key)))
        };
        let preset: Preset = raw.patterns.preset.parse().map_err(|e| invalid("patterns.preset", e))?;
        let base = preset.thresholds();
        let percent = |key: &str, value: Option<DecimalText>, default: Percent| match value {
            None => Ok(default),
            Some(DecimalText(text)) => text.parse::<Percent>().map_err(|e| invalid(key, e.to_string())),
        };
        let thresholds = Thresholds {
            upgrade_min_merchant_txns: raw
                .patterns
                .upgrade
                .min_merchant_txns
                .unwrap_or(base.upgrade_min_merchant_txns),
            upgrade_top_pct: percent(
                "patterns.upgrade.top_pct",
                raw.patterns.upgrade.top_pct,
                base.upgrade_top_pct,
            )?,
            upgrade_bottom_pct: percent(
                "patterns.upgrade.bottom_pct",
                raw.patterns.upgrade.bottom_pct,
                base.upgrade_bottom_pct,
            )?,
            child_min_txns: raw.patterns.child.min_txns.unwrap_or(base.child_min_txns),
            child_max_avg_amount: match raw.patterns.child.max_avg_amount {
                None => base.child_max_avg_amount,
                Some(DecimalText(text)) => text
                    .parse::<Decimal6>()
                    .map_err(|e| invalid("patterns.child.max_avg_amount", e.to_string()))?,
            },
            dei_min_female_customers: raw
                .patterns
                .dei
                .min_female_customers
                .unwrap_or(base.dei_min_female_customers),
        };
        let chunk_rows = NonZeroU64::new(raw.upload.chunk_rows)
            .ok_or_else(|| invalid("upload.chunk_rows", "must be at least 1".to_owned()))?;

        let duration = |key: &str, text: &str| {
            humantime::parse_duration(text.trim())
                .or_else(|e| if text.trim() == "0" { Ok(Duration::ZERO) } else { Err(e) })
                .map_err(|e| invalid(key, format!("`{text}` is not a duration such as 1s or 200ms: {e}")))
        };
        let interval = duration("upload.interval", &raw.upload.interval)?;
        let output_max_wait = duration("output.max_wait", &raw.output.max_wait)?;
        let output_stall_warning = duration("output.stall_warning", &raw.output.stall_warning)?;
        let startup_wait = duration("startup.wait", &raw.startup.wait)?;
        let visibility_timeout = duration("queue.visibility_timeout", &raw.queue.visibility_timeout)?;
        if visibility_timeout < Duration::from_secs(1) {
            return Err(invalid("queue.visibility_timeout", "must be at least 1s".to_owned()));
        }
        if raw.detector.persist_every == 0 {
            return Err(invalid("detector.persist_every", "must be at least 1".to_owned()));
        }
        if raw.queue.delivery_limit == 0 {
            return Err(invalid("queue.delivery_limit", "must be at least 1".to_owned()));
        }
        for (key, value) in [("upload.stream", &raw.upload.stream), ("queue.name", &raw.queue.name)] {
            let ok = !value.is_empty()
                && value.len() <= 72
                && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
            if !ok {
                return Err(invalid(
                    key,
                    format!("`{value}` must be 1 to 72 letters, digits, `-`, `_` or `.`"),
                ));
            }
        }
        let optional = |text: &str| Some(text.trim().to_owned()).filter(|t| !t.is_empty());
        let s3 = S3Settings {
            endpoint_url: optional(&raw.s3.endpoint_url),
            region: optional(&raw.s3.region),
            force_path_style: raw.s3.force_path_style,
            access_key_id: None,
            secret_access_key: None,
        };
        let queue = QueueSettings {
            name: raw.queue.name.clone(),
            delivery_limit: raw.queue.delivery_limit,
            visibility_timeout,
        };
        let quoted = |text: &str| toml::Value::String(text.to_owned()).to_string();
        let metrics_addr = metrics_addr(&raw.metrics.addr).map_err(|e| invalid("metrics.addr", e))?;
        let values: [(&str, String); 24] = [
            ("patterns.preset", format!("\"{preset}\"")),
            ("patterns.upgrade.min_merchant_txns", thresholds.upgrade_min_merchant_txns.to_string()),
            ("patterns.upgrade.top_pct", thresholds.upgrade_top_pct.to_string()),
            ("patterns.upgrade.bottom_pct", thresholds.upgrade_bottom_pct.to_string()),
            ("patterns.child.min_txns", thresholds.child_min_txns.to_string()),
            ("patterns.child.max_avg_amount", thresholds.child_max_avg_amount.to_string()),
            ("patterns.dei.min_female_customers", thresholds.dei_min_female_customers.to_string()),
            ("upload.chunk_rows", chunk_rows.to_string()),
            ("upload.interval", quoted(&raw.upload.interval)),
            ("upload.stream", quoted(&raw.upload.stream)),
            ("database.url", quoted(&raw.database.url)),
            ("queue.url", quoted(&raw.queue.url)),
            ("queue.name", quoted(&raw.queue.name)),
            ("queue.delivery_limit", raw.queue.delivery_limit.to_string()),
            ("queue.visibility_timeout", quoted(&raw.queue.visibility_timeout)),
            ("output.max_wait", quoted(&raw.output.max_wait)),
            ("output.stall_warning", quoted(&raw.output.stall_warning)),
            ("detector.persist_every", raw.detector.persist_every.to_string()),
            ("detector.retention_chunks", raw.detector.retention_chunks.to_string()),
            ("startup.wait", quoted(&raw.startup.wait)),
            ("metrics.addr", quoted(&raw.metrics.addr)),
            ("s3.endpoint_url", quoted(&raw.s3.endpoint_url)),
            ("s3.region", quoted(&raw.s3.region)),
            ("s3.force_path_style", raw.s3.force_path_style.to_string()),
        ];
        let shown = KEYS
            .iter()
            .zip(values)
            .map(|(key, (_, value))| {
                let fallback = if key.name.starts_with("patterns.") && key.name != "patterns.preset" {
                    Origin::Preset(preset)
                } else {
                    Origin::Default
                };
                (key.name, value, origin(key.name).unwrap_or(fallback))
            })
            .collect();
        Ok(Self {
            preset,
            thresholds,
            chunk_rows,
            interval,
            stream: raw.upload.stream,
            database_url: raw.database.url,
            queue_url: raw.queue.url,
            queue,
            s3,
            output_max_wait,
            output_stall_warning,
            persist_every: raw.detector.persist_every,
            retention_chunks: raw.detector.retention_chunks,
            startup_wait,
            metrics_addr,
            shown,
        })
    }
}

/// A figment error as a message that names the key, where it was set, and what to do.
fn settings_error(error: &figment::Error, file: Option<&Path>) -> Error {
    let key = error.path.join(".");
    let mut message = format!("invalid settings: {}", error.kind);
    if !key.is_empty() {
        message = format!("invalid setting `{key}`: {}", error.kind);
    }
    if let Some(source) = error.metadata.as_ref().map(|m| m.name.to_string()) {
        message.push_str(&format!(" (from {source})"));
    }
    let hint = match file {
        Some(path) => format!(
            "check {} and the TXP_* environment variables; `txp config show` lists every setting",
            path.display()
        ),
        None => {
            "check the TXP_* environment variables and --set flags; `txp config show` lists every setting"
                .to_owned()
        }
    };
    Error::usage(message).hint(hint)
}

pub use txp_connectors::redact::mask_secrets;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_follow_the_dotted_key() {
        assert_eq!(env_var("patterns.child.min_txns"), "TXP_PATTERNS_CHILD_MIN_TXNS");
        assert_eq!(env_var("upload.chunk_rows"), "TXP_UPLOAD_CHUNK_ROWS");
    }

    #[test]
    fn flag_values_read_as_toml_or_text() {
        assert_eq!(flag_value("10"), Value::from(10_i64));
        assert_eq!(flag_value("seed"), Value::from("seed".to_owned()));
        assert_eq!(flag_value("\"2.5\""), Value::from("2.5".to_owned()));
    }

    #[test]
    fn a_duration_of_0_given_as_an_integer_means_none() {
        let set = |values: &[&str]| Overrides {
            set: values.iter().map(|v| (*v).to_owned()).collect(),
            ..Overrides::default()
        };
        let settings = Settings::load(&set(&["startup.wait=0", "upload.interval=0"])).unwrap();
        assert_eq!((settings.startup_wait, settings.interval), (Duration::ZERO, Duration::ZERO));
        // Another bare integer has no unit: refused with the key and an example.
        let error = Settings::load(&set(&["output.max_wait=5"])).unwrap_err().to_string();
        assert!(error.contains("output.max_wait") && error.contains("such as 1s"), "{error}");
    }
}
