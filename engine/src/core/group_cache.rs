//! Group records read recently, so that receives and acknowledgements
//! (one of each per message with the official SDKs) do not each read the
//! metadata store on the blocking pool.
//!
//! A group's settings never change while it exists. A group deleted or
//! created through this node is forgotten at once, and a read of the store
//! that began before that is not cached. A group deleted (or deleted and
//! created again with other settings) through another node of a cluster
//! can still be found here, as it was, for at most [`TTL`]. A group that
//! does not exist is not cached.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use strata_metadata::StoredGroup;

/// How long a record read from the store is used without reading it again.
pub(crate) const TTL: Duration = Duration::from_secs(1);
/// Most records kept; past it the cache starts over.
const MAX_ENTRIES: usize = 4096;

type Entry = (StoredGroup, Duration);

#[derive(Debug, Default)]
pub(crate) struct GroupCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Tenant → group → (record, when it was read, on the monotonic clock).
    tenants: HashMap<String, HashMap<String, Entry>>,
    entries: usize,
    /// Moves on at every forget; a read that began before it is not kept.
    generation: u64,
}

impl GroupCache {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding it cannot leave the maps inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record of `group`, if read within [`TTL`] of `now`.
    pub(crate) fn get(&self, tenant: &str, group: &str, now: Duration) -> Option<StoredGroup> {
        let inner = self.lock();
        let (record, read) = inner.tenants.get(tenant)?.get(group)?;
        (now.saturating_sub(*read) < TTL).then(|| record.clone())
    }

    /// What [`GroupCache::put`] takes: call it before reading the store.
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Remembers `record`, read from the store at `now` after
    /// [`GroupCache::generation`] said `generation`; unless a group was
    /// forgotten since, as the record may predate that.
    pub(crate) fn put(&self, tenant: &str, record: StoredGroup, now: Duration, generation: u64) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
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
        inner.generation += 1;
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
    use strata_metadata::{Check, GroupRecord, GroupSpec};

    fn record(name: &str) -> StoredGroup {
        let spec = GroupSpec::default();
        StoredGroup {
            record: GroupRecord {
                tenant: "t".into(),
                name: name.into(),
                created_ms: 0,
                incarnation: 1,
                retry: spec.retry,
                start: spec.start,
                fifo: spec.fifo,
            },
            fence: Check::Present {
                key: name.as_bytes().to_vec(),
            },
        }
    }

    #[test]
    fn a_record_is_used_for_its_ttl_then_read_again() {
        let cache = GroupCache::default();
        let t0 = Duration::from_secs(100);
        assert!(cache.get("t", "g", t0).is_none());
        cache.put("t", record("g"), t0, cache.generation());
        assert_eq!(cache.get("t", "g", t0 + TTL / 2).unwrap().name, "g");
        assert!(cache.get("t", "g", t0 + TTL).is_none());
        // Another tenant's group of the same name is not this one.
        assert!(cache.get("u", "g", t0).is_none());
    }

    #[test]
    fn a_forgotten_group_is_read_again() {
        let cache = GroupCache::default();
        let t0 = Duration::from_secs(5);
        cache.put("t", record("g"), t0, cache.generation());
        cache.forget("t", "g");
        assert!(cache.get("t", "g", t0).is_none());
        cache.forget("t", "missing");
    }

    /// A read that began before a delete may return the deleted group:
    /// it must not be cached.
    #[test]
    fn a_read_from_before_a_forget_is_not_kept() {
        let cache = GroupCache::default();
        let now = Duration::from_secs(5);
        let before = cache.generation();
        cache.forget("t", "g");
        cache.put("t", record("g"), now, before);
        assert!(cache.get("t", "g", now).is_none());
        cache.put("t", record("g"), now, cache.generation());
        assert!(cache.get("t", "g", now).is_some());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = GroupCache::default();
        let now = Duration::from_secs(1);
        for i in 0..MAX_ENTRIES + 10 {
            cache.put("t", record(&format!("g{i}")), now, cache.generation());
        }
        let inner = cache.lock();
        assert!(inner.entries <= MAX_ENTRIES);
        let kept: usize = inner.tenants.values().map(HashMap::len).sum();
        assert_eq!(kept, inner.entries);
    }
}
