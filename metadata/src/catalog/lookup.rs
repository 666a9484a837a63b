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
    /// `false` (nothing written) when a replaced run is no longer there:
    /// another node took it over, or it was replaced already.
    pub async fn commit_index_run(
        &self,
        node: &str,
        run: Option<(u64, &IndexRunRecord)>,
        marks: &[(QueueKey, u64)],
        replaced: &[u64],
    ) -> Result<bool, CatalogError> {
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
            let key = keys::index_run(node, id)?;
            txn = txn.check(Check::Present { key: key.clone() }).delete(key);
        }
        Ok(self.store.commit(txn).await? == TxnOutcome::Committed)
    }

    /// Moves `runs` (of nodes that left or were adopted, or whose record
    /// was pruned since, which nobody else maintains) under `node`, each to
    /// the new id given with it, naming the same object; `node` then
    /// merges, drops and sweeps them as its own. Runs of a node whose
    /// record is not gone (it rejoined) stay. A page of which any run was
    /// taken or replaced meanwhile, or whose node's record changed (or
    /// appeared), is skipped. Returns how many runs moved.
    pub async fn take_index_runs(
        &self,
        node: &str,
        runs: &[(IndexRun, u64)],
    ) -> Result<usize, CatalogError> {
        // The records of the gone nodes taken from, as read: every take is
        // conditioned on its node's record staying as it was.
        let mut gone: HashMap<&str, Check> = HashMap::new();
        for (run, _) in runs {
            if gone.contains_key(run.node.as_str()) {
                continue;
            }
            let key = keys::node(&run.node)?;
            match self.get_record::<crate::NodeRecord>(&key).await? {
                Some((record, raw)) if record.is_gone() => {
                    gone.insert(&run.node, Check::ValueEquals { key, value: raw });
                }
                Some(_) => {}
                None => {
                    gone.insert(&run.node, Check::Absent { key });
                }
            }
        }
        let runs: Vec<&(IndexRun, u64)> = runs
            .iter()
            .filter(|(run, _)| gone.contains_key(run.node.as_str()))
            .collect();
        let mut moved = 0;
        for page in runs.chunks(TAKE_PAGE) {
            let mut txn = Txn::new();
            let mut nodes: Vec<&str> = page.iter().map(|(run, _)| run.node.as_str()).collect();
            nodes.sort_unstable();
            nodes.dedup();
            for check in nodes.iter().filter_map(|n| gone.get(n)) {
                txn = txn.check(check.clone());
            }
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

    /// Registers `node` and marks it left.
    async fn gone_node(catalog: &Catalog, node: &str) {
        let draft = crate::NodeRecord {
            node: node.into(),
            identity: format!("{node}-dir"),
            data_dir: "/d".into(),
            grpc_addr: "127.0.0.1:1".into(),
            http_addr: "127.0.0.1:2".into(),
            started_ms: 0,
            expires_ms: 0,
            upload_lag_bytes: 0,
            state: crate::NodeState::Live,
        };
        let live = catalog.join_cluster(draft, 0, 60_000).await.unwrap();
        let left = crate::NodeRecord {
            state: crate::NodeState::Left { at_ms: 1 },
            ..live.clone()
        };
        catalog.update_node(&live, left).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_node_takes_over_the_runs_of_another_once() {
        let catalog = Catalog::new(MemoryStore::new());
        gone_node(&catalog, "gone").await;
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
    async fn the_runs_of_a_node_that_is_not_gone_stay() {
        let catalog = Catalog::new(MemoryStore::new());
        catalog
            .commit_index_run("back", Some((1, &record("index/back/1.idx"))), &[], &[])
            .await
            .unwrap();
        let runs: Vec<(IndexRun, u64)> = catalog
            .index_runs()
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r, 9))
            .collect();
        gone_node(&catalog, "back").await;
        // Back again (a restart of its directory takes its record back).
        let back = catalog.cluster_node("back").await.unwrap().unwrap();
        let rejoined = catalog.join_cluster(back, 10, 60_000).await.unwrap();
        assert!(!rejoined.is_gone());
        assert_eq!(catalog.take_index_runs("n1", &runs).await.unwrap(), 0);
        let left = crate::NodeRecord {
            state: crate::NodeState::Left { at_ms: 20 },
            ..rejoined.clone()
        };
        catalog.update_node(&rejoined, left).await.unwrap().unwrap();
        assert_eq!(catalog.take_index_runs("n1", &runs).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_merge_whose_inputs_are_gone_commits_nothing() {
        let catalog = Catalog::new(MemoryStore::new());
        catalog
            .commit_index_run("n1", Some((1, &record("r1"))), &[], &[])
            .await
            .unwrap();
        assert!(
            !catalog
                .commit_index_run("n1", Some((2, &record("r2"))), &[], &[1, 7])
                .await
                .unwrap()
        );
        let objects: Vec<String> = catalog
            .index_runs()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.record.object)
            .collect();
        assert_eq!(objects, ["r1"]);
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
