//! Message lookup by id and by key: found at once, through the index after
//! it catches up, across a restart, and gone once retention or topic
//! deletion removes the messages.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_common::{Clock, ManualClock, Message, SystemClock};
use strata_engine::{
    Engine, EngineConfig, EngineError, FoundMessage, IndexKind, MessageType, PublishMessage,
    Retention,
};
use strata_metadata::{MemoryStore, MetaStore};

const T: &str = "acme";

fn config(dir: &std::path::Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.upload_interval = Duration::from_secs(3600);
    c.upload_trigger_bytes = u64::MAX;
    c.retention_interval = Duration::from_secs(3600);
    c.gc_grace = Duration::ZERO;
    c.block_cache.disk_dir = None;
    c
}

fn message(id: &str, key: Option<&str>, body: &str) -> PublishMessage {
    PublishMessage {
        queue: None,
        message: Message {
            id: id.into(),
            key: key.map(str::to_string),
            body: Bytes::from(body.to_string()),
            ..Message::default()
        },
    }
}

async fn find(engine: &Arc<Engine>, kind: IndexKind, value: &str) -> Vec<FoundMessage> {
    engine
        .find_messages(T, "orders", kind, value, 1000)
        .await
        .unwrap()
}

fn bodies(found: &[FoundMessage]) -> Vec<String> {
    found
        .iter()
        .map(|f| String::from_utf8_lossy(&f.message.message.body).into_owned())
        .collect()
}

/// How many keys of the store start with `prefix`.
async fn count(store: &Arc<MemoryStore>, prefix: &str) -> usize {
    // Every prefix here ends in '/', so the next byte value bounds it.
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    store
        .scan(prefix.as_bytes(), &end, 100_000)
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn found_by_id_and_key_before_and_after_indexing_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::new();
    let open = || Engine::open_with_store(config(dir.path()), Arc::new(SystemClock), store.clone());
    let engine = open().await.unwrap();
    engine
        .create_topic(T, "orders", 3, MessageType::Normal, None)
        .await
        .unwrap();
    let batch: Vec<PublishMessage> = (0..30)
        .map(|i| {
            let key = format!("k-{}", i % 3);
            message(&format!("m-{i}"), Some(&key), &format!("body-{i}"))
        })
        .chain([message("m-x", Some("k-1/x"), "prefix trap")])
        .collect();
    engine.publish(T, "orders", batch).await.unwrap();

    // Found before the index task ran, by scanning past its mark...
    let by_id = find(&engine, IndexKind::Id, "m-7").await;
    assert_eq!(bodies(&by_id), ["body-7"]);
    let by_key = find(&engine, IndexKind::Key, "k-1").await;
    assert_eq!(by_key.len(), 10, "k-1/x is another key");
    assert!(
        by_key.iter().all(|f| f.queue == by_key[0].queue),
        "a key keeps to one queue"
    );
    assert!(find(&engine, IndexKind::Id, "m-99").await.is_empty());

    // ...and the same through the index once it caught up.
    engine.index_pending().await.unwrap();
    assert_eq!(count(&store, "msg-pos/").await, 31);
    assert_eq!(count(&store, "msg-id/").await, 31);
    assert_eq!(count(&store, "msg-key/").await, 31);
    assert_eq!(
        engine.index_pending().await.unwrap(),
        0,
        "nothing indexed twice"
    );
    assert_eq!(find(&engine, IndexKind::Id, "m-7").await, by_id);
    assert_eq!(find(&engine, IndexKind::Key, "k-1").await, by_key);
    let limited = engine
        .find_messages(T, "orders", IndexKind::Key, "k-1", 4)
        .await
        .unwrap();
    assert_eq!(limited[..], by_key[..4]);

    // Another tenant sees no such topic.
    let err = engine
        .find_messages("other", "orders", IndexKind::Id, "m-7", 10)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::TopicNotFound(_)), "{err}");

    // New messages are found next to indexed ones, and after a restart the
    // index resumes where it was.
    engine
        .publish(T, "orders", vec![message("m-new", Some("k-1"), "new")])
        .await
        .unwrap();
    assert_eq!(find(&engine, IndexKind::Key, "k-1").await.len(), 11);
    engine.close().await.unwrap();
    drop(engine);
    let engine = open().await.unwrap();
    assert_eq!(
        bodies(&find(&engine, IndexKind::Id, "m-new").await),
        ["new"]
    );
    assert_eq!(find(&engine, IndexKind::Key, "k-1").await.len(), 11);
    engine.index_pending().await.unwrap();
    assert_eq!(count(&store, "msg-pos/").await, 32);
    assert_eq!(find(&engine, IndexKind::Id, "m-7").await, by_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_entries_and_deleting_the_topic_drops_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::new();
    let clock = ManualClock::new(1_000_000, 1);
    let engine = Engine::open_with_store(
        config(dir.path()),
        clock.clone() as Arc<dyn Clock>,
        store.clone(),
    )
    .await
    .unwrap();
    engine
        .create_topic(
            T,
            "orders",
            1,
            MessageType::Normal,
            Some(Retention::Ms(60_000)),
        )
        .await
        .unwrap();
    for i in 0..20 {
        let id = format!("m-{i}");
        engine
            .publish(T, "orders", vec![message(&id, Some("k"), "old")])
            .await
            .unwrap();
    }
    engine.index_pending().await.unwrap();
    // The old messages go to object storage in ranges of their own, which
    // retention can expire whole.
    let upload_all = || async {
        while engine.upload_lag_bytes() > 0 {
            engine.upload_once().await.unwrap();
        }
    };
    upload_all().await;
    clock.advance_ms(61_000);
    engine
        .publish(T, "orders", vec![message("m-fresh", Some("k"), "fresh")])
        .await
        .unwrap();
    upload_all().await;
    assert_eq!(engine.enforce_retention().await.unwrap(), 1);
    engine.index_pending().await.unwrap();
    assert!(find(&engine, IndexKind::Id, "m-3").await.is_empty());
    assert_eq!(bodies(&find(&engine, IndexKind::Key, "k").await), ["fresh"]);
    assert_eq!(count(&store, "msg-pos/").await, 1, "expired entries pruned");
    assert_eq!(count(&store, "msg-id/").await, 1);
    assert_eq!(count(&store, "msg-key/").await, 1);

    engine.delete_topic(T, "orders").await.unwrap();
    engine.index_pending().await.unwrap();
    for prefix in ["msg-pos/", "msg-id/", "msg-key/", "msg-mark/"] {
        assert_eq!(count(&store, prefix).await, 0, "{prefix} left behind");
    }
}

