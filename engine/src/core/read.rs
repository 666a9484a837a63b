//! The read path: bounds, long polls when a reader is caught up, metering;
//! the tiers (`strata_tiering::log`) serve the messages.

use std::sync::Arc;
use std::time::Duration;

use strata_common::usage::Counter;
use strata_tiering::log::TierError;

use super::Core;
use super::queue::QueueState;
use crate::error::{EngineError, Result};
use crate::filter::TagFilter;
use crate::types::ReadResult;

impl Core {
    /// Reads up to `max_messages` from `offset` and keeps those `filter`
    /// matches. When `offset` is the end of the queue, waits up to `wait`
    /// (capped by config) for new messages.
    ///
    /// The bounds count the messages read, not those kept: a filter that
    /// matches few messages returns few, with `next_offset` past every
    /// message read, so the reader moves on. Only the kept messages are
    /// metered as delivered: a tenant pays for what it receives.
    #[allow(clippy::too_many_arguments)]
    pub async fn read(
        self: &Arc<Self>,
        tenant: &str,
        topic: &str,
        queue: u32,
        offset: u64,
        max_messages: usize,
        wait: Duration,
        filter: &TagFilter,
    ) -> Result<ReadResult> {
        let mut result = self
            .read_inner(tenant, topic, queue, offset, max_messages, wait)
            .await?;
        if *filter != TagFilter::All {
            result
                .messages
                .retain(|m| filter.matches(m.message.tag.as_deref()));
        }
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
        let messages = match self.tiers.read(&q.log, offset, end, max_messages).await {
            // A separate compactor merged a range away and collected its
            // object: take the queue's ranges as they are now, once.
            Err(TierError::ObjectMissing(_)) if self.compactor_is_separate() => {
                self.sync_queue_cold(&q, None).await?;
                self.tiers.read(&q.log, offset, end, max_messages).await?
            }
            read => read?,
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
        Ok(self.tiers.offset_for_time(&q.log, timestamp_ms).await?)
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
}
