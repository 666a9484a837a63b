//! Pruning the registry records of nodes gone for long: without it a
//! cluster whose machines come and go under new ids lists every node it
//! ever had, and every balancing pass reads them all.
//!
//! Only a node that left or was adopted is pruned, and only once nothing
//! still names it:
//! - no tenant placement it holds unreleased (placing such a tenant elsewhere
//!   reads the holder's record);
//! - no serving lease it holds.
//!
//! Message index runs it left behind need no record: the next maintenance
//! pass of any node takes over the runs of unregistered nodes as it does
//! those of gone ones (`Catalog::take_index_runs`).
//!
//! Its `wal-checkpoint/<node>` goes with the record, so a new data
//! directory may take the id without mistaking the old one's checkpoint for
//! its own. The old directory, should it start again, puts the checkpoint
//! back from its own hand-over mark ([`Catalog::join_cluster_handed_over`]).
//! A `Lost` record is never pruned: it is what keeps a WAL given up from
//! being served again.

use std::collections::HashSet;

use super::{Catalog, CatalogError, NodeRecord, NodeState, ServingLease, TenantPlacement, keys};
use crate::store::{Check, Txn, TxnOutcome};

impl Catalog {
    /// Prunes the records (and WAL checkpoints) of the nodes that left or
    /// were adopted at least `retention_ms` before `now_ms` and that nothing
    /// names any more (see the module docs). Each prune is conditioned on
    /// the record as read, so a node rejoining meanwhile keeps its record.
    /// Returns the ids pruned.
    pub async fn prune_gone_nodes(
        &self,
        now_ms: i64,
        retention_ms: i64,
    ) -> Result<Vec<String>, CatalogError> {
        let cutoff = now_ms.saturating_sub(retention_ms);
        let mut candidates = Vec::new();
        for (key, raw) in self.scan_all(keys::ALL_NODES).await? {
            let record: NodeRecord = super::decode(&key, &raw)?;
            let at_ms = match record.state {
                NodeState::Left { at_ms } | NodeState::Adopted { at_ms, .. } => at_ms,
                NodeState::Live | NodeState::Lost { .. } => continue,
            };
            // 0: written before the time was kept; when is unknown.
            if at_ms > 0 && at_ms <= cutoff {
                candidates.push((record, key, raw));
            }
        }
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let mut named: HashSet<String> = self
            .scan_records::<TenantPlacement>(keys::ALL_PLACEMENTS)
            .await?
            .into_iter()
            .filter(|p| !p.released)
            .map(|p| p.node)
            .collect();
        if let Some((lease, _)) = self.get_record::<ServingLease>(keys::SERVING_LEASE).await?
            && !lease.released
        {
            named.insert(lease.node);
        }
        let mut pruned = Vec::new();
        for (record, key, raw) in candidates {
            if named.contains(&record.node) {
                continue;
            }
            let txn = Txn::new()
                .check(Check::ValueEquals {
                    key: key.clone(),
                    value: raw,
                })
                .delete(key)
                .delete(keys::wal_checkpoint(&record.node)?);
            if self.store.commit(txn).await? == TxnOutcome::Committed {
                tracing::info!(node = %record.node, gone_at_ms = record.gone_at_ms(), "pruned the registry record of a node gone past the retention");
                pruned.push(record.node);
            }
        }
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use crate::catalog::nodes::tests::draft;
    use crate::catalog::{ForgetRequest, IndexRunRecord, Placed};
    use strata_common::QueueKey;

    const TTL: i64 = 1_000;
    const RETENTION: i64 = 60_000;

    /// Joins `node` at 0, commits an upload to checkpoint 100 and marks it
    /// `state` (with `at_ms` given by the caller).
    async fn gone(c: &Catalog, node: &str, state: NodeState) {
        let live = c.join_cluster(draft(node, node), 0, TTL).await.unwrap();
        c.commit_upload(node, 100, &[], vec![]).await.unwrap();
        let next = NodeRecord {
            state,
            ..live.clone()
        };
        c.update_node(&live, next).await.unwrap().expect("marked");
    }

    async fn ids(c: &Catalog) -> Vec<String> {
        c.cluster_nodes()
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.node)
            .collect()
    }

    #[tokio::test]
    async fn only_nodes_gone_past_the_retention_are_pruned_with_their_checkpoints() {
        let c = Catalog::new(MemoryStore::new());
        gone(&c, "left-old", NodeState::Left { at_ms: 1_000 }).await;
        let adopted = NodeState::Adopted {
            by: "x".into(),
            at_ms: 2_000,
        };
        gone(&c, "adopted-old", adopted).await;
        gone(&c, "left-young", NodeState::Left { at_ms: 50_000 }).await;
        gone(&c, "left-undated", NodeState::Left { at_ms: 0 }).await;
        // Expired without leaving: its WAL waits for adoption.
        c.join_cluster(draft("expired", "expired"), 0, TTL)
            .await
            .unwrap();
        // Declared lost: the tombstone that keeps its WAL out.
        c.join_cluster(draft("lost", "lost"), 0, TTL).await.unwrap();
        let forgot = c
            .forget_node(ForgetRequest {
                node: "lost",
                by: "admin",
                now_ms: 2_000,
                margin_ms: 0,
                dry_run: false,
            })
            .await
            .unwrap();
        assert!(
            matches!(forgot, crate::Forget::Forgotten { .. }),
            "{forgot:?}"
        );

        let now = 62_000;
        let pruned = c.prune_gone_nodes(now, RETENTION).await.unwrap();
        assert_eq!(pruned, ["adopted-old", "left-old"]);
        assert_eq!(
            ids(&c).await,
            ["expired", "left-undated", "left-young", "lost"]
        );
        assert_eq!(c.wal_checkpoint("left-old").await.unwrap(), None);
        assert_eq!(c.wal_checkpoint("left-young").await.unwrap(), Some(100));
        // Nothing more to prune until the young one's time comes.
        assert!(c.prune_gone_nodes(now, RETENTION).await.unwrap().is_empty());
        let later = c.prune_gone_nodes(110_000, RETENTION).await.unwrap();
        assert_eq!(later, ["left-young"]);
    }

