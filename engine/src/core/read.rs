//! The read path: tail cache when recent, otherwise the WAL; long polls
//! when a reader is caught up.

use std::sync::Arc;
use std::time::Duration;

use strata_common::StoredMessage;
use strata_common::usage::Counter;
use strata_tiering::batch::{decode_batch, decode_header};

use super::Core;
use super::queue::{IndexEntry, QueueState};
use crate::error::{EngineError, Result};
use crate::types::ReadResult;

impl Core {
    /// Reads up to `max_messages` from `offset`. When `offset` is the end of
    /// the queue, waits up to `wait` (capped by config) for new messages.
    pub async fn read(
        self: &Arc<Self>,
        tenant: &str,
        topic: &str,
        queue: u32,
        offset: u64,
        max_messages: usize,
        wait: Duration,
    ) -> Result<ReadResult> {
        let result = self
            .read_inner(tenant, topic, queue, offset, max_messages, wait)
            .await?;
        let bytes = result
            .messages
            .iter()
            .map(|m| m.message.approx_size() as u64)
            .sum();
        let count = result.messages.len() as u64;
        self.meter.add(tenant, Counter::DeliveredMessages, count);
        self.meter.add(tenant, Counter::DeliveredBytes, bytes);
        Ok(result)
    }

    /// [`Core::read`] without metering (POP meters what it delivers).
    pub(crate) async fn read_inner(
        self: &Arc<Self>,
        tenant: &str,
        topic: &str,
        queue: u32,
        offset: u64,
        max_messages: usize,
        wait: Duration,
    ) -> Result<ReadResult> {
        self.check_open()?;
        let topic_state = self.topic(tenant, topic)?;
        let q = topic_state.queue(queue)?.clone();
        let max_messages = max_messages.clamp(1, self.config.max_read_messages);
        let (first, hw) = self.bounds(&q, topic, offset)?;
        if offset == hw && !wait.is_zero() {
            self.wait_past(&q, offset, wait.min(self.config.max_wait))
                .await;
        }
        let (first_now, hw) = self.bounds(&q, topic, offset)?;
        let first = first.max(first_now);
        let end = hw.min(offset.saturating_add(max_messages as u64));
        // Offsets below the first hot batch live only in object storage.
        let cold = {
            let inner = q.lock();
            inner.cold_range(offset).is_some() && inner.hot_first().is_none_or(|h| offset < h)
        };
        let messages = if offset >= end {
            Vec::new()
        } else if cold {
            self.read_cold_off_workers(&q, offset, end, max_messages)
                .await?
        } else if let Some(hit) = self.cache.read(q.key, offset, end, max_messages) {
            hit
        } else if let Some(hot) = self.read_wal(&q, offset, end).await? {
            hot
        } else {
            self.read_cold_off_workers(&q, offset, end, max_messages)
                .await?
        };
        let next_offset = messages.last().map_or(offset, |m| m.offset + 1);
        Ok(ReadResult {
            messages,
            next_offset,
            first_offset: first,
            high_watermark: hw,
        })
    }

    /// The first offset whose message was appended at or after
    /// `timestamp_ms` (the end of the queue if none was). Timestamps never
    /// decrease within a queue, so the index's time ranges narrow the search
    /// to one block or one WAL batch.
    pub async fn offset_for_time(
        &self,
        tenant: &str,
        topic: &str,
        queue: u32,
        timestamp_ms: i64,
    ) -> Result<u64> {
        let topic_state = self.topic(tenant, topic)?;
        let q = topic_state.queue(queue)?.clone();
        self.queue_offset_for_time(&q, timestamp_ms).await
    }

