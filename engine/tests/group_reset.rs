//! Resetting a group moves where it receives by message, not only its
//! committed offsets: on every queue of the topic, back (messages are
//! delivered again) or forward (messages skipped, in-flight ones never
//! redelivered), for FIFO groups too, and across a restart. What was in
//! flight before a reset is dropped and its receipt handles stop working.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{msg, open};
use strata_common::ManualClock;
use strata_engine::{
    Engine, EngineError, GroupSpec, MessageType, OffsetTarget, Popped, ReceiveRequest, Retention,
    StartPosition, TagFilter,
};

const T: &str = "acme";
const START_MS: i64 = 1_800_000_000_000;
const INVISIBLE: Duration = Duration::from_secs(30);
const QUEUES: u32 = 4;

async fn receive(engine: &Arc<Engine>, group: &str, max: usize) -> Vec<Popped> {
    engine
        .receive(ReceiveRequest {
            tenant: T,
            group,
            topic: "t",
            queue: None,
            max_messages: max,
            invisible: INVISIBLE,
            wait: Duration::ZERO,
            filter: &TagFilter::All,
            max_body_bytes: None,
        })
        .await
        .unwrap()
}

/// Receives until nothing is deliverable; bodies with how often each came.
async fn drain(engine: &Arc<Engine>, group: &str) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    loop {
        let got = receive(engine, group, 7).await;
        if got.is_empty() {
            return seen;
        }
        for p in &got {
            *seen
                .entry(String::from_utf8_lossy(&p.message.message.body).into_owned())
                .or_insert(0) += 1;
        }
    }
}

fn bodies(prefix: &str, n: u32) -> BTreeMap<String, usize> {
    (0..n).map(|i| (format!("{prefix}{i}"), 1)).collect()
}

/// A topic of four queues holding `n` messages spread over them.
async fn setup(engine: &Arc<Engine>, kind: MessageType, n: u32, fifo_groups: &[&str]) {
    engine
        .create_topic(T, "t", QUEUES, kind, Some(Retention::Unlimited))
        .await
        .unwrap();
    publish(engine, "m", n, fifo_groups).await;
}

async fn publish(engine: &Arc<Engine>, prefix: &str, n: u32, fifo_groups: &[&str]) {
    let batch = (0..n)
        .map(|i| {
            let group = fifo_groups
                .get(i as usize % fifo_groups.len().max(1))
                .copied();
            msg(i % QUEUES, format!("{prefix}{i}"), group)
        })
        .collect();
    engine.publish(T, "t", batch).await.unwrap();
}

