//! Maintenance: retention over object ranges, merges of small ranges (see
//! `merge_pass`), and garbage collection of unreferenced objects.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use strata_metadata::RangeRecord;

use crate::compactor::Compactor;
use crate::error::Result;
use crate::expiry::{self, RangeAge};
use crate::gc::{self, Listed};
use crate::host::Refresh;
use crate::merge_pass::MERGED_PREFIX;
use crate::upload::UPLOAD_PREFIX;

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
            let n = expiry::expired(&ages, q.retention, q.retention_bytes, now);
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

    /// Deletes range records of deleted topics, then every object that no
    /// committed range references (older than the grace period).
    pub async fn collect_garbage(&self) -> Result<u64> {
        // Fails once the host is gone, like every pass.
        self.log()?;
        self.recheck_store().await?;
        let _exclusive = self.lock.lock().await;
        // Ages are judged from before the ranges are read: an object
        // committed after that read was written at most half the grace
        // earlier (`Compactor::fresh_enough`), so it is spared however long
        // this pass is held up (paused, slow store) before it lists.
        let now_ms = self.clock.now_ms();
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
        let grace = i64::try_from(self.config.gc_grace.as_millis()).unwrap_or(i64::MAX);
        // Other registered nodes may still commit their objects, however
        // old (see `gc`): while live, and for a grace after they left or
        // were adopted, for a commit held up across that moment (an
        // adopted node's commits are refused only once its queues are
        // claimed by others).
        let spared: HashSet<String> = self
            .catalog
            .cluster_nodes()
            .await?
            .into_iter()
            .filter(|n| n.node != self.config.node_id)
            .filter(|n| {
                n.gone_at_ms()
                    .is_none_or(|at| at > now_ms.saturating_sub(grace))
            })
            .map(|n| n.node)
            .collect();
        let mut listed = Vec::new();
        for prefix in [UPLOAD_PREFIX, MERGED_PREFIX] {
            for o in self.objects.list(prefix).await? {
                listed.push(Listed {
                    key: o.key,
                    last_modified_ms: o.last_modified_ms,
                });
            }
        }
        let garbage = gc::garbage(&listed, &referenced, &spared, now_ms, grace);
        for key in &garbage {
            self.objects.delete(key).await?;
            tracing::debug!(object = %key, "deleted unreferenced object");
        }
        let n = garbage.len() as u64;
        self.counters.gc_deleted.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }
}