    /// [`Core::offset_for_time`] on a queue already looked up.
    pub(crate) async fn queue_offset_for_time(
        &self,
        q: &Arc<QueueState>,
        timestamp_ms: i64,
    ) -> Result<u64> {
        let (cold_hit, first, hw) = {
            let inner = q.lock();
            let hit = inner.cold.iter().find_map(|r| {
                r.blocks
                    .iter()
                    .find(|b| b.max_timestamp_ms >= timestamp_ms)
                    .map(|b| (r.object.clone(), *b))
            });
            let hot = inner
                .index
                .iter()
                .find(|e| e.at.timestamp_ms >= timestamp_ms)
                .map(|e| e.base_offset);
            let hw = inner.high_watermark;
            match hit {
                Some(h) => (Some(h), inner.first_offset, hw),
                None => return Ok(hot.unwrap_or(hw).clamp(inner.first_offset, hw)),
            }
        };
        let Some((object, block)) = cold_hit else {
            return Ok(hw);
        };
        for payload in self.fetch_block(q, &object, &block).await? {
            let header = decode_header(&payload)
                .map_err(|e| EngineError::Corrupt(format!("object {object}: {e}")))?;
            if header.timestamp_ms >= timestamp_ms {
                return Ok(header.base_offset.clamp(first, hw));
            }
        }
        Ok(block.end_offset.clamp(first, hw))
    }

    /// Decompressing and decoding cold blocks is CPU work; it runs on the
    /// cold-read runtime so catch-up readers never occupy the workers that
    /// serve producers.
    async fn read_cold_off_workers(
        self: &Arc<Self>,
        q: &Arc<QueueState>,
        offset: u64,
        end: u64,
        max_messages: usize,
    ) -> Result<Vec<StoredMessage>> {
        let core = self.clone();
        let queue = q.clone();
        self.tiering
            .cold
            .handle()
            .spawn(async move { core.read_cold(&queue, offset, end, max_messages).await })
            .await
            .map_err(|e| EngineError::Internal(format!("cold read task failed: {e}")))?
    }

    /// The queue's (first, high watermark), or OFFSET_OUT_OF_RANGE.
    fn bounds(&self, q: &QueueState, topic: &str, offset: u64) -> Result<(u64, u64)> {
        let inner = q.lock();
        let (first, hw) = (inner.first_offset, inner.high_watermark);
        if offset < first || offset > hw {
            return Err(EngineError::OffsetOutOfRange {
                topic: topic.to_string(),
                queue: q.key.queue,
                offset,
                first,
                end: hw,
            });
        }
        Ok((first, hw))
    }

    pub(crate) async fn wait_past(&self, q: &QueueState, offset: u64, wait: Duration) {
        let mut hw = q.watch();
        let mut shutdown = self.shutdown.subscribe();
        tokio::select! {
            _ = hw.wait_for(|hw| *hw > offset) => {}
            _ = shutdown.wait_for(|down| *down) => {}
            _ = self.clock.sleep(wait) => {}
        }
    }

    /// Reads [offset, end) from WAL records, within the byte budget.
    /// `None` when `offset` left the WAL (its segment was released after an
    /// upload) between routing and reading: the caller reads it cold.
    async fn read_wal(
        &self,
        q: &Arc<QueueState>,
        offset: u64,
        end: u64,
    ) -> Result<Option<Vec<StoredMessage>>> {
        let budget = self.config.max_read_bytes as u64;
        let queue = q.clone();
        let wal = self.wal.clone();
        let files = self.wal_files.clone();
        tokio::task::spawn_blocking(move || {
            // Segment deletion (and the index update that goes with it)
            // waits while this read holds the gate, so the entries taken
            // here stay readable until the read is done.
            let _files = files.read().unwrap_or_else(|p| p.into_inner());
            let entries: Vec<IndexEntry> = {
                let inner = queue.lock();
                if inner.hot_first().is_none_or(|h| offset < h) {
                    return Ok(None);
                }
                let mut bytes = 0u64;
                inner
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
                    EngineError::Internal(format!(
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
        .map_err(|e| EngineError::Internal(format!("WAL read task failed: {e}")))?
    }
}
