//! Keeping the serving lease of a shared metadata namespace (etcd): taken at
//! start (after adopting the data directory of a node that died holding
//! it, or after standing by), renewed while the node runs, handed over by a
//! graceful stop that first uploads the whole WAL. While renewals lapse the
//! node acknowledges no writes ([`LeaseFence`]). See
//! `strata_metadata::ServingLease` for why.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use strata_common::Clock;
use strata_common::task::AbortOnDrop;
use strata_engine::{Engine, WriteFence};
use strata_metadata::{Catalog, ServingLease};

use crate::config::Config;
use crate::server::ServerError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

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

/// The data directory as recorded for successors: absolute where possible.
pub fn data_dir_path(config: &Config) -> String {
    std::fs::canonicalize(&config.data_dir)
        .unwrap_or_else(|_| config.data_dir.clone())
        .display()
        .to_string()
}

/// How long writes stay acknowledged after a renewal: four fifths of the
/// lease, so a node that stopped renewing (paused, cut off) stops
/// acknowledging before any successor could take the namespace over, with a
/// fifth of the lease to spare for clock drift between the two.
fn fence_ms(ttl_ms: u64) -> u64 {
    ttl_ms - ttl_ms / 5
}

/// What a [`LeaseFence`] stands for, which its refusals name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FencedBy {
    /// The serving lease of a shared namespace (standby mode).
    ServingLease,
    /// The node's heartbeat in the cluster's node registry.
    NodeRecord,
}

impl FencedBy {
    fn taken(self) -> &'static str {
        match self {
            Self::ServingLease => {
                "another node took over this node's serving lease: it acknowledges no more \
                 writes; stop this node"
            }
            Self::NodeRecord => {
                "another node adopted this node's WAL and took over its tenants (or an \
                 operator declared this node lost, giving up what it had not uploaded): it \
                 acknowledges no more writes and stops"
            }
        }
    }

    fn lapsed(self) -> &'static str {
        match self {
            Self::ServingLease => {
                "this node has not renewed its serving lease in time and may have lost the \
                 metadata namespace to another node: it acknowledges no writes until it renews \
                 (see serving.lease_ttl_ms)"
            }
            Self::NodeRecord => {
                "this node has not renewed its node registry heartbeat in time and its tenants \
                 may have moved to another node: it acknowledges no writes until it renews \
                 (see serving.lease_ttl_ms)"
            }
        }
    }
}

/// The write fence of a node serving under a lease: open while the last
/// renewal is recent (by this node's monotonic clock), closed for good once
/// the lease was taken by another.
#[derive(Debug)]
pub struct LeaseFence {
    clock: Arc<dyn Clock>,
    by: FencedBy,
    /// Monotonic milliseconds until which writes may be acknowledged.
    open_until_ms: AtomicU64,
    /// Set once another node took the lease: shut for good.
    taken: std::sync::atomic::AtomicBool,
}

