//! Tenants and access keys: the admin API.
//!
//! A service admin manages every tenant and key. A tenant admin manages the
//! keys of its own tenant (never admin keys); keys of other tenants are
//! reported as not found, so their existence is not revealed.

use axum::Json as Reply;
use axum::extract::State;
use axum::http::StatusCode;
pub use strata_client::api::admin::{
    CreateKey, CreateTenant, IssuedKeyJson, KeyFilter, KeyJson, KeyList, PlanJson, PlanList,
    SetPlan, TenantJson, TenantList, WhoAmI,
};
use strata_common::ErrorCode;
use strata_tenancy::{IssuedKey, KeyInfo, Permission, Quotas, Role};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path, Query};

fn tenant_json(t: strata_metadata::TenantRecord) -> TenantJson {
    TenantJson {
        name: t.name,
        plan: t.plan,
        created_ms: t.created_ms,
    }
}

pub async fn create_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateTenant>,
) -> ApiResult<(StatusCode, Reply<TenantJson>)> {
    caller.require(Permission::ManageService)?;
    let plan = req.plan.unwrap_or_else(|| "default".into());
    let t = state.credentials.create_tenant(&req.name, &plan).await?;
    Ok((StatusCode::CREATED, Reply(tenant_json(t))))
}

pub async fn list_tenants(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Reply<TenantList>> {
    caller.require(Permission::ManageService)?;
    let tenants = state.credentials.list_tenants().await?;
    Ok(Reply(TenantList {
        tenants: tenants.into_iter().map(tenant_json).collect(),
    }))
}

/// A service admin sees any tenant; a tenant admin only its own.
fn own_or_admin(caller: &Caller, tenant: &str) -> ApiResult<()> {
    if caller.is_admin() || caller.principal.tenant == tenant {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::TenantNotFound,
        format!("tenant {tenant:?} does not exist"),
    ))
}

pub async fn describe_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> ApiResult<Reply<TenantJson>> {
    caller.require(Permission::ManageTenant)?;
    own_or_admin(&caller, &tenant)?;
    let t = state.credentials.get_tenant(&tenant).await?;
    Ok(Reply(tenant_json(t)))
}

pub async fn delete_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> ApiResult<Reply<TenantJson>> {
    caller.require(Permission::ManageService)?;
    strata_tenancy::validate_tenant(&tenant)?;
    // 404 for a tenant that does not exist, before anything is looked at.
    state.credentials.get_tenant(&tenant).await?;
    // Its hidden topics (delayed messages and transactions of topics it
    // already deleted) go first, where it is served (a cluster forwards
    // this request there).
    state.engine.delete_hidden_topics(&tenant).await?;
    let t = state.credentials.delete_tenant(&tenant).await?;
    Ok(Reply(tenant_json(t)))
}

fn key_json(k: KeyInfo) -> KeyJson {
    KeyJson {
        access_key: k.access_key,
        tenant: k.tenant,
        role: k.role.to_string(),
        description: k.description,
        created_ms: k.created_ms,
        updated_ms: k.updated_ms,
        revoked_ms: k.revoked_ms,
    }
}

fn issued_json(k: IssuedKey) -> IssuedKeyJson {
    IssuedKeyJson {
        access_key: k.access_key,
        secret_key: k.secret_key.expose().to_string(),
        tenant: k.tenant,
        role: k.role.to_string(),
    }
}

pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateKey>,
) -> ApiResult<(StatusCode, Reply<IssuedKeyJson>)> {
    caller.require(Permission::ManageTenant)?;
    let role: Role = req
        .role
        .parse()
        .map_err(|e: strata_tenancy::ParseRoleError| ApiError::invalid(e.to_string()))?;
    let tenant = req.tenant.unwrap_or_else(|| caller.tenant.clone());
    own_or_admin(&caller, &tenant)?;
    if role == Role::Admin && !caller.is_admin() {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "only a service admin may create admin keys",
        ));
    }
    let issued = state
        .credentials
        .create_key(&tenant, role, req.description.as_deref().unwrap_or(""))
        .await?;
    tracing::info!(access_key = %issued.access_key, tenant = %issued.tenant, role = %issued.role, by = %caller.principal.access_key, "access key created");
    Ok((StatusCode::CREATED, Reply(issued_json(issued))))
}

pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<KeyFilter>,
) -> ApiResult<Reply<KeyList>> {
    caller.require(Permission::ManageTenant)?;
    // An admin acting on a tenant (x-strata-tenant) lists that tenant's keys.
    let acting = (caller.tenant != caller.principal.tenant).then(|| caller.tenant.clone());
    let tenant = match (caller.is_admin(), filter.tenant.or(acting)) {
        (true, t) => t,
        (false, Some(t)) => {
            own_or_admin(&caller, &t)?;
            Some(t)
        }
        (false, None) => Some(caller.principal.tenant.clone()),
    };
    if let Some(t) = &tenant {
        // A tenant that does not exist has no keys to list: say so, as
        // every other request naming it does.
        state.credentials.get_tenant(t).await?;
    }
    let keys = state.credentials.list_keys(tenant.as_deref()).await?;
    // A tenant-admin sees the keys it may manage: not service admin keys,
    // even those issued in its tenant (`manageable` refuses them).
    let admin = caller.is_admin();
    Ok(Reply(KeyList {
        keys: keys
            .into_iter()
            .filter(|k| admin || k.role != Role::Admin)
            .map(key_json)
            .collect(),
    }))
}

/// The key, if the caller may manage it; KEY_NOT_FOUND otherwise.
async fn manageable(state: &AppState, caller: &Caller, access_key: &str) -> ApiResult<KeyInfo> {
    caller.require(Permission::ManageTenant)?;
    let not_found = || {
        ApiError::new(
            ErrorCode::KeyNotFound,
            format!("access key {access_key:?} does not exist"),
        )
    };
    let key = state
        .credentials
        .get_key(access_key)
        .await
        .map_err(|_| not_found())?;
    if !caller.is_admin() && (key.tenant != caller.principal.tenant || key.role == Role::Admin) {
        return Err(not_found());
    }
    Ok(key)
}

pub async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(access_key): Path<String>,
) -> ApiResult<Reply<IssuedKeyJson>> {
    manageable(&state, &caller, &access_key).await?;
    let issued = state.credentials.rotate_key(&access_key).await?;
    tracing::info!(access_key = %access_key, by = %caller.principal.access_key, "access key rotated");
    Ok(Reply(issued_json(issued)))
}

pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(access_key): Path<String>,
) -> ApiResult<Reply<KeyJson>> {
    manageable(&state, &caller, &access_key).await?;
    state.credentials.revoke_key(&access_key).await?;
    let key = state.credentials.get_key(&access_key).await?;
    tracing::info!(access_key = %access_key, by = %caller.principal.access_key, "access key revoked");
    Ok(Reply(key_json(key)))
}

pub async fn whoami(caller: Caller) -> Reply<WhoAmI> {
    Reply(WhoAmI {
        access_key: caller.principal.access_key.clone(),
        tenant: caller.principal.tenant.clone(),
        role: caller.principal.role.to_string(),
        acting_tenant: caller.tenant,
    })
}

pub async fn list_plans(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Reply<PlanList>> {
    caller.require(Permission::ManageService)?;
    let plans = state.credentials.list_plans().await?;
    Ok(Reply(PlanList {
        plans: plans
            .into_iter()
            .map(|(name, quotas)| PlanJson { name, quotas })
            .collect(),
    }))
}

pub async fn get_plan(
    State(state): State<AppState>,
    caller: Caller,
    Path(plan): Path<String>,
) -> ApiResult<Reply<PlanJson>> {
    caller.require(Permission::ManageService)?;
    let quotas = state.credentials.get_plan(&plan).await?;
    Ok(Reply(PlanJson { name: plan, quotas }))
}

/// Creates or replaces a plan; tenants on it get the new quotas within
/// seconds (quotas are cached briefly).
/// `PUT /v1/plans/{plan}`: the fields given replace the plan's; the ones
/// left out keep their values (a new plan's are the `default` plan's), so
/// `{"max_topics": 5}` on `unlimited` does not also give it default rates.
pub async fn put_plan(
    State(state): State<AppState>,
    caller: Caller,
    Path(plan): Path<String>,
    Json(fields): Json<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<Reply<PlanJson>> {
    caller.require(Permission::ManageService)?;
    let current = match state.credentials.get_plan(&plan).await {
        Ok(quotas) => quotas,
        Err(strata_tenancy::TenancyError::PlanNotFound { .. }) => {
            state.credentials.get_plan("default").await?
        }
        Err(e) => return Err(e.into()),
    };
    let mut merged = match serde_json::to_value(current) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => return Err(ApiError::new(ErrorCode::Internal, "cannot encode a plan")),
    };
    merged.extend(fields);
    let quotas: Quotas = serde_json::from_value(serde_json::Value::Object(merged))
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("invalid plan: {e}")))?;
    state.credentials.set_plan(&plan, quotas).await?;
    tracing::info!(plan = %plan, by = %caller.principal.access_key, "plan set");
    Ok(Reply(PlanJson { name: plan, quotas }))
}

pub async fn set_tenant_plan(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    Json(req): Json<SetPlan>,
) -> ApiResult<Reply<TenantJson>> {
    caller.require(Permission::ManageService)?;
    state
        .credentials
        .set_tenant_plan(&tenant, &req.plan)
        .await?;
    let t = state.credentials.get_tenant(&tenant).await?;
    Ok(Reply(tenant_json(t)))
}
