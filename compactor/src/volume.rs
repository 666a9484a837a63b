//! [`VolumeLog`]: the [`TieredLog`] of a separate compactor process. The
//! node keeps appending to its WAL and releasing it; this process reads the
//! WAL volume from disk ([`WalVolume`]) up to the durable mark the node
//! publishes, and learns queues, owners and ranges from the shared metadata
//! store before every pass ([`TieredLog::refresh`]).
//!
//! The node, not this process, deletes WAL segments: it watches the WAL
//! checkpoint the uploads commit and releases below it, so
//! [`TieredLog::release_wal`] here frees nothing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use strata_common::usage::{Counter, Meter};
use strata_common::{QueueKey, TopicId};
use strata_metadata::{Catalog, RangeRecord};
use strata_tiering::WalError;
use strata_tiering::wal::WalVolume;

use crate::error::{CompactorError, Result};
use crate::host::{LiveQueue, Refresh, TieredLog};

/// What the metadata store said at the last refresh.
#[derive(Debug, Default)]
struct Snapshot {
    queues: HashMap<QueueKey, LiveQueue>,
    topics: HashSet<TopicId>,
    ranges: HashMap<QueueKey, Vec<Arc<RangeRecord>>>,
}

/// One node's WAL volume, compacted by a process other than the node.
#[derive(Debug)]
pub struct VolumeLog {
    node: String,
    volume: Arc<WalVolume>,
    catalog: Catalog,
    meter: Arc<Meter>,
    /// The node's WAL bound: past half of it, uploads start at once.
    wal_max_bytes: u64,
    snapshot: RwLock<Snapshot>,
}

fn wal_error(e: WalError) -> CompactorError {
    match e {
        WalError::Corrupt { .. } => CompactorError::Corrupt(e.to_string()),
        other => CompactorError::Log(other.to_string()),
    }
}

impl VolumeLog {
    /// The log of `node`, whose WAL is `volume`; object requests are billed
    /// through `meter`.
    pub fn new(
        node: &str,
        volume: WalVolume,
        catalog: Catalog,
        meter: Arc<Meter>,
        wal_max_bytes: u64,
    ) -> Self {
        Self {
            node: node.to_string(),
            volume: Arc::new(volume),
            catalog,
            meter,
            wal_max_bytes,
            snapshot: RwLock::new(Snapshot::default()),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Snapshot> {
        self.snapshot.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Snapshot> {
        self.snapshot.write().unwrap_or_else(|p| p.into_inner())
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WalVolume) -> std::result::Result<T, WalError> + Send + 'static,
    ) -> Result<T> {
        let volume = self.volume.clone();
        tokio::task::spawn_blocking(move || f(&volume))
            .await
            .map_err(|e| CompactorError::Log(format!("WAL volume task failed: {e}")))?
            .map_err(wal_error)
    }
}

#[async_trait::async_trait]
impl TieredLog for VolumeLog {
    async fn refresh(&self, scope: Refresh) -> Result<()> {
        let topics = self.catalog.all_topics().await?;
        let owners = self.catalog.all_owners().await?;
        let mut queues = HashMap::new();
        for topic in &topics {
            for queue in 0..topic.queues {
                let key = QueueKey::new(topic.id, queue);
                // Only the node's own queues: a queue another node took over
                // is fenced anyway, and its data is that node's to upload.
                let Some(owner) = owners.get(&key).filter(|o| o.node == self.node) else {
                    continue;
                };
                queues.insert(
                    key,
                    LiveQueue {
                        key,
                        tenant: Arc::from(topic.tenant.as_str()),
                        owner: owner.clone(),
                        retention: topic.retention,
                        retention_bytes: topic.retention_bytes,
                    },
                );
            }
        }
        let ranges = match scope {
            Refresh::Queues => None,
            Refresh::Everything => {
                let ranges = self.catalog.all_ranges().await?;
                Some(
                    ranges
                        .into_iter()
                        .map(|(k, v)| (k, v.into_iter().map(Arc::new).collect()))
                        .collect(),
                )
            }
        };
        let mut snapshot = self.write();
        snapshot.queues = queues;
        snapshot.topics = topics.iter().map(|t| t.id).collect();
        if let Some(ranges) = ranges {
            snapshot.ranges = ranges;
        }
        Ok(())
    }

    fn durable_lsn(&self) -> u64 {
        self.volume.durable_lsn().unwrap_or(0)
    }

    fn first_lsn(&self) -> u64 {
        self.volume.first_lsn().unwrap_or(0)
    }

    fn wal_filling(&self) -> bool {
        let used: u64 = self
            .volume
            .segments()
            .map_or(0, |s| s.iter().map(|s| s.file_bytes).sum());
        used.saturating_mul(2) > self.wal_max_bytes
    }

    async fn read_wal(
        &self,
        from: u64,
        until: u64,
        max_bytes: u64,
    ) -> Result<(Vec<(u64, Bytes)>, u64)> {
        self.blocking(move |volume| volume.read_span(from, until, max_bytes))
            .await
    }

    async fn release_wal(&self, _checkpoint: u64) -> Result<u64> {
        Ok(0)
    }

    fn queue(&self, key: QueueKey) -> Option<LiveQueue> {
        self.read().queues.get(&key).cloned()
    }

    fn queues(&self) -> Vec<LiveQueue> {
        let mut queues: Vec<LiveQueue> = self.read().queues.values().cloned().collect();
        queues.sort_by_key(|q| q.key);
        queues
    }

    fn cold_ranges(&self, key: QueueKey) -> Vec<Arc<RangeRecord>> {
        self.read().ranges.get(&key).cloned().unwrap_or_default()
    }

    fn ranges_uploaded(&self, ranges: &[RangeRecord]) {
        let mut snapshot = self.write();
        for range in ranges {
            snapshot
                .ranges
                .entry(range.queue)
                .or_default()
                .push(Arc::new(range.clone()));
        }
    }

    fn ranges_expired(&self, key: QueueKey, count: usize) {
        if let Some(ranges) = self.write().ranges.get_mut(&key) {
            ranges.drain(..count.min(ranges.len()));
        }
    }

    fn ranges_merged(&self, key: QueueKey, old: &[RangeRecord], merged: RangeRecord) -> bool {
        let mut snapshot = self.write();
        let Some(ranges) = snapshot.ranges.get_mut(&key) else {
            return false;
        };
        let Some(start) = ranges
            .iter()
            .position(|r| old.first().is_some_and(|o| **r == *o))
        else {
            return false;
        };
        let end = start + old.len();
        if end > ranges.len() || ranges[start..end].iter().zip(old).any(|(a, b)| **a != *b) {
            return false;
        }
        ranges.splice(start..end, [Arc::new(merged)]);
        true
    }

    fn object_put(&self, tenant: &str) {
        self.meter.add(tenant, Counter::ObjectPuts, 1);
    }

    fn object_get(&self, tenant: &str) {
        self.meter.add(tenant, Counter::ObjectGets, 1);
    }
}
