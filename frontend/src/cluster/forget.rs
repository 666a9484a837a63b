//! Declaring a node lost, as `POST /v1/cluster/nodes/{node}/forget` (a
//! running cluster) and `strata metadata forget-node` (straight on the
//! metadata store, for a standby whose serving node's directory is gone,
//! when no node serves HTTP) both do it: what is refused, and how it is
//! said. The rules themselves are `Catalog::forget_node`'s, checked in the
//! commit that declares the node lost.

use strata_metadata::{Catalog, CatalogError, Forget, ForgetRequest, NodeRecord, NodeState};

/// Why a node may not be declared lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No node of that id is registered.
    Unknown(String),
    /// It is running, stopped too recently, or nothing of it is lost.
    Conflict(String),
    /// The caller did not confirm giving up what only its WAL holds.
    Unconfirmed(String),
}

impl Refusal {
    pub fn message(&self) -> &str {
        match self {
            Refusal::Unknown(m) | Refusal::Conflict(m) | Refusal::Unconfirmed(m) => m,
        }
    }
}

/// Declares `node` lost for `by` at `now_ms`: refused while it renews its
/// heartbeat or serving lease and for two leases (`lease_ttl_ms`) after
/// (clocks differ between machines: by then its write fence shut by its
/// own clock), then unless `confirmed` (`confirm_how` says how), in that
/// order, so an operator first learns whether there is anything to
/// confirm. Answers the node's record as declared lost, and whether the
/// serving lease it held was released.
pub async fn forget(
    catalog: &Catalog,
    node: &str,
    by: &str,
    now_ms: i64,
    lease_ttl_ms: u64,
    confirmed: bool,
    confirm_how: &str,
) -> Result<Result<(NodeRecord, bool), Refusal>, CatalogError> {
    let margin_ms = i64::try_from(lease_ttl_ms)
        .unwrap_or(i64::MAX)
        .saturating_mul(2);
    let mut req = ForgetRequest {
        node,
        by,
        now_ms,
        margin_ms,
        dry_run: true,
    };
    if !confirmed {
        return Ok(Err(match catalog.forget_node(req).await? {
            Forget::Forgotten { record, .. } => unconfirmed(&record, confirm_how),
            other => refusal(node, now_ms, other),
        }));
    }
    req.dry_run = false;
    Ok(match catalog.forget_node(req).await? {
        Forget::Forgotten {
            record,
            lease_freed,
        } => Ok((record, lease_freed)),
        other => Err(refusal(node, now_ms, other)),
    })
}

fn unconfirmed(record: &NodeRecord, how: &str) -> Refusal {
    let lost = match record.state {
        NodeState::Lost { lost_bytes, .. } => lost_bytes,
        _ => record.upload_lag_bytes,
    };
    Refusal::Unconfirmed(format!(
        "declaring node {:?} lost gives up the acknowledged messages only its WAL holds \
         ({lost} bytes not in object storage at its last heartbeat, and whatever it \
         acknowledged after that); if its data directory \
         can be reached again (a volume re-attached), let a node adopt it instead. {how}",
        record.node
    ))
}

fn refusal(node: &str, now_ms: i64, outcome: Forget) -> Refusal {
    match outcome {
        Forget::Unknown | Forget::Forgotten { .. } => Refusal::Unknown(format!(
            "no node {node:?} is registered in this metadata namespace"
        )),
        Forget::StillLive { until_ms, .. } => Refusal::Conflict(format!(
            "node {node:?} holds its lease {} ms more: it is running, or stopped less than a \
             lease ago, and nothing of it is lost. If it runs, stop it; a node that can reach \
             its data directory then adopts its WAL. Else try again once the lease ran out",
            until_ms.saturating_sub(now_ms)
        )),
        Forget::TooSoon {
            expired_ms,
            until_ms,
            ..
        } => Refusal::Conflict(format!(
            "node {node:?} stopped renewing its lease only {} ms ago, less than two leases \
             ({} ms): it may be slow rather than dead. Try again in {} ms",
            now_ms.saturating_sub(expired_ms),
            until_ms.saturating_sub(expired_ms),
            until_ms.saturating_sub(now_ms)
        )),
        Forget::AlreadyGone(record) => {
            let how = match record.state {
                NodeState::Adopted { by, .. } => format!("was adopted by {by}"),
                NodeState::Lost { by, at_ms, .. } => {
                    return Refusal::Conflict(format!(
                        "node {node:?} was already declared lost (by {by}, at {}): what it \
                         had not uploaded was given up then, and whatever it served is \
                         already free; nothing changed",
                        strata_common::rfc3339::format_ms(at_ms)
                    ));
                }
                _ => "left".to_string(),
            };
            Refusal::Conflict(format!(
                "node {node:?} {how}: nothing of it is only in its WAL, and whatever it \
                 served is already free"
            ))
        }
    }
}
