//! Metered usage: `GET /v1/usage`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// RFC 3339 time (`2026-11-25T00:00:00Z`) or Unix milliseconds.
    pub start: Option<String>,
    pub end: Option<String>,
    /// `minute`, `hour` (default) or `day`.
    pub granularity: Option<String>,
    /// `json` (default) or `csv`; `Accept: text/csv` also selects CSV.
    pub format: Option<String>,
    /// Service admins only: every tenant's usage.
    #[serde(default)]
    pub all_tenants: bool,
}

/// One bucket of one tenant's usage.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct UsageRow {
    pub tenant: String,
    /// When the tenant was deleted, for a deleted tenant's rows (an
    /// all-tenants bill lists them, apart from a later tenant of the name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_deleted_ms: Option<i64>,
    /// Bucket start, RFC 3339 UTC.
    pub start: String,
    pub start_ms: i64,
    pub requests: BTreeMap<String, u64>,
    pub requests_total: u64,
    pub published_messages: u64,
    pub published_bytes: u64,
    pub delivered_messages: u64,
    pub delivered_bytes: u64,
    pub redeliveries: u64,
    pub hot_byte_seconds: u64,
    pub cold_byte_seconds: u64,
    pub hot_byte_hours: f64,
    pub cold_byte_hours: f64,
    pub object_puts: u64,
    pub object_gets: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UsageReply {
    pub granularity: String,
    pub start: String,
    pub end: String,
    /// Buckets with any usage, by tenant then time.
    pub usage: Vec<UsageRow>,
    /// Per tenant, the sum over the range (`start` is the range start).
    pub totals: Vec<UsageRow>,
}
