//! The engine as the [`TieredLog`] its compactor serves: the WAL, and each
//! queue's in-memory view of its cold ranges, which the compactor's commits
//! update.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use strata_common::usage::Counter;
use strata_common::{BlockRef, QueueKey, TopicId};
use strata_compactor::{CompactorError, LiveQueue, TieredLog};
use strata_metadata::RangeRecord;
use strata_tiering::wal::frame::FRAME_HEADER_LEN;

use crate::core::Core;
use crate::core::queue::QueueState;
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
        let segments = self.wal.segments();
        let Some(current_first) = segments.first().map(|s| s.base_lsn) else {
            return Ok(0);
        };
        let new_first = segments
            .iter()
            .take_while(|s| s.sealed && s.end_lsn <= checkpoint)
            .last()
            .map_or(current_first, |s| s.end_lsn);
        if new_first <= current_first {
            return Ok(0);
        }
        let wal = self.wal.clone();
        let files = self.wal_files.clone();
        let queues: Vec<Arc<QueueState>> = self
            .topics_read()
            .all()
            .flat_map(|t| t.queues.iter().cloned())
            .collect();
        let freed = tokio::task::spawn_blocking(move || {
            // Readers of WAL records hold the gate shared: none is reading
            // while segments go, and none sees an index entry whose segment
            // is gone (the indexes are updated before the gate opens).
            let _no_readers = files.write().unwrap_or_else(|p| p.into_inner());
            let freed = wal.release_before(new_first)?;
            for q in &queues {
                q.lock().release_below(new_first);
            }
            Ok::<_, EngineError>(freed)
        })
        .await
        .map_err(|e| EngineError::Internal(format!("WAL release task failed: {e}")))??;
        tracing::debug!(
            freed_bytes = freed,
            first_lsn = new_first,
            "released WAL segments"
        );
        Ok(freed)
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

    async fn read_wal(
        &self,
        from: u64,
        until: u64,
        max_bytes: u64,
    ) -> Result<(Vec<(u64, Bytes)>, u64)> {
        let wal = self.wal.clone();
        let files = self.wal_files.clone();
        let read = tokio::task::spawn_blocking(move || {
            let _files = files.read().unwrap_or_else(|p| p.into_inner());
            let mut lsn = from;
            let mut total = 0u64;
            let mut records = Vec::new();
            while lsn < until {
                let payload = wal.read(lsn)?;
                let frame = (FRAME_HEADER_LEN + payload.len()) as u64;
                if !records.is_empty() && total + frame > max_bytes {
                    break;
                }
                total += frame;
                records.push((lsn, payload));
                lsn += frame;
            }
            Ok::<_, EngineError>((records, lsn))
        });
        read.await
            .map_err(|e| CompactorError::Log(format!("WAL scan task failed: {e}")))?
            .map_err(log_error)
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

    fn live_topics(&self) -> HashSet<TopicId> {
        self.topics_read().all().map(|t| t.record.id).collect()
    }

    fn cold_ranges(&self, key: QueueKey) -> Vec<Arc<RangeRecord>> {
        self.queue_state(key)
            .map(|q| q.lock().cold.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn wal_only_bytes(&self, key: QueueKey) -> u64 {
        let Some(q) = self.queue_state(key) else {
            return 0;
        };
        let inner = q.lock();
        let cold_end = inner.cold_end().unwrap_or(0);
        inner
            .index
            .iter()
            .filter(|e| e.base_offset >= cold_end)
            .map(|e| e.bytes)
            .sum()
    }

    async fn read_block(
        &self,
        key: QueueKey,
        object: &str,
        block: &BlockRef,
    ) -> Result<Vec<Bytes>> {
        let q = self
            .queue_state(key)
            .ok_or_else(|| CompactorError::Log(format!("queue {key} is gone")))?;
        self.fetch_block(&q, object, block).await.map_err(log_error)
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
}
