//! Consumption by message (POP): a consumer group receives messages with
//! an invisible duration and a receipt handle each, and acknowledges them;
//! unacknowledged messages become visible again and are redelivered with
//! their attempt counted, after the group's retry backoff (none by
//! default), and after the group's maximum attempts
//! ([`MAX_DELIVERY_ATTEMPTS`] by default) they move to the group's
//! dead-letter topic ([`dead_letter_topic`]).
//!
//! State per (tenant, group, queue): a cursor (first offset never handed
//! out) and the in-flight records, both in the catalog; every receive,
//! acknowledgement and visibility change commits before it is answered,
//! so POP state survives restarts exactly. FIFO groups deliver the
//! messages of one message group in order: while one is in flight, later
//! ones of the same group wait (as attempt-0 in-flight records), while
//! other groups proceed.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use strata_common::usage::Counter;
use strata_common::{QueueKey, StoredMessage, TopicId};
use strata_metadata::{InflightRecord, MessageType, PopChange, PopQueueState, RetryPolicy};

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::publish::Origin;
use crate::queue::QueueState;
use crate::types::{PublishMessage, TopicSpec};

/// Deliveries of one message before it goes to the dead-letter topic,
/// unless the group's retry policy says otherwise.
pub const MAX_DELIVERY_ATTEMPTS: u32 = RetryPolicy::DEFAULT.max_delivery_attempts;
/// Shortest and longest invisible duration a receive may ask for.
pub const MIN_INVISIBLE: Duration = Duration::from_secs(1);
pub const MAX_INVISIBLE: Duration = Duration::from_secs(12 * 3600);
/// In-flight messages per group and queue; beyond it receives hand out
/// only redeliveries until acknowledgements come in.
pub const MAX_INFLIGHT_PER_QUEUE: usize = 65_536;

/// The dead-letter topic of `group` (in the group's tenant).
pub fn dead_letter_topic(group: &str) -> String {
    format!("{group}-DLQ")
}

/// Which tags a consumer wants: `*` (or empty) for all, else `a || b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagFilter {
    All,
    Tags(BTreeSet<String>),
}

impl TagFilter {
    pub fn parse(expression: &str) -> Result<Self> {
        let e = expression.trim();
        if e.is_empty() || e == "*" {
            return Ok(Self::All);
        }
        let tags: BTreeSet<String> = e.split("||").map(|t| t.trim().to_string()).collect();
        if tags
            .iter()
            .any(|t| t.is_empty() || t.contains(char::is_whitespace))
        {
            return Err(EngineError::InvalidArgument(format!(
                "tag expression {expression:?} is not `*` or tags joined by `||`"
            )));
        }
        Ok(Self::Tags(tags))
    }

    pub fn matches(&self, tag: Option<&str>) -> bool {
        match self {
            Self::All => true,
            Self::Tags(set) => tag.is_some_and(|t| set.contains(t)),
        }
    }
}

/// Names one delivery: `<topic>-<queue>-<offset>-<seq>`, hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptHandle {
    pub topic: TopicId,
    pub queue: u32,
    pub offset: u64,
    pub seq: u64,
}

impl ReceiptHandle {
    pub fn encode(&self) -> String {
        format!(
            "{:x}-{:x}-{:x}-{:016x}",
            self.topic, self.queue, self.offset, self.seq
        )
    }

    pub fn parse(text: &str) -> Result<Self> {
        let bad = || EngineError::InvalidReceiptHandle(format!("{text:?} is not a receipt handle"));
        let mut parts = text.split('-');
        let mut next = || parts.next().ok_or_else(bad);
        let topic = u64::from_str_radix(next()?, 16).map_err(|_| bad())?;
        let queue = u32::from_str_radix(next()?, 16).map_err(|_| bad())?;
        let offset = u64::from_str_radix(next()?, 16).map_err(|_| bad())?;
        let seq = u64::from_str_radix(next()?, 16).map_err(|_| bad())?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self {
            topic,
            queue,
            offset,
            seq,
        })
    }
}

/// A message handed out by [`Engine::receive`].
#[derive(Debug, Clone)]
pub struct Popped {
    pub message: StoredMessage,
    pub queue: u32,
    /// 1 for the first delivery.
    pub attempt: u32,
    pub handle: String,
    /// When it becomes visible again unless acknowledged, Unix ms.
    pub visible_ms: i64,
}

