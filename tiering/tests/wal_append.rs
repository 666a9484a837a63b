//! Append path: concurrency, group commit, rolling, release, back-pressure.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{append_all, config, open, payload};
use strata_tiering::{FileWal, WalError};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_round_trip_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, report, seen) = open(config(dir.path()));
    assert_eq!(report.records, 0);
    assert!(seen.is_empty());

    let mut tasks = Vec::new();
    for t in 0..16 {
        let wal = wal.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..25 {
                let p = payload(t * 1000 + i);
                let pending = wal.submit(p.clone()).await.unwrap();
                let lsn = pending.lsn;
                assert_eq!(pending.durable().await.unwrap(), lsn);
                out.push((lsn, p));
            }
            out
        }));
    }
    let mut written = Vec::new();
    for t in tasks {
        written.extend(t.await.unwrap());
    }
    written.sort_by_key(|(lsn, _)| *lsn);

    for (lsn, p) in &written {
        let (wal, lsn) = (wal.clone(), *lsn);
        let got = tokio::task::spawn_blocking(move || wal.read(lsn))
            .await
            .unwrap();
        assert_eq!(&got.unwrap(), p);
    }
    let stats = wal.stats();
    assert_eq!(stats.appends, 400);
    assert_eq!(stats.durable_lsn, stats.end_lsn);
    wal.close().unwrap();
    assert!(matches!(
        wal.submit(payload(1)).await,
        Err(WalError::Closed)
    ));
    drop(wal);

    let (_wal, report, seen) = open(config(dir.path()));
    assert_eq!(report.records, 400);
    assert!(report.truncated.is_none());
    let expected: Vec<(u64, Vec<u8>)> = written.into_iter().map(|(l, p)| (l, p.to_vec())).collect();
    assert_eq!(seen, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_shares_fdatasync() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(config(dir.path()));
    let mut tasks = Vec::new();
    for t in 0..64 {
        let wal = wal.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let pending = wal.submit(payload(t * 100 + i)).await.unwrap();
                pending.durable().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = wal.stats();
    assert_eq!(stats.appends, 64 * 20);
    assert!(
        stats.syncs < stats.appends,
        "{} syncs for {} appends",
        stats.syncs,
        stats.appends
    );
    assert_eq!(stats.synced_bytes, stats.end_lsn);
    // Every sync was timed.
    assert_eq!(stats.sync_latency.count(), stats.syncs);
}

#[tokio::test]
async fn rolls_segments_and_releases_only_sealed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.segment_bytes = 200;
    let (wal, _, _) = open(cfg.clone());
    let payloads: Vec<Bytes> = (0..30).map(|i| Bytes::from(vec![i as u8; 50])).collect();
    let lsns = append_all(&wal, &payloads).await;

    let segs = wal.segments();
    assert!(segs.len() > 5, "{segs:?}");
    for pair in segs.windows(2) {
        assert_eq!(pair[0].end_lsn, pair[1].base_lsn);
        assert!(pair[0].sealed);
        assert!(std::fs::metadata(&pair[0].path).unwrap().len() <= 200);
    }
    assert!(!segs.last().unwrap().sealed);
    for (lsn, p) in lsns.iter().zip(&payloads) {
        assert_eq!(&wal.read(*lsn).unwrap(), p);
    }

    let used = wal.stats().used_bytes;
    let disk: u64 = segs
        .iter()
        .map(|s| std::fs::metadata(&s.path).unwrap().len())
        .sum();
    assert_eq!(used, disk, "used_bytes counts file sizes, headers included");
    let freed = wal.release_before(segs[2].end_lsn).unwrap();
    let expected: u64 = segs[..3].iter().map(|s| 24 + s.end_lsn - s.base_lsn).sum();
    assert_eq!(freed, expected);
    for s in &segs[..3] {
        assert!(!s.path.exists());
    }
    let stats = wal.stats();
    assert_eq!(stats.used_bytes, used - freed);
    assert_eq!(stats.first_lsn, segs[3].base_lsn);
    assert!(matches!(
        wal.read(lsns[0]),
        Err(WalError::LsnOutOfRange { .. })
    ));

    // Releasing everything keeps the active segment.
    wal.release_before(u64::MAX).unwrap();
    let left = wal.segments();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].base_lsn, segs.last().unwrap().base_lsn);
    assert!(left[0].path.exists());
    wal.close().unwrap();
    drop(wal);

    let (wal, report, seen) = open(cfg);
    assert_eq!(report.segments, 1);
    let first = left[0].base_lsn;
    let expected: Vec<(u64, Vec<u8>)> = lsns
        .iter()
        .zip(&payloads)
        .filter(|(l, _)| **l >= first)
        .map(|(l, p)| (*l, p.to_vec()))
        .collect();
    assert_eq!(seen, expected);
    // New appends continue the LSN sequence.
    let lsn = append_all(&wal, &[Bytes::from_static(b"next")]).await[0];
    assert_eq!(lsn, left[0].end_lsn);
}

