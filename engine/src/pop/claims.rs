//! Deliveries a receive committed and has not yet handed to its caller.
//! A caller that goes away (the receive's future is dropped, or a later
//! step fails) leaves them behind; they are released: visible again at
//! once, their attempt not counted, instead of hidden for the whole
//! invisible time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use strata_common::{QueueKey, StoredMessage};
use strata_metadata::{InflightRecord, PopChange, StoredGroup};

use super::Pop;
use crate::core::queue::QueueState;
use crate::error::EngineError;

/// One delivery a pass committed, until it is handed to the caller.
pub(crate) struct Delivery {
    pub queue: Arc<QueueState>,
    pub offset: u64,
    pub record: InflightRecord,
    pub message: StoredMessage,
}

impl Pop {
    /// Makes deliveries that never reached a caller visible again at once,
    /// as if they had not been made (the attempt is not counted). A queue's
    /// records are released only if they are still the ones this receive
    /// committed; otherwise (the commit never landed, say) they are left to
    /// their invisible time.
    async fn release(self: Arc<Self>, group: StoredGroup, got: Vec<Delivery>) {
        let (tenant, name) = (&group.tenant, &group.name);
        let mut by_queue: HashMap<QueueKey, (Arc<QueueState>, PopChange)> = HashMap::new();
        for d in got {
            let (_, change) = by_queue
                .entry(d.queue.key)
                .or_insert_with(|| (d.queue.clone(), PopChange::default()));
            change.put.push((
                d.offset,
                InflightRecord {
                    attempt: d.record.attempt - 1,
                    visible_ms: 0,
                    seq: 0,
                    message_group: d.record.message_group.clone(),
                    chosen: false,
                },
            ));
            change.remove.push((d.offset, d.record));
        }
        for (q, change) in by_queue.into_values() {
            let slot = self.pop_slot(tenant, name, q.key);
            let mut guard = slot.state.lock().await;
            let released = if guard.is_some() {
                self.commit_to_slot(&mut guard, &group, &q, &change).await
            } else {
                let fence = self.core.catalog.owner_check(q.key, &q.owner);
                self.core
                    .catalog
                    .commit_pop(&group, q.key, &change, fence)
                    .await
                    .map_err(EngineError::from)
            };
            match released {
                Ok(true) => q.activity().bump(),
                // A record changed since (this receive's commit did not land):
                // its invisible time brings the message back.
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    tenant,
                    group = name,
                    error = %e,
                    "releasing undelivered messages failed; they return after their invisible time"
                ),
            }
        }
    }
}

/// Deliveries committed by one receive and not yet handed to its caller.
/// Dropped with any left (the caller went away, or the receive failed
/// half-way), it releases them in the background.
pub(crate) struct Unclaimed {
    pop: Arc<Pop>,
    group: StoredGroup,
    got: Mutex<Vec<Delivery>>,
}

impl Unclaimed {
    pub fn new(pop: &Arc<Pop>, group: &StoredGroup) -> Self {
        Self {
            pop: pop.clone(),
            group: group.clone(),
            got: Mutex::new(Vec::new()),
        }
    }

    pub fn add(&self, more: impl Iterator<Item = Delivery>) {
        self.got
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(more);
    }

    /// Takes back the deliveries of `queue` with these seqs (their commit
    /// failed: they were never made).
    pub fn retract(&self, queue: QueueKey, seqs: &[u64]) {
        self.got
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|d| d.queue.key != queue || !seqs.contains(&d.record.seq));
    }

    /// Everything claimed so far; the caller now owns it.
    pub fn take(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.got.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for Unclaimed {
    fn drop(&mut self) {
        let got = self.take();
        if got.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(self.pop.clone().release(self.group.clone(), got));
    }
}
