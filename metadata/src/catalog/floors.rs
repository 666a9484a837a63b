//! Queue floors: the first offset of a queue whose older data is gone.
//!
//! Retention writes a queue's floor with the expiry of its ranges
//! ([`Catalog::expire_ranges`]: the end of the last range expired), so a
//! node that loads the queue with no range left continues its offsets
//! instead of reusing them, and readers of other nodes' index runs know
//! where the queue starts ([`Catalog::queue_floors`]).

use std::collections::HashMap;

use strata_common::QueueKey;

use super::{Catalog, CatalogError, decode, encode, keys};
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
