//! The node registry: every node of a cluster registers under its id with
//! its data directory's identity and advertised addresses, and keeps a
//! heartbeat lease by pushing `expires_ms` forward.
//!
//! A record's state says what may be done with the node's WAL:
//! - `Live` and unexpired: the node serves; nobody touches its tenants.
//! - `Live` but expired: the node died or was cut off without leaving. Its
//!   WAL may hold acknowledged messages not yet in object storage, so its
//!   tenants stay put until a survivor adopts its data directory (uploads
//!   that WAL) and marks the record `Adopted`.
//! - `Left` or `Adopted`: nothing of the node's is only in its WAL any more;
//!   its tenants may be placed elsewhere.
//! - `Lost`: an operator declared its data directory gone for good (a
//!   volume that cannot be re-attached), accepting that the acknowledged
//!   messages only its WAL held are lost with it ([`Catalog::forget_node`]).
//!   Its tenants may be placed elsewhere; their queues go on past a gap of
//!   offsets (`floors::LOST_OFFSETS_GAP`), so that nothing still naming an
//!   offset of the lost WAL (a committed offset, a POP record, a timer)
//!   meets a new message there. The id never joins again: its WAL, should
//!   the directory come back, holds messages no one may upload now.
//!
//! A node id belongs to one data directory for good: WAL positions (the
//! `wal-checkpoint/<node>` key) are tracked per node id, so a second
//! directory under the same id would mistake the first one's checkpoint for
//! its own.

use serde::{Deserialize, Serialize};

use super::{Catalog, CatalogError, MAX_ATTEMPTS, ServingLease, decode, encode, keys};
use crate::store::{Check, Txn, TxnOutcome};

/// What the cluster may do with a node's tenants and WAL (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum NodeState {
    Live,
    /// Left gracefully after uploading its whole WAL, at `at_ms` (Unix ms;
    /// 0 in records written before the time was kept).
    Left {
        #[serde(default)]
        at_ms: i64,
    },
    /// Died; `by` adopted its data directory and uploaded its WAL, at
    /// `at_ms` (Unix ms; 0 in records written before the time was kept).
    Adopted {
        by: String,
        #[serde(default)]
        at_ms: i64,
    },
    /// Declared lost by `by` (an operator's principal) at `at_ms`, its WAL
    /// abandoned; `lost_bytes` is what the WAL had not uploaded at the
    /// node's last heartbeat.
    Lost {
        by: String,
        at_ms: i64,
        lost_bytes: u64,
    },
}

/// What [`Catalog::forget_node`] did, or would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forget {
    /// The node is now (or already was) `Lost`; `lease_freed` says whether
    /// the serving lease it held was released with it.
    Forgotten {
        record: NodeRecord,
        lease_freed: bool,
    },
    /// The node heartbeats, or renews its serving lease, until `until_ms`:
    /// it is running, so nothing is lost; stop it first.
    StillLive { record: NodeRecord, until_ms: i64 },
    /// It stopped renewing at `expired_ms`, less than the margin ago: it
    /// may be slow rather than dead, its write fence still open by its own
    /// clock. It may be declared lost from `until_ms`.
    TooSoon {
        record: NodeRecord,
        expired_ms: i64,
        until_ms: i64,
    },
    /// It left or was adopted: nothing of it is only in its WAL, and its
    /// tenants are already free.
    AlreadyGone(NodeRecord),
    /// No node of that id is registered.
    Unknown,
}

/// How [`Catalog::forget_node`] is asked.
#[derive(Debug, Clone, Copy)]
pub struct ForgetRequest<'a> {
    pub node: &'a str,
    /// Who declares it lost (recorded).
    pub by: &'a str,
    pub now_ms: i64,
    /// How long after it stopped renewing it may be declared lost (two
    /// leases: by then its write fence shut by its own clock).
    pub margin_ms: i64,
    /// Only say what would be done.
    pub dry_run: bool,
}

