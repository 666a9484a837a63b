//! Garbage collection on nodes that share object storage: a node collects
//! the unreferenced objects it wrote and those of nodes that left or were
//! adopted more than a grace ago, never those of another registered node,
//! however old. Such a
//! node may be paused between an upload's freshness check and its commit;
//! if another node deleted the object meanwhile, the commit would point a
//! range at nothing and the WAL would then be released.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_common::{Clock, ManualClock, SystemClock};
use strata_engine::{Engine, EngineConfig};
use strata_metadata::{Catalog, MemoryStore, MetaStore, NodeRecord, NodeState};

mod common;

const GRACE: Duration = Duration::from_secs(10);

fn config(dir: &std::path::Path, objects: &std::path::Path, id: &str) -> EngineConfig {
    let mut c = common::config(dir);
    c.node_id = id.into();
    c.object_store = strata_objects::ObjectStoreConfig::local(objects.to_path_buf());
    c.gc_grace = GRACE;
    c
}

fn record(node: &str, expires_ms: i64) -> NodeRecord {
    NodeRecord {
        node: node.into(),
        identity: format!("{node}-dir"),
        data_dir: format!("/volumes/{node}"),
        grpc_addr: "127.0.0.1:1".into(),
        http_addr: "127.0.0.1:2".into(),
        started_ms: 0,
        expires_ms,
        upload_lag_bytes: 0,
        state: NodeState::Live,
    }
}

/// Whether each of `keys` is still in the store.
async fn present(engine: &Engine, keys: &[&str]) -> Vec<bool> {
    let mut out = Vec::new();
    for key in keys {
        out.push(engine.object_store().get(key).await.is_ok());
    }
    out
}

/// node-b on a fresh directory and object store, sharing a metadata store
/// with the catalog returned; its clock starts at real time, as objects are
/// dated by the file system.
async fn node_b() -> (
    [tempfile::TempDir; 2],
    Arc<ManualClock>,
    Arc<Engine>,
    Catalog,
) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let store: Arc<dyn MetaStore> = MemoryStore::new();
    let clock = ManualClock::new(SystemClock.now_ms(), 3);
    let b = Engine::open_with_store(
        config(dirs[0].path(), dirs[1].path(), "node-b"),
        clock.clone() as Arc<dyn Clock>,
        store.clone(),
    )
    .await
    .unwrap();
    (dirs, clock, b, Catalog::new(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_collects_only_its_own_objects_and_those_of_nodes_gone() {
    let (_dirs, clock, b, catalog) = node_b().await;
    // node-a is registered and has stopped heartbeating (paused, say); its
    // record has not been adopted.
    let a = catalog
        .join_cluster(record("node-a", 0), clock.now_ms(), 1)
        .await
        .unwrap();
    catalog
        .join_cluster(record("node-b", 0), clock.now_ms(), 60_000)
        .await
        .unwrap();
    let keys = [
        "seg/node-a/00000000000000000000-00000000000000000100-aa.seg",
        "merged/node-a/ab.seg",
        "seg/node-b/00000000000000000000-00000000000000000100-bb.seg",
        "merged/node-z/zz.seg",
    ];
    for key in keys {
        b.object_store()
            .put(key, Bytes::from_static(b"never committed"))
            .await
            .unwrap();
    }

    // Young: nothing goes.
    assert_eq!(b.collect_garbage().await.unwrap(), 0);
    clock.advance_ms(2 * GRACE.as_millis() as i64);
    // Old: node-b's own and those of node-z (no record) go; node-a may
    // still commit its objects.
    assert_eq!(b.collect_garbage().await.unwrap(), 2);
    assert_eq!(present(&b, &keys).await, [true, true, false, false]);

    // Once node-a is adopted, a commit of its held up across the adoption
    // may still land until its queues are claimed by others: its objects
    // are spared for one more grace, then go.
    let adopted = NodeRecord {
        state: NodeState::Adopted {
            by: "node-b".into(),
            at_ms: clock.now_ms(),
        },
        ..a.clone()
    };
    assert!(catalog.update_node(&a, adopted).await.unwrap().is_some());
    assert_eq!(b.collect_garbage().await.unwrap(), 0);
    assert_eq!(present(&b, &keys).await, [true, true, false, false]);
    clock.advance_ms(GRACE.as_millis() as i64 + 1);
    assert_eq!(b.collect_garbage().await.unwrap(), 2);
    assert_eq!(present(&b, &keys).await, [false; 4]);
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_left_has_its_objects_collected_a_grace_later() {
    let (_dirs, clock, b, catalog) = node_b().await;
    let key = "seg/node-c/00000000000000000000-00000000000000000100-cc.seg";
    b.object_store()
        .put(key, Bytes::from_static(b"never committed"))
        .await
        .unwrap();
    let c = catalog
        .join_cluster(record("node-c", 0), clock.now_ms(), 60_000)
        .await
        .unwrap();
    clock.advance_ms(2 * GRACE.as_millis() as i64);
    let left = NodeRecord {
        state: NodeState::Left {
            at_ms: clock.now_ms(),
        },
        ..c.clone()
    };
    assert!(catalog.update_node(&c, left).await.unwrap().is_some());
    // Old, but its node left only now.
    assert_eq!(b.collect_garbage().await.unwrap(), 0);
    assert_eq!(present(&b, &[key]).await, [true]);
    clock.advance_ms(GRACE.as_millis() as i64 + 1);
    assert_eq!(b.collect_garbage().await.unwrap(), 1);
    assert_eq!(present(&b, &[key]).await, [false]);
    b.close().await.unwrap();
}
