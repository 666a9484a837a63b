//! `strata compactor`: the compactor as its own process, for nodes that run
//! with `compactor.mode = "separate"`. It reads each node's WAL volume up to
//! the durable mark the node publishes, uploads and maintains exactly as
//! the in-process compactor would, and commits to the shared metadata store
//! (etcd), where the node picks the results up.
//!
//! Why run it apart: compaction (compression, object PUTs, merges) then
//! gets its own CPU and memory budget and restarts, and never competes with
//! the node's producers. Why not: one more process to run, and the node sees
//! uploads a polling interval later. The default is in-process.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use strata_common::usage::Meter;
use strata_common::{Clock, SystemClock};
use strata_compactor::{Compactor, CompactorConfig, TieredLog, VolumeLog};
use strata_metadata::Catalog;
use strata_objects::Objects;
use strata_tenancy::UsageLedger;
use strata_tiering::wal::WalVolume;
use tokio::sync::watch;

use strata_engine::EngineConfig;

use crate::config::Config;
use crate::server::ServerError;

/// One node's WAL volume: the node's id and its data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub node_id: String,
    pub data_dir: PathBuf,
}

impl Volume {
    /// Parses `NODE_ID=DATA_DIR`.
    pub fn parse(spec: &str) -> Result<Self, ServerError> {
        match spec.split_once('=') {
            Some((node, dir)) if !node.is_empty() && !dir.is_empty() => {
                strata_common::names::validate_node_id(node)
                    .map_err(|e| ServerError::Compactor(format!("--volume {spec:?}: {e}")))?;
                Ok(Self {
                    node_id: node.to_string(),
                    data_dir: PathBuf::from(dir),
                })
            }
            _ => Err(ServerError::Compactor(format!(
                "--volume {spec:?} is not NODE_ID=DATA_DIR (for example node-1=/var/lib/strata)"
            ))),
        }
    }
}

/// Most upload passes one `--once` run makes per volume.
const MAX_ONCE_UPLOADS: usize = 64;

/// A running separate compactor: one [`Compactor`] per volume.
struct Worker {
    node_id: String,
    compactor: Arc<Compactor>,
    /// The compactor holds its log weakly; this keeps it alive.
    _log: Arc<dyn TieredLog>,
}

/// Runs the compactor for `volumes` (the config's own node and data
/// directory when empty) until `stop` turns true; with `once`, makes one
/// full upload and one maintenance pass per volume and returns.
pub async fn run(
    config: Config,
    volumes: Vec<Volume>,
    once: bool,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ServerError> {
    config.validate()?;
    if !config.metadata.parse()?.is_shared() {
        return Err(ServerError::Compactor(
            "`strata compactor` shares the metadata store with the node: set metadata.url to \
             etcd://... (the embedded store is opened by one process at a time)"
                .into(),
        ));
    }
    let volumes = if volumes.is_empty() {
        vec![Volume {
            node_id: config.node_id.clone(),
            data_dir: config.data_dir.clone(),
        }]
    } else {
        volumes
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let engine = config.engine_config()?;
    let store = crate::server::open_metadata(&config).await?;
    let catalog = Catalog::new(store);
    let objects = Objects::open(&engine.object_store, clock.clone())
        .map_err(|e| ServerError::Compactor(format!("object store: {e}")))?;
    let meter = Arc::new(Meter::new(clock.clone()));
    let ledger = UsageLedger::new(
        catalog.clone(),
        meter.clone(),
        clock.clone(),
        &format!("{}.compactor", config.node_id),
    );
    let mut workers = Vec::new();
    for v in &volumes {
        let wal_dir = v.data_dir.join("wal");
        if !wal_dir.is_dir() {
            return Err(ServerError::Compactor(format!(
                "no WAL at {}: is {} the data directory of node {}?",
                wal_dir.display(),
                v.data_dir.display(),
                v.node_id
            )));
        }
        let (log, compactor) = volume_compactor(
            &engine,
            &catalog,
            &objects,
            meter.clone(),
            clock.clone(),
            &v.node_id,
            &wal_dir,
        )
        .await?;
        tracing::info!(node = %v.node_id, wal = %wal_dir.display(), checkpoint = compactor.checkpoint(), "compacting WAL volume");
        workers.push(Worker {
            node_id: v.node_id.clone(),
            compactor: Arc::new(compactor),
            _log: log,
        });
    }
    let result = if once {
        run_once(&workers).await
    } else {
        let (shutdown, signal) = watch::channel(false);
        let loops: Vec<_> = workers
            .iter()
            .flat_map(|w| {
                w.compactor
                    .spawn(&signal, &tokio::runtime::Handle::current())
            })
            .collect();
        let flush_every = Duration::from_millis(config.metering.flush_interval_ms);
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                _ = clock.sleep(flush_every) => {
                    if let Err(e) = ledger.flush().await {
                        tracing::warn!(error = %e, "flushing the compactor's usage failed; will retry");
                    }
                }
            }
        }
        shutdown.send_replace(true);
        for handle in loops {
            let _ = handle.await;
        }
        Ok(())
    };
    if let Err(e) = ledger.flush().await {
        tracing::warn!(error = %e, "flushing the compactor's usage at exit failed");
    }
    tracing::info!("compactor stopped");
    result
}