/// A node as registered, with its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node: String,
    /// The identity of the node's data directory (kept in the directory).
    pub identity: String,
    /// Where the data directory is, as the node saw it: a survivor that can
    /// reach the same path (a shared directory, a re-attached volume) adopts it.
    pub data_dir: String,
    /// Address clients reach this node's gRPC service at (`host:port`).
    pub grpc_addr: String,
    /// Address other nodes forward HTTP requests to (`host:port`).
    pub http_addr: String,
    /// Unix ms of the node's (latest) start.
    pub started_ms: i64,
    /// Unix ms after which the node is presumed gone unless it heartbeats.
    pub expires_ms: i64,
    /// Bytes of its WAL not yet in object storage, as of its last heartbeat.
    #[serde(default)]
    pub upload_lag_bytes: u64,
    #[serde(flatten)]
    pub state: NodeState,
}

impl NodeRecord {
    /// Heartbeating and unexpired at `now_ms`.
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.state == NodeState::Live && self.expires_ms > now_ms
    }

    /// Stopped heartbeating without leaving: its WAL must be adopted before
    /// its tenants move.
    pub fn needs_adoption(&self, now_ms: i64) -> bool {
        self.state == NodeState::Live && self.expires_ms <= now_ms
    }

    /// Left or adopted: nothing of it remains only in its WAL.
    pub fn is_gone(&self) -> bool {
        self.state != NodeState::Live
    }

    /// When the node left or was adopted; `None` while it is `Live`.
    pub fn gone_at_ms(&self) -> Option<i64> {
        match self.state {
            NodeState::Live => None,
            NodeState::Left { at_ms }
            | NodeState::Adopted { at_ms, .. }
            | NodeState::Lost { at_ms, .. } => Some(at_ms),
        }
    }
}

