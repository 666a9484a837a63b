//! The in-memory cache of opened keys (see the [parent docs](super)).

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::roles::Role;
use crate::secrets::SecretKey;

/// An opened key as authentication needs it.
#[derive(Debug)]
pub(super) struct Entry {
    pub tenant: String,
    pub role: Role,
    pub secret: SecretKey,
    pub revoked: bool,
    /// The record's `updated_ms`: orders entries of the same key.
    pub updated_ms: i64,
    /// When this node read it, for expiry.
    pub loaded_ms: i64,
}

#[derive(Debug)]
pub(super) struct KeyCache {
    ttl_ms: i64,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
}

impl KeyCache {
    pub fn new(ttl_ms: i64) -> Self {
        Self {
            ttl_ms,
            entries: RwLock::new(HashMap::new()),
        }
    }

    // A panic while holding the lock cannot leave the map half-updated (each
    // write is a single insert or retain), so a poisoned lock is still usable.
    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Arc<Entry>>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Arc<Entry>>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry for `access_key` if it was loaded less than the TTL ago. A
    /// clock that went backwards also counts as expired.
    pub fn get_fresh(&self, access_key: &str, now_ms: i64) -> Option<Arc<Entry>> {
        let entry = self.read().get(access_key).cloned()?;
        let age = now_ms.saturating_sub(entry.loaded_ms);
        (0..self.ttl_ms).contains(&age).then_some(entry)
    }

    /// The entry for `access_key` if it was loaded less than `limit_ms`
    /// ago, however stale (for use while the store does not answer).
    pub fn get_within(&self, access_key: &str, now_ms: i64, limit_ms: i64) -> Option<Arc<Entry>> {
        let entry = self.read().get(access_key).cloned()?;
        let age = now_ms.saturating_sub(entry.loaded_ms);
        (0..limit_ms).contains(&age).then_some(entry)
    }

    /// Stores `entry` unless the cache already holds a newer version of the
    /// key. This stops a slow catalog read that started before a local
    /// rotate or revoke from putting the superseded secret back.
    pub fn put(&self, access_key: &str, entry: Entry) -> Arc<Entry> {
        let entry = Arc::new(entry);
        let mut entries = self.write();
        match entries.get(access_key) {
            Some(current) if current.updated_ms > entry.updated_ms => current.clone(),
            _ => {
                entries.insert(access_key.to_string(), entry.clone());
                entry
            }
        }
    }

    /// Forgets one key, e.g. when the catalog no longer has it.
    pub fn remove(&self, access_key: &str) {
        self.write().remove(access_key);
    }

    /// Forgets every key of `tenant`.
    pub fn evict_tenant(&self, tenant: &str) {
        self.write().retain(|_, entry| entry.tenant != tenant);
    }
}
