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
use strata_tenancy::{
    AuthError, DATE_HEADER, Permission, Principal, Quotas, Rate, RateLimiter, Role,
};

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
            // Service admins operate the service and are not metered by
            // quotas; everyone else pays one request token per call.
            let quotas = if p.role == Role::Admin {
                None
            } else {
                match state.credentials.quotas_for(&p.tenant).await {
                    Ok(q) => Some(q),
                    Err(e) => return ApiError::from(e).into_response(),
                }
            };
            if let Some(q) = &quotas
                && let Err(e) = state.limiter.acquire(&p.tenant, Rate::Requests, q, 1).await
            {
                return ApiError::from(e).into_response();
            }
            let op = state.operations.name(
                request.method().as_str(),
                request
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map(|m| m.as_str()),
            );
            let tenant = p.tenant.clone();
            request.extensions_mut().insert(TenantQuotas(quotas));
            request.extensions_mut().insert(p);
            let response = next.run(request).await;
            // The credential's tenant pays for the request (also when a
            // service admin acts on another tenant); refused-by-quota
            // requests above are not billed.
            state.engine.meter().add_request(&tenant, op);
            response
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
    /// The caller's quotas; `None` for service admins, who are not limited.
    pub quotas: Option<Quotas>,
}

/// The quotas the middleware looked up, handed to the handlers.
#[derive(Debug, Clone, Copy)]
struct TenantQuotas(Option<Quotas>);

impl Caller {
    /// Fails with PERMISSION_DENIED unless the caller's role allows `p`.
    pub fn require(&self, p: Permission) -> Result<&Self, ApiError> {
        self.principal.require(p)?;
        Ok(self)
    }

    pub fn is_admin(&self) -> bool {
        self.principal.role == Role::Admin
    }

    /// Takes `amount` from the caller's `rate` quota, waiting when the
    /// limiter throttles, or TOO_MANY_REQUESTS with a retry hint (nothing
    /// taken).
    pub async fn take(
        &self,
        limiter: &RateLimiter,
        rate: Rate,
        amount: u64,
    ) -> Result<(), ApiError> {
        match &self.quotas {
            Some(q) => Ok(limiter
                .acquire(&self.principal.tenant, rate, q, amount)
                .await?),
            None => Ok(()),
        }
    }

    /// Charges a cost known only afterwards (e.g. bytes read); the caller's
    /// next requests wait it off.
    pub fn charge(&self, limiter: &RateLimiter, rate: Rate, amount: u64) {
        if let Some(q) = &self.quotas {
            limiter.charge(&self.principal.tenant, rate, q, amount);
        }
    }

    /// Fails with QUOTA_EXCEEDED once the tenant stores more than its plan's
    /// `max_stored_bytes` (as of the last storage sample).
    pub fn within_stored_bytes(&self, stored: impl FnOnce() -> u64) -> Result<(), ApiError> {
        match self
            .quotas
            .as_ref()
            .and_then(|q| q.over_stored_bytes(&self.principal.tenant, stored))
        {
            Some(why) => Err(ApiError::new(ErrorCode::QuotaExceeded, why)),
            None => Ok(()),
        }
    }

    /// [`Caller::take`] for several rates: all are taken or none.
    pub async fn take_all(
        &self,
        limiter: &RateLimiter,
        wants: &[(Rate, u64)],
    ) -> Result<(), ApiError> {
        match &self.quotas {
            Some(q) => Ok(limiter
                .acquire_all(&self.principal.tenant, q, wants)
                .await?),
            None => Ok(()),
        }
    }

    /// Fails with QUOTA_EXCEEDED when `used + adding` passes `limit` (0 = none).
    pub fn within(
        &self,
        what: &str,
        limit: impl Fn(&Quotas) -> u64,
        used: u64,
        adding: u64,
    ) -> Result<(), ApiError> {
        let Some(q) = &self.quotas else {
            return Ok(());
        };
        let limit = limit(q);
        if limit > 0 && used.saturating_add(adding) > limit {
            return Err(ApiError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "tenant {} may have at most {limit} {what}; it has {used} and this would add {adding}",
                    self.principal.tenant
                ),
            ));
        }
        Ok(())
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
        let quotas = parts.extensions.get::<TenantQuotas>().and_then(|q| q.0);
        Ok(Caller {
            principal,
            tenant,
            quotas,
        })
    }
}

impl From<strata_tenancy::TenancyError> for ApiError {
    fn from(e: strata_tenancy::TenancyError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}
