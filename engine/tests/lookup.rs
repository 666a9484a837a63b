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

/// A node on `dir` and `store` with the topic "orders" of `queues` queues.
async fn node_with_orders(
    dir: &std::path::Path,
    store: &Arc<MemoryStore>,
    queues: u32,
) -> Arc<Engine> {
    let engine = Engine::open_with_store(config(dir), Arc::new(SystemClock), store.clone())
        .await
        .unwrap();
    engine
        .create_topic(T, "orders", queues, MessageType::Normal, None)
        .await
        .unwrap();
    engine
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
        .messages
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
    let engine = node_with_orders(dir.path(), &store, 3).await;
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

    // ...the same from the pending entries once the task caught up...
    assert_eq!(engine.index_pending().await.unwrap(), 31);
    assert_eq!(
        engine.index_pending().await.unwrap(),
        0,
        "nothing indexed twice"
    );
    assert_eq!(count(&store, "msg-run/").await, 0);
    assert_eq!(engine.status().message_index.pending_entries, 62);
    assert_eq!(find(&engine, IndexKind::Id, "m-7").await, by_id);
    assert_eq!(find(&engine, IndexKind::Key, "k-1").await, by_key);

    // ...and from a run in object storage: one record in the metadata
    // store, whatever the number of messages (an id and a key each).
    assert_eq!(engine.flush_message_index().await.unwrap(), 62);
    let stats = engine.status().message_index;
    assert_eq!((stats.pending_entries, stats.runs_written), (0, 1));
    assert_eq!(count(&store, "msg-run/").await, 1);
    assert_eq!(count(&store, "msg-mark/").await, 3);
    assert_eq!(engine.object_store().list("index/").await.unwrap().len(), 1);
    assert_eq!(find(&engine, IndexKind::Id, "m-7").await, by_id);
    assert_eq!(find(&engine, IndexKind::Key, "k-1").await, by_key);
    let limited = engine
        .find_messages(T, "orders", IndexKind::Key, "k-1", 4)
        .await
        .unwrap();
    assert_eq!(limited.messages[..], by_key[..4]);
    assert!(limited.more, "the limit cut the answer");
    let all = engine
        .find_messages(T, "orders", IndexKind::Key, "k-1", by_key.len())
        .await
        .unwrap();
    assert_eq!((all.messages.len(), all.more), (by_key.len(), false));

    // Another tenant sees no such topic.
    let err = engine
        .find_messages("other", "orders", IndexKind::Id, "m-7", 10)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::TopicNotFound(_)), "{err}");

    // New messages are found next to indexed ones. They are pending when
    // the node stops and the object store refuses the run: after a restart
    // the index resumes at the committed marks and indexes them again.
    engine
        .publish(T, "orders", vec![message("m-new", Some("k-1"), "new")])
        .await
        .unwrap();
    assert_eq!(find(&engine, IndexKind::Key, "k-1").await.len(), 11);
    assert_eq!(engine.index_pending().await.unwrap(), 1);
    engine.object_store().faults().set_down(true);
    assert!(engine.flush_message_index().await.is_err());
    let err = engine
        .find_messages(T, "orders", IndexKind::Id, "m-new", 10)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::ObjectStore(_)),
        "runs unreadable: {err}"
    );
    engine.object_store().faults().set_down(false);
    assert_eq!(
        bodies(&find(&engine, IndexKind::Id, "m-new").await),
        ["new"],
        "still pending after the failed write"
    );
    engine.object_store().faults().set_down(true);
    engine.close().await.unwrap();
    drop(engine);
    let engine = open().await.unwrap();
    assert_eq!(count(&store, "msg-run/").await, 1);
    assert_eq!(
        bodies(&find(&engine, IndexKind::Id, "m-new").await),
        ["new"]
    );
    assert_eq!(find(&engine, IndexKind::Key, "k-1").await.len(), 11);
    assert_eq!(engine.index_pending().await.unwrap(), 1, "only m-new again");
    engine.close().await.unwrap();
    let engine = open().await.unwrap();
    assert_eq!(count(&store, "msg-run/").await, 2, "written at the close");
    assert_eq!(engine.index_pending().await.unwrap(), 0);
    assert_eq!(find(&engine, IndexKind::Id, "m-7").await, by_id);
    assert_eq!(find(&engine, IndexKind::Key, "k-1").await.len(), 11);
}

