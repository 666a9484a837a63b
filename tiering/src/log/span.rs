//! The compactor's side of the tiers: scanning a WAL span to upload, and
//! releasing WAL segments (with their index entries) once their data is in
//! object storage.

use std::sync::Arc;

use bytes::Bytes;

use super::error::task_failed;
use super::{QueueLog, TierError, Tiers};

impl Tiers {
    /// Durable WAL records from `from` until `until`, stopping before the
    /// one that would pass `max_bytes` (at least one is read): each with its
    /// position, and the position after the last one read.
    pub async fn read_span(
        &self,
        from: u64,
        until: u64,
        max_bytes: u64,
    ) -> Result<(Vec<(u64, Bytes)>, u64), TierError> {
        let wal = self.wal.clone();
        let files = self.files.clone();
        tokio::task::spawn_blocking(move || {
            let _files = files.read().unwrap_or_else(|p| p.into_inner());
            Ok(wal.read_span(from, until, max_bytes)?)
        })
        .await
        .map_err(task_failed("WAL scan"))?
    }

    /// Deletes sealed WAL segments wholly below `checkpoint` and drops the
    /// index entries of `queues` that pointed into them (the data is in
    /// object storage); returns the bytes freed.
    pub async fn release_below(
        &self,
        checkpoint: u64,
        queues: Vec<Arc<QueueLog>>,
    ) -> Result<u64, TierError> {
        let segments = self.wal.segments();
        let Some(current_first) = segments.first().map(|s| s.base_lsn) else {
            return Ok(0);
        };
        let new_first = segments
            .iter()
            .take_while(|s| s.sealed && s.end_lsn <= checkpoint)
            .last()
            .map_or(current_first, |s| s.end_lsn);
        if new_first <= current_first {
            return Ok(0);
        }
        let wal = self.wal.clone();
        let files = self.files.clone();
        let freed = tokio::task::spawn_blocking(move || {
            // Readers of WAL records hold the gate shared. Once the entries
            // into these segments are gone (under the gate, so no reader is
            // half-way through one), no reader can reach them, and they are
            // deleted outside it: a reader never waits behind an unlink and
            // a directory fsync on this (low-priority) thread.
            {
                let _no_readers = files.write().unwrap_or_else(|p| p.into_inner());
                for q in &queues {
                    q.lock().release_below(new_first);
                }
            }
            Ok::<_, TierError>(wal.release_before(new_first)?)
        })
        .await
        .map_err(task_failed("WAL release"))??;
        tracing::debug!(
            freed_bytes = freed,
            first_lsn = new_first,
            "released WAL segments"
        );
        Ok(freed)
    }
}
