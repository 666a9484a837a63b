//! Which object store holds this namespace's objects. Garbage collection
//! deletes every object its namespace does not reference, so two
//! namespaces sharing a bucket and prefix would delete each other's data,
//! and a node pointed at another store would commit ranges the others
//! cannot read. The namespace records a random store id here, and the
//! same id is written into the store (`strata_compactor::store_mark`);
//! a node whose store holds another id, or none once the namespace's
//! store was marked, is refused.

use serde::{Deserialize, Serialize};

use super::{Catalog, CatalogError, encode, keys};
use crate::store::{Check, Txn, TxnOutcome};

/// The namespace's object store id, and whether it was written into the
/// store yet (a node that stopped in between finishes the marking).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreMark {
    pub id: String,
    pub marked: bool,
}

impl Catalog {
    /// The namespace's store mark, if it has one.
    pub async fn store_mark(&self) -> Result<Option<StoreMark>, CatalogError> {
        Ok(self
            .get_record(keys::STORE_MARK)
            .await?
            .map(|(mark, _)| mark))
    }

    /// Records `mark` if the namespace has none; returns the namespace's
    /// mark afterwards (another node's, if it recorded one first).
    pub async fn create_store_mark(&self, mark: &StoreMark) -> Result<StoreMark, CatalogError> {
        let txn = Txn::new()
            .check(Check::Absent {
                key: keys::STORE_MARK.to_vec(),
            })
            .put(keys::STORE_MARK.to_vec(), encode(keys::STORE_MARK, mark)?);
        match self.store.commit(txn).await? {
            TxnOutcome::Committed => Ok(mark.clone()),
            TxnOutcome::CheckFailed { .. } => self.store_mark().await?.ok_or_else(|| {
                CatalogError::Conflict("the store mark was created and deleted meanwhile".into())
            }),
        }
    }

    /// Notes that the mark `id` is written into the object store.
    pub async fn set_store_marked(&self, id: &str) -> Result<(), CatalogError> {
        let before = StoreMark {
            id: id.to_string(),
            marked: false,
        };
        let after = StoreMark {
            marked: true,
            ..before.clone()
        };
        let txn = Txn::new()
            .check(Check::ValueEquals {
                key: keys::STORE_MARK.to_vec(),
                value: encode(keys::STORE_MARK, &before)?,
            })
            .put(keys::STORE_MARK.to_vec(), encode(keys::STORE_MARK, &after)?);
        // Already marked by another node: as good.
        self.store.commit(txn).await?;
        Ok(())
    }
}
