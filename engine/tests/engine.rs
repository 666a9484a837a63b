//! Engine behaviour on the real WAL and the embedded metadata store.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_common::{Message, SystemClock};
use strata_engine::{
    Engine, EngineConfig, EngineError, MessageType, PublishMessage, ReadLimits, Retention,
    TagFilter,
};

const T: &str = "default";

fn msg(body: &str) -> PublishMessage {
    PublishMessage {
        queue: None,
        message: Message {
            body: Bytes::from(body.to_string()),
            ..Message::default()
        },
    }
}

fn to_queue(queue: u32, body: &str) -> PublishMessage {
    PublishMessage {
        queue: Some(queue),
        ..msg(body)
    }
}

fn config(dir: &std::path::Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.retention_interval = Duration::from_secs(3600);
    c
}

async fn open(dir: &std::path::Path) -> Arc<Engine> {
    Engine::open(config(dir), Arc::new(SystemClock))
        .await
        .unwrap()
}

fn bodies(messages: &[strata_common::StoredMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.message.body).into_owned())
        .collect()
}

#[tokio::test]
async fn publish_then_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    engine
        .create_topic(T, "orders", 2, MessageType::Normal, None)
        .await
        .unwrap();
    let published = engine
        .publish(
            T,
            "orders",
            vec![to_queue(1, "a"), to_queue(1, "b"), to_queue(0, "c")],
        )
        .await
        .unwrap();
    assert_eq!(
        published
            .iter()
            .map(|p| (p.queue, p.offset))
            .collect::<Vec<_>>(),
        vec![(1, 0), (1, 1), (0, 0)]
    );
    let read = engine
        .read(T, "orders", 1, 0, 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(bodies(&read.messages), ["a", "b"]);
    assert_eq!((read.next_offset, read.high_watermark), (2, 2));
    assert_eq!(read.messages[0].message.id, published[0].message_id);
}

#[tokio::test]
async fn keys_route_to_one_queue_and_ids_are_unique() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    engine
        .create_topic(T, "t", 8, MessageType::Normal, None)
        .await
        .unwrap();
    let keyed: Vec<_> = (0..20)
        .map(|i| {
            let mut m = msg(&i.to_string());
            m.message.key = Some("customer-7".into());
            m
        })
        .collect();
    let published = engine.publish(T, "t", keyed).await.unwrap();
    let queue = published[0].queue;
    assert!(published.iter().all(|p| p.queue == queue));
    let offsets: Vec<u64> = published.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, (0..20).collect::<Vec<_>>());
    let mut ids: Vec<_> = published.iter().map(|p| p.message_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
}