/// Index runs written one after another, for the tests of runs.
async fn index_in_runs(engine: &Arc<Engine>, runs: usize, per_run: usize) {
    for r in 0..runs {
        let batch = (0..per_run)
            .map(|i| {
                let n = r * per_run + i;
                message(&format!("m-{n}"), Some(&format!("k-{}", n % 5)), "x")
            })
            .collect();
        engine.publish(T, "orders", batch).await.unwrap();
        engine.index_pending().await.unwrap();
        engine.flush_message_index().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_merge_and_every_message_is_still_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::new();
    let engine = node_with_orders(dir.path(), &store, 4).await;
    index_in_runs(&engine, 10, 20).await;
    assert_eq!(count(&store, "msg-run/").await, 10);
    // A run a crash left between its PUT and its commit.
    engine
        .object_store()
        .put(
            "index/node-1/00000000000000ff.idx",
            Bytes::from_static(b"orphan"),
        )
        .await
        .unwrap();
    let summary = engine.maintain_message_index().await.unwrap();
    // Eight of the ten small runs became one; the replaced objects and the
    // orphan are swept (no grace period here).
    assert_eq!((summary.merged, summary.dropped, summary.swept), (8, 0, 9));
    assert_eq!(count(&store, "msg-run/").await, 3);
    assert_eq!(engine.object_store().list("index/").await.unwrap().len(), 3);
    for n in [0, 77, 159, 160, 199] {
        let id = format!("m-{n}");
        let found = find(&engine, IndexKind::Id, &id).await;
        assert_eq!(found.len(), 1, "{id}");
        assert_eq!(found[0].message.message.id, id);
    }
    assert_eq!(find(&engine, IndexKind::Key, "k-3").await.len(), 40);
    let again = engine.maintain_message_index().await.unwrap();
    assert_eq!((again.merged, again.swept), (0, 0), "nothing more to merge");
}

/// Under steady load most runs are written in the middle of an indexing
/// pass (the pending set fills while queues are still being indexed); each
/// is followed by maintenance, so runs merge as they pile up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_written_in_the_middle_of_a_pass_are_merged() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::new();
    let mut c = config(dir.path());
    c.index_flush_entries = 100;
    // A clock that never moves: the index task never runs a pass itself.
    let clock = ManualClock::new(1_000_000, 1);
    let engine = Engine::open_with_store(c, clock as Arc<dyn Clock>, store.clone())
        .await
        .unwrap();
    engine
        .create_topic(T, "orders", 10, MessageType::Normal, None)
        .await
        .unwrap();
    for q in 0..10u32 {
        let batch = (0..100)
            .map(|i| {
                let mut m = message(&format!("q{q}-m{i}"), Some(&format!("k-{}", i % 4)), "x");
                m.queue = Some(q);
                m
            })
            .collect();
        engine.publish(T, "orders", batch).await.unwrap();
    }
    assert_eq!(engine.index_pending().await.unwrap(), 1000);
    // A run was written before each queue after the first (nine); the
    // eighth's maintenance merged the eight into one.
    assert_eq!(count(&store, "msg-run/").await, 2);
    engine.flush_message_index().await.unwrap();
    for id in ["q0-m0", "q3-m57", "q8-m99", "q9-m42"] {
        let found = find(&engine, IndexKind::Id, id).await;
        assert_eq!(found.len(), 1, "{id}");
    }
    assert_eq!(find(&engine, IndexKind::Key, "k-1").await.len(), 250);
}

