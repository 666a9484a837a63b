//! Object ranges: where each queue's offsets live in object storage.
//!
//! An upload writes one object holding many queues, then commits one
//! [`RangeRecord`] per queue together with the node's WAL checkpoint in a
//! single transaction, fenced by the owners' epochs. Only after that commit
//! may the WAL space be reused. Merges replace several ranges of a queue by
//! one, conditional on the old ranges being unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
pub use strata_common::BlockRef;
use strata_common::QueueKey;

use super::{Catalog, CatalogError, encode, keys};
use crate::store::{Check, Txn, TxnOutcome};

/// Offsets `[base_offset, end_offset)` of one queue, stored in `object`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRecord {
    pub queue: QueueKey,
    pub base_offset: u64,
    pub end_offset: u64,
    pub object: String,
    pub blocks: Vec<BlockRef>,
    pub min_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    /// Bytes of this range's blocks in the object.
    pub stored_bytes: u64,
}

impl RangeRecord {
    fn key(&self) -> Vec<u8> {
        keys::range(self.queue, self.base_offset)
    }

    fn encoded(&self) -> Result<Vec<u8>, CatalogError> {
        Ok(encode(&self.key(), self)?)
    }

    fn unchanged(&self) -> Result<Check, CatalogError> {
        Ok(Check::ValueEquals {
            key: self.key(),
            value: self.encoded()?,
        })
    }
}

impl Catalog {
    /// Every range of every queue, grouped by queue and sorted by offset.
    pub async fn all_ranges(&self) -> Result<BTreeMap<QueueKey, Vec<RangeRecord>>, CatalogError> {
        let mut out: BTreeMap<QueueKey, Vec<RangeRecord>> = BTreeMap::new();
        for record in self.scan_records::<RangeRecord>(keys::ALL_RANGES).await? {
            out.entry(record.queue).or_default().push(record);
        }
        Ok(out)
    }

    /// One queue's ranges, sorted by offset.
    pub async fn queue_ranges(&self, queue: QueueKey) -> Result<Vec<RangeRecord>, CatalogError> {
        Ok(self.scan_records(&keys::range_prefix(queue)).await?)
    }

    /// The node's WAL checkpoint, if it ever uploaded.
    pub async fn wal_checkpoint(&self, node: &str) -> Result<Option<u64>, CatalogError> {
        Ok(self
            .get_record::<u64>(&keys::wal_checkpoint(node)?)
            .await?
            .map(|(lsn, _)| lsn))
    }

    /// Commits an upload: the new ranges and the WAL checkpoint, atomically,
    /// guarded by `fences` (owner checks). Returns false when a fence failed:
    /// another node took over a queue, and nothing was written.
    pub async fn commit_upload(
        &self,
        node: &str,
        checkpoint: u64,
        ranges: &[RangeRecord],
        fences: Vec<Check>,
    ) -> Result<bool, CatalogError> {
        let mut txn = Txn::new();
        for fence in fences {
            txn = txn.check(fence);
        }
        for range in ranges {
            txn = txn.put(range.key(), range.encoded()?);
        }
        let key = keys::wal_checkpoint(node)?;
        let value = encode(&key, &checkpoint)?;
        txn = txn.put(key, value);
        Ok(self.store.commit(txn).await? == TxnOutcome::Committed)
    }

    /// Replaces `old` ranges of one queue by `new` (a merge), only if every
    /// old range is unchanged and the fence holds. Returns false otherwise.
    pub async fn replace_ranges(
        &self,
        old: &[RangeRecord],
        new: &RangeRecord,
        fence: Check,
    ) -> Result<bool, CatalogError> {
        let mut txn = Txn::new().check(fence);
        for range in old {
            txn = txn.check(range.unchanged()?).delete(range.key());
        }
        txn = txn.put(new.key(), new.encoded()?);
        Ok(self.store.commit(txn).await? == TxnOutcome::Committed)
    }

    /// Deletes expired ranges and records the queues' new floors in one
    /// transaction, only if the ranges are unchanged. Returns false otherwise.
    pub async fn expire_ranges(
        &self,
        ranges: &[RangeRecord],
        floors: &[(QueueKey, u64)],
    ) -> Result<bool, CatalogError> {
        let mut txn = Txn::new();
        for range in ranges {
            txn = txn.check(range.unchanged()?).delete(range.key());
        }
        for (queue, floor) in floors {
            let key = keys::floor(*queue);
            let value = encode(&key, floor)?;
            txn = txn.put(key, value);
        }
        Ok(self.store.commit(txn).await? == TxnOutcome::Committed)
    }
}
