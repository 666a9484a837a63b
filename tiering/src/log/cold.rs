//! Reading cold offsets: range → block → block cache or a ranged GET on the
//! cold-read runtime, with read-ahead of the next block.

use std::sync::Arc;

use strata_cache::{BlockKey, CacheError};
use strata_common::StoredMessage;
use strata_common::usage::Counter;
use strata_metadata::BlockRef;
use strata_objects::format::decode_block;

use super::decoded::DecodedBlock;
use super::{QueueLog, TierError, Tiers};
use crate::batch::{BatchError, decode_batch, decode_header};

impl Tiers {
    /// Messages `[offset, end)` from object storage, at most `max`, within
    /// `budget` bytes of batches (at least one is always read).
    pub(crate) async fn read_cold(
        &self,
        q: &QueueLog,
        offset: u64,
        end: u64,
        max: usize,
        budget: u64,
    ) -> Result<Vec<StoredMessage>, TierError> {
        let mut out = Vec::new();
        let mut cursor = offset;
        let mut bytes = 0u64;
        while cursor < end && out.len() < max && (bytes == 0 || bytes < budget) {
            let Some(range) = q.lock().cold_range(cursor) else {
                break;
            };
            let i = range.blocks.partition_point(|b| b.end_offset <= cursor);
            let Some(block) = range.blocks.get(i) else {
                break;
            };
            let decoded = self.fetch_block(q, &range.object, block).await?;
            // Read ahead: the range's next block, or past its last one the
            // next range's first, so a reader of a queue whose data lies in
            // many small ranges (one per upload) does not wait for a GET at
            // the start of each.
            match range.blocks.get(i + 1) {
                Some(next) => self.prefetch_block(q, &range.object, next),
                None => {
                    // Not when what follows is still in the WAL (the next
                    // read goes there), and from the block holding the
                    // range's end: a merge may have replaced the ranges
                    // meanwhile, and the next range may start earlier.
                    let at = range.end_offset;
                    let next = {
                        let index = q.lock();
                        index
                            .cold_range(at)
                            .filter(|_| index.hot_first().is_none_or(|h| at < h))
                    };
                    if let Some(next) = next {
                        let i = next.blocks.partition_point(|b| b.end_offset <= at);
                        if let Some(block) = next.blocks.get(i) {
                            self.prefetch_block(q, &next.object, block);
                        }
                    }
                }
            }
            let corrupt = |e: BatchError| {
                TierError::Corrupt(format!(
                    "object {} block at byte {}: batch does not decode: {e}",
                    range.object, block.offset
                ))
            };
            // A block holds hundreds of batches and a receive wants a few
            // dozen messages: only the batches it reads are decoded.
            let first = decoded.first_at(cursor);
            let batches = decoded.payloads.iter().zip(&decoded.spans).skip(first);
            for (payload, &(base, count)) in batches {
                // A small budget (a reader near its consume quota) stops
                // inside the block rather than decoding all of it.
                if out.len() >= max || (!out.is_empty() && bytes >= budget) {
                    break;
                }
                if base + u64::from(count) <= cursor || base >= end {
                    continue;
                }
                bytes += payload.len() as u64;
                let (header, messages) = decode_batch(payload).map_err(corrupt)?;
                for (message, at) in messages.into_iter().zip(header.base_offset..) {
                    if at >= cursor && at < end && out.len() < max {
                        out.push(StoredMessage {
                            offset: at,
                            timestamp_ms: header.timestamp_ms,
                            message,
                        });
                    }
                }
            }
            cursor = block.end_offset;
        }
        Ok(out)
    }

    /// One block's batches, decoded: kept from a recent read, or decoded
    /// from the block cache or object storage (a miss costs one ranged
    /// GET, billed to the queue's tenant).
    pub async fn fetch_block(
        &self,
        q: &QueueLog,
        object: &str,
        block: &BlockRef,
    ) -> Result<Arc<DecodedBlock>, TierError> {
        let key = BlockKey {
            object: object.to_string(),
            offset: block.offset,
        };
        if let Some(decoded) = self.decoded.get(&key) {
            return Ok(decoded);
        }
        let memo_key = key.clone();
        let stored = match self.stored_block(q, key.clone(), block).await {
            // This read waited on another's fetch (a read-ahead, say) that
            // failed, and got only its message. Failures are not cached:
            // fetch once more, so the error is this read's own and keeps
            // its kind (a missing object makes a separate compactor's node
            // resynchronise the queue's ranges).
            Err(TierError::Cache(CacheError::FetchFailed { .. })) => {
                self.stored_block(q, key, block).await?
            }
            fetched => fetched?,
        };
        let corrupt = |e: String| {
            TierError::Corrupt(format!(
                "object {object} block at byte {}: {e}",
                block.offset
            ))
        };
        let payloads = decode_block(block, &stored).map_err(|e| corrupt(e.to_string()))?;
        let spans = payloads
            .iter()
            .map(|p| {
                decode_header(p)
                    .map(|h| (h.base_offset, h.count))
                    .map_err(|e| corrupt(format!("batch does not decode: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let decoded = Arc::new(DecodedBlock::new(payloads, spans));
        self.decoded
            .insert(memo_key, decoded.clone(), block.raw_len as usize);
        Ok(decoded)
    }

    /// The block's stored bytes, through the block cache.
    async fn stored_block(
        &self,
        q: &QueueLog,
        key: BlockKey,
        block: &BlockRef,
    ) -> Result<bytes::Bytes, TierError> {
        let fetch = self.ranged_get(q, &key.object, block);
        self.blocks.get_or_fetch(key, move || fetch).await
    }

    /// A block's ranged GET as the block cache runs it on a miss: through
    /// [`ColdReader::run`] (the cold runtime, a fetch permit, the bandwidth
    /// budget), billed to the queue's tenant when it runs.
    ///
    /// [`ColdReader::run`]: strata_cache::ColdReader::run
    fn ranged_get(
        &self,
        q: &QueueLog,
        object: &str,
        block: &BlockRef,
    ) -> impl Future<Output = Result<bytes::Bytes, TierError>> + Send + 'static {
        let objects = self.objects.clone();
        let cold = self.cold.clone();
        let name = object.to_string();
        let range = block.offset..block.offset + u64::from(block.len);
        let meter = self.meter.clone();
        let tenant = q.tenant.clone();
        async move {
            cold.run(async move {
                meter.add(&tenant, Counter::ObjectGets, 1);
                let bytes = objects.get_range(&name, range).await?;
                let len = bytes.len() as u64;
                Ok::<_, TierError>((bytes, len))
            })
            .await
        }
    }

    /// Read-ahead: warms the cache with the block a sequential reader needs
    /// next. Its GET is a read's (`ranged_get`), under the same permits
    /// and bandwidth budget: with many readers the read-ahead is most of
    /// the GETs, and left outside the limits it took the network and the
    /// workers the limits keep for writes.
    fn prefetch_block(&self, q: &QueueLog, object: &str, block: &BlockRef) {
        let key = BlockKey {
            object: object.to_string(),
            offset: block.offset,
        };
        let blocks = self.blocks.clone();
        let fetch = self.ranged_get(q, object, block);
        self.cold.spawn_prefetch(async move {
            let fetched = blocks.get_or_fetch(key, move || fetch).await;
            if let Err(e) = fetched {
                tracing::debug!(error = %e, "read-ahead failed");
            }
        });
    }
}
