//! Retention over object ranges, merges of small ranges, and garbage
//! collection of unreferenced objects.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use strata_common::TopicId;
use strata_common::usage::Counter;
use strata_compactor::expiry::{self, RangeAge};
use strata_compactor::gc::{self, Listed};
use strata_compactor::merge::{self, MergePolicy, RangeSize};
use strata_metadata::RangeRecord;
use strata_objects::format::ObjectBuilder;
use strata_tiering::batch::decode_header;

use super::upload::ranges_from_blocks;
use super::{MERGED_PREFIX, UPLOAD_PREFIX, unique_suffix};
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::queue::QueueState;

/// Most merges one maintenance pass performs, to bound its work.
const MERGES_PER_PASS: usize = 16;

pub(crate) fn spawn_loop(engine: &Arc<Engine>) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(engine);
    let interval = engine.config.retention_interval;
    let mut shutdown = engine.shutdown.subscribe();
    let clock = engine.clock.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = clock.sleep(interval) => {}
                _ = shutdown.wait_for(|down| *down) => break,
            }
            let Some(engine) = weak.upgrade() else { break };
            if let Err(e) = engine.maintain().await {
                engine.tiering.note_error("maintenance", &e);
            }
        }
    })
}

/// What one maintenance pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintenanceSummary {
    pub expired_ranges: u64,
    pub merges: u64,
    pub deleted_objects: u64,
}

impl Engine {
    /// One pass of retention, merging and garbage collection.
    pub async fn maintain(&self) -> Result<MaintenanceSummary> {
        Ok(MaintenanceSummary {
            expired_ranges: self.enforce_retention().await?,
            merges: self.merge_small_ranges().await?,
            deleted_objects: self.collect_garbage().await?,
        })
    }

    /// Deletes each queue's oldest ranges that retention no longer keeps;
    /// returns how many went. Their objects go at the next GC.
    pub async fn enforce_retention(&self) -> Result<u64> {
        let _exclusive = self.tiering.lock.lock().await;
        let now = self.clock.now_ms();
        let topics: Vec<_> = self.topics_read().all().cloned().collect();
        let mut expired = 0u64;
        for topic in &topics {
            let policy = topic.record.retention;
            let max_bytes = topic.record.retention_bytes;
            for q in &topic.queues {
                let old: Vec<RangeRecord> = {
                    let inner = q.lock();
                    let ages: Vec<RangeAge> = inner
                        .cold
                        .iter()
                        .map(|r| RangeAge {
                            max_timestamp_ms: r.max_timestamp_ms,
                            stored_bytes: r.stored_bytes,
                        })
                        .collect();
                    let n = {
                        // Only WAL data not yet uploaded is "newer"; the rest is in `ages`.
                        let cold_end = inner.cold_end().unwrap_or(0);
                        let newer: u64 = inner
                            .index
                            .iter()
                            .filter(|e| e.base_offset >= cold_end)
                            .map(|e| e.bytes)
                            .sum();
                        expiry::expired(&ages, policy, max_bytes, newer, now)
                    };
                    inner.cold.iter().take(n).map(|r| (**r).clone()).collect()
                };
                let Some(last) = old.last() else { continue };
                let floor = last.end_offset;
                if self.catalog.expire_ranges(&old, &[(q.key, floor)]).await? {
                    q.lock().expire_cold(old.len());
                    expired += old.len() as u64;
                }
            }
        }
        self.tiering
            .counters
            .expired_ranges
            .fetch_add(expired, Ordering::Relaxed);
        Ok(expired)
    }

    /// Rewrites runs of small adjacent ranges into per-queue objects.
    pub async fn merge_small_ranges(&self) -> Result<u64> {
        let _exclusive = self.tiering.lock.lock().await;
        let policy = MergePolicy {
            small_range_bytes: self.config.merge_small_range_bytes,
            min_ranges: self.config.merge_min_ranges,
            target_bytes: self.config.merge_target_bytes,
        };
        let topics: Vec<_> = self.topics_read().all().cloned().collect();
        let mut merges = 0u64;
        for topic in &topics {
            for q in &topic.queues {
                if merges as usize >= MERGES_PER_PASS {
                    return Ok(merges);
                }
                let old: Vec<RangeRecord> = {
                    let inner = q.lock();
                    let sizes: Vec<RangeSize> = inner
                        .cold
                        .iter()
                        .map(|r| RangeSize {
                            base_offset: r.base_offset,
                            end_offset: r.end_offset,
                            stored_bytes: r.stored_bytes,
                        })
                        .collect();
                    // The newest range may still grow by uploads: leave it.
                    match merge::plan(&sizes, policy, 1) {
                        Some((s, e)) => inner.cold.range(s..e).map(|r| (**r).clone()).collect(),
                        None => continue,
                    }
                };
                if self.merge(q, &old).await? {
                    merges += 1;
                }
            }
        }
        Ok(merges)
    }

