//! Replaying the embedded store's journal from crafted files: which records
//! a restart applies, and which it must not.

use std::path::{Path, PathBuf};

use strata_metadata::journal::encode_record;
use strata_metadata::redb_store::journal_path;
use strata_metadata::store::{self, MetaError, MetaStore, Mutation};
use strata_metadata::{Checkpoints, RedbStore};

fn put(key: &str, value: &str) -> Mutation {
    Mutation::Put {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
    }
}

/// A store closed cleanly after groups 1..=5 (one commit each), and its
/// journal's 16-byte header.
async fn five_groups(dir: &Path) -> (PathBuf, Vec<u8>) {
    let path = dir.join("meta.redb");
    let store = RedbStore::open(&path).unwrap();
    for i in 1..=5 {
        store::put(&store, format!("k{i}").into_bytes(), b"v".to_vec())
            .await
            .unwrap();
    }
    drop(store);
    let header = std::fs::read(journal_path(&path)).unwrap()[..16].to_vec();
    (path, header)
}

/// Writes the journal as `header` then `records` (seq, key) then `tail`.
fn write_journal(path: &Path, header: &[u8], records: &[(u64, &str)], tail: &[u8]) {
    let mut bytes = header.to_vec();
    for (seq, key) in records {
        encode_record(*seq, [&put(key, &format!("from {seq}"))], &mut bytes).unwrap();
    }
    bytes.extend_from_slice(tail);
    std::fs::write(journal_path(path), bytes).unwrap();
}

async fn value(store: &RedbStore, key: &str) -> Option<String> {
    store
        .get(key.as_bytes())
        .await
        .unwrap()
        .map(|v| String::from_utf8(v).unwrap())
}

#[tokio::test]
async fn records_after_the_last_applied_group_are_replayed_and_older_ones_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (path, header) = five_groups(dir.path()).await;
    // 4 and 5 are covered already; after 6 and 7 sits a whole record from
    // before the last checkpoint (the journal is written over from its
    // start), then zeros.
    let mut stale = Vec::new();
    encode_record(3, [&put("stale", "old")], &mut stale).unwrap();
    stale.extend_from_slice(&[0; 100]);
    write_journal(
        &path,
        &header,
        &[(4, "a"), (5, "b"), (6, "c"), (7, "d")],
        &stale,
    );
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.replayed_at_open(), 2);
    assert_eq!(value(&store, "c").await.as_deref(), Some("from 6"));
    assert_eq!(value(&store, "d").await.as_deref(), Some("from 7"));
    assert_eq!(value(&store, "a").await, None);
    assert_eq!(value(&store, "stale").await, None);
    // New groups continue the numbering: a crash now replays only them.
    store::put(&store, b"e".to_vec(), b"v".to_vec())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_torn_record_ends_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (path, header) = five_groups(dir.path()).await;
    let mut torn = Vec::new();
    encode_record(7, [&put("torn", "x")], &mut torn).unwrap();
    torn.truncate(torn.len() - 3);
    // An older whole record follows the torn one: it must stay unread.
    encode_record(2, [&put("older", "x")], &mut torn).unwrap();
    write_journal(&path, &header, &[(6, "c")], &torn);
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.replayed_at_open(), 1);
    assert_eq!(value(&store, "c").await.as_deref(), Some("from 6"));
    assert_eq!(value(&store, "torn").await, None);
    assert_eq!(value(&store, "older").await, None);
}

/// The durability tester's case: one flipped byte in the middle of the
/// journal used to end the replay there as if a crash had torn it,
/// silently dropping the acknowledged groups after it.
#[tokio::test]
async fn damage_followed_by_later_groups_is_refused_until_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (path, header) = five_groups(dir.path()).await;
    write_journal(
        &path,
        &header,
        &[(6, "c"), (7, "d"), (8, "e"), (9, "f")],
        &[0; 64],
    );
    let journal = journal_path(&path);
    let mut bytes = std::fs::read(&journal).unwrap();
    let mut one = Vec::new();
    encode_record(6, [&put("c", "from 6")], &mut one).unwrap();
    let seventh = 16 + one.len();
    bytes[seventh + 20] ^= 0x04;
    std::fs::write(&journal, &bytes).unwrap();

    let err = RedbStore::open(&path).unwrap_err();
    let MetaError::Damaged { reason, .. } = &err else {
        panic!("{err}");
    };
    assert!(
        reason.contains(&format!(
            "after group 6 (byte {seventh}) is damaged, yet group 8"
        )),
        "{reason}"
    );
    assert!(reason.contains("--cut-damage"), "{reason}");
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        bytes,
        "nothing replayed or cut"
    );

    let cut = RedbStore::cut_damaged_journal(&path).unwrap().expect("cut");
    assert_eq!((cut.last_group, cut.later_group), (6, 8));
    assert_eq!(std::fs::read(&cut.saved_to).unwrap(), bytes[seventh..]);
    assert_eq!(RedbStore::cut_damaged_journal(&path).unwrap(), None);
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.replayed_at_open(), 1);
    assert_eq!(value(&store, "c").await.as_deref(), Some("from 6"));
    assert_eq!(value(&store, "e").await, None, "given up");
    store::put(&store, b"g".to_vec(), b"v".to_vec())
        .await
        .unwrap();
    drop(store);
    assert_eq!(RedbStore::cut_damaged_journal(&path).unwrap(), None);
}

