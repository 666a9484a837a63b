//! Following a separate compactor ([`CompactorPlacement::Separate`]): the
//! node publishes how far its WAL is durable (the durable mark the
//! compactor reads up to), picks up the checkpoint and the ranges the
//! compactor commits, and releases its WAL below that checkpoint.
//!
//! The compactor also merges and expires ranges without telling the node;
//! the node resynchronises every queue's ranges each maintenance interval,
//! and at once for a queue whose cold read finds an object gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use strata_tiering::wal::write_durable_mark;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use strata_common::ErrorCode;

use crate::CompactorPlacement;
use crate::core::Core;
use crate::core::queue::QueueState;
use crate::error::{EngineError, Result};

/// How often the node publishes its mark and looks for a new checkpoint.
const FOLLOW_TICK: Duration = Duration::from_millis(100);

impl Core {
    pub(crate) fn compactor_is_separate(&self) -> bool {
        self.config.compactor == CompactorPlacement::Separate
    }

    /// Starts the loop that follows the separate compactor.
    pub(crate) fn spawn_follower(
        self: &Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let core = self.clone();
        tokio::spawn(async move {
            let clock = core.clock.clone();
            let published = AtomicU64::new(u64::MAX);
            let mut last_sync = clock.monotonic();
            loop {
                tokio::select! {
                    _ = clock.sleep(FOLLOW_TICK) => {}
                    _ = shutdown.wait_for(|down| *down) => break,
                }
                if let Err(e) = core.follow_once(&published).await {
                    tracing::warn!(error = %e, "following the separate compactor failed; will retry");
                }
                if clock.monotonic().saturating_sub(last_sync) >= core.config.retention_interval {
                    match core.sync_all_cold().await {
                        Ok(()) => last_sync = clock.monotonic(),
                        Err(e) => {
                            tracing::warn!(error = %e, "resynchronising cold ranges failed; will retry")
                        }
                    }
                }
            }
            // The compactor may go on after the node stops: tell it all.
            if let Err(e) = core.publish_durable_mark(&published).await {
                tracing::warn!(error = %e, "publishing the final durable mark failed");
            }
        })
    }

    /// Writes the durable mark if it moved.
    async fn publish_durable_mark(&self, published: &AtomicU64) -> Result<()> {
        let durable = self.wal.durable_lsn();
        if published.load(Ordering::Acquire) == durable {
            return Ok(());
        }
        let dir = self.config.data_dir.join("wal");
        tokio::task::spawn_blocking(move || write_durable_mark(&dir, durable))
            .await
            .map_err(|e| EngineError::Internal(format!("durable mark task failed: {e}")))??;
        published.store(durable, Ordering::Release);
        Ok(())
    }

    /// One step: publish the mark; if the compactor committed a new
    /// checkpoint, take the ranges it added and release the WAL below it.
    async fn follow_once(&self, published: &AtomicU64) -> Result<()> {
        self.publish_durable_mark(published).await?;
        let committed = self
            .catalog
            .wal_checkpoint(&self.config.node_id)
            .await?
            .unwrap_or(0);
        let known = self.compactor.checkpoint();
        if committed <= known {
            return Ok(());
        }
        // Queues with WAL batches below the new checkpoint that their cold
        // ranges do not cover yet: the upload gave them new ranges.
        let touched: Vec<Arc<QueueState>> = self
            .topics_read()
            .all()
            .flat_map(|t| t.queues.iter())
            .filter(|q| {
                let inner = q.lock();
                let cold_end = inner.cold_end().unwrap_or(0);
                inner
                    .index
                    .iter()
                    .take_while(|e| e.at.lsn < committed)
                    .any(|e| e.end_offset() > cold_end)
            })
            .cloned()
            .collect();
        for q in touched {
            self.sync_queue_cold(&q, None).await?;
        }
        self.compactor.observe_checkpoint(committed);
        self.release_wal_below(committed).await?;
        Ok(())
    }

    /// Takes one queue's ranges from the metadata store.
    pub(crate) async fn sync_queue_cold(&self, q: &QueueState, floor: Option<u64>) -> Result<()> {
        let ranges = self.catalog.queue_ranges(q.key).await?;
        q.lock().sync_cold(ranges, floor);
        Ok(())
    }

    /// Takes every queue's ranges and floor from the metadata store.
    async fn sync_all_cold(&self) -> Result<()> {
        let mut ranges = self.catalog.all_ranges().await?;
        let floors = self.catalog.queue_floors().await?;
        for topic in self.topics_read().all() {
            for q in &topic.queues {
                let mine = ranges.remove(&q.key).unwrap_or_default();
                q.lock().sync_cold(mine, floors.get(&q.key).copied());
            }
        }
        Ok(())
    }

    /// With a separate compactor, an upload is its work: waits until its
    /// checkpoint passes what is durable now.
    pub(crate) async fn wait_for_separate_upload(&self, timeout: Duration) -> Result<u64> {
        let target = self.wal.durable_lsn();
        let start = self.clock.monotonic();
        while self.compactor.checkpoint() < target {
            if self.clock.monotonic().saturating_sub(start) >= timeout {
                return Err(EngineError::Refused {
                    code: ErrorCode::Unavailable,
                    message: format!(
                        "the separate compactor did not upload the WAL up to LSN {target} within \
                         {} s (checkpoint {}); is `strata compactor` running for this data \
                         directory?",
                        timeout.as_secs(),
                        self.compactor.checkpoint()
                    ),
                });
            }
            self.clock.sleep(FOLLOW_TICK).await;
        }
        Ok(self.compactor.checkpoint())
    }
}
