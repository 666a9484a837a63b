//! Receiving by message: one receive spans every queue of the topic.
//!
//! A consumer names a topic and a group, never a queue (RocketMQ 5's
//! stateless consumption model; HTTP may still pin one queue). A receive
//! runs *passes*; one pass:
//!
//! 1. looks at every queue at once, from a random start (so no queue is
//!    always first), and keeps those that may have something deliverable:
//!    due in-flight messages (redeliveries, FIFO messages freed by an ack)
//!    or messages past the group's cursor;
//! 2. keeps as many of them as cover the batch counting at most
//!    [`MIN_SHARE`] from each (queues with due redeliveries first, then in
//!    rotation order), splits what is left of the batch over those, due
//!    redeliveries first (each queue's, as far as the batch holds them),
//!    the rest evenly, and takes every queue's share at once: each queue
//!    keeps its FIFO rules, and the per-queue POP commits meet in one
//!    metadata group commit;
//! 3. a queue that gave less than its share is done for this receive; the
//!    rest of the batch goes round again to the queues that filled theirs.
//!
//! A pass that finds nothing waits on the topic's activity signal (a
//! publish, delayed or transactional messages entering the topic, an ack
//! that frees a FIFO group), the earliest moment an in-flight message may
//! be delivered again, shutdown, or the end of the long poll, whichever
//! comes first; nothing polls on a timer.
//!
//! Deliveries committed by a receive whose caller goes away before they are
//! handed over (the future is dropped, or a later step fails) are released:
//! visible again at once, their attempt not counted.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_common::StoredMessage;
use strata_common::usage::Counter;
use strata_metadata::{InflightRecord, MessageType, PopChange, StoredGroup};

use super::Pop;
use super::claims::{Delivery, Unclaimed};
use super::look::{Look, blocked_groups, due_ms, earliest, look_at, queues_to_take, shares};
use super::{MAX_INFLIGHT_PER_QUEUE, MAX_INVISIBLE, MIN_INVISIBLE, ReceiptHandle, TagFilter};
use crate::core::queue::QueueState;
use crate::core::topic::TopicState;
use crate::error::{EngineError, Result};

/// A pass takes from as many queues as cover the batch counting at most
/// this many from each (see [`queues_to_take`]): each queue taken from
/// costs a POP commit, so a batch of 32 over 16 deep queues takes from 4 of
/// them, not 16, while 16 queues of 2 messages are all taken from at once.
pub(crate) const MIN_SHARE: usize = 8;

/// A message handed out by [`Pop::receive`].
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

/// What [`Pop::receive`] is asked for.
#[derive(Debug, Clone)]
pub struct ReceiveRequest<'a> {
    pub tenant: &'a str,
    pub group: &'a str,
    pub topic: &'a str,
    /// `None`: every queue of the topic (what consumers normally want);
    /// `Some(q)`: that queue only.
    pub queue: Option<u32>,
    pub max_messages: usize,
    pub invisible: Duration,
    /// Long polling: how long to wait when nothing is deliverable.
    pub wait: Duration,
    pub filter: &'a TagFilter,
    /// Most body bytes delivered: their total within it, or just one
    /// message whatever its size. `None`: no bound.
    pub max_body_bytes: Option<u64>,
}

/// A message at least this large (body, properties, keys) is delivered in a
/// receive of its own. gRPC clients refuse a reply message over 4 MiB unless
/// told otherwise (the Node.js SDK 1.0.8 does not raise it), and one refused
/// message fails the client's whole receive: the messages delivered with it
/// were each charged an attempt and, receive after receive, went to the
/// dead-letter topic unseen. Alone, only the message the client cannot take
/// does.
pub const DELIVERED_ALONE_FROM: usize = 4 * 1024 * 1024 - 16 * 1024;

/// The body bytes a receive may still deliver, shared by its queues' takes
/// (which run at once), and whether it delivers a message that goes alone.
struct BodyBudget {
    max: Option<u64>,
    used: Mutex<Used>,
}

#[derive(Default, Clone, Copy)]
struct Used {
    bytes: u64,
    any: bool,
    alone: bool,
}

impl BodyBudget {
    fn new(max: Option<u64>) -> Self {
        Self {
            max,
            used: Mutex::new(Used::default()),
        }
    }

    /// Whether `message` may be delivered: it fits, or it is the receive's
    /// first; and neither it nor one delivered before goes alone
    /// ([`DELIVERED_ALONE_FROM`]). Admitted bytes are counted.
    fn admit(&self, message: &strata_common::Message) -> bool {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let len = message.body.len() as u64;
        let alone = message.approx_size() >= DELIVERED_ALONE_FROM;
        let total = used.bytes.saturating_add(len);
        if used.any && (used.alone || alone || self.max.is_some_and(|max| total > max)) {
            return false;
        }
        *used = Used {
            bytes: total,
            any: true,
            alone,
        };
        true
    }
}

