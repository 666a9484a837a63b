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
use crate::types::{ReadLimits, ReadResult};

impl Core {
    /// Reads from `offset` within `limits` and keeps the messages its
    /// filter matches. When `offset` is the end of the queue, waits up to
    /// `wait` (capped by config) for new messages, and with a filter for
    /// new messages it keeps.
    ///
    /// `limits.max_messages` counts the messages read, not those kept: a
    /// filter that matches few returns few, with `next_offset` past every
    /// message read, so the reader moves on. The bounds on what is
    /// returned (a reader's quota) cut what is kept, and `next_offset`
    /// then follows the last message kept. Without a filter everything
    /// read is kept, so those bounds also bound the read; with one they do
    /// not, so that a reader near its quota still scans as far as it asks.
    /// Only the kept messages are metered as delivered: a tenant pays for
    /// what it receives.
    pub async fn read(
        self: &Arc<Self>,
        tenant: &str,
        topic: &str,
        queue: u32,
        offset: u64,
        wait: Duration,
        limits: ReadLimits<'_>,
    ) -> Result<ReadResult> {
        let configured = self.config.max_read_bytes as u64;
        let filtered = *limits.filter != TagFilter::All;
        let (read_messages, read_bytes) = if filtered {
            (limits.max_messages, configured)
        } else {
            (
                limits
                    .max_returned
                    .map_or(limits.max_messages, |r| r.min(limits.max_messages)),
                // The tiers count whole messages or batches (ids, keys,
                // headers besides bodies): a margin lets them read what
                // the body trim below may keep.
                limits.max_body_bytes.map_or(configured, |b| {
                    b.saturating_add(b / 4).saturating_add(4096).min(configured)
                }),
            )
        };
        // A long poll with a filter waits for a message it keeps: new
        // messages the filter drops move it on, and it waits again until
        // `wait` is over.
        let deadline = self.clock.monotonic() + wait.min(self.config.max_wait);
        let mut from = offset;
        let mut result = loop {
            let left = deadline.saturating_sub(self.clock.monotonic());
            let mut result = self
                .read_bounded(tenant, topic, queue, from, read_messages, read_bytes, left)
                .await?;
            if !filtered {
                break result;
            }
            result
                .messages
                .retain(|m| limits.filter.matches(m.message.tag.as_deref()));
            let at_end = result.next_offset >= result.high_watermark;
            let moved = result.next_offset > from;
            if !result.messages.is_empty() || left.is_zero() || !at_end || !moved {
                break result;
            }
            from = result.next_offset;
        };
        let mut kept = result.messages.len();
        if let Some(max) = limits.max_returned {
            kept = kept.min(max.max(1));
        }
        if let Some(budget) = limits.max_body_bytes {
            let lens = result.messages.iter().map(|m| m.message.body.len());
            kept = kept.min(within_body_bytes(lens, budget));
        }
        if kept < result.messages.len() {
            result.messages.truncate(kept);
            result.next_offset = result.messages.last().map_or(offset, |m| m.offset + 1);
        }
        let bytes = result
            .messages
            .iter()
            .map(|m| m.message.metered_size() as u64)
            .sum();
        let count = result.messages.len() as u64;
        self.meter.add(tenant, Counter::DeliveredMessages, count);
        self.meter.add(tenant, Counter::DeliveredBytes, bytes);
        Ok(result)
    }

    /// [`Core::read`] without filter or metering (POP and lookups meter
    /// what they deliver), bounded by the configured read bytes.
    pub(crate) async fn read_inner(
        self: &Arc<Self>,
        tenant: &str,
        topic: &str,
        queue: u32,
        offset: u64,
        max_messages: usize,
        wait: Duration,
    ) -> Result<ReadResult> {
        let max_bytes = self.config.max_read_bytes as u64;
        self.read_bounded(tenant, topic, queue, offset, max_messages, max_bytes, wait)
            .await
    }

    /// [`Core::read_inner`] with the tiers' byte budget `max_bytes` (whole
    /// batches and blocks: a read may pass it by one).
    #[allow(clippy::too_many_arguments)]
    async fn read_bounded(
        self: &Arc<Self>,
        tenant: &str,
        topic: &str,
        queue: u32,
        offset: u64,
        max_messages: usize,
        max_bytes: u64,
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
            if topic_state.is_closed() {
                return Err(self.topic_gone(tenant, topic, topic_state.record.id));
            }
        }
        let (first_now, hw) = self.bounds(&q, topic, offset)?;
        let first = first.max(first_now);
        let mut from = offset;
        let messages = loop {
            let end = hw.min(from.saturating_add(max_messages as u64));
            let read = self
                .tiers
                .read(&q.log, from, end, max_messages, max_bytes)
                .await;
            let messages = match read {
                // A separate compactor merged a range away and collected its
                // object: take the queue's ranges as they are now, once.
                Err(TierError::ObjectMissing(_)) if self.compactor_is_separate() => {
                    self.sync_queue_cold(&q, None).await?;
                    self.tiers
                        .read(&q.log, from, end, max_messages, max_bytes)
                        .await?
                }
                read => read?,
            };
            // Offsets nothing holds (a lost owner's, see `LOST_OFFSETS_GAP`
            // in the metadata crate): go on from the next stored one.
            if !messages.is_empty() || from >= hw {
                break messages;
            }
            let next = q.lock().next_stored(from).unwrap_or(hw).min(hw);
            if next <= from {
                break messages;
            }
            from = next;
        };
        let next_offset = messages.last().map_or(from, |m| m.offset + 1);
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
            _ = q.activity().wait_closed() => {}
            _ = self.clock.sleep(wait) => {}
        }
    }
}

/// How many messages, from the first, whose bodies are `lens` long fit in
/// `budget` body bytes (their total within it), or one when even the first
/// does not, so that a message larger than the budget is not stuck.
fn within_body_bytes(lens: impl IntoIterator<Item = usize>, budget: u64) -> usize {
    let mut total = 0u64;
    let mut any = false;
    let fit = lens
        .into_iter()
        .inspect(|_| any = true)
        .take_while(|&len| {
            total = total.saturating_add(len as u64);
            total <= budget
        })
        .count();
    if any { fit.max(1) } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lens(lens: &[usize]) -> impl Iterator<Item = usize> + '_ {
        lens.iter().copied()
    }

    #[test]
    fn the_body_budget_keeps_a_prefix_and_always_the_first() {
        let m = [10, 20, 30];
        assert_eq!(within_body_bytes(lens(&m), 60), 3);
        assert_eq!(within_body_bytes(lens(&m), 59), 2);
        assert_eq!(within_body_bytes(lens(&m), 30), 2);
        assert_eq!(within_body_bytes(lens(&m), 29), 1);
        assert_eq!(within_body_bytes(lens(&m), 0), 1);
        assert_eq!(within_body_bytes(lens(&[]), 100), 0);
        assert_eq!(within_body_bytes(lens(&[100, 1]), 5), 1);
    }
}
