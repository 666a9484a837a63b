//! What the engine's test files share: opening an engine on a manual clock
//! with the background work that tests do not drive turned off.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_common::{Clock, MESSAGE_GROUP_PROPERTY, ManualClock, Message};
use strata_engine::{Engine, EngineConfig, PublishMessage};

/// No uploads, no retention runs, no disk block cache.
pub fn config(dir: &std::path::Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.upload_interval = Duration::from_secs(3600);
    c.upload_trigger_bytes = u64::MAX;
    c.retention_interval = Duration::from_secs(3600);
    c.block_cache.disk_dir = None;
    c
}

/// Uploads until nothing of the WAL waits (at most 100 passes).
#[allow(dead_code)] // not every test file uploads
pub async fn upload_all(engine: &Engine) {
    for _ in 0..100 {
        if engine.upload_lag_bytes() == 0 {
            return;
        }
        engine.upload_once().await.unwrap();
    }
    panic!("upload never caught up");
}

/// Opens the engine on `dir`, waiting while a previous engine still lets go
/// of the directory (its background loops drop their references as they stop).
#[allow(dead_code)] // not every test file opens on a manual clock
pub async fn open(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Arc<Engine> {
    for _ in 0..100 {
        let c: Arc<dyn Clock> = clock.clone();
        match Engine::open(config(dir), c).await {
            Ok(e) => return e,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("the data directory was never released");
}

/// A message for `queue`, in FIFO message group `group` if given.
#[allow(dead_code)] // not every test file publishes to a chosen queue
pub fn msg(queue: u32, body: String, group: Option<&str>) -> PublishMessage {
    PublishMessage {
        queue: Some(queue),
        message: Message {
            properties: group
                .map(|g| vec![(MESSAGE_GROUP_PROPERTY.to_string(), g.to_string())])
                .unwrap_or_default(),
            body: Bytes::from(body),
            ..Message::default()
        },
    }
}
