//! Open transactions: a half message waiting for its producer's commit or
//! rollback, and when the server should next ask the producer about it.

use serde::{Deserialize, Serialize};

use super::{Catalog, CatalogError, decode, encode, keys};
use crate::store::{Check, Txn, TxnOutcome};

/// A half (transactional) message not yet committed or rolled back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HalfRecord {
    pub tenant: String,
    pub transaction_id: String,
    pub message_id: String,
    /// The topic the message goes to on commit.
    pub topic: String,
    /// Where the half message is stored in the tenant's half topic.
    pub half_offset: u64,
    pub created_ms: i64,
    /// Check-backs sent so far.
    pub checks: u32,
    /// When to ask the producer next, Unix ms.
    pub next_check_ms: i64,
}

impl Catalog {
    /// Records an open transaction.
    pub async fn put_half(&self, h: &HalfRecord) -> Result<(), CatalogError> {
        self.put_halves(std::slice::from_ref(h)).await
    }

    /// Records several open transactions in one commit.
    pub async fn put_halves(&self, halves: &[HalfRecord]) -> Result<(), CatalogError> {
        let mut txn = Txn::new();
        for h in halves {
            let key = keys::half(&h.tenant, &h.transaction_id)?;
            txn = txn.put(key.clone(), encode(&key, h)?);
        }
        self.store.commit(txn).await?;
        Ok(())
    }

    /// The open transaction `transaction_id` of `tenant`, if any.
    pub async fn get_half(
        &self,
        tenant: &str,
        transaction_id: &str,
    ) -> Result<Option<HalfRecord>, CatalogError> {
        let key = keys::half(tenant, transaction_id)?;
        Ok(self.get_record(&key).await?.map(|(r, _)| r))
    }

    /// Ends an open transaction: removes it if it still equals `expected`.
    /// Returns false if someone else ended or changed it first.
    pub async fn end_half(&self, expected: &HalfRecord) -> Result<bool, CatalogError> {
        let key = keys::half(&expected.tenant, &expected.transaction_id)?;
        let txn = Txn::new()
            .check(Check::ValueEquals {
                key: key.clone(),
                value: encode(&key, expected)?,
            })
            .delete(key);
        Ok(self.store.commit(txn).await? == TxnOutcome::Committed)
    }

    /// Replaces `old` with `new` (a check-back was sent) if unchanged.
    pub async fn update_half(
        &self,
        old: &HalfRecord,
        new: &HalfRecord,
    ) -> Result<bool, CatalogError> {
        let key = keys::half(&old.tenant, &old.transaction_id)?;
        let txn = Txn::new()
            .check(Check::ValueEquals {
                key: key.clone(),
                value: encode(&key, old)?,
            })
            .put(key.clone(), encode(&key, new)?);
        Ok(self.store.commit(txn).await? == TxnOutcome::Committed)
    }

    /// Every open transaction of `tenant`.
    pub async fn tenant_halves(&self, tenant: &str) -> Result<Vec<HalfRecord>, CatalogError> {
        let mut out = Vec::new();
        for (key, value) in self.scan_all(&keys::half_prefix(tenant)?).await? {
            out.push(decode(&key, &value)?);
        }
        Ok(out)
    }

    /// Every open transaction of every tenant.
    pub async fn all_halves(&self) -> Result<Vec<HalfRecord>, CatalogError> {
        let mut out = Vec::new();
        for (key, value) in self.scan_all(keys::ALL_HALVES).await? {
            out.push(decode(&key, &value)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[tokio::test]
    async fn open_transactions_end_once() {
        let catalog = Catalog::new(MemoryStore::new());
        let h = HalfRecord {
            tenant: "t".into(),
            transaction_id: "tx1".into(),
            message_id: "m1".into(),
            topic: "orders".into(),
            half_offset: 3,
            created_ms: 1,
            checks: 0,
            next_check_ms: 5,
        };
        catalog.put_half(&h).await.unwrap();
        assert_eq!(catalog.get_half("t", "tx1").await.unwrap(), Some(h.clone()));
        let checked = HalfRecord {
            checks: 1,
            next_check_ms: 10,
            ..h.clone()
        };
        assert!(catalog.update_half(&h, &checked).await.unwrap());
        assert!(!catalog.end_half(&h).await.unwrap(), "stale record");
        assert_eq!(
            catalog.all_halves().await.unwrap(),
            std::slice::from_ref(&checked)
        );
        assert!(catalog.end_half(&checked).await.unwrap());
        assert!(!catalog.end_half(&checked).await.unwrap(), "ends once");
        assert!(catalog.get_half("t", "tx1").await.unwrap().is_none());
    }
}
