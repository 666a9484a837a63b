//! Message lookup by message id and by key.
//!
//! An index task follows every queue of every user topic a little behind
//! its durable end (every [`INDEX_INTERVAL`]), taking the new messages' ids
//! and keys from the index feed the appends fill (reading messages back
//! only where the feed has a gap: after a restart, or when it was full)
//! and committing their id and key entries, with the
//! queue's new mark, to the catalog in one transaction per batch (see
//! `strata_metadata::catalog::lookup`). Publishing never waits for it.
//! A lookup reads the index, then scans each queue's messages past its mark,
//! so a message is found as soon as its publish is acknowledged. After a
//! crash the task resumes at the marks: nothing is lost, and entries
//! written twice are the same keys. Retention prunes the entries of
//! expired messages; a deleted topic's index is dropped.
//!
//! Hidden system topics (`__sys-*`) are not indexed: their messages are
//! found in the topics they are delivered to.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use strata_common::usage::Counter;
use strata_common::{QueueKey, StoredMessage};
use strata_metadata::{IndexKind, IndexedMessage};

use crate::core::topic::TopicState;
use crate::core::{Core, SYSTEM_TOPIC_PREFIX};
use crate::error::{EngineError, Result};

/// How often the index task catches up with new messages.
pub const INDEX_INTERVAL: Duration = Duration::from_millis(200);
/// Messages per index transaction.
const INDEX_BATCH: usize = 4096;
/// Expired messages whose entries one pass deletes per queue.
const PRUNE_BATCH: usize = 1000;
/// Most messages of one queue a lookup scans past the index's mark. The
/// index is further behind only while it catches up with a queue written
/// before it existed.
const MAX_UNINDEXED_SCAN: u64 = 20_000;

/// A message found by id or key, with the queue it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundMessage {
    pub queue: u32,
    pub message: StoredMessage,
}

/// The message index: the task that follows every queue, and lookups.
#[derive(Debug)]
pub(crate) struct Lookup {
    core: Arc<Core>,
    /// How far each queue is indexed.
    marks: std::sync::Mutex<HashMap<QueueKey, u64>>,
    /// Below which offset each queue's entries are pruned.
    pruned_below: std::sync::Mutex<HashMap<QueueKey, u64>>,
    /// One pass at a time; `Engine::close` takes it to wait for a pass.
    running: tokio::sync::Mutex<()>,
}

impl Lookup {
    /// Loads how far the index reaches.
    pub(crate) async fn open(core: Arc<Core>) -> Result<Arc<Self>> {
        let marks = core.catalog.index_marks().await?;
        Ok(Arc::new(Self {
            core,
            marks: std::sync::Mutex::new(marks),
            pruned_below: std::sync::Mutex::new(HashMap::new()),
            running: tokio::sync::Mutex::new(()),
        }))
    }

    fn mark(&self, queue: QueueKey) -> u64 {
        let marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        marks.get(&queue).copied().unwrap_or(0)
    }

    fn set_marks(&self, topic: u64, marks: &[(u32, u64)]) {
        let mut all = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        for &(queue, next) in marks {
            all.insert(QueueKey::new(topic, queue), next);
        }
    }

    /// Waits for a pass in progress to end; later passes do nothing once
    /// shutdown has begun.
    pub(crate) async fn wait_for_pass(&self) {
        let _pass = self.running.lock().await;
    }

    /// Spawns the index task; it runs until shutdown.
    pub(crate) fn spawn_loop(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let mut shutdown = self.core.shutdown.subscribe();
        let clock = self.core.clock.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = clock.sleep(INDEX_INTERVAL) => {}
                    _ = shutdown.wait_for(|down| *down) => break,
                }
                let Some(lookup) = weak.upgrade() else { break };
                if let Err(e) = lookup.index_pending().await
                    && !*lookup.core.shutdown.borrow()
                {
                    tracing::warn!(error = %e, "message index pass failed; retrying");
                }
            }
        })
    }
}

