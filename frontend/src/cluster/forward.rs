//! Any node takes any HTTP request: a request for a tenant served by
//! another node is forwarded there, whole (method, path, query, headers,
//! body), and its answer returned as is. The forwarding node only
//! identifies the caller; the serving node admits it (rate limits,
//! metering), so a tenant's quotas are counted once, where it is served.
//! A request served here is authenticated once: admission takes the
//! principal identified here.
//! A forwarded request is never forwarded again: a node that finds the
//! tenant moved answers 503 and the client retries.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use strata_common::ErrorCode;
use strata_tenancy::DATE_HEADER;

use super::balance::{Balancer, Route};
use crate::http::AppState;
use crate::http::auth::TENANT_HEADER;

/// What a client is told when a forwarded request was sent but no answer
/// came back: the owner may have done it before it stopped (4 of 4 such
/// publishes had been stored, in a tester's kills), so a blind retry may
/// do it twice.
pub const MAY_HAVE_BEEN_DONE: &str = "the node may have carried it out before it stopped \
     (a publish may be stored, and a retry may store it again)";

/// Names the node that forwarded a request.
pub const FORWARDED_HEADER: &str = "x-strata-forwarded-by";
/// Names the node that served a tenant's request (on the answer), so a
/// client or load balancer can send the tenant's next requests there.
pub const SERVED_BY_HEADER: &str = "x-strata-served-by";

/// What the HTTP layer needs for cluster routing.
#[derive(Debug, Clone)]
pub struct Forwarder {
    pub balancer: Arc<Balancer>,
    pub client: reqwest::Client,
    pub node: String,
    pub max_request_bytes: usize,
}

/// Routes whose requests act on one tenant's resources.
fn tenant_scoped(path: &str) -> bool {
    ["/v1/topics", "/v1/groups"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// The tenant a `DELETE /v1/tenants/{tenant}` names: deleted on the node
/// that serves it, which deletes its hidden topics first.
fn deleted_tenant(request: &Request) -> Option<String> {
    if request.method() != axum::http::Method::DELETE {
        return None;
    }
    let tenant = request.uri().path().strip_prefix("/v1/tenants/")?;
    (!tenant.is_empty() && !tenant.contains('/')).then(|| tenant.to_string())
}

/// The middleware: serves here, forwards, or answers 503 (see module docs).
pub async fn to_tenant_node(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(cluster) = state.cluster.clone() else {
        return next.run(request).await;
    };
    if let Some(tenant) = deleted_tenant(&request) {
        // Admission checks the service admin wherever it is served.
        let forwarded = request.headers().contains_key(FORWARDED_HEADER);
        return match cluster.balancer.route(&tenant) {
            Route::Node {
                http_addr, node, ..
            } if !forwarded => forward(&cluster, &http_addr, &node, request).await,
            // Served here, or nowhere: the catalog refuses a tenant whose
            // hidden topics no node could delete.
            _ => next.run(request).await,
        };
    }
    if !tenant_scoped(request.uri().path()) {
        return next.run(request).await;
    }
    let authorization = header(&request, AUTHORIZATION.as_str());
    let date_time = header(&request, DATE_HEADER);
    let asked = header(&request, TENANT_HEADER);
    let identified = state
        .gate()
        .identify(authorization.as_deref(), date_time.as_deref())
        .await;
    let principal = match identified {
        Ok(p) => p,
        // The normal admission answers with the error.
        Err(_) => return next.run(request).await,
    };
    let tenant = asked.unwrap_or_else(|| principal.tenant.clone());
    if !state.gate().may_act_as(&principal, &tenant).await {
        // Refused by admission where it arrived (403; 404 for a service
        // admin naming no tenant), and at once: routing first would tell
        // the caller whether the tenant exists and which node serves it.
        return next.run(request).await;
    }
    let forwarded = request.headers().contains_key(FORWARDED_HEADER);
    let route = if forwarded {
        cluster.balancer.route(&tenant)
    } else {
        cluster.balancer.wait_placed(&tenant).await
    };
    match route {
        Route::Here => {
            // Authenticated once: admission takes the principal from here.
            let mut request = request;
            request.extensions_mut().insert(principal);
            let mut response = next.run(request).await;
            if let Ok(node) = axum::http::HeaderValue::from_str(&cluster.node) {
                response.headers_mut().insert(SERVED_BY_HEADER, node);
            }
            response
        }
        Route::Node {
            http_addr, node, ..
        } if !forwarded => forward(&cluster, &http_addr, &node, request).await,
        _ => crate::http::ApiError::new(
            ErrorCode::Unavailable,
            format!(
                "tenant {tenant} is moving between nodes (or not placed yet); retry in a moment"
            ),
        )
        .into_response(),
    }
}

fn header(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Headers that belong to one hop, not to the request.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "host" | "content-length" | "connection" | "transfer-encoding" | "keep-alive" | "upgrade"
    )
}

async fn forward(cluster: &Forwarder, addr: &str, node: &str, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, cluster.max_request_bytes).await {
        Ok(b) => b,
        Err(e) => {
            return crate::http::ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "request body could not be read for forwarding: {e} (the limit is {} bytes, \
                     http.max_request_bytes)",
                    cluster.max_request_bytes
                ),
            )
            .into_response();
        }
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str());
    let mut outgoing = cluster
        .client
        .request(parts.method.clone(), format!("http://{addr}{path}"))
        .header(FORWARDED_HEADER, cluster.node.as_str())
        .body(body);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name.as_str()) {
            outgoing = outgoing.header(name, value);
        }
    }
    // The exchange, given up if the node's heartbeat lapses meanwhile.
    let exchange = async {
        let answer = outgoing.send().await?;
        let status = answer.status();
        let headers = answer.headers().clone();
        answer.bytes().await.map(|bytes| (status, headers, bytes))
    };
    let outcome = tokio::select! {
        outcome = exchange => outcome,
        () = cluster.balancer.until_not_live(node) => {
            return crate::http::ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "node {node} at {addr} stopped heartbeating while it had the request \
                     (paused, cut off or stopped); its tenants move once its WAL is \
                     adopted; {MAY_HAVE_BEEN_DONE}"
                ),
            )
            .into_response();
        }
    };
    let (status, headers, bytes) = match outcome {
        Ok(answer) => answer,
        Err(e) => {
            let outcome = if e.is_connect() {
                // Nothing was sent. The node may have stopped and its
                // tenants moved: route the client's retry by what the
                // metadata store says now, not by the last pass's view.
                if let Err(why) = cluster.balancer.refresh_view().await {
                    tracing::debug!(error = %why, "refreshing the routing view failed");
                }
                "nothing was sent; retry"
            } else {
                MAY_HAVE_BEEN_DONE
            };
            return crate::http::ApiError::new(
                ErrorCode::Unavailable,
                format!("forwarding to node {node} at {addr} failed: {e}; {outcome}"),
            )
            .into_response();
        }
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !hop_by_hop(name.as_str()) {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}
