//! The Grafana dashboard (deploy/grafana/dashboards/txp.json) as the tests read it: its panels
//! and the PromQL of their queries. Use it with `mod support { pub mod dashboard; }`.
//! tests/alerts.rs checks the dashboard offline; an end-to-end test can run every expression of
//! [`dashboard_exprs`] verbatim through Prometheus' HTTP API (they hold no Grafana variable and
//! use literal `[1m]` windows).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use serde_json::Value;

/// The dashboard's path in the repository.
pub fn dashboard_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/dashboards/txp.json")
}

/// The dashboard, parsed.
pub fn dashboard() -> Value {
    let path = dashboard_path();
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every panel of the dashboard, in order, rows included, with the panels of collapsed rows
/// (nested under the row's `panels`) after their row.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().map(Vec::as_slice).unwrap_or_default() {
        out.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            out.extend(nested.iter());
        }
    }
    out
}

/// The panel's title (empty when it has none).
pub fn title(panel: &Value) -> String {
    panel["title"].as_str().unwrap_or_default().to_owned()
}

/// Every query of every panel: (panel title, PromQL expression), in the dashboard's order.
pub fn dashboard_exprs() -> Vec<(String, String)> {
    let dashboard = dashboard();
    let mut out = Vec::new();
    for panel in panels(&dashboard) {
        for target in panel["targets"].as_array().map(Vec::as_slice).unwrap_or_default() {
            if let Some(expr) = target["expr"].as_str() {
                out.push((title(panel), expr.to_owned()));
            }
        }
    }
    out
}
