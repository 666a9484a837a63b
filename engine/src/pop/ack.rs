//! Acknowledging a batch of deliveries: one POP commit per queue, the
//! queues' commits in flight together (the embedded store's writer commits
//! them as one group; etcd and TiKV get them as concurrent requests),
//! instead of one commit after another per receipt handle.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::future::join_all;

use strata_metadata::{GroupRecord, PopChange};

use super::{Pop, ReceiptHandle};
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
                Ok((t.queue(h.queue)?.clone(), h))
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

    /// Acknowledges the handles of one queue with one commit; the outcome
    /// of each, in order.
    async fn ack_queue(
        self: &Arc<Self>,
        tenant: &str,
        group_record: &GroupRecord,
        q: &Arc<QueueState>,
        handles: &[String],
        parsed: &[Parsed],
    ) -> Vec<Result<()>> {
        let group = group_record.name.as_str();
        let slot = self.pop_slot(tenant, group, q.key);
        let mut guard = slot.lock().await;
        let state = match self.loaded_pop_state(&mut guard, group_record, q).await {
            Ok(state) => state,
            Err(e) => return parsed.iter().map(|_| Err(e.shared())).collect(),
        };
        let now = self.core.clock.now_ms();
        let mut change = PopChange::default();
        let mut taken = BTreeSet::new();
        let mut fifo = false;
        let mut results: Vec<Result<()>> = Vec::with_capacity(parsed.len());
        for (i, h) in parsed {
            let handle = &handles[*i];
            if taken.contains(&h.offset) {
                results.push(Err(EngineError::InvalidReceiptHandle(format!(
                    "receipt handle {handle:?} appears twice in this acknowledgement"
                ))));
                continue;
            }
            let current = state
                .inflight
                .get(&h.offset)
                .filter(|r| r.seq == h.seq && r.attempt > 0);
            results.push(match current {
                None => Err(EngineError::InvalidReceiptHandle(format!(
                    "receipt handle {handle:?} is not in flight: acknowledged, redelivered since, or never issued to group {group:?}"
                ))),
                Some(r) if r.visible_ms <= now => Err(EngineError::InvalidReceiptHandle(format!(
                    "receipt handle {handle:?} expired: its invisible time ended, so the message will be delivered again"
                ))),
                Some(r) => {
                    fifo |= r.message_group.is_some();
                    taken.insert(h.offset);
                    change.remove.push((h.offset, r.clone()));
                    Ok(())
                }
            });
        }
        if change.remove.is_empty() {
            return results;
        }
        let committed = self
            .commit_to_slot(&mut guard, tenant, group, q, &change)
            .await;
        let failure = match committed {
            Ok(true) => None,
            Ok(false) => Some(EngineError::Conflict(
                "POP state changed underneath; retry".into(),
            )),
            Err(e) => Some(e),
        };
        if let Some(e) = failure {
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(e.shared());
            }
            return results;
        }
        // The next message of a FIFO group may go out now.
        if fifo {
            q.activity().bump();
        }
        results
    }
}
