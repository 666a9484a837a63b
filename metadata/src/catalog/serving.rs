//! The serving lease: which node, on which data directory, serves this
//! metadata namespace.
//!
//! Until cluster mode balances queues between nodes, one node serves a
//! namespace: at start it claims every queue, and its WAL holds messages
//! acknowledged but not yet uploaded, which only that data directory can
//! recover. A second node on a shared metadata store (etcd) must therefore
//! be refused, and so must a different data directory taking over from a
//! node that did not hand over. The lease records the node and its data
//! directory's identity, an expiry the node keeps pushing forward, and
//! whether the node released it after a graceful stop that uploaded its
//! whole WAL.
//!
//! A node may take the lease when there is none, when it was released, or
//! when it holds the same identity (the same node restarting, say after a
//! crash). Anything else is refused with what to do. A node whose data
//! directory is gone for good is declared lost ([`Catalog::forget_node`]),
//! which releases its lease: the next node goes on past a gap of offsets,
//! as in cluster mode.

use serde::{Deserialize, Serialize};

use super::{Catalog, CatalogError, MAX_ATTEMPTS, decode, encode, keys};
use crate::store::{Check, Txn, TxnOutcome};

/// Who serves the namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServingLease {
    pub node: String,
    /// The identity of the node's data directory (kept in the directory).
    pub identity: String,
    /// Where that data directory is, as the node saw it: a successor that
    /// can reach it (a shared directory, a re-attached volume) adopts it.
    #[serde(default)]
    pub data_dir: String,
    /// Unix ms after which the node is presumed gone, unless renewed.
    pub expires_ms: i64,
    /// Set by a graceful stop once the node's WAL was all uploaded, or by
    /// an operator declaring the node lost ([`Catalog::forget_node`]): any
    /// node may take over.
    pub released: bool,
}