#[tokio::test]
async fn oversized_record_gets_its_own_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.segment_bytes = 200;
    let (wal, _, _) = open(cfg);
    let small = Bytes::from_static(b"small");
    let big = Bytes::from(vec![7u8; 500]);
    let lsns = append_all(&wal, &[small.clone(), big.clone(), small.clone()]).await;
    let segs = wal.segments();
    assert_eq!(segs.len(), 3);
    assert_eq!(segs[1].base_lsn, lsns[1]);
    assert_eq!(segs[1].end_lsn, lsns[2]);
    assert_eq!(wal.read(lsns[1]).unwrap(), big);

    let too_big = Bytes::from(vec![0u8; wal.max_record_len() + 1]);
    assert!(matches!(
        wal.submit(too_big).await,
        Err(WalError::TooLarge { .. })
    ));
    assert!(matches!(
        wal.submit(Bytes::new()).await,
        Err(WalError::EmptyRecord)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_pressure_waits_then_fails_or_succeeds_after_release() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.segment_bytes = 256;
    cfg.max_bytes = 1024;
    cfg.append_timeout = Duration::from_millis(200);
    let (wal, _, _) = open(cfg);
    let p = Bytes::from(vec![1u8; 100]);

    let mut pending = Vec::new();
    let err = loop {
        match wal.submit(p.clone()).await {
            Ok(a) => pending.push(a),
            Err(e) => break e,
        }
        assert!(pending.len() < 100, "never became full");
    };
    assert!(
        matches!(
            err,
            WalError::Full {
                max_bytes: 1024,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("uploaded to object storage"));
    for a in pending {
        a.durable().await.unwrap();
    }

    let waiter = {
        let wal: Arc<FileWal> = wal.clone();
        let p = p.clone();
        tokio::spawn(async move { wal.submit(p).await?.durable().await })
    };
    // Give the submitter time to start waiting; no assertion on timing.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let durable = wal.durable_lsn();
    let freed = wal.release_before(durable).unwrap();
    assert!(freed > 0);
    let lsn = waiter.await.unwrap().unwrap();
    assert_eq!(lsn, durable);
}

#[tokio::test]
async fn close_wakes_a_waiting_submitter() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.segment_bytes = 256;
    cfg.max_bytes = 512;
    cfg.append_timeout = Duration::from_secs(30);
    let (wal, _, _) = open(cfg);
    let p = Bytes::from(vec![1u8; 100]);
    append_all(&wal, &[p.clone(), p.clone(), p.clone(), p.clone()]).await;
    let waiter = {
        let wal = wal.clone();
        tokio::spawn(async move { wal.submit(p).await.map(|a| a.lsn) })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiter.is_finished(), "submit should be waiting for space");
    let closer = wal.clone();
    tokio::task::spawn_blocking(move || closer.close())
        .await
        .unwrap()
        .unwrap();
    let result = waiter.await.unwrap();
    assert!(matches!(result, Err(WalError::Closed)), "{result:?}");
}

#[test]
fn rejects_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.segment_bytes = cfg.max_bytes;
    assert!(matches!(
        FileWal::open(cfg, |_, _| Ok(())),
        Err(WalError::Config(_))
    ));
}