/// Queues of a pass that failed, and the first error.
#[derive(Default)]
struct Failed {
    queues: usize,
    first: Option<EngineError>,
}

impl Failed {
    fn note(&mut self, r: &ReceiveRequest<'_>, q: &QueueState, e: EngineError) {
        tracing::warn!(
            tenant = r.tenant,
            group = r.group,
            topic = r.topic,
            queue = q.key.queue,
            error = %e,
            "receive skipped a queue that failed"
        );
        self.queues += 1;
        self.first.get_or_insert(e);
    }
}

impl Pop {
    /// Receives up to `max_messages` for a consumer group from the topic's
    /// queues (or the one queue asked for): due redeliveries first in each
    /// queue, then new messages, the batch shared fairly between queues.
    /// Waits up to `wait` when nothing is deliverable. The messages are
    /// invisible to the group for `invisible` unless acknowledged.
    pub async fn receive(self: &Arc<Self>, r: ReceiveRequest<'_>) -> Result<Vec<Popped>> {
        self.core.check_open()?;
        if !(MIN_INVISIBLE..=MAX_INVISIBLE).contains(&r.invisible) {
            return Err(EngineError::InvalidArgument(format!(
                "invisible duration {:?} is outside {MIN_INVISIBLE:?}..={MAX_INVISIBLE:?}",
                r.invisible
            )));
        }
        let group = self.core.group_record(r.tenant, r.group).await?;
        let topic = self.core.topic(r.tenant, r.topic)?;
        let queues: Vec<Arc<QueueState>> = match r.queue {
            Some(q) => vec![topic.queue(q)?.clone()],
            None => topic.queues.clone(),
        };
        let max = r.max_messages.clamp(1, self.core.config.max_read_messages);
        let started = self.core.clock.monotonic();
        let wait = r.wait.min(self.core.config.max_wait);
        let mut shutdown = self.core.shutdown.subscribe();
        let claims = Unclaimed::new(self, &group);
        let budget = BodyBudget::new(r.max_body_bytes);
        loop {
            // Subscribed before looking: a change during the pass wakes us.
            let mut activity = topic.activity();
            // Deleted, or its tenant moved to another node (closing wakes
            // the subscription above only when it comes after it).
            if topic.is_closed() {
                return Err(self.core.topic_gone(r.tenant, r.topic, topic.record.id));
            }
            let next_due_ms = self
                .receive_pass(&r, &topic, &queues, max, &group, &claims, &budget)
                .await?;
            let got = claims.take();
            let left = wait.saturating_sub(self.core.clock.monotonic().saturating_sub(started));
            if !got.is_empty() || left.is_zero() || self.core.check_open().is_err() {
                return Ok(self.hand_over(r.tenant, got));
            }
            let until_due = next_due_ms
                .map(|at| at.saturating_sub(self.core.clock.now_ms()).max(1) as u64)
                .map_or(left, Duration::from_millis);
            tokio::select! {
                _ = activity.changed() => {}
                _ = shutdown.wait_for(|down| *down) => {}
                _ = self.core.clock.sleep(left.min(until_due)) => {}
            }
            // Deleted (or made again) while waiting: deleting a group wakes
            // its tenant's topics, and the record is read again at most
            // once per group cache TTL.
            if self.core.group_record(r.tenant, r.group).await?.fence != group.fence {
                return Err(EngineError::GroupNotFound(r.group.to_string()));
            }
        }
    }