impl Lookup {
    /// One pass of the index task: indexes every queue up to its durable
    /// end, prunes entries of expired messages and drops the index of
    /// deleted topics. Returns how many messages it indexed.
    pub async fn index_pending(&self) -> Result<usize> {
        let _one = self.running.lock().await;
        if *self.core.shutdown.borrow() {
            return Ok(0);
        }
        let topics: Vec<Arc<TopicState>> = self
            .core
            .topics_read()
            .all()
            .filter(|t| !t.record.name.starts_with(SYSTEM_TOPIC_PREFIX))
            .cloned()
            .collect();
        self.drop_deleted_indexes().await?;
        let indexed_queues = topics
            .iter()
            .flat_map(|t| t.queues.iter().map(|q| q.key))
            .collect();
        self.core.index_feed.retain(&indexed_queues);
        let mut indexed = 0;
        for topic in &topics {
            indexed += self.index_topic(topic).await?;
        }
        Ok(indexed)
    }

    async fn index_topic(&self, topic: &TopicState) -> Result<usize> {
        let (tenant, name, id) = (&topic.record.tenant, &topic.record.name, topic.record.id);
        let mut batch = Vec::new();
        let mut marks = Vec::new();
        let mut indexed = 0;
        for q in &topic.queues {
            let (first, hw) = {
                let inner = q.lock();
                (inner.first_offset, inner.high_watermark)
            };
            self.prune_expired(q.key, first).await?;
            let mut mark = self.mark(q.key);
            let mut at = mark.max(first);
            while at < hw {
                if batch.len() >= INDEX_BATCH {
                    // Stay with this queue: one moving on after each batch
                    // would let a busy queue fill the index feed for all.
                    marks.push((q.key.queue, at));
                    mark = at;
                    indexed += self.commit_index(id, &mut batch, &mut marks).await?;
                }
                let want = INDEX_BATCH - batch.len();
                // What appends fed continues the mark: no read back.
                let fed = self.core.index_feed.take(q.key, at, hw, want);
                if let Some(last) = fed.last() {
                    at = last.offset + 1;
                    batch.extend(fed.into_iter().filter(|m| !m.id.is_empty()));
                    continue;
                }
                let read = match self
                    .core
                    .read_inner(tenant, name, q.key.queue, at, want, Duration::ZERO)
                    .await
                {
                    Ok(read) => read,
                    // Retention moved the start meanwhile.
                    Err(EngineError::OffsetOutOfRange { first, .. }) if first > at => {
                        at = first;
                        continue;
                    }
                    // Deleted meanwhile: its index is dropped on the next pass.
                    Err(EngineError::TopicNotFound(_)) => return Ok(indexed),
                    Err(e) => return Err(e),
                };
                if read.messages.is_empty() {
                    break;
                }
                at = read.next_offset;
                batch.extend(
                    read.messages
                        .into_iter()
                        .filter(|m| !m.message.id.is_empty())
                        .map(|m| IndexedMessage {
                            queue: q.key.queue,
                            offset: m.offset,
                            id: m.message.id,
                            key: m.message.key,
                        }),
                );
            }
            if at != mark {
                marks.push((q.key.queue, at));
            }
            if batch.len() >= INDEX_BATCH {
                indexed += self.commit_index(id, &mut batch, &mut marks).await?;
            }
        }
        indexed += self.commit_index(id, &mut batch, &mut marks).await?;
        Ok(indexed)
    }

    async fn commit_index(
        &self,
        topic: u64,
        batch: &mut Vec<IndexedMessage>,
        marks: &mut Vec<(u32, u64)>,
    ) -> Result<usize> {
        if marks.is_empty() {
            return Ok(0);
        }
        self.core
            .catalog
            .index_messages(topic, batch, marks)
            .await?;
        self.set_marks(topic, marks);
        let n = batch.len();
        batch.clear();
        marks.clear();
        Ok(n)
    }

