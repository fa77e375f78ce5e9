//! Every metric a txpatterns process exports, defined once: name, type, labels, help text and,
//! for histograms, the bucket bounds. docs/operations.md lists the same table, the Grafana
//! dashboard and the alert rules use only these names, and tests hold all three to this list.
//!
//! Labels are low-cardinality by construction: a queue backend, a stage, a pattern, a shard, a
//! stream name; never a customer, a merchant or a message id.

/// A metric's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl MetricKind {
    /// The word in the exposition format's `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// One metric.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: MetricKind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
    /// Upper bounds of the histogram's buckets, in seconds (empty for other kinds). Explicit
    /// buckets make the exporter emit a real histogram, which sums across pods, instead of a
    /// summary, which does not.
    pub buckets: &'static [f64],
}

/// Stage latencies: each stage of a chunk takes microseconds to seconds.
const STAGE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0,
];
/// End to end: from a chunk's upload to its committed detections, seconds to minutes when a
/// detector catches up.
const END_TO_END_BUCKETS: &[f64] =
    &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

pub const BUILD_INFO: &str = "txp_build_info";
pub const CHUNKS_STORED: &str = "txp_chunks_stored_total";
pub const MESSAGES_PUBLISHED: &str = "txp_messages_published_total";
pub const MESSAGES_RECEIVED: &str = "txp_messages_received_total";
pub const MESSAGES_ACKED: &str = "txp_messages_acked_total";
pub const MESSAGES_RETRIED: &str = "txp_messages_retried_total";
pub const MESSAGES_DEAD_LETTERED: &str = "txp_messages_dead_lettered_total";
pub const REDELIVERIES: &str = "txp_redeliveries_total";
pub const DUPLICATES_SUPPRESSED: &str = "txp_duplicates_suppressed_total";
pub const ROWS: &str = "txp_rows_total";
pub const CHUNK_STAGE_SECONDS: &str = "txp_chunk_stage_seconds";
pub const END_TO_END_SECONDS: &str = "txp_end_to_end_seconds";
pub const OLDEST_UNFOLDED_AGE: &str = "txp_oldest_unfolded_chunk_age_seconds";
pub const DETECTOR_FOLDED_THROUGH: &str = "txp_detector_folded_through";
pub const DETECTOR_WAITING_FOR: &str = "txp_detector_waiting_for_chunk";
pub const DETECTOR_LAG: &str = "txp_detector_lag_chunks";
pub const QUEUE_DEPTH: &str = "txp_queue_depth";
pub const DETECTIONS: &str = "txp_detections_total";
pub const OUTPUT_FILES: &str = "txp_output_files_total";
pub const ERRORS: &str = "txp_errors_total";

/// The values of the `kind` label of [`ERRORS`].
pub const ERROR_KINDS: &[&str] = &["queue", "store", "database", "input", "output"];
/// The values of the `stage` label of [`CHUNK_STAGE_SECONDS`].
pub const STAGES: &[&str] = &["fetch", "parse", "commit", "load", "evaluate", "record", "output", "persist"];
/// The values of the `pattern` label of [`DETECTIONS`].
pub const PATTERNS: &[&str] = &["UPGRADE", "CHILD", "DEI-NEEDED"];

