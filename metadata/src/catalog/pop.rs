//! Consumption by message (POP): per (tenant, group, queue) a cursor — the
//! first offset never handed to the group — and one record per in-flight
//! message (received, not yet acknowledged). Every receive, acknowledgement
//! and visibility change is one transaction, so POP state survives a
//! restart exactly as it was acknowledged to clients.
//!
//! A reset ([`Catalog::reset_group`]) moves the group's committed offsets
//! and its cursors at once, and records where it put each cursor as the
//! queue's floor. Every in-flight record is then outside `[floor, cursor)`
//! (below the new cursor's start, or at or past it): such a record is from
//! before the reset, and [`Catalog::pop_state`] hands it back as stale, to
//! be deleted, instead of in flight. So a reset costs a few keys per queue
//! however many messages were in flight.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_common::{QueueKey, TopicId};

use super::{Catalog, CatalogError, OffsetCommit, StoredGroup, decode, encode, keys};
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
    /// Where the group's last reset put the cursor (`None`: never reset).
    pub floor: Option<u64>,
    /// Records from before the last reset (outside `[floor, cursor)`),
    /// still stored: nothing is delivered or acknowledged from them.
    pub stale: BTreeMap<u64, InflightRecord>,
}

/// Where a group receives on one queue (see [`Catalog::pop_positions`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PopPosition {
    /// The first offset never handed to the group.
    pub cursor: u64,
    /// Received and not yet acknowledged.
    pub in_flight: u64,
    /// FIFO messages the cursor passed that wait for an earlier message of
    /// their message group: not delivered yet.
    pub waiting: u64,
}

