//! The engine as the [`TieredLog`] its compactor serves: the WAL, and each
//! queue's in-memory view of its cold ranges, which the compactor's commits
//! update.

use std::sync::Arc;

use bytes::Bytes;
use strata_common::QueueKey;
use strata_common::usage::Counter;
use strata_compactor::{CompactorError, LiveQueue, TieredLog};
use strata_metadata::RangeRecord;

use crate::core::Core;
use crate::core::queue::{QueueLog, QueueState};
use crate::core::topic::TopicState;
use crate::error::EngineError;

type Result<T> = std::result::Result<T, CompactorError>;

fn log_error(e: EngineError) -> CompactorError {
    match e {
        EngineError::Corrupt(m) => CompactorError::Corrupt(m),
        EngineError::ObjectMissing(_) => CompactorError::Corrupt(e.to_string()),
        other => CompactorError::Log(other.to_string()),
    }
}

fn live(topic: &TopicState, q: &QueueState) -> LiveQueue {
    LiveQueue {
        key: q.key,
        tenant: q.tenant.clone(),
        owner: q.owner.clone(),
        retention: topic.record.retention,
        retention_bytes: topic.record.retention_bytes,
    }
}

impl Core {
    fn queue_state(&self, key: QueueKey) -> Option<Arc<QueueState>> {
        let topics = self.topics_read();
        topics
            .by_id(key.topic)?
            .queues
            .get(key.queue as usize)
            .cloned()
    }

    /// Deletes sealed WAL segments wholly below `checkpoint` and forgets
    /// their index entries (the data is in object storage).
    pub(crate) async fn release_wal_below(&self, checkpoint: u64) -> crate::Result<u64> {
        let queues: Vec<Arc<QueueLog>> = self
            .topics_read()
            .all()
            .flat_map(|t| t.queues.iter().map(|q| q.log.clone()))
            .collect();
        Ok(self.tiers.release_below(checkpoint, queues).await?)
    }
}

#[async_trait::async_trait]
impl TieredLog for Core {
    fn durable_lsn(&self) -> u64 {
        self.wal.durable_lsn()
    }

    fn first_lsn(&self) -> u64 {
        self.wal.stats().first_lsn
    }

    fn wal_filling(&self) -> bool {
        let wal = self.wal.stats();
        wal.used_bytes.saturating_mul(2) > wal.max_bytes
    }

    fn write_fence(&self) -> std::result::Result<(), String> {
        match self.write_fence.get() {
            Some(fence) => fence.check(),
            None => Ok(()),
        }
    }

    async fn read_wal(
        &self,
        from: u64,
        until: u64,
        max_bytes: u64,
    ) -> Result<(Vec<(u64, Bytes)>, u64)> {
        self.tiers
            .read_span(from, until, max_bytes)
            .await
            .map_err(|e| log_error(e.into()))
    }

    async fn release_wal(&self, checkpoint: u64) -> Result<u64> {
        self.release_wal_below(checkpoint).await.map_err(log_error)
    }

    fn queue(&self, key: QueueKey) -> Option<LiveQueue> {
        let topics = self.topics_read();
        let topic = topics.by_id(key.topic)?;
        let q = topic.queues.get(key.queue as usize)?;
        Some(live(topic, q))
    }

    fn queues(&self) -> Vec<LiveQueue> {
        self.topics_read()
            .all()
            .flat_map(|t| t.queues.iter().map(|q| live(t, q)))
            .collect()
    }

    fn cold_ranges(&self, key: QueueKey) -> Vec<Arc<RangeRecord>> {
        self.queue_state(key)
            .map(|q| q.lock().cold.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn ranges_uploaded(&self, ranges: &[RangeRecord]) {
        for range in ranges {
            if let Some(q) = self.queue_state(range.queue) {
                q.lock().push_cold(range.clone());
            }
        }
    }

    fn ranges_expired(&self, key: QueueKey, count: usize) {
        if let Some(q) = self.queue_state(key) {
            q.lock().expire_cold(count);
        }
    }

    fn ranges_merged(&self, key: QueueKey, old: &[RangeRecord], merged: RangeRecord) -> bool {
        self.queue_state(key)
            .is_some_and(|q| q.lock().replace_cold(old, merged))
    }

    fn object_put(&self, tenant: &str) {
        self.meter.add(tenant, Counter::ObjectPuts, 1);
    }

    fn object_get(&self, tenant: &str) {
        self.meter.add(tenant, Counter::ObjectGets, 1);
    }
}
