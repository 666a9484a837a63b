//! Plans and the quotas a tenant gets from its plan.
//!
//! Quotas are needed on every request, so they are cached per tenant for
//! [`QUOTA_CACHE_TTL_MS`]; changes made through this `Credentials` clear
//! the cache at once, changes made on other nodes show within the TTL.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use strata_metadata::catalog::keys;
use strata_metadata::{CatalogError, MetaError};

use super::outage::{Refreshed, STALE_LIMIT_MS};
use super::{Credentials, MAX_TENANT_LEN, tenant_not_found, validate_tenant};
use crate::error::TenancyError;
use crate::quota::{BUILTIN_PLANS, Quotas, builtin_plan};

/// How long a tenant's quotas are used before its plan is read again.
const QUOTA_CACHE_TTL_MS: i64 = 5_000;

/// Quotas per tenant with the time they were read.
#[derive(Debug, Default)]
pub(super) struct QuotaCache {
    inner: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    /// Bumped by every invalidation, so a read that started before one
    /// cannot put what it read back afterwards.
    generation: u64,
    entries: HashMap<String, (Quotas, i64)>,
}

impl QuotaCache {
    // Every update is a single insert, remove or clear, so a poisoned lock
    // is still usable.
    fn lock(&self) -> MutexGuard<'_, CacheState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get_fresh(&self, tenant: &str, now_ms: i64) -> Option<Quotas> {
        let state = self.lock();
        let (quotas, loaded_ms) = state.entries.get(tenant)?;
        let age = now_ms.saturating_sub(*loaded_ms);
        // A clock that went backwards also counts as expired.
        (0..QUOTA_CACHE_TTL_MS).contains(&age).then_some(*quotas)
    }

    /// Quotas read less than `limit_ms` ago, however stale.
    fn get_within(&self, tenant: &str, now_ms: i64, limit_ms: i64) -> Option<Quotas> {
        let state = self.lock();
        let (quotas, loaded_ms) = state.entries.get(tenant)?;
        let age = now_ms.saturating_sub(*loaded_ms);
        (0..limit_ms).contains(&age).then_some(*quotas)
    }

    fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Stores `quotas` unless the cache was invalidated since `generation`.
    fn put(&self, generation: u64, tenant: &str, quotas: Quotas, now_ms: i64) {
        let mut state = self.lock();
        if state.generation == generation {
            state.entries.insert(tenant.to_string(), (quotas, now_ms));
        }
    }

    pub fn remove(&self, tenant: &str) {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.remove(tenant);
    }

    fn clear(&self) {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.clear();
    }
}

/// Checks a plan name: the same rule as tenant names, reported as an
/// invalid argument.
fn validate_plan_name(name: &str) -> Result<(), TenancyError> {
    validate_tenant(name).map_err(|_| {
        TenancyError::InvalidArgument(format!(
            "invalid plan name {name:?}: use 1 to {MAX_TENANT_LEN} ASCII letters, digits, '-' or '_'"
        ))
    })
}

/// A stored plan's JSON as [`Quotas`]; a bad value is corrupt metadata.
fn decode_plan(name: &str, value: serde_json::Value) -> Result<Quotas, TenancyError> {
    serde_json::from_value(value).map_err(|e| {
        let key = keys::plan(name)
            .map(|k| keys::display(&k))
            .unwrap_or_else(|_| name.to_string());
        MetaError::Corrupt {
            key,
            reason: e.to_string(),
        }
        .into()
    })
}

fn unknown_plan(name: &str) -> TenancyError {
    TenancyError::PlanNotFound {
        name: name.to_string(),
    }
}

impl Credentials {
    /// The quotas of `tenant`'s plan: [`CatalogError::TenantNotFound`]
    /// (as [`TenancyError::Catalog`]) if the tenant is missing,
    /// [`TenancyError::InvalidArgument`] if its plan does not exist. Cached
    /// for up to 5 s (see the [module docs](self)).
    ///
    /// [`CatalogError::TenantNotFound`]: strata_metadata::CatalogError::TenantNotFound
    pub async fn quotas_for(&self, tenant: &str) -> Result<Quotas, TenancyError> {
        let cache = &self.inner.quotas;
        let now = self.now_ms();
        if let Some(quotas) = cache.get_fresh(tenant, now) {
            return Ok(quotas);
        }
        // While the catalog does not answer, what was read within the
        // limit (see the [module docs](super)).
        let Some(stale) = cache.get_within(tenant, now, STALE_LIMIT_MS) else {
            return self.read_quotas(tenant).await;
        };
        if self.inner.outage.ongoing(now) {
            return Ok(stale);
        }
        let clock = self.inner.clock.clone();
        let unavailable = |e: &TenancyError| {
            matches!(
                e,
                TenancyError::Catalog(CatalogError::Meta(MetaError::Backend(_)))
            )
        };
        match (self.inner.outage)
            .refresh(clock.as_ref(), self.read_quotas(tenant), unavailable)
            .await
        {
            Refreshed::Answered(quotas) => quotas,
            Refreshed::Unavailable => Ok(stale),
        }
    }