impl LeaseFence {
    /// A fence that is shut until the first renewal.
    pub(crate) fn new(clock: Arc<dyn Clock>, by: FencedBy) -> Self {
        Self {
            clock,
            by,
            open_until_ms: AtomicU64::new(0),
            taken: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// A renewal that started at monotonic `started` succeeded.
    pub(crate) fn renewed(&self, started: Duration, ttl_ms: u64) {
        if self.taken.load(Ordering::Acquire) {
            return;
        }
        let until = started.as_millis() as u64 + fence_ms(ttl_ms);
        self.open_until_ms.fetch_max(until, Ordering::AcqRel);
    }

    /// The lease was taken: shut for good.
    pub(crate) fn close(&self) {
        self.taken.store(true, Ordering::Release);
        self.open_until_ms.store(0, Ordering::Release);
    }

    /// Shut, for whatever reason.
    pub(crate) fn is_shut(&self) -> bool {
        self.check().is_err()
    }

    /// Shut because renewals lapsed (the metadata store unreachable, or
    /// this process paused), not because the lease was taken.
    pub(crate) fn lapsed(&self) -> bool {
        !self.taken.load(Ordering::Acquire) && self.is_shut()
    }

    /// Ends once `shut` holds for this fence, looking every 100 ms.
    pub(crate) async fn until(&self, shut: fn(&Self) -> bool) {
        while !shut(self) {
            self.clock.sleep(Duration::from_millis(100)).await;
        }
    }
}

impl WriteFence for LeaseFence {
    fn check(&self) -> Result<(), String> {
        if self.taken.load(Ordering::Acquire) {
            return Err(self.by.taken().into());
        }
        let until = self.open_until_ms.load(Ordering::Acquire);
        if (self.clock.monotonic().as_millis() as u64) < until {
            return Ok(());
        }
        Err(self.by.lapsed().into())
    }
}

/// The lease this node holds, and the task renewing it.
#[derive(Debug)]
pub struct ServingKeeper {
    catalog: Catalog,
    clock: Arc<dyn Clock>,
    ttl_ms: u64,
    fence: Arc<LeaseFence>,
    stop: watch::Sender<bool>,
    task: JoinHandle<ServingLease>,
}

impl ServingKeeper {
    /// Takes the namespace's lease for this node and its data directory.
    /// While another node holds it: refuses, saying who and what to do, or
    /// with `serving.standby` waits. A node that died without handing over
    /// is adopted first when its data directory is reachable here.
    pub async fn take(
        catalog: Catalog,
        config: &Config,
        identity: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ServerError> {
        let ttl_ms = config.serving.lease_ttl_ms;
        let node = &config.node_id;
        let data_dir = data_dir_path(config);
        let serving = |e: strata_metadata::CatalogError| ServerError::Serving(e.to_string());
        let mut waiting = false;
        let lease = loop {
            let started = clock.monotonic();
            let refusal = match catalog
                .acquire_serving_lease(node, identity, &data_dir, clock.now_ms(), ttl_ms as i64)
                .await
            {
                Ok(lease) => break (lease, started),
                Err(e @ strata_metadata::CatalogError::NamespaceServed(_)) => e,
                Err(e) => return Err(serving(e)),
            };
            let held = catalog.serving_lease().await.map_err(serving)?;
            if let Some(held) = held.filter(|h| !h.released && h.expires_ms <= clock.now_ms()) {
                match crate::adopt::adopt(config, &catalog, &held, clock.clone()).await {
                    Ok(()) => continue,
                    Err(why) if !config.serving.standby => {
                        return Err(ServerError::Serving(format!("{refusal} ({why})")));
                    }
                    Err(why) => {
                        tracing::warn!(node = %held.node, reason = %why, "cannot adopt the data directory of the node that served last; waiting")
                    }
                }
            } else if !config.serving.standby {
                return Err(serving(refusal));
            }
            if !waiting {
                tracing::info!(reason = %refusal, "standing by for the metadata namespace");
                waiting = true;
            }
            clock.sleep(Duration::from_millis(ttl_ms / 5)).await;
        };
        let (lease, started) = lease;
        tracing::info!(node = %node, identity, "took the serving lease of the metadata namespace");
        let fence = Arc::new(LeaseFence::new(clock.clone(), FencedBy::ServingLease));
        fence.renewed(started, ttl_ms);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(renew(
            catalog.clone(),
            clock.clone(),
            ttl_ms,
            fence.clone(),
            lease,
            stopped,
        ));
        Ok(Self {
            catalog,
            clock,
            ttl_ms,
            fence,
            stop,
            task,
        })
    }

    /// The fence the engine checks before acknowledging a write.
    pub fn fence(&self) -> Arc<LeaseFence> {
        self.fence.clone()
    }

    /// Stops renewing; with `uploaded_all` (the WAL is empty of anything
    /// not in object storage) hands the namespace over, else leaves the
    /// lease to lapse, naming this node as the one to restart.
    pub async fn finish(self, uploaded_all: bool) {
        self.stop.send_replace(true);
        let task = AbortOnDrop(self.task);
        if !uploaded_all {
            // Nothing to write: a renewal under way (it may be waiting on an
            // unreachable store) is abandoned, not waited for.
            drop(task);
            tracing::warn!(
                "the WAL holds data not yet in object storage: the serving lease is not handed over; start this node again to upload it"
            );
            return;
        }
        let lease = match task.await {
            Ok(lease) => lease,
            Err(e) => {
                tracing::error!(error = %e, "the serving lease task failed");
                return;
            }
        };
        match self
            .catalog
            .renew_serving_lease(&lease, self.clock.now_ms(), self.ttl_ms as i64, true)
            .await
        {
            Ok(Some(_)) => tracing::info!("handed the metadata namespace over"),
            Ok(None) => tracing::warn!("the serving lease changed underneath; not handed over"),
            Err(e) => tracing::warn!(error = %e, "handing the serving lease over failed"),
        }
    }
}

/// Renews `lease` every fifth of its TTL until `stopped`, keeping `fence`
/// open while renewals succeed; returns the lease last held.
async fn renew(
    catalog: Catalog,
    clock: Arc<dyn Clock>,
    ttl_ms: u64,
    fence: Arc<LeaseFence>,
    mut lease: ServingLease,
    mut stopped: watch::Receiver<bool>,
) -> ServingLease {
    let every = Duration::from_millis(ttl_ms / 5);
    loop {
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return lease,
            _ = clock.sleep(every) => {}
        }
        let started = clock.monotonic();
        match catalog
            .renew_serving_lease(&lease, clock.now_ms(), ttl_ms as i64, false)
            .await
        {
            Ok(Some(next)) => {
                lease = next;
                fence.renewed(started, ttl_ms);
            }
            Ok(None) => match catalog.serving_lease().await {
                // A renewal of ours that timed out (a metadata outage) was
                // applied after all: the record is still this node's, so
                // renew from it. Read as a takeover, it shut a single node
                // for good once quorum came back.
                Ok(Some(stored)) if still_ours(&lease, &stored) => {
                    tracing::info!(
                        "the serving lease holds a renewal whose answer was lost; renewing from it"
                    );
                    lease = stored;
                }
                Ok(_) => {
                    fence.close();
                    tracing::error!(
                        "the serving lease was taken by another node: this node acknowledges no more writes; stop it"
                    );
                }
                Err(e) => tracing::warn!(error = %e, "reading the serving lease failed; retrying"),
            },
            Err(e) => tracing::warn!(error = %e, "renewing the serving lease failed; retrying"),
        }
    }
}

/// Whether the stored lease is still the one `held` renews: the same node
/// and data directory (only this process can hold that directory's lock),
/// not released. Another node taking over writes its own name; an
/// operator's `forget` releases it.
fn still_ours(held: &ServingLease, stored: &ServingLease) -> bool {
    stored.node == held.node && stored.identity == held.identity && !stored.released
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

#[cfg(test)]
mod tests {
    use super::*;
    use strata_common::{ManualClock, SystemClock};
    use strata_metadata::{CommitHook, HookedStore, MemoryStore, MetaError, MetaStore, Txn};

    /// Applies the first commit after `armed` but answers it with a
    /// timeout, as etcd did for a renewal during a quorum loss.
    #[derive(Debug, Default)]
    struct LostAnswer {
        armed: std::sync::atomic::AtomicBool,
        lost: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl CommitHook for LostAnswer {
        async fn before_commit(
            &self,
            inner: &Arc<dyn MetaStore>,
            txn: &Txn,
        ) -> Result<(), MetaError> {
            if self.armed.swap(false, Ordering::SeqCst) {
                inner.commit(txn.clone()).await?;
                self.lost.store(true, Ordering::SeqCst);
                return Err(MetaError::Backend("etcdserver: request timed out".into()));
            }
            Ok(())
        }
    }

    #[tokio::test]
    #[allow(clippy::disallowed_methods)]
    async fn a_renewal_applied_after_its_timeout_is_not_a_takeover() {
        let store = HookedStore::new(MemoryStore::new(), LostAnswer::default());
        let catalog = Catalog::new(store.clone());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ttl_ms = 100;
        let lease = catalog
            .acquire_serving_lease("n1", "id-1", "/d", clock.now_ms(), ttl_ms as i64)
            .await
            .unwrap();
        let fence = Arc::new(LeaseFence::new(clock.clone(), FencedBy::ServingLease));
        let (stop, stopped) = watch::channel(false);
        store.hook().armed.store(true, Ordering::SeqCst);
        let task = tokio::spawn(renew(
            catalog.clone(),
            clock.clone(),
            ttl_ms,
            fence.clone(),
            lease,
            stopped,
        ));
        // Bounded wait for the lost answer and a renewal after it.
        let mut renewed_after = false;
        for _ in 0..500 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if store.hook().lost.load(Ordering::SeqCst) && fence.check().is_ok() {
                renewed_after = true;
                break;
            }
        }
        stop.send_replace(true);
        let held = task.await.unwrap();
        assert!(renewed_after, "{:?}", fence.check());
        assert!(!fence.taken.load(Ordering::SeqCst));
        assert_eq!(catalog.serving_lease().await.unwrap(), Some(held));
    }

    #[test]
    fn a_lease_is_ours_while_it_names_this_directory_unreleased() {
        let held = ServingLease {
            node: "n1".into(),
            identity: "id-1".into(),
            data_dir: "/d".into(),
            expires_ms: 10,
            released: false,
        };
        let later = ServingLease {
            expires_ms: 20,
            ..held.clone()
        };
        assert!(still_ours(&held, &later));
        let other = ServingLease {
            node: "n2".into(),
            identity: "id-2".into(),
            ..later.clone()
        };
        assert!(!still_ours(&held, &other));
        let released = ServingLease {
            released: true,
            ..later
        };
        assert!(!still_ours(&held, &released));
    }

    #[test]
    fn the_fence_opens_on_renewal_lapses_and_stays_shut_once_taken() {
        let clock = ManualClock::new(0, 1);
        let fence = LeaseFence::new(clock.clone(), FencedBy::NodeRecord);
        let shut = fence.check().unwrap_err();
        assert!(shut.contains("node registry heartbeat"), "{shut}");

        fence.renewed(clock.monotonic(), 10_000);
        fence.check().unwrap();
        // Open for four fifths of the lease after the renewal started.
        clock.advance_ms(7_999);
        fence.check().unwrap();
        clock.advance_ms(1);
        assert!(fence.check().is_err());

        fence.renewed(clock.monotonic(), 10_000);
        fence.check().unwrap();
        fence.close();
        let taken = fence.check().unwrap_err();
        assert!(taken.contains("adopted this node's WAL"), "{taken}");
        // A renewal racing the adoption does not reopen it.
        fence.renewed(clock.monotonic(), 10_000);
        assert_eq!(fence.check().unwrap_err(), taken);

        let lease = LeaseFence::new(clock.clone(), FencedBy::ServingLease);
        lease.close();
        let taken = lease.check().unwrap_err();
        assert!(taken.contains("serving lease"), "{taken}");
    }
}