/// Nothing stays in the tail cache, and every upload frees the WAL.
fn small_caches(dir: &std::path::Path) -> EngineConfig {
    let mut c = config(dir);
    c.tail_cache_bytes = 1;
    c.wal_segment_bytes = 4096;
    c
}

/// The index takes ids and keys from what the appends fed it: messages
/// that already left the tail cache and the WAL are not fetched back from
/// object storage to be indexed (on 10,000 queues that was ~90,000 GETs
/// per GiB published).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexing_fetches_nothing_back_from_object_storage() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000, 1);
    let engine = Engine::open(small_caches(dir.path()), clock.clone() as Arc<dyn Clock>)
        .await
        .unwrap();
    engine
        .create_topic(T, "orders", 4, MessageType::Normal, None)
        .await
        .unwrap();
    for round in 0..5 {
        let batch = (0..40)
            .map(|i| {
                let n = round * 40 + i;
                message(&format!("m-{n}"), Some("k"), &format!("body-{n}"))
            })
            .collect();
        engine.publish(T, "orders", batch).await.unwrap();
        while engine.upload_lag_bytes() > 0 {
            engine.upload_once().await.unwrap();
        }
    }
    let gets = engine.object_store().metrics().gets;
    assert_eq!(engine.index_pending().await.unwrap(), 200);
    assert_eq!(
        engine.object_store().metrics().gets,
        gets,
        "nothing read back"
    );
    assert_eq!(
        bodies(&find(&engine, IndexKind::Id, "m-123").await),
        ["body-123"]
    );

    // Messages published but not yet indexed when the node stops: after a
    // restart the feed is empty, and the index reads them back.
    let late = (0..10)
        .map(|i| message(&format!("late-{i}"), Some("k"), "late"))
        .collect();
    engine.publish(T, "orders", late).await.unwrap();
    while engine.upload_lag_bytes() > 0 {
        engine.upload_once().await.unwrap();
    }
    engine.close().await.unwrap();
    drop(engine);
    let engine = Engine::open(small_caches(dir.path()), clock.clone() as Arc<dyn Clock>)
        .await
        .unwrap();
    let gets = engine.object_store().metrics().gets;
    assert_eq!(engine.index_pending().await.unwrap(), 10);
    assert!(engine.object_store().metrics().gets > gets, "read back");
    assert_eq!(find(&engine, IndexKind::Key, "k").await.len(), 210);
}
