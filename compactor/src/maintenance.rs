//! Maintenance: retention over object ranges, merges of small ranges into
//! per-queue objects, and garbage collection of unreferenced objects.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use strata_metadata::RangeRecord;
use strata_objects::format::ObjectBuilder;
use strata_tiering::batch::decode_header;

use crate::compactor::Compactor;
use crate::error::{CompactorError, Result};
use crate::expiry::{self, RangeAge};
use crate::gc::{self, Listed};
use crate::host::{LiveQueue, Refresh, TieredLog};
use crate::merge::{self, MergePolicy, RangeSize};
use crate::upload::{UPLOAD_PREFIX, ranges_from_blocks};

/// Object prefix of merged objects (one queue each).
pub const MERGED_PREFIX: &str = "merged/";

/// Most merges one maintenance pass performs, to bound its work.
const MERGES_PER_PASS: usize = 16;

/// What one maintenance pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintenanceSummary {
    pub expired_ranges: u64,
    pub merges: u64,
    pub deleted_objects: u64,
}

impl Compactor {
    /// One pass of retention, merging and garbage collection.
    pub async fn maintain(&self) -> Result<MaintenanceSummary> {
        self.log()?.refresh(Refresh::Everything).await?;
        Ok(MaintenanceSummary {
            expired_ranges: self.enforce_retention().await?,
            merges: self.merge_small_ranges().await?,
            deleted_objects: self.collect_garbage().await?,
        })
    }

    /// Deletes each queue's oldest ranges that retention no longer keeps;
    /// returns how many went. Their objects go at the next GC.
    pub async fn enforce_retention(&self) -> Result<u64> {
        let log = self.log()?;
        let _exclusive = self.lock.lock().await;
        let now = self.clock.now_ms();
        let mut expired = 0u64;
        for q in log.queues() {
            let cold = log.cold_ranges(q.key);
            let ages: Vec<RangeAge> = cold
                .iter()
                .map(|r| RangeAge {
                    max_timestamp_ms: r.max_timestamp_ms,
                    stored_bytes: r.stored_bytes,
                })
                .collect();
            // Only WAL data not yet uploaded is "newer"; the rest is in `ages`.
            let newer = log.wal_only_bytes(q.key);
            let n = expiry::expired(&ages, q.retention, q.retention_bytes, newer, now);
            let old: Vec<RangeRecord> = cold.iter().take(n).map(|r| (**r).clone()).collect();
            let Some(last) = old.last() else { continue };
            let floor = last.end_offset;
            if self.catalog.expire_ranges(&old, &[(q.key, floor)]).await? {
                log.ranges_expired(q.key, old.len());
                expired += old.len() as u64;
            }
        }
        self.counters
            .expired_ranges
            .fetch_add(expired, Ordering::Relaxed);
        Ok(expired)
    }

    /// Rewrites runs of small adjacent ranges into per-queue objects.
    pub async fn merge_small_ranges(&self) -> Result<u64> {
        let log = self.log()?;
        let _exclusive = self.lock.lock().await;
        let policy = MergePolicy {
            small_range_bytes: self.config.merge_small_range_bytes,
            min_ranges: self.config.merge_min_ranges,
            target_bytes: self.config.merge_target_bytes,
        };
        let mut merges = 0u64;
        for q in log.queues() {
            if merges as usize >= MERGES_PER_PASS {
                break;
            }
            let cold = log.cold_ranges(q.key);
            let sizes: Vec<RangeSize> = cold
                .iter()
                .map(|r| RangeSize {
                    base_offset: r.base_offset,
                    end_offset: r.end_offset,
                    stored_bytes: r.stored_bytes,
                })
                .collect();
            // The newest range may still grow by uploads: leave it.
            let Some((s, e)) = merge::plan(&sizes, policy, 1) else {
                continue;
            };
            let old: Vec<RangeRecord> = cold[s..e].iter().map(|r| (**r).clone()).collect();
            if self.merge(log.as_ref(), &q, &old).await? {
                merges += 1;
            }
        }
        Ok(merges)
    }

    async fn merge(&self, log: &dyn TieredLog, q: &LiveQueue, old: &[RangeRecord]) -> Result<bool> {
        let (Some(first), Some(last)) = (old.first(), old.last()) else {
            return Ok(false);
        };
        let built = |e| CompactorError::Internal(format!("building merged object: {e}"));
        let mut builder = ObjectBuilder::new(self.config.target_block_bytes);
        for range in old {
            for block in &range.blocks {
                for payload in log.read_block(q.key, &range.object, block).await? {
                    let header = decode_header(&payload).map_err(|e| {
                        CompactorError::Corrupt(format!("object {}: {e}", range.object))
                    })?;
                    builder
                        .add_batch(
                            q.key,
                            header.base_offset,
                            header.count,
                            header.timestamp_ms,
                            &payload,
                        )
                        .map_err(built)?;
                }
            }
        }
        let (object, blocks) = builder.finish().map_err(built)?;
        let name = format!(
            "{MERGED_PREFIX}{:020}/{:010}/{:020}-{:020}-{}.seg",
            q.key.topic,
            q.key.queue,
            first.base_offset,
            last.end_offset,
            self.unique_suffix()
        );
        let size = object.len() as u64;
        self.objects.put(&name, object).await?;
        log.object_put(&q.tenant);
        let Some(merged) = ranges_from_blocks(&name, &blocks).pop() else {
            return Ok(false);
        };
        let fence = self.catalog.owner_check(q.key, &q.owner);
        if !self.catalog.replace_ranges(old, &merged, fence).await? {
            // Something changed underneath; the new object is garbage now.
            return Ok(false);
        }
        let applied = log.ranges_merged(q.key, old, merged);
        if applied {
            self.counters.merges.fetch_add(1, Ordering::Relaxed);
            self.counters
                .merged_bytes
                .fetch_add(size, Ordering::Relaxed);
        }
        Ok(applied)
    }

    /// Deletes range records of deleted topics, then every object that no
    /// committed range references (older than the grace period).
    pub async fn collect_garbage(&self) -> Result<u64> {
        // Fails once the host is gone, like every pass.
        self.log()?;
        let _exclusive = self.lock.lock().await;
        // Live topics come from the metadata store, read after the ranges
        // (so a range's topic is known), not from this node's own topics:
        // in cluster mode a node loads only its tenants' topics, and every
        // other tenant's ranges would look like a deleted topic's.
        let all = self.catalog.all_ranges().await?;
        let live: HashSet<_> = self
            .catalog
            .all_topics()
            .await?
            .into_iter()
            .map(|t| t.id)
            .collect();
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
            for o in self.objects.list(prefix).await? {
                listed.push(Listed {
                    key: o.key,
                    last_modified_ms: o.last_modified_ms,
                });
            }
        }
        let grace = i64::try_from(self.config.gc_grace.as_millis()).unwrap_or(i64::MAX);
        let garbage = gc::garbage(&listed, &referenced, self.clock.now_ms(), grace);
        for key in &garbage {
            self.objects.delete(key).await?;
            tracing::debug!(object = %key, "deleted unreferenced object");
        }
        let n = garbage.len() as u64;
        self.counters.gc_deleted.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }
}
