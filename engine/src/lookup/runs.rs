//! The message index's runs in object storage: writing one, searching them,
//! and keeping them in shape.
//!
//! Each node writes runs of the topics it indexes under
//! `index/<node>/<run id>.idx` and keeps its own runs in shape:
//! - a run whose every queue retention moved past (or whose topics were
//!   deleted) is dropped;
//! - runs of about the same size are merged [`MERGE_FANIN`] at a time
//!   (size tiers a factor of [`MERGE_FANIN`] apart), dropping expired and
//!   deleted topics' entries, so a lookup reads few runs; merges stop at
//!   [`MAX_MERGED_ENTRIES`] ([`pick_merge`]);
//! - objects no record names (a crash between PUT and commit, or a run
//!   merged or dropped) are deleted after the GC grace period, so a lookup
//!   that listed the runs just before still reads them.
//!
//! The runs of a node that left the cluster or was adopted would stay
//! forever, as nobody else touched them: a grace after it went, a node
//! takes them over (moves
//! their records under its own id, [`Catalog::take_index_runs`]) and keeps
//! them in shape with its own, sweeping that node's objects too. Whether a
//! queue's entries expired is judged by this node's state of the queue
//! where it serves it, else by the metadata store (the queue's oldest
//! stored range, or its floor).
//!
//! [`Catalog::take_index_runs`]: strata_metadata::Catalog::take_index_runs
//!
//! Readers keep each run's summary (page fences, queues) in memory and read
//! one page per run that holds the topic.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use strata_common::QueueKey;
use strata_metadata::{IndexRun, IndexRunRecord, RangeRecord};
use strata_objects::ObjectError;
use strata_objects::index_run::{
    QueueEnd, RUN_FOOTER_LEN, RunEntry, RunSummary, decode_footer, decode_page, decode_run,
    decode_summary, encode_run,
};
use strata_tiering::log::first_stored_offset;

use super::{Lookup, lock};
use crate::error::{EngineError, Result};

/// Where runs live in the object store (`index/<node>/<run id>.idx`).
pub const INDEX_RUN_PREFIX: &str = "index/";

/// How the names of index run objects end.
const RUN_SUFFIX: &str = ".idx";

/// Runs merged at once, and the size ratio between tiers.
pub const MERGE_FANIN: usize = 8;
/// Merges stop at this many entries: a 112 MiB run. A merge holds the
/// decoded entries (32 bytes each) and the encoded run in memory, so this
/// bounds it at about 240 MiB while it runs.
pub const MAX_MERGED_ENTRIES: u64 = 4 << 20;
/// How often a node drops, merges and sweeps its runs when it writes none
/// (and once at start).
const MAINTAIN_INTERVAL: Duration = Duration::from_secs(600);
/// How long the first offsets of queues served elsewhere, read from the
/// metadata store, are used before they are read again.
const ELSEWHERE_TTL_MS: i64 = 60_000;
/// Runs read at once by a lookup.
const SEARCH_PARALLEL: usize = 16;

/// What one pass over a node's runs did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexMaintenance {
    /// Runs dropped because nothing they cover is stored any more.
    pub dropped: u64,
    /// Runs merged into others.
    pub merged: u64,
    /// Objects deleted that no run record names.
    pub swept: u64,
    /// Runs of nodes that left or were adopted taken over by this node.
    pub taken: u64,
}

/// Summaries of runs read so far, by object key.
#[derive(Debug, Default)]
pub(crate) struct RunCache {
    summaries: std::sync::Mutex<HashMap<String, Arc<RunSummary>>>,
    /// When the last maintenance ran (clock ms).
    maintained_ms: std::sync::Mutex<Option<i64>>,
    /// First offsets of queues served elsewhere, and when they were read.
    elsewhere: std::sync::Mutex<Option<(i64, FirstOffsets)>>,
}

impl RunCache {
    /// Due at the first pass after a start, then every [`MAINTAIN_INTERVAL`].
    pub(crate) fn maintenance_due(&self, now_ms: i64) -> bool {
        lock(&self.maintained_ms)
            .is_none_or(|since| now_ms - since >= MAINTAIN_INTERVAL.as_millis() as i64)
    }

