//! Tenant placement: which node serves each tenant in a cluster.
//!
//! A tenant is served by one node at a time, with all its topics, queues,
//! consumer groups, timers and transactions, so per-tenant state (POP
//! cursors, delayed messages, rate limits) never spans nodes. A node places
//! a tenant on itself with the next epoch only when the tenant is free: not
//! placed yet, released by its node after uploading its WAL, or placed on a
//! node that left or whose WAL was adopted (see [`super::NodeRecord`]). The
//! commit is conditioned on both the placement and that node's record, so
//! a node that rejoins concurrently keeps its tenants.

use serde::{Deserialize, Serialize};

use super::{Catalog, CatalogError, MAX_ATTEMPTS, NodeRecord, keys};
use crate::store::{Check, Txn, TxnOutcome};

/// The node serving a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantPlacement {
    pub tenant: String,
    pub node: String,
    /// Increases with every placement, so a holder can tell it was replaced.
    pub epoch: u64,
    /// Set by the node once it uploaded its WAL and stopped serving the tenant.
    pub released: bool,
}

/// What [`Catalog::place_tenant`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// The tenant is now served by the calling node.
    Here(TenantPlacement),
    /// Another node still serves it (or must be adopted first); why.
    Busy(String),
}

impl Catalog {
    /// Places `tenant` on `node` if it is free (see the module docs); a
    /// node taking back its own tenant after a restart always may.
    pub async fn place_tenant(&self, tenant: &str, node: &str) -> Result<Placed, CatalogError> {
        let key = keys::placement(tenant)?;
        for _ in 0..MAX_ATTEMPTS {
            let mut txn = Txn::new();
            let epoch = match self.get_record::<TenantPlacement>(&key).await? {
                None => {
                    txn = txn.check(Check::Absent { key: key.clone() });
                    1
                }
                Some((held, raw)) => {
                    if !held.released && held.node != node {
                        let holder_key = keys::node(&held.node)?;
                        match self.get_record::<NodeRecord>(&holder_key).await? {
                            Some((holder, holder_raw)) if holder.is_gone() => {
                                txn = txn.check(Check::ValueEquals {
                                    key: holder_key,
                                    value: holder_raw,
                                });
                            }
                            Some(holder) => {
                                return Ok(Placed::Busy(busy_reason(&held, Some(&holder.0))));
                            }
                            None => return Ok(Placed::Busy(busy_reason(&held, None))),
                        }
                    }
                    txn = txn.check(Check::ValueEquals {
                        key: key.clone(),
                        value: raw,
                    });
                    held.epoch.saturating_add(1)
                }
            };
            let placed = TenantPlacement {
                tenant: tenant.to_string(),
                node: node.to_string(),
                epoch,
                released: false,
            };
            let value = super::encode(&key, &placed)?;
            if self.store.commit(txn.put(key.clone(), value)).await? == TxnOutcome::Committed {
                tracing::debug!(tenant, node, epoch, "placed tenant");
                return Ok(Placed::Here(placed));
            }
        }
        Err(CatalogError::Conflict(format!(
            "placing tenant {tenant}: the placement kept changing"
        )))
    }

    /// Marks `held` released (its node uploaded its WAL and stopped serving
    /// the tenant). `false` when the placement changed underneath.
    pub async fn release_tenant(&self, held: &TenantPlacement) -> Result<bool, CatalogError> {
        let key = keys::placement(&held.tenant)?;
        let Some((current, raw)) = self.get_record::<TenantPlacement>(&key).await? else {
            return Ok(false);
        };
        if &current != held {
            return Ok(false);
        }
        let released = TenantPlacement {
            released: true,
            ..current
        };
        let txn = Txn::new()
            .check(Check::ValueEquals {
                key: key.clone(),
                value: raw,
            })
            .put(key.clone(), super::encode(&key, &released)?);
        Ok(self.store.commit(txn).await? == TxnOutcome::Committed)
    }

    /// Every tenant's placement, by tenant name.
    pub async fn tenant_placements(&self) -> Result<Vec<TenantPlacement>, CatalogError> {
        Ok(self.scan_records(keys::ALL_PLACEMENTS).await?)
    }
}

fn busy_reason(held: &TenantPlacement, holder: Option<&NodeRecord>) -> String {
    match holder {
        None => format!(
            "tenant {} is served by node {}, which is not registered",
            held.tenant, held.node
        ),
        Some(h) if h.state == super::NodeState::Live => format!(
            "tenant {} is served by node {} until it releases it, or until its WAL is \
             adopted should it stop heartbeating",
            held.tenant, held.node
        ),
        Some(_) => format!("tenant {} is moving from node {}", held.tenant, held.node),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryStore, NodeState};

    fn node(id: &str) -> NodeRecord {
        NodeRecord {
            node: id.into(),
            identity: format!("dir-{id}"),
            data_dir: format!("/data/{id}"),
            grpc_addr: String::new(),
            http_addr: String::new(),
            started_ms: 0,
            expires_ms: 0,
            upload_lag_bytes: 0,
            state: NodeState::Live,
        }
    }

    fn here(placed: Placed) -> TenantPlacement {
        match placed {
            Placed::Here(p) => p,
            Placed::Busy(why) => panic!("not placed: {why}"),
        }
    }

    #[tokio::test]
    async fn a_tenant_moves_only_once_its_node_let_go_of_it() {
        let c = Catalog::new(MemoryStore::new());
        let a = c.join_cluster(node("a"), 0, 1_000).await.unwrap();
        c.join_cluster(node("b"), 0, 1_000).await.unwrap();

        let t = here(c.place_tenant("t1", "a").await.unwrap());
        assert_eq!((t.node.as_str(), t.epoch), ("a", 1));
        // Held by a live node, and by an expired one not yet adopted.
        let busy = c.place_tenant("t1", "b").await.unwrap();
        assert!(matches!(&busy, Placed::Busy(why) if why.contains("until it releases")));
        // a restarting takes its own tenant back with a new epoch.
        let t2 = here(c.place_tenant("t1", "a").await.unwrap());
        assert_eq!(t2.epoch, 2);

        // Released: b may take it.
        assert!(!c.release_tenant(&t).await.unwrap(), "stale placement");
        assert!(c.release_tenant(&t2).await.unwrap());
        let t3 = here(c.place_tenant("t1", "b").await.unwrap());
        assert_eq!((t3.node.as_str(), t3.epoch), ("b", 3));

        // A node adopted after dying gives its tenants up.
        here(c.place_tenant("t2", "a").await.unwrap());
        let adopted = NodeRecord {
            state: NodeState::Adopted {
                by: "b".into(),
                at_ms: 0,
            },
            ..a.clone()
        };
        c.update_node(&a, adopted).await.unwrap().expect("adopted");
        let t4 = here(c.place_tenant("t2", "b").await.unwrap());
        assert_eq!(t4.epoch, 2);

        let all = c.tenant_placements().await.unwrap();
        assert_eq!(all, vec![t3, t4]);
    }

    #[tokio::test]
    async fn a_tenant_on_an_unregistered_node_stays_put() {
        let c = Catalog::new(MemoryStore::new());
        here(c.place_tenant("t1", "ghost").await.unwrap());
        let busy = c.place_tenant("t1", "b").await.unwrap();
        assert!(matches!(&busy, Placed::Busy(why) if why.contains("not registered")));
    }
}
