//! The monitoring files under deploy/, checked offline: the Prometheus configuration and alert
//! rules with promtool (`check config`, `check rules`, and the unit tests of
//! deploy/prometheus/alerts.test.yml, which must also be able to fail), and the Grafana
//! dashboard: its data source, its queries, and that dashboard and alerts use only the metrics
//! of docs/operations.md's table (and telemetry's catalogue), plus Prometheus' `up`.
//!
//! promtool comes from Debian's prometheus package (`make tools` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support {
    pub mod dashboard;
}

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::dashboard::{dashboard, dashboard_exprs, panels, title};
use txp_telemetry::catalogue::{CATALOGUE, MetricKind};

const ALERTS: &str = "deploy/prometheus/alerts.yml";
const ALERT_TESTS: &str = "deploy/prometheus/alerts.test.yml";
const PROMETHEUS_CONFIG: &str = "deploy/prometheus/prometheus.yml";
const OPERATIONS: &str = "docs/operations.md";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// promtool from PATH (or /usr/bin, where Debian's package puts it).
fn promtool() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|dir| dir.join("promtool")).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path.into_iter().chain([PathBuf::from("/usr/bin/promtool")]).find(|p| p.is_file()).unwrap_or_else(
        || panic!("promtool is not on PATH: run make tools (it installs Debian's prometheus package)"),
    )
}

/// Runs promtool with `args` in `dir`.
fn run_promtool(dir: &Path, args: &[&str]) -> Output {
    Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run promtool {args:?}: {e}"))
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn assert_promtool_succeeds(args: &[&str]) -> String {
    let output = run_promtool(&root(), args);
    let text = text(&output);
    assert!(output.status.success(), "promtool {} failed:\n{text}", args.join(" "));
    text
}

// --- PromQL and the documents, read just enough ----------------------------------------------

const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];
/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"];

/// The metric names an expression selects: identifiers that are not functions, aggregations,
/// keywords, label names (in `{…}` or in `by (…)` lists) or strings, numbers and durations.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let skip_string = |mut i: usize| {
        let quote = chars[i];
        i += 1;
        while i < chars.len() && chars[i] != quote {
            if chars[i] == '\\' && quote != '`' {
                i += 1;
            }
            i += 1;
        }
        i + 1
    };
    // From an opening bracket to after its closing one, skipping strings.
    let skip_group = |mut i: usize, open: char, close: char| {
        let mut depth = 0;
        while i < chars.len() {
            match chars[i] {
                '"' | '\'' | '`' => {
                    i = skip_string(i);
                    continue;
                }
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        i
    };
    let next_non_space = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(i);
        } else if c == '{' {
            i = skip_group(i, '{', '}');
        } else if c == '[' {
            i = skip_group(i, '[', ']');
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            // A number or a duration (1e-3, 0x1f, 5m, 1h30m).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                let exponent = matches!(chars[i], 'e' | 'E') && matches!(chars.get(i + 1), Some('+' | '-'));
                i += if exponent { 2 } else { 1 };
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let lower = word.to_ascii_lowercase();
            let next = next_non_space(i);
            let next_char = chars.get(next).copied();
            if LABEL_LISTS.contains(&lower.as_str()) {
                if next_char == Some('(') {
                    i = skip_group(next, '(', ')');
                }
            } else if next_char == Some('(') || KEYWORDS.contains(&lower.as_str()) {
                // A function or an aggregation with its argument list next; or a keyword.
            } else if AGGREGATIONS.contains(&lower.as_str()) && {
                let after: String = chars[next..].iter().take_while(|c| is_ident(**c)).collect();
                ["by", "without"].contains(&after.to_ascii_lowercase().as_str())
            } {
                // `sum by (…) (…)`.
            } else {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The metric names of the table under `## Metrics` in docs/operations.md: rows that start with
/// `` | `txp_…` ``.
fn documented_metrics(markdown: &str) -> BTreeSet<String> {
    let mut in_section = false;
    let mut names = BTreeSet::new();
    for line in markdown.lines() {
        if line.starts_with("## ") {
            in_section = line.trim_end() == "## Metrics";
            continue;
        }
        if let Some(rest) = line.strip_prefix("| `txp_").filter(|_| in_section) {
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            names.insert(format!("txp_{name}"));
        }
    }
    names
}

/// GitHub's anchors of a Markdown document's headings (outside code blocks).
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut out = BTreeSet::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if in_code || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#').trim().to_lowercase();
        let slug: String = heading
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        out.insert(slug);
    }
    out
}

/// The names an expression may use: `up`, the documented metrics that telemetry's catalogue
/// defines, and the `_bucket`, `_sum` and `_count` series of its histograms.
fn unknown_metrics(expr: &str, documented: &BTreeSet<String>) -> Vec<String> {
    let known = |name: &str| {
        let defined = |n: &str| documented.contains(n) && CATALOGUE.iter().any(|m| m.name == n);
        name == "up"
            || defined(name)
            || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                name.strip_suffix(suffix).is_some_and(|base| {
                    defined(base)
                        && CATALOGUE.iter().any(|m| m.name == base && m.kind == MetricKind::Histogram)
                })
            })
    };
    metric_names(expr).into_iter().filter(|n| !known(n)).collect()
}

