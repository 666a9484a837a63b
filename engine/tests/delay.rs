//! Delay messages: invisible in their topic until due, delivered by the
//! timer (not before the time), durable across a restart, billed once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::open;
use strata_common::{ManualClock, Message};
use strata_engine::delay::{PROP_DELIVER_AT, SCHEDULE_TOPIC};
use strata_engine::{Engine, EngineError, MessageType, PublishMessage, Retention};

const T: &str = "acme";
const START_MS: i64 = 1_800_000_000_000;

fn msg(body: &str) -> PublishMessage {
    PublishMessage {
        queue: None,
        message: Message {
            body: Bytes::from(body.to_string()),
            ..Message::default()
        },
    }
}

async fn bodies(engine: &Arc<Engine>, topic: &str) -> Vec<String> {
    engine
        .read(T, topic, 0, 0, 100, Duration::ZERO)
        .await
        .unwrap()
        .messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.message.body).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_messages_arrive_when_due_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 9);
    let engine = open(dir.path(), &clock).await;
    engine
        .create_topic(T, "d", 1, MessageType::Delay, Some(Retention::Unlimited))
        .await
        .unwrap();
    engine
        .publish_at(
            T,
            "d",
            vec![msg("in-10s"), msg("also-10s")],
            START_MS + 10_000,
        )
        .await
        .unwrap();
    engine
        .publish_at(T, "d", vec![msg("in-20s")], START_MS + 20_000)
        .await
        .unwrap();
    assert!(
        bodies(&engine, "d").await.is_empty(),
        "nothing before its time"
    );
    let next = engine.fire_due_timers().await.unwrap();
    assert_eq!(next, Some(Duration::from_millis(10_000)));
    clock.advance_ms(9_999);
    engine.fire_due_timers().await.unwrap();
    assert!(bodies(&engine, "d").await.is_empty(), "not even 1 ms early");
    clock.advance_ms(1);
    engine.fire_due_timers().await.unwrap();
    assert_eq!(bodies(&engine, "d").await, ["in-10s", "also-10s"]);
    let delivered = engine.read(T, "d", 0, 0, 1, Duration::ZERO).await.unwrap();
    let prop = delivered.messages[0]
        .message
        .properties
        .iter()
        .find(|(k, _)| k == PROP_DELIVER_AT)
        .map(|(_, v)| v.clone());
    assert_eq!(prop, Some((START_MS + 10_000).to_string()));

    // The 20 s one survives a restart.
    engine.close().await.unwrap();
    drop(engine);
    let engine = open(dir.path(), &clock).await;
    clock.advance_ms(10_000);
    engine.fire_due_timers().await.unwrap();
    assert_eq!(bodies(&engine, "d").await, ["in-10s", "also-10s", "in-20s"]);
    assert_eq!(engine.fire_due_timers().await.unwrap(), None);
    // Billed once, when accepted.
    assert_eq!(
        engine
            .meter()
            .totals()
            .get(T)
            .map_or(0, |u| u.published_messages),
        0
    );
    // The schedule topic is the engine's own: hidden and reserved.
    assert!(
        engine
            .list_topics(T)
            .iter()
            .all(|t| t.name != SCHEDULE_TOPIC)
    );
    let reserved = engine
        .create_topic(T, "__sys-mine", 1, MessageType::Normal, None)
        .await;
    assert!(matches!(reserved, Err(EngineError::InvalidName(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_times_are_checked_against_the_topic_type() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 10);
    let engine = open(dir.path(), &clock).await;
    engine
        .create_topic(T, "d", 1, MessageType::Delay, None)
        .await
        .unwrap();
    engine
        .create_topic(T, "n", 1, MessageType::Normal, None)
        .await
        .unwrap();
    let plain = engine.publish(T, "d", vec![msg("x")]).await;
    assert!(
        matches!(plain, Err(EngineError::InvalidArgument(_))),
        "{plain:?}"
    );
    let wrong = engine
        .publish_at(T, "n", vec![msg("x")], START_MS + 1000)
        .await;
    assert!(matches!(wrong, Err(EngineError::InvalidArgument(_))));
    let far = engine
        .publish_at(T, "d", vec![msg("x")], START_MS + 367 * 86_400_000)
        .await;
    assert!(matches!(far, Err(EngineError::InvalidArgument(_))));
    // A year ahead is fine; a time already past is delivered at once.
    engine
        .publish_at(T, "d", vec![msg("next-year")], START_MS + 365 * 86_400_000)
        .await
        .unwrap();
    engine
        .publish_at(T, "d", vec![msg("late")], START_MS - 5)
        .await
        .unwrap();
    assert_eq!(bodies(&engine, "d").await, ["late"]);
    assert_eq!(engine.meter().totals()[T].published_messages, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_a_time_per_message_is_stored_as_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 9);
    let engine = open(dir.path(), &clock).await;
    engine
        .create_topic(T, "d", 1, MessageType::Delay, Some(Retention::Unlimited))
        .await
        .unwrap();
    let before = engine.status().wal.appends;
    let batch = vec![
        (msg("at-30s"), START_MS + 30_000),
        (msg("now"), START_MS - 1),
        (msg("at-10s"), START_MS + 10_000),
        (msg("at-20s"), START_MS + 20_000),
        (msg("also-10s"), START_MS + 10_000),
    ];
    let published = engine.publish_each_at(T, "d", batch).await.unwrap();
    assert_eq!(published.len(), 5);
    let ids: std::collections::HashSet<_> = published.iter().map(|p| &p.message_id).collect();
    assert_eq!(ids.len(), 5, "one result per message");
    assert_eq!(
        engine.status().wal.appends - before,
        2,
        "one WAL record for the message already due, one for the four scheduled"
    );
    assert_eq!(bodies(&engine, "d").await, ["now"]);
    clock.advance_ms(10_000);
    engine.fire_due_timers().await.unwrap();
    assert_eq!(bodies(&engine, "d").await, ["now", "at-10s", "also-10s"]);
    clock.advance_ms(20_000);
    engine.fire_due_timers().await.unwrap();
    assert_eq!(
        bodies(&engine, "d").await,
        ["now", "at-10s", "also-10s", "at-20s", "at-30s"]
    );

    // One time too far ahead refuses the whole batch: nothing is stored.
    let before = engine.status().wal.appends;
    let bad = engine
        .publish_each_at(
            T,
            "d",
            vec![
                (msg("fine"), START_MS + 60_000),
                (msg("too-far"), START_MS + 400 * 86_400_000),
            ],
        )
        .await;
    let Err(EngineError::InvalidArgument(why)) = bad else {
        panic!("{bad:?}");
    };
    // The refusal shows both times as dates, so a unit mix-up shows.
    assert!(
        why.contains("366 days") && why.contains("2028-02-") && why.contains("2027-01-"),
        "{why}"
    );
    let micros = engine
        .publish_each_at(T, "d", vec![(msg("micros"), START_MS * 1000)])
        .await;
    let Err(EngineError::InvalidArgument(why)) = micros else {
        panic!("{micros:?}");
    };
    assert!(why.contains("after the year 9999"), "{why}");
    assert_eq!(engine.status().wal.appends, before);
    clock.advance_ms(120_000);
    engine.fire_due_timers().await.unwrap();
    assert_eq!(bodies(&engine, "d").await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_delayed_publishes_all_succeed() {
    // The first delayed publish creates the hidden schedule topic; callers
    // racing it must wait for it, not fail with "topic not found".
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 9);
    let engine = open(dir.path(), &clock).await;
    engine
        .create_topic(T, "d", 1, MessageType::Delay, Some(Retention::Unlimited))
        .await
        .unwrap();
    let publishes = (0..16).map(|i| {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .publish_at(T, "d", vec![msg(&format!("m{i}"))], START_MS + 1_000)
                .await
        })
    });
    for p in futures::future::join_all(publishes).await {
        p.unwrap().unwrap();
    }
    clock.advance_ms(1_000);
    engine.fire_due_timers().await.unwrap();
    assert_eq!(bodies(&engine, "d").await.len(), 16);
}

fn is_not_found<T: std::fmt::Debug>(r: Result<T, EngineError>) -> bool {
    matches!(r, Err(EngineError::TopicNotFound(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_topic_cannot_be_named_and_goes_with_an_emptied_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 11);
    let engine = open(dir.path(), &clock).await;
    let delay_topic = |engine: Arc<Engine>| async move {
        engine
            .create_topic(T, "d", 1, MessageType::Delay, Some(Retention::Unlimited))
            .await
            .unwrap();
    };
    delay_topic(engine.clone()).await;
    engine
        .publish_at(T, "d", vec![msg("a")], START_MS + 6_000)
        .await
        .unwrap();

    // Deleting or writing the schedule from outside would lose or misplace
    // what the timers name: every way of naming a topic refuses it.
    let s = SCHEDULE_TOPIC;
    assert!(is_not_found(engine.topic_info(T, s)));
    assert!(is_not_found(engine.describe_topic(T, s)));
    assert!(is_not_found(engine.queue_info(T, s, 0)));
    assert!(is_not_found(engine.delete_topic(T, s).await));
    assert!(is_not_found(engine.publish(T, s, vec![msg("x")]).await));
    assert!(is_not_found(
        engine.read(T, s, 0, 0, 10, Duration::ZERO).await
    ));
    assert!(is_not_found(engine.offset_for_time(T, s, 0, 0).await));
    assert!(is_not_found(engine.commit_offset(T, "g", s, 0, 0).await));
    assert!(is_not_found(engine.committed_offset(T, "g", s, 0).await));
    clock.advance_ms(6_000);
    engine.fire_due_timers().await.unwrap();
    assert_eq!(bodies(&engine, "d").await, ["a"], "delivered all the same");

    // "b" waits at schedule offset 1. The tenant's hidden topics go only
    // once it has no topic left (its deletion comes next).
    engine
        .publish_at(T, "d", vec![msg("b")], START_MS + 100_000)
        .await
        .unwrap();
    assert_eq!(engine.delete_hidden_topics(T).await.unwrap(), None);
    engine.delete_topic(T, "d").await.unwrap();
    assert_eq!(engine.delete_hidden_topics(T).await.unwrap(), Some(1));
    assert_eq!(engine.fire_due_timers().await.unwrap(), None, "timers gone");

    // Made again (as by a tenant of the same name made again), the
    // schedule starts over at offset 0: "b", gone with its tenant, never
    // shows up, and "c2" (at "b"'s old offset) comes at its own time.
    delay_topic(engine.clone()).await;
    engine
        .publish_at(T, "d", vec![msg("c1"), msg("c2")], START_MS + 200_000)
        .await
        .unwrap();
    clock.advance_ms(100_000);
    engine.fire_due_timers().await.unwrap();
    assert!(bodies(&engine, "d").await.is_empty(), "nothing early");
    clock.advance_ms(100_000);
    engine.fire_due_timers().await.unwrap();
    assert_eq!(bodies(&engine, "d").await, ["c1", "c2"]);
    assert_eq!(engine.fire_due_timers().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_never_delivers_a_message_with_another_id() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 12);
    let store = strata_metadata::MemoryStore::new();
    let open_on_store = || async {
        let c: Arc<dyn strata_common::Clock> = clock.clone();
        Engine::open_with_store(common::config(dir.path()), c, store.clone())
            .await
            .unwrap()
    };
    let engine = open_on_store().await;
    engine
        .create_topic(T, "d", 1, MessageType::Delay, Some(Retention::Unlimited))
        .await
        .unwrap();
    engine
        .publish_at(T, "d", vec![msg("real")], START_MS + 10_000)
        .await
        .unwrap();
    // A timer naming the same schedule offset for another message (what a
    // schedule made again would hold there).
    strata_metadata::Catalog::new(store.clone())
        .put_timers(&[strata_metadata::Timer {
            deliver_at_ms: START_MS + 5_000,
            tenant: T.into(),
            offset: 0,
            message_id: "someone-else".into(),
        }])
        .await
        .unwrap();
    engine.close().await.unwrap();
    drop(engine);
    let engine = open_on_store().await;
    clock.advance_ms(5_000);
    engine.fire_due_timers().await.unwrap();
    assert!(bodies(&engine, "d").await.is_empty(), "not early");
    clock.advance_ms(5_000);
    engine.fire_due_timers().await.unwrap();
    assert_eq!(bodies(&engine, "d").await, ["real"], "once");
    assert_eq!(engine.fire_due_timers().await.unwrap(), None);
}
