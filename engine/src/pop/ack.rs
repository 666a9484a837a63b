//! Acknowledging deliveries: one POP commit per queue for a request's
//! handles, the queues' commits in flight together (the embedded store's
//! writer commits them as one group; etcd and TiKV get them as concurrent
//! requests), and the acknowledgements of every request that reaches a
//! queue while it is busy committed together in its next commit
//! ([`AckQueue`]): the official SDKs acknowledge one message per request.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::future::join_all;
use tokio::sync::oneshot;

use strata_metadata::{PopChange, PopQueueState, StoredGroup};

use super::{Pop, PopSlot, ReceiptHandle};
use crate::core::queue::QueueState;
use crate::error::{EngineError, Result};

/// One handle's place in the request and what it names.
type Parsed = (usize, ReceiptHandle);

impl Pop {
    /// Acknowledges `handles` of one topic. Each gets its own outcome, with
    /// the checks of [`Pop::ack`]; a refused handle changes nothing and does
    /// not hold the others back, while a failed commit fails every handle
    /// of its queue. The request as a whole fails (`Err`) only when nothing
    /// can be checked: no handle or more than [`super::MAX_ACK_BATCH`], the
    /// server is closing, the group or topic does not exist, or the group
    /// cannot be read.
    pub async fn ack_many(
        self: &Arc<Self>,
        tenant: &str,
        group: &str,
        topic: &str,
        handles: &[String],
    ) -> Result<Vec<Result<()>>> {
        if handles.is_empty() || handles.len() > super::MAX_ACK_BATCH {
            return Err(EngineError::InvalidArgument(format!(
                "an acknowledgement carries 1..={} receipt handles, not {}",
                super::MAX_ACK_BATCH,
                handles.len()
            )));
        }
        self.core.check_open()?;
        let group_record = self.core.group_record(tenant, group).await?;
        let t = self.core.topic(tenant, topic)?;
        // Every handle is answered below; none is ever left at OK unchecked.
        let mut outcome: Vec<Result<()>> = handles
            .iter()
            .map(|_| Err(EngineError::Internal("handle not processed".into())))
            .collect();
        let mut by_queue: BTreeMap<u32, (Arc<QueueState>, Vec<Parsed>)> = BTreeMap::new();
        for (i, handle) in handles.iter().enumerate() {
            let parsed = ReceiptHandle::parse(handle).and_then(|h| {
                if h.topic != t.record.id {
                    return Err(EngineError::InvalidReceiptHandle(format!(
                        "receipt handle {handle:?} belongs to another topic"
                    )));
                }
                Ok((super::handle_queue(&t, handle, h.queue)?, h))
            });
            match parsed {
                Ok((q, h)) => {
                    let (_, of_queue) = by_queue.entry(h.queue).or_insert_with(|| (q, Vec::new()));
                    of_queue.push((i, h));
                }
                Err(e) => outcome[i] = Err(e),
            }
        }
        let group_record = &group_record;
        let per_queue = by_queue.into_values().map(|(q, parsed)| async move {
            let results = self
                .ack_queue(tenant, group_record, &q, handles, &parsed)
                .await;
            (parsed, results)
        });
        for (parsed, results) in join_all(per_queue).await {
            for ((i, _), result) in parsed.iter().zip(results) {
                outcome[*i] = result;
            }
        }
        Ok(outcome)
    }

    /// Acknowledges the handles of one queue; the outcome of each, in
    /// order. They join the queue's next commit (see [`AckQueue`]).
    async fn ack_queue(
        self: &Arc<Self>,
        tenant: &str,
        group_record: &StoredGroup,
        q: &Arc<QueueState>,
        handles: &[String],
        parsed: &[Parsed],
    ) -> Vec<Result<()>> {
        let slot = self.pop_slot(tenant, &group_record.name, q.key);
        let (done, answer) = oneshot::channel();
        let request = AckRequest {
            group: group_record.clone(),
            handles: parsed
                .iter()
                .map(|(i, h)| (handles[*i].clone(), *h))
                .collect(),
            done,
        };
        let start = {
            let mut acks = slot.acks.lock().unwrap_or_else(|p| p.into_inner());
            acks.pending.push(request);
            !std::mem::replace(&mut acks.draining, true)
        };
        if start {
            // A task of its own: the requests it answers must not depend
            // on this caller staying (a client that goes away drops it).
            // The guard goes in with it, so even a task dropped before it
            // ever ran lets the next acknowledgement start another.
            let unwind = DrainGuard {
                slot: slot.clone(),
                armed: true,
            };
            let (pop, q) = (self.clone(), q.clone());
            tokio::spawn(async move { pop.drain_acks(&q, unwind).await });
        }
        match answer.await {
            Ok(results) => results,
            // The draining task went away before answering (the runtime is
            // shutting down, or it failed): whether the commit landed is
            // unknown.
            Err(_) => parsed
                .iter()
                .map(|_| {
                    Err(EngineError::Internal(
                        "the acknowledgement was dropped before its commit was answered; whether it landed is unknown".into(),
                    ))
                })
                .collect(),
        }
    }

