//! Consumer groups and their committed offsets.

use strata_common::names;
use strata_metadata::{GroupSpec, GroupStamp, OffsetCommit, StoredGroup};

use strata_common::is_hidden_topic;

use super::Core;
use crate::error::{EngineError, Result};
use crate::types::{GroupInfo, GroupOffset, GroupReceiving, OffsetTarget};

impl Core {
    /// Creates a group as `spec` says; an existing group is returned
    /// unchanged (its settings were fixed when it was created).
    pub async fn create_group_with(
        &self,
        tenant: &str,
        name: &str,
        spec: GroupSpec,
    ) -> Result<(GroupInfo, bool)> {
        self.check_open()?;
        names::validate_group(name)?;
        if let Some(problem) = spec.retry.problem() {
            return Err(EngineError::InvalidArgument(format!(
                "retry policy of group {name:?}: {problem}"
            )));
        }
        let stamp = self.group_stamp();
        let incarnation = stamp.incarnation;
        let record = self
            .catalog
            .create_group_with(tenant, name, stamp, spec)
            .await?;
        self.group_cache.forget(tenant, name);
        // Of concurrent creators only the one whose record was stored made it.
        let created = record.incarnation == incarnation;
        Ok((GroupInfo::new(record, Vec::new()), created))
    }

    /// The group's settings (without offsets), or [`EngineError::GroupNotFound`].
    pub async fn group(&self, tenant: &str, name: &str) -> Result<GroupInfo> {
        Ok(GroupInfo::new(
            self.group_record(tenant, name).await?.record,
            Vec::new(),
        ))
    }

    /// Ok if the group exists, else [`EngineError::GroupNotFound`].
    pub async fn require_group(&self, tenant: &str, name: &str) -> Result<()> {
        self.group_record(tenant, name).await.map(|_| ())
    }

    /// A group created now gets this creation time and incarnation.
    fn group_stamp(&self) -> GroupStamp {
        GroupStamp {
            now_ms: self.clock.now_ms(),
            incarnation: self.clock.random_u64(),
        }
    }

    /// The group's record, or [`EngineError::GroupNotFound`]; read from
    /// the store at most once per [`super::group_cache::TTL`].
    pub(crate) async fn group_record(&self, tenant: &str, name: &str) -> Result<StoredGroup> {
        // A name no group can have is a bad request, not a missing group.
        names::validate_group(name)?;
        let now = self.clock.monotonic();
        if let Some(record) = self.group_cache.get(tenant, name, now) {
            return Ok(record);
        }
        let generation = self.group_cache.generation();
        let record = self
            .catalog
            .get_group_stored(tenant, name)
            .await?
            .ok_or_else(|| EngineError::GroupNotFound(name.to_string()))?;
        self.group_cache
            .put(tenant, record.clone(), now, generation);
        Ok(record)
    }

    pub async fn list_groups(&self, tenant: &str) -> Result<Vec<GroupInfo>> {
        let groups = self.catalog.list_groups(tenant).await?;
        Ok(groups
            .into_iter()
            .map(|g| GroupInfo::new(g, Vec::new()))
            .collect())
    }

    /// A group with its committed offsets and lag per queue.
    pub async fn describe_group(&self, tenant: &str, name: &str) -> Result<GroupInfo> {
        // A name no group can have is a bad request, not a missing group.
        names::validate_group(name)?;
        let record = self
            .catalog
            .get_group(tenant, name)
            .await?
            .ok_or_else(|| EngineError::GroupNotFound(name.to_string()))?;
        let committed = self.catalog.list_offsets(tenant, name).await?;
        let mut offsets = Vec::new();
        let mut topics_committed = std::collections::BTreeMap::new();
        for c in committed {
            // Offsets of deleted and hidden topics are left out.
            let Some(topic) = self.topics_read().by_id(c.topic_id).cloned() else {
                continue;
            };
            if is_hidden_topic(&topic.record.name) {
                continue;
            }
            let Some(q) = topic.queues.get(c.queue as usize) else {
                continue;
            };
            // What retention removed is not there to consume.
            let lag = q.lock().readable_from(c.offset);
            offsets.push(GroupOffset {
                topic: topic.record.name.clone(),
                queue: c.queue,
                offset: c.offset,
                lag,
                updated_ms: c.updated_ms,
            });
            topics_committed
                .entry(c.topic_id)
                .or_insert_with(|| (topic.clone(), std::collections::BTreeSet::new()))
                .1
                .insert(c.queue);
        }
        // The other queues of a topic the group commits on: it has read
        // nothing there, so all from where it starts is its lag (listing
        // only committed queues showed a part of the backlog).
        for (topic, queues) in topics_committed.into_values() {
            for q in topic
                .queues
                .iter()
                .filter(|q| !queues.contains(&q.key.queue))
            {
                let from = match record.start {
                    strata_metadata::StartPosition::Latest => {
                        self.queue_offset_for_time(q, record.created_ms).await?
                    }
                    strata_metadata::StartPosition::Earliest => 0,
                };
                let (lag, from) = {
                    let inner = q.lock();
                    (inner.readable_from(from), from.max(inner.first_offset))
                };
                offsets.push(GroupOffset {
                    topic: topic.record.name.clone(),
                    queue: q.key.queue,
                    offset: from,
                    lag,
                    updated_ms: 0,
                });
            }
        }
        offsets.sort_by(|a, b| (&a.topic, a.queue).cmp(&(&b.topic, b.queue)));
        let receiving = self.receiving(tenant, &record).await?;
        let mut info = GroupInfo::new(record, offsets);
        info.receiving = receiving;
        Ok(info)
    }

