//! Closing an engine whose background passes are stuck retrying against an
//! object store that is down: the passes are abandoned (each is crash-safe),
//! so the close does not last as long as their retries. On a test clock
//! that nobody moves, a retry's backoff never ends; before, the close
//! waited for it forever (and a test that moved its clock past an object
//! store timeout hung in its close about one run in ten).

#![allow(clippy::disallowed_methods)] // tests wait on real tasks

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_common::{Clock, ManualClock, Message, SystemClock};
use strata_engine::{Engine, EngineConfig, MessageType, PublishMessage, Retention};

const T: &str = "default";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_abandons_passes_retrying_against_a_store_that_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = EngineConfig::new(dir.path());
    c.upload_interval = Duration::from_secs(1);
    c.retention_interval = Duration::from_secs(1);
    c.block_cache.disk_dir = None;
    let clock = ManualClock::new(SystemClock.now_ms(), 1);
    let engine = Engine::open(c, clock.clone() as Arc<dyn Clock>)
        .await
        .unwrap();
    engine
        .create_topic(T, "t", 2, MessageType::Normal, Some(Retention::Unlimited))
        .await
        .unwrap();
    for i in 0..10u32 {
        let message = PublishMessage {
            queue: Some(i % 2),
            message: Message {
                body: Bytes::from(format!("m{i}")),
                ..Message::default()
            },
        };
        engine.publish(T, "t", vec![message]).await.unwrap();
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
    let mut c = EngineConfig::new(dir.path());
    c.block_cache.disk_dir = None;
    let engine = Engine::open(c, Arc::new(SystemClock)).await.unwrap();
    let mut read = 0;
    for queue in 0..2 {
        read += engine
            .read(T, "t", queue, 0, 100, Duration::ZERO)
            .await
            .unwrap()
            .messages
            .len();
    }
    assert_eq!(read, 10);
    engine.close().await.unwrap();
}