    fn forget_except(&self, live: &HashSet<&str>) {
        lock(&self.summaries).retain(|object, _| live.contains(object.as_str()));
    }
}

/// The size tier of a run with `entries` entries.
fn tier(entries: u64) -> u32 {
    let mut t = 0;
    let mut bound = 8192;
    while entries >= bound && t < 16 {
        t += 1;
        bound *= MERGE_FANIN as u64;
    }
    t
}

/// Which runs of one size tier (their entry counts, oldest first) to merge:
/// the oldest [`MERGE_FANIN`] that are not settled, or fewer (at least two)
/// where the next would take the merge past [`MAX_MERGED_ENTRIES`]. A run
/// of half that or more is settled: it is merged no more. Cut short by the
/// cap, a merge's output holds over half of it, so the runs a node keeps
/// hold at least [`MAX_MERGED_ENTRIES`]` / 2` entries each once they stop
/// merging, whatever size its flushes write.
fn pick_merge(entries: &[u64]) -> Option<Vec<usize>> {
    let mut picked = Vec::new();
    let mut total = 0;
    for (i, &n) in entries.iter().enumerate() {
        if n >= MAX_MERGED_ENTRIES / 2 {
            continue;
        }
        if total + n > MAX_MERGED_ENTRIES {
            return (picked.len() >= 2).then_some(picked);
        }
        total += n;
        picked.push(i);
        if picked.len() == MERGE_FANIN {
            return Some(picked);
        }
    }
    None
}

impl Lookup {
    fn run_object(&self, id: u64) -> String {
        format!(
            "{INDEX_RUN_PREFIX}{}/{id:016x}{RUN_SUFFIX}",
            self.core.config.node_id
        )
    }

    /// Writes the pending set as a run and commits it with the marks it
    /// moves; returns how many entries it wrote. On failure, or if the
    /// flush is dropped half-way (a pass abandoned at shutdown), the
    /// entries go back to pending, so a close still writes them.
    pub(super) async fn flush(&self) -> Result<usize> {
        // The entries move from the pending set to `flushing` under one
        // lock, so a lookup finds them on one side or the other throughout.
        let mut taken = {
            let mut pending = lock(&self.pending);
            if pending.marks.is_empty() {
                return Ok(0);
            }
            pending.since_ms = None;
            let unsorted = Arc::new(std::mem::take(&mut pending.entries));
            *lock(&self.flushing) = Some(unsorted.clone());
            Taken {
                lookup: self,
                unsorted,
                marks: std::mem::take(&mut pending.marks),
                written: false,
            }
        };
        let sorting = taken.unsorted.clone();
        let sorted = tokio::task::spawn_blocking(move || {
            let mut entries = sorting.to_vec();
            entries.sort_unstable();
            entries.dedup();
            entries
        })
        .await
        .map_err(|e| EngineError::Internal(format!("sorting index entries: {e}")))?;
        let entries = Arc::new(sorted);
        self.write_run(&entries, &taken.marks).await?;
        taken.written = true;
        Ok(entries.len())
    }

