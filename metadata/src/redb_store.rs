//! `RedbStore`: the embedded default [`MetaStore`], one redb file per node.
//!
//! All data lives in a single table `kv` of raw bytes to raw bytes. A commit
//! is one redb write transaction: checks are read inside that same write
//! transaction, and redb admits one writer at a time, so check-and-write is
//! atomic and commits are serialized. Durability stays at redb's default
//! (fsync on commit), so a `Committed` outcome survives a crash.
//!
//! redb calls block on disk I/O, so every operation runs on tokio's blocking
//! pool via `spawn_blocking` and never stalls an async worker.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::store::{
    MetaError, MetaStore, Mutation, Txn, TxnOutcome, range_is_empty, validate_key, validate_scan,
    validate_txn,
};

/// The one table holding every metadata key.
const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

/// A [`MetaStore`] backed by a local redb database file.
pub struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Every redb error type converts into `redb::Error`; flatten them to text so
/// redb types never leak through the public API.
fn backend(err: impl Into<redb::Error>) -> MetaError {
    MetaError::Backend(format!("redb: {}", err.into()))
}

impl RedbStore {
    /// Opens (creating if missing, along with its parent directory) the
    /// database at `path`. This blocks on file I/O; call it at startup or
    /// from a blocking context.
    pub fn open(path: &Path) -> Result<Arc<RedbStore>, MetaError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| MetaError::Backend(format!("creating {}: {e}", parent.display())))?;
        }
        let db = Database::create(path).map_err(backend)?;
        // Create the table up front so read transactions can always open it.
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(KV).map_err(backend)?;
        txn.commit().map_err(backend)?;
        tracing::debug!(path = %path.display(), "opened redb metadata store");
        Ok(Arc::new(RedbStore {
            db: Arc::new(db),
            path: path.to_path_buf(),
        }))
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the database on the blocking pool.
    async fn blocking<R, F>(&self, f: F) -> Result<R, MetaError>
    where
        R: Send + 'static,
        F: FnOnce(&Database) -> Result<R, MetaError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| MetaError::Backend(format!("redb task failed: {e}")))?
    }
}

#[async_trait::async_trait]
impl MetaStore for RedbStore {
    fn backend_name(&self) -> &'static str {
        "redb"
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MetaError> {
        validate_key(key)?;
        let key = key.to_vec();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(KV).map_err(backend)?;
            let value = table.get(key.as_slice()).map_err(backend)?;
            Ok(value.map(|v| v.value().to_vec()))
        })
        .await
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
        let (start, end) = (start.to_vec(), end.to_vec());
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(KV).map_err(backend)?;
            let upper = if end.is_empty() {
                Bound::Unbounded
            } else {
                Bound::Excluded(end.as_slice())
            };
            let range = table
                .range::<&[u8]>((Bound::Included(start.as_slice()), upper))
                .map_err(backend)?;
            let mut out = Vec::new();
            for entry in range.take(limit) {
                let (k, v) = entry.map_err(backend)?;
                out.push((k.value().to_vec(), v.value().to_vec()));
            }
            Ok(out)
        })
        .await
    }

    async fn commit(&self, txn: Txn) -> Result<TxnOutcome, MetaError> {
        validate_txn(&txn)?;
        self.blocking(move |db| {
            let wtxn = db.begin_write().map_err(backend)?;
            {
                let mut table = wtxn.open_table(KV).map_err(backend)?;
                for (index, check) in txn.checks.iter().enumerate() {
                    let current = table.get(check.key()).map_err(backend)?;
                    if !check.holds(current.as_ref().map(|v| v.value())) {
                        drop(current);
                        drop(table);
                        wtxn.abort().map_err(backend)?;
                        return Ok(TxnOutcome::CheckFailed { index });
                    }
                }
                for mutation in &txn.mutations {
                    match mutation {
                        Mutation::Put { key, value } => {
                            table
                                .insert(key.as_slice(), value.as_slice())
                                .map_err(backend)?;
                        }
                        Mutation::Delete { key } => {
                            table.remove(key.as_slice()).map_err(backend)?;
                        }
                    }
                }
            }
            wtxn.commit().map_err(backend)?;
            Ok(TxnOutcome::Committed)
        })
        .await
    }
}
