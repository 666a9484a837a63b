//! Strata's tenancy and credentials layer: tenants, access keys with
//! secrets sealed under a master key, RocketMQ 5 HMAC and HTTP bearer
//! authentication, and the roles and permissions callers are checked
//! against.
//!
//! Secrets never appear in Debug or Display output ([`SecretKey`] and
//! [`MasterKey`] redact themselves); only [`SecretKey::expose`] reveals one.

pub mod credentials;
mod date_time;
pub mod error;
pub mod principal;
pub mod quota;
pub mod roles;
pub mod secrets;
pub mod signature;
pub mod usage;

pub use credentials::{
    Credentials, DEFAULT_CACHE_TTL_MS, DEFAULT_PLAN, DEFAULT_TENANT, IssuedKey, KeyInfo,
    MAX_TENANT_LEN, OUTAGE_BACKOFF_MS, REFRESH_WAIT, RELOAD_AFTER_MS, STALE_LIMIT_MS,
    parse_credentials, validate_tenant,
};
pub use error::{AuthError, TenancyError};
pub use principal::Principal;
pub use quota::{Quotas, Rate, RateExceeded, RateLimiter, ThrottleCounts, builtin_plan};
pub use roles::{ParseRoleError, Permission, Role};
pub use secrets::{MasterKey, SecretKey, SecretsError, generate_access_key, generate_secret_key};
pub use signature::{
    Authorization, DATE_HEADER, check_skew, format_date_time, parse_authorization, parse_date_time,
    sign, verify,
};
pub use usage::{
    FlushSummary, Granularity, MAX_USAGE_BUCKETS, UnflushedUsage, UsageBucket, UsageLedger,
};
