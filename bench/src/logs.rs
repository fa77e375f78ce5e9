//! The per-chunk events the benchmarks read from a process's JSON log: a consumer's "chunk
//! committed" (its stage times) and a detector's "chunk folded" (its stage times and the
//! wall-clock time its detections were committed).

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// A consumer's work on one chunk, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Consumed {
    pub chunk: u64,
    pub fetch_us: u64,
    pub parse_us: u64,
    pub commit_us: u64,
}

/// A detector's work on one chunk, in microseconds, and when its detections were committed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Folded {
    pub chunk: u64,
    pub committed_at_ms: i64,
    pub load_us: u64,
    pub evaluate_us: u64,
    pub record_us: u64,
    pub output_us: u64,
    pub persist_us: u64,
}

impl Consumed {
    pub fn total_us(&self) -> u64 {
        self.fetch_us + self.parse_us + self.commit_us
    }
}

impl Folded {
    pub fn total_us(&self) -> u64 {
        self.load_us + self.evaluate_us + self.record_us + self.output_us + self.persist_us
    }
}

/// The `fields` of every log line whose message is `message`.
fn events(path: &Path, message: &str) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|mut v| v.get_mut("fields").map(Value::take))
        .filter(|fields| fields.get("message").and_then(Value::as_str) == Some(message))
        .collect())
}

fn number(fields: &Value, name: &str) -> u64 {
    fields.get(name).and_then(Value::as_u64).unwrap_or(0)
}

/// Every chunk a consumer committed, as logged in `paths`, sorted by chunk.
pub fn consumed(paths: &[&Path]) -> Result<Vec<Consumed>> {
    let mut all = Vec::new();
    for path in paths {
        for f in events(path, "chunk committed")? {
            all.push(Consumed {
                chunk: number(&f, "chunk"),
                fetch_us: number(&f, "fetch_us"),
                parse_us: number(&f, "parse_us"),
                commit_us: number(&f, "commit_us"),
            });
        }
    }
    all.sort_by_key(|c| c.chunk);
    Ok(all)
}

/// Every chunk a detector folded, as logged in `path`, sorted by chunk.
pub fn folded(path: &Path) -> Result<Vec<Folded>> {
    let mut all: Vec<Folded> = events(path, "chunk folded")?
        .iter()
        .map(|f| Folded {
            chunk: number(f, "chunk"),
            committed_at_ms: f.get("committed_at_ms").and_then(Value::as_i64).unwrap_or(0),
            load_us: number(f, "load_us"),
            evaluate_us: number(f, "evaluate_us"),
            record_us: number(f, "record_us"),
            output_us: number(f, "output_us"),
            persist_us: number(f, "persist_us"),
        })
        .collect();
    all.sort_by_key(|c| c.chunk);
    Ok(all)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn per_chunk_events_are_read_from_json_logs_and_other_lines_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("run.log");
        std::fs::write(
            &log,
            concat!(
                "not json\n",
                r#"{"timestamp":"t","level":"INFO","fields":{"message":"chunk committed","stream":"s","chunk":1,"fetch_us":5,"parse_us":6,"commit_us":7},"target":"txp_consumer::consume"}"#,
                "\n",
                r#"{"timestamp":"t","level":"INFO","fields":{"message":"chunk committed","stream":"s","chunk":0,"fetch_us":1,"parse_us":2,"commit_us":3},"target":"txp_consumer::consume"}"#,
                "\n",
                r#"{"timestamp":"t","level":"DEBUG","fields":{"message":"chunk folded","chunk":0,"committed_at_ms":1700000000123,"load_us":10,"evaluate_us":20,"record_us":30,"output_us":40,"persist_us":50},"target":"txp_consumer::detect"}"#,
                "\n",
                r#"{"timestamp":"t","level":"INFO","fields":{"message":"waiting for chunk","chunk":1},"target":"txp_consumer::detect"}"#,
                "\n"
            ),
        )
        .unwrap();
        let consumed = consumed(&[&log]).unwrap();
        assert_eq!(consumed.iter().map(|c| c.chunk).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(consumed[1].total_us(), 18);
        let folded = folded(&log).unwrap();
        assert_eq!(folded.len(), 1);
        assert_eq!(folded[0].committed_at_ms, 1_700_000_000_123);
        assert_eq!(folded[0].total_us(), 150);
    }
}