/// The whole list, in the order docs/operations.md gives it.
pub const CATALOGUE: &[MetricDef] = &[
    MetricDef {
        name: BUILD_INFO,
        kind: MetricKind::Gauge,
        labels: &["version", "command"],
        help: "Always 1: the txp version and the command this process runs.",
        buckets: &[],
    },
    MetricDef {
        name: CHUNKS_STORED,
        kind: MetricKind::Counter,
        labels: &["store"],
        help: "Chunks the uploader stored (store: local or s3).",
        buckets: &[],
    },
    MetricDef {
        name: MESSAGES_PUBLISHED,
        kind: MetricKind::Counter,
        labels: &["backend"],
        help: "Chunk messages published with the broker's confirm (uploader, reconcile, replay).",
        buckets: &[],
    },
    MetricDef {
        name: MESSAGES_RECEIVED,
        kind: MetricKind::Counter,
        labels: &["backend"],
        help: "Deliveries a consumer received, redeliveries included.",
        buckets: &[],
    },
    MetricDef {
        name: MESSAGES_ACKED,
        kind: MetricKind::Counter,
        labels: &["backend"],
        help: "Deliveries acked after their chunk was committed (or found committed already).",
        buckets: &[],
    },
    MetricDef {
        name: MESSAGES_RETRIED,
        kind: MetricKind::Counter,
        labels: &["backend"],
        help: "Deliveries released after a transient failure, to be delivered again.",
        buckets: &[],
    },
    MetricDef {
        name: MESSAGES_DEAD_LETTERED,
        kind: MetricKind::Counter,
        labels: &["backend"],
        help: "Deliveries moved to the dead-letter queue (poison, or the delivery limit reached).",
        buckets: &[],
    },
    MetricDef {
        name: REDELIVERIES,
        kind: MetricKind::Counter,
        labels: &["backend"],
        help: "Deliveries after the first of the same message.",
        buckets: &[],
    },
    MetricDef {
        name: DUPLICATES_SUPPRESSED,
        kind: MetricKind::Counter,
        labels: &["backend"],
        help: "Deliveries of a chunk already committed: acked with no effect.",
        buckets: &[],
    },
    MetricDef {
        name: ROWS,
        kind: MetricKind::Counter,
        labels: &["outcome"],
        help: "Rows of committed chunks: valid, or quarantined with a reason.",
        buckets: &[],
    },
    MetricDef {
        name: CHUNK_STAGE_SECONDS,
        kind: MetricKind::Histogram,
        labels: &["stage"],
        help: "Seconds spent on a chunk, by stage: consumer: fetch (object store), parse (validate and aggregate), commit (aggregate and record); detector: load (aggregate read back), evaluate (fold and patterns), record (detections committed), output (files written), persist (statistics saved).",
        buckets: STAGE_BUCKETS,
    },
    MetricDef {
        name: END_TO_END_SECONDS,
        kind: MetricKind::Histogram,
        labels: &[],
        help: "Seconds from a chunk's upload to the commit of its detections, per chunk and shard folded.",
        buckets: END_TO_END_BUCKETS,
    },
    MetricDef {
        name: OLDEST_UNFOLDED_AGE,
        kind: MetricKind::Gauge,
        labels: &["stream", "shard"],
        help: "Age in seconds of the oldest stored chunk this shard has not folded yet; 0 when it is caught up.",
        buckets: &[],
    },
    MetricDef {
        name: DETECTOR_FOLDED_THROUGH,
        kind: MetricKind::Gauge,
        labels: &["stream", "shard"],
        help: "The last chunk index this shard folded; -1 before the first.",
        buckets: &[],
    },
    MetricDef {
        name: DETECTOR_WAITING_FOR,
        kind: MetricKind::Gauge,
        labels: &["stream", "shard"],
        help: "The chunk index this shard folds next (it waits for it when not committed).",
        buckets: &[],
    },
    MetricDef {
        name: DETECTOR_LAG,
        kind: MetricKind::Gauge,
        labels: &["stream", "shard"],
        help: "Chunks stored or committed but not yet folded by this shard.",
        buckets: &[],
    },
    MetricDef {
        name: QUEUE_DEPTH,
        kind: MetricKind::Gauge,
        labels: &["backend", "queue", "state"],
        help: "Messages in the main (queue=main) and dead-letter (queue=dead) queue, by state (ready, in_flight), polled.",
        buckets: &[],
    },
    MetricDef {
        name: DETECTIONS,
        kind: MetricKind::Counter,
        labels: &["pattern"],
        help: "Detections committed, by pattern.",
        buckets: &[],
    },
    MetricDef {
        name: OUTPUT_FILES,
        kind: MetricKind::Counter,
        labels: &[],
        help: "Output files written (each with its _SUCCESS marker).",
        buckets: &[],
    },
    MetricDef {
        name: ERRORS,
        kind: MetricKind::Counter,
        labels: &["kind"],
        help: "Errors by kind: queue, store, database, input, output.",
        buckets: &[],
    },
];

/// The definition of a metric by name.
pub fn find(name: &str) -> Option<&'static MetricDef> {
    CATALOGUE.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/operations.md's metrics table lists exactly the catalogue: names, types, labels and
    /// help text, in the same order.
    #[test]
    fn the_operations_guide_lists_exactly_the_catalogue() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operations.md");
        let text = std::fs::read_to_string(path).unwrap();
        let documented: Vec<(String, String, String, String)> = text
            .lines()
            .filter(|l| l.starts_with("| `txp_"))
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
                assert_eq!(cells.len(), 4, "a metrics row has 4 cells: {l}");
                (
                    cells[0].trim_matches('`').to_owned(),
                    cells[1].to_owned(),
                    cells[2].to_owned(),
                    cells[3].to_owned(),
                )
            })
            .collect();
        let expected: Vec<(String, String, String, String)> = CATALOGUE
            .iter()
            .map(|m| {
                let labels = if m.labels.is_empty() {
                    "—".to_owned()
                } else {
                    m.labels.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ")
                };
                (m.name.to_owned(), m.kind.as_str().to_owned(), labels, m.help.to_owned())
            })
            .collect();
        assert_eq!(documented, expected, "docs/operations.md's metrics table and the catalogue differ");
    }

    #[test]
    fn names_are_unique_prefixed_and_histograms_have_buckets() {
        let mut names: Vec<_> = CATALOGUE.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len(), "a metric is defined twice");
        for m in CATALOGUE {
            assert!(m.name.starts_with("txp_"), "{}", m.name);
            assert_eq!(m.kind == MetricKind::Counter, m.name.ends_with("_total"), "{}", m.name);
            assert_eq!(m.kind == MetricKind::Histogram, !m.buckets.is_empty(), "{}", m.name);
            assert!(m.buckets.windows(2).all(|w| w[0] < w[1]), "{}: buckets must increase", m.name);
            for label in m.labels {
                assert!(!["customer", "merchant", "message_id", "chunk"].contains(label), "{}", m.name);
            }
        }
    }
}
