//! Cluster administration over HTTP: declaring a node whose data directory
//! is gone for good lost, so that its tenants are served again elsewhere.

use axum::Json as Reply;
use axum::extract::{FromRequest, State};
use strata_client::api::status::{ClusterJson, ForgetNode};
use strata_common::ErrorCode;
use strata_metadata::{CatalogError, NodeState};
use strata_tenancy::Permission;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path};
use crate::cluster::forget::{Refusal, forget};

/// `POST /v1/cluster/nodes/{node}/forget` (service admins): declares a node
/// that stopped heartbeating lost, its WAL abandoned, and answers the
/// cluster as it is then. Survivors place its tenants at their next pass;
/// the acknowledged messages only its WAL held are gone with it, and the
/// node id may never join again.
pub async fn forget_node(
    State(state): State<AppState>,
    caller: Caller,
    Path(node): Path<String>,
    body: axum::extract::Request,
) -> ApiResult<Reply<ClusterJson>> {
    caller.require(Permission::ManageService)?;
    // Who may ask and what it names are checked before the body: a key
    // that may not forget nodes is told so, not that its body is wrong.
    if let Err(e) = strata_common::names::validate_node_id(&node) {
        return Err(ApiError::new(ErrorCode::InvalidName, e.to_string()));
    }
    let Json(req) = Json::<ForgetNode>::from_request(body, &()).await?;
    let Some(cluster) = &state.cluster else {
        return Err(ApiError::invalid(
            "this server is not in cluster mode (serving.cluster = false): it serves the \
             whole namespace, and only a node that stopped serving can be declared lost. \
             To let a standby take over from a serving node whose data directory is gone \
             for good, run `strata metadata forget-node` against the metadata store",
        ));
    };
    let catalog = state.credentials.catalog();
    let now_ms = state.engine.clock().now_ms();
    let by = format!("access key {}", caller.principal.access_key);
    let forgotten = forget(
        catalog,
        &node,
        &by,
        now_ms,
        cluster.balancer.lease_ttl_ms(),
        req.lose_unuploaded_messages,
        "Send {\"lose_unuploaded_messages\": true} to confirm",
    )
    .await
    .map_err(unavailable)?;
    match forgotten {
        Ok((record, _)) => {
            if let NodeState::Lost { lost_bytes, .. } = record.state {
                tracing::warn!(
                    node,
                    by,
                    lost_bytes,
                    "node declared lost: its WAL is abandoned and its tenants will be placed on other nodes"
                );
            }
            cluster.balancer.kick();
        }
        Err(Refusal::Unknown(_)) => return Err(not_registered(&node)),
        Err(Refusal::Conflict(why)) => return Err(ApiError::new(ErrorCode::Conflict, why)),
        Err(Refusal::Unconfirmed(why)) => return Err(ApiError::invalid(why)),
    }
    crate::cluster::status::cluster_status(catalog, &state.engine.config().node_id, now_ms)
        .await
        .map(Reply)
        .map_err(unavailable)
}

fn not_registered(node: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no node {node:?} is registered in this cluster"),
    )
}

fn unavailable(e: CatalogError) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, format!("metadata store: {e}"))
}