/// What [`Engine::receive`] is asked for.
#[derive(Debug, Clone)]
pub struct ReceiveRequest<'a> {
    pub tenant: &'a str,
    pub group: &'a str,
    pub topic: &'a str,
    pub queue: u32,
    pub max_messages: usize,
    pub invisible: Duration,
    /// Long polling: how long to wait when nothing is deliverable.
    pub wait: Duration,
    pub filter: &'a TagFilter,
}

type PopSlot = Arc<tokio::sync::Mutex<Option<PopQueueState>>>;
/// (tenant, group, queue) → that queue's POP state, loaded on first use.
pub(crate) type PopSlots = std::collections::HashMap<(String, String, QueueKey), PopSlot>;

impl Engine {
    fn pop_slot(&self, tenant: &str, group: &str, queue: QueueKey) -> PopSlot {
        let mut slots = self.pops.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry((tenant.to_string(), group.to_string(), queue))
            .or_default()
            .clone()
    }

    /// Forgets the cached POP state of a deleted group.
    pub(crate) fn forget_pop_state(&self, tenant: &str, group: &str) {
        let mut slots = self.pops.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|(t, g, _), _| !(t == tenant && g == group));
    }

    /// Receives up to `max_messages` from one queue for a consumer group:
    /// visible redeliveries first (oldest first), then new messages. Waits
    /// up to `wait` when nothing is deliverable. The messages are
    /// invisible to the group for `invisible` unless acknowledged.
    pub async fn receive(self: &Arc<Self>, r: ReceiveRequest<'_>) -> Result<Vec<Popped>> {
        self.check_open()?;
        if !(MIN_INVISIBLE..=MAX_INVISIBLE).contains(&r.invisible) {
            return Err(EngineError::InvalidArgument(format!(
                "invisible duration {:?} is outside {MIN_INVISIBLE:?}..={MAX_INVISIBLE:?}",
                r.invisible
            )));
        }
        let retry = self.group_record(r.tenant, r.group).await?.retry;
        let topic = self.topic(r.tenant, r.topic)?;
        let q = topic.queue(r.queue)?.clone();
        let fifo = topic.record.message_type == MessageType::Fifo;
        let max = r.max_messages.clamp(1, self.config.max_read_messages);
        let started = tokio::time::Instant::now();
        let wait = r.wait.min(self.config.max_wait);
        loop {
            let (got, cursor, next_visible_ms) =
                self.receive_once(&r, &q, fifo, max, &retry).await?;
            let left = wait.saturating_sub(started.elapsed());
            if !got.is_empty() || left.is_zero() || self.check_open().is_err() {
                return Ok(got);
            }
            let until_visible = next_visible_ms
                .map(|at| at.saturating_sub(self.clock.now_ms()).max(1) as u64)
                .map_or(left, Duration::from_millis);
            // The cursor stops short of the end only when the in-flight cap
            // is reached: then only a new message or a due one helps, and
            // waiting past the cursor would return at once, again and again.
            let end = q.lock().high_watermark.max(cursor);
            self.wait_past(&q, end, left.min(until_visible)).await;
        }
    }

    /// One pass: picks, commits and returns deliveries, with the cursor and
    /// the earliest time an in-flight message may be delivered again.
    async fn receive_once(
        self: &Arc<Self>,
        r: &ReceiveRequest<'_>,
        q: &Arc<QueueState>,
        fifo: bool,
        max: usize,
        retry: &RetryPolicy,
    ) -> Result<(Vec<Popped>, u64, Option<i64>)> {
        // A delivery that expired unacknowledged waits out the group's
        // backoff before the message goes out again.
        let due_ms = |rec: &InflightRecord| match rec.attempt {
            0 => rec.visible_ms,
            n => rec
                .visible_ms
                .saturating_add(i64::try_from(retry.backoff_ms(n)).unwrap_or(i64::MAX)),
        };
        let slot = self.pop_slot(r.tenant, r.group, q.key);
        let mut guard = slot.lock().await;
        if guard.is_none() {
            *guard = Some(self.catalog.pop_state(r.tenant, r.group, q.key).await?);
        }
        let Some(state) = guard.as_mut() else {
            return Err(EngineError::Internal("POP state not loaded".into()));
        };
        let now = self.clock.now_ms();
        let invisible_ms = r.invisible.as_millis() as i64;
        let (first, hw) = {
            let inner = q.lock();
            (inner.first_offset, inner.high_watermark)
        };
        let mut change = PopChange::default();
        // Retention removed these messages: nothing left to deliver.
        for (&offset, rec) in state.inflight.range(..first) {
            change.remove.push((offset, rec.clone()));
        }
        let mut blocked: HashSet<String> = HashSet::new();
        if fifo {
            for rec in state.inflight.range(first..).map(|(_, r)| r) {
                if due_ms(rec) > now && rec.attempt > 0 {
                    blocked.extend(rec.message_group.clone());
                }
            }
        }
        let mut out: Vec<(u64, InflightRecord, StoredMessage)> = Vec::new();
        let mut dead: Vec<(u64, InflightRecord, StoredMessage)> = Vec::new();
        // 1. In-flight messages that are visible again (or waiting FIFO ones).
        let candidates: Vec<(u64, InflightRecord)> = state
            .inflight
            .range(first..)
            .filter(|(_, rec)| due_ms(rec) <= now)
            .map(|(o, rec)| (*o, rec.clone()))
            .collect();
        for (offset, rec) in candidates {
            if out.len() >= max {
                break;
            }
            if let Some(g) = &rec.message_group
                && fifo
                && !blocked.insert(g.clone())
            {
                continue;
            }
            let Some(message) = self.read_at(r.tenant, r.topic, q.key.queue, offset).await? else {
                change.remove.push((offset, rec));
                continue;
            };
            if rec.attempt >= retry.max_delivery_attempts {
                // Its group is unblocked by the move: later ones may go now.
                if let Some(g) = &rec.message_group {
                    blocked.remove(g);
                }
                dead.push((offset, rec, message));
                continue;
            }
            let next = InflightRecord {
                attempt: rec.attempt + 1,
                visible_ms: now + invisible_ms,
                seq: self.clock.random_u64(),
                message_group: rec.message_group.clone(),
            };
            change.remove.push((offset, rec));
            out.push((offset, next, message));
        }
        // 2. New messages from the cursor.
        let mut cursor = state.cursor.max(first);
        let mut waiting: Vec<(u64, InflightRecord)> = Vec::new();
        while out.len() < max
            && cursor < hw
            && state.inflight.len() + out.len() + waiting.len() < MAX_INFLIGHT_PER_QUEUE
        {
            let batch = self
                .read_inner(
                    r.tenant,
                    r.topic,
                    q.key.queue,
                    cursor,
                    max - out.len(),
                    Duration::ZERO,
                )
                .await?
                .messages;
            if batch.is_empty() {
                break;
            }
            for m in batch {
                if out.len() >= max {
                    break;
                }
                cursor = m.offset + 1;
                if !r.filter.matches(m.message.tag.as_deref()) {
                    continue;
                }
                let group = if fifo {
                    m.message.message_group().map(str::to_string)
                } else {
                    None
                };
                if let Some(g) = &group
                    && !blocked.insert(g.clone())
                {
                    // An earlier message of its group is in flight: it waits.
                    waiting.push((
                        m.offset,
                        InflightRecord {
                            attempt: 0,
                            visible_ms: 0,
                            seq: 0,
                            message_group: group,
                        },
                    ));
                    continue;
                }
                let rec = InflightRecord {
                    attempt: 1,
                    visible_ms: now + invisible_ms,
                    seq: self.clock.random_u64(),
                    message_group: group,
                };
                out.push((m.offset, rec, m));
            }
        }
        for (offset, rec, message) in &dead {
            self.dead_letter(
                r.tenant,
                r.group,
                r.topic,
                q.key.queue,
                *offset,
                rec,
                message,
            )
            .await?;
            change.remove.push((*offset, rec.clone()));
        }
        if cursor != state.cursor {
            change.cursor = Some((state.cursor, cursor));
        }
        change
            .put
            .extend(out.iter().map(|(o, rec, _)| (*o, rec.clone())));
        change.put.extend(waiting);
        if change.cursor.is_some() || !change.put.is_empty() || !change.remove.is_empty() {
            let fence = self.catalog.owner_check(q.key, &q.owner);
            if !self
                .catalog
                .commit_pop(r.tenant, r.group, q.key, &change, fence)
                .await?
            {
                *guard = None;
                return Err(EngineError::Conflict(
                    "POP state changed underneath (queue ownership moved?); retry".into(),
                ));
            }
            apply(state, &change);
        }
        let next_visible = state
            .inflight
            .values()
            .filter(|r| r.attempt > 0)
            .map(due_ms)
            .min();
        let popped: Vec<Popped> = out
            .into_iter()
            .map(|(offset, rec, message)| Popped {
                handle: ReceiptHandle {
                    topic: q.key.topic,
                    queue: q.key.queue,
                    offset,
                    seq: rec.seq,
                }
                .encode(),
                queue: q.key.queue,
                attempt: rec.attempt,
                visible_ms: rec.visible_ms,
                message,
            })
            .collect();
        let bytes = popped
            .iter()
            .map(|p| p.message.message.approx_size() as u64)
            .sum();
        let again = popped.iter().filter(|p| p.attempt > 1).count() as u64;
        self.meter
            .add(r.tenant, Counter::DeliveredMessages, popped.len() as u64);
        self.meter.add(r.tenant, Counter::DeliveredBytes, bytes);
        self.meter.add(r.tenant, Counter::Redeliveries, again);
        Ok((popped, cursor, next_visible))
    }

    /// The message at `offset`, if the queue still holds it.
    async fn read_at(
        self: &Arc<Self>,
        tenant: &str,
        topic: &str,
        queue: u32,
        offset: u64,
    ) -> Result<Option<StoredMessage>> {
        match self
            .read_inner(tenant, topic, queue, offset, 1, Duration::ZERO)
            .await
        {
            Ok(r) => Ok(r.messages.into_iter().next().filter(|m| m.offset == offset)),
            Err(EngineError::OffsetOutOfRange { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Publishes a copy of an exhausted message to the group's dead-letter
    /// topic (created on first use), noting where it came from.
    #[allow(clippy::too_many_arguments)]
    async fn dead_letter(
        self: &Arc<Self>,
        tenant: &str,
        group: &str,
        topic: &str,
        queue: u32,
        offset: u64,
        rec: &InflightRecord,
        m: &StoredMessage,
    ) -> Result<()> {
        let dlq = dead_letter_topic(group);
        if self.topic(tenant, &dlq).is_err() {
            match self
                .create_topic_unchecked(
                    tenant,
                    &dlq,
                    TopicSpec {
                        queues: 1,
                        message_type: MessageType::Normal,
                        retention: None,
                        retention_bytes: None,
                    },
                )
                .await
            {
                Ok(_) | Err(EngineError::TopicAlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let mut message = m.message.clone();
        message.properties.extend([
            ("__mq.dlq.topic".to_string(), topic.to_string()),
            ("__mq.dlq.queue".to_string(), queue.to_string()),
            ("__mq.dlq.offset".to_string(), offset.to_string()),
            ("__mq.dlq.attempts".to_string(), rec.attempt.to_string()),
        ]);
        self.publish_with(
            tenant,
            &dlq,
            vec![PublishMessage {
                queue: Some(0),
                message,
            }],
            Origin::Internal,
        )
        .await?;
        tracing::info!(
            tenant,
            group,
            topic,
            queue,
            offset,
            attempts = rec.attempt,
            "message moved to the dead-letter topic"
        );
        Ok(())
    }

    /// Acknowledges one delivery. Fails with an invalid-handle error if the
    /// handle is malformed, names another topic, was superseded by a later
    /// delivery or acknowledgement, or expired (the message is visible again).
    pub async fn ack(
        self: &Arc<Self>,
        tenant: &str,
        group: &str,
        topic: &str,
        handle: &str,
    ) -> Result<()> {
        self.change_delivery(tenant, group, topic, handle, Action::Ack)
            .await
            .map(|_| ())
    }

    /// Moves one delivered message to the group's dead-letter topic now
    /// (a consumer gave up on it), with the same handle checks as [`Engine::ack`].
    pub async fn forward_to_dead_letter(
        self: &Arc<Self>,
        tenant: &str,
        group: &str,
        topic: &str,
        handle: &str,
    ) -> Result<()> {
        self.change_delivery(tenant, group, topic, handle, Action::DeadLetter)
            .await
            .map(|_| ())
    }

    /// Makes one delivery invisible for `invisible` from now; returns the
    /// new receipt handle (the old one stops working).
    pub async fn change_invisible(
        self: &Arc<Self>,
        tenant: &str,
        group: &str,
        topic: &str,
        handle: &str,
        invisible: Duration,
    ) -> Result<String> {
        if !(MIN_INVISIBLE..=MAX_INVISIBLE).contains(&invisible) {
            return Err(EngineError::InvalidArgument(format!(
                "invisible duration {invisible:?} is outside {MIN_INVISIBLE:?}..={MAX_INVISIBLE:?}"
            )));
        }
        self.change_delivery(tenant, group, topic, handle, Action::Invisible(invisible))
            .await
    }

    async fn change_delivery(
        self: &Arc<Self>,
        tenant: &str,
        group: &str,
        topic: &str,
        handle: &str,
        action: Action,
    ) -> Result<String> {
        self.check_open()?;
        // Before any per-group state is touched: an unknown group name must
        // not add a POP slot.
        self.require_group(tenant, group).await?;
        let t = self.topic(tenant, topic)?;
        let h = ReceiptHandle::parse(handle)?;
        if t.record.id != h.topic {
            return Err(EngineError::InvalidReceiptHandle(format!(
                "receipt handle {handle:?} belongs to another topic"
            )));
        }
        let q = t.queue(h.queue)?.clone();
        let slot = self.pop_slot(tenant, group, q.key);
        let mut guard = slot.lock().await;
        if guard.is_none() {
            *guard = Some(self.catalog.pop_state(tenant, group, q.key).await?);
        }
        let Some(state) = guard.as_mut() else {
            return Err(EngineError::Internal("POP state not loaded".into()));
        };
        let now = self.clock.now_ms();
        let current = state
            .inflight
            .get(&h.offset)
            .filter(|r| r.seq == h.seq && r.attempt > 0)
            .cloned()
            .ok_or_else(|| {
                EngineError::InvalidReceiptHandle(format!(
                    "receipt handle {handle:?} is not in flight: acknowledged, redelivered since, or never issued to group {group:?}"
                ))
            })?;
        if current.visible_ms <= now {
            return Err(EngineError::InvalidReceiptHandle(format!(
                "receipt handle {handle:?} expired: its invisible time ended, so the message will be delivered again"
            )));
        }
        let mut change = PopChange {
            remove: vec![(h.offset, current.clone())],
            ..PopChange::default()
        };
        let mut new_handle = String::new();
        match action {
            Action::Ack => {}
            Action::Invisible(d) => {
                let next = InflightRecord {
                    visible_ms: now + d.as_millis() as i64,
                    seq: self.clock.random_u64(),
                    ..current
                };
                new_handle = ReceiptHandle { seq: next.seq, ..h }.encode();
                change.put.push((h.offset, next));
            }
            Action::DeadLetter => {
                if let Some(m) = self.read_at(tenant, topic, h.queue, h.offset).await? {
                    self.dead_letter(tenant, group, topic, h.queue, h.offset, &current, &m)
                        .await?;
                }
            }
        }
        let fence = self.catalog.owner_check(q.key, &q.owner);
        if !self
            .catalog
            .commit_pop(tenant, group, q.key, &change, fence)
            .await?
        {
            *guard = None;
            return Err(EngineError::Conflict(
                "POP state changed underneath; retry".into(),
            ));
        }
        apply(state, &change);
        Ok(new_handle)
    }
}

/// What [`Engine::change_delivery`] does with a delivery.
#[derive(Debug, Clone, Copy)]
enum Action {
    Ack,
    Invisible(Duration),
    DeadLetter,
}

fn apply(state: &mut PopQueueState, change: &PopChange) {
    if let Some((_, new)) = change.cursor {
        state.cursor = new;
    }
    for (offset, _) in &change.remove {
        state.inflight.remove(offset);
    }
    for (offset, rec) in &change.put {
        state.inflight.insert(*offset, rec.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_garbage_is_refused() {
        let h = ReceiptHandle {
            topic: 7,
            queue: 3,
            offset: 123_456,
            seq: u64::MAX,
        };
        assert_eq!(ReceiptHandle::parse(&h.encode()).unwrap(), h);
        for bad in ["", "x", "1-2-3", "1-2-3-4-5", "g-1-1-1", "1-2-3-zz"] {
            assert!(ReceiptHandle::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tag_filters() {
        assert_eq!(TagFilter::parse("*").unwrap(), TagFilter::All);
        assert_eq!(TagFilter::parse("").unwrap(), TagFilter::All);
        let f = TagFilter::parse("a || b").unwrap();
        assert!(f.matches(Some("a")) && f.matches(Some("b")));
        assert!(!f.matches(Some("c")) && !f.matches(None));
        assert!(TagFilter::parse("a ||").is_err());
        assert!(TagFilter::parse("a b").is_err());
        assert!(TagFilter::All.matches(None));
    }
}