/// Entries on their way into a run are past the marks and out of the
/// pending set while the run's PUT and commit run: lookups still find them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn found_while_its_run_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::new();
    let engine = node_with_orders(dir.path(), &store, 4).await;
    let batch = (0..40)
        .map(|i| message(&format!("m-{i}"), Some(&format!("k-{}", i % 4)), "x"))
        .collect();
    engine.publish(T, "orders", batch).await.unwrap();
    assert_eq!(engine.index_pending().await.unwrap(), 40);

    engine
        .object_store()
        .faults()
        .set_latency(Duration::from_millis(500));
    let flush = tokio::spawn({
        let engine = engine.clone();
        async move { engine.flush_message_index().await }
    });
    SystemClock.sleep(Duration::from_millis(150)).await;
    assert_eq!(bodies(&find(&engine, IndexKind::Id, "m-17").await), ["x"]);
    assert_eq!(find(&engine, IndexKind::Key, "k-2").await.len(), 10);
    assert_eq!(flush.await.unwrap().unwrap(), 80);
    engine.object_store().faults().set_latency(Duration::ZERO);
    assert_eq!(count(&store, "msg-run/").await, 1);
    assert_eq!(bodies(&find(&engine, IndexKind::Id, "m-17").await), ["x"]);
    assert_eq!(find(&engine, IndexKind::Key, "k-2").await.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_runs_and_deleting_the_topic_drops_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::new();
    // From the real time on: the local object store dates objects by it, and
    // sweeping compares those dates with the clock.
    let clock = ManualClock::new(SystemClock.now_ms(), 1);
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
    engine.flush_message_index().await.unwrap();
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
    engine.index_pending().await.unwrap();
    engine.flush_message_index().await.unwrap();
    assert_eq!(count(&store, "msg-run/").await, 2);
    assert_eq!(
        engine.maintain_message_index().await.unwrap().dropped,
        0,
        "nothing expired yet"
    );
    assert_eq!(engine.enforce_retention().await.unwrap(), 1);
    assert!(find(&engine, IndexKind::Id, "m-3").await.is_empty());
    assert_eq!(bodies(&find(&engine, IndexKind::Key, "k").await), ["fresh"]);
    let summary = engine.maintain_message_index().await.unwrap();
    assert_eq!((summary.dropped, summary.swept), (1, 1), "the old run went");
    assert_eq!(count(&store, "msg-run/").await, 1);
    assert_eq!(bodies(&find(&engine, IndexKind::Key, "k").await), ["fresh"]);

    engine.delete_topic(T, "orders").await.unwrap();
    engine.index_pending().await.unwrap();
    assert_eq!(count(&store, "msg-mark/").await, 0);
    let summary = engine.maintain_message_index().await.unwrap();
    assert_eq!((summary.dropped, summary.swept), (1, 1));
    assert_eq!(count(&store, "msg-run/").await, 0);
    assert!(
        engine
            .object_store()
            .list("index/")
            .await
            .unwrap()
            .is_empty()
    );
}

/// An index kept the old way (keys per message in the metadata store) is
/// dropped on upgrade and built again in object storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_in_the_metadata_store_is_rebuilt_in_object_storage() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::new();
    let open = || Engine::open_with_store(config(dir.path()), Arc::new(SystemClock), store.clone());
    let engine = node_with_orders(dir.path(), &store, 2).await;
    index_in_runs(&engine, 1, 30).await;
    engine.close().await.unwrap();
    drop(engine);
    // What an older version left: entries, and marks saying all is indexed.
    let legacy = strata_metadata::Txn::new()
        .put(
            b"msg-pos/00000000000000000001/0000000000/00000000000000000000".to_vec(),
            b"{\"id\":\"m-0\"}".to_vec(),
        )
        .put(
            b"msg-id/00000000000000000001/0003m-0/0000000000/00000000000000000000".to_vec(),
            Vec::new(),
        );
    store.commit(legacy).await.unwrap();
    let engine = open().await.unwrap();
    assert_eq!(count(&store, "msg-pos/").await, 0);
    assert_eq!(count(&store, "msg-id/").await, 0);
    assert_eq!(count(&store, "msg-mark/").await, 0);
    assert_eq!(engine.index_pending().await.unwrap(), 30, "indexed again");
    assert_eq!(find(&engine, IndexKind::Id, "m-12").await.len(), 1);
}

