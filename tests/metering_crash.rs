//! Usage records under SIGKILL: usage that was flushed survives a crash,
//! nothing is ever counted twice (the published count never exceeds what
//! the queue holds), a crash loses at most the unflushed tail, and a
//! graceful stop loses nothing.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{Server, create_topic, http};
use serde_json::json;

const TOPIC: &str = "metered";
const CYCLES: usize = 8;
const FLUSH: (&str, &str) = ("STRATA_METERING_FLUSH_INTERVAL_MS", "50");

/// Messages published by the admin's tenant, per the usage records.
async fn published(url: &str) -> u64 {
    let r: serde_json::Value = http()
        .get(format!("{url}/v1/usage?granularity=day"))
        .send()
        .await
        .expect("usage")
        .json()
        .await
        .expect("usage json");
    r["totals"][0]["published_messages"]
        .as_u64()
        .unwrap_or_else(|| panic!("no totals in {r}"))
}

/// Messages the queue holds.
async fn stored(url: &str) -> u64 {
    let r: serde_json::Value = http()
        .get(format!("{url}/v1/topics/{TOPIC}/queues/0"))
        .send()
        .await
        .expect("queue")
        .json()
        .await
        .expect("queue json");
    r["end_offset"].as_u64().expect("end_offset")
}

async fn writer(url: String, acked: Arc<AtomicU64>) {
    let client = http();
    loop {
        let sent = client
            .post(format!("{url}/v1/topics/{TOPIC}/messages"))
            .json(&json!({"messages": [{"body": "m", "queue": 0}]}))
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                acked.fetch_add(1, Ordering::Relaxed);
            }
            _ => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushed_usage_survives_sigkill_and_is_never_counted_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(0x4d45_5445);
    let acked = Arc::new(AtomicU64::new(0));
    let mut seen_flushed = 0;
    for cycle in 0..CYCLES {
        let server = Server::start(dir.path(), &[FLUSH]);
        if cycle == 0 {
            create_topic(&server.url, TOPIC, 1).await;
        }
        let (usage, held) = (published(&server.url).await, stored(&server.url).await);
        assert!(
            usage <= held,
            "cycle {cycle}: usage {usage} counts more than the {held} messages stored"
        );
        assert!(
            usage >= seen_flushed,
            "cycle {cycle}: usage {usage} lost flushed usage (had {seen_flushed})"
        );
        eprintln!(
            "cycle {cycle}: stored {held}, metered {usage} (unflushed at crashes: {})",
            held - usage
        );
        let task = tokio::spawn(writer(server.url.clone(), acked.clone()));
        tokio::time::sleep(Duration::from_millis(rng.u64(100..500))).await;
        seen_flushed = published(&server.url).await;
        tokio::time::sleep(Duration::from_millis(rng.u64(0..80))).await;
        server.kill();
        task.await.unwrap();
    }
    assert!(acked.load(Ordering::Relaxed) > 0);

    // A graceful stop writes everything: exactly the new messages are added.
    let server = Server::start(dir.path(), &[FLUSH]);
    let before = published(&server.url).await;
    let client = http();
    for _ in 0..25 {
        client
            .post(format!("{}/v1/topics/{TOPIC}/messages", server.url))
            .json(&json!({"messages": [{"body": "m", "queue": 0}]}))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }
    assert!(server.stop().success());
    let server = Server::start(dir.path(), &[FLUSH]);
    assert_eq!(published(&server.url).await, before + 25);
    server.stop();
}