fn documented() -> BTreeSet<String> {
    let names = documented_metrics(&read(OPERATIONS));
    assert!(
        !names.is_empty(),
        "{OPERATIONS} has no metrics table: a `## Metrics` section with rows starting | `txp_…` |"
    );
    names
}

/// One rule of alerts.yml, read line by line (the file keeps to these shapes: `expr:` on one
/// line or as a folded block, the other fields on one line each).
#[derive(Debug, Default)]
struct Alert {
    name: String,
    expr: String,
    for_: String,
    severity: String,
    summary: bool,
    description: bool,
    runbook: String,
}

fn alerts(yaml: &str) -> Vec<Alert> {
    let lines: Vec<&str> = yaml.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out: Vec<Alert> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim();
        i += 1;
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            out.push(Alert { name: name.trim().to_owned(), ..Alert::default() });
            continue;
        }
        let Some(alert) = out.last_mut() else { continue };
        let value = |key: &str| trimmed.strip_prefix(key).map(|v| v.trim().trim_matches('"').to_owned());
        if let Some(v) = value("expr:") {
            if [">-", ">", "|", "|-"].contains(&v.as_str()) {
                let mut block = Vec::new();
                while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > indent(line)) {
                    block.push(lines[i].trim());
                    i += 1;
                }
                alert.expr = block.join(" ").trim().to_owned();
            } else {
                assert!(
                    !v.starts_with('\'') && !v.is_empty(),
                    "{}: write expr plain or as a block: {v}",
                    alert.name
                );
                alert.expr = v;
            }
        } else if let Some(v) = value("for:") {
            alert.for_ = v;
        } else if let Some(v) = value("severity:") {
            alert.severity = v;
        } else if let Some(v) = value("runbook:") {
            alert.runbook = v;
        } else if trimmed.starts_with("summary:") {
            alert.summary = true;
        } else if trimmed.starts_with("description:") {
            alert.description = true;
        }
    }
    out
}

// --- promtool -----------------------------------------------------------------------------------

#[test]
fn promtool_accepts_the_rules_and_the_config() {
    let rules = assert_promtool_succeeds(&["check", "rules", ALERTS]);
    let count = alerts(&read(ALERTS)).len();
    assert!(
        rules.contains(&format!("SUCCESS: {count} rules found")),
        "promtool read another number of rules than the {count} alerts:\n{rules}"
    );
    let config = assert_promtool_succeeds(&["check", "config", PROMETHEUS_CONFIG]);
    assert!(config.contains("SUCCESS: 1 rule files found"), "{config}");
}

