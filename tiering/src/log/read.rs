//! The read path over the tiers: routing (cold, tail cache, WAL), the WAL
//! read, and the offset for a time.

use std::sync::Arc;

use strata_common::StoredMessage;

use super::error::task_failed;
use super::{IndexEntry, QueueLog, TierError, Tiers};
use crate::batch::{decode_batch, decode_header};

impl Tiers {
    /// Messages `[offset, end)` of `q`, at most `max`, within `max_bytes`
    /// (and the configured read byte budget), from whichever tier holds
    /// `offset`. `end` must not pass the queue's high watermark. The tiers
    /// count whole batches and blocks, so a read may pass the bytes by one
    /// and always returns at least one message.
    pub async fn read(
        self: &Arc<Self>,
        q: &Arc<QueueLog>,
        offset: u64,
        end: u64,
        max: usize,
        max_bytes: u64,
    ) -> Result<Vec<StoredMessage>, TierError> {
        if offset >= end {
            return Ok(Vec::new());
        }
        let budget = max_bytes.min(self.max_read_bytes);
        // Offsets below the first hot batch live only in object storage.
        let cold = {
            let index = q.lock();
            index.cold_range(offset).is_some() && index.hot_first().is_none_or(|h| offset < h)
        };
        if cold {
            return self
                .read_cold_off_workers(q, offset, end, max, budget)
                .await;
        }
        if let Some(hit) = self.tail.read(q.key, offset, end, max, budget) {
            return Ok(hit);
        }
        if let Some(hot) = self.read_wal(q, offset, end, budget).await? {
            return Ok(hot);
        }
        self.read_cold_off_workers(q, offset, end, max, budget)
            .await
    }

    /// Decompressing and decoding cold blocks is CPU work; it runs on the
    /// cold-read runtime so catch-up readers never occupy the workers that
    /// serve producers.
    async fn read_cold_off_workers(
        self: &Arc<Self>,
        q: &Arc<QueueLog>,
        offset: u64,
        end: u64,
        max: usize,
        budget: u64,
    ) -> Result<Vec<StoredMessage>, TierError> {
        let tiers = self.clone();
        let queue = q.clone();
        self.cold
            .handle()
            .spawn(async move { tiers.read_cold(&queue, offset, end, max, budget).await })
            .await
            .map_err(task_failed("cold read"))?
    }

    /// Reads [offset, end) from WAL records, within `budget` bytes.
    /// `None` when `offset` left the WAL (its segment was released after an
    /// upload) between routing and reading: the caller reads it cold.
    async fn read_wal(
        &self,
        q: &Arc<QueueLog>,
        offset: u64,
        end: u64,
        budget: u64,
    ) -> Result<Option<Vec<StoredMessage>>, TierError> {
        let queue = q.clone();
        let wal = self.wal.clone();
        let files = self.files.clone();
        tokio::task::spawn_blocking(move || {
            // Releasing segments drops their index entries under the gate
            // and deletes the files after it, so entries taken here point
            // at segments that stay until this read is done.
            let _files = files.read().unwrap_or_else(|p| p.into_inner());
            let entries: Vec<IndexEntry> = {
                let index = queue.lock();
                if index.hot_first().is_none_or(|h| offset < h) {
                    return Ok(None);
                }
                let mut bytes = 0u64;
                index
                    .entries_from(offset)
                    .take_while(|e| e.base_offset < end)
                    .take_while(|e| {
                        // Always take the first batch, however large.
                        let take = bytes == 0 || bytes + e.bytes <= budget;
                        bytes += e.bytes;
                        take
                    })
                    .copied()
                    .collect()
            };
            let mut out = Vec::new();
            for entry in entries {
                let payload = wal.read(entry.at.lsn)?;
                let (header, messages) = decode_batch(&payload).map_err(|e| {
                    TierError::Corrupt(format!(
                        "WAL record at {} does not decode: {e}",
                        entry.at.lsn
                    ))
                })?;
                for (message, msg_offset) in messages.into_iter().zip(header.base_offset..) {
                    if msg_offset >= offset && msg_offset < end {
                        out.push(StoredMessage {
                            offset: msg_offset,
                            timestamp_ms: header.timestamp_ms,
                            message,
                        });
                    }
                }
            }
            Ok(Some(out))
        })
        .await
        .map_err(task_failed("WAL read"))?
    }

    /// The first offset of `q` whose message was appended at or after
    /// `timestamp_ms` (the high watermark if none was). Timestamps never
    /// decrease within a queue, so the index's time ranges narrow the search
    /// to one block or one WAL batch.
    pub async fn offset_for_time(&self, q: &QueueLog, timestamp_ms: i64) -> Result<u64, TierError> {
        let (cold_hit, first, hw) = {
            let index = q.lock();
            let hit = index.cold.iter().find_map(|r| {
                r.blocks
                    .iter()
                    .find(|b| b.max_timestamp_ms >= timestamp_ms)
                    .map(|b| (r.object.clone(), *b))
            });
            let hot = index
                .index
                .iter()
                .find(|e| e.at.timestamp_ms >= timestamp_ms)
                .map(|e| e.base_offset);
            let hw = index.high_watermark;
            match hit {
                Some(h) => (Some(h), index.first_offset, hw),
                None => return Ok(hot.unwrap_or(hw).clamp(index.first_offset, hw)),
            }
        };
        let Some((object, block)) = cold_hit else {
            return Ok(hw);
        };
        for payload in &self.fetch_block(q, &object, &block).await?.payloads {
            let header = decode_header(payload)
                .map_err(|e| TierError::Corrupt(format!("object {object}: {e}")))?;
            if header.timestamp_ms >= timestamp_ms {
                return Ok(header.base_offset.clamp(first, hw));
            }
        }
        Ok(block.end_offset.clamp(first, hw))
    }
}
