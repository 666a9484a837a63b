//! An object store belongs to one namespace. A node of another namespace
//! on the same store (a shared bucket and prefix) is refused before it can
//! collect garbage there, which deleted every object it did not know of;
//! a node whose store is not its namespace's (another bucket) is refused
//! before it uploads ranges the other nodes cannot read.

#![allow(clippy::disallowed_methods)] // tests wait on real timers

use std::sync::Arc;

use bytes::Bytes;
use strata_common::{Clock, Message, SystemClock};
use strata_engine::{Engine, EngineConfig, MessageType, PublishMessage, Retention};
use strata_metadata::{MemoryStore, MetaStore};

mod common;

fn node(dir: &std::path::Path, objects: &std::path::Path) -> EngineConfig {
    let mut c = common::config(dir);
    c.object_store = strata_objects::ObjectStoreConfig::local(objects.to_path_buf());
    c
}

async fn open(
    dir: &std::path::Path,
    objects: &std::path::Path,
    meta: &Arc<dyn MetaStore>,
) -> strata_engine::Result<Arc<Engine>> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Engine::open_with_store(node(dir, objects), clock, meta.clone()).await
}

fn refusal(opened: strata_engine::Result<Arc<Engine>>) -> String {
    match opened {
        Ok(_) => panic!("opened on a store that is not its namespace's"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_serves_one_namespace() {
    let objects = tempfile::tempdir().unwrap();
    let (dir_a, dir_b, dir_c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let ns_a: Arc<dyn MetaStore> = MemoryStore::new();
    let a = open(dir_a.path(), objects.path(), &ns_a).await.unwrap();
    a.create_topic(
        "default",
        "t",
        2,
        MessageType::Normal,
        Some(Retention::Unlimited),
    )
    .await
    .unwrap();
    let m = PublishMessage {
        queue: Some(0),
        message: Message {
            body: Bytes::from_static(b"kept"),
            ..Message::default()
        },
    };
    a.publish("default", "t", vec![m]).await.unwrap();
    common::upload_all(&a).await;
    let mark = ns_a.get(b"store-mark").await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&mark).contains("\"marked\":true"));

    // Another namespace on the same store: refused, nothing deleted.
    let ns_b: Arc<dyn MetaStore> = MemoryStore::new();
    let why = refusal(open(dir_b.path(), objects.path(), &ns_b).await);
    assert!(why.contains("belongs to another Strata namespace"), "{why}");
    assert!(why.contains("object_store.prefix"), "{why}");

    // The namespace's node on another (empty) store: refused.
    let elsewhere = tempfile::tempdir().unwrap();
    let why = refusal(open(dir_c.path(), elsewhere.path(), &ns_a).await);
    assert!(why.contains("is not this namespace's"), "{why}");
    assert!(
        std::fs::read_dir(elsewhere.path())
            .unwrap()
            .next()
            .is_none(),
        "nothing written to the wrong store"
    );

    // A node on the namespace's shared metadata left with the default
    // store in its data directory: not private, so refused as well.
    let dir_d = tempfile::tempdir().unwrap();
    let mut defaults = common::config(dir_d.path());
    defaults.shared_metadata = true;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let why = refusal(Engine::open_with_store(defaults, clock, ns_a.clone()).await);
    assert!(why.contains("is not this namespace's"), "{why}");

    // The namespace's own store still holds everything.
    a.collect_garbage().await.unwrap();
    let read = a
        .read("default", "t", 0, 0, 10, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(read.messages.len(), 1);
    a.close().await.unwrap();
    drop(a);
    let again = open(dir_a.path(), objects.path(), &ns_a).await.unwrap();
    again.close().await.unwrap();
}

/// A store inside the node's data directory can be no other namespace's:
/// a mark the metadata lost (a metadata journal cut, say) is recorded
/// again instead of refusing the start. A mark the store lost is not: an
/// empty directory looks just like it, so the start is refused, saying
/// how to restore the mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_store_is_marked_again_only_when_the_metadata_lost_its_mark() {
    let dir = tempfile::tempdir().unwrap();
    let meta: Arc<dyn MetaStore> = MemoryStore::new();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let open = || Engine::open_with_store(common::config(dir.path()), clock.clone(), meta.clone());
    let engine = open().await.unwrap();
    engine.close().await.unwrap();
    drop(engine);
    let mark_file = dir.path().join("objects").join("strata-store-mark");
    let id = std::fs::read_to_string(&mark_file).unwrap();

    let forget = strata_metadata::Txn::new().delete(b"store-mark".to_vec());
    meta.commit(forget).await.unwrap();
    let engine = open().await.unwrap();
    let mark = meta.get(b"store-mark").await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&mark).contains(&id),
        "the store's id kept"
    );
    engine.close().await.unwrap();
    drop(engine);

    std::fs::remove_file(&mark_file).unwrap();
    let text = match open().await {
        Ok(_) => panic!("opened on a store without its mark"),
        Err(e) => e.to_string(),
    };
    assert!(
        text.contains(&id) && text.contains("strata-store-mark"),
        "{text}"
    );
    assert!(!mark_file.exists(), "a refused start writes no mark");
    // Restored as the refusal says, the store serves again.
    std::fs::write(&mark_file, &id).unwrap();
    let engine = open().await.unwrap();
    engine.close().await.unwrap();
}

