//! Creating, rotating, revoking and listing access keys.

use strata_metadata::{AccessKeyRecord, AdminKeysGuard, CatalogError, MetaError};

use super::cache::Entry;
use super::{Credentials, IssuedKey, KeyInfo, validate_tenant};
use crate::error::TenancyError;
use crate::roles::Role;
use crate::secrets::{SecretKey, generate_access_key, generate_secret_key};

/// Longest key description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 256;
/// Attempts at a read-check-write of one key before giving up. Few: a key
/// is rarely changed by two admins at once.
const ATTEMPTS: usize = 4;

impl KeyInfo {
    fn from_record(record: AccessKeyRecord) -> Result<Self, TenancyError> {
        let role = parse_role(&record)?;
        Ok(Self {
            access_key: record.access_key,
            tenant: record.tenant,
            role,
            description: record.description,
            created_ms: record.created_ms,
            updated_ms: record.updated_ms,
            revoked_ms: record.revoked_ms,
        })
    }
}

/// The record's role; an unknown name means the record is corrupt.
pub(super) fn parse_role(record: &AccessKeyRecord) -> Result<Role, MetaError> {
    record.role.parse().map_err(|e| MetaError::Corrupt {
        key: format!("access-key/{}", record.access_key),
        reason: format!("{e}"),
    })
}

fn key_not_found(access_key: &str) -> TenancyError {
    CatalogError::KeyNotFound {
        access_key: access_key.to_string(),
    }
    .into()
}