#[tokio::test]
async fn state_survives_restart_and_offsets_continue() {
    let dir = tempfile::tempdir().unwrap();
    let epoch_before;
    // Where each message group's messages went (a group goes to the queue
    // its name hashes to), and their bodies in order.
    let mut landed: std::collections::BTreeMap<String, (u32, Vec<String>)> = Default::default();
    {
        let engine = open(dir.path()).await;
        engine
            .create_topic(T, "t", 3, MessageType::Fifo, Some(Retention::Unlimited))
            .await
            .unwrap();
        for i in 0..50 {
            // FIFO messages carry a message group.
            let group = format!("g{}", i % 3);
            let mut m = to_queue(i % 3, &format!("m{i}"));
            m.message.properties = vec![(
                strata_common::MESSAGE_GROUP_PROPERTY.to_string(),
                group.clone(),
            )];
            let p = engine.publish(T, "t", vec![m]).await.unwrap();
            let entry = landed.entry(group).or_insert((p[0].queue, Vec::new()));
            assert_eq!(entry.0, p[0].queue, "a group keeps to one queue");
            entry.1.push(format!("m{i}"));
        }
        engine.commit_offset(T, "g", "t", 0, 5).await.unwrap();
        epoch_before = engine.queue_info(T, "t", 0).unwrap().owner_epoch;
        engine.close().await.unwrap();
    }
    let mut per_queue = [0u64; 3];
    for (queue, bodies) in landed.values() {
        per_queue[*queue as usize] += bodies.len() as u64;
    }
    let engine = open(dir.path()).await;
    let (info, queues) = engine.describe_topic(T, "t").unwrap();
    assert_eq!(info.message_type, MessageType::Fifo);
    assert_eq!(info.retention, Retention::Unlimited);
    assert_eq!(
        queues.iter().map(|q| q.end_offset).collect::<Vec<_>>(),
        per_queue
    );
    assert!(
        queues[0].owner_epoch > epoch_before,
        "restart claims a new epoch"
    );
    let (g2_queue, g2_bodies) = &landed["g2"];
    let read = engine
        .read(T, "t", *g2_queue, 0, 100, Duration::ZERO)
        .await
        .unwrap();
    let in_queue: Vec<String> = bodies(&read.messages)
        .into_iter()
        .filter(|b| g2_bodies.contains(b))
        .collect();
    assert_eq!(&in_queue, g2_bodies, "the group's messages, in order");
    let err = engine
        .publish(T, "t", vec![to_queue(2, "next")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("message group"), "{err}");
    let mut next = to_queue(2, "next");
    next.message.properties = vec![(
        strata_common::MESSAGE_GROUP_PROPERTY.to_string(),
        "g2".to_string(),
    )];
    let p = engine.publish(T, "t", vec![next]).await.unwrap();
    assert_eq!(
        p[0].offset, per_queue[*g2_queue as usize],
        "a refused publish took no offset"
    );
    assert_eq!(
        engine.committed_offset(T, "g", "t", 0).await.unwrap(),
        Some(5)
    );
}

#[tokio::test]
async fn reads_fall_back_to_the_wal_when_the_tail_cache_is_small() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.tail_cache_bytes = 2048;
    let engine = Engine::open(c, Arc::new(SystemClock)).await.unwrap();
    engine
        .create_topic(T, "t", 1, MessageType::Normal, None)
        .await
        .unwrap();
    for i in 0..100 {
        engine
            .publish(T, "t", vec![msg(&format!("{i:0>200}"))])
            .await
            .unwrap();
    }
    let read = engine
        .read(T, "t", 0, 0, 1000, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(read.messages.len(), 100);
    for (i, m) in read.messages.iter().enumerate() {
        assert_eq!(m.offset, i as u64);
        assert_eq!(m.message.body, Bytes::from(format!("{i:0>200}")));
    }
    assert!(engine.status().tail_cache.misses > 0);
}

#[tokio::test]
async fn long_poll_wakes_on_publish_and_times_out_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    engine
        .create_topic(T, "t", 1, MessageType::Normal, None)
        .await
        .unwrap();
    let idle = engine
        .read(T, "t", 0, 0, 10, Duration::from_millis(50))
        .await
        .unwrap();
    assert!(idle.messages.is_empty());
    let reader = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.read(T, "t", 0, 0, 10, Duration::from_secs(20)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    engine.publish(T, "t", vec![msg("wake")]).await.unwrap();
    let woke = reader.await.unwrap().unwrap();
    assert_eq!(bodies(&woke.messages), ["wake"]);
}

/// A long poll with a tag filter waits for a message it keeps: one it
/// drops arriving first does not end the wait.
#[tokio::test]
async fn a_filtered_long_poll_waits_past_messages_it_drops() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    engine
        .create_topic(T, "t", 1, MessageType::Normal, None)
        .await
        .unwrap();
    let tagged = |body: &str, tag: &str| {
        let mut m = msg(body);
        m.message.tag = Some(tag.to_string());
        m
    };
    let reader = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let wanted = TagFilter::parse("x").unwrap();
            let limits = ReadLimits {
                max_messages: 10,
                max_returned: None,
                max_body_bytes: None,
                filter: &wanted,
            };
            engine
                .read_within(T, "t", 0, 0, Duration::from_secs(20), limits)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    engine
        .publish(T, "t", vec![tagged("other", "y")])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!reader.is_finished(), "a message it drops ended the wait");
    engine
        .publish(T, "t", vec![tagged("wanted", "x")])
        .await
        .unwrap();
    let woke = reader.await.unwrap().unwrap();
    assert_eq!(bodies(&woke.messages), ["wanted"]);
    assert_eq!(woke.next_offset, 2);
    // With nothing it keeps arriving, it ends when the wait does.
    let none = TagFilter::parse("z").unwrap();
    let limits = ReadLimits {
        max_messages: 10,
        max_returned: None,
        max_body_bytes: None,
        filter: &none,
    };
    let idle = engine
        .read_within(T, "t", 0, 0, Duration::from_millis(50), limits)
        .await
        .unwrap();
    assert!(idle.messages.is_empty());
    assert_eq!(idle.next_offset, 2);
}

