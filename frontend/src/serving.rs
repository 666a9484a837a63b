//! Keeping the serving lease of a shared metadata namespace (etcd): taken at
//! start, renewed while the node runs, handed over by a graceful stop that
//! first uploads the whole WAL. See `strata_metadata::ServingLease` for why.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use strata_common::Clock;
use strata_engine::Engine;
use strata_metadata::{Catalog, ServingLease};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a lease lasts unless renewed.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often the node renews it (a fifth of the lease: four renewals may
/// fail before it lapses).
const RENEW_EVERY: Duration = Duration::from_secs(3);
/// Uploads a graceful stop makes at most to empty the WAL.
const MAX_DRAIN_UPLOADS: usize = 64;

/// The identity of the data directory (and so of its WAL): a random value
/// kept in `<data_dir>/identity`, created on first start.
pub fn data_dir_identity(dir: &Path, clock: &dyn Clock) -> std::io::Result<String> {
    let path = dir.join("identity");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let identity = format!("{:016x}{:016x}", clock.random_u64(), clock.random_u64());
    let temp = dir.join("identity.tmp");
    std::fs::write(&temp, format!("{identity}\n"))?;
    std::fs::File::open(&temp)?.sync_all()?;
    std::fs::rename(&temp, &path)?;
    Ok(identity)
}

/// The lease this node holds, and the task renewing it.
#[derive(Debug)]
pub struct ServingKeeper {
    catalog: Catalog,
    clock: Arc<dyn Clock>,
    stop: watch::Sender<bool>,
    task: JoinHandle<ServingLease>,
}

impl ServingKeeper {
    /// Takes the namespace's lease for this node and data directory, or
    /// fails saying who holds it and what to do.
    pub async fn take(
        catalog: Catalog,
        node: &str,
        identity: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, strata_metadata::CatalogError> {
        let ttl = LEASE_TTL.as_millis() as i64;
        let lease = catalog
            .acquire_serving_lease(node, identity, clock.now_ms(), ttl)
            .await?;
        tracing::info!(
            node,
            identity,
            "took the serving lease of the metadata namespace"
        );
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(renew(catalog.clone(), clock.clone(), lease, stopped));
        Ok(Self {
            catalog,
            clock,
            stop,
            task,
        })
    }

    /// Stops renewing; with `uploaded_all` (the WAL is empty of anything
    /// not in object storage) hands the namespace over, else leaves the
    /// lease to lapse, naming this node as the one to restart.
    pub async fn finish(self, uploaded_all: bool) {
        self.stop.send_replace(true);
        let lease = match self.task.await {
            Ok(lease) => lease,
            Err(e) => {
                tracing::error!(error = %e, "the serving lease task failed");
                return;
            }
        };
        if !uploaded_all {
            tracing::warn!(
                "the WAL holds data not yet in object storage: the serving lease is not handed over; start this node again to upload it"
            );
            return;
        }
        let ttl = LEASE_TTL.as_millis() as i64;
        match self
            .catalog
            .renew_serving_lease(&lease, self.clock.now_ms(), ttl, true)
            .await
        {
            Ok(Some(_)) => tracing::info!("handed the metadata namespace over"),
            Ok(None) => tracing::warn!("the serving lease changed underneath; not handed over"),
            Err(e) => tracing::warn!(error = %e, "handing the serving lease over failed"),
        }
    }
}

/// Renews `lease` every [`RENEW_EVERY`] until `stopped`; returns the lease
/// last held.
async fn renew(
    catalog: Catalog,
    clock: Arc<dyn Clock>,
    mut lease: ServingLease,
    mut stopped: watch::Receiver<bool>,
) -> ServingLease {
    let ttl = LEASE_TTL.as_millis() as i64;
    loop {
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return lease,
            _ = clock.sleep(RENEW_EVERY) => {}
        }
        match catalog
            .renew_serving_lease(&lease, clock.now_ms(), ttl, false)
            .await
        {
            Ok(Some(next)) => lease = next,
            Ok(None) => tracing::error!(
                "the serving lease was changed by someone else: another process claims this metadata namespace"
            ),
            Err(e) => tracing::warn!(error = %e, "renewing the serving lease failed; retrying"),
        }
    }
}

/// Uploads until the WAL holds nothing that is not in object storage;
/// `true` when it got there.
pub async fn upload_everything(engine: &Engine) -> bool {
    for _ in 0..MAX_DRAIN_UPLOADS {
        if engine.upload_lag_bytes() == 0 {
            return true;
        }
        if let Err(e) = engine.upload_once().await {
            tracing::warn!(error = %e, "upload before handing over failed");
            return false;
        }
    }
    engine.upload_lag_bytes() == 0
}