#[test]
fn the_alert_unit_tests_pass() {
    let out = assert_promtool_succeeds(&["test", "rules", ALERT_TESTS]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// The unit tests can fail: a wrong expected label, and a rule whose `for` is shorter than the
/// one the tests hold it to, each make `promtool test rules` exit non-zero.
#[test]
fn the_alert_unit_tests_can_fail() {
    let dir = tempfile::tempdir().unwrap();
    let copy = |tests: &str, rules: &str| {
        std::fs::write(dir.path().join("alerts.test.yml"), tests).unwrap();
        std::fs::write(dir.path().join("alerts.yml"), rules).unwrap();
        let output = run_promtool(dir.path(), &["test", "rules", "alerts.test.yml"]);
        (output.status.success(), text(&output))
    };
    let (tests, rules) = (read(ALERT_TESTS), read(ALERTS));
    let (ok, out) = copy(&tests, &rules);
    assert!(ok, "the copies should pass as the originals do:\n{out}");

    let expected = "alertname: TxpDeadLetterQueueNotEmpty\n        exp_alerts:\n          - exp_labels:\n              severity: ticket";
    assert!(tests.contains(expected), "{ALERT_TESTS} changed: update this test's expected text");
    let (ok, out) = copy(&tests.replacen(expected, &expected.replace("ticket", "page"), 1), &rules);
    assert!(!ok && out.contains("FAILED"), "a wrong expected severity passed:\n{out}");

    assert!(rules.contains("for: 30s"), "{ALERTS} changed: update this test's rule text");
    let (ok, out) = copy(&tests, &rules.replacen("for: 30s", "for: 0s", 1));
    assert!(!ok && out.contains("FAILED"), "an alert firing before its `for` passed:\n{out}");
}

// --- the alert rules ----------------------------------------------------------------------------

#[test]
fn every_alert_is_documented_tested_and_uses_known_metrics() {
    let documented = documented();
    let anchors = anchors(&read(OPERATIONS));
    let tests = read(ALERT_TESTS);
    let rules = alerts(&read(ALERTS));
    let names: Vec<&str> = rules.iter().map(|a| a.name.as_str()).collect();
    for expected in [
        "TxpDeadLetterQueueNotEmpty",
        "TxpDetectorStalled",
        "TxpDetectorLagGrowing",
        "TxpErrorRate",
        "TxpNoConsumer",
    ] {
        assert!(names.contains(&expected), "{ALERTS} has no alert {expected}: {names:?}");
    }
    for alert in &rules {
        let name = &alert.name;
        assert!(name.starts_with("Txp"), "{name}");
        assert!(!alert.expr.is_empty(), "{name} has no expr");
        let unknown = unknown_metrics(&alert.expr, &documented);
        assert!(
            unknown.is_empty(),
            "{name} uses metrics that are not in {OPERATIONS}'s table: {unknown:?}\n{}",
            alert.expr
        );
        assert!(!metric_names(&alert.expr).is_empty(), "{name}: no metric found in {}", alert.expr);
        assert!(!alert.for_.is_empty(), "{name} has no `for`");
        assert!(
            ["page", "ticket"].contains(&alert.severity.as_str()),
            "{name}: severity {:?}",
            alert.severity
        );
        assert!(alert.summary && alert.description, "{name} needs a summary and a description");
        let anchor = alert
            .runbook
            .strip_prefix("docs/operations.md#")
            .unwrap_or_else(|| panic!("{name}: runbook {:?} is not docs/operations.md#…", alert.runbook));
        assert!(
            anchors.contains(anchor),
            "{name}: {OPERATIONS} has no heading #{anchor}; it has {anchors:?}"
        );

        // Tested both ways: some evaluation expects it firing, another expects nothing.
        let mut fires = false;
        let mut quiet = false;
        let lines: Vec<&str> = tests.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim() == format!("alertname: {name}") {
                match lines.get(i + 1).map(|l| l.trim()) {
                    Some("exp_alerts: []") => quiet = true,
                    Some("exp_alerts:") => fires = true,
                    other => panic!("{ALERT_TESTS}: alertname {name} followed by {other:?}"),
                }
            }
        }
        assert!(
            fires && quiet,
            "{ALERT_TESTS} must expect {name} both firing and not (fires: {fires}, quiet: {quiet})"
        );
    }
}

// --- the dashboard ------------------------------------------------------------------------------

#[test]
fn the_dashboard_selects_prometheus_through_its_variable() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "txp-overview");
    let variables = dashboard["templating"]["list"].as_array().expect("templating.list");
    assert!(
        variables
            .iter()
            .any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"),
        "no ${{datasource}} variable of type datasource for Prometheus: {variables:?}"
    );
    let mut ids = BTreeSet::new();
    for panel in panels(&dashboard) {
        let title = title(panel);
        assert!(ids.insert(panel["id"].as_u64().expect("panel id")), "two panels with id {}", panel["id"]);
        assert!(panel["gridPos"].is_object(), "{title}: no gridPos");
        if panel["type"] == "row" {
            continue;
        }
        assert!(!title.is_empty(), "a panel has no title: {panel}");
        assert!(
            ["timeseries", "stat"].contains(&panel["type"].as_str().unwrap_or_default()),
            "{title}: type {}",
            panel["type"]
        );
        let prometheus = |ds: &Value| ds["type"] == "prometheus" && ds["uid"] == "${datasource}";
        assert!(prometheus(&panel["datasource"]), "{title}: datasource {}", panel["datasource"]);
        let targets = panel["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
        assert!(!targets.is_empty(), "{title} has no query");
        for target in targets {
            assert!(target["datasource"].is_null() || prometheus(&target["datasource"]), "{title}: {target}");
            assert!(
                target["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                "{title}: a query without expr"
            );
        }
    }
}

#[test]
fn the_dashboard_queries_run_verbatim_on_known_metrics() {
    let documented = documented();
    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 20, "only {} queries", exprs.len());
    let mut shown = BTreeSet::new();
    for (title, expr) in &exprs {
        assert!(!expr.contains('$'), "{title}: a Grafana variable in {expr} (the queries must run verbatim)");
        let mut rest = expr.as_str();
        while let Some(at) = rest.find('[') {
            let window = &rest[at..rest[at..].find(']').map_or(rest.len(), |end| at + end + 1)];
            assert_eq!(window, "[1m]", "{title}: windows are [1m] (data after a minute's run): {expr}");
            rest = &rest[at + 1..];
        }
        assert!(
            !expr.contains("> 0") && !expr.contains("!= 0"),
            "{title}: {expr} would be empty in a healthy run"
        );
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{title}: no metric found in {expr}");
        let unknown = unknown_metrics(expr, &documented);
        assert!(unknown.is_empty(), "{title}: metrics not in {OPERATIONS}'s table: {unknown:?} in {expr}");
        for name in names {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|b| documented.contains(*b));
            shown.insert(base.map_or(name.clone(), str::to_owned));
        }
    }
    let missing: Vec<&str> = CATALOGUE.iter().map(|m| m.name).filter(|n| !shown.contains(*n)).collect();
    assert!(missing.is_empty(), "metrics the dashboard does not show: {missing:?}");
}

