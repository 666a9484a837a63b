//! Damage that is not a torn write: refused when it hit acknowledged
//! records, and the WAL started again at the upload checkpoint when
//! everything it held is in object storage already.

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::{append_all, config, open, payload, runtime};
use strata_tiering::wal::cut_damaged;
use strata_tiering::{FileWal, SegmentInfo, WalConfig, WalError};

const HEADER: u64 = 24;

/// Group commits of at most 256 bytes: a crash can tear at most that.
fn small_groups(dir: &Path) -> WalConfig {
    let mut c = config(dir);
    c.group_commit_max_bytes = 256;
    c
}

/// A payload that starts like a message batch (kind 1, version 1), as the
/// engine's records do: recovery looks for those after damage.
fn record(i: usize) -> Bytes {
    let mut p = vec![1u8, 1];
    p.extend_from_slice(&payload(i));
    Bytes::from(p)
}

/// Writes `n` records into one segment: (lsn, payload) pairs, the segment,
/// and the WAL's end LSN.
fn write_records(c: &WalConfig, n: usize) -> (Vec<(u64, Vec<u8>)>, PathBuf, u64) {
    let (wal, _, _) = open(c.clone());
    let payloads: Vec<Bytes> = (0..n).map(record).collect();
    let lsns = runtime().block_on(append_all(&wal, &payloads));
    let path = wal.segments().last().unwrap().path.clone();
    let end = wal.durable_lsn();
    wal.close().unwrap();
    let records = lsns
        .into_iter()
        .zip(payloads)
        .map(|(l, p)| (l, p.to_vec()))
        .collect();
    (records, path, end)
}

/// Ten 68-byte records in 200-byte segments (two each): the config, the
/// segments and the WAL's end LSN.
fn small_segments(dir: &Path) -> (WalConfig, Vec<SegmentInfo>, u64) {
    let mut c = config(dir);
    c.segment_bytes = 200;
    let (wal, _, _) = open(c.clone());
    let payloads: Vec<Bytes> = (0..10).map(|i| Bytes::from(vec![i as u8; 60])).collect();
    runtime().block_on(append_all(&wal, &payloads));
    let segs = wal.segments();
    let end = wal.durable_lsn();
    wal.close().unwrap();
    (c, segs, end)
}

fn flip(path: &Path, at: u64) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at as usize] ^= 0x10;
    std::fs::write(path, &bytes).unwrap();
    bytes
}

fn refusal(c: WalConfig) -> (PathBuf, u64, String) {
    match FileWal::open(c, |_, _| Ok(())) {
        Err(WalError::Corrupt {
            path,
            offset,
            reason,
        }) => (path, offset, reason),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// The durability tester's case: one flipped byte early in the last
/// segment used to cut everything after it as if a crash had torn it.
#[test]
fn damage_followed_by_more_than_one_write_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let c = small_groups(dir.path());
    let (records, path, end) = write_records(&c, 100);
    let victim = HEADER + records[10].0;
    let damaged = flip(&path, victim + 9);

    let (at_path, offset, reason) = refusal(c.clone());
    assert_eq!((at_path, offset), (path.clone(), victim));
    assert!(reason.contains("checksum"), "{reason}");
    assert!(reason.contains("bytes follow it"), "{reason}");
    assert!(
        reason.contains(&format!("LSN {} up to {end}", records[10].0)),
        "{reason}"
    );
    assert!(reason.contains("--cut-damage"), "{reason}");
    assert_eq!(std::fs::read(&path).unwrap(), damaged, "nothing was cut");
    // Refused again at the next try: the damage was not cut silently.
    let (_, offset, _) = refusal(c.clone());

    // The operator gives the damaged records up.
    let cut = cut_damaged(dir.path(), &path, offset).unwrap();
    assert_eq!(
        std::fs::read(&cut.saved_to).unwrap(),
        damaged[offset as usize..]
    );
    assert!(cut.set_aside.is_empty());
    let (wal, report, seen) = open(c.clone());
    assert_eq!(seen, records[..10]);
    assert!(report.truncated.is_none() && report.restarted_at.is_none());
    let lsn = runtime().block_on(append_all(&wal, &[Bytes::from_static(b"after")]))[0];
    assert_eq!(lsn, records[10].0);
}

#[test]
fn cutting_damage_in_an_older_segment_sets_the_later_ones_aside() {
    let dir = tempfile::tempdir().unwrap();
    let (c, segs, _) = small_segments(dir.path());
    flip(&segs[1].path, HEADER + 70);
    let (path, offset, _) = refusal(c.clone());
    assert_eq!(path, segs[1].path);
    let cut = cut_damaged(dir.path(), &path, offset).unwrap();
    assert_eq!(cut.set_aside.len(), segs.len() - 2);
    let (_wal, report, seen) = open(c);
    assert_eq!(report.segments, 2);
    assert_eq!(
        seen.len(),
        3,
        "two records of the first segment, one of the second"
    );
    assert!(
        cut_damaged(dir.path(), &dir.path().join("nope.wal"), 30)
            .unwrap_err()
            .to_string()
            .contains("is not a segment")
    );
}

/// A tester's case: a damaged segment header had no way out.
#[test]
fn a_damaged_segment_header_can_be_given_up_with_what_follows() {
    let dir = tempfile::tempdir().unwrap();
    let (c, segs, _) = small_segments(dir.path());
    flip(&segs[2].path, 3);
    let (path, offset, reason) = refusal(c.clone());
    assert_eq!((path.clone(), offset), (segs[2].path.clone(), 0));
    assert!(reason.contains("--cut-damage"), "{reason}");
    let cut = cut_damaged(dir.path(), &path, offset).unwrap();
    assert_eq!(cut.set_aside.len(), segs.len() - 3);
    assert!(cut.saved_to.to_string_lossy().ends_with(".wal.damaged"));
    let (_wal, report, seen) = open(c);
    assert_eq!((report.segments, seen.len()), (2, 4));
}

#[test]
fn damage_within_the_last_write_is_cut_as_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let c = small_groups(dir.path());
    let (records, path, end) = write_records(&c, 100);
    // The first record starting within the last 256 bytes.
    let k = records.iter().position(|(l, _)| end - l <= 256).unwrap();
    flip(&path, HEADER + records[k].0 + 9);

    let (_wal, report, seen) = open(c);
    assert_eq!(seen, records[..k]);
    let t = report.truncated.expect("cut");
    assert_eq!(t.valid_len, HEADER + records[k].0);
    assert!(report.restarted_at.is_none());
}

