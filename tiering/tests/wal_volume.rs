//! The WAL as a separate compactor reads it: only what the durable mark
//! covers, across segments, while the node appends and releases; one
//! compactor per volume.

mod common;

use bytes::Bytes;
use common::{append_all, config, open, payload};
use strata_tiering::wal::{WalVolume, write_durable_mark};
use strata_tiering::{FileWal, WalError};

#[tokio::test]
async fn reads_exactly_what_the_mark_covers_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.segment_bytes = 300;
    let (wal, _, _) = open(cfg);
    let payloads: Vec<Bytes> = (0..40).map(payload).collect();
    let lsns = append_all(&wal, &payloads).await;
    assert!(wal.segments().len() > 3);

    let volume = WalVolume::open(dir.path()).unwrap();
    // No mark yet: nothing is readable, whatever the files hold.
    assert_eq!(volume.durable_lsn().unwrap(), 0);
    assert!(matches!(
        volume.read(lsns[0]),
        Err(WalError::LsnOutOfRange { .. })
    ));

    // The mark covers the first 30 records only.
    write_durable_mark(dir.path(), lsns[30]).unwrap();
    assert_eq!(volume.durable_lsn().unwrap(), lsns[30]);
    for (lsn, p) in lsns.iter().zip(&payloads).take(30) {
        assert_eq!(&volume.read(*lsn).unwrap(), p, "record at {lsn}");
    }
    assert!(matches!(
        volume.read(lsns[30]),
        Err(WalError::LsnOutOfRange { .. })
    ));

    // The node releases old segments: the volume follows.
    let segs = wal.segments();
    wal.release_before(segs[2].end_lsn).unwrap();
    assert_eq!(volume.first_lsn().unwrap(), segs[3].base_lsn);
    assert!(matches!(
        volume.read(lsns[0]),
        Err(WalError::LsnOutOfRange { .. })
    ));
    write_durable_mark(dir.path(), wal.durable_lsn()).unwrap();
    assert_eq!(&volume.read(lsns[39]).unwrap(), &payloads[39]);
    // Not a record boundary: refused, never misread.
    assert!(matches!(
        volume.read(lsns[39] + 3),
        Err(WalError::Corrupt { .. })
    ));
    wal.close().unwrap();
}

#[test]
fn a_torn_mark_reads_as_none_and_a_second_compactor_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, _) = open(config(dir.path()));
    let volume = WalVolume::open(dir.path()).unwrap();
    write_durable_mark(dir.path(), 500).unwrap();
    assert_eq!(volume.durable_lsn().unwrap(), 500);
    std::fs::write(dir.path().join("durable-lsn"), [7u8; 16]).unwrap();
    assert_eq!(volume.durable_lsn().unwrap(), 0);

    let err = WalVolume::open(dir.path()).unwrap_err();
    assert!(matches!(err, WalError::Busy { .. }), "{err}");
    assert!(err.to_string().contains("one compactor per WAL volume"));
    drop(volume);
    WalVolume::open(dir.path()).unwrap();
    FileWal::close(&wal).unwrap();
}
