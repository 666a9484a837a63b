//! Tenants: creation, lookup, listing, and deletion together with their
//! access keys; plans and which plan a tenant is on.

use serde::{Deserialize, Serialize};

use super::{AccessKeyRecord, Catalog, CatalogError, MAX_ATTEMPTS, decode, encode, keys};
use crate::store::{Check, Txn, TxnOutcome};

/// A tenant. Its topics, groups and access keys refer to it by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub name: String,
    /// The plan's name; plans themselves are defined outside the catalog.
    pub plan: String,
    pub created_ms: i64,
}

/// A tenant that was deleted: what billing needs to tell its usage from a
/// later tenant's of the same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedTenant {
    pub name: String,
    pub plan: String,
    pub created_ms: i64,
    pub deleted_ms: i64,
}

impl Catalog {
    /// Creates a tenant; [`CatalogError::TenantAlreadyExists`] if it exists.
    pub async fn create_tenant(
        &self,
        name: &str,
        plan: &str,
        now_ms: i64,
    ) -> Result<TenantRecord, CatalogError> {
        let key = keys::tenant(name)?;
        let record = TenantRecord {
            name: name.to_string(),
            plan: plan.to_string(),
            created_ms: now_ms,
        };
        let txn = Txn::new()
            .check(Check::Absent { key: key.clone() })
            .put(key.clone(), encode(&key, &record)?);
        match self.store.commit(txn).await? {
            TxnOutcome::Committed => {
                tracing::info!(tenant = name, plan, "created tenant");
                Ok(record)
            }
            TxnOutcome::CheckFailed { .. } => Err(CatalogError::TenantAlreadyExists {
                name: name.to_string(),
            }),
        }
    }

    /// The tenant `name`, if it exists.
    pub async fn get_tenant(&self, name: &str) -> Result<Option<TenantRecord>, CatalogError> {
        let key = keys::tenant(name)?;
        Ok(self.get_record(&key).await?.map(|(record, _)| record))
    }

    /// Every tenant, sorted by name.
    pub async fn list_tenants(&self) -> Result<Vec<TenantRecord>, CatalogError> {
        Ok(self.scan_records(keys::ALL_TENANTS).await?)
    }

    /// Every deleted tenant, by name then creation.
    pub async fn list_deleted_tenants(&self) -> Result<Vec<DeletedTenant>, CatalogError> {
        Ok(self.scan_records(keys::ALL_DELETED_TENANTS).await?)
    }

    /// Moves a tenant to `plan`, returning the updated record;
    /// [`CatalogError::TenantNotFound`] if it is missing. Whether the plan
    /// exists is the caller's business, as in [`Catalog::create_tenant`].
    pub async fn set_tenant_plan(
        &self,
        tenant: &str,
        plan: &str,
    ) -> Result<TenantRecord, CatalogError> {
        let key = keys::tenant(tenant)?;
        for _ in 0..MAX_ATTEMPTS {
            let Some((mut record, raw)) = self.get_record::<TenantRecord>(&key).await? else {
                return Err(CatalogError::TenantNotFound {
                    name: tenant.to_string(),
                });
            };
            record.plan = plan.to_string();
            let txn = Txn::new()
                .check(Check::ValueEquals {
                    key: key.clone(),
                    value: raw,
                })
                .put(key.clone(), encode(&key, &record)?);
            if self.store.commit(txn).await? == TxnOutcome::Committed {
                tracing::info!(tenant, plan, "set tenant plan");
                return Ok(record);
            }
        }
        Err(CatalogError::Conflict(format!(
            "setting the plan of tenant {tenant}: it kept changing"
        )))
    }

    /// Creates or replaces the plan `name`. The value is opaque here; the
    /// tenancy layer defines its shape.
    pub async fn put_plan(
        &self,
        name: &str,
        value: &serde_json::Value,
    ) -> Result<(), CatalogError> {
        let key = keys::plan(name)?;
        let txn = Txn::new().put(key.clone(), encode(&key, value)?);
        // A txn without checks always commits.
        self.store.commit(txn).await?;
        tracing::info!(plan = name, "stored plan");
        Ok(())
    }

    /// The stored plan `name`, if any.
    pub async fn get_plan(&self, name: &str) -> Result<Option<serde_json::Value>, CatalogError> {
        let key = keys::plan(name)?;
        Ok(self.get_record(&key).await?.map(|(value, _)| value))
    }

    /// Every stored plan, sorted by name.
    pub async fn list_plans(&self) -> Result<Vec<(String, serde_json::Value)>, CatalogError> {
        let mut out = Vec::new();
        for (key, raw) in self.scan_all(keys::ALL_PLANS).await? {
            if let Some(name) = keys::parse_plan(&key) {
                out.push((name.to_string(), decode(&key, &raw)?));
            }
        }
        Ok(out)
    }