    async fn write_run(
        &self,
        entries: &Arc<Vec<RunEntry>>,
        marks: &HashMap<QueueKey, u64>,
    ) -> Result<()> {
        let queues: Vec<QueueEnd> = marks
            .iter()
            .map(|(q, &end)| QueueEnd {
                topic: q.topic,
                queue: q.queue,
                end,
            })
            .collect();
        let sorted = entries.clone();
        let bytes = tokio::task::spawn_blocking(move || encode_run(&sorted, queues))
            .await
            .map_err(|e| EngineError::Internal(format!("encoding an index run: {e}")))?;
        let id = self.core.clock.random_u64();
        let record = IndexRunRecord {
            object: self.run_object(id),
            bytes: bytes.len() as u64,
            entries: entries.len() as u64,
            created_ms: self.core.clock.now_ms(),
        };
        // Behind a shut fence this node may have been adopted: its runs
        // are someone else's to keep now (the entries stay pending).
        self.core.check_write_fence()?;
        self.core.compactor.verify_store().await?;
        let began = self.core.clock.monotonic();
        self.core.tiers.objects().put(&record.object, bytes).await?;
        self.fresh_enough(&record.object, began)?;
        self.core
            .compactor
            .confirm_store_holds(&record.object)
            .await?;
        let marks: Vec<(QueueKey, u64)> = marks.iter().map(|(&q, &n)| (q, n)).collect();
        self.core
            .catalog
            .commit_index_run(&self.core.config.node_id, Some((id, &record)), &marks, &[])
            .await?;
        self.stats.runs_written.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(object = %record.object, entries = record.entries, "wrote a message index run");
        Ok(())
    }

    fn grace_ms(&self) -> i64 {
        i64::try_from(self.core.config.gc_grace.as_millis()).unwrap_or(i64::MAX)
    }

    /// A run's summary, read once and then kept.
    async fn summary(&self, record: &IndexRunRecord) -> Result<Arc<RunSummary>> {
        if let Some(s) = lock(&self.runs.summaries).get(&record.object) {
            return Ok(s.clone());
        }
        let objects = self.core.tiers.objects();
        let len = record.bytes;
        let tail = objects
            .get_range(
                &record.object,
                len.saturating_sub(RUN_FOOTER_LEN as u64)..len,
            )
            .await?;
        let footer = decode_footer(&tail, len)?;
        let bytes = objects
            .get_range(&record.object, footer.summary_range())
            .await?;
        let summary = Arc::new(decode_summary(footer, &bytes)?);
        lock(&self.runs.summaries).insert(record.object.clone(), summary.clone());
        Ok(summary)
    }

