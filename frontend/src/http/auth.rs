//! Authentication and authorization of HTTP requests.
//!
//! Every request except `/healthz` and `/v1/openapi.json` must carry
//! credentials: `Authorization: Bearer <access_key>:<secret_key>`, or the
//! RocketMQ 5 scheme `Authorization: MQv2-HMAC-SHA1 Credential=<access_key>,
//! SignedHeaders=x-mq-date-time, Signature=<hex>` with an `x-mq-date-time`
//! header within the allowed clock skew. The middleware runs the pipeline's
//! admission ([`Gate::admit`]) and attaches the admitted principal to the
//! request; handlers take a [`Caller`], which names the tenant the request
//! acts on (`x-strata-tenant`, for service admins).

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use strata_common::ErrorCode;
use strata_tenancy::DATE_HEADER;

pub use crate::pipeline::Caller;
use crate::pipeline::{Admitted, Gate};

use super::AppState;
use super::error::ApiError;

/// Header with which a service admin acts on another tenant's resources.
pub use strata_client::http::TENANT_HEADER;

/// Paths anyone may call.
const PUBLIC: &[&str] = &["/healthz", "/readyz", "/v1/openapi.json"];

impl AppState {
    /// The pipeline's admission stage over this server's credentials.
    pub fn gate(&self) -> Gate<'_> {
        Gate {
            engine: &self.engine,
            credentials: &self.credentials,
            limiter: &self.limiter,
            max_clock_skew_ms: self.auth.max_clock_skew_ms,
            anonymous: self.auth.anonymous,
        }
    }
}

/// Admits every request but the public ones (see [`Gate::admit`]) and hands
/// the admitted principal to the handlers' [`Caller`] extractor.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if PUBLIC.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let authorization = header_value(&request, AUTHORIZATION.as_str());
    let date_time = header_value(&request, DATE_HEADER);
    let operation = state.operations.name(
        request.method().as_str(),
        request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map(|m| m.as_str()),
    );
    // In cluster mode the router already authenticated the request.
    let identified = request
        .extensions_mut()
        .remove::<strata_tenancy::Principal>();
    let admitted = match identified {
        Some(principal) => state.gate().admit_identified(principal, operation).await,
        None => {
            state
                .gate()
                .admit(authorization.as_deref(), date_time.as_deref(), operation)
                .await
        }
    };
    match admitted {
        Ok(admitted) => {
            request.extensions_mut().insert(admitted);
            next.run(request).await
        }
        Err(e) => {
            let unauthenticated = e.code == ErrorCode::Unauthenticated;
            let mut response = e.into_response();
            if unauthenticated {
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer realm=\"strata\", MQv2-HMAC-SHA1"),
                );
            }
            response
        }
    }
}

fn header_value(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let admitted = parts.extensions.get::<Admitted>().cloned().ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthenticated,
                "no credentials were checked for this route",
            )
        })?;
        let asked = parts
            .headers
            .get(TENANT_HEADER)
            .and_then(|v| v.to_str().ok());
        state
            .gate()
            .act_as(admitted, asked, &format!("the {TENANT_HEADER} header"))
            .await
    }
}
