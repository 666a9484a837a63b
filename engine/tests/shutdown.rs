//! Closing an engine whose background passes are stuck retrying against an
//! object store that is down: the passes are abandoned (each is crash-safe),
//! so the close does not last as long as their retries. On a test clock
//! that nobody moves, a retry's backoff never ends; before, the close
//! waited for it forever (and a test that moved its clock past an object
//! store timeout hung in its close about one run in ten).

#![allow(clippy::disallowed_methods)] // tests wait on real tasks

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_common::{Clock, ManualClock, Message, SystemClock};
use strata_engine::{Engine, MessageType, PublishMessage, Retention};

const T: &str = "default";

/// Opens an engine on `clock` with topic "t" of `queues` queues.
async fn engine_with_topic(
    c: strata_engine::EngineConfig,
    clock: &Arc<ManualClock>,
    queues: u32,
) -> Arc<Engine> {
    let engine = Engine::open(c, clock.clone() as Arc<dyn Clock>)
        .await
        .unwrap();
    engine
        .create_topic(
            T,
            "t",
            queues,
            MessageType::Normal,
            Some(Retention::Unlimited),
        )
        .await
        .unwrap();
    engine
}

async fn publish(engine: &Engine, queue: u32, body: Bytes) {
    let message = PublishMessage {
        queue: Some(queue),
        message: Message {
            body,
            ..Message::default()
        },
    };
    engine.publish(T, "t", vec![message]).await.unwrap();
}

/// Publishes, takes the object store down, lets the loops reach it, and
/// closes; then reopens the directory in this process (which fails while
/// anything of the old engine, an upload task say, still holds its
/// metadata store) and reads every message back. `filling`: enough to
/// fill the WAL past half, so uploads run as urgent tasks of their own.
async fn close_while_retrying(filling: bool) {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = common::config(dir.path());
        c.upload_interval = Duration::from_secs(1);
        c.retention_interval = Duration::from_secs(1);
        c.wal_segment_bytes = 64 * 1024;
        c.wal_max_bytes = 512 * 1024;
        c
    };
    let clock = ManualClock::new(SystemClock.now_ms(), 1);
    let engine = engine_with_topic(config(), &clock, 2).await;
    let size = if filling { 16 * 1024 } else { 10 };
    let mut sent = 0;
    while sent < 10 || (filling && engine.status().wal.used_bytes * 2 <= 512 * 1024) {
        publish(&engine, sent % 2, Bytes::from(vec![b'm'; size])).await;
        sent += 1;
    }

    // Every request fails from now on; the loops' next passes (an upload
    // is due, and maintenance) retry with a backoff on the test's clock.
    engine.object_store().faults().set_down(true);
    clock.advance_ms(5_000);
    let mut waited = 0;
    while engine.object_store().metrics().retries == 0 {
        assert!(waited < 1_000, "no pass reached the object store");
        SystemClock.sleep(Duration::from_millis(10)).await;
        waited += 1;
    }

    let closed = tokio::time::timeout(Duration::from_secs(30), engine.close()).await;
    closed
        .expect("close waited for a pass stuck retrying")
        .unwrap();

    // Nothing acknowledged was lost: it is all in the WAL.
    drop(engine);
    let engine = Engine::open(config(), Arc::new(SystemClock)).await.unwrap();
    let mut read = 0;
    for queue in 0..2 {
        let mut offset = 0;
        loop {
            let got = engine
                .read(T, "t", queue, offset, 100, Duration::ZERO)
                .await
                .unwrap();
            if got.messages.is_empty() {
                break;
            }
            read += got.messages.len();
            offset = got.next_offset;
        }
    }
    assert_eq!(read, sent as usize);
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_abandons_passes_retrying_against_a_store_that_is_down() {
    close_while_retrying(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_abandons_an_urgent_upload_of_a_filling_wal() {
    close_while_retrying(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_gives_up_writing_the_pending_index_to_a_store_that_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = common::config(dir.path());
    // Retries that would last about an hour of the clock.
    c.object_store.max_attempts = 1000;
    let clock = ManualClock::new(SystemClock.now_ms(), 1);
    let engine = engine_with_topic(c, &clock, 1).await;
    publish(&engine, 0, Bytes::from_static(b"indexed")).await;
    // The index task takes it into its pending set (written as a run only
    // after a minute, or at the close).
    let mut ticks = 0;
    while engine.status().message_index.pending_entries == 0 {
        assert!(ticks < 500, "the message was never indexed");
        clock.advance_ms(200);
        SystemClock.sleep(Duration::from_millis(10)).await;
        ticks += 1;
    }

    engine.object_store().faults().set_down(true);
    let closing = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.close().await })
    };
    // A minute of the clock, in seconds: the close gives up on the index
    // after ten of them instead of retrying for the hour.
    for _ in 0..60 {
        if closing.is_finished() {
            break;
        }
        clock.advance_ms(1_000);
        SystemClock.sleep(Duration::from_millis(20)).await;
    }
    assert!(closing.is_finished(), "the close still retries the index");
    closing.await.unwrap().unwrap();
}
