//! Upload: durable WAL batches → one object → one metadata commit → WAL
//! space released.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use strata_common::QueueKey;
use strata_common::usage::Counter;
use strata_metadata::RangeRecord;
use strata_objects::format::{BlockMeta, ObjectBuilder};

use super::{UPLOAD_PREFIX, unique_suffix};
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::queue::QueueState;
use strata_tiering::batch::{BatchHeader, KIND_MESSAGE_BATCH, decode_header, record_kind};
use strata_tiering::wal::frame::FRAME_HEADER_LEN;

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

pub(crate) fn spawn_loop(engine: &Arc<Engine>) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(engine);
    let interval = engine.config.upload_interval;
    let trigger = engine.config.upload_trigger_bytes;
    let tick = interval.clamp(Duration::from_millis(10), Duration::from_millis(200));
    let mut shutdown = engine.shutdown.subscribe();
    let clock = engine.clock.clone();
    tokio::spawn(async move {
        let mut last = clock.monotonic();
        loop {
            tokio::select! {
                _ = clock.sleep(tick) => {}
                _ = shutdown.wait_for(|down| *down) => break,
            }
            let Some(engine) = weak.upgrade() else { break };
            let lag = engine.upload_lag_bytes();
            let wal = engine.wal.stats();
            // A filling WAL uploads at once: appends are waiting for room.
            let filling = wal.used_bytes.saturating_mul(2) > wal.max_bytes;
            if lag == 0
                || (lag < trigger && !filling && clock.monotonic().saturating_sub(last) < interval)
            {
                continue;
            }
            match engine.upload_once().await {
                Ok(_) => {
                    last = clock.monotonic();
                    engine.tiering.clear_error();
                }
                Err(e) => engine.tiering.note_error("upload", &e),
            }
        }
    })
}

/// A batch chosen for upload, with the queue it belongs to.
struct Chosen {
    queue: Arc<QueueState>,
    header: BatchHeader,
    payload: Bytes,
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
    ///
    /// The span is read from the WAL itself, not from the queues' indexes:
    /// a batch is durable (and may be acknowledged) a moment before its
    /// publisher records it in the index, and the upload must not skip it.
    pub async fn upload_once(&self) -> Result<UploadSummary> {
        let tier = &self.tiering;
        let _one_at_a_time = tier.lock.lock().await;
        let from = tier
            .checkpoint
            .load(Ordering::Acquire)
            .max(self.wal.stats().first_lsn);
        let durable = self.wal.durable_lsn();
        let (records, checkpoint) = self.scan_wal(from, durable).await?;
        let mut summary = UploadSummary {
            checkpoint,
            ..UploadSummary::default()
        };
        if checkpoint <= from {
            self.release_wal(from).await?;
            return Ok(summary);
        }
        let chosen = self.live_batches(records);
        let node = &self.config.node_id;
        if chosen.is_empty() {
            // Only deleted topics' data in this span: just move the checkpoint.
            self.catalog
                .commit_upload(node, checkpoint, &[], Vec::new())
                .await?;
        } else {
            let mut builder = ObjectBuilder::new(self.config.target_block_bytes);
            for c in &chosen {
                let h = &c.header;
                builder
                    .add_batch(h.queue, h.base_offset, h.count, h.timestamp_ms, &c.payload)
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
            // One PUT per tenant whose data the object holds.
            let tenants: std::collections::BTreeSet<&str> =
                chosen.iter().map(|c| &*c.queue.tenant).collect();
            for tenant in tenants {
                self.meter.add(tenant, Counter::ObjectPuts, 1);
            }
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

    /// Reads WAL records from `from` until `durable` or until the next one
    /// would pass `max_object_bytes` (at least one is read). Returns them
    /// with the position after the last one read: the next checkpoint.
    async fn scan_wal(&self, from: u64, durable: u64) -> Result<(Vec<(u64, Bytes)>, u64)> {
        let wal = self.wal.clone();
        let files = self.wal_files.clone();
        let max = self.config.max_object_bytes;
        tokio::task::spawn_blocking(move || {
            let _files = files.read().unwrap_or_else(|p| p.into_inner());
            let mut lsn = from;
            let mut total = 0u64;
            let mut records = Vec::new();
            while lsn < durable {
                let payload = wal.read(lsn)?;
                let frame = (FRAME_HEADER_LEN + payload.len()) as u64;
                if !records.is_empty() && total + frame > max {
                    break;
                }
                total += frame;
                records.push((lsn, payload));
                lsn += frame;
            }
            Ok((records, lsn))
        })
        .await
        .map_err(|e| EngineError::Internal(format!("WAL scan task failed: {e}")))?
    }

    /// The message batches among `records` that belong to live queues,
    /// sorted by queue, then offset (the object's order).
    fn live_batches(&self, records: Vec<(u64, Bytes)>) -> Vec<Chosen> {
        let topics = self.topics_read();
        let mut chosen: Vec<Chosen> = records
            .into_iter()
            .filter(|(_, p)| record_kind(p) == Some(KIND_MESSAGE_BATCH))
            .filter_map(|(_, payload)| {
                let header = decode_header(&payload).ok()?;
                let queue = topics
                    .by_id(header.queue.topic)?
                    .queues
                    .get(header.queue.queue as usize)?
                    .clone();
                Some(Chosen {
                    queue,
                    header,
                    payload,
                })
            })
            .collect();
        chosen.sort_by_key(|c| (c.header.queue, c.header.base_offset));
        chosen
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

/// One range per queue from an object's blocks (sorted by queue, offset).
pub(crate) fn ranges_from_blocks(object: &str, blocks: &[BlockMeta]) -> Vec<RangeRecord> {
    let mut ranges: Vec<RangeRecord> = Vec::new();
    for &BlockMeta { queue, block } in blocks {
        match ranges.last_mut() {
            Some(r) if r.queue == queue => {
                r.end_offset = block.end_offset;
                r.min_timestamp_ms = r.min_timestamp_ms.min(block.min_timestamp_ms);
                r.max_timestamp_ms = r.max_timestamp_ms.max(block.max_timestamp_ms);
                r.stored_bytes += u64::from(block.len);
                r.blocks.push(block);
            }
            _ => ranges.push(RangeRecord {
                queue,
                base_offset: block.base_offset,
                end_offset: block.end_offset,
                object: object.to_string(),
                blocks: vec![block],
                min_timestamp_ms: block.min_timestamp_ms,
                max_timestamp_ms: block.max_timestamp_ms,
                stored_bytes: u64::from(block.len),
            }),
        }
    }
    ranges
}
