//! Group records read recently, so that receives and acknowledgements
//! (one of each per message with the official SDKs) do not each read the
//! metadata store on the blocking pool.
//!
//! A group's settings never change after it is created. A group deleted
//! through this node is forgotten at once; one deleted through another node
//! of a cluster is still found here for at most [`TTL`].

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use strata_metadata::GroupRecord;

/// How long a record read from the store is used without reading it again.
pub(crate) const TTL: Duration = Duration::from_secs(1);
/// Most records kept; past it the cache starts over.
const MAX_ENTRIES: usize = 4096;

type Entry = (GroupRecord, Duration);

#[derive(Debug, Default)]
pub(crate) struct GroupCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Tenant → group → (record, when it was read, on the monotonic clock).
    tenants: HashMap<String, HashMap<String, Entry>>,
    entries: usize,
}

impl GroupCache {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding it cannot leave the maps inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record of `group`, if read within [`TTL`] of `now`.
    pub(crate) fn get(&self, tenant: &str, group: &str, now: Duration) -> Option<GroupRecord> {
        let inner = self.lock();
        let (record, read) = inner.tenants.get(tenant)?.get(group)?;
        (now.saturating_sub(*read) < TTL).then(|| record.clone())
    }

    /// Remembers `record`, read from the store at `now`.
    pub(crate) fn put(&self, tenant: &str, record: GroupRecord, now: Duration) {
        let mut inner = self.lock();
        if inner.entries >= MAX_ENTRIES {
            inner.tenants.clear();
            inner.entries = 0;
        }
        let of_tenant = inner.tenants.entry(tenant.to_string()).or_default();
        if of_tenant
            .insert(record.name.clone(), (record, now))
            .is_none()
        {
            inner.entries += 1;
        }
    }

    /// Forgets `group` (deleted or created through this node).
    pub(crate) fn forget(&self, tenant: &str, group: &str) {
        let mut inner = self.lock();
        if let Some(of_tenant) = inner.tenants.get_mut(tenant)
            && of_tenant.remove(group).is_some()
        {
            inner.entries -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_metadata::GroupSpec;

    fn record(name: &str) -> GroupRecord {
        let spec = GroupSpec::default();
        GroupRecord {
            tenant: "t".into(),
            name: name.into(),
            created_ms: 0,
            retry: spec.retry,
            start: spec.start,
            fifo: spec.fifo,
        }
    }

    #[test]
    fn a_record_is_used_for_its_ttl_then_read_again() {
        let cache = GroupCache::default();
        let t0 = Duration::from_secs(100);
        assert!(cache.get("t", "g", t0).is_none());
        cache.put("t", record("g"), t0);
        assert_eq!(cache.get("t", "g", t0 + TTL / 2).unwrap().name, "g");
        assert!(cache.get("t", "g", t0 + TTL).is_none());
        // Another tenant's group of the same name is not this one.
        assert!(cache.get("u", "g", t0).is_none());
    }

    #[test]
    fn a_forgotten_group_is_read_again() {
        let cache = GroupCache::default();
        let t0 = Duration::from_secs(5);
        cache.put("t", record("g"), t0);
        cache.forget("t", "g");
        assert!(cache.get("t", "g", t0).is_none());
        cache.forget("t", "missing");
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = GroupCache::default();
        let now = Duration::from_secs(1);
        for i in 0..MAX_ENTRIES + 10 {
            cache.put("t", record(&format!("g{i}")), now);
        }
        let inner = cache.lock();
        assert!(inner.entries <= MAX_ENTRIES);
        let kept: usize = inner.tenants.values().map(HashMap::len).sum();
        assert_eq!(kept, inner.entries);
    }
}
