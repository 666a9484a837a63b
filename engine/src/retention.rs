//! Releasing expired WAL segments.
//!
//! Order matters for crash safety: the new first offset of every affected
//! queue is committed to the metadata store *before* the segments are
//! deleted, so a restart never reuses an offset whose data is gone.

use std::sync::Arc;

use strata_common::QueueKey;
use strata_compactor::release_bound;

use crate::engine::Engine;
use crate::error::{EngineError, Result};

pub(crate) fn spawn_loop(engine: &Arc<Engine>) {
    let weak = Arc::downgrade(engine);
    let interval = engine.config.retention_interval;
    let mut shutdown = engine.shutdown.subscribe();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.wait_for(|down| *down) => break,
            }
            let Some(engine) = weak.upgrade() else { break };
            if let Err(e) = engine.enforce_retention().await {
                tracing::warn!(error = %e, "retention pass failed");
            }
        }
    });
}

impl Engine {
    /// Deletes WAL segments that hold only expired or deleted data; returns
    /// the bytes freed.
    pub async fn enforce_retention(&self) -> Result<u64> {
        let _one_pass = self.retention_lock.lock().await;
        let now = self.clock.now_ms();
        let topics: Vec<_> = self.topics_read().all().cloned().collect();
        let mut bound = u64::MAX;
        for topic in &topics {
            let policy = topic.retention_policy();
            for q in &topic.queues {
                let inner = q.lock();
                let b = release_bound([(policy, inner.index.iter().map(|e| &e.at))], now);
                bound = bound.min(b);
            }
        }
        let segments = self.wal.segments();
        let Some(current_first) = segments.first().map(|s| s.base_lsn) else {
            return Ok(0);
        };
        let new_first = segments
            .iter()
            .take_while(|s| s.sealed && s.end_lsn <= bound)
            .last()
            .map_or(current_first, |s| s.end_lsn);
        if new_first <= current_first {
            return Ok(0);
        }
        let mut floors: Vec<(QueueKey, u64)> = Vec::new();
        for topic in &topics {
            for q in &topic.queues {
                let inner = q.lock();
                let floor = inner.first_offset_after_release(new_first);
                if floor > inner.first_offset {
                    floors.push((q.key, floor));
                }
            }
        }
        self.catalog.set_queue_floors(&floors).await?;
        let wal = self.wal.clone();
        let files = self.wal_files.clone();
        let freed = tokio::task::spawn_blocking(move || {
            let _no_readers = files.write().unwrap_or_else(|p| p.into_inner());
            wal.release_before(new_first)
        })
        .await
        .map_err(|e| EngineError::Internal(format!("WAL release task failed: {e}")))??;
        for topic in &topics {
            for q in &topic.queues {
                let first = {
                    let mut inner = q.lock();
                    inner.release_below(new_first);
                    inner.first_offset
                };
                self.cache.trim_below(q.key, first);
            }
        }
        tracing::info!(
            freed_bytes = freed,
            first_lsn = new_first,
            "retention released WAL segments"
        );
        Ok(freed)
    }
}
