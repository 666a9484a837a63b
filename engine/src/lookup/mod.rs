//! Message lookup by message id and by key.
//!
//! An index task follows every queue of every user topic a little behind
//! its durable end (every [`INDEX_INTERVAL`]), taking the hashes of new
//! messages' ids and keys from the index feed the appends fill (reading
//! messages back only where the feed has a gap: after a restart, or when it
//! was full) into a pending set in memory. The pending set is written to
//! object storage as one sorted, immutable run (`strata_objects::index_run`)
//! once it holds [`FLUSH_ENTRIES`] entries or its oldest has waited
//! [`FLUSH_AGE`], and every run written is followed by a maintenance pass
//! (which merges runs); the run's record and the queues' new marks are committed
//! to the catalog in one transaction ([`runs`]). Publishing never waits for
//! any of it, and the metadata store sees one record per run, not keys per
//! message.
//!
//! A lookup reads the pending set, the runs that hold the topic (one page
//! of each) and scans each queue's messages past its mark, then reads the
//! messages found and keeps those whose id or key is the value (hashes can
//! collide), so a message is found as soon as its publish is acknowledged.
//! After a crash the task resumes at the committed marks and indexes again
//! what was pending: nothing is lost, and an entry in two runs is found
//! once. Runs are merged, and dropped once retention or topic deletion
//! removed every message they cover ([`runs`]).
//!
//! Hidden system topics (`__sys-*`) are not indexed: their messages are
//! found in the topics they are delivered to.

mod runs;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use strata_common::usage::Counter;
use strata_common::{QueueKey, StoredMessage, is_hidden_topic};
use strata_metadata::IndexKind;
use strata_objects::index_run::{RunEntry, ValueKind, entry_hash};

use crate::core::Core;
use crate::core::index_feed::FedMessage;
use crate::core::topic::TopicState;
use crate::error::{EngineError, Result};
use crate::types::IndexStats;

pub use runs::IndexMaintenance;

/// How often the index task catches up with new messages.
pub const INDEX_INTERVAL: Duration = Duration::from_millis(200);
/// Pending entries that make a run (28 MiB in object storage).
pub const FLUSH_ENTRIES: usize = 1 << 20;
/// Longest an entry stays pending: after a crash the index task reads back
/// at most this much publishing.
pub const FLUSH_AGE: Duration = Duration::from_secs(60);
/// Messages read back at once where the feed has a gap.
const READ_BATCH: usize = 4096;
/// How long a close waits to write the pending index (see `flush_on_close`).
const CLOSE_FLUSH_LIMIT: Duration = Duration::from_secs(10);
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

/// The messages a lookup found, oldest first per queue, and whether it
/// found more than it returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoundMessages {
    pub messages: Vec<FoundMessage>,
    /// More messages match than were returned (the limit cut them).
    pub more: bool,
}

/// Entries not in a run yet.
#[derive(Debug, Default)]
struct Pending {
    entries: Vec<RunEntry>,
    /// The queues whose marks moved since the last run: where they are now.
    marks: HashMap<QueueKey, u64>,
    /// When the oldest pending mark moved (clock ms).
    since_ms: Option<i64>,
}

/// The message index: the task that follows every queue, and lookups.
#[derive(Debug)]
pub(crate) struct Lookup {
    core: Arc<Core>,
    /// How far each queue is indexed (pending or in a run).
    marks: std::sync::Mutex<HashMap<QueueKey, u64>>,
    pending: std::sync::Mutex<Pending>,
    /// Entries being written as a run: still searched until committed.
    flushing: std::sync::Mutex<Option<Arc<Vec<RunEntry>>>>,
    runs: runs::RunCache,
    stats: Counters,
    /// One pass at a time; `Engine::close` takes it to wait for a pass.
    running: tokio::sync::Mutex<()>,
}

/// Counters behind [`IndexStats`].
#[derive(Debug, Default)]
struct Counters {
    runs_written: AtomicU64,
    runs_merged: AtomicU64,
    runs_dropped: AtomicU64,
    objects_swept: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
}

