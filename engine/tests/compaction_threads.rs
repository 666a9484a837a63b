//! The in-process compactor's loops run on their own lowered threads, not
//! on the workers that serve requests: a periodic upload's work (reading
//! the WAL span, building and compressing the object, writing it) happens
//! on threads named `strata-compact` whose niceness is at least
//! `COMPACTION_NICE`. (Uploads a request asks for, when a tenant is
//! released or a WAL adopted, run on the caller's threads.)
//!
//! Observed through the compactor's own `tracing` events: a layer records
//! the thread each `strata_compactor` event is emitted on.

#![allow(clippy::disallowed_methods)] // tests wait on real threads and timers

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use strata_common::background::current_thread_nice;
use strata_common::{Message, SystemClock};
use strata_engine::{COMPACTION_NICE, Engine, MessageType, PublishMessage, Retention};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{Layer, Registry};

mod common;

/// An event's target, and its thread's name and niceness.
type ThreadSeen = (String, Option<String>, i32);

/// The thread of every event the compactor emitted.
#[derive(Clone, Default)]
struct CompactorThreads(Arc<Mutex<Vec<ThreadSeen>>>);

impl<S: tracing::Subscriber> Layer<S> for CompactorThreads {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let target = event.metadata().target();
        // Verifying the object store happens once, at open, on the
        // caller's thread: not compactor work.
        if target.starts_with("strata_compactor") && !target.ends_with("::store_mark") {
            let name = std::thread::current().name().map(str::to_owned);
            let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let target = event.metadata().target().to_owned();
            seen.push((target, name, current_thread_nice()));
        }
    }
}

/// Publishes `messages` of `size` bytes to a new engine with `config` and
/// waits for an upload (and, if `everything`, until all is uploaded);
/// returns the compactor events seen.
async fn publish_and_upload(
    config: strata_engine::EngineConfig,
    seen: &CompactorThreads,
    messages: u32,
    size: usize,
    everything: bool,
) -> Vec<ThreadSeen> {
    seen.0.lock().unwrap().clear();
    let engine = Engine::open(config, Arc::new(SystemClock)).await.unwrap();
    engine
        .create_topic(
            "default",
            "t",
            4,
            MessageType::Normal,
            Some(Retention::Unlimited),
        )
        .await
        .unwrap();
    for i in 0..messages {
        let message = PublishMessage {
            queue: Some(i % 4),
            message: Message {
                body: Bytes::from(vec![i as u8; size]),
                ..Message::default()
            },
        };
        engine.publish("default", "t", vec![message]).await.unwrap();
    }
    let mut uploaded = false;
    for _ in 0..1500 {
        let lag = engine.upload_lag_bytes();
        if (lag == 0 || !everything) && engine.status().tiering.uploads > 0 {
            uploaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(uploaded, "the upload loop never uploaded");
    engine.close().await.unwrap();
    let seen = seen.0.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the compactor emitted no events");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_run_on_the_lowered_compaction_threads_unless_the_wal_is_filling() {
    let seen = CompactorThreads::default();
    tracing::subscriber::set_global_default(Registry::default().with(seen.clone()))
        .expect("the only subscriber of this test process");

    // Periodic uploads: on the lowered threads.
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.upload_interval = Duration::from_millis(20);
    config.upload_trigger_bytes = 1;
    for (_, name, nice) in publish_and_upload(config, &seen, 64, 4096, true).await {
        assert_eq!(
            name.as_deref(),
            Some("strata-compact"),
            "compactor work on {name:?}"
        );
        assert!(nice >= COMPACTION_NICE, "compactor thread at nice {nice}");
    }

    // Nothing is uploaded until the WAL is over half full (1 MiB of 2):
    // then the upload runs on the engine's own runtime, at its priority.
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.upload_interval = Duration::from_secs(3600);
    config.upload_trigger_bytes = 1 << 40;
    config.wal_segment_bytes = 256 << 10;
    config.wal_max_bytes = 2 << 20;
    let base = current_thread_nice();
    let seen = publish_and_upload(config, &seen, 320, 4096, false).await;
    let uploads: Vec<_> = seen
        .into_iter()
        .filter(|(target, ..)| target == "strata_compactor::upload")
        .collect();
    assert!(!uploads.is_empty(), "no upload event");
    for (_, name, nice) in uploads {
        assert_ne!(
            name.as_deref(),
            Some("strata-compact"),
            "an upload of a filling WAL ran on the lowered threads"
        );
        assert_eq!(nice, base, "on {name:?}");
    }
}
