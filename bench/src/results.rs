//! A benchmark's results: its figures, each target with PASS or MISS, and what it ran on
//! (versions, CPUs, load, revision, date). Printed as a table, written to
//! `bench/results/<name>.json`, and gathered into docs/performance.md's table of targets.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One target and how the run did against it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    /// What is measured, e.g. "catch-up rows/s (txp run, 2 workers, 1 shard)".
    pub what: String,
    /// The target, as written in the issue, e.g. "≥ 300,000 rows/s".
    pub target: String,
    /// The figure, e.g. "412,000 rows/s (1.44 s)".
    pub measured: String,
    pub pass: bool,
}

/// What a run ran on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    pub date: String,
    pub git_revision: String,
    pub cpus: usize,
    /// /proc/loadavg's 1, 5 and 15 minute figures, as text, at the start and at the end.
    pub load_average_start: String,
    pub load_average_end: String,
    pub versions: Vec<(String, String)>,
}

/// Everything one benchmark writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub benchmark: String,
    pub took_s: u64,
    pub settings: serde_json::Value,
    pub figures: serde_json::Value,
    pub checks: Vec<Check>,
    pub environment: Environment,
}

/// The workspace root (this crate is one level down).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The load average now.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Versions of the services, the toolchain and the crates that do the I/O.
pub fn environment(txp: &Path, postgres_version: String, load_average_start: String) -> Environment {
    let root = workspace();
    let mut versions = vec![
        ("txp".to_owned(), output_of(&txp.display().to_string(), &["--version"]).unwrap_or_default()),
        ("rustc".to_owned(), output_of("rustc", &["--version"]).unwrap_or_default()),
        ("postgresql".to_owned(), postgres_version),
        (
            "rabbitmq".to_owned(),
            output_of("rabbitmqctl", &["version"]).unwrap_or_else(|| "unknown".to_owned()),
        ),
        (
            "seaweedfs".to_owned(),
            output_of(&root.join(".tools/venv/bin/weed").display().to_string(), &["version"])
                .and_then(|v| v.lines().next().map(str::to_owned))
                .unwrap_or_else(|| "unknown".to_owned()),
        ),
    ];
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    for name in ["sea-orm", "sqlx", "lapin", "aws-sdk-s3", "aws-sdk-sqs", "tokio", "csv"] {
        let needle = format!("name = \"{name}\"\nversion = \"");
        if let Some(at) = lock.find(&needle) {
            let rest = &lock[at + needle.len()..];
            versions.push((name.to_owned(), rest.split('"').next().unwrap_or_default().to_owned()));
        }
    }
    let dirty = output_of(
        "git",
        &["-C", &root.display().to_string(), "status", "--porcelain", "--untracked-files=no"],
    )
    .is_some_and(|s| !s.is_empty());
    let revision = output_of("git", &["-C", &root.display().to_string(), "rev-parse", "--short", "HEAD"])
        .unwrap_or_else(|| "unknown".to_owned());
    Environment {
        date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        git_revision: if dirty { format!("{revision}+changes") } else { revision },
        cpus: std::thread::available_parallelism().map_or(0, usize::from),
        load_average_start,
        load_average_end: load_average(),
        versions,
    }
}

impl Results {
    /// A benchmark's results, started at `started`.
    pub fn new(
        benchmark: &str,
        started: std::time::Instant,
        (settings, checks, figures): (serde_json::Value, Vec<Check>, serde_json::Value),
        environment: Environment,
    ) -> Self {
        Results {
            benchmark: benchmark.to_owned(),
            took_s: started.elapsed().as_secs(),
            settings,
            figures,
            checks,
            environment,
        }
    }

    /// Prints the checks as a table.
    pub fn print(&self) {
        println!();
        println!("{} ({} s)", self.benchmark, self.took_s);
        let width = self.checks.iter().map(|c| c.what.chars().count()).max().unwrap_or(0);
        let target_width = self.checks.iter().map(|c| c.target.chars().count()).max().unwrap_or(0);
        for c in &self.checks {
            println!(
                "  {:<width$}  {:<target_width$}  {:<4}  {}",
                c.what,
                c.target,
                if c.pass { "PASS" } else { "MISS" },
                c.measured
            );
        }
    }

