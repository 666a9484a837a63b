//! [`Credentials`]: tenants, access keys and authentication over the
//! catalog, with secrets sealed under the [`MasterKey`] and opened keys
//! cached in memory.
//!
//! # Cache
//!
//! Authentication runs on every request, so opened keys are cached and a
//! request costs neither a metadata read nor a decryption. Changes made
//! through this `Credentials` (rotate, revoke, tenant deletion) update the
//! cache at once. Changes made on other nodes are picked up when an entry
//! expires, after [`DEFAULT_CACHE_TTL_MS`] unless set with
//! [`Credentials::with_cache_ttl_ms`]; that is the bound on how long a key
//! revoked elsewhere keeps working here. Unknown keys are not cached, so
//! each attempt with one costs a metadata read.
//!
//! While the metadata store does not answer (an etcd without quorum
//! answers a read only after its timeouts, 20 s and more), an expired key or
//! plan read from it within [`STALE_LIMIT_MS`] is used as it is once its
//! refresh waited [`REFRESH_WAIT`], and for [`OUTAGE_BACKOFF_MS`] after that
//! without asking again: requests keep being served, or refused for what
//! they are (a node's shut write fence), instead of each waiting out the
//! store. During such an outage the revocation bound is therefore that
//! limit, not the TTL; no revocation can be written meanwhile.

mod auth;
pub use auth::RELOAD_AFTER_MS;
mod bootstrap;
mod cache;
mod keys;
mod outage;
mod plans;
pub use outage::{OUTAGE_BACKOFF_MS, REFRESH_WAIT, STALE_LIMIT_MS};

use std::sync::Arc;

use serde::Serialize;
use strata_common::Clock;
use strata_metadata::{Catalog, CatalogError, TenantRecord};

use crate::error::TenancyError;
use crate::roles::Role;
use crate::secrets::{MasterKey, SecretKey};

pub use bootstrap::{DEFAULT_PLAN, DEFAULT_TENANT, parse_credentials};

/// Longest tenant name.
pub const MAX_TENANT_LEN: usize = 63;
/// How long a cached key is trusted before it is re-read from the catalog.
pub const DEFAULT_CACHE_TTL_MS: i64 = 10_000;

/// Checks a tenant name: 1..=[`MAX_TENANT_LEN`] of `[A-Za-z0-9_-]`.
///
/// The alphabet is the one topic and group names use, which the catalog's
/// `/`-separated keys rely on, and one rule is easier for users than two.
/// The length is shorter than theirs (127) because tenant names are
/// prefixed onto other names and carried in metric labels and logs; 63 is
/// also a DNS label's limit, which keeps per-tenant hostnames possible for
/// names in lowercase.
pub fn validate_tenant(name: &str) -> Result<(), TenancyError> {
    let ok = (1..=MAX_TENANT_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if ok {
        Ok(())
    } else {
        Err(TenancyError::InvalidTenantName {
            name: name.to_string(),
        })
    }
}

/// A newly created or rotated key. This is the only time the secret is
/// handed out; Debug redacts it.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub access_key: String,
    pub secret_key: SecretKey,
    pub tenant: String,
    pub role: Role,
}

/// What may be shown about a key: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub access_key: String,
    pub tenant: String,
    pub role: Role,
    pub description: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub revoked_ms: Option<i64>,
}

/// Tenants, keys and authentication. Cheap to clone: clones share the
/// catalog, the master key and the cache.
#[derive(Debug, Clone)]
pub struct Credentials {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    catalog: Catalog,
    master: MasterKey,
    clock: Arc<dyn Clock>,
    cache: cache::KeyCache,
    quotas: plans::QuotaCache,
    outage: outage::Outage,
}

impl Credentials {
    pub fn new(catalog: Catalog, master: MasterKey, clock: Arc<dyn Clock>) -> Self {
        Self::with_cache_ttl_ms(catalog, master, clock, DEFAULT_CACHE_TTL_MS)
    }

    /// Like [`Credentials::new`] with a chosen cache lifetime (see the
    /// [module docs](self)).
    pub fn with_cache_ttl_ms(
        catalog: Catalog,
        master: MasterKey,
        clock: Arc<dyn Clock>,
        cache_ttl_ms: i64,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                catalog,
                master,
                clock,
                cache: cache::KeyCache::new(cache_ttl_ms),
                quotas: plans::QuotaCache::default(),
                outage: outage::Outage::default(),
            }),
        }
    }

    /// The catalog this reads and writes.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Creates a tenant on `plan`, which must exist (stored or built in).
    pub async fn create_tenant(
        &self,
        name: &str,
        plan: &str,
    ) -> Result<TenantRecord, TenancyError> {
        validate_tenant(name)?;
        if plan.is_empty() || plan.len() > MAX_TENANT_LEN || plan.chars().any(char::is_control) {
            return Err(TenancyError::InvalidArgument(format!(
                "plan name must be 1 to {MAX_TENANT_LEN} printable characters"
            )));
        }
        self.ensure_plan_exists(plan).await?;
        Ok(self
            .inner
            .catalog
            .create_tenant(name, plan, self.now_ms())
            .await?)
    }

    /// The tenant `name`; [`CatalogError::TenantNotFound`] if absent.
    pub async fn get_tenant(&self, name: &str) -> Result<TenantRecord, TenancyError> {
        validate_tenant(name)?;
        self.inner
            .catalog
            .get_tenant(name)
            .await?
            .ok_or_else(|| tenant_not_found(name))
    }

    /// Every tenant, sorted by name.
    pub async fn list_tenants(&self) -> Result<Vec<TenantRecord>, TenancyError> {
        Ok(self.inner.catalog.list_tenants().await?)
    }

    /// Every deleted tenant, by name then creation (for billing).
    pub async fn list_deleted_tenants(
        &self,
    ) -> Result<Vec<strata_metadata::DeletedTenant>, TenancyError> {
        Ok(self.inner.catalog.list_deleted_tenants().await?)
    }

    /// Deletes an empty tenant and its keys; its keys stop authenticating on
    /// this node at once (elsewhere when their cache entries expire).
    pub async fn delete_tenant(&self, name: &str) -> Result<TenantRecord, TenancyError> {
        validate_tenant(name)?;
        let mut attempts = 0;
        let record = loop {
            attempts += 1;
            let guard = self
                .keep_a_service_admin(
                    |k| k.tenant != name,
                    || format!("deleting tenant {name} and its keys"),
                )
                .await?;
            // Guarded only when the tenant holds admin keys: deleting any
            // other tenant cannot leave the service without one.
            let holds_admin = self
                .list_keys(Some(name))
                .await?
                .iter()
                .any(|k| k.role == Role::Admin && k.revoked_ms.is_none());
            let guard = holds_admin.then_some(guard);
            match self
                .inner
                .catalog
                .delete_tenant(name, self.now_ms(), guard.as_ref())
                .await
            {
                Err(CatalogError::Conflict(_)) if guard.is_some() && attempts < 3 => continue,
                other => break other?,
            }
        };
        self.inner.cache.evict_tenant(name);
        self.inner.quotas.remove(name);
        Ok(record)
    }
}

fn tenant_not_found(name: &str) -> TenancyError {
    CatalogError::TenantNotFound {
        name: name.to_string(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names() {
        for ok in ["default", "a", "Acme_2-prod", &"x".repeat(63)] {
            assert!(validate_tenant(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "a b", "é", "a.b", &"x".repeat(64)] {
            assert!(
                matches!(
                    validate_tenant(bad),
                    Err(TenancyError::InvalidTenantName { .. })
                ),
                "{bad}"
            );
        }
    }
}
