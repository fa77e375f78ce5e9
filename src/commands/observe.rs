//! The metrics and health endpoint of a long-running command (`upload`, `consume`, `detect`,
//! `run`, `demo`): installs the recorder, serves `/metrics`, `/healthz` and `/readyz` at
//! `metrics.addr`, and polls the queue's depths into `txp_queue_depth`.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use txp_connectors::queue::Queue;
use txp_connectors::store::ObjectStore;
use txp_migration::MigratorTrait;
use txp_telemetry::endpoint::{self, Endpoint, EndpointError, ReadyCheck};
use txp_telemetry::events;

use crate::error::Error;
use crate::settings::{MetricsAddr, Settings, mask_secrets};

/// How often the queue's depths are polled for `txp_queue_depth`.
const DEPTH_POLL: Duration = Duration::from_secs(5);

/// What `/readyz` checks: the database (reachable, migrations applied), the queue (its depths
/// can be read) and the stores (reachable).
#[derive(Clone, Default)]
pub(super) struct Readiness {
    pub db: Option<DatabaseConnection>,
    pub queue: Option<Arc<dyn Queue>>,
    pub stores: Vec<Arc<dyn ObjectStore>>,
}

impl Readiness {
    async fn check(self) -> Result<(), String> {
        if let Some(db) = &self.db {
            db.ping().await.map_err(|e| format!("database: {}", mask_secrets(&e.to_string())))?;
            let pending = txp_migration::Migrator::get_pending_migrations(db)
                .await
                .map_err(|e| format!("database: {}", mask_secrets(&e.to_string())))?;
            if !pending.is_empty() {
                return Err(format!(
                    "database: {} migrations not applied (run `txp migrate`)",
                    pending.len()
                ));
            }
        }
        if let Some(queue) = &self.queue {
            queue.depth().await.map_err(|e| format!("queue: {}", mask_secrets(&e.to_string())))?;
        }
        for store in &self.stores {
            store.check().await.map_err(|e| format!("store: {}", mask_secrets(&e.to_string())))?;
        }
        Ok(())
    }
}

/// The running endpoint and queue poller; both stop when this is dropped.
#[derive(Debug)]
pub(super) struct Observed {
    _endpoint: Option<Endpoint>,
    poller: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Observed {
    fn drop(&mut self) {
        if let Some(poller) = &self.poller {
            poller.abort();
        }
    }
}

/// Starts the endpoint for `command` at `metrics.addr` (nothing when `off`). An address the
/// user chose that cannot be bound is an error; the default one (`auto`) already taken by
/// another txp process on this host is a warning, and the command runs without an endpoint.
pub(super) async fn start(
    settings: &Settings,
    command: &'static str,
    readiness: Readiness,
) -> Result<Observed, Error> {
    let addr = match settings.metrics_addr {
        MetricsAddr::Off => return Ok(Observed { _endpoint: None, poller: None }),
        MetricsAddr::Auto(addr) | MetricsAddr::Explicit(addr) => addr,
    };
    let handle = endpoint::install().map_err(|e| Error::usage(e.to_string()))?;
    events::process_started(command);
    if matches!(command, "consume" | "run" | "demo") {
        events::rows_registered();
    }
    let poller = readiness.queue.clone().map(|queue| {
        events::queue_opened(queue.backend());
        tokio::spawn(poll_depth(queue))
    });
    let check = readiness.clone();
    let ready: ReadyCheck = Arc::new(move || Box::pin(check.clone().check()));
    let endpoint = match endpoint::serve(addr, handle, ready).await {
        Ok(endpoint) => Some(endpoint),
        Err(EndpointError::Bind { error, .. })
            if matches!(settings.metrics_addr, MetricsAddr::Auto(_))
                && error.kind() == std::io::ErrorKind::AddrInUse =>
        {
            tracing::warn!(%addr, "the metrics port is taken (another txp process?): running without /metrics; set --metrics-addr HOST:PORT to serve them");
            None
        }
        Err(e) => {
            return Err(Error::usage(e.to_string())
                .hint("choose a free HOST:PORT with --metrics-addr (or TXP_METRICS_ADDR), or `off`"));
        }
    };
    Ok(Observed { _endpoint: endpoint, poller })
}

/// Polls the queue's depths until aborted; a failed poll is only logged (and counted).
async fn poll_depth(queue: Arc<dyn Queue>) {
    let mut tick = tokio::time::interval(DEPTH_POLL);
    loop {
        tick.tick().await;
        match queue.depth().await {
            Ok(depth) => events::queue_depth(queue.backend(), depth.ready, depth.in_flight, depth.dead),
            Err(e) => {
                events::error(events::ErrorKind::Queue);
                tracing::warn!(error = %mask_secrets(&e.to_string()), "cannot read the queue's depth");
            }
        }
    }
}