#[tokio::test]
async fn errors_are_specific() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    engine
        .create_topic(T, "t", 2, MessageType::Normal, None)
        .await
        .unwrap();
    let code = |e: EngineError| e.code().as_str();
    assert_eq!(
        code(
            engine
                .create_topic(T, "t", 1, MessageType::Normal, None)
                .await
                .unwrap_err()
        ),
        "TOPIC_ALREADY_EXISTS"
    );
    assert_eq!(
        code(
            engine
                .create_topic(T, "bad/name", 1, MessageType::Normal, None)
                .await
                .unwrap_err()
        ),
        "INVALID_NAME"
    );
    assert_eq!(
        code(
            engine
                .create_topic(T, "zero", 0, MessageType::Normal, None)
                .await
                .unwrap_err()
        ),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        code(engine.publish(T, "nope", vec![msg("x")]).await.unwrap_err()),
        "TOPIC_NOT_FOUND"
    );
    assert_eq!(
        code(
            engine
                .publish(T, "t", vec![to_queue(2, "x")])
                .await
                .unwrap_err()
        ),
        "QUEUE_NOT_FOUND"
    );
    assert_eq!(
        code(engine.publish(T, "t", vec![]).await.unwrap_err()),
        "INVALID_ARGUMENT"
    );
    let big = msg(&"x".repeat(engine.config().max_message_bytes + 1));
    assert_eq!(
        code(engine.publish(T, "t", vec![big]).await.unwrap_err()),
        "MESSAGE_TOO_LARGE"
    );
    let many = vec![msg("x"); engine.config().max_batch_messages + 1];
    assert_eq!(
        code(engine.publish(T, "t", many).await.unwrap_err()),
        "BATCH_TOO_LARGE"
    );
    assert_eq!(
        code(
            engine
                .read(T, "t", 0, 1, 1, Duration::ZERO)
                .await
                .unwrap_err()
        ),
        "OFFSET_OUT_OF_RANGE"
    );
    assert_eq!(
        code(engine.commit_offset(T, "g", "t", 0, 99).await.unwrap_err()),
        "OFFSET_OUT_OF_RANGE"
    );
    assert_eq!(
        code(engine.describe_group(T, "none").await.unwrap_err()),
        "GROUP_NOT_FOUND"
    );
    // Nothing above changed the queue.
    assert_eq!(engine.queue_info(T, "t", 0).unwrap().end_offset, 0);
}

#[tokio::test]
async fn deleted_topic_stays_deleted_after_restart_and_name_is_reusable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path()).await;
        engine
            .create_topic(T, "t", 1, MessageType::Normal, None)
            .await
            .unwrap();
        engine.publish(T, "t", vec![msg("old")]).await.unwrap();
        engine.delete_topic(T, "t").await.unwrap();
        engine
            .create_topic(T, "t", 1, MessageType::Normal, None)
            .await
            .unwrap();
        engine.publish(T, "t", vec![msg("new")]).await.unwrap();
        engine.close().await.unwrap();
    }
    let engine = open(dir.path()).await;
    let read = engine.read(T, "t", 0, 0, 10, Duration::ZERO).await.unwrap();
    assert_eq!(bodies(&read.messages), ["new"]);
}

