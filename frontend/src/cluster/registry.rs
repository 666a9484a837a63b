//! This node's entry in the node registry (see `strata_metadata::NodeRecord`):
//! joined once the node listens, kept alive by a heartbeat that also reports
//! its upload lag, marked `Left` by a graceful stop that uploaded the whole
//! WAL. A heartbeat that finds the record changed underneath (adopted by a
//! survivor, declared lost by an operator) shuts the write fence and stops
//! the node, saying why.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use strata_common::Clock;
use strata_common::task::AbortOnDrop;
use strata_engine::Engine;
use strata_metadata::{Catalog, NodeRecord, NodeState};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::handed_over;
use crate::config::Config;
use crate::server::ServerError;
use crate::serving::{FencedBy, LeaseFence};

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
    /// Open while heartbeats succeed (the write fence in cluster mode).
    fence: Arc<LeaseFence>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Option<NodeRecord>>,
    /// Why the record was taken from this node, once it was.
    taken: watch::Receiver<Option<String>>,
    node: String,
    clock: Arc<dyn Clock>,
    engine: Arc<OnceLock<Arc<Engine>>>,
    /// This node's data directory and its identity, for the hand-over mark.
    data_dir: PathBuf,
    identity: String,
}

impl NodeKeeper {
    /// Registers this node and starts heartbeating every fifth of
    /// `serving.lease_ttl_ms`, reporting the upload lag of the engine once
    /// it is in `engine`.
    pub async fn join(
        catalog: Catalog,
        config: &Config,
        clock: Arc<dyn Clock>,
        identity: &str,
        advertised: Advertised,
        engine: Arc<OnceLock<Arc<Engine>>>,
    ) -> Result<Self, ServerError> {
        let ttl_ms = config.serving.lease_ttl_ms;
        let fence = Arc::new(LeaseFence::new(clock.clone(), FencedBy::NodeRecord));
        let started = clock.monotonic();
        let draft = NodeRecord {
            node: config.node_id.clone(),
            identity: identity.to_string(),
            data_dir: crate::serving::data_dir_path(config),
            grpc_addr: advertised.grpc,
            http_addr: advertised.http,
            started_ms: 0,
            expires_ms: 0,
            upload_lag_bytes: 0,
            state: NodeState::Live,
        };
        // Only cluster mode prunes records; elsewhere a record that is
        // missing was lost with its store, and the mark must not stand in.
        let handed_over = match config.serving.cluster {
            true => handed_over::read(config.data_dir.clone(), &config.node_id, identity)
                .await
                .map_err(ServerError::Serving)?,
            false => None,
        };
        let record = catalog
            .join_cluster_handed_over(draft, clock.now_ms(), ttl_ms as i64, handed_over)
            .await
            .map_err(|e| ServerError::Serving(e.to_string()))?;
        fence.renewed(started, ttl_ms);
        tracing::info!(node = %record.node, grpc = %record.grpc_addr, http = %record.http_addr, "joined the node registry");
        let node = record.node.clone();
        let (stop, stopped) = watch::channel(false);
        let (took, taken) = watch::channel(None);
        let task = tokio::spawn(heartbeat(
            Heartbeat {
                catalog: catalog.clone(),
                engine: engine.clone(),
                clock: clock.clone(),
                ttl_ms,
                fence: fence.clone(),
                took,
            },
            record,
            stopped,
        ));
        Ok(Self {
            catalog,
            fence,
            stop,
            task,
            taken,
            node,
            clock,
            engine,
            data_dir: config.data_dir.clone(),
            identity: identity.to_string(),
        })
    }

    /// Says why, once another node took this node's record (adopted its
    /// WAL, or an operator declared it lost): the node can never commit
    /// again and should stop.
    pub fn taken(&self) -> watch::Receiver<Option<String>> {
        self.taken.clone()
    }

