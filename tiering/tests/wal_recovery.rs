//! Recovery: torn tails are cut, older damage is refused, torn segment
//! creation is survivable.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::{append_all, config, open, payload, runtime};
use strata_tiering::{FileWal, WalError};

const HEADER: u64 = 24;

/// Writes `n` records into a single segment and returns (lsn, payload) pairs
/// and the segment's path.
fn write_records(dir: &Path, n: usize) -> (Vec<(u64, Vec<u8>)>, PathBuf) {
    let (wal, _, _) = open(config(dir));
    let payloads: Vec<Bytes> = (0..n).map(payload).collect();
    let lsns = runtime().block_on(append_all(&wal, &payloads));
    let path = wal.segments().last().unwrap().path.clone();
    wal.close().unwrap();
    let records = lsns
        .into_iter()
        .zip(payloads)
        .map(|(l, p)| (l, p.to_vec()))
        .collect();
    (records, path)
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// End LSN of each record.
fn ends(records: &[(u64, Vec<u8>)]) -> Vec<u64> {
    records
        .iter()
        .map(|(l, p)| l + 8 + p.len() as u64)
        .collect()
}

/// After a reopen that lost everything past `valid_lsn`, appending works and
/// a further reopen sees the old records plus the new one.
fn append_after_recovery(dir: &Path, mut expected: Vec<(u64, Vec<u8>)>, valid_lsn: u64) {
    let (wal, _, _) = open(config(dir));
    let lsn = runtime().block_on(append_all(&wal, &[Bytes::from_static(b"after")]))[0];
    assert_eq!(lsn, valid_lsn);
    wal.close().unwrap();
    drop(wal);
    expected.push((lsn, b"after".to_vec()));
    let (_wal, report, seen) = open(config(dir));
    assert!(report.truncated.is_none());
    assert_eq!(seen, expected);
}

#[test]
fn torn_tail_at_every_cut_point() {
    let src = tempfile::tempdir().unwrap();
    let (records, path) = write_records(src.path(), 12);
    let ends = ends(&records);
    let file_len = std::fs::metadata(&path).unwrap().len();
    let name = path.file_name().unwrap();
    for cut in 0..file_len {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let seg = dir.path().join(name);
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(cut)
            .unwrap();

        let (wal, report, seen) = open(config(dir.path()));
        let cut_lsn = cut.saturating_sub(HEADER);
        let kept = ends.iter().take_while(|e| **e <= cut_lsn).count();
        assert_eq!(seen, records[..kept], "cut at {cut}");
        let valid_lsn = if kept == 0 { 0 } else { ends[kept - 1] };
        match &report.truncated {
            None => assert!(
                cut <= HEADER || cut_lsn == valid_lsn,
                "cut at {cut}: {report:?}"
            ),
            Some(t) => {
                assert_eq!(t.path, seg);
                assert_eq!(t.valid_len, HEADER + valid_lsn, "cut at {cut}");
                assert_eq!(t.cut_bytes, cut - t.valid_len);
                assert!(!t.reason.is_empty());
            }
        }
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), HEADER + valid_lsn);
        drop(wal);
        if cut % 5 == 0 {
            append_after_recovery(dir.path(), records[..kept].to_vec(), valid_lsn);
        }
    }
}

#[test]
fn garbage_after_the_last_record_is_cut() {
    for garbage in [
        vec![0u8; 100],
        vec![0xab; 13],
        vec![1, 0, 0, 0, 5, 0, 0, 0, 1],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (records, path) = write_records(dir.path(), 5);
        let len = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&garbage)
            .unwrap();

        let (wal, report, seen) = open(config(dir.path()));
        assert_eq!(seen, records);
        let t = report.truncated.expect("garbage must be reported");
        assert_eq!((t.valid_len, t.cut_bytes), (len, garbage.len() as u64));
        drop(wal);
        append_after_recovery(dir.path(), records, len - HEADER);
    }
}

#[test]
fn flipped_byte_in_last_record_drops_only_it() {
    let dir = tempfile::tempdir().unwrap();
    let (records, path) = write_records(dir.path(), 6);
    let last_start = HEADER + records.last().unwrap().0;
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();

    let (wal, report, seen) = open(config(dir.path()));
    assert_eq!(seen, records[..5]);
    let t = report.truncated.unwrap();
    assert_eq!(t.valid_len, last_start);
    assert!(t.reason.contains("checksum"), "{}", t.reason);
    drop(wal);
    append_after_recovery(dir.path(), records[..5].to_vec(), last_start - HEADER);
}

