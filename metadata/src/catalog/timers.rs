//! Delay timers: one key per delayed message, ordered by due time, so a
//! restarted node finds every pending delivery with one scan. The value is
//! the scheduled message's id, so that a timer never delivers another
//! message found at its offset (timers written before it was kept have an
//! empty value).

use super::{Catalog, CatalogError, keys};
use crate::store::{MetaError, Txn};

/// A pending timer with its tenant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timer {
    pub deliver_at_ms: i64,
    pub tenant: String,
    pub offset: u64,
    /// The id of the message the timer delivers; empty when unknown.
    pub message_id: String,
}

impl Catalog {
    /// Records timers of one tenant in one transaction.
    pub async fn put_timers(&self, timers: &[Timer]) -> Result<(), CatalogError> {
        let mut txn = Txn::new();
        for t in timers {
            txn = txn.put(
                keys::timer(t.deliver_at_ms, &t.tenant, t.offset)?,
                t.message_id.as_bytes().to_vec(),
            );
        }
        self.store.commit(txn).await?;
        Ok(())
    }

    /// Removes fired timers in one transaction.
    pub async fn delete_timers(&self, timers: &[Timer]) -> Result<(), CatalogError> {
        let mut txn = Txn::new();
        for t in timers {
            txn = txn.delete(keys::timer(t.deliver_at_ms, &t.tenant, t.offset)?);
        }
        self.store.commit(txn).await?;
        Ok(())
    }

    /// Every pending timer, earliest first.
    pub async fn all_timers(&self) -> Result<Vec<Timer>, CatalogError> {
        let prefix = keys::ALL_TIMERS;
        let mut out = Vec::new();
        for (key, value) in self.scan_all(prefix).await? {
            let corrupt = || MetaError::Corrupt {
                key: keys::display(&key),
                reason: "timer key is not timer/<ms>/<tenant>/<offset>".into(),
            };
            let text = std::str::from_utf8(&key[prefix.len()..]).map_err(|_| corrupt())?;
            let mut parts = text.splitn(3, '/');
            let at = parts
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(corrupt)?;
            let tenant = parts.next().filter(|t| !t.is_empty()).ok_or_else(corrupt)?;
            let offset = parts
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(corrupt)?;
            let message_id = String::from_utf8(value).map_err(|_| MetaError::Corrupt {
                key: keys::display(&key),
                reason: "timer value is not a message id".into(),
            })?;
            out.push(Timer {
                deliver_at_ms: at,
                tenant: tenant.to_string(),
                offset,
                message_id,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use crate::store::MetaStore;

    #[tokio::test]
    async fn timers_come_back_in_due_order() {
        let catalog = Catalog::new(MemoryStore::new());
        let t = |at, tenant: &str, offset| Timer {
            deliver_at_ms: at,
            tenant: tenant.into(),
            offset,
            message_id: format!("m-{tenant}-{offset}"),
        };
        catalog
            .put_timers(&[t(2000, "a", 5), t(1000, "b", 9), t(1000, "a", 7)])
            .await
            .unwrap();
        let all = catalog.all_timers().await.unwrap();
        assert_eq!(all, [t(1000, "a", 7), t(1000, "b", 9), t(2000, "a", 5)]);
        catalog.delete_timers(&[t(1000, "b", 9)]).await.unwrap();
        assert_eq!(catalog.all_timers().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_timer_stored_without_a_message_id_comes_back_with_an_empty_one() {
        let store = MemoryStore::new();
        let key = keys::timer(1000, "a", 3).unwrap();
        store.commit(Txn::new().put(key, Vec::new())).await.unwrap();
        let all = Catalog::new(store).all_timers().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].message_id, "");
    }
}
