//! Queue ownership with fencing epochs.
//!
//! A node claims a queue by writing `owner/<topic>/<queue>` with the previous
//! epoch + 1, conditional on the previous value, so concurrent claimers are
//! serialized and each claim gets a distinct, increasing epoch. A node then
//! adds [`Catalog::owner_check`] to its own metadata commits: once another
//! node claims the queue, those commits fail their check instead of
//! overwriting the new owner's state.

use std::collections::{HashMap, HashSet};

use strata_common::{QueueKey, TopicId};

use super::{
    Catalog, CatalogError, MAX_ATTEMPTS, NodeRecord, NodeState, OwnerRecord, decode, keys,
};
use crate::store::{Check, MetaError, Txn, TxnOutcome};

/// The canonical bytes of an owner record. Built by hand rather than by
/// serde so the bytes [`Catalog::owner_check`] compares can never drift from
/// what [`Catalog::claim_queue`] wrote (e.g. through serde_json feature
/// changes); the format is the same JSON serde would produce, and decoding
/// uses serde.
fn encode_owner(owner: &OwnerRecord) -> Vec<u8> {
    let node = serde_json::Value::String(owner.node.clone());
    format!("{{\"node\":{node},\"epoch\":{}}}", owner.epoch).into_bytes()
}

impl Catalog {
    /// Makes `node` the owner of `key` with the next epoch (previous + 1, or
    /// 1 for a first claim). Always takes over: a current owner is fenced,
    /// not consulted.
    pub async fn claim_queue(
        &self,
        key: QueueKey,
        node: &str,
    ) -> Result<OwnerRecord, CatalogError> {
        let owner_key = keys::owner(key);
        for _ in 0..MAX_ATTEMPTS {
            let previous = self.get_record::<OwnerRecord>(&owner_key).await?;
            let mut txn = Txn::new();
            let (epoch, check) = match previous {
                Some((prev, raw)) => {
                    if !self.lost_nodes([&prev]).await?.is_empty() {
                        let (key, value) = self.resume_after_lost(key).await?;
                        txn = txn.put(key, value);
                    }
                    (
                        prev.epoch.saturating_add(1),
                        Check::ValueEquals {
                            key: owner_key.clone(),
                            value: raw,
                        },
                    )
                }
                None => (
                    1,
                    Check::Absent {
                        key: owner_key.clone(),
                    },
                ),
            };
            let record = OwnerRecord {
                node: node.to_string(),
                epoch,
            };
            let txn = txn
                .check(check)
                .put(owner_key.clone(), encode_owner(&record));
            if self.store.commit(txn).await? == TxnOutcome::Committed {
                tracing::debug!(queue = %key, node, epoch, "claimed queue");
                return Ok(record);
            }
        }
        Err(CatalogError::Conflict(format!(
            "claiming queue {key}: other claimers kept winning"
        )))
    }

    /// Claims queues `0..queues` of `topic` for `node` in one transaction
    /// (each epoch = its previous + 1, or 1), so opening a topic with
    /// thousands of queues costs one metadata commit, not one per queue.
    pub async fn claim_topic_queues(
        &self,
        topic: TopicId,
        queues: u32,
        node: &str,
    ) -> Result<Vec<OwnerRecord>, CatalogError> {
        for _ in 0..MAX_ATTEMPTS {
            let mut previous: HashMap<Vec<u8>, (OwnerRecord, Vec<u8>)> = HashMap::new();
            for (key, raw) in self.scan_all(&keys::owner_prefix(topic)).await? {
                let record: OwnerRecord = decode(&key, &raw)?;
                previous.insert(key, (record, raw));
            }
            let lost = self.lost_nodes(previous.values().map(|(r, _)| r)).await?;
            let mut txn = Txn::new();
            let mut claimed = Vec::with_capacity(queues as usize);
            for q in 0..queues {
                let owner_key = keys::owner(QueueKey::new(topic, q));
                let (epoch, check) = match previous.remove(&owner_key) {
                    Some((prev, raw)) => {
                        if lost.contains(&prev.node) {
                            let queue = QueueKey::new(topic, q);
                            let (key, value) = self.resume_after_lost(queue).await?;
                            txn = txn.put(key, value);
                        }
                        (
                            prev.epoch.saturating_add(1),
                            Check::ValueEquals {
                                key: owner_key.clone(),
                                value: raw,
                            },
                        )
                    }
                    None => (
                        1,
                        Check::Absent {
                            key: owner_key.clone(),
                        },
                    ),
                };
                let record = OwnerRecord {
                    node: node.to_string(),
                    epoch,
                };
                txn = txn.check(check).put(owner_key, encode_owner(&record));
                claimed.push(record);
            }
            if self.store.commit(txn).await? == TxnOutcome::Committed {
                tracing::debug!(topic, queues, node, "claimed topic queues");
                return Ok(claimed);
            }
        }
        Err(CatalogError::Conflict(format!(
            "claiming the queues of topic {topic}: other claimers kept winning"
        )))
    }

    /// Which of the nodes owning `owners` were declared lost: their
    /// queues go on past a gap when claimed (see `floors`).
    async fn lost_nodes<'a>(
        &self,
        owners: impl IntoIterator<Item = &'a OwnerRecord>,
    ) -> Result<HashSet<String>, CatalogError> {
        let nodes: HashSet<&str> = owners.into_iter().map(|o| o.node.as_str()).collect();
        let mut lost = HashSet::new();
        for node in nodes {
            let Ok(key) = keys::node(node) else {
                continue;
            };
            if let Some((record, _)) = self.get_record::<NodeRecord>(&key).await?
                && matches!(record.state, NodeState::Lost { .. })
            {
                lost.insert(node.to_string());
            }
        }
        Ok(lost)
    }

    /// The current owner of `key`, if it was ever claimed.
    pub async fn owner(&self, key: QueueKey) -> Result<Option<OwnerRecord>, CatalogError> {
        Ok(self
            .get_record(&keys::owner(key))
            .await?
            .map(|(record, _)| record))
    }

    /// The owner of every queue ever claimed (a process that does not own
    /// queues, such as a separate compactor, learns whose they are).
    pub async fn all_owners(&self) -> Result<HashMap<QueueKey, OwnerRecord>, CatalogError> {
        let mut out = HashMap::new();
        for (key, value) in self.scan_all(keys::ALL_OWNERS).await? {
            let queue = keys::parse_owner(&key).ok_or_else(|| MetaError::Corrupt {
                key: keys::display(&key),
                reason: "an owner key that names no queue".into(),
            })?;
            out.insert(queue, decode::<OwnerRecord>(&key, &value)?);
        }
        Ok(out)
    }

    /// A check that holds only while `owner` is still the owner of `key` at
    /// the same epoch; add it to a [`Txn`] to fence that commit.
    pub fn owner_check(&self, key: QueueKey, owner: &OwnerRecord) -> Check {
        Check::ValueEquals {
            key: keys::owner(key),
            value: encode_owner(owner),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_encoding_matches_serde() {
        let owner = OwnerRecord {
            node: "node-\"1\"\\\u{1}é".into(),
            epoch: 42,
        };
        let bytes = encode_owner(&owner);
        assert_eq!(bytes, serde_json::to_vec(&owner).unwrap());
        assert_eq!(
            serde_json::from_slice::<OwnerRecord>(&bytes).unwrap(),
            owner
        );
    }
}
