//! The message index: message id and key → (queue, offset), so a message
//! can be found without knowing where it was stored.
//!
//! Per indexed message there is one position key (`msg-pos/`, in offset
//! order, naming its id and key) and one entry per id and key (`msg-id/`,
//! `msg-key/`). Lookups scan the entries of one id or key; retention walks
//! positions below a queue's first offset and deletes what they name. A
//! per-queue mark (`msg-mark/`) says how far the index reaches, so the
//! indexer resumes there after a restart and lookups scan only the
//! messages past it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use strata_common::{QueueKey, TopicId};

use super::keys::{self, IndexKind};
use super::{Catalog, CatalogError, decode, encode};
use crate::store::{MetaError, Txn, prefix_end};

/// What the index records about one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedMessage {
    #[serde(skip)]
    pub queue: u32,
    #[serde(skip)]
    pub offset: u64,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Keys deleted per transaction when dropping a topic's index.
const DROP_PAGE: usize = 1000;

impl Catalog {
    /// Adds `messages` of `topic` to the index and moves the queues' marks
    /// to `marks` (queue, first offset not covered), in one transaction.
    pub async fn index_messages(
        &self,
        topic: TopicId,
        messages: &[IndexedMessage],
        marks: &[(u32, u64)],
    ) -> Result<(), CatalogError> {
        let mut txn = Txn::new();
        for m in messages {
            let queue = QueueKey::new(topic, m.queue);
            let position = keys::index_position(queue, m.offset);
            txn = txn.put(position.clone(), encode(&position, m)?);
            txn = txn.put(keys::index_entry(IndexKind::Id, queue, &m.id, m.offset), []);
            if let Some(key) = &m.key {
                txn = txn.put(keys::index_entry(IndexKind::Key, queue, key, m.offset), []);
            }
        }
        for &(queue, next) in marks {
            let key = keys::index_mark(QueueKey::new(topic, queue));
            txn = txn.put(key.clone(), encode(&key, &next)?);
        }
        self.store.commit(txn).await?;
        Ok(())
    }

    /// Every queue's index mark.
    pub async fn index_marks(&self) -> Result<HashMap<QueueKey, u64>, CatalogError> {
        let mut out = HashMap::new();
        for (key, value) in self.scan_all(keys::ALL_INDEX_MARKS).await? {
            let queue = keys::parse_index_mark(&key).ok_or_else(|| MetaError::Corrupt {
                key: keys::display(&key),
                reason: "not msg-mark/<topic>/<queue>".into(),
            })?;
            out.insert(queue, decode(&key, &value)?);
        }
        Ok(out)
    }

    /// Up to `limit` (queue, offset) pairs of messages of `topic` whose id
    /// or key is `value`, in (queue, offset) order.
    pub async fn find_messages(
        &self,
        kind: IndexKind,
        topic: TopicId,
        value: &str,
        limit: usize,
    ) -> Result<Vec<(u32, u64)>, CatalogError> {
        let prefix = keys::index_entry_prefix(kind, topic, value);
        let page = self
            .store
            .scan(&prefix, &prefix_end(&prefix), limit.max(1))
            .await?;
        page.iter()
            .map(|(key, _)| {
                keys::parse_index_entry(key).ok_or_else(|| {
                    CatalogError::Meta(MetaError::Corrupt {
                        key: keys::display(key),
                        reason: "index entry does not end in <queue>/<offset>".into(),
                    })
                })
            })
            .collect()
    }