impl Catalog {
    /// Takes the serving lease for `node` on data directory `identity`
    /// until `now_ms + ttl_ms`, or refuses with
    /// [`CatalogError::NamespaceServed`] explaining who holds it.
    pub async fn acquire_serving_lease(
        &self,
        node: &str,
        identity: &str,
        data_dir: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<ServingLease, CatalogError> {
        let key = keys::SERVING_LEASE;
        for _ in 0..MAX_ATTEMPTS {
            let current = self.store.get(key).await?;
            let check = match &current {
                None => Check::Absent { key: key.to_vec() },
                Some(raw) => {
                    let held: ServingLease = decode(key, raw)?;
                    refuse_node_id_reuse(&held, node, identity)?;
                    refuse_unless_free(&held, identity, now_ms)?;
                    Check::ValueEquals {
                        key: key.to_vec(),
                        value: raw.clone(),
                    }
                }
            };
            let lease = ServingLease {
                node: node.to_string(),
                identity: identity.to_string(),
                data_dir: data_dir.to_string(),
                expires_ms: now_ms.saturating_add(ttl_ms),
                released: false,
            };
            let txn = Txn::new().check(check).put(key, encode(key, &lease)?);
            if self.store.commit(txn).await? == TxnOutcome::Committed {
                return Ok(lease);
            }
        }
        Err(CatalogError::Conflict(
            "the serving lease kept changing while this node tried to take it".into(),
        ))
    }

    /// Moves the lease's expiry to `now_ms + ttl_ms`, or (with
    /// `release`) hands it over. `None` when the stored lease is no longer
    /// `held` (it changed underneath).
    pub async fn renew_serving_lease(
        &self,
        held: &ServingLease,
        now_ms: i64,
        ttl_ms: i64,
        release: bool,
    ) -> Result<Option<ServingLease>, CatalogError> {
        let key = keys::SERVING_LEASE;
        let next = ServingLease {
            expires_ms: now_ms.saturating_add(ttl_ms),
            released: release,
            ..held.clone()
        };
        let txn = Txn::new()
            .check(Check::ValueEquals {
                key: key.to_vec(),
                value: encode(key, held)?,
            })
            .put(key, encode(key, &next)?);
        Ok(match self.store.commit(txn).await? {
            TxnOutcome::Committed => Some(next),
            TxnOutcome::CheckFailed { .. } => None,
        })
    }

    /// The lease as stored, if any.
    pub async fn serving_lease(&self) -> Result<Option<ServingLease>, CatalogError> {
        Ok(self
            .get_record::<ServingLease>(keys::SERVING_LEASE)
            .await?
            .map(|(lease, _)| lease))
    }
}

/// A node's WAL checkpoint is kept under its node id: a second data
/// directory under the same id would take the first one's checkpoint for
/// its own and skip (then delete) its WAL below it.
fn refuse_node_id_reuse(
    held: &ServingLease,
    node: &str,
    identity: &str,
) -> Result<(), CatalogError> {
    if held.node == node && held.identity != identity {
        return Err(CatalogError::NamespaceServed(format!(
            "node id {node:?} belongs to another data directory in this namespace (identity {}, \
             at {}); WAL positions are tracked per node id, so give this data directory its own \
             node_id",
            held.identity, held.data_dir
        )));
    }
    Ok(())
}

fn refuse_unless_free(
    held: &ServingLease,
    identity: &str,
    now_ms: i64,
) -> Result<(), CatalogError> {
    if held.released || held.identity == identity {
        return Ok(());
    }
    let who = format!(
        "node {:?} (data directory {}, identity {})",
        held.node, held.data_dir, held.identity
    );
    if held.expires_ms > now_ms {
        return Err(CatalogError::NamespaceServed(format!(
            "this metadata namespace is served by {who}, whose lease runs {} ms more; \
             one node serves a namespace until cluster mode: stop that node, give this one \
             another namespace, or start it with serving.standby = true to take over when \
             that node stops or dies",
            held.expires_ms - now_ms
        )));
    }
    Err(CatalogError::NamespaceServed(format!(
        "{who} served this metadata namespace last and did not hand it over (no graceful \
         stop): its WAL may hold acknowledged messages not yet in object storage. Make its \
         data directory reachable here at the same path (a shared directory, a re-attached \
         volume) so this node adopts it, or start that node again on it (it recovers and \
         uploads them) and stop it gracefully"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    const TTL: i64 = 15_000;

    #[tokio::test]
    async fn one_data_directory_serves_a_namespace_until_it_hands_over() {
        let c = Catalog::new(MemoryStore::new());
        let a = c
            .acquire_serving_lease("n1", "dir-a", "/data/dir-a", 1_000, TTL)
            .await
            .unwrap();
        assert_eq!(a.expires_ms, 16_000);

        // Another data directory: refused while the lease runs...
        let live = c
            .acquire_serving_lease("n2", "dir-b", "/data/dir-b", 2_000, TTL)
            .await
            .unwrap_err();
        assert!(live.to_string().contains("served by node \"n1\""), "{live}");
        // ...and after it ran out, since node n1 never handed over.
        let stale = c
            .acquire_serving_lease("n2", "dir-b", "/data/dir-b", 60_000, TTL)
            .await
            .unwrap_err();
        assert!(
            stale.to_string().contains("did not hand it over"),
            "{stale}"
        );
        assert_eq!(c.serving_lease().await.unwrap(), Some(a.clone()));

        // The same data directory restarting (a crash): taken at once.
        let a2 = c
            .acquire_serving_lease("n1", "dir-a", "/data/dir-a", 3_000, TTL)
            .await
            .unwrap();
        // The old holder's renewal now fails: the lease changed underneath.
        assert_eq!(
            c.renew_serving_lease(&a, 3_500, TTL, false).await.unwrap(),
            None
        );
        let a3 = c
            .renew_serving_lease(&a2, 4_000, TTL, false)
            .await
            .unwrap()
            .expect("renewed");
        assert_eq!(a3.expires_ms, 19_000);

        // Handed over: another data directory may take it, live or not.
        c.renew_serving_lease(&a3, 5_000, TTL, true)
            .await
            .unwrap()
            .expect("released");
        let b = c
            .acquire_serving_lease("n2", "dir-b", "/data/dir-b", 5_001, TTL)
            .await
            .unwrap();
        assert_eq!(b.node, "n2");
        assert!(!b.released);
        assert_eq!(b.data_dir, "/data/dir-b");

        // A third data directory under n2's node id is refused even once n2
        // handed over: the two would share one WAL checkpoint.
        c.renew_serving_lease(&b, 6_000, TTL, true)
            .await
            .unwrap()
            .expect("released");
        let reused = c
            .acquire_serving_lease("n2", "dir-c", "/data/dir-c", 6_001, TTL)
            .await
            .unwrap_err();
        assert!(
            reused
                .to_string()
                .contains("give this data directory its own node_id"),
            "{reused}"
        );
    }
}
