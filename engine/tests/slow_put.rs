//! An object whose PUT outlasts half the GC grace is never committed:
//! garbage collection on any node deletes unreferenced objects older than
//! the grace, so a late commit could make a range point at a deleted
//! object. The upload or merge is refused and leaves everything as it was,
//! the next one commits, and the abandoned object is collected as garbage.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_common::{Clock, ManualClock, Message, SystemClock};
use strata_engine::{Engine, EngineConfig, EngineError, MessageType, PublishMessage, Retention};

const T: &str = "default";
const GRACE: Duration = Duration::from_secs(10);
/// Longer than half the grace.
const SLOW: Duration = Duration::from_secs(6);

/// An engine on a clock the test moves (from the real time: the local
/// store dates objects by the file system), with a topic "t" of 2 queues.
async fn engine(dir: &std::path::Path) -> (Arc<Engine>, Arc<ManualClock>) {
    let mut c = EngineConfig::new(dir);
    c.upload_interval = Duration::from_secs(3600);
    c.upload_trigger_bytes = u64::MAX;
    c.retention_interval = Duration::from_secs(3600);
    c.gc_grace = GRACE;
    c.merge_min_ranges = 2;
    c.block_cache.disk_dir = None;
    // Reads after an upload come from the objects it committed.
    c.tail_cache_bytes = 0;
    let clock = ManualClock::new(SystemClock.now_ms(), 1);
    let engine = Engine::open(c, clock.clone() as Arc<dyn Clock>)
        .await
        .unwrap();
    engine
        .create_topic(T, "t", 2, MessageType::Normal, Some(Retention::Unlimited))
        .await
        .unwrap();
    (engine, clock)
}

/// Publishes `n` messages over both queues; returns their bodies.
async fn publish(engine: &Engine, tag: &str, n: u32) -> Vec<Bytes> {
    let mut sent = Vec::new();
    for i in 0..n {
        let body = Bytes::from(format!("{tag}-{i:02}"));
        let message = PublishMessage {
            queue: Some(i % 2),
            message: Message {
                body: body.clone(),
                ..Message::default()
            },
        };
        engine.publish(T, "t", vec![message]).await.unwrap();
        sent.push(body);
    }
    sent
}

/// Runs `work` with every object store attempt taking [`SLOW`] of the
/// test's clock, moving the clock until it ends.
async fn slowly<T: Send + 'static>(
    engine: &Arc<Engine>,
    clock: &ManualClock,
    work: impl std::future::Future<Output = Result<T, EngineError>> + Send + 'static,
) -> Result<T, EngineError> {
    engine.object_store().faults().set_latency(SLOW);
    let running = tokio::spawn(work);
    while !running.is_finished() {
        clock.advance_ms(500);
        SystemClock.sleep(Duration::from_millis(2)).await;
    }
    engine.object_store().faults().set_latency(Duration::ZERO);
    running.await.unwrap()
}

fn assert_too_slow<T: std::fmt::Debug>(result: Result<T, EngineError>) {
    let refused = result.unwrap_err();
    assert!(
        refused.to_string().contains("over half the GC grace"),
        "{refused}"
    );
}

async fn read_everything(engine: &Engine) -> Vec<Bytes> {
    let mut read = Vec::new();
    for queue in 0..2 {
        let got = engine
            .read(T, "t", queue, 0, 1000, Duration::ZERO)
            .await
            .unwrap();
        read.extend(got.messages.into_iter().map(|m| m.message.body));
    }
    read.sort();
    read
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_slower_than_half_the_gc_grace_is_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, clock) = engine(dir.path()).await;
    let sent = publish(&engine, "message", 20).await;
    let lag = engine.upload_lag_bytes();
    assert!(lag > 0);

    let upload = engine.clone();
    assert_too_slow(slowly(&engine, &clock, async move { upload.upload_once().await }).await);
    let objects = engine.object_store();
    assert_eq!(engine.upload_lag_bytes(), lag, "nothing was committed");
    assert_eq!(objects.list("seg/").await.unwrap().len(), 1, "the orphan");

    // The next upload commits everything; GC then takes the orphan.
    engine.upload_once().await.unwrap();
    assert_eq!(engine.upload_lag_bytes(), 0);
    clock.advance_ms(GRACE.as_millis() as i64 + 1);
    assert_eq!(engine.collect_garbage().await.unwrap(), 1);
    assert_eq!(objects.list("seg/").await.unwrap().len(), 1);
    assert_eq!(read_everything(&engine).await, sent);
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_slower_than_half_the_gc_grace_is_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, clock) = engine(dir.path()).await;
    // Three uploads: two small ranges per queue to merge, and the newest,
    // which merges leave alone.
    let mut sent = Vec::new();
    for round in 0..3 {
        sent.extend(publish(&engine, &format!("round{round}"), 10).await);
        engine.upload_once().await.unwrap();
    }
    sent.sort();
    let ranges = |engine: &Engine| {
        (0..2)
            .map(|q| engine.queue_info(T, "t", q).unwrap().object_ranges)
            .collect::<Vec<_>>()
    };
    assert_eq!(ranges(&engine), [3, 3]);

    let merge = engine.clone();
    assert_too_slow(
        slowly(
            &engine,
            &clock,
            async move { merge.merge_small_ranges().await },
        )
        .await,
    );
    assert_eq!(ranges(&engine), [3, 3], "no queue took the merged range");
    let objects = engine.object_store();
    assert_eq!(
        objects.list("merged/").await.unwrap().len(),
        1,
        "the orphan"
    );

    // The next merge commits; GC takes the orphan and the merged-away
    // upload objects.
    assert_eq!(engine.merge_small_ranges().await.unwrap(), 2);
    assert_eq!(ranges(&engine), [2, 2]);
    clock.advance_ms(GRACE.as_millis() as i64 + 1);
    assert_eq!(engine.collect_garbage().await.unwrap(), 3);
    assert_eq!(read_everything(&engine).await, sent);
    engine.close().await.unwrap();
}
