//! Consumption by message (POP): per (tenant, group, queue) a cursor — the
//! first offset never handed to the group — and one record per in-flight
//! message (received, not yet acknowledged). Every receive, acknowledgement
//! and visibility change is one transaction, so POP state survives a
//! restart exactly as it was acknowledged to clients.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_common::QueueKey;

use super::{Catalog, CatalogError, StoredGroup, decode, encode, keys};
use crate::store::{Check, MetaError, Txn, TxnOutcome};

/// One delivery of one message to a group, awaiting its acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InflightRecord {
    /// Which delivery this is: 1 for the first.
    pub attempt: u32,
    /// When the message becomes visible (deliverable) again, Unix ms.
    pub visible_ms: i64,
    /// Random id of this delivery; receipt handles name it, so a handle
    /// from an earlier delivery no longer matches.
    pub seq: u64,
    /// FIFO message group, if the message has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_group: Option<String>,
    /// The consumer set `visible_ms` itself (a change of invisible
    /// duration, a push consumer's nack): the group's retry backoff, meant
    /// for deliveries that ran out unnoticed, is not added to it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub chosen: bool,
}

/// A queue's POP state as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PopQueueState {
    pub cursor: u64,
    pub inflight: BTreeMap<u64, InflightRecord>,
}

/// One atomic change of a queue's POP state.
#[derive(Debug, Clone, Default)]
pub struct PopChange {
    /// New cursor, if it moves (from the state's current one).
    pub cursor: Option<(u64, u64)>,
    /// In-flight records written (new deliveries, visibility changes).
    pub put: Vec<(u64, InflightRecord)>,
    /// In-flight records removed, each only if it still equals the given
    /// record (acknowledged, dead-lettered, or gone with retention).
    pub remove: Vec<(u64, InflightRecord)>,
}

impl Catalog {
    /// The stored POP state of `group` on `queue` (empty if none).
    pub async fn pop_state(
        &self,
        tenant: &str,
        group: &str,
        queue: QueueKey,
    ) -> Result<PopQueueState, CatalogError> {
        let cursor = match self
            .store
            .get(&keys::pop_cursor(tenant, group, queue)?)
            .await?
        {
            Some(raw) => parse_cursor(&keys::pop_cursor(tenant, group, queue)?, &raw)?,
            None => 0,
        };
        let prefix = keys::pop_flight_prefix(tenant, group, queue)?;
        let mut inflight = BTreeMap::new();
        for (key, value) in self.scan_all(&prefix).await? {
            let offset = key
                .get(prefix.len()..)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| MetaError::Corrupt {
                    key: keys::display(&key),
                    reason: "in-flight key has no offset".into(),
                })?;
            inflight.insert(offset, decode(&key, &value)?);
        }
        Ok(PopQueueState { cursor, inflight })
    }

    /// Applies `change` atomically, guarded by `fence` (queue ownership)
    /// and by the group being the one read (`group`'s fence): a receive or
    /// acknowledgement racing the group's deletion writes nothing, so no
    /// state of a deleted group outlives it or passes to a group created
    /// again under its name. Returns false, writing nothing, if any guard
    /// failed.
    pub async fn commit_pop(
        &self,
        group: &StoredGroup,
        queue: QueueKey,
        change: &PopChange,
        fence: Check,
    ) -> Result<bool, CatalogError> {
        let (tenant, group_fence, group) = (&group.tenant, group.fence.clone(), &group.name);
        let mut txn = Txn::new().check(fence).check(group_fence);
        if let Some((old, new)) = change.cursor {
            let key = keys::pop_cursor(tenant, group, queue)?;
            txn = txn.check(if old == 0 {
                Check::Absent { key: key.clone() }
            } else {
                Check::ValueEquals {
                    key: key.clone(),
                    value: old.to_string().into_bytes(),
                }
            });
            // A cursor of 0 is never written, so "absent" means 0.
            txn = txn.put(key, new.to_string().into_bytes());
        }
        for (offset, record) in &change.remove {
            let key = keys::pop_flight(tenant, group, queue, *offset)?;
            txn = txn
                .check(Check::ValueEquals {
                    key: key.clone(),
                    value: encode(&key, record)?,
                })
                .delete(key);
        }
        for (offset, record) in &change.put {
            let key = keys::pop_flight(tenant, group, queue, *offset)?;
            txn = txn.put(key.clone(), encode(&key, record)?);
        }
        Ok(self.store.commit(txn).await? == TxnOutcome::Committed)
    }

    /// Deletes every POP record of `group` (when the group is deleted).
    pub async fn delete_pop_state(&self, tenant: &str, group: &str) -> Result<(), CatalogError> {
        for prefix in keys::pop_group_prefixes(tenant, group)? {
            let pairs = self.scan_all(&prefix).await?;
            for chunk in pairs.chunks(500) {
                let mut txn = Txn::new();
                for (key, _) in chunk {
                    txn = txn.delete(key.clone());
                }
                self.store.commit(txn).await?;
            }
        }
        Ok(())
    }
}