    /// (queue, offset) of every entry of `topic` filed under `hash` in any
    /// node's runs.
    pub(super) async fn search_runs(&self, topic: u64, hash: u64) -> Result<Vec<(u32, u64)>> {
        let runs = self.core.catalog.index_runs().await?;
        self.runs
            .forget_except(&runs.iter().map(|r| r.record.object.as_str()).collect());
        let found: Vec<Vec<(u32, u64)>> = futures::stream::iter(runs)
            .map(|run| async move {
                match self.search_run(&run.record, topic, hash).await {
                    // Swept after a merge since the listing: its entries
                    // are in the run that replaced it.
                    Err(EngineError::ObjectMissing(object)) => {
                        tracing::debug!(%object, "index run gone while searched");
                        Ok(Vec::new())
                    }
                    other => other,
                }
            })
            .buffer_unordered(SEARCH_PARALLEL)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn search_run(
        &self,
        record: &IndexRunRecord,
        topic: u64,
        hash: u64,
    ) -> Result<Vec<(u32, u64)>> {
        let summary = self.summary(record).await?;
        if !summary.has_topic(topic) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for page in summary.pages_for(hash) {
            let range = summary.footer.page_range(page);
            let bytes = self
                .core
                .tiers
                .objects()
                .get_range(&record.object, range)
                .await?;
            out.extend(
                decode_page(&bytes)?
                    .into_iter()
                    .filter(|e| e.hash == hash && e.topic == topic)
                    .map(|e| (e.queue, e.offset)),
            );
        }
        Ok(out)
    }

    /// Drops this node's runs that cover nothing stored any more, merges a
    /// tier that has [`MERGE_FANIN`] runs, and deletes objects no record
    /// names (older than the GC grace period).
    pub async fn maintain(&self) -> Result<IndexMaintenance> {
        *lock(&self.runs.maintained_ms) = Some(self.core.clock.now_ms());
        let node = self.core.config.node_id.clone();
        let live: HashSet<u64> = self
            .core
            .catalog
            .all_topics()
            .await?
            .into_iter()
            .map(|t| t.id)
            .collect();
        let mut done = IndexMaintenance::default();
        // Nodes that left or were adopted more than a grace ago (none
        // outside cluster mode): a run commit they had on its way then has
        // most likely landed (`write_run` commits only fresh objects; one
        // held up longer names a swept object and is dropped below). And
        // nodes no longer registered: their records were pruned, a
        // retention of at least that grace after they left.
        let grace_ms = self.grace_ms();
        let now_ms = self.core.clock.now_ms();
        let registered = self.core.catalog.cluster_nodes().await?;
        let kept: HashSet<&str> = registered
            .iter()
            .filter(|n| {
                n.node == node
                    || n.gone_at_ms()
                        .is_none_or(|at| at > now_ms.saturating_sub(grace_ms))
            })
            .map(|n| n.node.as_str())
            .collect();
        let mut runs = self.core.catalog.index_runs().await?;
        // Whose index objects the sweep below also deletes when unnamed.
        let mut gone_nodes: HashSet<String> = registered
            .iter()
            .filter(|n| !kept.contains(n.node.as_str()))
            .map(|n| n.node.clone())
            .collect();
        let orphaned: Vec<(IndexRun, u64)> = runs
            .iter()
            .filter(|r| r.node != node && !kept.contains(r.node.as_str()))
            .map(|r| (r.clone(), self.core.clock.random_u64()))
            .collect();
        gone_nodes.extend(orphaned.iter().map(|(r, _)| r.node.clone()));
        if !orphaned.is_empty() {
            done.taken = self.core.catalog.take_index_runs(&node, &orphaned).await? as u64;
            tracing::info!(
                runs = done.taken,
                "took over the message index runs of nodes that left, were adopted or were pruned"
            );
            runs = self.core.catalog.index_runs().await?;
        }
        let mut own: Vec<IndexRun> = runs.into_iter().filter(|r| r.node == node).collect();

        // A record whose object is gone (a late commit of a node whose
        // objects were swept) names nothing a lookup could read: drop it
        // rather than fail every pass.
        let mut missing = Vec::new();
        let mut summaries = Vec::with_capacity(own.len());
        for run in &own {
            match self.summary(&run.record).await {
                Ok(summary) => summaries.push(summary),
                Err(EngineError::ObjectMissing(object)) => {
                    tracing::warn!(
                        object,
                        "a message index run's object is missing; dropping its record"
                    );
                    missing.push(run.id);
                }
                Err(e) => return Err(e),
            }
        }
        done.dropped += self.drop_runs(&mut own, &missing).await?;
        let elsewhere = self
            .first_offsets_elsewhere(&live, summaries.iter().flat_map(|s| s.queues.iter()))
            .await?;
        let mut dead = Vec::new();
        for (run, summary) in own.iter().zip(&summaries) {
            if summary
                .queues
                .iter()
                .all(|q| self.gone(&live, &elsewhere, q))
            {
                dead.push(run.id);
            }
        }
        done.dropped += self.drop_runs(&mut own, &dead).await?;

        own.sort_by_key(|r| r.record.created_ms);
        let mut tiers: HashMap<u32, Vec<&IndexRun>> = HashMap::new();
        for run in &own {
            tiers.entry(tier(run.record.entries)).or_default().push(run);
        }
        let mergeable = tiers.into_values().find_map(|runs| {
            let entries: Vec<u64> = runs.iter().map(|r| r.record.entries).collect();
            let picked = pick_merge(&entries)?;
            Some(picked.into_iter().map(|i| runs[i]).collect::<Vec<_>>())
        });
        if let Some(inputs) = mergeable
            && self.merge(&live, &elsewhere, &inputs).await?
        {
            done.merged = inputs.len() as u64;
        }
        done.swept = self.sweep(&gone_nodes).await?;
        let c = &self.stats;
        c.runs_dropped.fetch_add(done.dropped, Ordering::Relaxed);
        c.runs_merged.fetch_add(done.merged, Ordering::Relaxed);
        c.objects_swept.fetch_add(done.swept, Ordering::Relaxed);
        Ok(done)
    }

    /// Forgets this node's runs `ids` (their objects are swept later) and
    /// takes them out of `own`; returns how many.
    async fn drop_runs(&self, own: &mut Vec<IndexRun>, ids: &[u64]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.core
            .catalog
            .commit_index_run(&self.core.config.node_id, None, &[], ids)
            .await?;
        own.retain(|r| !ids.contains(&r.id));
        Ok(ids.len() as u64)
    }

    /// Whether nothing of `q` that a run covers can be stored: its topic was
    /// deleted, or retention moved past it.
    fn gone(&self, live: &HashSet<u64>, elsewhere: &FirstOffsets, q: &QueueEnd) -> bool {
        if !live.contains(&q.topic) {
            return true;
        }
        let queue = QueueKey::new(q.topic, q.queue);
        self.first_offset(elsewhere, queue)
            .is_some_and(|first| q.end <= first)
    }

    /// Below which offset `queue`'s messages are gone: by this node's state
    /// where it serves the queue, else as the metadata store says.
    fn first_offset(&self, elsewhere: &FirstOffsets, queue: QueueKey) -> Option<u64> {
        let topics = self.core.topics_read();
        let here = topics
            .by_id(queue.topic)
            .and_then(|t| t.queues.get(queue.queue as usize))
            .map(|state| state.lock().first_offset);
        here.or_else(|| elsewhere.get(&queue).copied())
    }

    /// The first offsets of the queues of live topics among `queues` that
    /// this node does not serve, from the metadata store (read at most
    /// every [`ELSEWHERE_TTL_MS`]); empty when it serves them all.
    async fn first_offsets_elsewhere<'a>(
        &self,
        live: &HashSet<u64>,
        mut queues: impl Iterator<Item = &'a QueueEnd>,
    ) -> Result<FirstOffsets> {
        let known = |q: &QueueEnd| {
            !live.contains(&q.topic)
                || self
                    .core
                    .topics_read()
                    .by_id(q.topic)
                    .is_some_and(|t| (q.queue as usize) < t.queues.len())
        };
        if queues.all(known) {
            return Ok(Arc::default());
        }
        let now = self.core.clock.now_ms();
        if let Some((read_ms, firsts)) = &*lock(&self.runs.elsewhere)
            && now - read_ms < ELSEWHERE_TTL_MS
        {
            return Ok(firsts.clone());
        }
        let floors = self.core.catalog.queue_floors().await?;
        let ranges = self.core.catalog.all_ranges().await?;
        let firsts = Arc::new(stored_first_offsets(floors, &ranges));
        *lock(&self.runs.elsewhere) = Some((now, firsts.clone()));
        Ok(firsts)
    }

