//! Queue floors: the first offset of a queue whose older data is gone.
//!
//! Retention writes a queue's floor with the expiry of its ranges
//! ([`Catalog::expire_ranges`]: the end of the last range expired), so a
//! node that loads the queue with no range left continues its offsets
//! instead of reusing them, and readers of other nodes' index runs know
//! where the queue starts ([`Catalog::queue_floors`]).
//!
//! Resume points: where a queue goes on after its owner was declared lost
//! (`NodeState::Lost`). Its WAL took offsets past its uploaded ranges that
//! no one can read any more, and metadata may still name them (committed
//! offsets, POP cursors and in-flight records, timers, open
//! transactions): the next owner starts [`LOST_OFFSETS_GAP`] past the
//! uploaded end, so those names never point at new messages. The gap is
//! written with that owner's claim (`Catalog::claim_topic_queues`) and
//! read by every later owner ([`Catalog::queue_resumes`]).

use std::collections::HashMap;

use strata_common::QueueKey;

use super::{Catalog, CatalogError, decode, encode, keys};

/// How far past a lost owner's uploaded end its queues go on: more offsets
/// than one queue can take in a WAL that is not uploaded (each message
/// takes tens of bytes of a WAL bounded to a few GiB).
pub const LOST_OFFSETS_GAP: u64 = 1 << 32;
use crate::store::{Txn, TxnOutcome};

impl Catalog {
    /// Records the floors of many queues in one transaction.
    pub async fn set_queue_floors(&self, floors: &[(QueueKey, u64)]) -> Result<(), CatalogError> {
        if floors.is_empty() {
            return Ok(());
        }
        let mut txn = Txn::new();
        for (queue, floor) in floors {
            let key = keys::floor(*queue);
            let value = encode(&key, floor)?;
            txn = txn.put(key, value);
        }
        match self.store.commit(txn).await? {
            TxnOutcome::Committed => Ok(()),
            TxnOutcome::CheckFailed { .. } => Err(CatalogError::Conflict(
                "queue floors: unconditional commit reported a failed check".into(),
            )),
        }
    }

    /// Every recorded resume point (see the module docs).
    pub async fn queue_resumes(&self) -> Result<HashMap<QueueKey, u64>, CatalogError> {
        let mut out = HashMap::new();
        for (key, raw) in self.scan_all(keys::ALL_RESUMES).await? {
            let Some(queue) = keys::parse_resume(&key) else {
                continue;
            };
            out.insert(queue, decode::<u64>(&key, &raw)?);
        }
        Ok(out)
    }

    /// Where `queue`, whose owner was declared lost, goes on: the gap past
    /// the end of what it uploaded (its ranges, its floor, an earlier
    /// resume point), as the key and value to write with the claim.
    pub(super) async fn resume_after_lost(
        &self,
        queue: QueueKey,
    ) -> Result<(Vec<u8>, Vec<u8>), CatalogError> {
        let ranges_end = self
            .queue_ranges(queue)
            .await?
            .last()
            .map_or(0, |r| r.end_offset);
        let floor = self.get_record::<u64>(&keys::floor(queue)).await?;
        let key = keys::resume(queue);
        let earlier = self.get_record::<u64>(&key).await?;
        let end = [Some(ranges_end), floor.map(|f| f.0), earlier.map(|r| r.0)]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(0);
        let resume = end.saturating_add(LOST_OFFSETS_GAP);
        Ok((key.clone(), encode(&key, &resume)?))
    }

    /// Every recorded floor.
    pub async fn queue_floors(&self) -> Result<HashMap<QueueKey, u64>, CatalogError> {
        let mut out = HashMap::new();
        for (key, raw) in self.scan_all(keys::ALL_FLOORS).await? {
            let Some(queue) = keys::parse_floor(&key) else {
                continue;
            };
            out.insert(queue, decode::<u64>(&key, &raw)?);
        }
        Ok(out)
    }
}
