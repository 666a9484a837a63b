//! Which tenants this node serves. On one node: all of them. In cluster
//! mode each tenant is placed on one node (`strata_metadata::TenantPlacement`)
//! and the node serves only those: it loads their topics (claiming their
//! queues), answers their requests, fires their timers. A tenant moves by
//! [`Core::release_tenant`] on the old node (stop serving, upload the WAL,
//! drop the topics) and [`Core::serve_tenant`] on the new one (claim the
//! queues, which fences the old node's commits, and load everything from
//! object storage).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use super::{Core, load_topic};
use crate::error::{EngineError, Result};

/// Uploads a release makes at most to empty the WAL before giving up.
const MAX_RELEASE_UPLOADS: usize = 64;

/// The tenants served: `None` for all.
#[derive(Debug)]
pub(crate) struct Served(RwLock<Option<HashSet<String>>>);

impl Served {
    pub fn new(tenants: Option<Vec<String>>) -> Self {
        Self(RwLock::new(tenants.map(|t| t.into_iter().collect())))
    }

    pub fn contains(&self, tenant: &str) -> bool {
        match &*self.0.read().unwrap_or_else(|p| p.into_inner()) {
            None => true,
            Some(set) => set.contains(tenant),
        }
    }

    /// The served tenants, unless all are.
    pub fn list(&self) -> Option<Vec<String>> {
        let guard = self.0.read().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().map(|set| {
            let mut list: Vec<String> = set.iter().cloned().collect();
            list.sort();
            list
        })
    }

    fn set(&self, tenant: &str, served: bool) {
        let mut guard = self.0.write().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = guard.as_mut() {
            if served {
                set.insert(tenant.to_string());
            } else {
                set.remove(tenant);
            }
        }
    }
}

/// The refusal for a request of a tenant this node does not serve.
pub(crate) fn not_served(tenant: &str) -> EngineError {
    EngineError::Refused {
        code: strata_common::ErrorCode::Unavailable,
        message: format!(
            "tenant {tenant} is not served by this node (it is placed on another node or \
             moving between nodes); retry, or send the request to the node serving it"
        ),
    }
}

impl Core {
    /// Whether this node serves `tenant` now.
    pub fn serves(&self, tenant: &str) -> bool {
        self.served.contains(tenant)
    }

    /// Starts serving `tenant`: claims its queues (fencing any previous
    /// owner's commits), loads their object ranges and floors. Its data is
    /// in object storage (the node that served it released it, or its WAL
    /// was adopted), or in this node's WAL after a release here failed
    /// half-way, which is finished first. Serving it already is a no-op;
    /// behind a shut write fence it is refused (the node may have lost the
    /// tenant while its heartbeat lapsed).
    pub async fn serve_tenant(&self, tenant: &str) -> Result<()> {
        self.check_open()?;
        self.check_write_fence()?;
        if self.serves(tenant) {
            return Ok(());
        }
        // A release that failed half-way (its upload refused behind a shut
        // write fence, say) left the topics loaded, and what they
        // acknowledged may be only in the WAL. Loading from object storage
        // over them would restart their offsets below it: finish the
        // release first.
        if self.topics_read().all().any(|t| t.record.tenant == tenant) {
            self.finish_release(tenant).await?;
        }
        let floors = self.catalog.queue_floors().await?;
        let mut claimed = Vec::new();
        for record in self.catalog.list_topics(tenant).await? {
            claimed.push(load_topic(&self.catalog, &self.config.node_id, record).await?);
        }
        // Read after the claims, which write them for queues of a lost node.
        let resumes = self.catalog.queue_resumes().await?;
        let mut loaded = Vec::new();
        for topic in claimed {
            for q in &topic.queues {
                let cold = self.catalog.queue_ranges(q.key).await?;
                let floor = floors.get(&q.key).copied().unwrap_or(0);
                let resume = resumes.get(&q.key).copied().unwrap_or(0);
                q.lock().load_cold(cold, floor, resume);
                let hw = q.lock().high_watermark;
                q.announce(hw);
            }
            loaded.push(Arc::new(topic));
        }
        let topics = loaded.len();
        {
            let mut map = self.topics_write();
            for topic in loaded {
                map.insert(topic);
            }
        }
        self.served.set(tenant, true);
        tracing::info!(tenant, topics, "serving tenant");
        Ok(())
    }

    /// Stops serving `tenant`: refuses its requests from now on, waits for
    /// its appends in flight, uploads the whole WAL (so everything it
    /// acknowledged is in object storage for the next node), then drops its
    /// topics. On an error the tenant stays unserved here but its topics
    /// stay loaded, so a retry can finish the upload.
    pub async fn release_tenant(&self, tenant: &str) -> Result<()> {
        self.served.set(tenant, false);
        self.finish_release(tenant).await
    }

    /// The rest of a release, with `tenant` unserved: uploads the whole WAL
    /// as of now, after the appends in flight (the tenant's last ones
    /// included), then drops the tenant's topics.
    async fn finish_release(&self, tenant: &str) -> Result<()> {
        // Appends hold this shared: taking it once waits for those in flight.
        drop(self.appends.write().await);
        // Everything durable now, the tenant's last appends included, must
        // reach object storage; other tenants' later appends need not.
        let target = self.wal.durable_lsn();
        let mut uploads = 0;
        while self.compactor.checkpoint() < target {
            if uploads == MAX_RELEASE_UPLOADS {
                return Err(EngineError::Internal(format!(
                    "releasing tenant {tenant}: the WAL is uploaded to {} of {target} after \
                     {uploads} uploads",
                    self.compactor.checkpoint()
                )));
            }
            self.upload_once().await?;
            uploads += 1;
        }
        let mut map = self.topics_write();
        let names: Vec<String> = map
            .all()
            .filter(|t| t.record.tenant == tenant)
            .map(|t| t.record.name.clone())
            .collect();
        for name in &names {
            if let Some(topic) = map.remove(tenant, name) {
                for q in &topic.queues {
                    self.tiers.tail().remove_queue(q.key);
                }
            }
        }
        tracing::info!(tenant, topics = names.len(), uploads, "released tenant");
        Ok(())
    }
}