#[test]
fn damage_in_an_older_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.segment_bytes = 200;
    let (wal, _, _) = open(cfg.clone());
    let payloads: Vec<Bytes> = (0..10).map(|i| Bytes::from(vec![i as u8; 60])).collect();
    runtime().block_on(append_all(&wal, &payloads));
    let segs = wal.segments();
    assert!(segs.len() >= 3);
    wal.close().unwrap();
    drop(wal);

    let victim = &segs[1].path;
    let mut bytes = std::fs::read(victim).unwrap();
    bytes[HEADER as usize + 20] ^= 1;
    std::fs::write(victim, &bytes).unwrap();
    match FileWal::open(cfg.clone(), |_, _| Ok(())) {
        Err(WalError::Corrupt { path, offset, .. }) => {
            assert_eq!(&path, victim);
            assert_eq!(offset, HEADER);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }

    // A truncated older segment is refused as well (it cannot be a torn tail).
    bytes[HEADER as usize + 20] ^= 1;
    bytes.truncate(bytes.len() - 1);
    std::fs::write(victim, &bytes).unwrap();
    assert!(matches!(
        FileWal::open(cfg, |_, _| Ok(())),
        Err(WalError::Corrupt { path, .. }) if &path == victim
    ));
}

#[test]
fn missing_middle_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.segment_bytes = 200;
    let (wal, _, _) = open(cfg.clone());
    let payloads: Vec<Bytes> = (0..10).map(|i| Bytes::from(vec![i as u8; 60])).collect();
    runtime().block_on(append_all(&wal, &payloads));
    let segs = wal.segments();
    drop(wal);
    std::fs::remove_file(&segs[1].path).unwrap();
    assert!(matches!(
        FileWal::open(cfg, |_, _| Ok(())),
        Err(WalError::Corrupt { .. })
    ));
}

#[test]
fn empty_dir_and_torn_segment_creation() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("wal");
    let (wal, report, seen) = open(config(&sub));
    assert_eq!((report.segments, report.records), (0, 0));
    assert!(seen.is_empty());
    assert_eq!(wal.segments().len(), 1);
    let payloads: Vec<Bytes> = (0..3).map(payload).collect();
    let lsns = runtime().block_on(append_all(&wal, &payloads));
    let end = wal.stats().end_lsn;
    drop(wal);
    let expected: Vec<(u64, Vec<u8>)> = lsns
        .iter()
        .zip(&payloads)
        .map(|(l, p)| (*l, p.to_vec()))
        .collect();

    // Crash right after creating the next segment: empty, then short header.
    let next = sub.join(format!("{end:020}.wal"));
    for contents in [&[][..], &b"STRATA"[..], &[0u8; 24][..]] {
        std::fs::write(&next, contents).unwrap();
        let (wal, report, seen) = open(config(&sub));
        assert_eq!(report.segments, 2);
        assert_eq!(seen, expected);
        assert_eq!(
            std::fs::metadata(&next).unwrap().len(),
            HEADER,
            "header rewritten"
        );
        assert_eq!(wal.stats().end_lsn, end);
        drop(wal);
        std::fs::remove_file(&next).unwrap();
    }

    // Header-only last file: valid, just empty; appends go into it.
    std::fs::write(&next, []).unwrap();
    drop(open(config(&sub)));
    let (wal, _, seen) = open(config(&sub));
    assert_eq!(seen, expected);
    let lsn = runtime().block_on(append_all(&wal, &[Bytes::from_static(b"x")]))[0];
    assert_eq!(lsn, end);
    assert_eq!(wal.segments().last().unwrap().path, next);
}

#[test]
fn lsns_stay_monotonic_when_only_a_torn_new_segment_is_left() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(format!("{:020}.wal", 1000)), []).unwrap();
    let (wal, _, seen) = open(config(dir.path()));
    assert!(seen.is_empty());
    assert_eq!(wal.stats().first_lsn, 1000);
    let lsn = runtime().block_on(append_all(&wal, &[Bytes::from_static(b"x")]))[0];
    assert_eq!(lsn, 1000);
}

#[test]
fn header_base_must_match_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(config(dir.path()));
    let path = wal.segments()[0].path.clone();
    drop(wal);
    std::fs::rename(&path, dir.path().join(format!("{:020}.wal", 77))).unwrap();
    assert!(matches!(
        FileWal::open(config(dir.path()), |_, _| Ok(())),
        Err(WalError::Corrupt { .. })
    ));
}

#[test]
fn visitor_error_aborts_open() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), 2);
    let result = FileWal::open(config(dir.path()), |_, _| {
        Err(WalError::Config("stop".into()))
    });
    assert!(matches!(result, Err(WalError::Config(m)) if m == "stop"));
}
