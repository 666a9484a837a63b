//! The message index's records: its runs in object storage and how far it
//! reaches per queue.
//!
//! The entries themselves (message id or key → queue, offset) live in runs,
//! immutable objects (`strata_objects::index_run`); the catalog holds one
//! record per run (`msg-run/`) and a mark per queue (`msg-mark/`) saying
//! where the runs end, so the indexer resumes there after a restart. A run
//! and the marks it moves are committed together. Until the index moved to
//! object storage it kept two or three keys per message here (`msg-pos/`,
//! `msg-id/`, `msg-key/`); [`Catalog::drop_legacy_index`] removes them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use strata_common::{QueueKey, TopicId};

use super::keys;
use super::{Catalog, CatalogError, decode, encode};
use crate::store::{Check, MetaError, Txn, TxnOutcome, prefix_end};

/// One run of the message index, as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRunRecord {
    /// The object's key in the object store.
    pub object: String,
    /// The object's length in bytes.
    pub bytes: u64,
    pub entries: u64,
    pub created_ms: i64,
}

/// A run record with the node that wrote it (and merges it) and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRun {
    pub node: String,
    pub id: u64,
    pub record: IndexRunRecord,
}

/// Keys deleted per transaction when dropping keys by prefix.
const DROP_PAGE: usize = 1000;
/// Runs moved per transaction when a node takes over another's (two
/// writes each, well under etcd's default of 128 operations).
const TAKE_PAGE: usize = 32;

impl Catalog {
    /// Records a new run written by `node` and, in the same transaction,
    /// moves the marks of the queues it covers (queue, first offset not
    /// covered) and forgets the runs it replaces (a merge's inputs).
    pub async fn commit_index_run(
        &self,
        node: &str,
        run: Option<(u64, &IndexRunRecord)>,
        marks: &[(QueueKey, u64)],
        replaced: &[u64],
    ) -> Result<(), CatalogError> {
        let mut txn = Txn::new();
        if let Some((id, record)) = run {
            let key = keys::index_run(node, id)?;
            txn = txn.put(key.clone(), encode(&key, record)?);
        }
        for &(queue, next) in marks {
            let key = keys::index_mark(queue);
            txn = txn.put(key.clone(), encode(&key, &next)?);
        }
        for &id in replaced {
            txn = txn.delete(keys::index_run(node, id)?);
        }
        self.store.commit(txn).await?;
        Ok(())
    }

    /// Moves `runs` (of nodes that left or were adopted, which nobody
    /// else maintains) under `node`, each to the new id given with it,
    /// naming the same object; `node` then merges, drops and sweeps them as
    /// its own. A page of which any run was taken or replaced meanwhile is
    /// skipped. Returns how many runs moved.
    pub async fn take_index_runs(
        &self,
        node: &str,
        runs: &[(IndexRun, u64)],
    ) -> Result<usize, CatalogError> {
        let mut moved = 0;
        for page in runs.chunks(TAKE_PAGE) {
            let mut txn = Txn::new();
            for (run, id) in page {
                let old = keys::index_run(&run.node, run.id)?;
                let new = keys::index_run(node, *id)?;
                txn = txn
                    .check(Check::Present { key: old.clone() })
                    .check(Check::Absent { key: new.clone() })
                    .delete(old)
                    .put(new.clone(), encode(&new, &run.record)?);
            }
            if self.store.commit(txn).await? == TxnOutcome::Committed {
                moved += page.len();
            }
        }
        Ok(moved)
    }