/// Damage to uploaded records with records that are not uploaded after
/// it: nothing is lost, replay goes on at the checkpoint.
#[test]
fn damage_below_the_checkpoint_is_skipped_and_replay_goes_on_at_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = small_groups(dir.path());
    let (records, path, end) = write_records(&c, 100);
    flip(&path, HEADER + records[10].0 + 9);
    flip(&path, HEADER + records[30].0 + 9);
    c.uploaded_lsn = records[40].0;
    let (wal, report, seen) = open(c.clone());
    let mut expected = records[..10].to_vec();
    expected.extend_from_slice(&records[40..]);
    assert_eq!(seen, expected);
    assert!(report.truncated.is_none() && report.restarted_at.is_none());
    // Reported, though nothing was lost (the scan resumed at the
    // checkpoint, past the second place).
    let skipped: Vec<u64> = report.skipped_damage.iter().map(|d| d.offset).collect();
    assert_eq!(
        skipped,
        vec![HEADER + records[10].0],
        "{:?}",
        report.skipped_damage
    );
    assert!(report.skipped_damage.iter().all(|d| d.path == path));
    assert_eq!(wal.durable_lsn(), end);
    let lsn = runtime().block_on(append_all(&wal, &[Bytes::from_static(b"after")]))[0];
    assert_eq!(lsn, end);

    // Damage after the checkpoint is judged as ever.
    wal.close().unwrap();
    drop(wal);
    flip(&path, HEADER + records[50].0 + 9);
    let (_, offset, _) = refusal(c);
    assert_eq!(offset, HEADER + records[50].0);
}

/// A flipped bit in a frame's length makes it claim up to 64 MiB, more
/// than the file holds, which looks like a torn write of one large frame:
/// the whole records after it tell the damage apart.
#[test]
fn a_damaged_length_claiming_a_huge_frame_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = small_groups(dir.path());
    let (records, path, _) = write_records(&c, 60);
    let lsns: Vec<u64> = records.iter().map(|r| r.0).collect();
    // Bit 25 of record 5's length field.
    let at = HEADER + lsns[5] + 4 + 3;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[at as usize] ^= 0x02;
    std::fs::write(&path, &bytes).unwrap();
    let (_, offset, reason) = refusal(c.clone());
    assert_eq!(offset, HEADER + lsns[5]);
    assert!(reason.contains("whole records among them"), "{reason}");

    // The same bytes with nothing whole after the damage: one large frame
    // torn by a crash, cut.
    bytes.truncate((HEADER + lsns[6]) as usize);
    bytes.extend(std::iter::repeat_n(0xEE, 2_000));
    std::fs::write(&path, &bytes).unwrap();
    let (_wal, report, seen) = open(c);
    assert_eq!(seen.len(), 5);
    assert!(report.truncated.is_some());
}

/// The group commit size a crashed writer used bounds the torn tail, not
/// the next start's (smaller) one.
#[test]
fn the_last_writers_group_size_bounds_the_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.group_commit_max_bytes = 4096;
    let (records, path, _) = write_records(&c, 100);
    let k = records.len() - 20;
    flip(&path, HEADER + records[k].0 + 9);
    // More than 256 bytes follow the damage, fewer than 4096.
    c.group_commit_max_bytes = 256;
    let (_wal, report, seen) = open(c);
    assert_eq!(seen, records[..k]);
    assert!(report.truncated.is_some());
}

