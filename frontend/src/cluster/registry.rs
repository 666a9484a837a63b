//! This node's entry in the node registry (see `strata_metadata::NodeRecord`):
//! joined once the node listens, kept alive by a heartbeat that also reports
//! its upload lag, marked `Left` by a graceful stop that uploaded the whole
//! WAL. A heartbeat that finds the record changed underneath (adopted by a
//! survivor) stops heartbeating and says so.

use std::sync::Arc;
use std::time::Duration;

use strata_common::Clock;
use strata_engine::Engine;
use strata_metadata::{Catalog, NodeRecord, NodeState};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::server::ServerError;

/// Where this node can be reached, as registered.
#[derive(Debug, Clone)]
pub struct Advertised {
    pub grpc: String,
    pub http: String,
}

/// The registered record and the task heartbeating it.
#[derive(Debug)]
pub struct NodeKeeper {
    catalog: Catalog,
    stop: watch::Sender<bool>,
    task: JoinHandle<Option<NodeRecord>>,
}

impl NodeKeeper {
    /// Registers this node and starts heartbeating every fifth of `ttl_ms`.
    pub async fn join(
        catalog: Catalog,
        engine: Arc<Engine>,
        identity: &str,
        data_dir: &str,
        advertised: Advertised,
        ttl_ms: u64,
    ) -> Result<Self, ServerError> {
        let clock = engine.clock().clone();
        let draft = NodeRecord {
            node: engine.config().node_id.clone(),
            identity: identity.to_string(),
            data_dir: data_dir.to_string(),
            grpc_addr: advertised.grpc,
            http_addr: advertised.http,
            started_ms: 0,
            expires_ms: 0,
            upload_lag_bytes: engine.upload_lag_bytes(),
            state: NodeState::Live,
        };
        let record = catalog
            .join_cluster(draft, clock.now_ms(), ttl_ms as i64)
            .await
            .map_err(|e| ServerError::Serving(e.to_string()))?;
        tracing::info!(node = %record.node, grpc = %record.grpc_addr, http = %record.http_addr, "joined the node registry");
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(heartbeat(
            catalog.clone(),
            engine,
            clock,
            ttl_ms,
            record,
            stopped,
        ));
        Ok(Self {
            catalog,
            stop,
            task,
        })
    }

    /// Stops heartbeating; with `uploaded_all` marks the node `Left` (its
    /// tenants may move at once), else leaves the record to expire so that
    /// its WAL gets adopted or the node restarted.
    pub async fn leave(self, uploaded_all: bool) {
        self.stop.send_replace(true);
        let Ok(Some(record)) = self.task.await else {
            return;
        };
        if !uploaded_all {
            return;
        }
        let left = NodeRecord {
            state: NodeState::Left,
            ..record.clone()
        };
        match self.catalog.update_node(&record, left).await {
            Ok(Some(_)) => tracing::info!("left the node registry"),
            Ok(None) => tracing::warn!("the node record changed underneath; not marked left"),
            Err(e) => tracing::warn!(error = %e, "marking this node left failed"),
        }
    }
}

/// Pushes the record's expiry forward (with the current upload lag) until
/// `stopped`; returns the record last held, `None` once it was taken away.
async fn heartbeat(
    catalog: Catalog,
    engine: Arc<Engine>,
    clock: Arc<dyn Clock>,
    ttl_ms: u64,
    mut record: NodeRecord,
    mut stopped: watch::Receiver<bool>,
) -> Option<NodeRecord> {
    let every = Duration::from_millis(ttl_ms / 5);
    loop {
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return Some(record),
            _ = clock.sleep(every) => {}
        }
        let next = NodeRecord {
            expires_ms: clock.now_ms().saturating_add(ttl_ms as i64),
            upload_lag_bytes: engine.upload_lag_bytes(),
            ..record.clone()
        };
        match catalog.update_node(&record, next).await {
            Ok(Some(next)) => record = next,
            Ok(None) => {
                tracing::error!(
                    "this node's registry record was changed by another node (adopted): heartbeats stop; stop this node"
                );
                return None;
            }
            Err(e) => tracing::warn!(error = %e, "node heartbeat failed; retrying"),
        }
    }
}