    /// Merges `inputs` into one run; `false` when they changed meanwhile
    /// (taken or replaced) and nothing was committed.
    async fn merge(
        &self,
        live: &HashSet<u64>,
        elsewhere: &FirstOffsets,
        inputs: &[&IndexRun],
    ) -> Result<bool> {
        self.core.check_write_fence()?;
        let objects = self.core.tiers.objects();
        let mut entries = Vec::new();
        let mut ends: HashMap<QueueKey, u64> = HashMap::new();
        for run in inputs {
            let bytes = objects.get(&run.record.object).await?;
            let (run_entries, queues) = tokio::task::spawn_blocking(move || decode_run(&bytes))
                .await
                .map_err(|e| EngineError::Internal(format!("decoding an index run: {e}")))??;
            entries.extend(run_entries);
            for q in queues {
                let end = ends.entry(QueueKey::new(q.topic, q.queue)).or_default();
                *end = (*end).max(q.end);
            }
        }
        ends.retain(|q, _| live.contains(&q.topic));
        let firsts: HashMap<QueueKey, u64> = ends
            .keys()
            .filter_map(|&q| Some((q, self.first_offset(elsewhere, q)?)))
            .collect();
        entries.retain(|e| {
            let q = QueueKey::new(e.topic, e.queue);
            live.contains(&e.topic) && firsts.get(&q).is_none_or(|&first| e.offset >= first)
        });
        let queues: Vec<QueueEnd> = ends
            .into_iter()
            .map(|(q, end)| QueueEnd {
                topic: q.topic,
                queue: q.queue,
                end,
            })
            .collect();
        let (entries, bytes) = tokio::task::spawn_blocking(move || {
            entries.sort_unstable();
            entries.dedup();
            let bytes = encode_run(&entries, queues);
            (entries.len(), bytes)
        })
        .await
        .map_err(|e| EngineError::Internal(format!("merging index runs: {e}")))?;
        let id = self.core.clock.random_u64();
        let record = IndexRunRecord {
            object: self.run_object(id),
            bytes: bytes.len() as u64,
            entries: entries as u64,
            created_ms: inputs
                .iter()
                .map(|r| r.record.created_ms)
                .max()
                .unwrap_or_default(),
        };
        self.core.compactor.verify_store().await?;
        let began = self.core.clock.monotonic();
        objects.put(&record.object, bytes).await?;
        self.fresh_enough(&record.object, began)?;
        self.core
            .compactor
            .confirm_store_holds(&record.object)
            .await?;
        self.core.check_write_fence()?;
        let replaced: Vec<u64> = inputs.iter().map(|r| r.id).collect();
        let committed = self
            .core
            .catalog
            .commit_index_run(
                &self.core.config.node_id,
                Some((id, &record)),
                &[],
                &replaced,
            )
            .await?;
        if committed {
            tracing::debug!(object = %record.object, runs = inputs.len(), entries, "merged message index runs");
        } else {
            tracing::info!(object = %record.object, "the runs of a merge changed meanwhile; not committed (the object is swept)");
        }
        Ok(committed)
    }