/// The reverse, which a black-box tester hit: the node refused damage, and
/// `strata check` run with the default (larger) size cut it as torn,
/// losing 3,767 acknowledged messages. A start that writes nothing (as
/// check) does not record its size either.
#[test]
fn a_larger_group_size_now_does_not_make_damage_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let c = small_groups(dir.path());
    let (records, path, _) = write_records(&c, 100);
    let mut larger = config(dir.path());
    larger.group_commit_max_bytes = 1 << 20;
    let (wal, _, _) = open(larger.clone());
    wal.close().unwrap();
    drop(wal);
    let recorded = dir.path().join("group-commit-max");
    assert_eq!(std::fs::read_to_string(&recorded).unwrap().trim(), "256");
    let k = records.len() - 20;
    flip(&path, HEADER + records[k].0 + 9);
    refusal(larger);
}

/// Appends one record and checks it lands at `lsn`; a reopen replays
/// exactly it.
fn appends_continue_at(c: &WalConfig, lsn: u64) {
    let (wal, report, _) = open(c.clone());
    assert!(report.restarted_at.is_none(), "{report:?}");
    let got = runtime().block_on(append_all(&wal, &[Bytes::from_static(b"after")]))[0];
    assert_eq!(got, lsn);
    wal.close().unwrap();
    drop(wal);
    let (_wal, report, seen) = open(c.clone());
    assert_eq!(seen, vec![(lsn, b"after".to_vec())]);
    assert!(report.restarted_at.is_none() && report.truncated.is_none());
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    names
}

#[test]
fn damage_to_uploaded_records_starts_the_wal_again_at_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = small_groups(dir.path());
    let (records, path, end) = write_records(&c, 100);
    flip(&path, HEADER + records[10].0 + 9);
    c.uploaded_lsn = end;

    let (wal, report, seen) = open(c.clone());
    assert_eq!(report.restarted_at, Some(end));
    assert_eq!(
        report.skipped_damage.len(),
        1,
        "{:?}",
        report.skipped_damage
    );
    assert_eq!(seen, records[..10], "the valid prefix was replayed");
    assert_eq!(wal.durable_lsn(), end);
    drop(wal);
    assert_eq!(segment_files(dir.path()), vec![format!("{end:020}.wal")]);
    appends_continue_at(&c, end);
}

/// The tester's follow-up: a WAL cut below the checkpoint used to reuse
/// LSNs that the uploader takes as done, so new records were never uploaded.
#[test]
fn a_wal_ending_below_the_checkpoint_never_reuses_lsns() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    let (records, path, end) = write_records(&c, 30);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(HEADER + records[12].0)
        .unwrap();
    c.uploaded_lsn = end;
    let (wal, report, seen) = open(c.clone());
    assert_eq!(report.restarted_at, Some(end));
    assert_eq!(seen, records[..12]);
    drop(wal);
    appends_continue_at(&c, end);
}

#[test]
fn a_lost_wal_starts_at_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.uploaded_lsn = 5_000;
    let (wal, report, seen) = open(c.clone());
    assert_eq!(report.restarted_at, Some(5_000));
    assert!(seen.is_empty());
    drop(wal);
    appends_continue_at(&c, 5_000);
}

#[test]
fn damage_and_gaps_in_older_uploaded_segments_start_the_wal_again() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, segs, end) = small_segments(dir.path());
    assert!(segs.len() >= 4);
    flip(&segs[1].path, HEADER + 20);
    std::fs::remove_file(&segs[2].path).unwrap();

    // Acknowledged records are damaged while any is not uploaded.
    c.uploaded_lsn = end - 1;
    assert!(matches!(
        FileWal::open(c.clone(), |_, _| Ok(())),
        Err(WalError::Corrupt { .. })
    ));
    c.uploaded_lsn = end;
    let (wal, report, _) = open(c.clone());
    assert_eq!(report.restarted_at, Some(end));
    let skipped: Vec<_> = report.skipped_damage.iter().map(|d| &d.path).collect();
    assert_eq!(skipped, [&segs[1].path], "{:?}", report.skipped_damage);
    drop(wal);
    appends_continue_at(&c, end);
}

/// A damaged segment header or a missing segment below the checkpoint is
/// skipped like damaged records, and listed as such.
#[test]
fn skipped_headers_and_gaps_below_the_checkpoint_are_listed() {
    for damage in ["header", "gap"] {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, segs, end) = small_segments(dir.path());
        let (at, says) = match damage {
            "header" => {
                flip(&segs[1].path, 2);
                (&segs[1].path, "")
            }
            _ => {
                std::fs::remove_file(&segs[2].path).unwrap();
                (&segs[3].path, "previous one ends")
            }
        };
        c.uploaded_lsn = end;
        let (_wal, report, _) = open(c);
        assert_eq!(report.restarted_at, Some(end), "{damage}");
        assert_eq!(report.skipped_damage.len(), 1, "{damage}: {report:?}");
        let d = &report.skipped_damage[0];
        assert_eq!((&d.path, d.offset), (at, 0), "{damage}: {d:?}");
        assert!(d.reason.contains(says), "{damage}: {d:?}");
    }
}

#[test]
fn an_intact_wal_at_the_checkpoint_is_replayed_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    let (records, _, end) = write_records(&c, 10);
    c.uploaded_lsn = end;
    let (_wal, report, seen) = open(c);
    assert_eq!(seen, records);
    assert!(report.restarted_at.is_none() && report.truncated.is_none());
}
