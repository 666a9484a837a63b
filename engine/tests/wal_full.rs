//! A full WAL (nothing uploaded): publishes give up at the append timeout
//! counted from their start, queued ones included, and a publish to
//! several queues is stored whole or not at all.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_common::{Clock, ErrorCode, ManualClock, Message, SystemClock};
use strata_engine::{Engine, EngineError, MessageType, PublishMessage, Published};
use tokio::task::JoinHandle;

const T: &str = "default";

/// An engine whose WAL fills in 256 KiB, with topic "t" of 2 queues.
async fn open(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Arc<Engine> {
    let mut c = common::config(dir);
    c.wal_segment_bytes = 64 * 1024;
    c.wal_max_bytes = 256 * 1024;
    c.wal_pace_above_percent = 100;
    // Shorter than the upload loop's tick (200 ms), which uploads at once
    // when the WAL is filling: the clock never reaches it, so the WAL stays
    // full.
    c.append_timeout = Duration::from_millis(50);
    let c_clock: Arc<dyn Clock> = clock.clone();
    let e = Engine::open(c, c_clock).await.unwrap();
    e.create_topic(T, "t", 2, MessageType::Normal, None)
        .await
        .unwrap();
    e
}

/// Lets `p` get as far as it can, moves the clock past the append
/// timeout, and checks `p` gave up with WAL_FULL.
async fn gives_up(clock: &ManualClock, p: Publish) {
    settle().await;
    clock.advance_ms(51);
    assert_wal_full(outcome(p).await);
}

fn message(queue: u32, len: usize) -> PublishMessage {
    PublishMessage {
        queue: Some(queue),
        message: Message {
            body: Bytes::from(vec![b'x'; len]),
            ..Message::default()
        },
    }
}

type Publish = JoinHandle<Result<Vec<Published>, EngineError>>;

fn spawn_publish(e: &Arc<Engine>, messages: Vec<PublishMessage>) -> Publish {
    let e = e.clone();
    tokio::spawn(async move { e.publish(T, "t", messages).await })
}

/// Real time for a spawned task to get as far as it can.
async fn settle() {
    SystemClock.sleep(Duration::from_millis(200)).await;
}

/// Publishes 10 KiB messages to queue 0 until one waits for room; returns
/// that waiting publish.
async fn fill(e: &Arc<Engine>) -> Publish {
    for _ in 0..100 {
        let p = spawn_publish(e, vec![message(0, 10 * 1024)]);
        settle().await;
        if !p.is_finished() {
            return p;
        }
        p.await.unwrap().unwrap();
    }
    panic!("the WAL never filled");
}

async fn outcome(p: Publish) -> Result<Vec<Published>, EngineError> {
    match strata_common::clock::timeout(&SystemClock, Duration::from_secs(20), p).await {
        Some(joined) => joined.unwrap(),
        None => panic!("the publish was still waiting after its append timeout"),
    }
}

fn assert_wal_full(r: Result<Vec<Published>, EngineError>) {
    match r {
        Err(e) => assert_eq!(e.code(), ErrorCode::WalFull, "{e}"),
        Ok(p) => panic!("published into a full WAL: {p:?}"),
    }
}

/// A tester saw WAL_FULL after up to 18 s with a 2 s append timeout and 12
/// producers: each waited for the queue's turn behind the full waits of
/// those ahead of it, and only then started its own. Here one step of the
/// clock past the timeout must end them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_queued_behind_a_full_wal_give_up_at_their_own_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000, 7);
    let e = open(dir.path(), &clock).await;
    let first = fill(&e).await;
    let queued: Vec<Publish> = (0..3)
        .map(|_| spawn_publish(&e, vec![message(0, 10 * 1024)]))
        .collect();
    settle().await;
    clock.advance_ms(51);
    assert_wal_full(outcome(first).await);
    for p in queued {
        assert_wal_full(outcome(p).await);
    }
    e.close().await.unwrap();
}

/// A publish to two queues with room for one of its batches only: before,
/// the first queue's batch was stored and the publish refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_across_queues_is_refused_whole_when_the_wal_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000, 7);
    let e = open(dir.path(), &clock).await;
    gives_up(&clock, fill(&e).await).await;
    let used = e.status().wal.used_bytes;
    let room = (256 * 1024 - used) as usize;
    assert!(room < 10 * 1024, "{room}");
    // Each batch fits alone; the two together do not.
    let both = spawn_publish(&e, vec![message(0, room / 2), message(1, room / 2)]);
    gives_up(&clock, both).await;
    assert_eq!(e.status().wal.used_bytes, used, "nothing was written");
    assert_eq!(e.queue_info(T, "t", 1).unwrap().end_offset, 0);
    // One of them alone goes through.
    let one = spawn_publish(&e, vec![message(1, room / 2)]);
    let published = outcome(one).await.unwrap();
    assert_eq!(published[0].offset, 0);
    e.close().await.unwrap();
}

/// A publish larger than the WAL takes at once is a client error (413),
/// not a 503 that no retry can clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_larger_than_half_the_wal_is_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000, 7);
    let e = open(dir.path(), &clock).await;
    let messages = (0..14).map(|i| message(i % 2, 10 * 1024)).collect();
    let err = e.publish(T, "t", messages).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::PayloadTooLarge, "{err}");
    assert!(err.to_string().contains("half of wal.max_bytes"), "{err}");
    assert_eq!(
        e.status().wal.used_bytes,
        e.status().wal.segments as u64 * 24
    );
    e.close().await.unwrap();
}

/// A restart with a smaller WAL than the data it holds (everything
/// uploaded): the last segment is sealed at start and released by the next
/// pass, so publishes go on. Before, every publish waited and failed with
/// WAL_FULL for good: no append fit to roll the old segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_a_smaller_wal_takes_publishes_again() {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut c = common::config(dir.path());
    c.wal_segment_bytes = 4 << 20;
    c.wal_max_bytes = 16 << 20;
    let e = Engine::open(c.clone(), clock.clone()).await.unwrap();
    e.create_topic(T, "t", 2, MessageType::Normal, None)
        .await
        .unwrap();
    for _ in 0..12 {
        e.publish(T, "t", vec![message(0, 200 * 1024)])
            .await
            .unwrap();
    }
    e.upload_once().await.unwrap();
    e.close().await.unwrap();
    drop(e);

    c.wal_segment_bytes = 256 * 1024;
    c.wal_max_bytes = 1 << 20;
    c.append_timeout = Duration::from_secs(20);
    let e = Engine::open(c, clock).await.unwrap();
    e.publish(T, "t", vec![message(1, 1024)])
        .await
        .expect("the old segment is released and the publish fits");
    let wal = e.status().wal;
    assert!(wal.used_bytes <= wal.max_bytes, "{wal:?}");
    let read = e.read(T, "t", 0, 0, 100, Duration::ZERO).await.unwrap();
    assert_eq!(
        read.messages.len(),
        12,
        "everything uploaded stays readable"
    );
    e.close().await.unwrap();
}