fn value_kind(kind: IndexKind) -> ValueKind {
    match kind {
        IndexKind::Id => ValueKind::Id,
        IndexKind::Key => ValueKind::Key,
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Lookup {
    /// Loads how far the index reaches (dropping an index kept the old way,
    /// in the metadata store, so it is built again in object storage).
    pub(crate) async fn open(core: Arc<Core>) -> Result<Arc<Self>> {
        if core.catalog.drop_legacy_index().await? {
            tracing::info!(
                "dropped the message index kept in the metadata store; \
                 it is built again in object storage from every queue's first message"
            );
        }
        let marks = core.catalog.index_marks().await?;
        Ok(Arc::new(Self {
            core,
            marks: std::sync::Mutex::new(marks),
            pending: std::sync::Mutex::default(),
            flushing: std::sync::Mutex::default(),
            runs: runs::RunCache::default(),
            stats: Counters::default(),
            running: tokio::sync::Mutex::new(()),
        }))
    }

    /// Takes the marks of `topics` from the metadata store (their tenant
    /// came to this node: the node that served it moved them on since this
    /// one loaded them, if it ever did).
    pub(crate) async fn load_marks(&self, topics: &HashSet<u64>) -> Result<()> {
        let stored = self.core.catalog.index_marks().await?;
        let mut marks = lock(&self.marks);
        marks.retain(|q, _| !topics.contains(&q.topic));
        marks.extend(
            stored
                .into_iter()
                .filter(|(q, _)| topics.contains(&q.topic)),
        );
        Ok(())
    }

    fn mark(&self, queue: QueueKey) -> u64 {
        lock(&self.marks).get(&queue).copied().unwrap_or(0)
    }

    /// Adds entries of `queue` up to `next` (exclusive) to the pending set.
    fn add_pending(&self, queue: QueueKey, next: u64, fed: &[FedMessage]) {
        let now = self.core.clock.now_ms();
        {
            let mut pending = lock(&self.pending);
            for m in fed {
                for hash in m.hashes() {
                    pending.entries.push(RunEntry {
                        hash,
                        topic: queue.topic,
                        queue: queue.queue,
                        offset: m.offset,
                    });
                }
            }
            pending.marks.insert(queue, next);
            pending.since_ms.get_or_insert(now);
        }
        lock(&self.marks).insert(queue, next);
    }

    /// Writes what is pending as a run, so a restart need not index it
    /// again, giving up after [`CLOSE_FLUSH_LIMIT`] (an object store that
    /// is down would otherwise hold the close for all its retries).
    /// Failures are logged: the index task reads it back then.
    pub(crate) async fn flush_on_close(&self) {
        let _pass = self.running.lock().await;
        let clock = self.core.clock.clone();
        match strata_common::clock::timeout(clock.as_ref(), CLOSE_FLUSH_LIMIT, self.flush()).await {
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::warn!(error = %e, "could not write the pending message index at shutdown");
            }
            None => tracing::warn!(
                limit_s = CLOSE_FLUSH_LIMIT.as_secs(),
                "gave up writing the pending message index at shutdown; it is indexed again after the restart"
            ),
        }
    }

    pub(crate) fn stats(&self) -> IndexStats {
        let c = &self.stats;
        IndexStats {
            pending_entries: lock(&self.pending).entries.len() as u64,
            runs_written: c.runs_written.load(Ordering::Relaxed),
            runs_merged: c.runs_merged.load(Ordering::Relaxed),
            runs_dropped: c.runs_dropped.load(Ordering::Relaxed),
            objects_swept: c.objects_swept.load(Ordering::Relaxed),
            last_error: lock(&c.last_error).clone(),
        }
    }

    /// [`Lookup::flush`] between passes.
    pub(crate) async fn flush_now(&self) -> Result<usize> {
        let _pass = self.running.lock().await;
        self.flush().await
    }

    /// [`Lookup::maintain`] between passes.
    pub(crate) async fn maintain_now(&self) -> Result<IndexMaintenance> {
        let _pass = self.running.lock().await;
        self.maintain().await
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
                // Abandoned at shutdown: a pass is crash-safe (marks move
                // only with the runs that cover them), and one retrying
                // against an object store that is down would hold up the
                // close for as long as its retries last.
                let passed = tokio::select! {
                    passed = lookup.index_pass() => passed,
                    _ = shutdown.wait_for(|down| *down) => break,
                };
                match passed {
                    Ok(()) => *lock(&lookup.stats.last_error) = None,
                    Err(e) if !*lookup.core.shutdown.borrow() => {
                        tracing::warn!(error = %e, "message index pass failed; retrying");
                        *lock(&lookup.stats.last_error) = Some(e.to_string());
                    }
                    Err(_) => {}
                }
            }
        })
    }

    /// What the task does every interval: keep the runs in shape when that
    /// is due (at once after a start, so a crash's orphans go), index, and
    /// write a run when one is due.
    async fn index_pass(&self) -> Result<()> {
        if self.runs.maintenance_due(self.core.clock.now_ms()) {
            self.maintain_now().await?;
        }
        self.index_pending().await?;
        let _one = self.running.lock().await;
        let now = self.core.clock.now_ms();
        let due = {
            let pending = lock(&self.pending);
            pending.entries.len() >= self.core.config.index_flush_entries
                || pending
                    .since_ms
                    .is_some_and(|since| now - since >= FLUSH_AGE.as_millis() as i64)
        };
        if due {
            self.flush_and_maintain().await?;
        }
        Ok(())
    }

    /// Writes the pending set as a run and, if it wrote one, drops, merges
    /// and sweeps runs. Every run the task writes goes through here: under
    /// steady load most runs are written in the middle of an indexing pass,
    /// and when only the end of a pass maintained, runs piled up unmerged
    /// (0 merges in 6 runs at 150k msgs/s) until the ten-minute pass.
    async fn flush_and_maintain(&self) -> Result<()> {
        if self.flush().await? > 0 {
            self.maintain().await?;
        }
        Ok(())
    }
}