    /// Commits the slot's waiting acknowledgements until none are left:
    /// each round takes the requests that arrived meanwhile, up to
    /// [`super::MAX_ACK_BATCH`] handles (at least one request), so one
    /// commit stays within what one acknowledgement request may carry.
    async fn drain_acks(self: &Arc<Self>, q: &Arc<QueueState>, mut unwind: DrainGuard) {
        let slot = unwind.slot.clone();
        loop {
            let mut guard = slot.state.lock().await;
            let batch = {
                let mut acks = slot.acks.lock().unwrap_or_else(|p| p.into_inner());
                if acks.pending.is_empty() {
                    acks.draining = false;
                    unwind.armed = false;
                    return;
                }
                let mut handles = 0;
                let take = acks
                    .pending
                    .iter()
                    .take_while(|r| {
                        let first = handles == 0;
                        handles += r.handles.len();
                        first || handles <= super::MAX_ACK_BATCH
                    })
                    .count();
                acks.pending.drain(..take).collect::<Vec<_>>()
            };
            let results = self.ack_locked(&mut guard, q, &batch).await;
            drop(guard);
            for (request, results) in batch.into_iter().zip(results) {
                // The requester may have gone away; its outcome stands.
                let _ = request.done.send(results);
            }
        }
    }

    /// Checks every handle of `batch` against the queue's POP state and
    /// removes the valid ones in one commit; the outcomes, per request.
    async fn ack_locked(
        self: &Arc<Self>,
        slot: &mut Option<PopQueueState>,
        q: &Arc<QueueState>,
        batch: &[AckRequest],
    ) -> Vec<Vec<Result<()>>> {
        let Some(first) = batch.first() else {
            return Vec::new();
        };
        let group = first.group.name.as_str();
        let state = match self.loaded_pop_state(slot, &first.group, q).await {
            Ok(state) => state,
            Err(e) => {
                return batch
                    .iter()
                    .map(|r| r.handles.iter().map(|_| Err(e.shared())).collect())
                    .collect();
            }
        };
        let now = self.core.clock.now_ms();
        let mut change = PopChange::default();
        // Offset → the request that acknowledged it.
        let mut taken: HashMap<u64, usize> = HashMap::new();
        // Handles refused only because an earlier request of this round
        // took them: if the commit fails, they share its failure.
        let mut behind: Vec<(usize, usize)> = Vec::new();
        let mut fifo = false;
        let mut results: Vec<Vec<Result<()>>> = Vec::with_capacity(batch.len());
        for (n, request) in batch.iter().enumerate() {
            let mut outcome = Vec::with_capacity(request.handles.len());
            for (handle, h) in &request.handles {
                let current = state
                    .inflight
                    .get(&h.offset)
                    .filter(|r| r.seq == h.seq && r.attempt > 0);
                if taken.get(&h.offset).is_some_and(|&by| by != n) {
                    behind.push((n, outcome.len()));
                }
                outcome.push(match (taken.get(&h.offset), current) {
                    (Some(&by), _) if by == n => Err(EngineError::InvalidReceiptHandle(format!(
                        "receipt handle {handle:?} appears twice in this acknowledgement"
                    ))),
                    (Some(_), _) | (None, None) => Err(EngineError::InvalidReceiptHandle(format!(
                        "receipt handle {handle:?} is not in flight: acknowledged, redelivered since, dropped by a reset of the group, or never issued to group {group:?}"
                    ))),
                    (None, Some(r)) if r.visible_ms <= now => Err(EngineError::InvalidReceiptHandle(format!(
                        "receipt handle {handle:?} expired: its invisible time ended, so the message will be delivered again"
                    ))),
                    (None, Some(r)) => {
                        fifo |= r.message_group.is_some();
                        taken.insert(h.offset, n);
                        change.remove.push((h.offset, r.clone()));
                        Ok(())
                    }
                });
            }
            results.push(outcome);
        }
        if change.remove.is_empty() {
            return results;
        }
        let committed = self.commit_to_slot(slot, &first.group, q, &change).await;
        let failure = match committed {
            Ok(true) => None,
            Ok(false) => Some(self.refused(&first.group).await),
            Err(e) => Some(e),
        };
        if let Some(e) = failure {
            for (n, i) in behind {
                results[n][i] = Err(e.shared());
            }
            for r in results.iter_mut().flatten().filter(|r| r.is_ok()) {
                *r = Err(e.shared());
            }
            return results;
        }
        self.acks
            .fetch_add(change.remove.len() as u64, Ordering::Relaxed);
        self.ack_commits.fetch_add(1, Ordering::Relaxed);
        // The next message of a FIFO group may go out now.
        if fifo {
            q.activity().bump();
        }
        results
    }
}

/// Acknowledgements waiting for their queue's next commit. A queue's POP
/// state is committed by one task at a time, so acknowledgements that
/// arrive while a commit (an acknowledgement's, or a receive's) holds the
/// state wait here and go into the next commit together, each answered
/// with its own outcome after that commit is durable: one metadata commit
/// for many acknowledgements, not one each behind one another.
#[derive(Debug, Default)]
pub(crate) struct AckQueue {
    pending: Vec<AckRequest>,
    /// A task is committing the pending requests (and will take any added).
    draining: bool,
}

/// One request's handles of one queue, and where to answer.
#[derive(Debug)]
struct AckRequest {
    group: StoredGroup,
    handles: Vec<(String, ReceiptHandle)>,
    done: oneshot::Sender<Vec<Result<()>>>,
}

/// Lets the next acknowledgement start a new draining task if this one
/// ends early (a panic, or the runtime dropping it): its waiting requests
/// are dropped, so their callers fail instead of waiting forever.
struct DrainGuard {
    slot: Arc<PopSlot>,
    armed: bool,
}

impl Drop for DrainGuard {
    fn drop(&mut self) {
        if self.armed {
            let mut acks = self.slot.acks.lock().unwrap_or_else(|p| p.into_inner());
            acks.pending.clear();
            acks.draining = false;
        }
    }
}
