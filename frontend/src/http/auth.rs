//! Authentication and authorization of HTTP requests.
//!
//! Every request except `/healthz` and `/v1/openapi.json` must carry
//! credentials: `Authorization: Bearer <access_key>:<secret_key>`, or the
//! RocketMQ 5 scheme `Authorization: MQv2-HMAC-SHA1 Credential=<access_key>,
//! SignedHeaders=x-mq-date-time, Signature=<hex>` with an `x-mq-date-time`
//! header within the allowed clock skew. The authenticated [`Principal`] is
//! attached to the request; handlers take a [`Caller`] that resolves the
//! tenant the request acts on and checks permissions.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use strata_common::ErrorCode;
use strata_tenancy::{AuthError, DATE_HEADER, Permission, Principal, Role};

use super::AppState;
use super::error::ApiError;

/// Header with which a service admin acts on another tenant's resources.
pub const TENANT_HEADER: &str = "x-strata-tenant";

/// Paths anyone may call.
const PUBLIC: &[&str] = &["/healthz", "/v1/openapi.json"];

/// The tenant that anonymous requests act on, when anonymous access is
/// explicitly enabled for local development.
pub const ANONYMOUS_TENANT: &str = "default";

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

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
    let principal = match (&authorization, state.auth.anonymous) {
        (None, true) => Ok(Principal {
            access_key: "anonymous".into(),
            tenant: ANONYMOUS_TENANT.into(),
            role: Role::Admin,
        }),
        _ => {
            state
                .credentials
                .authenticate(
                    authorization.as_deref(),
                    date_time.as_deref(),
                    state.auth.max_clock_skew_ms,
                )
                .await
        }
    };
    match principal {
        Ok(p) => {
            request.extensions_mut().insert(p);
            next.run(request).await
        }
        Err(e) => {
            let mut response = ApiError::from(e).into_response();
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"strata\", MQv2-HMAC-SHA1"),
            );
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

/// Who is calling and which tenant the request acts on.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The caller's own tenant, or for a service admin the tenant named in
    /// the `x-strata-tenant` header.
    pub tenant: String,
}

impl Caller {
    /// Fails with PERMISSION_DENIED unless the caller's role allows `p`.
    pub fn require(&self, p: Permission) -> Result<&Self, ApiError> {
        self.principal.require(p)?;
        Ok(self)
    }

    pub fn is_admin(&self) -> bool {
        self.principal.role == Role::Admin
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthenticated,
                    "no credentials were checked for this route",
                )
            })?;
        let asked = parts
            .headers
            .get(TENANT_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let tenant = match asked {
            None => principal.tenant.clone(),
            Some(t) if t == principal.tenant => t,
            Some(t) if principal.role == Role::Admin => {
                // The tenant must exist: otherwise an admin would create
                // topics and groups under a name no tenant owns (or one
                // that is not even a valid tenant name).
                state.credentials.get_tenant(&t).await?;
                t
            }
            Some(_) => {
                return Err(ApiError::new(
                    ErrorCode::PermissionDenied,
                    format!(
                        "only a service admin may use the {TENANT_HEADER} header to act on another tenant"
                    ),
                ));
            }
        };
        Ok(Caller { principal, tenant })
    }
}

impl From<strata_tenancy::TenancyError> for ApiError {
    fn from(e: strata_tenancy::TenancyError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}
