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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use strata_common::{QueueKey, StoredMessage, TopicId};
use strata_metadata::{
    InflightRecord, MessageType, PopChange, PopQueueState, RetryPolicy, StartPosition, StoredGroup,
};

use crate::core::queue::QueueState;
use crate::core::{Billing, Core};
use crate::error::{EngineError, Result};
pub use crate::filter::TagFilter;
use crate::types::{PopStats, PublishMessage, TopicSpec};

mod ack;
mod claims;
mod look;
mod receive;
mod reset;
pub use receive::{DELIVERED_ALONE_FROM, Popped, ReceiveRequest};

/// Deliveries of one message before it goes to the dead-letter topic,
/// unless the group's retry policy says otherwise.
pub const MAX_DELIVERY_ATTEMPTS: u32 = RetryPolicy::DEFAULT.max_delivery_attempts;
/// Shortest and longest invisible duration a receive may ask for. A change
/// of invisible duration may ask for anything up to the longest: a short one
/// (zero included) hands the message back for redelivery at once, which is
/// how the official SDKs' push consumers turn a failed message around.
pub const MIN_INVISIBLE: Duration = Duration::from_secs(1);
pub const MAX_INVISIBLE: Duration = Duration::from_secs(12 * 3600);
/// Receipt handles per acknowledgement request (HTTP and gRPC).
pub const MAX_ACK_BATCH: usize = 1000;
/// In-flight messages per group and queue; beyond it receives hand out
/// only redeliveries until acknowledgements come in.
pub const MAX_INFLIGHT_PER_QUEUE: usize = 65_536;
/// Stale records (from before a reset) deleted per metadata commit.
const STALE_PER_COMMIT: usize = 512;

/// The dead-letter topic of `group` (in the group's tenant).
pub fn dead_letter_topic(group: &str) -> String {
    format!("{group}{}", strata_common::names::DEAD_LETTER_SUFFIX)
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
        let handle = Self {
            topic,
            queue,
            offset,
            seq,
        };
        // One spelling per delivery (hex parsing takes `+`, upper case and
        // leading zeros too): a handle is the text this server handed out.
        if handle.encode() != text {
            return Err(bad());
        }
        Ok(handle)
    }
}

/// One (tenant, group, queue): its POP state, loaded on first use, and the
/// acknowledgements waiting to be committed to it together.
#[derive(Debug, Default)]
pub(crate) struct PopSlot {
    state: tokio::sync::Mutex<Option<PopQueueState>>,
    acks: std::sync::Mutex<ack::AckQueue>,
}
/// (tenant, group, queue) → its slot.
type PopSlots = std::collections::HashMap<(String, String, QueueKey), Arc<PopSlot>>;

/// Consumption by message: receives, acknowledgements, visibility changes
/// and dead letters, over POP state kept per (tenant, group, queue).
#[derive(Debug)]
pub(crate) struct Pop {
    core: Arc<Core>,
    /// POP state per (tenant, group, queue), loaded on first use.
    slots: std::sync::Mutex<PopSlots>,
    /// Handles acknowledged, and the commits that made them durable.
    acks: AtomicU64,
    ack_commits: AtomicU64,
}

impl Pop {
    pub(crate) fn new(core: Arc<Core>) -> Arc<Self> {
        Arc::new(Self {
            core,
            slots: std::sync::Mutex::new(PopSlots::new()),
            acks: AtomicU64::new(0),
            ack_commits: AtomicU64::new(0),
        })
    }

    pub(crate) fn stats(&self) -> PopStats {
        PopStats {
            acks: self.acks.load(Ordering::Relaxed),
            ack_commits: self.ack_commits.load(Ordering::Relaxed),
        }
    }