fn is_invalid_handle(r: strata_engine::Result<()>) -> bool {
    matches!(r, Err(EngineError::InvalidReceiptHandle(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_to_earliest_delivers_everything_again_once_and_voids_old_handles() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 1);
    let engine = open(dir.path(), &clock).await;
    setup(&engine, MessageType::Normal, 20, &[]).await;
    let spec = GroupSpec {
        start: StartPosition::Earliest,
        ..GroupSpec::default()
    };
    engine.create_group_with(T, "g", spec).await.unwrap();
    // Part acknowledged, part in flight, part never received.
    let first = receive(&engine, "g", 12).await;
    assert_eq!(first.len(), 12);
    let (acked, held) = first.split_at(6);
    for p in acked {
        engine.ack(T, "g", "t", &p.handle).await.unwrap();
    }

    let moved = engine
        .reset_offsets(T, "g", "t", OffsetTarget::Earliest)
        .await
        .unwrap();
    assert_eq!(moved, (0..QUEUES).map(|q| (q, 0)).collect::<Vec<_>>());
    // Every message once, from the start of every queue: none twice (the
    // in-flight ones are not redelivered besides), none missing.
    assert_eq!(drain(&engine, "g").await, bodies("m", 20));
    // Handles from before the reset are void.
    for p in held {
        assert!(is_invalid_handle(engine.ack(T, "g", "t", &p.handle).await));
    }
    // Their invisible time running out brings nothing back either.
    clock.advance_ms(INVISIBLE.as_millis() as i64 + 1);
    assert_eq!(
        drain(&engine, "g").await,
        bodies("m", 20),
        "redeliveries of the second round only"
    );
    // Committed offsets moved with it.
    for q in 0..QUEUES {
        assert_eq!(
            engine.committed_offset(T, "g", "t", q).await.unwrap(),
            Some(0)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_forward_skips_and_what_was_in_flight_never_returns() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 2);
    let engine = open(dir.path(), &clock).await;
    setup(&engine, MessageType::Normal, 12, &[]).await;
    let spec = GroupSpec {
        start: StartPosition::Earliest,
        ..GroupSpec::default()
    };
    engine.create_group_with(T, "g", spec).await.unwrap();
    assert_eq!(receive(&engine, "g", 5).await.len(), 5);

    engine
        .reset_offsets(T, "g", "t", OffsetTarget::Latest)
        .await
        .unwrap();
    clock.advance_ms(INVISIBLE.as_millis() as i64 + 1);
    assert!(
        drain(&engine, "g").await.is_empty(),
        "nothing before the reset"
    );
    publish(&engine, "new", 8, &[]).await;
    assert_eq!(drain(&engine, "g").await, bodies("new", 8));

    // After a restart too: what the reset dropped stays dropped.
    engine.close().await.unwrap();
    drop(engine);
    let engine = open(dir.path(), &clock).await;
    clock.advance_ms(INVISIBLE.as_millis() as i64 + 1);
    assert_eq!(
        drain(&engine, "g").await,
        bodies("new", 8),
        "the new ones come back after their invisible time, nothing older"
    );
}

/// A group that starts at the latest messages, reset to the earliest of a
/// topic whose queues start at offset 0: the reset's cursor of 0 holds
/// after a restart (it is not mistaken for a group that never consumed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_to_offset_zero_survives_a_restart_for_a_latest_start_group() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 3);
    let engine = open(dir.path(), &clock).await;
    setup(&engine, MessageType::Normal, 8, &[]).await;
    clock.advance_ms(1000);
    engine.create_group(T, "g").await.unwrap();
    assert!(drain(&engine, "g").await.is_empty(), "starts at the latest");

    engine
        .reset_offsets(T, "g", "t", OffsetTarget::Offset(0))
        .await
        .unwrap();
    engine.close().await.unwrap();
    drop(engine);
    let engine = open(dir.path(), &clock).await;
    assert_eq!(drain(&engine, "g").await, bodies("m", 8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_group_reset_back_delivers_each_message_group_in_order_again() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 4);
    let engine = open(dir.path(), &clock).await;
    setup(&engine, MessageType::Fifo, 16, &["a", "b"]).await;
    let spec = GroupSpec {
        start: StartPosition::Earliest,
        fifo: true,
        ..GroupSpec::default()
    };
    engine.create_group_with(T, "g", spec).await.unwrap();
    // Some in flight, and later messages of their groups waiting.
    let held = receive(&engine, "g", 32).await;
    assert!(!held.is_empty());

    engine
        .reset_offsets(T, "g", "t", OffsetTarget::Earliest)
        .await
        .unwrap();
    // Acknowledging as they come, each message group in publish order.
    let mut order: BTreeMap<(u32, String), Vec<u64>> = BTreeMap::new();
    let mut total = 0;
    loop {
        let got = receive(&engine, "g", 32).await;
        if got.is_empty() {
            break;
        }
        for p in &got {
            let g = p.message.message.message_group().unwrap_or("").to_string();
            order
                .entry((p.queue, g))
                .or_default()
                .push(p.message.offset);
            engine.ack(T, "g", "t", &p.handle).await.unwrap();
            total += 1;
        }
    }
    assert_eq!(total, 16, "every message once");
    for (key, offsets) in &order {
        assert!(offsets.is_sorted(), "{key:?} out of order: {offsets:?}");
    }
    for p in &held {
        assert!(is_invalid_handle(engine.ack(T, "g", "t", &p.handle).await));
    }
}
