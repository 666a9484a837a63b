//! Upload: durable WAL batches → one object holding many queues → one
//! metadata commit (ranges and checkpoint, fenced by the owners' epochs) →
//! WAL space released.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use strata_common::QueueKey;
use strata_metadata::RangeRecord;
use strata_objects::format::{BlockMeta, ObjectBuilder};
use strata_tiering::batch::{BatchHeader, KIND_MESSAGE_BATCH, decode_header, record_kind};

use crate::compactor::Compactor;
use crate::error::{CompactorError, Result};
use crate::host::{LiveQueue, Refresh, TieredLog};

/// Object prefix of upload objects (many queues each).
pub const UPLOAD_PREFIX: &str = "seg/";

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

/// A batch chosen for upload, with the queue it belongs to.
struct Chosen {
    queue: LiveQueue,
    header: BatchHeader,
    payload: Bytes,
}

impl Compactor {
    /// Uploads durable WAL data from the checkpoint on (up to
    /// `max_object_bytes`) as one object, commits it, and releases WAL
    /// space below the new checkpoint.
    ///
    /// The span is read from the WAL itself, not from the queues' indexes:
    /// a batch is durable (and may be acknowledged) a moment before its
    /// publisher records it in the index, and the upload must not skip it.
    pub async fn upload_once(&self) -> Result<UploadSummary> {
        let log = self.log()?;
        self.verify_store().await?;
        let _one_at_a_time = self.lock.lock().await;
        // Nothing is read or written while this node may no longer own its
        // queues: the commit would be refused after a PUT of an orphan.
        if let Err(why) = log.write_fence() {
            return Err(CompactorError::Fenced(format!(
                "not uploading while this node's write fence is shut: {why}"
            )));
        }
        log.refresh(Refresh::Queues).await?;
        let from = self.checkpoint().max(log.first_lsn());
        let durable = log.durable_lsn();
        let (records, checkpoint) = log
            .read_wal(from, durable, self.config.max_object_bytes)
            .await?;
        let mut summary = UploadSummary {
            checkpoint,
            ..UploadSummary::default()
        };
        if checkpoint <= from {
            log.release_wal(from).await?;
            return Ok(summary);
        }
        let chosen = live_batches(log.as_ref(), records);
        let node = &self.config.node_id;
        if chosen.is_empty() {
            // Only deleted topics' data in this span: just move the checkpoint.
            self.catalog
                .commit_upload(node, checkpoint, &[], Vec::new())
                .await?;
        } else {
            let batches: Vec<(BatchHeader, Bytes)> = chosen
                .iter()
                .map(|c| (c.header.clone(), c.payload.clone()))
                .collect();
            let target_block_bytes = self.config.target_block_bytes;
            let (raw_bytes, object, blocks) = Compactor::on_blocking_pool(move || {
                let built = |e| CompactorError::Internal(format!("building upload object: {e}"));
                let mut builder = ObjectBuilder::new(target_block_bytes);
                for (h, payload) in &batches {
                    builder
                        .add_batch(h.queue, h.base_offset, h.count, h.timestamp_ms, payload)
                        .map_err(built)?;
                }
                let raw_bytes = builder.raw_bytes();
                let (object, blocks) = builder.finish_parts().map_err(built)?;
                Ok((raw_bytes, object, blocks))
            })
            .await?;
            summary.raw_bytes = raw_bytes;
            let name = format!(
                "{UPLOAD_PREFIX}{node}/{from:020}-{checkpoint:020}-{}.seg",
                self.unique_suffix()
            );
            summary.object_bytes = object.iter().map(|part| part.len() as u64).sum();
            let began = self.clock.monotonic();
            self.objects.put_parts(&name, object).await?;
            // One PUT per tenant whose data the object holds.
            let tenants: std::collections::BTreeSet<&str> =
                chosen.iter().map(|c| &*c.queue.tenant).collect();
            for tenant in tenants {
                log.object_put(tenant);
            }
            let ranges = ranges_from_blocks(&name, &blocks);
            let queues: BTreeMap<QueueKey, &LiveQueue> =
                chosen.iter().map(|c| (c.queue.key, &c.queue)).collect();
            let fences = queues
                .values()
                .map(|q| self.catalog.owner_check(q.key, &q.owner))
                .collect();
            self.fresh_enough(&name, began)?;
            self.confirm_store_holds(&name).await?;
            if !self
                .catalog
                .commit_upload(node, checkpoint, &ranges, fences)
                .await?
            {
                return Err(CompactorError::Fenced(format!(
                    "upload of {name} fenced: another node now owns one of its queues"
                )));
            }
            summary.batches = chosen.len();
            summary.queues = ranges.len();
            log.ranges_uploaded(&ranges);
            self.counters.uploads.fetch_add(1, Ordering::Relaxed);
            self.counters
                .uploaded_bytes
                .fetch_add(summary.object_bytes, Ordering::Relaxed);
            tracing::debug!(object = %name, batches = summary.batches, bytes = summary.object_bytes, "uploaded");
            summary.object = Some(name);
        }
        self.checkpoint.store(checkpoint, Ordering::Release);
        log.release_wal(checkpoint).await?;
        Ok(summary)
    }
}

/// The message batches among `records` that belong to live queues, sorted
/// by queue, then offset (the object's order).
fn live_batches(log: &dyn TieredLog, records: Vec<(u64, Bytes)>) -> Vec<Chosen> {
    let mut chosen: Vec<Chosen> = records
        .into_iter()
        .filter(|(_, p)| record_kind(p) == Some(KIND_MESSAGE_BATCH))
        .filter_map(|(_, payload)| {
            let header = decode_header(&payload).ok()?;
            let queue = log.queue(header.queue)?;
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

/// One range per queue from an object's blocks (sorted by queue, offset).
pub fn ranges_from_blocks(object: &str, blocks: &[BlockMeta]) -> Vec<RangeRecord> {
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