    /// Deletes entries of messages below `first` (expired), a page per pass.
    async fn prune_expired(&self, queue: QueueKey, first: u64) -> Result<()> {
        let below = {
            let pruned = self.pruned_below.lock().unwrap_or_else(|p| p.into_inner());
            pruned.get(&queue).copied().unwrap_or(0)
        };
        if first <= below {
            return Ok(());
        }
        let deleted = self
            .core
            .catalog
            .prune_index(queue, first, PRUNE_BATCH)
            .await?;
        if deleted < PRUNE_BATCH {
            let mut pruned = self.pruned_below.lock().unwrap_or_else(|p| p.into_inner());
            pruned.insert(queue, first);
        }
        Ok(())
    }

    /// Drops the index of every topic that has marks but no longer exists.
    async fn drop_deleted_indexes(&self) -> Result<()> {
        let dead: Vec<u64> = {
            let topics = self.core.topics_read();
            let marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
            let mut dead: Vec<u64> = marks
                .keys()
                .map(|q| q.topic)
                .filter(|id| topics.by_id(*id).is_none())
                .collect();
            dead.sort_unstable();
            dead.dedup();
            dead
        };
        for topic in dead {
            self.core.catalog.drop_index(topic).await?;
            let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
            marks.retain(|q, _| q.topic != topic);
            tracing::info!(topic, "dropped the message index of a deleted topic");
        }
        Ok(())
    }

    /// Up to `limit` messages of `topic` whose id (or key) is `value`, in
    /// (queue, offset) order; counted as delivered.
    pub async fn find_messages(
        &self,
        tenant: &str,
        topic: &str,
        kind: IndexKind,
        value: &str,
        limit: usize,
    ) -> Result<Vec<FoundMessage>> {
        self.core.check_open()?;
        let state = self.core.topic(tenant, topic)?;
        let limit = limit.clamp(1, self.core.config.max_read_messages);
        let matches = |m: &StoredMessage| match kind {
            IndexKind::Id => m.message.id == value,
            IndexKind::Key => m.message.key.as_deref() == Some(value),
        };
        let mut found = Vec::new();
        let hits = self
            .core
            .catalog
            .find_messages(kind, state.record.id, value, limit)
            .await?;
        for (queue, offset) in hits {
            match self
                .core
                .read_inner(tenant, topic, queue, offset, 1, Duration::ZERO)
                .await
            {
                Ok(read) => found.extend(
                    read.messages
                        .into_iter()
                        .filter(|m| m.offset == offset && matches(m))
                        .map(|message| FoundMessage { queue, message }),
                ),
                // Expired since it was indexed; retention prunes the entry.
                Err(EngineError::OffsetOutOfRange { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        // Messages published since the index last caught up.
        for q in &state.queues {
            let (first, hw) = {
                let inner = q.lock();
                (inner.first_offset, inner.high_watermark)
            };
            let mut at = self
                .mark(q.key)
                .max(first)
                .max(hw.saturating_sub(MAX_UNINDEXED_SCAN));
            while at < hw {
                let read = match self
                    .core
                    .read_inner(tenant, topic, q.key.queue, at, usize::MAX, Duration::ZERO)
                    .await
                {
                    Ok(read) => read,
                    Err(EngineError::OffsetOutOfRange { first, .. }) if first > at => {
                        at = first;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if read.messages.is_empty() {
                    break;
                }
                at = read.next_offset;
                found.extend(
                    read.messages
                        .into_iter()
                        .filter(|m| matches(m))
                        .map(|message| FoundMessage {
                            queue: q.key.queue,
                            message,
                        }),
                );
            }
        }
        // The index may have caught up between the two steps.
        found.sort_by_key(|f| (f.queue, f.message.offset));
        found.dedup_by_key(|f| (f.queue, f.message.offset));
        found.truncate(limit);
        let bytes = found
            .iter()
            .map(|f| f.message.message.approx_size() as u64)
            .sum();
        self.core
            .meter
            .add(tenant, Counter::DeliveredMessages, found.len() as u64);
        self.core.meter.add(tenant, Counter::DeliveredBytes, bytes);
        Ok(found)
    }
}