/// Creates and deletes of one name racing each other leave the engine's
/// topics equal to the catalog's: a delete between a create's commit and
/// its loading used to leave a loaded topic the catalog no longer had
/// (listed, counted, never deletable; a black-box run made 1-4 in 20 rounds).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_and_deletes_leave_no_ghost_topics() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    for _ in 0..30 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..8 {
            let engine = engine.clone();
            tasks.spawn(async move {
                if i % 2 == 0 {
                    let _ = engine
                        .create_topic(T, "t", 4, MessageType::Normal, None)
                        .await;
                } else {
                    // Deletes keep coming while the creates take turns.
                    for _ in 0..20 {
                        let _ = engine.delete_topic(T, "t").await;
                        tokio::task::yield_now().await;
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let loaded = engine.list_topics(T);
        assert!(loaded.len() <= 1, "{loaded:?}");
        let described = engine.describe_topic(T, "t").is_ok();
        assert_eq!(loaded.len(), usize::from(described), "{loaded:?}");
    }
    let _ = engine.delete_topic(T, "t").await;
    assert!(engine.list_topics(T).is_empty());
}

#[tokio::test]
async fn owner_check_fences_after_a_new_claim() {
    let dir = tempfile::tempdir().unwrap();
    let check;
    {
        let engine = open(dir.path()).await;
        engine
            .create_topic(T, "t", 1, MessageType::Normal, None)
            .await
            .unwrap();
        check = engine.owner_check(T, "t", 0).unwrap();
        engine.close().await.unwrap();
    }
    // A restart is a new claim: the old owner's check no longer holds.
    let engine = open(dir.path()).await;
    let fresh = engine.owner_check(T, "t", 0).unwrap();
    assert_ne!(check, fresh);
    engine.close().await.unwrap();
    drop(engine);
    let store = strata_metadata::RedbStore::open(&dir.path().join("meta.redb")).unwrap();
    use strata_metadata::{MetaStore, Txn, TxnOutcome};
    let outcome = store
        .commit(
            Txn::new()
                .check(check)
                .put(b"fenced".to_vec(), b"x".to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(outcome, TxnOutcome::CheckFailed { index: 0 });
    let outcome = store
        .commit(
            Txn::new()
                .check(fresh)
                .put(b"fenced".to_vec(), b"x".to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(outcome, TxnOutcome::Committed);
}

#[tokio::test]
async fn shutdown_refuses_new_work() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    engine
        .create_topic(T, "t", 1, MessageType::Normal, None)
        .await
        .unwrap();
    engine.close().await.unwrap();
    let err = engine.publish(T, "t", vec![msg("late")]).await.unwrap_err();
    assert_eq!(err.code().as_str(), "UNAVAILABLE");
}

#[tokio::test]
async fn shutdown_ends_long_polls() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    engine
        .create_topic(T, "t", 1, MessageType::Normal, None)
        .await
        .unwrap();
    let reader = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.read(T, "t", 0, 0, 10, Duration::from_secs(25)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(engine.not_ready(), None);
    engine.begin_shutdown();
    let why = engine.not_ready().expect("not ready once shutting down");
    assert!(why.contains("shutting down"), "{why}");
    // A hang guard, not a latency assertion: the poll must end, not run 25 s.
    let result = tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("long poll ended by shutdown")
        .unwrap()
        .unwrap();
    assert!(result.messages.is_empty());
}

/// A message may carry 64 properties of its own whatever reserved ones the
/// server adds (keys, message group, born host, a dead letter's origin).
#[tokio::test]
async fn reserved_properties_do_not_count_against_the_users() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    engine
        .create_topic(T, "t", 1, MessageType::Normal, None)
        .await
        .unwrap();
    let with = |user: usize, reserved: usize| {
        let mut m = msg("x");
        m.message.properties = (0..user)
            .map(|i| (format!("p{i:02}"), "v".to_string()))
            .chain((0..reserved).map(|i| (format!("__mq.r{i}"), "v".to_string())))
            .collect();
        m
    };
    let stored = engine.publish(T, "t", vec![with(64, 8)]).await.unwrap();
    let read = engine
        .read(T, "t", 0, stored[0].offset, 1, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(read.messages[0].message.properties.len(), 72);
    let e = engine.publish(T, "t", vec![with(65, 0)]).await.unwrap_err();
    assert!(e.to_string().contains("more than 64 properties"), "{e}");
    let e = engine
        .publish(T, "t", vec![with(64, 33)])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("reserved ones included"), "{e}");
}