fn parse_cursor(key: &[u8], raw: &[u8]) -> Result<u64, MetaError> {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| MetaError::Corrupt {
            key: keys::display(key),
            reason: "POP cursor is not a number".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GroupStamp, MemoryStore};

    fn record(seq: u64) -> InflightRecord {
        InflightRecord {
            attempt: 1,
            visible_ms: 1000,
            seq,
            message_group: None,
            chosen: false,
        }
    }

    #[tokio::test]
    async fn changes_apply_atomically_and_guard_against_stale_records() {
        let catalog = Catalog::new(MemoryStore::new());
        catalog
            .create_group(
                "t",
                "g",
                GroupStamp {
                    now_ms: 1,
                    incarnation: 1,
                },
            )
            .await
            .unwrap();
        let g = catalog.get_group_stored("t", "g").await.unwrap().unwrap();
        let q = QueueKey::new(7, 1);
        let always = Check::Absent {
            key: b"no-such-key".to_vec(),
        };
        let receive = PopChange {
            cursor: Some((0, 3)),
            put: vec![(0, record(1)), (1, record(2)), (2, record(3))],
            remove: vec![],
        };
        assert!(
            catalog
                .commit_pop(&g, q, &receive, always.clone())
                .await
                .unwrap()
        );
        let state = catalog.pop_state("t", "g", q).await.unwrap();
        assert_eq!(state.cursor, 3);
        assert_eq!(state.inflight.len(), 3);
        // Acknowledging with a stale record (another delivery) fails whole.
        let stale = PopChange {
            remove: vec![(0, record(1)), (1, record(99))],
            ..Default::default()
        };
        assert!(
            !catalog
                .commit_pop(&g, q, &stale, always.clone())
                .await
                .unwrap()
        );
        assert_eq!(
            catalog.pop_state("t", "g", q).await.unwrap().inflight.len(),
            3
        );
        let ack = PopChange {
            remove: vec![(1, record(2))],
            ..Default::default()
        };
        assert!(
            catalog
                .commit_pop(&g, q, &ack, always.clone())
                .await
                .unwrap()
        );
        let state = catalog.pop_state("t", "g", q).await.unwrap();
        assert_eq!(state.inflight.keys().copied().collect::<Vec<_>>(), [0, 2]);
        // A cursor that moved underneath is refused.
        let racing = PopChange {
            cursor: Some((0, 5)),
            ..Default::default()
        };
        assert!(!catalog.commit_pop(&g, q, &racing, always).await.unwrap());
        catalog.delete_pop_state("t", "g").await.unwrap();
        assert_eq!(
            catalog.pop_state("t", "g", q).await.unwrap(),
            PopQueueState::default()
        );
    }

    #[tokio::test]
    async fn nothing_is_written_for_a_deleted_group_nor_for_its_namesake() {
        let catalog = Catalog::new(MemoryStore::new());
        catalog
            .create_group(
                "t",
                "g",
                GroupStamp {
                    now_ms: 1,
                    incarnation: 1,
                },
            )
            .await
            .unwrap();
        let old = catalog.get_group_stored("t", "g").await.unwrap().unwrap();
        let q = QueueKey::new(7, 0);
        let always = Check::Absent {
            key: b"no-such-key".to_vec(),
        };
        let receive = PopChange {
            cursor: Some((0, 1)),
            put: vec![(0, record(1))],
            remove: vec![],
        };
        catalog.delete_group("t", "g").await.unwrap();
        assert!(
            !catalog
                .commit_pop(&old, q, &receive, always.clone())
                .await
                .unwrap(),
            "a receive of a deleted group must not commit"
        );
        catalog
            .create_group(
                "t",
                "g",
                GroupStamp {
                    now_ms: 1,
                    incarnation: 2,
                },
            )
            .await
            .unwrap();
        assert!(
            !catalog
                .commit_pop(&old, q, &receive, always.clone())
                .await
                .unwrap(),
            "a receive of the deleted group must not commit into its namesake"
        );
        assert_eq!(
            catalog.pop_state("t", "g", q).await.unwrap(),
            PopQueueState::default()
        );
        let new = catalog.get_group_stored("t", "g").await.unwrap().unwrap();
        assert!(catalog.commit_pop(&new, q, &receive, always).await.unwrap());
        assert_eq!(catalog.pop_state("t", "g", q).await.unwrap().cursor, 1);
    }
}