    /// Writes `DIR/<benchmark>.json`.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.json", self.benchmark));
        std::fs::write(&path, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

const BEGIN: &str = "<!-- bench:targets:begin (written by txp-bench from bench/results/*.json) -->";
const END: &str = "<!-- bench:targets:end -->";

/// Rewrites the table of targets in `doc` (between its markers) from every result in `dir`.
pub fn update_doc(dir: &Path, doc: &Path) -> Result<()> {
    let mut results: Vec<Results> = Vec::new();
    for name in ["catch-up", "live", "growth"] {
        let path = dir.join(format!("{name}.json"));
        if let Ok(text) = std::fs::read_to_string(&path) {
            results.push(
                serde_json::from_str(&text).with_context(|| format!("{} is not a result", path.display()))?,
            );
        }
    }
    let mut table = String::from("| benchmark | what | target | latest | result |\n|---|---|---|---|---|\n");
    for r in &results {
        for c in &r.checks {
            table.push_str(&format!(
                "| {} | {} | {} | {} | **{}** |\n",
                r.benchmark,
                c.what,
                c.target,
                c.measured,
                if c.pass { "PASS" } else { "MISS" }
            ));
        }
    }
    for r in &results {
        table.push_str(&format!(
            "\n`{}`: {} at revision {}, {} s, {} CPUs, load average {} → {}.",
            r.benchmark,
            r.environment.date,
            r.environment.git_revision,
            r.took_s,
            r.environment.cpus,
            r.environment.load_average_start,
            r.environment.load_average_end
        ));
    }
    let text = std::fs::read_to_string(doc).with_context(|| format!("cannot read {}", doc.display()))?;
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        anyhow::bail!("{} has no {BEGIN} … {END} block", doc.display());
    };
    let updated = format!("{}{BEGIN}\n{table}\n{}", &text[..begin], &text[end..]);
    std::fs::write(doc, updated)?;
    Ok(())
}

/// `n` with thousands separators.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds as seconds with two decimals, e.g. 1234 → "1.23 s" (integer arithmetic).
pub fn seconds(ms: u64) -> String {
    format!("{}.{:02} s", ms / 1000, (ms % 1000) / 10)
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{}.{} MiB", kib / 1024, (kib % 1024) * 10 / 1024)
}

/// `a / b` as a ratio with two decimals (integer arithmetic).
pub fn ratio(a: u64, b: u64) -> String {
    if b == 0 {
        return "n/a".to_owned();
    }
    let hundredths = (u128::from(a) * 100 + u128::from(b) / 2) / u128::from(b);
    format!("{}.{:02}×", hundredths / 100, hundredths % 100)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_written_with_integer_arithmetic() {
        assert_eq!(thousands(594_643), "594,643");
        assert_eq!(thousands(999), "999");
        assert_eq!(seconds(2_709), "2.70 s");
        assert_eq!(mib(64 * 1024 + 512), "64.5 MiB");
        assert_eq!(ratio(271, 88), "3.08×");
        assert_eq!(ratio(1, 0), "n/a");
    }

    #[test]
    fn the_doc_table_is_rewritten_between_its_markers_only() {
        let dir = tempfile::tempdir().unwrap();
        let results = Results {
            benchmark: "live".to_owned(),
            took_s: 61,
            settings: serde_json::json!({}),
            figures: serde_json::json!({}),
            checks: vec![Check {
                what: "p50".into(),
                target: "≤ 50 ms".into(),
                measured: "41 ms".into(),
                pass: true,
            }],
            environment: Environment {
                date: "2026-12-01T00:00:00Z".into(),
                git_revision: "abc1234".into(),
                cpus: 2,
                load_average_start: "0.1 0.2 0.3".into(),
                load_average_end: "1.0 0.5 0.4".into(),
                versions: Vec::new(),
            },
        };
        results.write(dir.path()).unwrap();
        let doc = dir.path().join("performance.md");
        std::fs::write(&doc, format!("# Before\n\n{BEGIN}\nold table\n{END}\n\n## After\n")).unwrap();
        update_doc(dir.path(), &doc).unwrap();
        let text = std::fs::read_to_string(&doc).unwrap();
        assert!(text.starts_with("# Before\n\n"));
        assert!(text.ends_with(&format!("{END}\n\n## After\n")));
        assert!(!text.contains("old table"));
        assert!(text.contains("| live | p50 | ≤ 50 ms | 41 ms | **PASS** |"), "{text}");
        assert!(text.contains("abc1234"));
        std::fs::write(&doc, "no markers").unwrap();
        assert!(update_doc(dir.path(), &doc).is_err());
    }
}