    /// Every run of every node.
    pub async fn index_runs(&self) -> Result<Vec<IndexRun>, CatalogError> {
        let mut out = Vec::new();
        for (key, value) in self.scan_all(keys::ALL_INDEX_RUNS).await? {
            let (node, id) = keys::parse_index_run(&key).ok_or_else(|| MetaError::Corrupt {
                key: keys::display(&key),
                reason: "not msg-run/<node>/<run id>".into(),
            })?;
            out.push(IndexRun {
                node,
                id,
                record: decode(&key, &value)?,
            });
        }
        Ok(out)
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

    /// Deletes the marks of a deleted topic (its entries leave the runs when
    /// they are merged or expire).
    pub async fn drop_index(&self, topic: TopicId) -> Result<(), CatalogError> {
        self.delete_prefix(&keys::topic_index_marks(topic)).await
    }

    /// Drops the index as kept before it moved to object storage, with
    /// every mark (so the indexer starts over from each queue's first
    /// message). Returns whether there was one.
    pub async fn drop_legacy_index(&self) -> Result<bool, CatalogError> {
        let mut found = false;
        for prefix in keys::LEGACY_INDEX_PREFIXES {
            found |= !self
                .store
                .scan(prefix, &prefix_end(prefix), 1)
                .await?
                .is_empty();
        }
        if found {
            for prefix in keys::LEGACY_INDEX_PREFIXES {
                self.delete_prefix(prefix).await?;
            }
            self.delete_prefix(keys::ALL_INDEX_MARKS).await?;
        }
        Ok(found)
    }

    async fn delete_prefix(&self, prefix: &[u8]) -> Result<(), CatalogError> {
        loop {
            let page = self
                .store
                .scan(prefix, &prefix_end(prefix), DROP_PAGE)
                .await?;
            if page.is_empty() {
                return Ok(());
            }
            let txn = page
                .into_iter()
                .fold(Txn::new(), |txn, (key, _)| txn.delete(key));
            self.store.commit(txn).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use crate::store::MetaStore;

    fn record(object: &str) -> IndexRunRecord {
        IndexRunRecord {
            object: object.into(),
            bytes: 100,
            entries: 3,
            created_ms: 5,
        }
    }

    #[tokio::test]
    async fn runs_and_marks_commit_together_and_merges_replace_runs() {
        let catalog = Catalog::new(MemoryStore::new());
        let (a, b) = (QueueKey::new(7, 0), QueueKey::new(8, 1));
        catalog
            .commit_index_run("n1", Some((1, &record("r1"))), &[(a, 10), (b, 4)], &[])
            .await
            .unwrap();
        catalog
            .commit_index_run("n1", Some((2, &record("r2"))), &[(a, 12)], &[])
            .await
            .unwrap();
        catalog
            .commit_index_run("n2", Some((1, &record("other"))), &[], &[])
            .await
            .unwrap();
        let marks = catalog.index_marks().await.unwrap();
        assert_eq!((marks[&a], marks[&b]), (12, 4));
        let runs = catalog.index_runs().await.unwrap();
        let names: Vec<(&str, u64)> = runs.iter().map(|r| (r.node.as_str(), r.id)).collect();
        assert_eq!(names, [("n1", 1), ("n1", 2), ("n2", 1)]);

        // A merge of n1's two runs replaces them and leaves n2's.
        catalog
            .commit_index_run("n1", Some((3, &record("r3"))), &[], &[1, 2])
            .await
            .unwrap();
        let runs = catalog.index_runs().await.unwrap();
        let objects: Vec<&str> = runs.iter().map(|r| r.record.object.as_str()).collect();
        assert_eq!(objects, ["r3", "other"]);

        catalog.drop_index(7).await.unwrap();
        let marks = catalog.index_marks().await.unwrap();
        assert_eq!(marks.keys().collect::<Vec<_>>(), [&b]);
        assert!(
            catalog
                .commit_index_run("a/b", None, &[], &[1])
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_node_takes_over_the_runs_of_another_once() {
        let catalog = Catalog::new(MemoryStore::new());
        for (id, object) in [(1, "index/gone/1.idx"), (2, "index/gone/2.idx")] {
            catalog
                .commit_index_run("gone", Some((id, &record(object))), &[], &[])
                .await
                .unwrap();
        }
        let runs = catalog.index_runs().await.unwrap();
        let take: Vec<(IndexRun, u64)> = runs.iter().cloned().zip([10, 11]).collect();
        assert_eq!(catalog.take_index_runs("n1", &take).await.unwrap(), 2);
        let taken: Vec<(String, u64, String)> = catalog
            .index_runs()
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.node, r.id, r.record.object))
            .collect();
        assert_eq!(
            taken,
            [
                ("n1".to_string(), 10, "index/gone/1.idx".to_string()),
                ("n1".to_string(), 11, "index/gone/2.idx".to_string())
            ]
        );
        // A second taker, working from the same listing, moves nothing.
        let again: Vec<(IndexRun, u64)> = runs.into_iter().zip([20, 21]).collect();
        assert_eq!(catalog.take_index_runs("n2", &again).await.unwrap(), 0);
        assert_eq!(catalog.index_runs().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn the_legacy_index_and_every_mark_go_on_upgrade() {
        let store = MemoryStore::new();
        let catalog = Catalog::new(store.clone());
        assert!(!catalog.drop_legacy_index().await.unwrap());
        catalog
            .commit_index_run("n1", None, &[(QueueKey::new(7, 0), 3)], &[])
            .await
            .unwrap();
        assert!(
            !catalog.drop_legacy_index().await.unwrap(),
            "marks alone stay"
        );
        let legacy = Txn::new()
            .put(
                b"msg-pos/00000000000000000007/0000000000/00000000000000000000".to_vec(),
                b"{}".to_vec(),
            )
            .put(
                b"msg-id/00000000000000000007/0003m-1/0000000000/00000000000000000000".to_vec(),
                Vec::new(),
            );
        store.commit(legacy).await.unwrap();
        assert!(catalog.drop_legacy_index().await.unwrap());
        for prefix in [&b"msg-pos/"[..], b"msg-id/", b"msg-mark/"] {
            assert!(
                store
                    .scan(prefix, &prefix_end(prefix), 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
    }
}