/// A node restarted with other object store settings on the same data
/// directory (the default store in its data directory instead of the one
/// it uploaded to) is refused: it served `referenced but missing` errors,
/// dropped the message index's records and uploaded apart from its data.
/// Back on its store it reads everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_on_another_store_is_refused_and_reads_all_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let meta: Arc<dyn MetaStore> = MemoryStore::new();
    let engine = open(dir.path(), elsewhere.path(), &meta).await.unwrap();
    engine
        .create_topic("t", "x", 1, MessageType::Normal, Some(Retention::Unlimited))
        .await
        .unwrap();
    for i in 0..3 {
        let m = PublishMessage {
            queue: Some(0),
            message: Message {
                body: Bytes::from(format!("m{i}")),
                ..Message::default()
            },
        };
        engine.publish("t", "x", vec![m]).await.unwrap();
    }
    engine.upload_once().await.unwrap();
    engine.close().await.unwrap();
    drop(engine);

    let default_store = dir.path().join("objects");
    let text = refusal(open(dir.path(), &default_store, &meta).await);
    assert!(text.contains("not this namespace's"), "{text}");

    let engine = open(dir.path(), elsewhere.path(), &meta).await.unwrap();
    let read = engine
        .read("t", "x", 0, 0, 10, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(read.messages.len(), 3);
    engine.close().await.unwrap();
}

/// The store swapped under a running node (another volume mounted, the
/// bucket emptied): its uploads stop, keeping the WAL, instead of putting
/// ranges into a store that holds nothing else of the namespace, whose
/// commit would release the WAL's copy. With the right store back, they
/// go on and every message reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_swapped_under_a_running_node_takes_no_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let parent = tempfile::tempdir().unwrap();
    let (store, aside) = (parent.path().join("store"), parent.path().join("aside"));
    let meta: Arc<dyn MetaStore> = MemoryStore::new();
    let engine = open(dir.path(), &store, &meta).await.unwrap();
    engine
        .create_topic("t", "x", 1, MessageType::Normal, Some(Retention::Unlimited))
        .await
        .unwrap();
    let publish = |i: usize| PublishMessage {
        queue: Some(0),
        message: Message {
            body: Bytes::from(format!("m{i}")),
            ..Message::default()
        },
    };
    engine.publish("t", "x", vec![publish(0)]).await.unwrap();
    common::upload_all(&engine).await;

    // Swapped for an empty store.
    std::fs::rename(&store, &aside).unwrap();
    std::fs::create_dir(&store).unwrap();
    engine.publish("t", "x", vec![publish(1)]).await.unwrap();
    for _ in 0..2 {
        let refused = engine
            .upload_once()
            .await
            .expect_err("uploaded to a foreign store");
        assert!(
            refused.to_string().contains("not this namespace's"),
            "{refused}"
        );
        assert!(
            engine.upload_lag_bytes() > 0,
            "the WAL keeps what was not uploaded"
        );
    }
    let merged = engine.merge_small_ranges().await;
    assert!(merged.is_err() || merged.is_ok_and(|n| n == 0));

    // The right store back: the upload goes on, nothing lost.
    std::fs::remove_dir_all(&store).unwrap();
    std::fs::rename(&aside, &store).unwrap();
    common::upload_all(&engine).await;
    let read = engine
        .read("t", "x", 0, 0, 10, std::time::Duration::ZERO)
        .await
        .unwrap();
    let bodies: Vec<&[u8]> = read.messages.iter().map(|m| &m.message.body[..]).collect();
    assert_eq!(bodies, [b"m0".as_slice(), b"m1".as_slice()]);
    engine.close().await.unwrap();
}
