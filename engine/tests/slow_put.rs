//! An object whose PUT outlasts half the GC grace is never committed:
//! garbage collection on any node deletes unreferenced objects older than
//! the grace, so a late commit could make a range point at a deleted
//! object. The upload is refused, the WAL keeps the data, the next upload
//! commits it, and the abandoned object is collected as garbage.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_common::{Clock, ManualClock, Message, SystemClock};
use strata_engine::{Engine, EngineConfig, MessageType, PublishMessage, Retention};

const T: &str = "default";
const GRACE: Duration = Duration::from_secs(10);

fn config(dir: &std::path::Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.upload_interval = Duration::from_secs(3600);
    c.upload_trigger_bytes = u64::MAX;
    c.retention_interval = Duration::from_secs(3600);
    c.gc_grace = GRACE;
    c.block_cache.disk_dir = None;
    // Reads after the upload come from the object it committed.
    c.tail_cache_bytes = 0;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_slower_than_half_the_gc_grace_is_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    // From the real time: the local store dates objects by the file system.
    let clock = ManualClock::new(SystemClock.now_ms(), 1);
    let engine = Engine::open(config(dir.path()), clock.clone() as Arc<dyn Clock>)
        .await
        .unwrap();
    engine
        .create_topic(T, "t", 2, MessageType::Normal, Some(Retention::Unlimited))
        .await
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..20u32 {
        let body = Bytes::from(format!("message-{i:02}"));
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
    let lag = engine.upload_lag_bytes();
    assert!(lag > 0);

    // Every attempt waits 6 s of the test's clock: more than half the grace.
    let objects = engine.object_store().clone();
    objects.faults().set_latency(Duration::from_secs(6));
    let uploading = tokio::spawn({
        let engine = engine.clone();
        async move { engine.upload_once().await }
    });
    while !uploading.is_finished() {
        clock.advance_ms(500);
        SystemClock.sleep(Duration::from_millis(2)).await;
    }
    let refused = uploading.await.unwrap().unwrap_err();
    assert!(
        refused.to_string().contains("over half the GC grace"),
        "{refused}"
    );
    objects.faults().set_latency(Duration::ZERO);
    assert_eq!(engine.upload_lag_bytes(), lag, "nothing was committed");
    assert_eq!(objects.list("seg/").await.unwrap().len(), 1, "the orphan");

    // The next upload commits everything; GC then takes the orphan.
    engine.upload_once().await.unwrap();
    assert_eq!(engine.upload_lag_bytes(), 0);
    clock.advance_ms(GRACE.as_millis() as i64 + 1);
    assert_eq!(engine.collect_garbage().await.unwrap(), 1);
    assert_eq!(objects.list("seg/").await.unwrap().len(), 1);
    let mut read = Vec::new();
    for queue in 0..2 {
        let got = engine
            .read(T, "t", queue, 0, 100, Duration::ZERO)
            .await
            .unwrap();
        read.extend(got.messages.into_iter().map(|m| m.message.body));
    }
    read.sort();
    assert_eq!(read, sent);
    engine.close().await.unwrap();
}