/// Nothing stays in the tail cache, and every upload frees the WAL.
/// A message with several keys (RocketMQ producers may give several; the
/// first is its `key`, all are in `__mq.keys`) is found by each of them:
/// before indexing, from the pending entries, from a run, and from a run
/// written while the index read the messages back after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_found_by_each_of_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::new();
    let engine = node_with_orders(dir.path(), &store, 2).await;
    let mut several = message("m-multi", Some("first"), "several keys");
    several.message.properties = vec![(
        strata_common::KEYS_PROPERTY.into(),
        "first second third".into(),
    )];
    let batch = vec![several, message("m-one", Some("second-not"), "one key")];
    engine.publish(T, "orders", batch).await.unwrap();
    let all_keys = async |engine: &Arc<Engine>, stage: &str| {
        for key in ["first", "second", "third"] {
            let found = find(engine, IndexKind::Key, key).await;
            assert_eq!(bodies(&found), ["several keys"], "{key} {stage}");
        }
        // The keys joined are no key: a whitespace is refused.
        assert!(matches!(
            engine
                .find_messages(T, "orders", IndexKind::Key, "first second", 10)
                .await,
            Err(strata_engine::EngineError::InvalidArgument(_))
        ));
    };
    all_keys(&engine, "before indexing").await;
    assert_eq!(engine.index_pending().await.unwrap(), 2);
    all_keys(&engine, "pending").await;
    assert_eq!(
        engine.flush_message_index().await.unwrap(),
        6,
        "2 ids, 4 keys"
    );
    all_keys(&engine, "in a run").await;
    engine.close().await.unwrap();

    // After a restart the feed is empty: the index reads the messages back.
    let dir2 = tempfile::tempdir().unwrap();
    let store2 = MemoryStore::new();
    let engine = node_with_orders(dir2.path(), &store2, 1).await;
    let mut several = message("m-multi", Some("first"), "several keys");
    several.message.properties = vec![(
        strata_common::KEYS_PROPERTY.into(),
        "first second third".into(),
    )];
    engine.publish(T, "orders", vec![several]).await.unwrap();
    engine.close().await.unwrap();
    let engine =
        Engine::open_with_store(config(dir2.path()), Arc::new(SystemClock), store2.clone())
            .await
            .unwrap();
    assert_eq!(engine.index_pending().await.unwrap(), 1);
    assert_eq!(engine.flush_message_index().await.unwrap(), 4);
    for key in ["first", "second", "third"] {
        let found = find(&engine, IndexKind::Key, key).await;
        assert_eq!(bodies(&found), ["several keys"], "{key} read back");
    }
    engine.close().await.unwrap();
}

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

