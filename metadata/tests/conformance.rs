//! Runs the shared conformance suite against every in-crate backend.

use std::sync::Arc;

use strata_metadata::store::{self, MetaStore};
use strata_metadata::{Checkpoints, MemoryStore, RedbStore, conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("nested/dir/meta.redb")).unwrap();
    conformance::run_all(store).await;
}

/// The same suite with a checkpoint every other group, so checks and
/// scans run across synced and journaled commits alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_conforms_across_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = Checkpoints {
        groups: 2,
        bytes: 512,
    };
    let store = RedbStore::open_with(&dir.path().join("meta.redb"), 1 << 20, checkpoints).unwrap();
    conformance::run_all(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_conforms() {
    conformance::run_all(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    {
        let store = RedbStore::open(&path).unwrap();
        store::put(&store, b"k1".to_vec(), b"v1".to_vec())
            .await
            .unwrap();
        store::put(&store, b"k2".to_vec(), b"v2".to_vec())
            .await
            .unwrap();
        store::delete(&store, b"k2".to_vec()).await.unwrap();
    }
    let store: Arc<dyn MetaStore> = RedbStore::open(&path).unwrap();
    assert_eq!(store.get(b"k1").await.unwrap(), Some(b"v1".to_vec()));
    assert_eq!(store.get(b"k2").await.unwrap(), None);
    let all = store.scan(b"k", b"", 10).await.unwrap();
    assert_eq!(all, vec![(b"k1".to_vec(), b"v1".to_vec())]);
}
