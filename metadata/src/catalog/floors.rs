//! Queue floors: the first offset of a queue whose older data was released.
//!
//! Written before WAL segments are deleted, so a restart that finds no WAL
//! data for a queue still continues its offsets instead of reusing them.

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
