//! SIGKILL the real server while it uploads WAL data to object storage and
//! merges small ranges, many times. After every restart every acknowledged
//! message is readable exactly once at its offset; at the end no index entry
//! points to a missing object and no unreferenced object is left behind.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    Acked, Server, assert_objects_match_ranges, create_topic, http, publish_until_refused,
    tiny_tiering_env, verify_acked,
};

const TOPIC: &str = "tiered";
const QUEUES: u32 = 3;
const CYCLES: usize = 20;

async fn tiering(url: &str) -> serde_json::Value {
    http()
        .get(format!("{url}/v1/status"))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["tiering"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_uploads_and_merges_loses_nothing_and_leaves_no_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let env = tiny_tiering_env(&[("STRATA_RETENTION_CHECK_INTERVAL_MS", "60")]);
    let acked: Acked = Arc::default();
    let mut rng = fastrand::Rng::with_seed(0x71e2);
    let (mut uploads, mut merges) = (0u64, 0u64);
    for cycle in 0..CYCLES {
        let server = Server::start(dir.path(), &env);
        if cycle == 0 {
            create_topic(&server.url, TOPIC, QUEUES).await;
        }
        verify_acked(&server.url, TOPIC, QUEUES, &acked, cycle).await;
        let writers: Vec<_> = (0..6)
            .map(|w| {
                tokio::spawn(publish_until_refused(
                    server.url.clone(),
                    TOPIC,
                    QUEUES,
                    format!("c{cycle}w{w}"),
                    acked.clone(),
                    rng.u64(..),
                    2000,
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.u64(100..600))).await;
        let t = tiering(&server.url).await;
        uploads += t["uploads"].as_u64().unwrap();
        merges += t["merges"].as_u64().unwrap();
        server.kill();
        for w in writers {
            w.await.unwrap();
        }
    }
    assert!(uploads > CYCLES as u64, "uploads ran: {uploads}");
    assert!(merges > 0, "merges ran: {merges}");

    // Final check: everything readable (mostly from object storage now).
    let server = Server::start(dir.path(), &env);
    verify_acked(&server.url, TOPIC, QUEUES, &acked, CYCLES).await;
    server.stop();
    // One quiet run lets GC collect what the kills orphaned.
    let server = Server::start(dir.path(), &env);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = tiering(&server.url).await;
    assert_eq!(t["upload_lag_bytes"], 0, "{t}");
    server.stop();

    let store = strata_metadata::RedbStore::open(&dir.path().join("meta.redb")).unwrap();
    let catalog = strata_metadata::Catalog::new(store);
    let referenced = assert_objects_match_ranges(&catalog, &dir.path().join("objects")).await;
    assert!(!referenced.is_empty());
    eprintln!(
        "{CYCLES} kills; {} acknowledged; {uploads} uploads, {merges} merges; {} objects referenced",
        acked.lock().unwrap().len(),
        referenced.len()
    );
}