    /// One pass over `queues` (see the module doc). Committed deliveries go
    /// to `claims`; returns the earliest future moment something is due.
    #[allow(clippy::too_many_arguments)]
    async fn receive_pass(
        self: &Arc<Self>,
        r: &ReceiveRequest<'_>,
        topic: &TopicState,
        queues: &[Arc<QueueState>],
        max: usize,
        group: &StoredGroup,
        claims: &Unclaimed,
        budget: &BodyBudget,
    ) -> Result<Option<i64>> {
        // Ordered only when the topic is FIFO and the group consumes in order.
        let fifo = topic.record.message_type == MessageType::Fifo && group.fifo;
        let n = queues.len();
        // A random start, so no queue is always looked at first, whichever
        // groups and consumers share the topic.
        let start = (self.core.clock.random_u64() % n.max(1) as u64) as usize;
        let order: Vec<&Arc<QueueState>> = (0..n).map(|i| &queues[(start + i) % n]).collect();
        let mut done = vec![false; n];
        let mut failed = Failed::default();
        let mut next_due_ms: Option<i64> = None;
        let mut taken = 0;
        while taken < max {
            let mut candidates = Vec::new();
            // Looked at together: a first look may load a queue's state and
            // commit a group's start there.
            let open: Vec<usize> = (0..n).filter(|&i| !done[i]).collect();
            let looks = futures::future::join_all(
                open.iter().map(|&i| self.look(r, order[i], fifo, group)),
            )
            .await;
            for (i, look) in open.into_iter().zip(looks) {
                let look = match look {
                    Ok(look) => look,
                    // Deleted while this receive ran: every queue is done.
                    Err(e @ EngineError::GroupNotFound(_)) => return Err(e),
                    Err(e) => {
                        done[i] = true;
                        failed.note(r, order[i], e);
                        continue;
                    }
                };
                next_due_ms = earliest(next_due_ms, look.next_due_ms);
                if look.deliverable {
                    candidates.push((i, look.redeliveries, look.available));
                } else {
                    done[i] = true;
                }
            }
            let remaining = max - taken;
            // Queues with redeliveries first (stable: the random rotation
            // stays otherwise), then as many as cover the batch.
            candidates.sort_by_key(|&(_, redeliveries, _)| usize::from(redeliveries == 0));
            let available: Vec<usize> = candidates.iter().map(|&(_, _, a)| a).collect();
            candidates.truncate(queues_to_take(&available, remaining, MIN_SHARE));
            if candidates.is_empty() {
                break;
            }
            let redeliveries: Vec<usize> = candidates.iter().map(|&(_, r, _)| r).collect();
            // A queue left without a share this round keeps its turn.
            let (candidates, shares): (Vec<usize>, Vec<usize>) = candidates
                .into_iter()
                .map(|(i, _, _)| i)
                .zip(shares(&redeliveries, remaining))
                .filter(|&(_, share)| share > 0)
                .unzip();
            let results =
                futures::future::join_all(candidates.iter().zip(&shares).map(|(&i, &share)| {
                    self.receive_once(r, order[i], fifo, share, group, claims, budget)
                }))
                .await;
            for ((&i, &share), result) in candidates.iter().zip(&shares).zip(results) {
                let got = match result {
                    Ok(got) => got,
                    Err(e @ EngineError::GroupNotFound(_)) => return Err(e),
                    Err(e) => {
                        done[i] = true;
                        failed.note(r, order[i], e);
                        continue;
                    }
                };
                if got < share {
                    done[i] = true;
                }
                taken += got;
            }
        }
        // One failing queue does not stop the others; the receive fails
        // only when every queue did.
        match failed.first {
            Some(e) if failed.queues == n => Err(e),
            _ => Ok(next_due_ms),
        }
    }

    /// Whether `q` may have something deliverable for the group now.
    async fn look(
        self: &Arc<Self>,
        r: &ReceiveRequest<'_>,
        q: &Arc<QueueState>,
        fifo: bool,
        group: &StoredGroup,
    ) -> Result<Look> {
        let slot = self.pop_slot(r.tenant, r.group, q.key);
        let mut guard = slot.state.lock().await;
        let state = self.loaded_pop_state(&mut guard, group, q).await?;
        let (first, hw) = {
            let inner = q.lock();
            (inner.first_offset, inner.high_watermark)
        };
        Ok(look_at(
            state,
            first,
            hw,
            fifo,
            group,
            self.core.clock.now_ms(),
        ))
    }

