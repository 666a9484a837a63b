//! Pacing: above `pace_above_percent` of `max_bytes` appends go at the rate
//! the WAL drains. Time is a `ManualClock`, so a paced append can only
//! finish once the test moves the time past its slot.

#![allow(clippy::disallowed_methods)] // tests wait on real tasks

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{config, open};
use strata_common::ManualClock;
use strata_tiering::FileWal;

const KIB: u64 = 1024;

/// Appends `p` until the WAL holds more than `bytes`; none of them may wait.
async fn fill_past(wal: &Arc<FileWal>, p: &Bytes, bytes: u64) {
    while wal.stats().used_bytes <= bytes {
        wal.submit(p.clone())
            .await
            .unwrap()
            .durable()
            .await
            .unwrap();
    }
}

/// Whether `task` is still running after the runtime had time to run it:
/// with the manual clock standing still, a paced append cannot finish.
async fn still_waiting(task: &tokio::task::JoinHandle<u64>) -> bool {
    tokio::time::sleep(Duration::from_millis(50)).await;
    !task.is_finished()
}

fn spawn_append(wal: &Arc<FileWal>, p: &Bytes) -> tokio::task::JoinHandle<u64> {
    let wal = wal.clone();
    let p = p.clone();
    tokio::spawn(async move { wal.submit(p).await.unwrap().durable().await.unwrap() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_above_the_start_go_at_the_rate_the_wal_drains() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000, 7);
    let mut cfg = config(dir.path());
    cfg.segment_bytes = 16 * KIB;
    cfg.max_bytes = 64 * KIB;
    cfg.pace_above_percent = 50;
    cfg.append_timeout = Duration::from_secs(600);
    cfg.clock = clock.clone();
    let (wal, _, _) = open(cfg);
    let p = Bytes::from(vec![7u8; 1000]);

    // Up to half of the WAL nothing waits: the clock never moves here.
    fill_past(&wal, &p, 32 * KIB).await;
    assert_eq!(wal.stats().paced_appends, 0);

    // Above it, with nothing released yet, the drain is taken as 1/64 of
    // the WAL per second (1 KiB/s): the first append takes the free slot,
    // the next waits about a second for its own.
    wal.submit(p.clone())
        .await
        .unwrap()
        .durable()
        .await
        .unwrap();
    let paced = spawn_append(&wal, &p);
    assert!(
        still_waiting(&paced).await,
        "an append above the start went unpaced"
    );
    clock.advance_ms(100);
    assert!(still_waiting(&paced).await, "paced faster than 1 KiB/s");
    clock.advance_ms(1_000);
    paced.await.unwrap();
    let stats = wal.stats();
    assert_eq!(stats.paced_appends, 1);
    assert!(stats.pace_wait_ms >= 900, "{stats:?}");

    // An upload releases two segments (32 KiB) at once: the WAL drains at
    // about 32 KiB/s now, so once it is above half again an append waits
    // about 30 ms, not a second.
    let freed = wal.release_before(wal.durable_lsn()).unwrap();
    assert!(freed >= 30 * KIB, "{freed}");
    fill_past(&wal, &p, 32 * KIB).await;
    wal.submit(p.clone())
        .await
        .unwrap()
        .durable()
        .await
        .unwrap();
    let paced = spawn_append(&wal, &p);
    assert!(
        still_waiting(&paced).await,
        "an append above the start went unpaced"
    );
    clock.advance_ms(100);
    tokio::time::timeout(Duration::from_secs(10), paced)
        .await
        .expect("paced as if nothing had been released")
        .unwrap();
    assert_eq!(wal.stats().paced_appends, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_one_hundred_percent_nothing_is_paced() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000, 7);
    let mut cfg = config(dir.path());
    cfg.segment_bytes = 16 * KIB;
    cfg.max_bytes = 64 * KIB;
    cfg.pace_above_percent = 100;
    cfg.clock = clock.clone();
    let (wal, _, _) = open(cfg);
    let p = Bytes::from(vec![7u8; 1000]);
    // Up to the last record that fits, with the clock standing still.
    fill_past(&wal, &p, 60 * KIB).await;
    assert_eq!(wal.stats().paced_appends, 0);
}
