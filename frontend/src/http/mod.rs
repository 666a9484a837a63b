//! The versioned HTTP/JSON API (`/v1/...`). The OpenAPI document at
//! `/v1/openapi.json` lists every route; a test keeps the two in step.

pub mod admin;
pub mod auth;
pub mod cluster;
mod error;
mod extract;
pub mod groups;
pub mod lookup;
pub mod messages;
pub mod metrics;
pub mod ops;
pub mod pop;
pub mod topics;
pub mod txn;
pub mod usage;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use strata_common::ErrorCode;
use strata_engine::Engine;

pub use error::{ApiError, ApiResult};
pub use metrics::{Metrics, NodeCollector};

/// Everything a handler needs, behind one `Arc`: axum clones the state for
/// every extractor and middleware of every request, and a clone of the
/// fields themselves (several reference counts and the forwarder's strings)
/// showed up in publish profiles.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Handles>);

impl AppState {
    pub fn new(handles: Handles) -> Self {
        Self(Arc::new(handles))
    }
}

impl std::ops::Deref for AppState {
    type Target = Handles;

    fn deref(&self) -> &Handles {
        &self.0
    }
}

/// The services and settings [`AppState`] shares.
#[derive(Debug)]
pub struct Handles {
    pub engine: Arc<Engine>,
    /// In cluster mode: where tenants are served, and the client that
    /// forwards requests to other nodes.
    pub cluster: Option<crate::cluster::forward::Forwarder>,
    pub metrics: Arc<Metrics>,
    pub credentials: strata_tenancy::Credentials,
    pub auth: AuthSettings,
    /// Per-tenant rate quotas (token buckets).
    pub limiter: Arc<strata_tenancy::RateLimiter>,
    /// Durable usage records (for `GET /v1/usage`).
    pub usage: Arc<strata_tenancy::UsageLedger>,
    /// Operation names requests are metered under.
    pub operations: crate::metering::Operations,
}

/// How requests are authenticated.
#[derive(Debug, Clone, Copy)]
pub struct AuthSettings {
    /// Requests without credentials act as a service admin of tenant
    /// "default". Only for local development; off by default.
    pub anonymous: bool,
    /// Largest accepted difference between `x-mq-date-time` and our clock.
    pub max_clock_skew_ms: i64,
}

/// Every route as (method, OpenAPI path). The OpenAPI test checks this list
/// against the document; `router` registers exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/status"),
    ("get", "/v1/cluster"),
    ("post", "/v1/cluster/nodes/{node}/forget"),
    ("get", "/v1/topics"),
    ("post", "/v1/topics"),
    ("get", "/v1/topics/{topic}"),
    ("delete", "/v1/topics/{topic}"),
    ("get", "/v1/topics/{topic}/messages"),
    ("post", "/v1/topics/{topic}/messages"),
    ("get", "/v1/topics/{topic}/transactions"),
    ("post", "/v1/topics/{topic}/transactions"),
    (
        "post",
        "/v1/topics/{topic}/transactions/{transaction_id}/commit",
    ),
    (
        "post",
        "/v1/topics/{topic}/transactions/{transaction_id}/rollback",
    ),
    ("get", "/v1/topics/{topic}/queues/{queue}"),
    ("get", "/v1/topics/{topic}/queues/{queue}/messages"),
    ("get", "/v1/topics/{topic}/queues/{queue}/offset"),
    ("get", "/v1/groups"),
    ("post", "/v1/groups"),
    ("get", "/v1/groups/{group}"),
    ("delete", "/v1/groups/{group}"),
    ("get", "/v1/groups/{group}/offsets/{topic}/{queue}"),
    ("put", "/v1/groups/{group}/offsets/{topic}/{queue}"),
    ("put", "/v1/groups/{group}/offsets/{topic}"),
    ("get", "/v1/whoami"),
    ("get", "/v1/tenants"),
    ("post", "/v1/tenants"),
    ("get", "/v1/tenants/{tenant}"),
    ("delete", "/v1/tenants/{tenant}"),
    ("get", "/v1/keys"),
    ("post", "/v1/keys"),
    ("delete", "/v1/keys/{access_key}"),
    ("post", "/v1/keys/{access_key}/rotate"),
    ("put", "/v1/tenants/{tenant}/plan"),
    ("get", "/v1/plans"),
    ("get", "/v1/plans/{plan}"),
    ("put", "/v1/plans/{plan}"),
    ("get", "/v1/usage"),
    ("post", "/v1/groups/{group}/receive"),
    ("post", "/v1/groups/{group}/invisible"),
    ("post", "/v1/groups/{group}/ack"),
];

