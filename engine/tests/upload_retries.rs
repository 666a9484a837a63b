//! The upload loop as a whole, against an object store that refuses every
//! request: failed uploads are retried after a delay that doubles from the
//! loop's tick up to 5 s (so an outage does not redo the work, and PUT an
//! orphan, every tick), except while the WAL is more than half full, when
//! producers wait for room and every tick tries again. Once the store
//! answers, the next attempt uploads and the WAL drains.
//!
//! Time is a `ManualClock` moved one tick (200 ms) at a time; after each
//! tick the test lets the loop run before moving on.

#![allow(clippy::disallowed_methods)] // tests wait on real tasks

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_common::{Clock, ManualClock, Message, SystemClock};
use strata_engine::{Engine, MessageType, PublishMessage, Retention};

const T: &str = "default";
const TICK_MS: i64 = 200;

async fn engine(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Arc<Engine> {
    // Maintenance stays out of the count of failed passes (its interval is
    // an hour).
    let mut c = common::config(dir);
    c.upload_interval = Duration::from_millis(TICK_MS as u64);
    c.upload_trigger_bytes = 1;
    c.wal_segment_bytes = 64 * 1024;
    c.wal_max_bytes = 512 * 1024;
    // One attempt per upload: the count of failed passes is the count of PUTs.
    c.object_store.max_attempts = 1;
    let engine = Engine::open(c, clock.clone() as Arc<dyn Clock>)
        .await
        .unwrap();
    engine
        .create_topic(T, "t", 1, MessageType::Normal, Some(Retention::Unlimited))
        .await
        .unwrap();
    engine
}

async fn publish(engine: &Engine, bytes: usize) {
    let message = PublishMessage {
        queue: Some(0),
        message: Message {
            body: Bytes::from(vec![b'x'; bytes]),
            ..Message::default()
        },
    };
    engine.publish(T, "t", vec![message]).await.unwrap();
}

fn failed_uploads(engine: &Engine) -> u64 {
    engine.status().tiering.failed_passes
}

/// Moves the clock `ticks` ticks; returns the ticks after which the loop
/// had failed once more.
async fn run_ticks(engine: &Engine, clock: &ManualClock, ticks: usize) -> Vec<usize> {
    let mut failed_at = Vec::new();
    for tick in 1..=ticks {
        let before = failed_uploads(engine);
        clock.advance_ms(TICK_MS);
        // The loop wakes, decides, and (if it tries) fails at once.
        SystemClock.sleep(Duration::from_millis(25)).await;
        if failed_uploads(engine) > before {
            failed_at.push(tick);
        }
    }
    failed_at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_uploads_back_off_unless_the_wal_is_filling() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(SystemClock.now_ms(), 3);
    let engine = engine(dir.path(), &clock).await;
    publish(&engine, 1000).await;
    engine.object_store().faults().set_down(true);

    // 30 s of the clock: attempts 0.2, 0.4, 0.8, 1.6, 3.2 s apart, then
    // every 5 s (about 10 in all); every tick would be 150. The bounds leave
    // room for a tick the loop sleeps through on a busy machine.
    let failed_at = run_ticks(&engine, &clock, 150).await;
    assert!(
        (6..=20).contains(&failed_at.len()),
        "attempts at ticks {failed_at:?}"
    );
    let gaps: Vec<usize> = failed_at.windows(2).map(|w| w[1] - w[0]).collect();
    let last = gaps.last().copied().unwrap_or(0);
    assert!((20..=30).contains(&last), "capped at 5 s: {gaps:?}");

    // The WAL more than half full: producers wait for room, so every tick
    // tries again whatever the delay reached.
    while engine.status().wal.used_bytes * 2 <= 512 * 1024 {
        publish(&engine, 16 * 1024).await;
    }
    // Backed off, 20 ticks (4 s) would hold one attempt at most.
    let failed_at = run_ticks(&engine, &clock, 20).await;
    assert!(failed_at.len() >= 5, "attempts at ticks {failed_at:?}");

    // The store answers again: the next attempt uploads and the WAL drains.
    engine.object_store().faults().set_down(false);
    let mut ticks = 0;
    while engine.status().wal.used_bytes * 2 > 512 * 1024 {
        assert!(ticks < 100, "the WAL never drained");
        clock.advance_ms(TICK_MS);
        SystemClock.sleep(Duration::from_millis(25)).await;
        ticks += 1;
    }
    // The loop that failed reports its recovery at its next pass, which
    // may come after the drain (an urgent upload can do that).
    while engine.status().tiering.last_error.is_some() {
        assert!(ticks < 200, "{:?}", engine.status().tiering.last_error);
        clock.advance_ms(TICK_MS);
        SystemClock.sleep(Duration::from_millis(25)).await;
        ticks += 1;
    }
    engine.close().await.unwrap();
}