    #[tokio::test]
    async fn a_node_still_placed_is_kept_and_its_index_runs_outlive_its_record() {
        let c = Catalog::new(MemoryStore::new());
        let live = c.join_cluster(draft("a", "a"), 0, TTL).await.unwrap();
        let Placed::Here(placed) = c.place_tenant("t1", "a").await.unwrap() else {
            panic!("placed");
        };
        let run = IndexRunRecord {
            object: "index/a/1.idx".into(),
            bytes: 10,
            entries: 1,
            created_ms: 0,
        };
        c.commit_index_run("a", Some((1, &run)), &[(QueueKey::new(1, 0), 5)], &[])
            .await
            .unwrap();
        let left = NodeRecord {
            state: NodeState::Left { at_ms: 1_000 },
            ..live.clone()
        };
        c.update_node(&live, left).await.unwrap().expect("left");
        let now = 1_000 + RETENTION;
        assert!(c.prune_gone_nodes(now, RETENTION).await.unwrap().is_empty());
        assert!(c.release_tenant(&placed).await.unwrap());
        assert_eq!(c.prune_gone_nodes(now, RETENTION).await.unwrap(), ["a"]);
        // Its index run is taken over without a record, unless the id
        // registers again first.
        let runs = c.index_runs().await.unwrap();
        let take: Vec<_> = runs.into_iter().map(|r| (r, 7)).collect();
        c.join_cluster(draft("a", "new"), now, TTL).await.unwrap();
        assert_eq!(c.take_index_runs("b", &take).await.unwrap(), 0);
        let rejoined = live_record(&c, "a").await;
        let left = NodeRecord {
            state: NodeState::Left { at_ms: now },
            ..rejoined.clone()
        };
        c.update_node(&rejoined, left).await.unwrap().expect("left");
        c.prune_gone_nodes(now + RETENTION, RETENTION)
            .await
            .unwrap();
        assert_eq!(c.take_index_runs("b", &take).await.unwrap(), 1);
        let names: Vec<String> = c
            .index_runs()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.node)
            .collect();
        assert_eq!(names, ["b"]);
    }

    async fn live_record(c: &Catalog, node: &str) -> NodeRecord {
        c.cluster_node(node).await.unwrap().expect("registered")
    }

    #[tokio::test]
    async fn a_pruned_directory_comes_back_with_its_checkpoint_and_a_new_one_without() {
        let c = Catalog::new(MemoryStore::new());
        gone(&c, "a", NodeState::Left { at_ms: 1_000 }).await;
        assert_eq!(
            c.prune_gone_nodes(1_000 + RETENTION, RETENTION)
                .await
                .unwrap(),
            ["a"]
        );

        // The same directory, whose mark says it handed over up to 100.
        let back = c
            .join_cluster_handed_over(draft("a", "a"), 70_000, TTL, Some(100))
            .await
            .unwrap();
        assert_eq!(back.state, NodeState::Live);
        assert_eq!(c.wal_checkpoint("a").await.unwrap(), Some(100));
        // A record that was never pruned keeps its own checkpoint: the mark
        // is only read when the record is gone.
        c.commit_upload("a", 250, &[], vec![]).await.unwrap();
        let held = live_record(&c, "a").await;
        let left = NodeRecord {
            state: NodeState::Left { at_ms: 71_000 },
            ..held.clone()
        };
        c.update_node(&held, left).await.unwrap().expect("left");
        c.join_cluster_handed_over(draft("a", "a"), 72_000, TTL, Some(100))
            .await
            .unwrap();
        assert_eq!(c.wal_checkpoint("a").await.unwrap(), Some(250));

        // Another directory under a pruned id starts from nothing.
        gone(&c, "b", NodeState::Left { at_ms: 1_000 }).await;
        c.prune_gone_nodes(1_000 + RETENTION, RETENTION)
            .await
            .unwrap();
        c.join_cluster(draft("b", "new-dir"), 80_000, TTL)
            .await
            .unwrap();
        assert_eq!(c.wal_checkpoint("b").await.unwrap(), None);
        // And the old directory is refused again: the id is the new one's.
        let taken = c
            .join_cluster_handed_over(draft("b", "b"), 81_000, TTL, Some(100))
            .await
            .unwrap_err();
        assert!(taken.to_string().contains("its own node_id"), "{taken}");
    }
}