// --- the readers themselves ---------------------------------------------------------------------

#[test]
fn the_promql_reader_finds_metric_names_only() {
    let cases: &[(&str, &[&str])] = &[
        (
            "histogram_quantile(0.95, sum by (le, stage) (rate(txp_chunk_stage_seconds_bucket[1m])))",
            &["txp_chunk_stage_seconds_bucket"],
        ),
        (
            r#"sum by (backend) (max by (backend, state) (txp_queue_depth{queue="main", state=~"ready|in_flight"}))"#,
            &["txp_queue_depth"],
        ),
        (
            r#"(max by (backend) (txp_queue_depth{queue="main"}) > 0) and on () absent(txp_build_info{command=~"consume|run"})"#,
            &["txp_queue_depth", "txp_build_info"],
        ),
        (
            "a > 1e-3 and changes(b[5m] offset 1h30m) == 0 unless ignoring (x) group_left (y) c",
            &["a", "b", "c"],
        ),
        ("sum without (instance) (x) / on (job) group_right y", &["x", "y"]),
        (r#"count_values("v", up{job="a(b)"}) or vector(0) + Inf"#, &["up"]),
        ("sum(process_cpu_seconds_total)", &["process_cpu_seconds_total"]),
    ];
    for (expr, expected) in cases {
        assert_eq!(metric_names(expr), *expected, "{expr}");
    }
}

#[test]
fn the_table_reader_takes_the_metrics_section_only() {
    let doc = "# Ops\n\n## Metrics\n\n| metric | type |\n|---|---|\n| `txp_a_total` | counter |\n| `txp_b_seconds{stage}` | histogram |\n\n### Labels\n\n| `txp_c` | gauge |\n\n## Logs\n\n| `txp_d` | no |\n";
    let names: Vec<String> = documented_metrics(doc).into_iter().collect();
    assert_eq!(names, ["txp_a_total", "txp_b_seconds", "txp_c"]);
    let anchors =
        anchors("# Operations\n## The pipeline's processes\n```\n# not a heading\n```\n## `txp verify`\n");
    assert_eq!(
        anchors.into_iter().collect::<Vec<_>>(),
        ["operations", "the-pipelines-processes", "txp-verify"]
    );
}