/// A node that left the cluster (or was adopted) maintains its index runs
/// no more: another node takes them over, merges them, drops them once
/// retention passed them (judged from the metadata store where it does not
/// serve the queues) and sweeps the objects that node wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_of_a_node_that_left_are_taken_over() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let objects = tempfile::tempdir().unwrap();
    let store = MemoryStore::new();
    let clock = ManualClock::new(SystemClock.now_ms(), 1);
    let on = |dir: &std::path::Path, id: &str, served: Option<Vec<String>>| {
        let mut c = config(dir);
        c.node_id = id.into();
        c.object_store = strata_objects::ObjectStoreConfig::local(objects.path().to_path_buf());
        c.served_tenants = served;
        c
    };
    let a = Engine::open_with_store(
        on(dir_a.path(), "node-a", None),
        clock.clone() as Arc<dyn Clock>,
        store.clone(),
    )
    .await
    .unwrap();
    a.create_topic(T, "orders", 2, MessageType::Normal, None)
        .await
        .unwrap();
    index_in_runs(&a, 10, 4).await;
    while a.upload_lag_bytes() > 0 {
        a.upload_once().await.unwrap();
    }
    a.close().await.unwrap();
    drop(a);
    let b = Engine::open_with_store(
        on(dir_b.path(), "node-b", Some(Vec::new())),
        clock.clone() as Arc<dyn Clock>,
        store.clone(),
    )
    .await
    .unwrap();
    let catalog = strata_metadata::Catalog::new(store.clone());
    let record = strata_metadata::NodeRecord {
        node: "node-a".into(),
        identity: "a-dir".into(),
        data_dir: "/volumes/a".into(),
        grpc_addr: "127.0.0.1:1".into(),
        http_addr: "127.0.0.1:2".into(),
        started_ms: 0,
        expires_ms: 0,
        upload_lag_bytes: 0,
        state: strata_metadata::NodeState::Live,
    };
    let joined = catalog
        .join_cluster(record, clock.now_ms(), 60_000)
        .await
        .unwrap();
    assert_eq!(
        b.maintain_message_index().await.unwrap().taken,
        0,
        "node-a is registered and live"
    );
    let left = strata_metadata::NodeRecord {
        state: strata_metadata::NodeState::Left {
            at_ms: clock.now_ms(),
        },
        ..joined.clone()
    };
    catalog.update_node(&joined, left).await.unwrap().unwrap();

    // Taken over and merged (8 of the 10 small runs); the merged inputs'
    // objects, written by node-a, are swept by node-b (objects are dated by
    // the file system, the sweep by the clock: a second later).
    clock.advance_ms(1_000);
    let done = b.maintain_message_index().await.unwrap();
    assert_eq!((done.taken, done.merged, done.swept), (10, 8, 8));
    let runs = catalog.index_runs().await.unwrap();
    assert!(runs.iter().all(|r| r.node == "node-b"), "{runs:?}");
    assert_eq!(runs.len(), 3);
    assert_eq!(
        b.object_store().list("index/node-a/").await.unwrap().len(),
        2
    );
    b.serve_tenant(T).await.unwrap();
    for n in [0, 17, 39] {
        assert_eq!(find(&b, IndexKind::Id, &format!("m-{n}")).await.len(), 1);
    }
    assert_eq!(find(&b, IndexKind::Key, "k-3").await.len(), 8);
    b.release_tenant(T).await.unwrap();

    // The node now serving the queues (here: the catalog, directly) expires
    // everything; node-b, serving none of it, learns that from the
    // metadata store and drops every run.
    let ranges: Vec<_> = catalog
        .all_ranges()
        .await
        .unwrap()
        .into_values()
        .flatten()
        .collect();
    assert!(!ranges.is_empty());
    // Retention records where each queue now starts with the expiry.
    let mut floors = std::collections::BTreeMap::new();
    for r in &ranges {
        let floor = floors.entry(r.queue).or_insert(0);
        *floor = r.end_offset.max(*floor);
    }
    let floors: Vec<_> = floors.into_iter().collect();
    assert!(catalog.expire_ranges(&ranges, &floors).await.unwrap());
    clock.advance_ms(61_000);
    let done = b.maintain_message_index().await.unwrap();
    assert_eq!((done.dropped, done.swept), (3, 3));
    assert!(catalog.index_runs().await.unwrap().is_empty());
    assert!(b.object_store().list("index/").await.unwrap().is_empty());
}

/// A run record whose object is gone (a late commit of a node whose
/// objects were swept meanwhile) does not stop maintenance for good: its
/// record is dropped and the other runs are kept in shape and found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_object_is_missing_is_dropped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::new();
    let engine = node_with_orders(dir.path(), &store, 2).await;
    index_in_runs(&engine, 3, 5).await;
    let catalog = strata_metadata::Catalog::new(store.clone());
    let runs = catalog.index_runs().await.unwrap();
    assert_eq!(runs.len(), 3);
    // Each run holds five of m-0..m-14.
    let first = runs[0].clone();
    engine
        .object_store()
        .delete(&first.record.object)
        .await
        .unwrap();
    let done = engine.maintain_message_index().await.unwrap();
    assert_eq!(done.dropped, 1);
    let left: Vec<String> = catalog
        .index_runs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.record.object)
        .collect();
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&first.record.object));
    let mut found = 0;
    for n in 0..15 {
        found += find(&engine, IndexKind::Id, &format!("m-{n}")).await.len();
    }
    assert_eq!(found, 10, "the two runs left are read");
    engine.maintain_message_index().await.unwrap();
}