    /// The quotas of `tenant`'s plan from the catalog, cached.
    async fn read_quotas(&self, tenant: &str) -> Result<Quotas, TenancyError> {
        let cache = &self.inner.quotas;
        validate_tenant(tenant)?;
        let generation = cache.generation();
        let record = self
            .inner
            .catalog
            .get_tenant(tenant)
            .await?
            .ok_or_else(|| tenant_not_found(tenant))?;
        let quotas = self.resolve_plan(&record.plan).await?.ok_or_else(|| {
            TenancyError::InvalidArgument(format!(
                "tenant {tenant} is on plan {:?}, which does not exist",
                record.plan
            ))
        })?;
        cache.put(generation, tenant, quotas, self.now_ms());
        Ok(quotas)
    }

    /// Creates or replaces the plan `name`; tenants on it get the new
    /// quotas at once on this node, within the cache TTL elsewhere. A plan
    /// named like a built-in one overrides it.
    pub async fn set_plan(&self, name: &str, quotas: Quotas) -> Result<(), TenancyError> {
        validate_plan_name(name)?;
        let value = serde_json::to_value(quotas).map_err(|e| {
            TenancyError::InvalidArgument(format!("cannot encode plan {name}: {e}"))
        })?;
        self.inner.catalog.put_plan(name, &value).await?;
        self.inner.quotas.clear();
        Ok(())
    }

    /// The plan `name`, stored or built in; [`TenancyError::PlanNotFound`]
    /// if neither.
    pub async fn get_plan(&self, name: &str) -> Result<Quotas, TenancyError> {
        validate_plan_name(name)?;
        self.resolve_plan(name)
            .await?
            .ok_or_else(|| unknown_plan(name))
    }

    /// Every plan, built-in ones merged with (and overridden by) stored
    /// ones, sorted by name.
    pub async fn list_plans(&self) -> Result<Vec<(String, Quotas)>, TenancyError> {
        let mut plans = BTreeMap::new();
        for name in BUILTIN_PLANS {
            if let Some(quotas) = builtin_plan(name) {
                plans.insert(name.to_string(), quotas);
            }
        }
        for (name, value) in self.inner.catalog.list_plans().await? {
            let quotas = decode_plan(&name, value)?;
            plans.insert(name, quotas);
        }
        Ok(plans.into_iter().collect())
    }

    /// Moves `tenant` to `plan`, which must exist
    /// ([`TenancyError::PlanNotFound`] otherwise).
    pub async fn set_tenant_plan(&self, tenant: &str, plan: &str) -> Result<(), TenancyError> {
        validate_tenant(tenant)?;
        self.ensure_plan_exists(plan).await?;
        self.inner.catalog.set_tenant_plan(tenant, plan).await?;
        self.inner.quotas.remove(tenant);
        Ok(())
    }

    /// [`TenancyError::PlanNotFound`] unless `plan` is stored or built in.
    pub(super) async fn ensure_plan_exists(&self, plan: &str) -> Result<(), TenancyError> {
        match self.resolve_plan(plan).await? {
            Some(_) => Ok(()),
            None => Err(unknown_plan(plan)),
        }
    }

    /// The stored plan `name`, else the built-in one, else `None` (also for
    /// names no plan can have).
    async fn resolve_plan(&self, name: &str) -> Result<Option<Quotas>, TenancyError> {
        if validate_plan_name(name).is_err() {
            return Ok(None);
        }
        match self.inner.catalog.get_plan(name).await? {
            Some(value) => Ok(Some(decode_plan(name, value)?)),
            None => Ok(builtin_plan(name)),
        }
    }
}