    /// Sweeps delete unnamed objects older than the grace: a run is
    /// committed only while its object, written from `began`, is young
    /// enough (`commit_in_time`, the uploads' rule); else it is left for
    /// the sweep.
    fn fresh_enough(&self, object: &str, began: Duration) -> Result<()> {
        let age = self.core.clock.monotonic().saturating_sub(began);
        if strata_compactor::gc::commit_in_time(age, self.core.config.gc_grace) {
            return Ok(());
        }
        Err(EngineError::Internal(format!(
            "index run {object} was written {:.1} s ago, over half the GC grace: not committed",
            age.as_secs_f64()
        )))
    }

    /// Deletes the run objects of this node and of the `gone_nodes` that
    /// no record names, once older than the GC grace period.
    async fn sweep(&self, gone_nodes: &HashSet<String>) -> Result<u64> {
        // Deleting what this namespace does not name: only in its own store.
        self.core.compactor.recheck_store().await?;
        let objects = self.core.tiers.objects();
        // Records are read in pages: a run taken over (moved to another
        // node's key) between two pages is seen by neither. Each record
        // moves once, so one of two reads, before and after listing, names it.
        let mut named: HashSet<String> = self
            .core
            .catalog
            .index_runs()
            .await?
            .into_iter()
            .map(|r| r.record.object)
            .collect();
        let mut listed = Vec::new();
        for writer in std::iter::once(&self.core.config.node_id).chain(gone_nodes) {
            listed.extend(
                objects
                    .list(&format!("{INDEX_RUN_PREFIX}{writer}/"))
                    .await?,
            );
        }
        named.extend(
            self.core
                .catalog
                .index_runs()
                .await?
                .into_iter()
                .map(|r| r.record.object),
        );
        let cutoff = self.core.clock.now_ms().saturating_sub(self.grace_ms());
        let mut swept = 0;
        for o in listed {
            // A namespace nested under `index/<writer>` is not ours to sweep.
            let ours = strata_compactor::gc::ours(&o.key, RUN_SUFFIX);
            if !ours || named.contains(&o.key) || o.last_modified_ms > cutoff {
                continue;
            }
            match objects.delete(&o.key).await {
                Ok(()) | Err(ObjectError::NotFound { .. }) => swept += 1,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(swept)
    }
}

/// Entries and marks a flush took from the pending set. Unless the run
/// holding them was written, dropping this puts them back (before
/// `flushing` is cleared, so a lookup finds them on one side or the other).
struct Taken<'a> {
    lookup: &'a Lookup,
    unsorted: Arc<Vec<RunEntry>>,
    marks: HashMap<QueueKey, u64>,
    written: bool,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if !self.written {
            let mut pending = lock(&self.lookup.pending);
            pending.entries.extend(self.unsorted.iter().copied());
            for (queue, next) in self.marks.drain() {
                let at = pending.marks.entry(queue).or_insert(next);
                *at = (*at).max(next);
            }
            pending
                .since_ms
                .get_or_insert(self.lookup.core.clock.now_ms());
        }
        *lock(&self.lookup.flushing) = None;
    }
}