#[tokio::test]
async fn a_journal_in_use_is_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = five_groups(dir.path()).await;
    let _store = RedbStore::open(&path).unwrap();
    let err = RedbStore::cut_damaged_journal(&path).unwrap_err();
    assert!(err.to_string().contains("stop the node first"), "{err}");
}

#[tokio::test]
async fn a_missing_group_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, header) = five_groups(dir.path()).await;
    write_journal(&path, &header, &[(6, "c"), (8, "e")], &[]);
    let err = RedbStore::open(&path).unwrap_err();
    assert!(
        matches!(&err, MetaError::Damaged { reason, .. } if reason.contains("missing")),
        "{err}"
    );
}

#[tokio::test]
async fn a_journal_of_another_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = five_groups(dir.path()).await;
    let other = tempfile::tempdir().unwrap();
    let (_, other_header) = five_groups(other.path()).await;
    write_journal(&path, &other_header, &[(6, "c")], &[]);
    let err = RedbStore::open(&path).unwrap_err();
    assert!(err.to_string().contains("another database"), "{err}");
    // Removing the journal keeps the database as it was.
    std::fs::remove_file(journal_path(&path)).unwrap();
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(value(&store, "k5").await.as_deref(), Some("v"));
}

#[tokio::test]
async fn a_damaged_journal_header_is_not_taken_for_another_database() {
    for byte in [2, 6, 13] {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = five_groups(dir.path()).await;
        let journal = journal_path(&path);
        let mut bytes = std::fs::read(&journal).unwrap();
        bytes[byte] ^= 0x10;
        std::fs::write(&journal, &bytes).unwrap();
        let err = RedbStore::open(&path).unwrap_err();
        let MetaError::Damaged { reason, .. } = &err else {
            panic!("{err}");
        };
        assert!(
            reason.contains("fails its checksum"),
            "byte {byte}: {reason}"
        );
        assert!(
            !reason.contains("another database"),
            "byte {byte}: {reason}"
        );
    }
}

#[tokio::test]
async fn a_journal_header_without_a_checksum_gets_one() {
    let dir = tempfile::tempdir().unwrap();
    let (path, header) = five_groups(dir.path()).await;
    // A header as written before it had a checksum.
    let mut old = header.clone();
    old[12..16].copy_from_slice(&[0; 4]);
    write_journal(&path, &old, &[(6, "c")], &[]);
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(value(&store, "c").await.as_deref(), Some("from 6"));
    drop(store);
    let written = std::fs::read(journal_path(&path)).unwrap();
    assert_eq!(written[..16], header[..], "the checksum is written");
}

/// A journal grown by one huge group is cut back at the next checkpoint.
#[tokio::test]
async fn a_journal_grown_by_a_huge_group_shrinks_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    let checkpoints = Checkpoints {
        groups: 1,
        bytes: 64 << 10,
    };
    let store = RedbStore::open_with(&path, 1 << 20, checkpoints).unwrap();
    store::put(&store, b"big".to_vec(), vec![7; 8 << 20])
        .await
        .unwrap();
    store::put(&store, b"small".to_vec(), b"v".to_vec())
        .await
        .unwrap();
    let len = std::fs::metadata(journal_path(&path)).unwrap().len();
    assert!(len <= 2 << 20, "journal still {len} bytes");
    drop(store);
    let store = RedbStore::open_with(&path, 1 << 20, checkpoints).unwrap();
    assert_eq!(
        store.get(b"big").await.unwrap().map(|v| v.len()),
        Some(8 << 20)
    );
}
