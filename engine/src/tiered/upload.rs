//! Upload: durable WAL batches → one object → one metadata commit → WAL
//! space released.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_common::QueueKey;
use strata_compactor::upload::{Pending, plan};
use strata_metadata::{BlockRef, RangeRecord};
use strata_objects::format::{BlockMeta, ObjectBuilder};

use super::{UPLOAD_PREFIX, unique_suffix};
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::queue::{IndexEntry, QueueState};

/// What one upload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadSummary {
    pub object: Option<String>,
    pub batches: usize,
    pub queues: usize,
    pub raw_bytes: u64,
    pub object_bytes: u64,
    pub checkpoint: u64,
}

pub(crate) fn spawn_loop(engine: &Arc<Engine>) {
    let weak = Arc::downgrade(engine);
    let interval = engine.config.upload_interval;
    let trigger = engine.config.upload_trigger_bytes;
    let tick = interval.clamp(Duration::from_millis(10), Duration::from_millis(200));
    let mut shutdown = engine.shutdown.subscribe();
    tokio::spawn(async move {
        let mut last = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = shutdown.wait_for(|down| *down) => break,
            }
            let Some(engine) = weak.upgrade() else { break };
            let lag = engine.upload_lag_bytes();
            let wal = engine.wal.stats();
            // A filling WAL uploads at once: appends are waiting for room.
            let filling = wal.used_bytes.saturating_mul(2) > wal.max_bytes;
            if lag == 0 || (lag < trigger && !filling && last.elapsed() < interval) {
                continue;
            }
            match engine.upload_once().await {
                Ok(_) => {
                    last = Instant::now();
                    engine.tiering.clear_error();
                }
                Err(e) => engine.tiering.note_error("upload", &e),
            }
        }
    });
}

/// A batch chosen for upload, with the queue it belongs to.
struct Chosen {
    queue: Arc<QueueState>,
    entry: IndexEntry,
}

impl Engine {
    /// Durable WAL bytes not yet in object storage.
    pub fn upload_lag_bytes(&self) -> u64 {
        self.wal
            .durable_lsn()
            .saturating_sub(self.tiering.checkpoint.load(Ordering::Acquire))
    }

    /// Uploads durable WAL data from the checkpoint on (up to
    /// `max_object_bytes`) as one object, commits it, and releases WAL
    /// space below the new checkpoint.
    pub async fn upload_once(&self) -> Result<UploadSummary> {
        let tier = &self.tiering;
        let _one_at_a_time = tier.lock.lock().await;
        let from = tier.checkpoint.load(Ordering::Acquire);
        let durable = self.wal.durable_lsn();
        let mut chosen = self.pending_batches(from, durable);
        let sizes: Vec<Pending> = chosen
            .iter()
            .map(|c| Pending {
                lsn: c.entry.at.lsn,
                bytes: c.entry.bytes,
            })
            .collect();
        let (take, checkpoint) = plan(&sizes, durable, self.config.max_object_bytes);
        chosen.truncate(take);
        let mut summary = UploadSummary {
            checkpoint,
            ..UploadSummary::default()
        };
        if checkpoint <= from {
            self.release_wal(from).await?;
            return Ok(summary);
        }
        let node = &self.config.node_id;
        if chosen.is_empty() {
            // Only deleted topics' data in this span: just move the checkpoint.
            self.catalog
                .commit_upload(node, checkpoint, &[], Vec::new())
                .await?;
        } else {
            let payloads = self.read_payloads(&chosen).await?;
            let mut items: Vec<(&Chosen, Bytes)> = chosen.iter().zip(payloads).collect();
            items.sort_by_key(|(c, _)| (c.queue.key, c.entry.base_offset));
            let mut builder = ObjectBuilder::new(self.config.target_block_bytes);
            for (c, payload) in &items {
                builder
                    .add_batch(
                        c.queue.key,
                        c.entry.base_offset,
                        c.entry.count,
                        c.entry.at.timestamp_ms,
                        payload,
                    )
                    .map_err(|e| EngineError::Internal(format!("building upload object: {e}")))?;
            }
            summary.raw_bytes = builder.raw_bytes();
            let (object, blocks) = builder
                .finish()
                .map_err(|e| EngineError::Internal(format!("building upload object: {e}")))?;
            let name = format!(
                "{UPLOAD_PREFIX}{node}/{from:020}-{checkpoint:020}-{}.seg",
                unique_suffix(self)
            );
            summary.object_bytes = object.len() as u64;
            tier.objects.put(&name, object).await?;
            let ranges = ranges_from_blocks(&name, &blocks);
            let queues: BTreeMap<QueueKey, Arc<QueueState>> = chosen
                .iter()
                .map(|c| (c.queue.key, c.queue.clone()))
                .collect();
            let fences = queues
                .values()
                .map(|q| self.catalog.owner_check(q.key, &q.owner))
                .collect();
            if !self
                .catalog
                .commit_upload(node, checkpoint, &ranges, fences)
                .await?
            {
                return Err(EngineError::Conflict(format!(
                    "upload of {name} fenced: another node now owns one of its queues"
                )));
            }
            summary.batches = chosen.len();
            summary.queues = ranges.len();
            for range in ranges {
                if let Some(q) = queues.get(&range.queue) {
                    q.lock().push_cold(range);
                }
            }
            tier.counters.uploads.fetch_add(1, Ordering::Relaxed);
            tier.counters
                .uploaded_bytes
                .fetch_add(summary.object_bytes, Ordering::Relaxed);
            tracing::debug!(object = %name, batches = summary.batches, bytes = summary.object_bytes, "uploaded");
            summary.object = Some(name);
        }
        tier.checkpoint.store(checkpoint, Ordering::Release);
        self.release_wal(checkpoint).await?;
        Ok(summary)
    }

