//! What creating a topic or group for a tenant is conditioned on, so that a
//! tenant deletion and a creation racing it cannot both commit.
//!
//! A deletion reads `guard/tenant/<name>`, checks that the tenant holds no
//! topic or group, and commits only if the guard is unchanged. A creation
//! commits only if the tenant record is unchanged and writes a value to the
//! guard that was never written before (the new topic's id, the new group's
//! random incarnation). So a creation that commits before the deletion reads
//! the guard is seen by the emptiness check; one that commits after that
//! read fails the deletion's check (the deletion checks again and refuses);
//! one that comes after the deletion fails its own tenant check.

use super::{Catalog, CatalogError, keys};
use crate::store::{Check, Txn, scan_prefix};

/// The tenant as a creation found it; see the [module docs](self).
#[derive(Debug, Clone)]
pub enum TenantFence {
    /// The tenant's record, as read.
    Tenant { key: Vec<u8>, raw: Vec<u8> },
    /// No tenant of that name was ever created or deleted: an engine used
    /// without tenancy (tests, embedded use). Nothing to race.
    Untracked { key: Vec<u8> },
}

impl TenantFence {
    /// `txn` conditioned on the tenant being as read, moving its contents
    /// guard to `created` (unique to this creation). The check is added
    /// last, so earlier check indexes stay the caller's.
    pub(super) fn apply(&self, txn: Txn, tenant: &str, created: &str) -> Result<Txn, CatalogError> {
        Ok(match self {
            TenantFence::Tenant { key, raw } => txn
                .check(Check::ValueEquals {
                    key: key.clone(),
                    value: raw.clone(),
                })
                .put(
                    keys::tenant_contents_guard(tenant)?,
                    created.as_bytes().to_vec(),
                ),
            TenantFence::Untracked { key } => txn.check(Check::Absent { key: key.clone() }),
        })
    }
}

impl Catalog {
    /// Reads what a creation for `tenant` is conditioned on.
    /// [`CatalogError::TenantNotFound`] if the tenant was deleted (a
    /// request authenticated by a key cached before the deletion).
    pub(super) async fn tenant_fence(&self, tenant: &str) -> Result<TenantFence, CatalogError> {
        let key = keys::tenant(tenant)?;
        if let Some(raw) = self.store.get(&key).await? {
            return Ok(TenantFence::Tenant { key, raw });
        }
        let deleted = scan_prefix(
            self.store.as_ref(),
            &keys::deleted_tenant_prefix(tenant)?,
            1,
        )
        .await?;
        if !deleted.is_empty() {
            return Err(CatalogError::TenantNotFound {
                name: tenant.to_string(),
            });
        }
        Ok(TenantFence::Untracked { key })
    }

    /// The tenant's contents guard as a deletion reads it, before checking
    /// that the tenant is empty.
    pub(super) async fn tenant_contents_check(&self, tenant: &str) -> Result<Check, CatalogError> {
        let key = keys::tenant_contents_guard(tenant)?;
        Ok(match self.store.get(&key).await? {
            Some(value) => Check::ValueEquals { key, value },
            None => Check::Absent { key },
        })
    }
}