pub fn router(state: AppState, max_request_bytes: usize) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/openapi.json", get(ops::openapi))
        .route("/v1/status", get(ops::status))
        .route("/v1/cluster", get(ops::cluster))
        .route(
            "/v1/cluster/nodes/{node}/forget",
            post(cluster::forget_node),
        )
        .route("/v1/topics", get(topics::list).post(topics::create))
        .route(
            "/v1/topics/{topic}",
            get(topics::describe).delete(topics::delete),
        )
        .route(
            "/v1/topics/{topic}/messages",
            get(lookup::find).post(messages::publish),
        )
        .route(
            "/v1/topics/{topic}/transactions",
            get(txn::list).post(txn::begin),
        )
        .route(
            "/v1/topics/{topic}/transactions/{transaction_id}/commit",
            axum::routing::post(txn::commit),
        )
        .route(
            "/v1/topics/{topic}/transactions/{transaction_id}/rollback",
            axum::routing::post(txn::rollback),
        )
        .route("/v1/topics/{topic}/queues/{queue}", get(topics::queue))
        .route(
            "/v1/topics/{topic}/queues/{queue}/messages",
            get(messages::read),
        )
        .route(
            "/v1/topics/{topic}/queues/{queue}/offset",
            get(topics::offset_at_time),
        )
        .route("/v1/groups", get(groups::list).post(groups::create))
        .route(
            "/v1/groups/{group}",
            get(groups::describe).delete(groups::delete),
        )
        .route(
            "/v1/groups/{group}/offsets/{topic}/{queue}",
            put(groups::commit).get(groups::get_offset),
        )
        .route("/v1/groups/{group}/offsets/{topic}", put(groups::reset))
        .route("/v1/whoami", get(admin::whoami))
        .route(
            "/v1/tenants",
            get(admin::list_tenants).post(admin::create_tenant),
        )
        .route(
            "/v1/tenants/{tenant}",
            get(admin::describe_tenant).delete(admin::delete_tenant),
        )
        .route("/v1/tenants/{tenant}/plan", put(admin::set_tenant_plan))
        .route("/v1/plans", get(admin::list_plans))
        .route(
            "/v1/plans/{plan}",
            get(admin::get_plan).put(admin::put_plan),
        )
        .route("/v1/usage", get(usage::get_usage))
        .route(
            "/v1/groups/{group}/receive",
            axum::routing::post(pop::receive),
        )
        .route("/v1/groups/{group}/ack", axum::routing::post(pop::ack))
        .route(
            "/v1/groups/{group}/invisible",
            axum::routing::post(pop::change_invisible),
        )
        .route("/v1/keys", get(admin::list_keys).post(admin::create_key))
        .route(
            "/v1/keys/{access_key}",
            axum::routing::delete(admin::revoke_key),
        )
        .route(
            "/v1/keys/{access_key}/rotate",
            axum::routing::post(admin::rotate_key),
        )
        .fallback(|| async {
            ApiError::new(
                ErrorCode::NotFound,
                "no such endpoint; see /v1/openapi.json",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "method not allowed on this endpoint; see /v1/openapi.json",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::cluster::forward::to_tenant_node,
        ))
        .layer(axum::middleware::from_fn(move |request, next| {
            refuse_declared_oversize(max_request_bytes, request, next)
        }))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track_requests,
        ))
        .layer(DefaultBodyLimit::max(max_request_bytes))
        .with_state(state)
}

/// A request whose `Content-Length` is over the limit is refused before
/// anything reads it, saying both sizes; a body without a length that turns
/// out too long is refused where it is read (`error.rs`).
async fn refuse_declared_oversize(
    max_request_bytes: usize,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > max_request_bytes as u64 => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "request body of {len} bytes exceeds the limit of {max_request_bytes} bytes \
                 (http.max_request_bytes)"
            ),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}
