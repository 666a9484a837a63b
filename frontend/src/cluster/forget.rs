//! When a node may be declared lost: shared by `POST
//! /v1/cluster/nodes/{node}/forget` (a running cluster) and `strata
//! metadata forget-node` (straight on the metadata store, for a standby
//! whose serving node's directory is gone, when no node serves HTTP).

use strata_metadata::{NodeRecord, ServingLease};

/// Why `node` may not be declared lost yet at `now_ms`, if it may not.
///
/// A node still heartbeating is running: nothing of it is lost. Clocks
/// differ between machines: a node that stopped renewing only just now may
/// be slow rather than dead, its write fence still open by its own clock.
/// Two leases (`lease_ttl_ms`) past the later of its heartbeat's and its
/// serving lease's expiry, it has shut.
pub fn not_yet(
    node: &NodeRecord,
    lease: Option<&ServingLease>,
    now_ms: i64,
    lease_ttl_ms: u64,
) -> Option<String> {
    if node.is_live(now_ms) {
        return Some(still_live(node, now_ms));
    }
    if !node.needs_adoption(now_ms) {
        return None;
    }
    let margin = i64::try_from(lease_ttl_ms)
        .unwrap_or(i64::MAX)
        .saturating_mul(2);
    let held = lease.filter(|l| l.node == node.node && l.identity == node.identity && !l.released);
    let expired = held.map_or(node.expires_ms, |l| l.expires_ms.max(node.expires_ms));
    let until = expired.saturating_add(margin);
    (now_ms < until).then(|| {
        format!(
            "node {:?} stopped renewing its lease only {} ms ago, less than two leases \
             ({margin} ms): it may be slow rather than dead. Try again in {} ms",
            node.node,
            now_ms.saturating_sub(expired),
            until.saturating_sub(now_ms)
        )
    })
}

/// The refusal for a node that still heartbeats.
pub fn still_live(node: &NodeRecord, now_ms: i64) -> String {
    format!(
        "node {:?} is heartbeating (its lease runs {} ms more): it is running, and nothing \
         of it is lost. Stop it; a node that can reach its data directory then adopts its WAL",
        node.node,
        node.expires_ms.saturating_sub(now_ms)
    )
}

/// What declaring `node` lost gives up, and how to confirm it.
pub fn unconfirmed(node: &NodeRecord, confirm: &str) -> String {
    format!(
        "declaring node {:?} lost gives up the acknowledged messages only its WAL holds \
         ({} bytes not in object storage at its last heartbeat); if its data directory can \
         be reached again (a volume re-attached), let a node adopt it instead. {confirm}",
        node.node, node.upload_lag_bytes
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_metadata::NodeState;

    fn record(expires_ms: i64) -> NodeRecord {
        NodeRecord {
            node: "a".into(),
            identity: "dir-a".into(),
            data_dir: "/data/a".into(),
            grpc_addr: String::new(),
            http_addr: String::new(),
            started_ms: 0,
            expires_ms,
            upload_lag_bytes: 0,
            state: NodeState::Live,
        }
    }

    fn lease(node: &str, identity: &str, expires_ms: i64, released: bool) -> ServingLease {
        ServingLease {
            node: node.into(),
            identity: identity.into(),
            data_dir: String::new(),
            expires_ms,
            released,
        }
    }

    #[test]
    fn not_while_live_nor_two_leases_past_the_later_expiry() {
        let a = record(1_000);
        let live = not_yet(&a, None, 500, 1_000).expect("live");
        assert!(live.contains("is heartbeating"), "{live}");
        assert!(not_yet(&a, None, 2_999, 1_000).is_some());
        assert_eq!(not_yet(&a, None, 3_000, 1_000), None);
        // Its own serving lease ran out later: counted from that.
        let held = lease("a", "dir-a", 1_500, false);
        let said = not_yet(&a, Some(&held), 3_000, 1_000).expect("too soon");
        assert!(said.contains("Try again in 500 ms"), "{said}");
        assert_eq!(not_yet(&a, Some(&held), 3_500, 1_000), None);
        // Someone else's lease, or one released, does not count.
        for other in [
            lease("b", "dir-b", 9_000, false),
            lease("a", "dir-z", 9_000, false),
            lease("a", "dir-a", 9_000, true),
        ] {
            assert_eq!(not_yet(&a, Some(&other), 3_000, 1_000), None);
        }
    }
}