/// A compactor for `node`'s WAL in `wal_dir` (holding its compactor lock),
/// from the checkpoint the node last committed; the log it works on comes
/// with it, since the compactor holds the log weakly.
pub(crate) async fn volume_compactor(
    engine: &EngineConfig,
    catalog: &Catalog,
    objects: &Objects,
    meter: Arc<Meter>,
    clock: Arc<dyn Clock>,
    node: &str,
    wal_dir: &Path,
) -> Result<(Arc<dyn TieredLog>, Compactor), ServerError> {
    let volume = WalVolume::open(wal_dir)
        .map_err(|e| ServerError::Compactor(format!("volume of node {node}: {e}")))?;
    let log: Arc<dyn TieredLog> = Arc::new(VolumeLog::new(
        node,
        volume,
        catalog.clone(),
        meter,
        engine.wal_max_bytes,
    ));
    let checkpoint = catalog
        .wal_checkpoint(node)
        .await
        .map_err(|e| ServerError::Compactor(e.to_string()))?
        .unwrap_or(0);
    let compactor = Compactor::new(
        Arc::downgrade(&log),
        catalog.clone(),
        objects.clone(),
        clock,
        CompactorConfig {
            node_id: node.to_string(),
            upload_interval: engine.upload_interval,
            upload_trigger_bytes: engine.upload_trigger_bytes,
            max_object_bytes: engine.max_object_bytes,
            target_block_bytes: engine.target_block_bytes,
            maintenance_interval: engine.retention_interval,
            merge_small_range_bytes: engine.merge_small_range_bytes,
            merge_min_ranges: engine.merge_min_ranges,
            merge_target_bytes: engine.merge_target_bytes,
            gc_grace: engine.gc_grace,
            // It runs on shared metadata only: no store is private to it.
            private_store: false,
        },
        checkpoint,
    );
    Ok((log, compactor))
}

/// Uploads each volume until nothing durable is left, then one maintenance pass.
async fn run_once(workers: &[Worker]) -> Result<(), ServerError> {
    let failed = |node: &str, e: strata_compactor::CompactorError| {
        ServerError::Compactor(format!("node {node}: {e}"))
    };
    for w in workers {
        let mut uploads = 0;
        while w.compactor.lag_bytes() > 0 && uploads < MAX_ONCE_UPLOADS {
            w.compactor
                .upload_once()
                .await
                .map_err(|e| failed(&w.node_id, e))?;
            uploads += 1;
        }
        let pass = w
            .compactor
            .maintain()
            .await
            .map_err(|e| failed(&w.node_id, e))?;
        eprintln!(
            "node {}: {uploads} uploads, checkpoint {}, {} ranges expired, {} merges, {} objects deleted",
            w.node_id,
            w.compactor.checkpoint(),
            pass.expired_ranges,
            pass.merges,
            pass.deleted_objects
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_is_a_node_id_and_a_directory() {
        let v = Volume::parse("node-1=/var/lib/strata").unwrap();
        assert_eq!(v.node_id, "node-1");
        assert_eq!(v.data_dir, PathBuf::from("/var/lib/strata"));
        for bad in ["node-1", "=/data", "node-1=", "a/b=/data", "a b=/data"] {
            let e = Volume::parse(bad).unwrap_err().to_string();
            assert!(e.contains("--volume"), "{e}");
        }
        let e = Volume::parse("a/b=/data").unwrap_err().to_string();
        assert!(e.contains("'/'"), "{e}");
    }
}