/// First offsets of queues, by queue.
type FirstOffsets = Arc<HashMap<QueueKey, u64>>;

/// Below which offset each queue's messages are gone, as a node loading
/// the queue would start it (`first_stored_offset`: its oldest range, else
/// its floor). Queues with neither are left out: nothing says any expired.
fn stored_first_offsets(
    floors: HashMap<QueueKey, u64>,
    ranges: &BTreeMap<QueueKey, Vec<RangeRecord>>,
) -> HashMap<QueueKey, u64> {
    let mut firsts = floors;
    for (queue, list) in ranges.iter().filter(|(_, list)| !list.is_empty()) {
        let floor = firsts.get(queue).copied().unwrap_or(0);
        firsts.insert(*queue, first_stored_offset(list, floor));
    }
    firsts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_starts_at_its_oldest_range_else_at_its_floor() {
        let range = |queue: QueueKey, base_offset: u64| RangeRecord {
            queue,
            base_offset,
            end_offset: base_offset + 10,
            object: format!("seg/n/{base_offset}.seg"),
            blocks: Vec::new(),
            min_timestamp_ms: 0,
            max_timestamp_ms: 0,
            stored_bytes: 10,
        };
        let (a, b, c) = (
            QueueKey::new(1, 0),
            QueueKey::new(1, 1),
            QueueKey::new(2, 0),
        );
        let floors: HashMap<QueueKey, u64> = [(a, 5), (b, 40)].into();
        let ranges: BTreeMap<QueueKey, Vec<RangeRecord>> = [
            (a, vec![range(a, 20), range(a, 30)]),
            (c, vec![range(c, 7)]),
        ]
        .into();
        let firsts = stored_first_offsets(floors, &ranges);
        assert_eq!(firsts, [(a, 20), (b, 40), (c, 7)].into());
    }

    #[test]
    fn merges_take_the_fanin_or_what_fits_under_the_cap() {
        const M: u64 = 1 << 20;
        assert_eq!(pick_merge(&[10_000; 10]), Some((0..8).collect()));
        assert_eq!(pick_merge(&[10_000; 7]), None, "waits for a full fan-in");
        // Flushes of a million entries: four make a capped run.
        assert_eq!(pick_merge(&[M; 5]), Some(vec![0, 1, 2, 3]));
        assert_eq!(pick_merge(&[M; 3]), None, "a fourth may still fit");
        // Flushes of 600,000 entries (a minute at 10,000 a second).
        assert_eq!(pick_merge(&[600_000; 7]), Some((0..6).collect()));
        // A settled run (half the cap or more) is passed over.
        let mut tier = vec![3 * M + M / 2];
        tier.extend([M; 5]);
        assert_eq!(pick_merge(&tier), Some(vec![1, 2, 3, 4]));
        assert_eq!(pick_merge(&[2 * M, 2 * M, 3 * M]), None);
    }

    #[test]
    fn tiers_are_a_factor_of_the_fanin_apart() {
        assert_eq!(tier(0), 0);
        assert_eq!(tier(8191), 0);
        assert_eq!(tier(8192), 1);
        assert_eq!(tier(8192 * 8 - 1), 1);
        assert_eq!(tier(8192 * 8), 2);
        assert_eq!(tier(u64::MAX), 16);
    }
}