    /// Deletes the index entries of up to `limit` messages of `queue` below
    /// offset `below` (retention removed them); returns how many.
    pub async fn prune_index(
        &self,
        queue: QueueKey,
        below: u64,
        limit: usize,
    ) -> Result<usize, CatalogError> {
        let start = keys::index_position_prefix(queue);
        let end = keys::index_position(queue, below);
        let page = self.store.scan(&start, &end, limit.max(1)).await?;
        let mut txn = Txn::new();
        for (key, value) in &page {
            let m: IndexedMessage = decode(key, value)?;
            let offset = key
                .get(start.len()..)
                .and_then(|t| std::str::from_utf8(t).ok())
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| MetaError::Corrupt {
                    key: keys::display(key),
                    reason: "index position does not end in an offset".into(),
                })?;
            txn = txn.delete(key.clone()).delete(keys::index_entry(
                IndexKind::Id,
                queue,
                &m.id,
                offset,
            ));
            if let Some(k) = &m.key {
                txn = txn.delete(keys::index_entry(IndexKind::Key, queue, k, offset));
            }
        }
        if !page.is_empty() {
            self.store.commit(txn).await?;
        }
        Ok(page.len())
    }

    /// Deletes the whole index of a deleted topic, page by page.
    pub async fn drop_index(&self, topic: TopicId) -> Result<(), CatalogError> {
        for prefix in keys::topic_index_prefixes(topic) {
            loop {
                let page = self
                    .store
                    .scan(&prefix, &prefix_end(&prefix), DROP_PAGE)
                    .await?;
                if page.is_empty() {
                    break;
                }
                let txn = page
                    .into_iter()
                    .fold(Txn::new(), |txn, (key, _)| txn.delete(key));
                self.store.commit(txn).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    fn message(queue: u32, offset: u64, id: &str, key: Option<&str>) -> IndexedMessage {
        IndexedMessage {
            queue,
            offset,
            id: id.into(),
            key: key.map(str::to_string),
        }
    }

    #[tokio::test]
    async fn messages_are_found_by_id_and_key_until_pruned_or_dropped() {
        let catalog = Catalog::new(MemoryStore::new());
        let batch = [
            message(0, 0, "id-a", Some("order/1")),
            message(0, 1, "id-b", Some("order")),
            message(1, 0, "id-c", Some("order")),
            // A duplicate id (a producer retry) is found twice.
            message(1, 1, "id-a", None),
        ];
        catalog
            .index_messages(7, &batch, &[(0, 2), (1, 2)])
            .await
            .unwrap();
        catalog
            .index_messages(8, &[message(0, 0, "id-b", Some("order"))], &[(0, 1)])
            .await
            .unwrap();
        let find = |kind, topic, value: &'static str| {
            let catalog = catalog.clone();
            async move { catalog.find_messages(kind, topic, value, 10).await.unwrap() }
        };
        assert_eq!(find(IndexKind::Id, 7, "id-a").await, vec![(0, 0), (1, 1)]);
        // "order" does not match "order/1", whose prefix it is.
        assert_eq!(find(IndexKind::Key, 7, "order").await, vec![(0, 1), (1, 0)]);
        assert_eq!(find(IndexKind::Key, 7, "order/1").await, vec![(0, 0)]);
        assert_eq!(find(IndexKind::Key, 7, "id-a").await, vec![]);
        assert_eq!(find(IndexKind::Id, 8, "id-b").await, vec![(0, 0)]);
        assert_eq!(
            catalog
                .find_messages(IndexKind::Id, 7, "id-a", 1)
                .await
                .unwrap(),
            vec![(0, 0)]
        );
        let marks = catalog.index_marks().await.unwrap();
        assert_eq!(marks.get(&QueueKey::new(7, 1)), Some(&2));
        assert_eq!(marks.get(&QueueKey::new(8, 0)), Some(&1));

        // Retention removed offset 0 of topic 7's queue 0.
        assert_eq!(
            catalog
                .prune_index(QueueKey::new(7, 0), 1, 100)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            catalog
                .prune_index(QueueKey::new(7, 0), 1, 100)
                .await
                .unwrap(),
            0
        );
        assert_eq!(find(IndexKind::Id, 7, "id-a").await, vec![(1, 1)]);
        assert_eq!(find(IndexKind::Key, 7, "order/1").await, vec![]);
        assert_eq!(find(IndexKind::Key, 7, "order").await, vec![(0, 1), (1, 0)]);

        catalog.drop_index(7).await.unwrap();
        assert_eq!(find(IndexKind::Key, 7, "order").await, vec![]);
        assert!(
            !catalog
                .index_marks()
                .await
                .unwrap()
                .contains_key(&QueueKey::new(7, 0))
        );
        // Another topic's index is untouched.
        assert_eq!(find(IndexKind::Key, 8, "order").await, vec![(0, 0)]);
    }
}