    /// Deletes a tenant with all its access keys, returning the record.
    ///
    /// Refused with [`CatalogError::TenantNotEmpty`] while the tenant has
    /// topics or groups: deleting those is a deliberate, separate step, so a
    /// mistyped tenant name cannot take data with it. A topic or group
    /// created while this call runs either makes it refuse or is refused
    /// itself ([`super::TenantFence`]).
    ///
    /// The keys are listed before the delete commits; a key created in
    /// between fails its own tenant check unless it committed first, and a
    /// second pass removes such a key while the tenant is still absent.
    /// With `guard` (the tenant holds service-admin keys) the delete is
    /// conditioned on it too ([`super::AdminKeysGuard`]); once it moved,
    /// [`CatalogError::Conflict`] at once, for the caller to count again.
    pub async fn delete_tenant(
        &self,
        name: &str,
        now_ms: i64,
        guard: Option<&super::AdminKeysGuard>,
    ) -> Result<TenantRecord, CatalogError> {
        let key = keys::tenant(name)?;
        let index = keys::tenant_key_prefix(name)?;
        for _ in 0..MAX_ATTEMPTS {
            let Some((record, raw)) = self.get_record::<TenantRecord>(&key).await? else {
                return Err(CatalogError::TenantNotFound {
                    name: name.to_string(),
                });
            };
            let contents = self.tenant_contents_check(name).await?;
            self.ensure_tenant_empty(name).await?;
            let deleted_key = keys::deleted_tenant(name, record.created_ms)?;
            let deleted = DeletedTenant {
                name: name.to_string(),
                plan: record.plan.clone(),
                created_ms: record.created_ms,
                deleted_ms: now_ms,
            };
            let mut txn = Txn::new()
                .check(Check::ValueEquals {
                    key: key.clone(),
                    value: raw,
                })
                .check(contents)
                .delete(key.clone())
                .delete(keys::tenant_contents_guard(name)?)
                .put(deleted_key.clone(), encode(&deleted_key, &deleted)?);
            txn = self.delete_tenant_keys(txn, &index).await?;
            if let Some(guard) = guard {
                txn = guard.apply(txn)?;
            }
            if self.store.commit(txn).await? == TxnOutcome::Committed {
                self.remove_orphan_keys(&key, &index).await?;
                tracing::info!(tenant = name, "deleted tenant");
                return Ok(record);
            }
            if let Some(guard) = guard
                && self.admin_keys_guard_moved(guard).await?
            {
                return Err(CatalogError::Conflict(format!(
                    "deleting tenant {name}: service-admin keys changed meanwhile"
                )));
            }
        }
        Err(CatalogError::Conflict(format!(
            "deleting tenant {name}: it kept changing"
        )))
    }

    /// [`CatalogError::TenantNotEmpty`] if the tenant has topics or groups.
    /// Its hidden topics are named apart: the node serving the tenant
    /// deletes them (with their timers and transactions) just before, so
    /// they remain only when that node could not (it serves the tenant no
    /// more, or not yet).
    async fn ensure_tenant_empty(&self, name: &str) -> Result<(), CatalogError> {
        let all = self.list_topics(name).await?;
        let hidden = all
            .iter()
            .filter(|t| strata_common::is_hidden_topic(&t.name))
            .count();
        let topics = all.len() - hidden;
        let groups = self.list_groups(name).await?.len();
        let reason = if topics > 0 || groups > 0 {
            format!(
                "it still has {topics} topic(s) and {groups} consumer group(s); delete them first"
            )
        } else if hidden > 0 {
            "the delayed messages and transactions of its deleted topics are still held where it is served (it may be moving between nodes); retry in a moment".to_string()
        } else {
            return Ok(());
        };
        Err(CatalogError::TenantNotEmpty {
            name: name.to_string(),
            reason,
        })
    }

    /// Adds to `txn` deletes of every key indexed under `index` (the index
    /// entries and the key records they name).
    async fn delete_tenant_keys(&self, mut txn: Txn, index: &[u8]) -> Result<Txn, CatalogError> {
        for (index_key, _) in self.scan_all(index).await? {
            if let Some(access_key) = keys::parse_tenant_key(&index_key) {
                txn = txn.delete(keys::access_key(access_key)?);
            }
            txn = txn.delete(index_key);
        }
        Ok(txn)
    }

    /// Deletes keys still indexed under `index` if the tenant at
    /// `tenant_key` is absent (it may have been re-created since, and then
    /// they belong to the new tenant).
    async fn remove_orphan_keys(
        &self,
        tenant_key: &[u8],
        index: &[u8],
    ) -> Result<(), CatalogError> {
        let txn = Txn::new().check(Check::Absent {
            key: tenant_key.to_vec(),
        });
        let txn = self.delete_tenant_keys(txn, index).await?;
        if !txn.mutations.is_empty() {
            // CheckFailed means the tenant was re-created: its keys are live.
            self.store.commit(txn).await?;
        }
        Ok(())
    }

    /// Every access key record of a tenant, through its index.
    pub(super) async fn tenant_access_keys(
        &self,
        tenant: &str,
    ) -> Result<Vec<AccessKeyRecord>, CatalogError> {
        let mut out = Vec::new();
        for (index_key, _) in self.scan_all(&keys::tenant_key_prefix(tenant)?).await? {
            let Some(access_key) = keys::parse_tenant_key(&index_key) else {
                continue;
            };
            // The index and the record change in one txn, but check the
            // tenant anyway so a stale entry can never list another's key.
            if let Some((record, _)) = self
                .get_record::<AccessKeyRecord>(&keys::access_key(access_key)?)
                .await?
                && record.tenant == tenant
            {
                out.push(record);
            }
        }
        Ok(out)
    }
}