impl Lookup {
    /// Indexes every queue up to its durable end into the pending set
    /// (writing a run whenever it fills) and forgets deleted topics' marks.
    /// Returns how many messages it indexed.
    pub async fn index_pending(&self) -> Result<usize> {
        let _one = self.running.lock().await;
        if *self.core.shutdown.borrow() {
            return Ok(0);
        }
        let topics: Vec<Arc<TopicState>> = self
            .core
            .topics_read()
            .all()
            .filter(|t| !is_hidden_topic(&t.record.name))
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
        let (tenant, name) = (&topic.record.tenant, &topic.record.name);
        let mut indexed = 0;
        for q in &topic.queues {
            let (first, hw) = {
                let inner = q.lock();
                (inner.first_offset, inner.high_watermark)
            };
            let mut at = self.mark(q.key).max(first);
            while at < hw {
                if lock(&self.pending).entries.len() >= self.core.config.index_flush_entries {
                    self.flush_and_maintain().await?;
                }
                // What appends fed continues the mark: no read back.
                let fed = self.core.index_feed.take(q.key, at, hw, READ_BATCH);
                if let Some(last) = fed.last() {
                    at = last.offset + 1;
                    indexed += fed.len();
                    self.add_pending(q.key, at, &fed);
                    continue;
                }
                let read = match self
                    .core
                    .read_inner(tenant, name, q.key.queue, at, READ_BATCH, Duration::ZERO)
                    .await
                {
                    Ok(read) => read,
                    // Retention moved the start meanwhile.
                    Err(EngineError::OffsetOutOfRange { first, .. }) if first > at => {
                        at = first;
                        continue;
                    }
                    // Deleted meanwhile: its marks go on the next pass.
                    Err(EngineError::TopicNotFound(_)) => return Ok(indexed),
                    Err(e) => return Err(e),
                };
                if read.messages.is_empty() {
                    break;
                }
                at = read.next_offset;
                let fed: Vec<FedMessage> = read
                    .messages
                    .iter()
                    .map(|m| FedMessage::new(q.key, m.offset, &m.message))
                    .collect();
                indexed += fed.len();
                self.add_pending(q.key, at, &fed);
            }
        }
        Ok(indexed)
    }

