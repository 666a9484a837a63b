//! Reading cold offsets: range → block → block cache or a ranged GET on the
//! cold-read runtime, with read-ahead of the next block.

use std::sync::Arc;

use bytes::Bytes;
use strata_cache::BlockKey;
use strata_common::StoredMessage;
use strata_common::usage::Counter;
use strata_metadata::BlockRef;
use strata_objects::format::decode_block;
use strata_tiering::batch::decode_batch;

use crate::core::Core;
use crate::core::queue::QueueState;
use crate::error::{EngineError, Result};

impl Core {
    /// Messages `[offset, end)` from object storage, at most `max`, within
    /// the read byte budget (at least one block is always read).
    pub(crate) async fn read_cold(
        &self,
        q: &Arc<QueueState>,
        offset: u64,
        end: u64,
        max: usize,
    ) -> Result<Vec<StoredMessage>> {
        let budget = self.config.max_read_bytes as u64;
        let mut out = Vec::new();
        let mut cursor = offset;
        let mut bytes = 0u64;
        let mut resynced = false;
        while cursor < end && out.len() < max && (bytes == 0 || bytes < budget) {
            let Some(range) = q.lock().cold_range(cursor) else {
                break;
            };
            let i = range.blocks.partition_point(|b| b.end_offset <= cursor);
            let Some(block) = range.blocks.get(i) else {
                break;
            };
            let payloads = match self.fetch_block(q, &range.object, block).await {
                Ok(payloads) => payloads,
                // A separate compactor merged the range away and collected
                // its object: take the queue's ranges as they are now, once.
                Err(EngineError::ObjectMissing(_)) if self.compactor_is_separate() && !resynced => {
                    resynced = true;
                    self.sync_queue_cold(q, None).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(next) = range.blocks.get(i + 1) {
                self.prefetch_block(q, &range.object, next);
            }
            for payload in payloads {
                let (header, messages) = decode_batch(&payload).map_err(|e| {
                    EngineError::Corrupt(format!(
                        "object {} block at byte {}: batch does not decode: {e}",
                        range.object, block.offset
                    ))
                })?;
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
            bytes += u64::from(block.raw_len);
            cursor = block.end_offset;
        }
        Ok(out)
    }

    /// One block's batch payloads, from the cache or object storage.
    pub(crate) async fn fetch_block(
        &self,
        q: &QueueState,
        object: &str,
        block: &BlockRef,
    ) -> Result<Vec<Bytes>> {
        let stored = self.fetch_stored_block(q, object, block).await?;
        decode_block(block, &stored).map_err(|e| {
            EngineError::Corrupt(format!(
                "object {object} block at byte {}: {e}",
                block.offset
            ))
        })
    }

    /// A miss costs one ranged GET, billed to the queue's tenant.
    async fn fetch_stored_block(
        &self,
        q: &QueueState,
        object: &str,
        block: &BlockRef,
    ) -> Result<Bytes> {
        let key = BlockKey {
            object: object.to_string(),
            offset: block.offset,
        };
        let objects = self.tiering.objects.clone();
        let cold = self.tiering.cold.clone();
        let name = object.to_string();
        let range = block.offset..block.offset + u64::from(block.len);
        let meter = self.meter.clone();
        let tenant = q.tenant.clone();
        self.tiering
            .blocks
            .get_or_fetch(key, move || async move {
                cold.run(async move {
                    meter.add(&tenant, Counter::ObjectGets, 1);
                    let bytes = objects.get_range(&name, range).await?;
                    let len = bytes.len() as u64;
                    Ok::<_, EngineError>((bytes, len))
                })
                .await
            })
            .await
    }

    /// Read-ahead: warms the cache with the block a sequential reader needs
    /// next, on the cold runtime.
    fn prefetch_block(&self, q: &QueueState, object: &str, block: &BlockRef) {
        let key = BlockKey {
            object: object.to_string(),
            offset: block.offset,
        };
        let blocks = self.tiering.blocks.clone();
        let objects = self.tiering.objects.clone();
        let name = object.to_string();
        let range = block.offset..block.offset + u64::from(block.len);
        let meter = self.meter.clone();
        let tenant = q.tenant.clone();
        self.tiering.cold.spawn_prefetch(async move {
            let fetched = blocks
                .get_or_fetch(key, move || async move {
                    meter.add(&tenant, Counter::ObjectGets, 1);
                    objects
                        .get_range(&name, range)
                        .await
                        .map_err(EngineError::from)
                })
                .await;
            if let Err(e) = fetched {
                tracing::debug!(error = %e, "read-ahead failed");
            }
        });
    }
}
