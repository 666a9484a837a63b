//! Adopting the data directory of a node that served a shared namespace and
//! died without handing it over: its WAL may hold acknowledged messages no
//! one else has. A successor that can reach the directory (a shared
//! directory on one machine, a block volume re-attached in the cloud) and
//! take its lock (so its node is not running) recovers that WAL as the node
//! would at restart, uploads all of it for that node (each commit fenced by
//! the dead node's own queue epochs, which nobody has claimed yet), then
//! hands the lease over on its behalf. Only then does the successor take the
//! lease and claim the queues, which fences the dead node for good.

use std::path::PathBuf;
use std::sync::Arc;

use strata_common::Clock;
use strata_common::usage::Meter;
use strata_metadata::{Catalog, NodeRecord, NodeState, ServingLease};
use strata_objects::Objects;
use strata_tiering::wal::write_durable_mark;
use strata_tiering::{FileWal, WalConfig};

use crate::config::Config;
use crate::separate_compactor::volume_compactor;

/// Uploads one adoption makes at most before giving up (and retrying).
const MAX_ADOPTION_UPLOADS: usize = 1024;

/// Adopts `held`'s data directory and hands its lease over; `Err` says why
/// it could not (the caller refuses to start or stands by).
pub async fn adopt(
    config: &Config,
    catalog: &Catalog,
    held: &ServingLease,
    clock: Arc<dyn Clock>,
) -> Result<(), String> {
    let adoptee = Adoptee {
        node: &held.node,
        identity: &held.identity,
        data_dir: &held.data_dir,
    };
    let (lock, checkpoint) = upload_volume(config, catalog, &adoptee, clock.clone()).await?;
    mark_handed_over(&adoptee, checkpoint).await?;
    match catalog
        .renew_serving_lease(held, clock.now_ms(), 0, true)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(_) => {
            tracing::warn!(node = %held.node, "handed the lease of the adopted node over");
            mark_adopted(catalog, &held.node, &config.node_id, clock.now_ms()).await;
            drop(lock);
            Ok(())
        }
        None => Err("the lease changed while adopting: another node took over".into()),
    }
}

/// In cluster mode: adopts the data directory of `dead` (a node record that
/// stopped heartbeating without leaving) and marks it adopted, which frees
/// its tenants for other nodes. `Err` says why not (retried later).
pub async fn adopt_node(
    config: &Config,
    catalog: &Catalog,
    dead: &NodeRecord,
    clock: Arc<dyn Clock>,
) -> Result<(), String> {
    let adoptee = Adoptee {
        node: &dead.node,
        identity: &dead.identity,
        data_dir: &dead.data_dir,
    };
    let (lock, checkpoint) = upload_volume(config, catalog, &adoptee, clock.clone()).await?;
    mark_handed_over(&adoptee, checkpoint).await?;
    let adopted = NodeRecord {
        state: NodeState::Adopted {
            by: config.node_id.clone(),
            at_ms: clock.now_ms(),
        },
        ..dead.clone()
    };
    let marked = catalog
        .update_node(dead, adopted)
        .await
        .map_err(|e| e.to_string())?;
    drop(lock);
    match marked {
        Some(_) => {
            tracing::warn!(node = %dead.node, "adopted the WAL of a node that stopped heartbeating; its tenants may move");
            Ok(())
        }
        None => Err("its registry record changed while adopting (it came back)".into()),
    }
}

/// The node whose data directory is adopted.
struct Adoptee<'a> {
    node: &'a str,
    identity: &'a str,
    data_dir: &'a str,
}