impl Catalog {
    /// Registers `node` (live until `now_ms + ttl_ms`), or takes its record
    /// back after a restart of the same data directory. Refuses with
    /// [`CatalogError::NodeIdTaken`] when the id belongs to another data
    /// directory.
    pub async fn join_cluster(
        &self,
        node: NodeRecord,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<NodeRecord, CatalogError> {
        self.join_cluster_handed_over(node, now_ms, ttl_ms, None)
            .await
    }

    /// [`Self::join_cluster`] for a data directory that says it handed its
    /// whole WAL over up to `handed_over` when it last left or was adopted:
    /// if its record was pruned since (see [`Self::prune_gone_nodes`]), the
    /// join puts that position back as its WAL checkpoint (pruned with the
    /// record), so the directory's WAL is not uploaded a second time.
    pub async fn join_cluster_handed_over(
        &self,
        node: NodeRecord,
        now_ms: i64,
        ttl_ms: i64,
        handed_over: Option<u64>,
    ) -> Result<NodeRecord, CatalogError> {
        let key = keys::node(&node.node)?;
        let checkpoint_key = keys::wal_checkpoint(&node.node)?;
        let joined = NodeRecord {
            started_ms: now_ms,
            expires_ms: now_ms.saturating_add(ttl_ms),
            state: NodeState::Live,
            ..node
        };
        for _ in 0..MAX_ATTEMPTS {
            let mut txn = Txn::new();
            let check = match self.store.get(&key).await? {
                None => {
                    if let Some(lsn) = handed_over
                        && self.store.get(&checkpoint_key).await?.is_none()
                    {
                        txn = txn
                            .check(Check::Absent {
                                key: checkpoint_key.clone(),
                            })
                            .put(checkpoint_key.clone(), encode(&checkpoint_key, &lsn)?);
                    }
                    Check::Absent { key: key.clone() }
                }
                Some(raw) => {
                    let held: NodeRecord = decode(&key, &raw)?;
                    if let NodeState::Lost { by, at_ms, .. } = &held.state {
                        return Err(CatalogError::NodeForgotten(format!(
                            "node {:?} was declared lost by {by} (Unix ms {at_ms}) and its WAL \
                             abandoned; other nodes have since served its tenants, reusing the \
                             offsets its WAL holds, so it may not join again. Start this \
                             server with an empty data directory and a new node_id",
                            held.node
                        )));
                    }
                    if held.identity != joined.identity {
                        return Err(CatalogError::NodeIdTaken(format!(
                            "node id {:?} belongs to another data directory in this \
                             namespace (identity {}, at {}); WAL positions are tracked per \
                             node id, so give this data directory its own node_id",
                            held.node, held.identity, held.data_dir
                        )));
                    }
                    Check::ValueEquals {
                        key: key.clone(),
                        value: raw,
                    }
                }
            };
            let txn = txn.check(check).put(key.clone(), encode(&key, &joined)?);
            if self.store.commit(txn).await? == TxnOutcome::Committed {
                return Ok(joined);
            }
        }
        Err(CatalogError::Conflict(format!(
            "node record {:?} kept changing while this node joined",
            joined.node
        )))
    }

    /// Replaces `held` by `next` if the stored record is still `held`:
    /// heartbeats, leaving, adoption. `None` when it changed underneath (a
    /// heartbeat that gets `None` means the node was adopted or replaced).
    /// The check compares the stored bytes, read here, so nodes running
    /// different versions (encoding a record differently) still agree.
    pub async fn update_node(
        &self,
        held: &NodeRecord,
        next: NodeRecord,
    ) -> Result<Option<NodeRecord>, CatalogError> {
        let key = keys::node(&held.node)?;
        let Some((current, raw)) = self.get_record::<NodeRecord>(&key).await? else {
            return Ok(None);
        };
        if &current != held {
            return Ok(None);
        }
        let txn = Txn::new()
            .check(Check::ValueEquals {
                key: key.clone(),
                value: raw,
            })
            .put(key.clone(), encode(&key, &next)?);
        Ok(match self.store.commit(txn).await? {
            TxnOutcome::Committed => Some(next),
            TxnOutcome::CheckFailed { .. } => None,
        })
    }

    /// Declares a node lost on behalf of `by` (see the module docs): only a
    /// node that stopped renewing both its heartbeat and any serving lease
    /// it holds at least `margin_ms` before `now_ms`, without leaving or
    /// being adopted. The commit is conditioned on the records it read, so
    /// a node renewing meanwhile is not forgotten. A node already lost is
    /// [`Forget::AlreadyGone`], unless it still holds a serving lease,
    /// which is then released. A serving lease (standby mode) the node
    /// held on the same data directory is released in the same commit, so
    /// a standby takes the namespace over.
    pub async fn forget_node(&self, req: ForgetRequest<'_>) -> Result<Forget, CatalogError> {
        let ForgetRequest {
            node,
            by,
            now_ms,
            margin_ms,
            dry_run,
        } = req;
        let key = keys::node(node)?;
        for _ in 0..MAX_ATTEMPTS {
            let Some((held, raw)) = self.get_record::<NodeRecord>(&key).await? else {
                return Ok(Forget::Unknown);
            };
            if matches!(
                held.state,
                NodeState::Left { .. } | NodeState::Adopted { .. }
            ) {
                return Ok(Forget::AlreadyGone(held));
            }
            let lease = self.serving_lease_held_by(&held).await?;
            if matches!(held.state, NodeState::Lost { .. }) && lease.is_none() {
                return Ok(Forget::AlreadyGone(held));
            }
            let live = held.state == NodeState::Live;
            if live || lease.is_some() {
                let heartbeat = if live { held.expires_ms } else { i64::MIN };
                let renewed = lease
                    .as_ref()
                    .map_or(heartbeat, |(l, _)| l.expires_ms.max(heartbeat));
                if renewed > now_ms {
                    return Ok(Forget::StillLive {
                        record: held,
                        until_ms: renewed,
                    });
                }
                let until_ms = renewed.saturating_add(margin_ms);
                if now_ms < until_ms {
                    return Ok(Forget::TooSoon {
                        record: held,
                        expired_ms: renewed,
                        until_ms,
                    });
                }
            }
            let lost = match held.state {
                NodeState::Live => NodeRecord {
                    state: NodeState::Lost {
                        by: by.to_string(),
                        at_ms: now_ms,
                        lost_bytes: held.upload_lag_bytes,
                    },
                    ..held.clone()
                },
                _ => held.clone(),
            };
            let lease_freed = lease.is_some();
            let mut txn = Txn::new();
            if lost != held {
                txn = txn
                    .check(Check::ValueEquals {
                        key: key.clone(),
                        value: raw,
                    })
                    .put(key.clone(), encode(&key, &lost)?);
            }
            if let Some((lease, raw)) = lease {
                let freed = ServingLease {
                    released: true,
                    ..lease
                };
                let lease_key = keys::SERVING_LEASE;
                txn = txn
                    .check(Check::ValueEquals {
                        key: lease_key.to_vec(),
                        value: raw,
                    })
                    .put(lease_key, encode(lease_key, &freed)?);
            }
            let forgotten = Forget::Forgotten {
                record: lost,
                lease_freed,
            };
            if dry_run || txn.checks.is_empty() {
                return Ok(forgotten);
            }
            if self.store.commit(txn).await? == TxnOutcome::Committed {
                return Ok(forgotten);
            }
        }
        Err(CatalogError::Conflict(format!(
            "node record {node:?} kept changing while it was being declared lost"
        )))
    }

    /// The serving lease, as stored, if `node` holds it on its own data
    /// directory and has not released it.
    async fn serving_lease_held_by(
        &self,
        node: &NodeRecord,
    ) -> Result<Option<(ServingLease, Vec<u8>)>, CatalogError> {
        Ok(self
            .get_record::<ServingLease>(keys::SERVING_LEASE)
            .await?
            .filter(|(lease, _)| {
                lease.node == node.node && lease.identity == node.identity && !lease.released
            }))
    }

    /// One node's record.
    pub async fn cluster_node(&self, node: &str) -> Result<Option<NodeRecord>, CatalogError> {
        Ok(self
            .get_record::<NodeRecord>(&keys::node(node)?)
            .await?
            .map(|(record, _)| record))
    }

    /// Every registered node, by id.
    pub async fn cluster_nodes(&self) -> Result<Vec<NodeRecord>, CatalogError> {
        Ok(self.scan_records(keys::ALL_NODES).await?)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::MemoryStore;
    use crate::catalog::floors::LOST_OFFSETS_GAP;

    const TTL: i64 = 10_000;

    /// Forgets `node` for `by` at `now_ms`, with no margin.
    async fn forget(c: &Catalog, node: &str, by: &str, now_ms: i64) -> Forget {
        forget_after(c, node, by, now_ms, 0).await
    }

    async fn forget_after(
        c: &Catalog,
        node: &str,
        by: &str,
        now_ms: i64,
        margin_ms: i64,
    ) -> Forget {
        c.forget_node(ForgetRequest {
            node,
            by,
            now_ms,
            margin_ms,
            dry_run: false,
        })
        .await
        .unwrap()
    }

    /// A live record of `node` on directory `identity`, to join with.
    pub(crate) fn draft(node: &str, identity: &str) -> NodeRecord {
        NodeRecord {
            node: node.into(),
            identity: identity.into(),
            data_dir: format!("/data/{identity}"),
            grpc_addr: "127.0.0.1:8081".into(),
            http_addr: "127.0.0.1:8080".into(),
            started_ms: 0,
            expires_ms: 0,
            upload_lag_bytes: 0,
            state: NodeState::Live,
        }
    }

    #[tokio::test]
    async fn nodes_join_heartbeat_leave_and_keep_their_ids() {
        let c = Catalog::new(MemoryStore::new());
        let a = c
            .join_cluster(draft("a", "dir-a"), 1_000, TTL)
            .await
            .unwrap();
        assert_eq!((a.started_ms, a.expires_ms), (1_000, 11_000));
        assert!(a.is_live(10_999) && !a.is_live(11_000));
        assert!(a.needs_adoption(11_000) && !a.is_gone());
        c.join_cluster(draft("b", "dir-b"), 1_000, TTL)
            .await
            .unwrap();

        // Another data directory under a's id: refused, live or not.
        let taken = c
            .join_cluster(draft("a", "dir-c"), 50_000, TTL)
            .await
            .unwrap_err();
        assert!(taken.to_string().contains("its own node_id"), "{taken}");

        // A heartbeat moves the expiry; a stale copy no longer applies.
        let beat = NodeRecord {
            expires_ms: 15_000,
            upload_lag_bytes: 42,
            ..a.clone()
        };
        let a2 = c.update_node(&a, beat).await.unwrap().expect("heartbeat");
        assert_eq!(c.update_node(&a, a.clone()).await.unwrap(), None);

        // A restart of the same directory takes the record back, live again.
        let left = NodeRecord {
            state: NodeState::Left { at_ms: 18_000 },
            ..a2.clone()
        };
        c.update_node(&a2, left).await.unwrap().expect("left");
        let gone = c.cluster_node("a").await.unwrap().unwrap();
        assert_eq!(gone.gone_at_ms(), Some(18_000));
        let back = c
            .join_cluster(draft("a", "dir-a"), 20_000, TTL)
            .await
            .unwrap();
        assert_eq!(back.state, NodeState::Live);
        assert_eq!(back.gone_at_ms(), None);
        assert_eq!(back.started_ms, 20_000);

        let ids: Vec<String> = c
            .cluster_nodes()
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.node)
            .collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[tokio::test]
    async fn only_an_expired_node_is_forgotten_and_it_never_joins_again() {
        let c = Catalog::new(MemoryStore::new());
        assert_eq!(forget(&c, "a", "op", 0).await, Forget::Unknown);
        let a = c
            .join_cluster(draft("a", "dir-a"), 1_000, TTL)
            .await
            .unwrap();
        let beat = NodeRecord {
            upload_lag_bytes: 4096,
            ..a.clone()
        };
        let a = c.update_node(&a, beat).await.unwrap().expect("heartbeat");
        // Heartbeating: refused, and nothing changes.
        let live = forget(&c, "a", "op", 10_999).await;
        assert_eq!(
            live,
            Forget::StillLive {
                record: a.clone(),
                until_ms: 11_000
            }
        );
        // Stopped, but within the margin: refused too.
        let soon = forget_after(&c, "a", "op", 11_500, 1_000).await;
        let expected = Forget::TooSoon {
            record: a.clone(),
            expired_ms: 11_000,
            until_ms: 12_000,
        };
        assert_eq!(soon, expected);
        assert_eq!(c.cluster_node("a").await.unwrap(), Some(a.clone()));

        // Expired: lost, with what its WAL had not uploaded.
        let Forget::Forgotten {
            record: lost,
            lease_freed: false,
        } = forget(&c, "a", "op", 11_000).await
        else {
            panic!("not forgotten");
        };
        let expected = NodeState::Lost {
            by: "op".into(),
            at_ms: 11_000,
            lost_bytes: 4096,
        };
        assert_eq!(lost.state, expected);
        assert!(lost.is_gone() && !lost.needs_adoption(20_000));
        assert_eq!(lost.gone_at_ms(), Some(11_000));
        // Again: nothing to do, and the record keeps who and when.
        let again = forget(&c, "a", "other", 30_000).await;
        assert_eq!(again, Forget::AlreadyGone(lost.clone()));

        // Its directory back: refused, whatever the identity.
        for dir in ["dir-a", "dir-z"] {
            let refused = c
                .join_cluster(draft("a", dir), 40_000, TTL)
                .await
                .unwrap_err();
            assert!(
                matches!(refused, CatalogError::NodeForgotten(_)),
                "{refused}"
            );
            assert!(refused.to_string().contains("new node_id"), "{refused}");
        }
        assert_eq!(c.cluster_node("a").await.unwrap(), Some(lost));

        // A node that left has nothing to forget.
        let b = c
            .join_cluster(draft("b", "dir-b"), 1_000, TTL)
            .await
            .unwrap();
        let left = NodeRecord {
            state: NodeState::Left { at_ms: 2_000 },
            ..b.clone()
        };
        let left = c.update_node(&b, left).await.unwrap().expect("left");
        let gone = forget(&c, "b", "op", 50_000).await;
        assert_eq!(gone, Forget::AlreadyGone(left));
    }

    #[tokio::test]
    async fn forgetting_the_serving_node_frees_its_lease_for_a_standby() {
        let c = Catalog::new(MemoryStore::new());
        let a = c.join_cluster(draft("a", "dir-a"), 0, TTL).await.unwrap();
        c.join_cluster(draft("b", "dir-b"), 0, 10 * TTL)
            .await
            .unwrap();
        let held = c
            .acquire_serving_lease("a", "dir-a", &a.data_dir, 0, TTL)
            .await
            .unwrap();
        // The standby is refused while the lease is a's, expired or not.
        let refused = c
            .acquire_serving_lease("b", "dir-b", "/data/dir-b", 5 * TTL, TTL)
            .await
            .unwrap_err();
        assert!(matches!(refused, CatalogError::NamespaceServed(_)));

        // Forgetting b (not the lease holder) leaves the lease alone.
        let b_live = forget(&c, "b", "op", 5 * TTL).await;
        assert!(matches!(b_live, Forget::StillLive { .. }), "{b_live:?}");
        assert_eq!(c.serving_lease().await.unwrap(), Some(held.clone()));

        // a renewed its lease after its last heartbeat: it counts from
        // there (a paused node back at the last moment is not forgotten).
        let held = c
            .renew_serving_lease(&held, 3 * TTL, TTL, false)
            .await
            .unwrap()
            .expect("renewed");
        let live = forget_after(&c, "a", "op", 3 * TTL + 1, 2 * TTL).await;
        assert!(matches!(live, Forget::StillLive { until_ms, .. } if until_ms == 4 * TTL));
        let soon = forget_after(&c, "a", "op", 5 * TTL, 2 * TTL).await;
        assert!(matches!(soon, Forget::TooSoon { until_ms, .. } if until_ms == 6 * TTL));
        // A dry run says what would be done, and does nothing.
        let would = c
            .forget_node(ForgetRequest {
                node: "a",
                by: "op",
                now_ms: 6 * TTL,
                margin_ms: 2 * TTL,
                dry_run: true,
            })
            .await
            .unwrap();
        assert!(matches!(
            would,
            Forget::Forgotten {
                lease_freed: true,
                ..
            }
        ));
        assert_eq!(c.serving_lease().await.unwrap(), Some(held.clone()));
        assert!(c.cluster_node("a").await.unwrap().unwrap().state == NodeState::Live);

        let done = forget_after(&c, "a", "op", 6 * TTL, 2 * TTL).await;
        assert!(matches!(
            done,
            Forget::Forgotten {
                lease_freed: true,
                ..
            }
        ));
        let freed = ServingLease {
            released: true,
            ..held.clone()
        };
        assert_eq!(c.serving_lease().await.unwrap(), Some(freed));
        let taken = c
            .acquire_serving_lease("b", "dir-b", "/data/dir-b", 5 * TTL, TTL)
            .await
            .unwrap();
        assert_eq!(taken.node, "b");
        // Forgetting a again does not touch b's lease.
        let again = forget(&c, "a", "op", 7 * TTL).await;
        assert!(matches!(again, Forget::AlreadyGone(_)), "{again:?}");
        assert_eq!(c.serving_lease().await.unwrap(), Some(taken));
    }

    #[tokio::test]
    async fn a_lost_node_forgotten_again_frees_a_lease_it_still_holds() {
        // A node declared lost before forgetting freed leases: a second
        // forget frees it, leaving the record as it was.
        let c = Catalog::new(MemoryStore::new());
        let a = c.join_cluster(draft("a", "dir-a"), 0, TTL).await.unwrap();
        let Forget::Forgotten { record: lost, .. } = forget(&c, "a", "op", TTL).await else {
            panic!("not forgotten");
        };
        let stale = ServingLease {
            node: "a".into(),
            identity: "dir-a".into(),
            data_dir: a.data_dir.clone(),
            expires_ms: TTL,
            released: false,
        };
        let key = keys::SERVING_LEASE;
        c.store
            .commit(Txn::new().put(key, encode(key, &stale).unwrap()))
            .await
            .unwrap();
        let again = forget(&c, "a", "other", 3 * TTL).await;
        let freed = Forget::Forgotten {
            record: lost.clone(),
            lease_freed: true,
        };
        assert_eq!(again, freed);
        assert!(c.serving_lease().await.unwrap().unwrap().released);
        assert_eq!(c.cluster_node("a").await.unwrap(), Some(lost));
    }

    #[tokio::test]
    async fn a_lost_nodes_queues_go_on_past_a_gap_when_claimed() {
        use crate::{MessageType, NewTopic, Retention};
        use strata_common::QueueKey;
        let c = Catalog::new(MemoryStore::new());
        for node in ["a", "b"] {
            c.join_cluster(draft(node, &format!("dir-{node}")), 0, TTL)
                .await
                .unwrap();
        }
        let topic = NewTopic {
            queues: 2,
            message_type: MessageType::Normal,
            retention: Retention::Unlimited,
            retention_bytes: None,
        };
        let t = c.create_topic("t1", "orders", topic, 0).await.unwrap();
        c.claim_topic_queues(t.id, 2, "a").await.unwrap();
        let (q0, q1) = (QueueKey::new(t.id, 0), QueueKey::new(t.id, 1));
        c.set_queue_floors(&[(q1, 100)]).await.unwrap();
        // A live owner's queues are taken over without a gap.
        c.claim_topic_queues(t.id, 2, "b").await.unwrap();
        c.claim_topic_queues(t.id, 2, "a").await.unwrap();
        assert!(c.queue_resumes().await.unwrap().is_empty());
        // a is lost: b's claim puts both queues past a gap after their ends.
        assert!(matches!(
            forget(&c, "a", "op", TTL).await,
            Forget::Forgotten { .. }
        ));
        c.claim_topic_queues(t.id, 2, "b").await.unwrap();
        let resumes = c.queue_resumes().await.unwrap();
        assert_eq!(resumes[&q0], LOST_OFFSETS_GAP);
        assert_eq!(resumes[&q1], 100 + LOST_OFFSETS_GAP);
        // Later owners keep them.
        c.claim_topic_queues(t.id, 2, "b").await.unwrap();
        assert_eq!(c.queue_resumes().await.unwrap(), resumes);
    }

    #[test]
    fn node_state_is_stored_flat_and_readable_without_lag() {
        let adopted = NodeRecord {
            state: NodeState::Adopted {
                by: "b".into(),
                at_ms: 30_000,
            },
            ..draft("a", "dir-a")
        };
        let json = serde_json::to_value(&adopted).unwrap();
        assert_eq!(json["state"], "adopted");
        assert_eq!(json["by"], "b");
        let mut older = json.clone();
        older.as_object_mut().unwrap().remove("upload_lag_bytes");
        let back: NodeRecord = serde_json::from_value(older.clone()).unwrap();
        assert_eq!(back.state, adopted.state);
        // Records written before the time of leaving was kept read as 0.
        older.as_object_mut().unwrap().remove("at_ms");
        let back: NodeRecord = serde_json::from_value(older.clone()).unwrap();
        assert_eq!(back.gone_at_ms(), Some(0));
        older["state"] = "left".into();
        let left: NodeRecord = serde_json::from_value(older).unwrap();
        assert_eq!(left.state, NodeState::Left { at_ms: 0 });
    }
}