    /// Live batches with `from <= lsn < durable`, in WAL order.
    fn pending_batches(&self, from: u64, durable: u64) -> Vec<Chosen> {
        let topics: Vec<_> = self.topics_read().all().cloned().collect();
        let mut chosen = Vec::new();
        for topic in &topics {
            for q in &topic.queues {
                let inner = q.lock();
                let start = inner.index.partition_point(|e| e.at.lsn < from);
                for e in inner.index.iter().skip(start) {
                    if e.at.lsn >= durable {
                        break;
                    }
                    chosen.push(Chosen {
                        queue: q.clone(),
                        entry: *e,
                    });
                }
            }
        }
        chosen.sort_by_key(|c| c.entry.at.lsn);
        chosen
    }

    async fn read_payloads(&self, chosen: &[Chosen]) -> Result<Vec<Bytes>> {
        let lsns: Vec<u64> = chosen.iter().map(|c| c.entry.at.lsn).collect();
        let wal = self.wal.clone();
        let files = self.wal_files.clone();
        tokio::task::spawn_blocking(move || {
            let _files = files.read().unwrap_or_else(|p| p.into_inner());
            lsns.into_iter()
                .map(|lsn| wal.read(lsn).map_err(EngineError::from))
                .collect()
        })
        .await
        .map_err(|e| EngineError::Internal(format!("WAL read task failed: {e}")))?
    }

    /// Deletes sealed WAL segments wholly below `checkpoint` and forgets
    /// their index entries (the data is in object storage).
    pub(crate) async fn release_wal(&self, checkpoint: u64) -> Result<u64> {
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
        let freed = tokio::task::spawn_blocking(move || {
            let _no_readers = files.write().unwrap_or_else(|p| p.into_inner());
            wal.release_before(new_first)
        })
        .await
        .map_err(|e| EngineError::Internal(format!("WAL release task failed: {e}")))??;
        let topics: Vec<_> = self.topics_read().all().cloned().collect();
        for topic in &topics {
            for q in &topic.queues {
                q.lock().release_below(new_first);
            }
        }
        tracing::debug!(
            freed_bytes = freed,
            first_lsn = new_first,
            "released WAL segments"
        );
        Ok(freed)
    }
}

/// One range per queue from an object's blocks (sorted by queue, offset).
pub(crate) fn ranges_from_blocks(object: &str, blocks: &[BlockMeta]) -> Vec<RangeRecord> {
    let mut ranges: Vec<RangeRecord> = Vec::new();
    for b in blocks {
        let block = BlockRef {
            base_offset: b.base_offset,
            end_offset: b.end_offset,
            min_timestamp_ms: b.min_timestamp_ms,
            max_timestamp_ms: b.max_timestamp_ms,
            offset: b.offset,
            len: b.len,
            raw_len: b.raw_len,
            crc32c: b.crc32c,
        };
        match ranges.last_mut() {
            Some(r) if r.queue == b.queue => {
                r.end_offset = b.end_offset;
                r.min_timestamp_ms = r.min_timestamp_ms.min(b.min_timestamp_ms);
                r.max_timestamp_ms = r.max_timestamp_ms.max(b.max_timestamp_ms);
                r.stored_bytes += u64::from(b.len);
                r.blocks.push(block);
            }
            _ => ranges.push(RangeRecord {
                queue: b.queue,
                base_offset: b.base_offset,
                end_offset: b.end_offset,
                object: object.to_string(),
                blocks: vec![block],
                min_timestamp_ms: b.min_timestamp_ms,
                max_timestamp_ms: b.max_timestamp_ms,
                stored_bytes: u64::from(b.len),
            }),
        }
    }
    ranges
}

/// The format's view of a committed block.
pub(crate) fn block_meta(queue: QueueKey, b: &BlockRef) -> BlockMeta {
    BlockMeta {
        queue,
        base_offset: b.base_offset,
        end_offset: b.end_offset,
        min_timestamp_ms: b.min_timestamp_ms,
        max_timestamp_ms: b.max_timestamp_ms,
        offset: b.offset,
        len: b.len,
        raw_len: b.raw_len,
        crc32c: b.crc32c,
    }
}
