//! [`TieredLog`]: all the compactor needs from the node whose data it moves
//! to object storage. The engine implements it; the compactor never sees
//! the engine's types.

use std::sync::Arc;

use bytes::Bytes;
use strata_common::{QueueKey, Retention};
use strata_metadata::{OwnerRecord, RangeRecord};

use crate::error::Result;

/// A live queue as the compactor sees it.
#[derive(Debug, Clone)]
pub struct LiveQueue {
    pub key: QueueKey,
    /// The tenant billed for the queue's object requests.
    pub tenant: Arc<str>,
    /// The ownership this node holds; commits are fenced on it.
    pub owner: OwnerRecord,
    pub retention: Retention,
    pub retention_bytes: Option<u64>,
}

/// What a pass needs fresh before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Queues and owners (an upload).
    Queues,
    /// Queues, owners, cold ranges and WAL-only bytes (maintenance).
    Everything,
}

/// The log: its WAL (what it holds, what may be released) and its queues'
/// cold ranges (what is already in object storage).
#[async_trait::async_trait]
pub trait TieredLog: Send + Sync {
    /// Brings what the log knows up to date before a pass. A log inside the
    /// node is always current; a separate compactor's
    /// ([`VolumeLog`](crate::VolumeLog)) reloads from the metadata store.
    async fn refresh(&self, _scope: Refresh) -> Result<()> {
        Ok(())
    }
    /// WAL position up to which records are durable.
    fn durable_lsn(&self) -> u64;
    /// Oldest WAL position still held.
    fn first_lsn(&self) -> u64;
    /// Whether the WAL is more than half full (appends may soon wait).
    fn wal_filling(&self) -> bool;
    /// `Err` with the reason while the node may no longer own what it
    /// writes (its write fence is shut: its lease lapsed, or another node
    /// adopted it). Uploads then write nothing: their commit would be
    /// refused anyway, after a PUT of an object nobody references.
    fn write_fence(&self) -> std::result::Result<(), String> {
        Ok(())
    }
    /// Durable WAL records from `from` until `until`, stopping before the
    /// one that would pass `max_bytes` (at least one is read): each with its
    /// position, and the position after the last one read.
    async fn read_wal(
        &self,
        from: u64,
        until: u64,
        max_bytes: u64,
    ) -> Result<(Vec<(u64, Bytes)>, u64)>;
    /// Releases WAL space wholly below `checkpoint` (its data is in object
    /// storage); returns the bytes freed.
    async fn release_wal(&self, checkpoint: u64) -> Result<u64>;

    /// The queue, if it is live on this node.
    fn queue(&self, key: QueueKey) -> Option<LiveQueue>;
    /// Every live queue.
    fn queues(&self) -> Vec<LiveQueue>;
    /// A queue's cold ranges, oldest first.
    fn cold_ranges(&self, key: QueueKey) -> Vec<Arc<RangeRecord>>;

    /// Committed upload ranges join their queues' cold ranges.
    fn ranges_uploaded(&self, ranges: &[RangeRecord]);
    /// The queue's `count` oldest cold ranges expired.
    fn ranges_expired(&self, key: QueueKey, count: usize);
    /// `old` ranges were merged into `merged`; false if the queue's ranges
    /// changed meanwhile.
    fn ranges_merged(&self, key: QueueKey, old: &[RangeRecord], merged: RangeRecord) -> bool;
    /// One object PUT, billed to `tenant`.
    fn object_put(&self, tenant: &str);
    /// One object GET (a merge reading its sources), billed to `tenant`.
    fn object_get(&self, tenant: &str);
}
