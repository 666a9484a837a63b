//! Tiered storage, the engine's side: the engine as the
//! [`TieredLog`](strata_compactor::TieredLog) the compactor moves to object
//! storage ([`log`]), following a separate compactor ([`follow`]), and the
//! tiering status. Reads across the tiers are `strata_tiering::log`'s;
//! uploads, merges, retention and GC are the compactor's.

mod follow;
pub(crate) mod log;

use std::sync::atomic::Ordering;

use strata_compactor::{MaintenanceSummary, UploadSummary};
use strata_objects::Objects;

use crate::core::Core;
use crate::error::{EngineError, Result};

/// Longest [`Core::upload_once`] waits for a separate compactor.
const SEPARATE_UPLOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Core {
    /// The object store wrapper: its metrics, and its fault switches in tests.
    pub fn object_store(&self) -> &Objects {
        self.tiers.objects()
    }

    /// Runs CPU work for readers (encoding a reply) on the cold-read
    /// runtime, a bounded number of pieces at once.
    pub async fn for_readers<F, T>(&self, work: F) -> Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.tiers
            .cold()
            .compute(work)
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))
    }

    /// The node's WAL checkpoint: everything below is in object storage.
    pub fn wal_checkpoint(&self) -> u64 {
        self.compactor.checkpoint()
    }

    /// Durable WAL bytes not yet in object storage.
    pub fn upload_lag_bytes(&self) -> u64 {
        self.compactor.lag_bytes()
    }

    /// Uploads durable WAL data from the checkpoint on as one object (see
    /// [`Compactor::upload_once`](strata_compactor::Compactor::upload_once)).
    /// With a separate compactor, waits (up to 30 s) until it has uploaded
    /// everything durable now.
    pub async fn upload_once(&self) -> Result<UploadSummary> {
        if self.compactor_is_separate() {
            let checkpoint = self.wait_for_separate_upload(SEPARATE_UPLOAD_WAIT).await?;
            return Ok(UploadSummary {
                checkpoint,
                ..UploadSummary::default()
            });
        }
        Ok(self.compactor.upload_once().await?)
    }

    /// One pass of retention, merging and garbage collection.
    pub async fn maintain(&self) -> Result<MaintenanceSummary> {
        self.in_process_compactor()?;
        Ok(self.compactor.maintain().await?)
    }

    /// Expires the ranges retention no longer keeps; returns how many went.
    pub async fn enforce_retention(&self) -> Result<u64> {
        self.in_process_compactor()?;
        Ok(self.compactor.enforce_retention().await?)
    }

    /// Rewrites runs of small adjacent ranges, many queues per object.
    pub async fn merge_small_ranges(&self) -> Result<u64> {
        self.in_process_compactor()?;
        Ok(self.compactor.merge_small_ranges().await?)
    }

    /// Deletes objects no committed range references.
    pub async fn collect_garbage(&self) -> Result<u64> {
        self.in_process_compactor()?;
        Ok(self.compactor.collect_garbage().await?)
    }

    /// Maintenance is the separate compactor's when there is one.
    fn in_process_compactor(&self) -> Result<()> {
        if self.compactor_is_separate() {
            return Err(EngineError::Refused {
                code: strata_common::ErrorCode::Unavailable,
                message: "maintenance runs in the separate `strata compactor` process \
                          (compactor.mode = \"separate\")"
                    .into(),
            });
        }
        Ok(())
    }

    pub(crate) fn tiering_status(&self) -> crate::types::TieringStatus {
        let tiers = &self.tiers;
        let checkpoint = self.compactor.checkpoint();
        let oldest_pending = self
            .topics_read()
            .all()
            .flat_map(|t| t.queues.iter())
            .filter_map(|q| {
                let inner = q.lock();
                let i = inner.index.partition_point(|e| e.at.lsn < checkpoint);
                inner.index.get(i).map(|e| e.at.timestamp_ms)
            })
            .min();
        let c = self.compactor.counters();
        crate::types::TieringStatus {
            object_store: tiers.objects().describe(),
            compactor: if self.compactor_is_separate() {
                "separate"
            } else {
                "in_process"
            },
            checkpoint_lsn: checkpoint,
            upload_lag_bytes: self.upload_lag_bytes(),
            upload_lag_ms: oldest_pending.map_or(0, |ts| (self.clock.now_ms() - ts).max(0)),
            uploads: c.uploads.load(Ordering::Relaxed),
            uploaded_bytes: c.uploaded_bytes.load(Ordering::Relaxed),
            merges: c.merges.load(Ordering::Relaxed),
            merged_bytes: c.merged_bytes.load(Ordering::Relaxed),
            expired_ranges: c.expired_ranges.load(Ordering::Relaxed),
            gc_deleted_objects: c.gc_deleted.load(Ordering::Relaxed),
            failed_passes: c.failures.load(Ordering::Relaxed),
            last_error: self.compactor.last_error(),
            objects: tiers.objects().metrics(),
            block_cache: tiers.blocks().stats(),
            cold_reader: tiers.cold().stats(),
        }
    }
}
