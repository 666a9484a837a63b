//! A WAL lost or damaged after its records were uploaded: every message
//! stays readable from object storage, and new writes start at the upload
//! checkpoint, so they are uploaded too (before, they reused LSNs the
//! uploader took as done and were lost once their segment was released).

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_common::{Message, SystemClock};
use strata_engine::{Engine, MessageType, PublishMessage, Retention};

const T: &str = "default";

async fn open(dir: &Path) -> Arc<Engine> {
    let mut c = common::config(dir);
    c.wal_segment_bytes = 16 * 1024;
    c.wal_max_bytes = 4 << 20;
    Engine::open(c, Arc::new(SystemClock)).await.unwrap()
}

async fn publish(engine: &Engine, from: usize, to: usize) {
    for i in from..to {
        let m = PublishMessage {
            queue: Some((i % 2) as u32),
            message: Message {
                body: Bytes::from(format!("m{i}-{}", "x".repeat(300))),
                ..Message::default()
            },
        };
        engine.publish(T, "t", vec![m]).await.unwrap();
    }
}

/// Every message of both queues, in order, as "m<i>" prefixes.
async fn read_all(engine: &Arc<Engine>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for queue in 0..2 {
        let mut got = Vec::new();
        let mut offset = engine.queue_info(T, "t", queue).unwrap().first_offset;
        loop {
            let r = engine
                .read(T, "t", queue, offset, 1000, Duration::ZERO)
                .await
                .unwrap();
            if r.messages.is_empty() {
                break;
            }
            for m in r.messages {
                assert_eq!(m.offset, offset, "dense offsets");
                offset += 1;
                let body = String::from_utf8(m.message.body.to_vec()).unwrap();
                got.push(body.split('-').next().unwrap().to_string());
            }
        }
        out.push(got);
    }
    out
}

fn expected(n: usize) -> Vec<Vec<String>> {
    (0..2)
        .map(|q| {
            (0..n)
                .filter(|i| i % 2 == q)
                .map(|i| format!("m{i}"))
                .collect()
        })
        .collect()
}

fn wal_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_wal_starts_again_at_the_upload_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    engine
        .create_topic(T, "t", 2, MessageType::Normal, Some(Retention::Unlimited))
        .await
        .unwrap();
    publish(&engine, 0, 60).await;
    common::upload_all(&engine).await;
    let checkpoint = engine.wal_checkpoint();
    assert!(checkpoint > 0);
    engine.close().await.unwrap();
    drop(engine);

    // The volume is replaced: the WAL is gone.
    for f in wal_files(dir.path()) {
        std::fs::remove_file(f).unwrap();
    }
    let engine = open(dir.path()).await;
    assert_eq!(engine.status().recovery.restarted_at, Some(checkpoint));
    assert_eq!(read_all(&engine).await, expected(60));
    publish(&engine, 60, 90).await;
    assert!(
        engine.upload_lag_bytes() > 0,
        "new records are behind the uploader"
    );
    common::upload_all(&engine).await;
    assert!(engine.wal_checkpoint() > checkpoint);
    engine.close().await.unwrap();
    drop(engine);

    // Damage to the WAL, all of it uploaded: the replayed records' segments
    // are gone, and reads of them go to object storage.
    let mut files = wal_files(dir.path());
    files.sort_by_key(|f| std::fs::metadata(f).unwrap().len());
    let largest = files.last().unwrap();
    let mut bytes = std::fs::read(largest).unwrap();
    assert!(bytes.len() > 2_000, "{files:?}");
    bytes[1_500] ^= 0x20;
    std::fs::write(largest, &bytes).unwrap();
    let engine = open(dir.path()).await;
    let restarted = engine.status().recovery.restarted_at;
    assert_eq!(restarted, Some(engine.wal_checkpoint()));
    assert_eq!(read_all(&engine).await, expected(90));
    publish(&engine, 90, 100).await;
    assert_eq!(read_all(&engine).await, expected(100));
}

/// A black-box tester's case: the metadata lost a topic (a damaged journal
/// given up) whose records the WAL still held; the next topic created got
/// its id and took those records over (another tenant's, possibly), while
/// its own acknowledged messages were skipped as out of sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_the_metadata_lost_never_lends_its_id_and_records() {
    use strata_metadata::catalog::keys;
    use strata_metadata::store::{MetaStore, Txn};

    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    for t in ["a", "t"] {
        engine
            .create_topic(T, t, 2, MessageType::Normal, Some(Retention::Unlimited))
            .await
            .unwrap();
    }
    let lost = engine.topic_info(T, "t").unwrap().id;
    publish(&engine, 0, 20).await;
    engine.close().await.unwrap();
    drop(engine);

    // The metadata as it was before "t" was created.
    let store = strata_metadata::RedbStore::open(&dir.path().join("meta.redb")).unwrap();
    let txn = Txn::new()
        .delete(keys::topic(T, "t").unwrap())
        .delete(keys::topic_id(lost))
        .put(keys::TOPIC_SEQ, (lost - 1).to_string().into_bytes());
    store.commit(txn).await.unwrap();
    drop(store);

    let engine = open(dir.path()).await;
    engine
        .create_topic(T, "t", 2, MessageType::Normal, Some(Retention::Unlimited))
        .await
        .unwrap();
    assert!(engine.topic_info(T, "t").unwrap().id > lost);
    publish(&engine, 100, 104).await;
    engine.close().await.unwrap();
    drop(engine);
    let engine = open(dir.path()).await;
    let mine = vec![
        vec!["m100".to_string(), "m102".into()],
        vec!["m101".to_string(), "m103".into()],
    ];
    assert_eq!(read_all(&engine).await, mine);
}
