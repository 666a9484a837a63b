//! Tenants, access keys and plans: `/v1/tenants`, `/v1/keys`, `/v1/plans`, `/v1/whoami`.

use serde::{Deserialize, Serialize};
use strata_common::Quotas;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TenantJson {
    pub name: String,
    pub plan: String,
    pub created_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TenantList {
    pub tenants: Vec<TenantJson>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// The caller's tenant if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// admin, tenant-admin, publisher or consumer.
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct KeyJson {
    pub access_key: String,
    pub tenant: String,
    pub role: String,
    pub description: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_ms: Option<i64>,
}

/// A new or rotated key: the only response that ever carries the secret.
#[derive(Debug, Serialize, Deserialize)]
pub struct IssuedKeyJson {
    pub access_key: String,
    pub secret_key: String,
    pub tenant: String,
    pub role: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct KeyList {
    pub keys: Vec<KeyJson>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFilter {
    pub tenant: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WhoAmI {
    pub access_key: String,
    pub tenant: String,
    pub role: String,
    /// The tenant this request acted on (differs for an admin using x-strata-tenant).
    pub acting_tenant: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PlanJson {
    pub name: String,
    pub quotas: Quotas,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PlanList {
    pub plans: Vec<PlanJson>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPlan {
    pub plan: String,
}