    async fn merge(&self, q: &Arc<QueueState>, old: &[RangeRecord]) -> Result<bool> {
        let (Some(first), Some(last)) = (old.first(), old.last()) else {
            return Ok(false);
        };
        let mut builder = ObjectBuilder::new(self.config.target_block_bytes);
        for range in old {
            for block in &range.blocks {
                for payload in self.fetch_block(q, &range.object, block).await? {
                    let header = decode_header(&payload).map_err(|e| {
                        EngineError::Corrupt(format!("object {}: {e}", range.object))
                    })?;
                    builder
                        .add_batch(
                            q.key,
                            header.base_offset,
                            header.count,
                            header.timestamp_ms,
                            &payload,
                        )
                        .map_err(|e| {
                            EngineError::Internal(format!("building merged object: {e}"))
                        })?;
                }
            }
        }
        let (object, blocks) = builder
            .finish()
            .map_err(|e| EngineError::Internal(format!("building merged object: {e}")))?;
        let name = format!(
            "{MERGED_PREFIX}{:020}/{:010}/{:020}-{:020}-{}.seg",
            q.key.topic,
            q.key.queue,
            first.base_offset,
            last.end_offset,
            unique_suffix(self)
        );
        let size = object.len() as u64;
        self.tiering.objects.put(&name, object).await?;
        self.meter.add(&q.tenant, Counter::ObjectPuts, 1);
        let Some(merged) = ranges_from_blocks(&name, &blocks).pop() else {
            return Ok(false);
        };
        let fence = self.catalog.owner_check(q.key, &q.owner);
        if !self.catalog.replace_ranges(old, &merged, fence).await? {
            // Something changed underneath; the new object is garbage now.
            return Ok(false);
        }
        let applied = q.lock().replace_cold(old, merged);
        if applied {
            let c = &self.tiering.counters;
            c.merges.fetch_add(1, Ordering::Relaxed);
            c.merged_bytes.fetch_add(size, Ordering::Relaxed);
        }
        Ok(applied)
    }

    /// Deletes range records of deleted topics, then every object that no
    /// committed range references (older than the grace period).
    pub async fn collect_garbage(&self) -> Result<u64> {
        let _exclusive = self.tiering.lock.lock().await;
        let live: HashSet<TopicId> = self.topics_read().all().map(|t| t.record.id).collect();
        let all = self.catalog.all_ranges().await?;
        let (live_ranges, dead): (Vec<RangeRecord>, Vec<RangeRecord>) = all
            .into_values()
            .flatten()
            .partition(|r| live.contains(&r.queue.topic));
        if !dead.is_empty() && !self.catalog.expire_ranges(&dead, &[]).await? {
            return Ok(0);
        }
        let referenced: HashSet<String> = live_ranges.into_iter().map(|r| r.object).collect();
        let mut listed = Vec::new();
        for prefix in [UPLOAD_PREFIX, MERGED_PREFIX] {
            for o in self.tiering.objects.list(prefix).await? {
                listed.push(Listed {
                    key: o.key,
                    last_modified_ms: o.last_modified_ms,
                });
            }
        }
        let grace = i64::try_from(self.config.gc_grace.as_millis()).unwrap_or(i64::MAX);
        let garbage = gc::garbage(&listed, &referenced, self.clock.now_ms(), grace);
        for key in &garbage {
            self.tiering.objects.delete(key).await?;
            tracing::debug!(object = %key, "deleted unreferenced object");
        }
        let n = garbage.len() as u64;
        self.tiering
            .counters
            .gc_deleted
            .fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }
}
