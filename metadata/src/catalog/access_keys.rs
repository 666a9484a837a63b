//! Access keys: the stored half of a tenant's credentials. The catalog only
//! stores them; sealing secrets and checking signatures is the tenancy
//! crate's job, which is why the secret is opaque here.

use serde::{Deserialize, Serialize};

use super::{Catalog, CatalogError, decode, encode, keys};
use crate::store::{Check, MetaError, Txn, TxnOutcome};

/// A secret key encrypted under the service's master key. Hex so the JSON
/// record stays readable in tools; the plaintext never reaches the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecretRecord {
    pub nonce_hex: String,
    pub ciphertext_hex: String,
}

/// One access key of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    pub access_key: String,
    pub tenant: String,
    /// The role's wire name; the tenancy crate owns the role type, and a
    /// string keeps the catalog from depending on it.
    pub role: String,
    pub sealed_secret: SealedSecretRecord,
    pub description: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// When the key was revoked; revoked keys are kept so audits can still
    /// name them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_ms: Option<i64>,
}

/// What a change that may leave fewer active service-admin keys is
/// conditioned on: the `guard/service-admins` counter as it was before the
/// caller counted those keys. Each such change moves the counter in its own
/// transaction, so of two concurrent revocations that each leave the other's
/// key as the last, the second fails its check, counts again and is refused.
#[derive(Debug, Clone)]
pub struct AdminKeysGuard {
    raw: Option<Vec<u8>>,
}

impl AdminKeysGuard {
    /// `txn` conditioned on the counter being unchanged, moving it on.
    pub(super) fn apply(&self, txn: Txn) -> Result<Txn, CatalogError> {
        let key = keys::ADMIN_KEYS_GUARD;
        let (check, next) = match &self.raw {
            Some(raw) => (
                Check::ValueEquals {
                    key: key.to_vec(),
                    value: raw.clone(),
                },
                decode::<u64>(key, raw)?.wrapping_add(1),
            ),
            None => (Check::Absent { key: key.to_vec() }, 1),
        };
        Ok(txn.check(check).put(key, encode(key, &next)?))
    }
}

impl Catalog {
    /// The guard to pass to a change that may remove active service-admin
    /// keys; read it before counting them.
    pub async fn admin_keys_guard(&self) -> Result<AdminKeysGuard, CatalogError> {
        Ok(AdminKeysGuard {
            raw: self.store.get(keys::ADMIN_KEYS_GUARD).await?,
        })
    }

    /// Whether a change that may remove admin keys committed since `guard`
    /// was read: the caller must count the keys again, not retry as it was.
    pub(super) async fn admin_keys_guard_moved(
        &self,
        guard: &AdminKeysGuard,
    ) -> Result<bool, CatalogError> {
        Ok(self.store.get(keys::ADMIN_KEYS_GUARD).await? != guard.raw)
    }

    /// Stores a new access key and its tenant index entry in one txn.
    /// [`CatalogError::TenantNotFound`] if the tenant does not exist (checked
    /// in the same txn, so a concurrent tenant deletion cannot orphan it),
    /// [`CatalogError::AccessKeyAlreadyExists`] if the key is taken.
    pub async fn create_access_key(&self, record: &AccessKeyRecord) -> Result<(), CatalogError> {
        let key = keys::access_key(&record.access_key)?;
        let txn = Txn::new()
            .check(Check::Absent { key: key.clone() })
            .check(Check::Present {
                key: keys::tenant(&record.tenant)?,
            })
            .put(key.clone(), encode(&key, record)?)
            .put(
                keys::tenant_key(&record.tenant, &record.access_key)?,
                Vec::new(),
            );
        match self.store.commit(txn).await? {
            TxnOutcome::Committed => {
                tracing::info!(
                    tenant = record.tenant,
                    access_key = record.access_key,
                    role = record.role,
                    "created access key"
                );
                Ok(())
            }
            TxnOutcome::CheckFailed { index: 0 } => Err(CatalogError::AccessKeyAlreadyExists {
                access_key: record.access_key.clone(),
            }),
            TxnOutcome::CheckFailed { .. } => Err(CatalogError::TenantNotFound {
                name: record.tenant.clone(),
            }),
        }
    }

    /// The access key `access_key`, if it exists.
    pub async fn get_access_key(
        &self,
        access_key: &str,
    ) -> Result<Option<AccessKeyRecord>, CatalogError> {
        let key = keys::access_key(access_key)?;
        Ok(self.get_record(&key).await?.map(|(record, _)| record))
    }

    /// One tenant's access keys, or every tenant's with `None`; sorted by
    /// access key.
    pub async fn list_access_keys(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<AccessKeyRecord>, CatalogError> {
        match tenant {
            Some(tenant) => self.tenant_access_keys(tenant).await,
            None => Ok(self.scan_records(keys::ALL_ACCESS_KEYS).await?),
        }
    }

    /// Replaces `old` with `new` if the stored key still equals `old`;
    /// [`CatalogError::Conflict`] if it changed since `old` was read (the
    /// caller re-reads and decides again), [`CatalogError::KeyNotFound`] if
    /// it is gone. The access key and tenant cannot change.
    ///
    /// The check compares the stored bytes, read here, rather than a fresh
    /// encoding of `old`: a record written by an older version may encode
    /// differently while decoding to the same value.
    ///
    /// With `guard` (a revocation of a service-admin key) the change is
    /// also conditioned on it: [`CatalogError::Conflict`] if another change
    /// that could remove admin keys committed since it was read.
    pub async fn update_access_key(
        &self,
        old: &AccessKeyRecord,
        new: &AccessKeyRecord,
        guard: Option<&AdminKeysGuard>,
    ) -> Result<(), CatalogError> {
        if old.access_key != new.access_key || old.tenant != new.tenant {
            return Err(MetaError::Invalid(format!(
                "updating access key {}: the access key and tenant cannot change",
                old.access_key
            ))
            .into());
        }
        let key = keys::access_key(&old.access_key)?;
        let not_found = || CatalogError::KeyNotFound {
            access_key: old.access_key.clone(),
        };
        let lost_race = || {
            CatalogError::Conflict(format!(
                "updating access key {}: it changed concurrently",
                old.access_key
            ))
        };
        let Some((current, raw)) = self.get_record::<AccessKeyRecord>(&key).await? else {
            return Err(not_found());
        };
        if current != *old {
            return Err(lost_race());
        }
        let mut txn = Txn::new()
            .check(Check::ValueEquals {
                key: key.clone(),
                value: raw,
            })
            .put(key.clone(), encode(&key, new)?);
        if let Some(guard) = guard {
            txn = guard.apply(txn)?;
        }
        match self.store.commit(txn).await? {
            TxnOutcome::Committed => Ok(()),
            TxnOutcome::CheckFailed { .. } => Err(lost_race()),
        }
    }
}