impl Credentials {
    /// Creates a key for an existing tenant and returns it with its secret,
    /// which is not retrievable later (only rotatable).
    pub async fn create_key(
        &self,
        tenant: &str,
        role: Role,
        description: &str,
    ) -> Result<IssuedKey, TenancyError> {
        validate_tenant(tenant)?;
        if description.chars().count() > MAX_DESCRIPTION_LEN {
            return Err(TenancyError::InvalidArgument(format!(
                "description is longer than {MAX_DESCRIPTION_LEN} characters"
            )));
        }
        // One line of text: `strata key list` prints it in a table row.
        if description.chars().any(char::is_control) {
            return Err(TenancyError::InvalidArgument(format!(
                "description {description:?} holds a control character (a newline, a tab, NUL...)"
            )));
        }
        let secret = generate_secret_key()?;
        let mut last_error = None;
        // A fresh access key colliding is astronomically unlikely; retrying
        // covers it anyway instead of failing a user's request.
        for _ in 0..ATTEMPTS {
            let access_key = generate_access_key()?;
            let now = self.now_ms();
            let record = AccessKeyRecord {
                access_key: access_key.clone(),
                tenant: tenant.to_string(),
                role: role.as_str().to_string(),
                sealed_secret: self.inner.master.seal(&secret, &access_key)?,
                description: description.to_string(),
                created_ms: now,
                updated_ms: now,
                revoked_ms: None,
            };
            match self.inner.catalog.create_access_key(&record).await {
                Ok(()) => {
                    self.cache_record(&record, secret.clone(), now);
                    return Ok(IssuedKey {
                        access_key,
                        secret_key: secret,
                        tenant: tenant.to_string(),
                        role,
                    });
                }
                Err(e @ CatalogError::AccessKeyAlreadyExists { .. }) => last_error = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last_error
            .unwrap_or_else(|| CatalogError::Conflict("creating access key".into()))
            .into())
    }

    /// Gives `access_key` a new secret. On this node the new secret works and
    /// the old one stops working as soon as this returns.
    pub async fn rotate_key(&self, access_key: &str) -> Result<IssuedKey, TenancyError> {
        let secret = generate_secret_key()?;
        for _ in 0..ATTEMPTS {
            let old = self.load_record(access_key).await?;
            if old.revoked_ms.is_some() {
                return Err(TenancyError::KeyRevoked {
                    access_key: access_key.to_string(),
                });
            }
            let now = self.now_ms();
            let mut new = old.clone();
            new.sealed_secret = self.inner.master.seal(&secret, access_key)?;
            new.updated_ms = next_update_ms(&old, now);
            match self.inner.catalog.update_access_key(&old, &new, None).await {
                Ok(()) => {
                    let role = parse_role(&new)?;
                    self.cache_record(&new, secret.clone(), now);
                    tracing::info!(access_key, tenant = new.tenant, "rotated access key");
                    return Ok(IssuedKey {
                        access_key: access_key.to_string(),
                        secret_key: secret,
                        tenant: new.tenant,
                        role,
                    });
                }
                Err(CatalogError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CatalogError::Conflict(format!(
            "rotating access key {access_key}: it kept changing"
        ))
        .into())
    }

    /// Revokes `access_key` (idempotent). It stops authenticating on this
    /// node at once. The record stays, so it can still be listed.
    pub async fn revoke_key(&self, access_key: &str) -> Result<KeyInfo, TenancyError> {
        for _ in 0..ATTEMPTS {
            let old = self.load_record(access_key).await?;
            if old.revoked_ms.is_some() {
                return KeyInfo::from_record(old);
            }
            let guard = self
                .keep_a_service_admin(
                    |k| k.access_key != access_key,
                    || format!("revoking access key {access_key}"),
                )
                .await?;
            // Only a service-admin key's revocation can leave none.
            let guard = (parse_role(&old)? == Role::Admin).then_some(guard);
            let now = self.now_ms();
            let mut new = old.clone();
            new.updated_ms = next_update_ms(&old, now);
            new.revoked_ms = Some(now);
            match self
                .inner
                .catalog
                .update_access_key(&old, &new, guard.as_ref())
                .await
            {
                Ok(()) => {
                    // Keep the secret in the entry: authentication reports
                    // Revoked only to callers who prove they hold it.
                    match self.inner.master.open(&new.sealed_secret, access_key) {
                        Ok(secret) => self.cache_record(&new, secret, now),
                        Err(_) => self.inner.cache.remove(access_key),
                    }
                    tracing::info!(access_key, tenant = new.tenant, "revoked access key");
                    return KeyInfo::from_record(new);
                }
                Err(CatalogError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CatalogError::Conflict(format!(
            "revoking access key {access_key}: it kept changing"
        ))
        .into())
    }

    /// Refuses a change after which no active service-admin key would be
    /// left: `stays` says which keys remain. The change must then commit
    /// under the returned guard (read before the keys were counted), so two
    /// such changes at once cannot both pass: the second's commit fails,
    /// and counting again refuses it.
    pub(crate) async fn keep_a_service_admin(
        &self,
        stays: impl Fn(&KeyInfo) -> bool,
        what: impl FnOnce() -> String,
    ) -> Result<AdminKeysGuard, TenancyError> {
        let guard = self.inner.catalog.admin_keys_guard().await?;
        let keys = self.list_keys(None).await?;
        let is_admin = |k: &KeyInfo| k.role == Role::Admin && k.revoked_ms.is_none();
        if keys.iter().any(is_admin) && !keys.iter().any(|k| is_admin(k) && stays(k)) {
            return Err(TenancyError::LastServiceAdmin { what: what() });
        }
        Ok(guard)
    }

    /// One tenant's keys, or all keys with `None`, sorted by access key.
    pub async fn list_keys(&self, tenant: Option<&str>) -> Result<Vec<KeyInfo>, TenancyError> {
        if let Some(tenant) = tenant {
            validate_tenant(tenant)?;
        }
        self.inner
            .catalog
            .list_access_keys(tenant)
            .await?
            .into_iter()
            .map(KeyInfo::from_record)
            .collect()
    }

    /// One key; [`CatalogError::KeyNotFound`] if absent.
    pub async fn get_key(&self, access_key: &str) -> Result<KeyInfo, TenancyError> {
        KeyInfo::from_record(self.load_record(access_key).await?)
    }

    async fn load_record(&self, access_key: &str) -> Result<AccessKeyRecord, TenancyError> {
        // Client-supplied text: anything that cannot be a key is simply not
        // found, rather than an invalid-metadata-request error.
        if access_key.is_empty() || access_key.contains('/') {
            return Err(key_not_found(access_key));
        }
        self.inner
            .catalog
            .get_access_key(access_key)
            .await?
            .ok_or_else(|| key_not_found(access_key))
    }

    /// Puts an opened record into the cache, as loaded at `now`.
    pub(super) fn cache_record(&self, record: &AccessKeyRecord, secret: SecretKey, now: i64) {
        let Ok(role) = parse_role(record) else {
            self.inner.cache.remove(&record.access_key);
            return;
        };
        self.inner.cache.put(
            &record.access_key,
            Entry {
                tenant: record.tenant.clone(),
                role,
                secret,
                revoked: record.revoked_ms.is_some(),
                updated_ms: record.updated_ms,
                loaded_ms: now,
            },
        );
    }
}

/// Strictly after the old record's `updated_ms`, so the cache can always
/// tell the new version from the old even within one millisecond or under a
/// clock that stepped back.
fn next_update_ms(old: &AccessKeyRecord, now: i64) -> i64 {
    now.max(old.updated_ms.saturating_add(1))
}