    /// The fence that shuts when heartbeats lapse or the record is taken.
    pub fn fence(&self) -> Arc<LeaseFence> {
        self.fence.clone()
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Stops heartbeating; with `uploaded_all` marks the node `Left` (its
    /// tenants may move at once), else leaves the record to expire so that
    /// its WAL gets adopted or the node restarted.
    pub async fn leave(self, uploaded_all: bool) {
        self.stop.send_replace(true);
        let task = AbortOnDrop(self.task);
        if !uploaded_all {
            // Nothing to write: a heartbeat under way (it may be waiting on
            // an unreachable store) is abandoned, not waited for.
            return;
        }
        let Ok(Some(record)) = task.await else {
            return;
        };
        // The mark first: a record marked left may be pruned, and the
        // directory must then know its WAL is uploaded without it.
        let Some(checkpoint) = self.engine.get().map(|e| e.wal_checkpoint()) else {
            return;
        };
        if let Err(e) = handed_over::write(
            self.data_dir.clone(),
            &self.node,
            &self.identity,
            checkpoint,
        )
        .await
        {
            tracing::warn!(error = %e, "cannot mark the WAL handed over; leaving the record to expire, for a restart or an adoption");
            return;
        }
        let left = NodeRecord {
            state: NodeState::Left {
                at_ms: self.clock.now_ms(),
            },
            ..record.clone()
        };
        match self.catalog.update_node(&record, left).await {
            Ok(Some(_)) => tracing::info!("left the node registry"),
            Ok(None) => tracing::warn!("the node record changed underneath; not marked left"),
            Err(e) => tracing::warn!(error = %e, "marking this node left failed"),
        }
    }
}

/// Why `node`'s record, read back as `current`, is no longer this node's.
fn taken_reason(node: &str, current: Option<&NodeRecord>) -> String {
    match current.map(|c| &c.state) {
        Some(NodeState::Lost { by, .. }) => format!(
            "{by} declared node {node} lost while it was unreachable: this id may never serve \
             again, and this data directory's WAL must not be served again either. To add this \
             machine back, start it with an empty data directory and a new node_id"
        ),
        Some(NodeState::Adopted { by, .. }) => format!(
            "node {by} adopted node {node}'s WAL while its heartbeats lapsed; start it again to \
             rejoin"
        ),
        Some(NodeState::Left { .. }) => {
            format!("node {node}'s registry record was marked left by another process")
        }
        Some(NodeState::Live) => format!(
            "node {node}'s registry record now belongs to another start of it (its data \
             directory started again elsewhere?)"
        ),
        None => format!("node {node}'s registry record was removed"),
    }
}

/// What the heartbeat task works with.
struct Heartbeat {
    catalog: Catalog,
    engine: Arc<OnceLock<Arc<Engine>>>,
    clock: Arc<dyn Clock>,
    ttl_ms: u64,
    fence: Arc<LeaseFence>,
    /// Set with the reason when the record is taken away.
    took: watch::Sender<Option<String>>,
}

/// Pushes the record's expiry forward (with the current upload lag) until
/// `stopped`; returns the record last held, `None` once it was taken away.
async fn heartbeat(
    beat: Heartbeat,
    mut record: NodeRecord,
    mut stopped: watch::Receiver<bool>,
) -> Option<NodeRecord> {
    let Heartbeat {
        catalog,
        engine,
        clock,
        ttl_ms,
        fence,
        took,
    } = beat;
    let every = Duration::from_millis(ttl_ms / 5);
    loop {
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return Some(record),
            _ = clock.sleep(every) => {}
        }
        let started = clock.monotonic();
        let next = NodeRecord {
            expires_ms: clock.now_ms().saturating_add(ttl_ms as i64),
            upload_lag_bytes: engine.get().map_or(0, |e| e.upload_lag_bytes()),
            ..record.clone()
        };
        match catalog.update_node(&record, next).await {
            Ok(Some(next)) => {
                record = next;
                fence.renewed(started, ttl_ms);
            }
            Ok(None) => {
                // A heartbeat whose commit landed but whose answer was lost
                // finds its own write on the retry: that is not an adoption.
                // Only a record read back and found another's stops the
                // node; a failed read is retried at the next beat.
                let current = match catalog.cluster_node(&record.node).await {
                    Ok(current) => current,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading this node's registry record failed; retrying");
                        continue;
                    }
                };
                if let Some(current) = &current
                    && current.identity == record.identity
                    && !current.is_gone()
                    && current.started_ms == record.started_ms
                {
                    record = current.clone();
                    continue;
                }
                fence.close();
                let why = taken_reason(&record.node, current.as_ref());
                tracing::error!(reason = %why, "this node's registry record was taken: it stops");
                took.send_replace(Some(why));
                return None;
            }
            Err(e) => tracing::warn!(error = %e, "node heartbeat failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use strata_common::SystemClock;
    use strata_metadata::{CommitHook, HookedStore, MemoryStore, MetaError, MetaStore, Txn};

    use super::*;

    /// Once `stalled` is set, commits never answer (etcd without quorum),
    /// and each one that tried is counted.
    #[derive(Debug, Default)]
    struct Stall {
        stalled: AtomicBool,
        waiting: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl CommitHook for Stall {
        async fn before_commit(&self, _: &Arc<dyn MetaStore>, _: &Txn) -> Result<(), MetaError> {
            if self.stalled.load(Ordering::SeqCst) {
                self.waiting.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
            }
            Ok(())
        }
    }

    // Real time: the heartbeat runs on its own task, and the test bounds
    // how long the leave may block (forever, without the fix).
    #[allow(clippy::disallowed_methods)]
    #[tokio::test]
    async fn leaving_with_the_wal_not_uploaded_does_not_wait_for_a_heartbeat_stuck_in_the_store() {
        let store = HookedStore::new(MemoryStore::new(), Stall::default());
        let mut config = Config {
            node_id: "n1".into(),
            ..Config::default()
        };
        config.serving.lease_ttl_ms = 100;
        let keeper = NodeKeeper::join(
            Catalog::new(store.clone()),
            &config,
            Arc::new(SystemClock),
            "id-1",
            Advertised {
                grpc: "127.0.0.1:1".into(),
                http: "127.0.0.1:2".into(),
            },
            Arc::default(),
        )
        .await
        .unwrap();
        store.hook().stalled.store(true, Ordering::SeqCst);
        for _ in 0..500 {
            if store.hook().waiting.load(Ordering::SeqCst) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(store.hook().waiting.load(Ordering::SeqCst), 1);
        tokio::time::timeout(Duration::from_secs(10), keeper.leave(false))
            .await
            .expect("the leave waited for the stuck heartbeat");
        // The heartbeat task is gone: no heartbeat after the leave.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(store.hook().waiting.load(Ordering::SeqCst), 1);
        assert_eq!(
            Arc::strong_count(&store),
            1,
            "the heartbeat task still holds the store"
        );
    }
}
