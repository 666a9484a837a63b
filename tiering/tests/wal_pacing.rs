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
use strata_tiering::{FileWal, WalError};

const KIB: u64 = 1024;

/// A 64 KiB WAL of 16 KiB segments, paced above half, on a manual clock.
fn paced_wal(dir: &std::path::Path) -> (Arc<FileWal>, Arc<ManualClock>) {
    let clock = ManualClock::new(1_000_000, 7);
    let mut cfg = config(dir);
    cfg.segment_bytes = 16 * KIB;
    cfg.max_bytes = 64 * KIB;
    cfg.pace_above_percent = 50;
    cfg.append_timeout = Duration::from_secs(600);
    cfg.clock = clock.clone();
    let (wal, _, _) = open(cfg);
    (wal, clock)
}

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

/// Fills past half, then releases everything releasable after `ms` more
/// of the clock: one upload's worth of release.
async fn fill_and_release(wal: &Arc<FileWal>, p: &Bytes, clock: &ManualClock, ms: i64) -> u64 {
    fill_past(wal, p, 32 * KIB).await;
    clock.advance_ms(ms);
    wal.release_before(wal.durable_lsn()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_above_the_start_go_at_the_rate_the_wal_drains() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, clock) = paced_wal(dir.path());
    let p = Bytes::from(vec![7u8; 1000]);

    // Past half of the WAL with nothing released yet: the drain is
    // unknown, so nothing is paced (the clock never moves here).
    tokio::time::timeout(Duration::from_secs(10), fill_past(&wal, &p, 40 * KIB))
        .await
        .expect("paced without a measured drain");
    assert_eq!(wal.stats().paced_appends, 0);

    // Two uploads a second apart release about 32 KiB each: the WAL
    // drains at about 32 KiB/s.
    assert!(fill_and_release(&wal, &p, &clock, 1_000).await >= 30 * KIB);
    let second = fill_and_release(&wal, &p, &clock, 1_000).await;
    assert!(second >= 30 * KIB, "{second}");

    // Once past half again, the first append takes the free slot and the
    // next waits about 1 KiB / 32 KiB/s = 31 ms of the clock for its own.
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
    clock.advance_ms(10);
    assert!(still_waiting(&paced).await, "paced faster than the drain");
    clock.advance_ms(90);
    tokio::time::timeout(Duration::from_secs(10), paced)
        .await
        .expect("paced slower than the drain")
        .unwrap();
    let stats = wal.stats();
    assert_eq!(stats.paced_appends, 1);
    assert!(stats.pace_wait_ms >= 25, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_wait_of_appends_queued_behind_a_paced_one() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, clock) = paced_wal(dir.path());
    let p = Bytes::from(vec![7u8; 1000]);
    // A drain of about 1 KiB/s: each append waits the longest pace.
    fill_past(&wal, &p, 32 * KIB).await;
    clock.advance_ms(30_000);
    wal.release_before(wal.durable_lsn()).unwrap();
    fill_past(&wal, &p, 32 * KIB).await;
    clock.advance_ms(29_000);
    wal.release_before(wal.durable_lsn()).unwrap();
    fill_past(&wal, &p, 32 * KIB).await;
    wal.submit(p.clone())
        .await
        .unwrap()
        .durable()
        .await
        .unwrap();

    let queued: Vec<_> = (0..4)
        .map(|_| {
            let wal = wal.clone();
            let p = p.clone();
            tokio::spawn(async move { wal.submit(p).await.map(|a| a.lsn) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(queued.iter().all(|q| !q.is_finished()), "nothing was paced");
    let closer = wal.clone();
    tokio::task::spawn_blocking(move || closer.close())
        .await
        .unwrap()
        .unwrap();
    // The paced one wakes when its pace (at most 200 ms) is over on the
    // clock; the rest find the WAL closed without a pace of their own.
    clock.advance_ms(200);
    for q in queued {
        let result = tokio::time::timeout(Duration::from_secs(10), q)
            .await
            .expect("an append still waits after the close")
            .unwrap();
        assert!(matches!(result, Err(WalError::Closed)), "{result:?}");
    }
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
    tokio::time::timeout(Duration::from_secs(10), fill_past(&wal, &p, 60 * KIB))
        .await
        .expect("paced at 100 percent");
    assert_eq!(wal.stats().paced_appends, 0);
}