/// Where a reset moves a group's cursor on one queue.
#[derive(Debug, Clone)]
pub struct CursorReset {
    pub queue: QueueKey,
    /// The cursor as this node holds it; the reset fails if it moved.
    pub old: u64,
    pub new: u64,
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
        let cursor_key = keys::pop_cursor(tenant, group, queue)?;
        let cursor = match self.store.get(&cursor_key).await? {
            Some(raw) => parse_offset(&cursor_key, &raw)?,
            None => 0,
        };
        let floor_key = keys::pop_floor(tenant, group, queue)?;
        let floor = match self.store.get(&floor_key).await? {
            Some(raw) => Some(parse_offset(&floor_key, &raw)?),
            None => None,
        };
        let prefix = keys::pop_flight_prefix(tenant, group, queue)?;
        let mut inflight = BTreeMap::new();
        let mut stale = BTreeMap::new();
        for (key, value) in self.scan_all(&prefix).await? {
            let offset = key
                .get(prefix.len()..)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| MetaError::Corrupt {
                    key: keys::display(&key),
                    reason: "in-flight key has no offset".into(),
                })?;
            let record = decode(&key, &value)?;
            if in_flight_now(offset, cursor, floor) {
                inflight.insert(offset, record);
            } else {
                stale.insert(offset, record);
            }
        }
        Ok(PopQueueState {
            cursor,
            inflight,
            floor,
            stale,
        })
    }

    /// Resets a group on several queues of one topic at once: `commits`
    /// become its committed offsets and `cursors` its POP cursors (each
    /// also the queue's floor), in one transaction guarded by the group
    /// being the one read, each queue owner's check (in `commits`) and
    /// each cursor being where this node holds it. `Ok(false)`, writing
    /// nothing, if a guard failed. In-flight records are left for the
    /// caller to delete: from now on they read as stale.
    pub async fn reset_group(
        &self,
        group: &StoredGroup,
        topic_id: TopicId,
        commits: &[OffsetCommit],
        cursors: &[CursorReset],
        now_ms: i64,
    ) -> Result<bool, CatalogError> {
        let (tenant, name) = (&group.tenant, &group.name);
        let mut txn = Txn::new().check(group.fence.clone());
        for c in commits {
            let (key, value) = super::groups::offset_put(tenant, name, topic_id, c, now_ms)?;
            txn = txn.check(c.fence.clone()).put(key, value);
        }
        for c in cursors {
            let key = keys::pop_cursor(tenant, name, c.queue)?;
            txn = txn.check(cursor_is(&key, c.old));
            // A cursor of 0 is never written; the floor says it was reset.
            txn = if c.new == 0 {
                txn.delete(key)
            } else {
                txn.put(key, c.new.to_string().into_bytes())
            };
            let floor = keys::pop_floor(tenant, name, c.queue)?;
            txn = txn.put(floor, c.new.to_string().into_bytes());
        }
        Ok(self.store.commit(txn).await? == TxnOutcome::Committed)
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
            txn = txn.check(cursor_is(&key, old));
            // Cursors only grow here, so the new one is never 0.
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

    /// Where `group` receives on every queue it has POP state on: its
    /// cursor, how many messages are in flight (received, not yet
    /// acknowledged; records a reset left stale are not counted) and how
    /// many FIFO messages wait behind their group's. For
    /// describing a group: one scan of its keys, however many queues.
    pub async fn pop_positions(
        &self,
        tenant: &str,
        group: &str,
    ) -> Result<BTreeMap<QueueKey, PopPosition>, CatalogError> {
        let [cursors, floors, flights] = keys::pop_group_prefixes(tenant, group)?;
        let mut out: BTreeMap<QueueKey, PopPosition> = BTreeMap::new();
        for (key, raw) in self.scan_all(&cursors).await? {
            let (queue, _) = queue_in_key(&key, cursors.len())?;
            out.entry(queue).or_default().cursor = parse_offset(&key, &raw)?;
        }
        let mut floor_of = BTreeMap::new();
        for (key, raw) in self.scan_all(&floors).await? {
            let (queue, _) = queue_in_key(&key, floors.len())?;
            floor_of.insert(queue, parse_offset(&key, &raw)?);
        }
        for (key, raw) in self.scan_all(&flights).await? {
            let (queue, offset) = queue_in_key(&key, flights.len())?;
            let offset = offset.ok_or_else(|| MetaError::Corrupt {
                key: keys::display(&key),
                reason: "in-flight key has no offset".into(),
            })?;
            let position = out.entry(queue).or_default();
            if in_flight_now(offset, position.cursor, floor_of.get(&queue).copied()) {
                let record: InflightRecord = decode(&key, &raw)?;
                if record.attempt == 0 {
                    position.waiting += 1;
                } else {
                    position.in_flight += 1;
                }
            }
        }
        Ok(out)
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

/// Holds while the cursor at `key` is `cursor`. A cursor of 0 is never
/// written, so "absent" means 0.
fn cursor_is(key: &[u8], cursor: u64) -> Check {
    if cursor == 0 {
        Check::Absent { key: key.to_vec() }
    } else {
        Check::ValueEquals {
            key: key.to_vec(),
            value: cursor.to_string().into_bytes(),
        }
    }
}

/// Whether an in-flight record at `offset` is from the current delivery
/// round, inside `[floor, cursor)`; outside, a reset left it stale.
fn in_flight_now(offset: u64, cursor: u64, floor: Option<u64>) -> bool {
    offset < cursor && floor.is_none_or(|f| offset >= f)
}

/// The queue a POP key names after its group prefix (`prefix_len` bytes):
/// `<topic_id:020>/<queue:010>`, then `/<offset>` for in-flight records.
fn queue_in_key(key: &[u8], prefix_len: usize) -> Result<(QueueKey, Option<u64>), MetaError> {
    let corrupt = || MetaError::Corrupt {
        key: keys::display(key),
        reason: "POP key does not name a queue".into(),
    };
    let rest = key
        .get(prefix_len..)
        .and_then(|r| std::str::from_utf8(r).ok())
        .ok_or_else(corrupt)?;
    let mut parts = rest.split('/');
    let topic: TopicId = parts
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(corrupt)?;
    let queue: u32 = parts
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(corrupt)?;
    let offset = match parts.next() {
        Some(p) => Some(p.parse().map_err(|_| corrupt())?),
        None => None,
    };
    Ok((QueueKey { topic, queue }, offset))
}

fn parse_offset(key: &[u8], raw: &[u8]) -> Result<u64, MetaError> {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| MetaError::Corrupt {
            key: keys::display(key),
            reason: "POP cursor or floor is not a number".into(),
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