    /// Takes up to `max` deliveries from one queue and commits them; they
    /// go to `claims`. Returns how many. (When to wait until comes from the
    /// looks: what this adds is either handed over or not due before them.)
    #[allow(clippy::too_many_arguments)]
    async fn receive_once(
        self: &Arc<Self>,
        r: &ReceiveRequest<'_>,
        q: &Arc<QueueState>,
        fifo: bool,
        max: usize,
        group: &StoredGroup,
        claims: &Unclaimed,
        budget: &BodyBudget,
    ) -> Result<usize> {
        let retry = &group.retry;
        let slot = self.pop_slot(r.tenant, r.group, q.key);
        let mut guard = slot.state.lock().await;
        let state = self.loaded_pop_state(&mut guard, group, q).await?;
        let now = self.core.clock.now_ms();
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
        let mut blocked = if fifo {
            blocked_groups(state, first, group, now)
        } else {
            HashSet::new()
        };
        let mut out: Vec<(u64, InflightRecord, StoredMessage)> = Vec::new();
        let mut dead: Vec<(u64, InflightRecord, StoredMessage)> = Vec::new();
        let mut out_of_bytes = false;
        // 1. In-flight messages that are visible again (or waiting FIFO ones).
        let candidates: Vec<(u64, InflightRecord)> = state
            .inflight
            .range(first..)
            .filter(|(_, rec)| due_ms(rec, group) <= now)
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
            // Past the receive's bytes: nothing more, new messages neither.
            // (A FIFO group whose due message was not reached is not in
            // `blocked`: a later message of it must not go first.)
            if !budget.admit(&message.message) {
                out_of_bytes = true;
                break;
            }
            let next = InflightRecord {
                attempt: rec.attempt + 1,
                visible_ms: now + invisible_ms,
                seq: self.core.clock.random_u64(),
                message_group: rec.message_group.clone(),
                chosen: false,
            };
            change.remove.push((offset, rec));
            out.push((offset, next, message));
        }
        // 2. New messages from the cursor.
        let mut cursor = state.cursor.max(first);
        let mut waiting: Vec<(u64, InflightRecord)> = Vec::new();
        while !out_of_bytes
            && out.len() < max
            && cursor < hw
            && state.inflight.len() + out.len() + waiting.len() < MAX_INFLIGHT_PER_QUEUE
        {
            let read = self
                .core
                .read_inner(
                    r.tenant,
                    r.topic,
                    q.key.queue,
                    cursor,
                    max - out.len(),
                    Duration::ZERO,
                )
                .await?;
            let batch = read.messages;
            if batch.is_empty() {
                // Offsets nothing holds (a lost owner's): the cursor goes
                // past them, or the queue would look deliverable forever.
                cursor = cursor.max(read.next_offset.min(hw));
                break;
            }
            for m in batch {
                if out.len() >= max {
                    break;
                }
                if !r.filter.matches(m.message.tag.as_deref()) {
                    cursor = m.offset + 1;
                    continue;
                }
                let message_group = if fifo {
                    m.message.message_group().map(str::to_string)
                } else {
                    None
                };
                if let Some(g) = &message_group
                    && !blocked.insert(g.clone())
                {
                    // An earlier message of its group is in flight: it waits.
                    waiting.push((
                        m.offset,
                        InflightRecord {
                            attempt: 0,
                            visible_ms: 0,
                            seq: 0,
                            message_group,
                            chosen: false,
                        },
                    ));
                    cursor = m.offset + 1;
                    continue;
                }
                // Past the receive's bytes: the cursor stays at it.
                if !budget.admit(&m.message) {
                    out_of_bytes = true;
                    break;
                }
                cursor = m.offset + 1;
                let rec = InflightRecord {
                    attempt: 1,
                    visible_ms: now + invisible_ms,
                    seq: self.core.clock.random_u64(),
                    message_group,
                    chosen: false,
                };
                out.push((m.offset, rec, m));
            }
        }
        if !dead.is_empty() {
            self.check_current(group).await?;
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
        let got = out.len();
        let seqs: Vec<u64> = out.iter().map(|(_, rec, _)| rec.seq).collect();
        // Claimed before the commit is awaited: a caller that goes away
        // while it is in flight (it may still land) has them released, and
        // the release only undoes what the commit really wrote.
        claims.add(out.into_iter().map(|(offset, record, message)| Delivery {
            queue: q.clone(),
            offset,
            record,
            message,
        }));
        if change.cursor.is_some() || !change.put.is_empty() || !change.remove.is_empty() {
            let committed = self.commit_to_slot(&mut guard, group, q, &change).await;
            if !matches!(committed, Ok(true)) {
                claims.retract(q.key, &seqs);
            }
            if !committed? {
                return Err(self.refused(group).await);
            }
        }
        Ok(got)
    }

    /// Turns committed deliveries into what the caller gets, and meters them.
    fn hand_over(&self, tenant: &str, got: Vec<Delivery>) -> Vec<Popped> {
        let popped: Vec<Popped> = got
            .into_iter()
            .map(|d| Popped {
                handle: ReceiptHandle {
                    topic: d.queue.key.topic,
                    queue: d.queue.key.queue,
                    offset: d.offset,
                    seq: d.record.seq,
                }
                .encode(),
                queue: d.queue.key.queue,
                attempt: d.record.attempt,
                visible_ms: d.record.visible_ms,
                message: d.message,
            })
            .collect();
        let bytes = popped
            .iter()
            .map(|p| p.message.message.metered_size() as u64)
            .sum();
        let again = popped.iter().filter(|p| p.attempt > 1).count() as u64;
        self.core
            .meter
            .add(tenant, Counter::DeliveredMessages, popped.len() as u64);
        self.core.meter.add(tenant, Counter::DeliveredBytes, bytes);
        self.core.meter.add(tenant, Counter::Redeliveries, again);
        popped
    }
}
