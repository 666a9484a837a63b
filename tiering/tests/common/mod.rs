//! Helpers shared by the WAL integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_tiering::{FileWal, RecoveryReport, WalConfig};

pub fn config(dir: &Path) -> WalConfig {
    WalConfig {
        dir: dir.to_path_buf(),
        segment_bytes: 64 * 1024,
        max_bytes: 1024 * 1024,
        group_commit_max_bytes: 256 * 1024,
        append_timeout: Duration::from_secs(5),
        // Tests of a full WAL want it full; `pacing.rs` turns this on.
        pace_above_percent: 100,
        clock: Arc::new(strata_common::SystemClock),
        uploaded_lsn: 0,
    }
}

/// Replayed records: (lsn, payload).
pub type Records = Vec<(u64, Vec<u8>)>;

/// Opens the WAL and collects every replayed record.
pub fn open(config: WalConfig) -> (Arc<FileWal>, RecoveryReport, Records) {
    let mut seen = Vec::new();
    let (wal, report) = FileWal::open(config, |lsn, payload| {
        seen.push((lsn, payload.to_vec()));
        Ok(())
    })
    .unwrap();
    (wal, report, seen)
}

/// A payload that differs for every `i` and has a varying length.
pub fn payload(i: usize) -> Bytes {
    let len = 1 + (i * 37) % 120;
    Bytes::from(
        (0..len)
            .map(|j| (i.wrapping_mul(31) + j) as u8)
            .collect::<Vec<_>>(),
    )
}

/// Appends `payloads` one after the other, each durable before the next.
pub async fn append_all(wal: &FileWal, payloads: &[Bytes]) -> Vec<u64> {
    let mut lsns = Vec::new();
    for p in payloads {
        let pending = wal.submit(p.clone()).await.unwrap();
        lsns.push(pending.durable().await.unwrap());
    }
    lsns
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