/// Locks the adoptee's data directory, recovers its WAL and uploads all of
/// it under the adoptee's node id; returns the lock, held until the caller
/// has recorded the adoption, and the WAL position uploaded through.
async fn upload_volume(
    config: &Config,
    catalog: &Catalog,
    held: &Adoptee<'_>,
    clock: Arc<dyn Clock>,
) -> Result<(std::fs::File, u64), String> {
    let dir = PathBuf::from(held.data_dir);
    if held.data_dir.is_empty() || !dir.is_dir() {
        return Err(format!(
            "its data directory {:?} is not reachable here",
            held.data_dir
        ));
    }
    let identity = std::fs::read_to_string(dir.join("identity")).unwrap_or_default();
    if identity.trim() != held.identity {
        return Err(format!(
            "{} holds identity {:?}, not the lease's {}",
            dir.display(),
            identity.trim(),
            held.identity
        ));
    }
    let lock_path = dir.join("LOCK");
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| format!("{}: {e}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        return Err(format!(
            "{} is locked: its node is still running",
            lock_path.display()
        ));
    }
    tracing::warn!(node = %held.node, dir = %dir.display(), "adopting the data directory of a node that died without handing over");

    // Recover the WAL as its node would at restart (a torn tail is cut),
    // and publish how far it is durable for the volume reader.
    let engine = config.engine_config().map_err(|e| e.to_string())?;
    let wal_dir = dir.join("wal");
    let wal_config = WalConfig {
        dir: wal_dir.clone(),
        segment_bytes: engine.wal_segment_bytes,
        max_bytes: engine.wal_max_bytes,
        group_commit_max_bytes: engine.wal_group_commit_max_bytes,
        append_timeout: engine.append_timeout,
        pace_above_percent: engine.wal_pace_above_percent,
        clock: clock.clone(),
        uploaded_lsn: catalog
            .wal_checkpoint(held.node)
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or(0),
    };
    let recovered = wal_dir.clone();
    tokio::task::spawn_blocking(move || {
        let (wal, _) = FileWal::open(wal_config, |_, _| Ok(()))?;
        let end = wal.durable_lsn();
        wal.close()?;
        write_durable_mark(&recovered, end)
    })
    .await
    .map_err(|e| format!("WAL recovery task failed: {e}"))?
    .map_err(|e| format!("recovering its WAL: {e}"))?;

    let objects = Objects::open(&engine.object_store, clock.clone())
        .map_err(|e| format!("object store: {e}"))?;
    let meter = Arc::new(Meter::new(clock.clone()));
    let (_log, compactor) = volume_compactor(
        &engine,
        catalog,
        &objects,
        meter.clone(),
        clock.clone(),
        held.node,
        &wal_dir,
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut uploads = 0;
    while compactor.lag_bytes() > 0 {
        if uploads == MAX_ADOPTION_UPLOADS {
            return Err(format!(
                "its WAL still holds {} bytes after {uploads} uploads",
                compactor.lag_bytes()
            ));
        }
        compactor
            .upload_once()
            .await
            .map_err(|e| format!("uploading its WAL: {e}"))?;
        uploads += 1;
    }
    // The object PUTs are billed like any node's.
    let ledger = strata_tenancy::UsageLedger::new(
        catalog.clone(),
        meter,
        clock.clone(),
        &format!("{}.adoption", config.node_id),
    );
    if let Err(e) = ledger.flush().await {
        tracing::warn!(error = %e, "flushing the adoption's usage failed");
    }
    // And what the node itself could not write when it stopped.
    crate::metering::unflushed::write_kept(&ledger, &dir).await;
    let checkpoint = compactor.checkpoint();
    tracing::warn!(node = %held.node, uploads, checkpoint, "adopted its data directory: everything it held is in object storage");
    Ok((lock, checkpoint))
}

/// Writes the adoptee's hand-over mark, before its record says adopted
/// (and may be pruned): see `cluster::handed_over`.
async fn mark_handed_over(held: &Adoptee<'_>, checkpoint: u64) -> Result<(), String> {
    crate::cluster::handed_over::write(
        PathBuf::from(held.data_dir),
        held.node,
        held.identity,
        checkpoint,
    )
    .await
}

/// Records in the node registry that `node`'s WAL was adopted by `by`, so
/// `strata cluster status` shows it gone rather than expired.
async fn mark_adopted(catalog: &Catalog, node: &str, by: &str, at_ms: i64) {
    let record = match catalog.cluster_node(node).await {
        Ok(Some(record)) if record.state == NodeState::Live => record,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = %e, node, "reading the adopted node's registry record failed");
            return;
        }
    };
    let adopted = NodeRecord {
        state: NodeState::Adopted {
            by: by.to_string(),
            at_ms,
        },
        ..record.clone()
    };
    if let Err(e) = catalog.update_node(&record, adopted).await {
        tracing::warn!(error = %e, node, "marking the node adopted failed");
    }
}