    fn pop_slot(&self, tenant: &str, group: &str, queue: QueueKey) -> Arc<PopSlot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry((tenant.to_string(), group.to_string(), queue))
            .or_default()
            .clone()
    }

    /// Forgets the POP state cached for `tenant` (moving to or from this
    /// node): it is loaded again from the metadata store on next use.
    pub(crate) fn forget_tenant(&self, tenant: &str) {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(t, _, _), _| t != tenant);
    }

    /// Deletes a deleted group's POP state, stored and cached.
    /// The cached slots go first, so a failure in between leaves nothing
    /// cached for a group made again under the name.
    pub(crate) async fn forget_group(&self, tenant: &str, group: &str) -> Result<()> {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(t, g, _), _| !(t == tenant && g == group));
        self.core.catalog.delete_pop_state(tenant, group).await?;
        Ok(())
    }

    /// The queue's POP state in `slot`, loaded on first use. A group that
    /// starts at the latest messages begins, on a queue it never consumed,
    /// at the first message appended since the group was created; that
    /// start is committed right away, so it never moves again.
    pub(crate) async fn loaded_pop_state<'s>(
        &self,
        slot: &'s mut Option<PopQueueState>,
        group: &StoredGroup,
        q: &Arc<QueueState>,
    ) -> Result<&'s mut PopQueueState> {
        if slot.is_none() {
            let mut state = self
                .core
                .catalog
                .pop_state(&group.tenant, &group.name, q.key)
                .await?;
            if !state.stale.is_empty() {
                self.drop_stale(group, q, &mut state).await?;
            }
            // A cursor of 0 is never stored: unless a reset put it there
            // (the floor says so), the group never consumed here.
            if state.cursor == 0 && state.floor.is_none() && group.start == StartPosition::Latest {
                let from = self.core.queue_offset_for_time(q, group.created_ms).await?;
                if from > 0 {
                    let change = PopChange {
                        cursor: Some((0, from)),
                        ..PopChange::default()
                    };
                    self.commit_or_refuse(group, q, &change).await?;
                    state.cursor = from;
                }
            }
            *slot = Some(state);
        }
        slot.as_mut()
            .ok_or_else(|| EngineError::Internal("POP state not loaded".into()))
    }

    /// Deletes the records a reset left stale (see
    /// [`strata_metadata::PopQueueState::stale`]), a chunk per commit.
    pub(crate) async fn drop_stale(
        &self,
        group: &StoredGroup,
        q: &QueueState,
        state: &mut PopQueueState,
    ) -> Result<()> {
        let stale: Vec<(u64, InflightRecord)> =
            std::mem::take(&mut state.stale).into_iter().collect();
        for chunk in stale.chunks(STALE_PER_COMMIT) {
            let change = PopChange {
                remove: chunk.to_vec(),
                ..PopChange::default()
            };
            self.commit_or_refuse(group, q, &change).await?;
        }
        Ok(())
    }

    /// Commits `change` (no cached state to update), fenced on the queue's
    /// owner and the group; refused as [`Pop::refused`] says otherwise.
    async fn commit_or_refuse(
        &self,
        group: &StoredGroup,
        q: &QueueState,
        change: &PopChange,
    ) -> Result<()> {
        if !self.commit_fenced(group, q, change).await? {
            return Err(self.refused(group).await);
        }
        Ok(())
    }

    /// Commits `change`, fenced on the queue's owner and on the group;
    /// false if a check failed (nothing written).
    async fn commit_fenced(
        &self,
        group: &StoredGroup,
        q: &QueueState,
        change: &PopChange,
    ) -> Result<bool> {
        let fence = self.core.catalog.owner_check(q.key, &q.owner);
        Ok(self
            .core
            .catalog
            .commit_pop(group, q.key, change, fence)
            .await?)
    }

    /// Commits `change` to a queue's POP state and applies it to the state
    /// cached in `slot`. The state is out of the slot while the commit is in
    /// flight, so a caller that goes away then (the commit may still land)
    /// leaves the slot to be reloaded, never stale. `Ok(false)`: a check
    /// failed, nothing was written, and the slot reloads on next use.
    pub(crate) async fn commit_to_slot(
        &self,
        slot: &mut Option<PopQueueState>,
        group: &StoredGroup,
        q: &QueueState,
        change: &PopChange,
    ) -> Result<bool> {
        let Some(mut state) = slot.take() else {
            return Err(EngineError::Internal("POP state not loaded".into()));
        };
        if !self.commit_fenced(group, q, change).await? {
            return Ok(false);
        }
        apply(&mut state, change);
        *slot = Some(state);
        Ok(true)
    }

    /// Why a POP commit for `group` wrote nothing: the group was deleted
    /// (or deleted and created again) since it was read, or else its state
    /// or the queue's ownership changed underneath.
    pub(crate) async fn refused(&self, group: &StoredGroup) -> EngineError {
        if let Err(e) = self.check_current(group).await {
            return e;
        }
        // Ownership moved (this node's slots are committed one at a time):
        // the queue is served elsewhere now, or soon; retrying finds it.
        EngineError::Refused {
            code: strata_common::ErrorCode::Unavailable,
            message: "the queue's POP state changed underneath (its ownership moved?); retry"
                .into(),
        }
    }

    /// Ok while `group` is still the group read; else GROUP_NOT_FOUND.
    /// Checked before what its fenced commit cannot undo (a dead letter
    /// appended to its dead-letter topic).
    pub(crate) async fn check_current(&self, group: &StoredGroup) -> Result<()> {
        let now = self
            .core
            .catalog
            .get_group_stored(&group.tenant, &group.name)
            .await?;
        if now.is_none_or(|now| now.fence != group.fence) {
            self.core.group_cache.forget(&group.tenant, &group.name);
            return Err(EngineError::GroupNotFound(group.name.clone()));
        }
        Ok(())
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
            .core
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
        let spec = TopicSpec {
            queues: 1,
            message_type: MessageType::Normal,
            retention: None,
            retention_bytes: None,
        };
        self.core.ensure_topic(tenant, &dlq, spec).await?;
        let mut message = m.message.clone();
        message.properties.extend([
            ("__mq.dlq.topic".to_string(), topic.to_string()),
            ("__mq.dlq.queue".to_string(), queue.to_string()),
            ("__mq.dlq.offset".to_string(), offset.to_string()),
            ("__mq.dlq.attempts".to_string(), rec.attempt.to_string()),
        ]);
        self.core
            .append(
                tenant,
                &dlq,
                vec![PublishMessage {
                    queue: Some(0),
                    message,
                }],
                Billing::Bill,
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
        // One acknowledgement path: a batch of one.
        let mut outcome = self
            .ack_many(tenant, group, topic, &[handle.to_string()])
            .await?;
        outcome
            .pop()
            .unwrap_or_else(|| Err(EngineError::Internal("no outcome for the handle".into())))
    }

    /// Moves one delivered message to the group's dead-letter topic now
    /// (a consumer gave up on it), with the same handle checks as [`Pop::ack`].
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

    /// Makes one delivery invisible for `invisible` from now (zero: visible
    /// again at once); returns the new receipt handle (the old one stops
    /// working).
    pub async fn change_invisible(
        self: &Arc<Self>,
        tenant: &str,
        group: &str,
        topic: &str,
        handle: &str,
        invisible: Duration,
    ) -> Result<String> {
        if invisible > MAX_INVISIBLE {
            return Err(EngineError::InvalidArgument(format!(
                "invisible duration {invisible:?} is longer than {MAX_INVISIBLE:?}"
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
        self.core.check_open()?;
        // Before any per-group state is touched: an unknown group name must
        // not add a POP slot.
        let group_record = self.core.group_record(tenant, group).await?;
        let t = self.core.topic(tenant, topic)?;
        let h = ReceiptHandle::parse(handle)?;
        if t.record.id != h.topic {
            return Err(EngineError::InvalidReceiptHandle(format!(
                "receipt handle {handle:?} belongs to another topic"
            )));
        }
        let q = handle_queue(&t, handle, h.queue)?;
        let slot = self.pop_slot(tenant, group, q.key);
        let mut guard = slot.state.lock().await;
        let state = self.loaded_pop_state(&mut guard, &group_record, &q).await?;
        let now = self.core.clock.now_ms();
        let current = state
            .inflight
            .get(&h.offset)
            .filter(|r| r.seq == h.seq && r.attempt > 0)
            .cloned()
            .ok_or_else(|| {
                EngineError::InvalidReceiptHandle(format!(
                    "receipt handle {handle:?} is not in flight: acknowledged, redelivered since, dropped by a reset of the group, or never issued to group {group:?}"
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
            Action::Invisible(d) => {
                let next = InflightRecord {
                    visible_ms: now + d.as_millis() as i64,
                    seq: self.core.clock.random_u64(),
                    chosen: true,
                    ..current.clone()
                };
                new_handle = ReceiptHandle { seq: next.seq, ..h }.encode();
                change.put.push((h.offset, next));
            }
            Action::DeadLetter => {
                self.check_current(&group_record).await?;
                if let Some(m) = self.read_at(tenant, topic, h.queue, h.offset).await? {
                    self.dead_letter(tenant, group, topic, h.queue, h.offset, &current, &m)
                        .await?;
                }
            }
        }
        if !self
            .commit_to_slot(&mut guard, &group_record, &q, &change)
            .await?
        {
            return Err(self.refused(&group_record).await);
        }
        // The next message of its FIFO group, or this one, may go out now
        // (or sooner than a waiting receive planned for).
        if current.message_group.is_some() || matches!(action, Action::Invisible(_)) {
            q.activity().bump();
        }
        Ok(new_handle)
    }
}

/// The queue a receipt handle names: one the topic has, or the handle is
/// invalid (as one naming another topic is), not a missing queue.
pub(crate) fn handle_queue(
    topic: &crate::core::topic::TopicState,
    handle: &str,
    queue: u32,
) -> Result<Arc<QueueState>> {
    topic.queue(queue).cloned().map_err(|_| {
        EngineError::InvalidReceiptHandle(format!(
            "receipt handle {handle:?} names queue {queue}, which the topic does not have"
        ))
    })
}

/// What [`Pop::change_delivery`] does with a delivery.
#[derive(Debug, Clone, Copy)]
enum Action {
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
        // Other spellings of a real handle are not it.
        let text = h.encode();
        for other in [
            format!("+{text}"),
            text.to_uppercase(),
            format!("0{text}"),
            text.replacen("-3-", "-03-", 1),
        ] {
            assert!(ReceiptHandle::parse(&other).is_err(), "{other}");
        }
    }
}
