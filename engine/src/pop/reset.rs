//! Resetting a group: its committed offsets and its POP cursors move
//! together, so consumers by message (every official RocketMQ 5 SDK
//! consumer receives this way) start again where the reset says, as
//! consumers by offset do. What was in flight is dropped: its receipt
//! handles stop working, and a message the reset goes back over is
//! delivered again from the new position.

use std::sync::Arc;

use strata_metadata::{CursorReset, GroupSpec, PopQueueState, StoredGroup};

use super::{Pop, PopSlot};
use crate::error::{EngineError, Result};
use crate::types::OffsetTarget;

impl Pop {
    /// Moves `group` to `to` on every queue of `topic`, offsets and
    /// cursors in one metadata transaction (creating the group if
    /// needed); returns each queue's new position.
    pub(crate) async fn reset(
        self: &Arc<Self>,
        tenant: &str,
        group: &str,
        topic: &str,
        to: OffsetTarget,
    ) -> Result<Vec<(u32, u64)>> {
        self.core.check_offset_commit(group)?;
        let t = self.core.topic(tenant, topic)?;
        // Before the group is made: a target out of range makes nothing.
        let commits = self.core.reset_targets(&t, topic, to).await?;
        let record = self.group_for_reset(tenant, group).await?;
        // Every queue's slot, taken in queue order; nothing else holds two.
        let slots: Vec<Arc<PopSlot>> = t
            .queues
            .iter()
            .map(|q| self.pop_slot(tenant, group, q.key))
            .collect();
        let mut guards = Vec::with_capacity(slots.len());
        for slot in &slots {
            guards.push(slot.state.lock().await);
        }
        let mut cursors = Vec::with_capacity(slots.len());
        for ((guard, q), c) in guards.iter_mut().zip(&t.queues).zip(&commits) {
            let state = self.loaded_pop_state(guard, &record, q).await?;
            cursors.push(CursorReset {
                queue: q.key,
                old: state.cursor,
                new: c.offset,
            });
        }
        // Out of the slots while the commit is in flight: a caller that
        // goes away meanwhile (the commit may still land) leaves them to
        // be loaded again, never stale.
        let mut before = Vec::with_capacity(slots.len());
        for guard in guards.iter_mut() {
            before.push(
                guard
                    .take()
                    .ok_or_else(|| EngineError::Internal("POP state not loaded".into()))?,
            );
        }
        let committed = self
            .core
            .catalog
            .reset_group(
                &record,
                t.record.id,
                &commits,
                &cursors,
                self.core.clock.now_ms(),
            )
            .await?;
        if !committed {
            return Err(self.refused(&record).await);
        }
        // What was in flight is stale now. It goes while the slots are
        // held, so no new delivery reuses one of its offsets first; what
        // cannot go now goes when the slot is loaded again.
        for (((guard, q), old), c) in guards.iter_mut().zip(&t.queues).zip(before).zip(&commits) {
            let mut state = PopQueueState {
                cursor: c.offset,
                floor: Some(c.offset),
                stale: old.inflight,
                ..PopQueueState::default()
            };
            match self.drop_stale(&record, q, &mut state).await {
                Ok(()) => **guard = Some(state),
                Err(e) => {
                    tracing::warn!(tenant, group, topic, queue = q.key.queue, error = %e, "the reset is done; deleting what was in flight before it is left for later");
                }
            }
            // Receives waiting on the queue look again.
            q.activity().bump();
        }
        tracing::info!(tenant, group, topic, to = ?to, "consumer group reset");
        Ok(commits.iter().map(|c| (c.queue, c.offset)).collect())
    }

    /// The group to reset, created with default settings if missing (as
    /// an offset commit creates it).
    async fn group_for_reset(&self, tenant: &str, group: &str) -> Result<StoredGroup> {
        match self.core.group_record(tenant, group).await {
            Err(EngineError::GroupNotFound(_)) => {
                self.core
                    .create_group_with(tenant, group, GroupSpec::default())
                    .await?;
                self.core.group_record(tenant, group).await
            }
            found => found,
        }
    }
}
