//! `MemoryStore`: a real [`MetaStore`] for ephemeral, single-process use
//! (tests, demos, `--ephemeral` nodes). One mutex around a `BTreeMap` makes
//! every commit trivially atomic and serialized; nothing survives a restart.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::store::{
    MetaError, MetaStore, Mutation, Txn, TxnOutcome, range_is_empty, validate_key, validate_scan,
    validate_txn,
};

/// The whole keyspace.
type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// An in-memory, ordered, transactional key-value store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: Mutex<Map>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Arc<MemoryStore> {
        Arc::new(MemoryStore::default())
    }

    /// The lock is held only for map operations that cannot panic, so a
    /// poisoned lock means a bug; report it instead of propagating a panic.
    fn lock(&self) -> Result<MutexGuard<'_, Map>, MetaError> {
        self.map
            .lock()
            .map_err(|_| MetaError::Backend("memory store lock poisoned".into()))
    }
}

#[async_trait::async_trait]
impl MetaStore for MemoryStore {
    fn backend_name(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MetaError> {
        validate_key(key)?;
        Ok(self.lock()?.get(key).cloned())
    }

    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, MetaError> {
        validate_scan(limit)?;
        if range_is_empty(start, end) {
            return Ok(Vec::new());
        }
        let upper = if end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(end)
        };
        let map = self.lock()?;
        Ok(map
            .range::<[u8], _>((Bound::Included(start), upper))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn commit(&self, txn: Txn) -> Result<TxnOutcome, MetaError> {
        validate_txn(&txn)?;
        let mut map = self.lock()?;
        for (index, check) in txn.checks.iter().enumerate() {
            if !check.holds(map.get(check.key()).map(Vec::as_slice)) {
                return Ok(TxnOutcome::CheckFailed { index });
            }
        }
        for mutation in txn.mutations {
            match mutation {
                Mutation::Put { key, value } => {
                    map.insert(key, value);
                }
                Mutation::Delete { key } => {
                    map.remove(&key);
                }
            }
        }
        Ok(TxnOutcome::Committed)
    }
}