    /// Where the group receives by message, on every queue of each topic
    /// it has received from (a queue it has not received from yet counts
    /// from where it would start).
    async fn receiving(
        &self,
        tenant: &str,
        group: &strata_metadata::GroupRecord,
    ) -> Result<Vec<GroupReceiving>> {
        let positions = self.catalog.pop_positions(tenant, &group.name).await?;
        let topic_ids: std::collections::BTreeSet<_> = positions.keys().map(|q| q.topic).collect();
        let mut out = Vec::new();
        for id in topic_ids {
            let Some(topic) = self.topics_read().by_id(id).cloned() else {
                continue;
            };
            if is_hidden_topic(&topic.record.name) {
                continue;
            }
            for q in &topic.queues {
                let position = positions.get(&q.key).filter(|p| p.cursor > 0);
                let from = match position {
                    Some(p) => p.cursor,
                    None if group.start == strata_metadata::StartPosition::Latest => {
                        self.queue_offset_for_time(q, group.created_ms).await?
                    }
                    None => 0,
                };
                // FIFO messages waiting behind their message group's are
                // past the cursor but not delivered: ready, not in flight.
                let waiting = position.map_or(0, |p| p.waiting);
                let ready = q.lock().readable_from(from).saturating_add(waiting);
                out.push(GroupReceiving {
                    topic: topic.record.name.clone(),
                    queue: q.key.queue,
                    cursor: position.map(|p| p.cursor),
                    in_flight: position.map_or(0, |p| p.in_flight),
                    ready,
                });
            }
        }
        out.sort_by(|a, b| (&a.topic, a.queue).cmp(&(&b.topic, b.queue)));
        Ok(out)
    }

    /// Deletes the group's record and committed offsets; the features
    /// forget their own state of it (see `Engine::delete_group`).
    pub async fn delete_group(&self, tenant: &str, name: &str) -> Result<()> {
        self.check_open()?;
        names::validate_group(name)?;
        let deleted = self.catalog.delete_group(tenant, name).await;
        // Gone either way (a "not found" may be a deletion finished
        // elsewhere): a cached record is stale.
        self.group_cache.forget(tenant, name);
        deleted?;
        Ok(())
    }

    /// Commits `offset` (the next offset to consume) for a group on one
    /// queue, creating the group if needed.
    pub async fn commit_offset(
        &self,
        tenant: &str,
        group: &str,
        topic: &str,
        queue: u32,
        offset: u64,
    ) -> Result<()> {
        self.check_offset_commit(group)?;
        let t = self.topic(tenant, topic)?;
        let q = t.queue(queue)?;
        let commit = offset_commit(self, q, topic, offset)?;
        self.commit_offsets(tenant, group, &t, topic, &[commit])
            .await
    }

    /// Where `to` is on every queue of `t`, as offset commits fenced on
    /// each queue's owner: all queues or an error (an offset out of one
    /// queue's range refuses the whole reset).
    pub(crate) async fn reset_targets(
        &self,
        t: &super::topic::TopicState,
        topic: &str,
        to: OffsetTarget,
    ) -> Result<Vec<OffsetCommit>> {
        let mut commits = Vec::with_capacity(t.queues.len());
        for q in &t.queues {
            let offset = match to {
                OffsetTarget::Earliest => q.lock().first_offset,
                OffsetTarget::Latest => q.lock().high_watermark,
                OffsetTarget::Offset(n) => n,
                OffsetTarget::Time(ms) => self.queue_offset_for_time(q, ms).await?,
            };
            // Checked after the lookup: a time's offset may be an end that
            // grew meanwhile, and ends only grow.
            commits.push(offset_commit(self, q, topic, offset)?);
        }
        Ok(commits)
    }

    /// What every offset commit checks first. A node whose lease lapsed
    /// may have lost the queue already.
    pub(crate) fn check_offset_commit(&self, group: &str) -> Result<()> {
        self.check_open()?;
        names::validate_group(group)?;
        self.check_write_fence()
    }

    /// Commits `commits` on queues of `t` in one transaction, each fenced
    /// on its queue's owner.
    async fn commit_offsets(
        &self,
        tenant: &str,
        group: &str,
        t: &super::topic::TopicState,
        topic: &str,
        commits: &[OffsetCommit],
    ) -> Result<()> {
        let committed = self
            .catalog
            .commit_offsets(tenant, group, t.record.id, commits, self.group_stamp())
            .await?;
        if !committed {
            // Another node claimed a queue: this one must not move the
            // group's position there any more.
            return Err(EngineError::Refused {
                code: strata_common::ErrorCode::Unavailable,
                message: format!("a queue of topic {topic} moved to another node; retry"),
            });
        }
        Ok(())
    }

    /// A group's committed offset on one queue, if any.
    pub async fn committed_offset(
        &self,
        tenant: &str,
        group: &str,
        topic: &str,
        queue: u32,
    ) -> Result<Option<u64>> {
        names::validate_group(group)?;
        let t = self.topic(tenant, topic)?;
        t.queue(queue)?;
        let got = self
            .catalog
            .get_offset(tenant, group, t.record.id, queue)
            .await?;
        Ok(got.map(|c| c.offset))
    }
}

/// `offset` on queue `q` as a commit fenced on the queue's owner, or
/// OFFSET_OUT_OF_RANGE past its end.
fn offset_commit(
    core: &Core,
    q: &super::QueueState,
    topic: &str,
    offset: u64,
) -> Result<OffsetCommit> {
    let (first, end) = {
        let inner = q.lock();
        (inner.first_offset, inner.high_watermark)
    };
    if offset > end {
        return Err(EngineError::OffsetOutOfRange {
            topic: topic.to_string(),
            queue: q.key.queue,
            offset,
            first,
            end,
        });
    }
    Ok(OffsetCommit {
        queue: q.key.queue,
        offset,
        fence: core.catalog.owner_check(q.key, &q.owner),
    })
}