    /// Forgets the marks (and pending entries) of every topic this node
    /// no longer holds. A deleted topic's marks go from the metadata store
    /// too (its runs' entries go when the runs are merged or dropped); a
    /// topic whose tenant moved to another node keeps them there, and that
    /// node indexes on from them (what was pending here it indexes again).
    async fn drop_deleted_indexes(&self) -> Result<()> {
        let dead: Vec<u64> = {
            let topics = self.core.topics_read();
            let marks = lock(&self.marks);
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
            {
                let mut pending = lock(&self.pending);
                pending.entries.retain(|e| e.topic != topic);
                pending.marks.retain(|q, _| q.topic != topic);
            }
            let deleted = self.core.catalog.topic_by_id(topic).await?.is_none();
            if deleted {
                self.core.catalog.drop_index(topic).await?;
            }
            lock(&self.marks).retain(|q, _| q.topic != topic);
            if deleted {
                tracing::info!(topic, "dropped the message index marks of a deleted topic");
            } else {
                tracing::debug!(
                    topic,
                    "forgot the message index marks of a topic served elsewhere now"
                );
            }
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
    ) -> Result<FoundMessages> {
        self.core.check_open()?;
        let state = self.core.topic(tenant, topic)?;
        let topic_id = state.record.id;
        let limit = limit.clamp(1, self.core.config.max_read_messages);
        // One past the limit tells whether the limit cut the answer.
        let wanted_count = limit + 1;
        let matches = |m: &StoredMessage| match kind {
            IndexKind::Id => m.message.id == value,
            IndexKind::Key => m.message.keys().any(|key| key == value),
        };
        // The marks first: what moves from past them into the pending set,
        // and from there into a run, meanwhile is then found on one side.
        let marks: Vec<u64> = state.queues.iter().map(|q| self.mark(q.key)).collect();
        let hash = entry_hash(topic_id, value_kind(kind), value);
        let wanted = |e: &&RunEntry| e.hash == hash && e.topic == topic_id;
        let mut hits = BTreeSet::new();
        {
            // Both under the pending lock (the order `flush` takes them in):
            // entries move between the two only while it is held.
            let pending = lock(&self.pending);
            let flushing = lock(&self.flushing);
            let entries = pending
                .entries
                .iter()
                .chain(flushing.iter().flat_map(|f| f.iter()));
            hits.extend(entries.filter(wanted).map(|e| (e.queue, e.offset)));
        }
        hits.extend(self.search_runs(topic_id, hash).await?);

        let mut found = Vec::new();
        for (queue, offset) in hits {
            if found.len() >= wanted_count {
                break;
            }
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
                // Expired since it was indexed.
                Err(EngineError::OffsetOutOfRange { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        // Messages published since the index last caught up.
        for (q, mark) in state.queues.iter().zip(marks) {
            let (first, hw) = {
                let inner = q.lock();
                (inner.first_offset, inner.high_watermark)
            };
            let mut at = mark.max(first).max(hw.saturating_sub(MAX_UNINDEXED_SCAN));
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
        found.sort_by_key(|f| (f.queue, f.message.offset));
        found.dedup_by_key(|f| (f.queue, f.message.offset));
        let more = found.len() > limit;
        found.truncate(limit);
        let bytes = found
            .iter()
            .map(|f| f.message.message.metered_size() as u64)
            .sum();
        self.core
            .meter
            .add(tenant, Counter::DeliveredMessages, found.len() as u64);
        self.core.meter.add(tenant, Counter::DeliveredBytes, bytes);
        Ok(FoundMessages {
            messages: found,
            more,
        })
    }
}
