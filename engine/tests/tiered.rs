//! Tiered storage on a real object store: uploads, cold reads, merges,
//! retention, garbage collection, back-pressure and corruption.
//! Runs on the local-directory backend, and on S3 (SeaweedFS) when the test
//! script provides one.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_common::{Clock, ManualClock, Message, SystemClock};
use strata_engine::{
    Engine, EngineConfig, EngineError, MessageType, PublishMessage, ReadLimits, Retention,
    TagFilter,
};
use strata_objects::{Backend, ObjectStoreConfig};

const T: &str = "default";

fn to_queue(queue: u32, body: Vec<u8>) -> PublishMessage {
    PublishMessage {
        queue: Some(queue),
        message: Message {
            body: Bytes::from(body),
            ..Message::default()
        },
    }
}

/// Small segments and blocks so a few hundred KiB exercise everything; the
/// loops run rarely so tests drive each step explicitly.
fn config(dir: &std::path::Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.wal_segment_bytes = 16 * 1024;
    c.wal_max_bytes = 4 << 20;
    c.target_block_bytes = 4 * 1024;
    c.upload_interval = Duration::from_secs(3600);
    c.upload_trigger_bytes = u64::MAX;
    c.retention_interval = Duration::from_secs(3600);
    c.gc_grace = Duration::ZERO;
    c.block_cache.disk_dir = None;
    c
}

fn s3_config(dir: &std::path::Path) -> Option<EngineConfig> {
    let endpoint = std::env::var("STRATA_TEST_S3_ENDPOINT").ok()?;
    let mut c = config(dir);
    let mut store = ObjectStoreConfig::new(Backend::S3 {
        bucket: std::env::var("STRATA_TEST_S3_BUCKET").ok()?,
        endpoint: Some(endpoint),
        region: std::env::var("STRATA_TEST_S3_REGION").ok(),
        allow_http: true,
        access_key_id: std::env::var("STRATA_TEST_S3_ACCESS_KEY").ok(),
        secret_access_key: std::env::var("STRATA_TEST_S3_SECRET_KEY").ok(),
    });
    store.prefix = format!("engine-test-{:016x}", fastrand::u64(..));
    c.object_store = store;
    Some(c)
}

/// A body that differs per (queue, index) and is not trivially compressible.
fn body(queue: u32, i: usize, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed((u64::from(queue) << 32) | i as u64);
    let mut b = format!("q{queue}-m{i}-").into_bytes();
    b.extend((0..len).map(|_| rng.alphanumeric() as u8));
    b
}

async fn read_all(engine: &Arc<Engine>, topic: &str, queue: u32) -> Vec<(u64, Bytes)> {
    let mut out = Vec::new();
    let first = engine.queue_info(T, topic, queue).unwrap().first_offset;
    let mut offset = first;
    loop {
        let r = engine
            .read(T, topic, queue, offset, 1000, Duration::ZERO)
            .await
            .unwrap();
        if r.messages.is_empty() {
            return out;
        }
        for m in r.messages {
            assert_eq!(m.offset, offset, "dense offsets");
            offset += 1;
            out.push((m.offset, m.message.body));
        }
    }
}

async fn upload_all(engine: &Engine) {
    for _ in 0..100 {
        if engine.upload_lag_bytes() == 0 {
            return;
        }
        engine.upload_once().await.unwrap();
    }
    panic!("upload never caught up");
}

async fn uploads_then_cold_reads_are_byte_identical(c: EngineConfig, dir: &std::path::Path) {
    let engine = Engine::open(c.clone(), Arc::new(SystemClock))
        .await
        .unwrap();
    engine
        .create_topic(T, "t", 3, MessageType::Normal, Some(Retention::Unlimited))
        .await
        .unwrap();
    for i in 0..300 {
        let q = (i % 3) as u32;
        engine
            .publish(T, "t", vec![to_queue(q, body(q, i, 700))])
            .await
            .unwrap();
    }
    upload_all(&engine).await;
    let status = engine.status();
    assert!(status.tiering.uploads > 0);
    assert!(
        status.wal.segments <= 2,
        "WAL space released after upload: {:?}",
        status.wal
    );
    for q in 0..3 {
        let info = engine.queue_info(T, "t", q).unwrap();
        assert_eq!(info.object_end_offset, Some(100));
        assert!(
            info.wal_first_offset.is_none_or(|w| w > 0),
            "oldest data left the WAL"
        );
        let got = read_all(&engine, "t", q).await;
        assert_eq!(got.len(), 100);
        for (offset, b) in &got {
            let i = *offset as usize * 3 + q as usize;
            assert_eq!(
                b,
                &Bytes::from(body(q, i, 700)),
                "queue {q} offset {offset}"
            );
        }
    }
    // Reads that start inside a block and want only a few messages get
    // exactly those (a cold read skips the block's other batches).
    for (offset, max) in [(0, 1), (1, 3), (37, 5), (63, 32), (98, 32), (99, 1)] {
        let r = engine
            .read(T, "t", 1, offset, max, Duration::ZERO)
            .await
            .unwrap();
        let want: Vec<u64> = (offset..(offset + max as u64).min(100)).collect();
        let got: Vec<u64> = r.messages.iter().map(|m| m.offset).collect();
        assert_eq!(got, want, "read from {offset}, at most {max}");
        for m in &r.messages {
            let i = m.offset as usize * 3 + 1;
            assert_eq!(m.message.body, Bytes::from(body(1, i, 700)));
        }
    }
    assert!(
        engine.status().tiering.objects.gets > 0,
        "cold reads hit object storage"
    );
    engine.close().await.unwrap();
    drop(engine);

    // After a restart the cold ranges come from the metadata store.
    let engine = Engine::open(c, Arc::new(SystemClock)).await.unwrap();
    for q in 0..3 {
        assert_eq!(read_all(&engine, "t", q).await.len(), 100);
    }
    let p = engine
        .publish(T, "t", vec![to_queue(1, b"next".to_vec())])
        .await
        .unwrap();
    assert_eq!(p[0].offset, 100);
    let _ = dir;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_uploads_then_cold_reads_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    uploads_then_cold_reads_are_byte_identical(config(dir.path()), dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_uploads_then_cold_reads_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = s3_config(dir.path()) else {
        eprintln!("SKIPPED: STRATA_TEST_S3_ENDPOINT not set (scripts/test.sh starts SeaweedFS)");
        return;
    };
    uploads_then_cold_reads_are_byte_identical(c, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_refusing_the_credentials_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut c) = s3_config(dir.path()) else {
        eprintln!("SKIPPED: STRATA_TEST_S3_ENDPOINT not set (scripts/test.sh starts SeaweedFS)");
        return;
    };
    if let Backend::S3 {
        secret_access_key, ..
    } = &mut c.object_store.backend
    {
        *secret_access_key = Some("not-the-secret".into());
    }
    let Err(err) = Engine::open(c, Arc::new(SystemClock)).await else {
        panic!("an engine started on an object store that refuses its credentials");
    };
    assert!(err.to_string().contains("credentials"), "{err}");
}

async fn objects_in_store(engine: &Engine) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for prefix in ["seg/", "merged/"] {
        for o in engine.object_store().list(prefix).await.unwrap() {
            keys.insert(o.key);
        }
    }
    keys
}

async fn merges_and_gc(c: EngineConfig) {
    let mut c = c;
    c.merge_min_ranges = 3;
    c.merge_small_range_bytes = 1 << 20;
    let engine = Engine::open(c, Arc::new(SystemClock)).await.unwrap();
    // The message index's start-up sweep reads the store's mark: done now,
    // its GET is not among the merge's counted below.
    engine.maintain_message_index().await.unwrap();
    engine
        .create_topic(T, "m", 2, MessageType::Normal, Some(Retention::Unlimited))
        .await
        .unwrap();
    // Six uploads, each with a little of both queues: six small ranges each.
    for round in 0..6 {
        for i in 0..5 {
            for q in 0..2 {
                let n = round * 5 + i;
                engine
                    .publish(T, "m", vec![to_queue(q, body(q, n, 300))])
                    .await
                    .unwrap();
            }
        }
        upload_all(&engine).await;
    }
    assert_eq!(engine.queue_info(T, "m", 0).unwrap().object_ranges, 6);
    let before = objects_in_store(&engine).await;
    assert_eq!(before.len(), 6);
    let (puts_before, gets_before) = {
        let m = engine.object_store().metrics();
        (m.puts, m.gets)
    };

    let merges = engine.merge_small_ranges().await.unwrap();
    assert_eq!(merges, 2, "both queues' runs merged");
    let merged_puts = engine.object_store().metrics().puts - puts_before;
    assert_eq!(merged_puts, 1, "one object for both queues");
    let merge_gets = engine.object_store().metrics().gets - gets_before;
    assert_eq!(
        merge_gets,
        5 + 1,
        "one ranged GET per source object, for both queues, and one of the store's mark"
    );
    for q in 0..2 {
        let info = engine.queue_info(T, "m", q).unwrap();
        assert_eq!(info.object_ranges, 2, "5 merged + the newest left alone");
        let got = read_all(&engine, "m", q).await;
        assert_eq!(got.len(), 30);
        for (offset, b) in got {
            assert_eq!(b, Bytes::from(body(q, offset as usize, 300)));
        }
    }
    // The five replaced upload objects are referenced by nobody now.
    let deleted = engine.collect_garbage().await.unwrap();
    assert_eq!(deleted, 5);
    let after = objects_in_store(&engine).await;
    assert_eq!(
        after.len(),
        2,
        "1 upload object + 1 merged for both queues: {after:?}"
    );

    // An orphan (a crash between PUT and commit) is found and deleted.
    engine
        .object_store()
        .put("seg/node-1/orphan.seg", Bytes::from_static(b"junk"))
        .await
        .unwrap();
    assert_eq!(engine.collect_garbage().await.unwrap(), 1);

    // A deleted topic's ranges and objects go too.
    engine.delete_topic(T, "m").await.unwrap();
    engine.collect_garbage().await.unwrap();
    assert!(objects_in_store(&engine).await.is_empty());
    assert_eq!(engine.status().tiering.gc_deleted_objects, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_merges_and_garbage_collection() {
    let dir = tempfile::tempdir().unwrap();
    merges_and_gc(config(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_merges_and_garbage_collection() {
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = s3_config(dir.path()) else {
        eprintln!("SKIPPED: STRATA_TEST_S3_ENDPOINT not set (scripts/test.sh starts SeaweedFS)");
        return;
    };
    merges_and_gc(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_expires_old_ranges_and_offsets_never_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000, 1);
    let c = config(dir.path());
    {
        let engine = Engine::open(c.clone(), clock.clone() as Arc<dyn Clock>)
            .await
            .unwrap();
        engine
            .create_topic(
                T,
                "short",
                1,
                MessageType::Normal,
                Some(Retention::Ms(60_000)),
            )
            .await
            .unwrap();
        for i in 0..40 {
            engine
                .publish(T, "short", vec![to_queue(0, body(0, i, 500))])
                .await
                .unwrap();
        }
        upload_all(&engine).await;
        assert_eq!(
            engine.enforce_retention().await.unwrap(),
            0,
            "nothing expired yet"
        );
        clock.advance_ms(61_000);
        engine.commit_offset(T, "g", "short", 0, 2).await.unwrap();
        engine
            .publish(T, "short", vec![to_queue(0, b"fresh".to_vec())])
            .await
            .unwrap();
        upload_all(&engine).await;
        assert_eq!(engine.enforce_retention().await.unwrap(), 1);
        let q = engine.queue_info(T, "short", 0).unwrap();
        assert_eq!((q.first_offset, q.end_offset), (40, 41));
        // What expired is not counted, though its WAL segment (not full)
        // still holds it: one batch of 5 bytes and its framing, once.
        assert_eq!((q.messages, q.batches), (1, 1), "{q:?}");
        assert!(q.bytes > 5 && q.bytes < 500, "{q:?}");
        let lag = engine.describe_group(T, "g").await.unwrap().offsets[0].lag;
        assert_eq!(lag, 1, "a group behind the expiry lags by what is left");
        let err = engine
            .read(T, "short", 0, 0, 1, Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(err.code().as_str(), "OFFSET_OUT_OF_RANGE");
        engine.close().await.unwrap();
    }
    let engine = Engine::open(c, clock as Arc<dyn Clock>).await.unwrap();
    let q = engine.queue_info(T, "short", 0).unwrap();
    assert_eq!(
        (q.first_offset, q.end_offset),
        (40, 41),
        "floor survives restart"
    );
    let p = engine
        .publish(T, "short", vec![to_queue(0, b"after".to_vec())])
        .await
        .unwrap();
    assert_eq!(p[0].offset, 41);
    let got: Vec<Bytes> = read_all(&engine, "short", 0)
        .await
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    assert_eq!(got, [Bytes::from("fresh"), Bytes::from("after")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_outage_engages_back_pressure_then_drains_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.wal_max_bytes = 64 * 1024;
    c.append_timeout = Duration::from_millis(300);
    c.object_store.max_attempts = 2;
    c.object_store.backoff_base = Duration::from_millis(1);
    c.upload_interval = Duration::from_millis(20);
    let engine = Engine::open(c, Arc::new(SystemClock)).await.unwrap();
    engine
        .create_topic(T, "t", 1, MessageType::Normal, Some(Retention::Unlimited))
        .await
        .unwrap();
    engine.object_store().faults().set_down(true);
    let mut acked = 0usize;
    let err = loop {
        match engine
            .publish(T, "t", vec![to_queue(0, body(0, acked, 1000))])
            .await
        {
            Ok(_) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 10_000, "WAL bound never engaged");
    };
    assert_eq!(err.code().as_str(), "WAL_FULL");
    assert!(
        engine.status().tiering.last_error.is_some(),
        "the failing upload is reported"
    );

    engine.object_store().faults().set_down(false);
    // The upload loop drains the backlog; publishing works again.
    let mut recovered = false;
    for _ in 0..200 {
        if engine
            .publish(T, "t", vec![to_queue(0, body(0, acked, 1000))])
            .await
            .is_ok()
        {
            acked += 1;
            recovered = true;
            break;
        }
    }
    assert!(recovered, "appends resume once storage is back");
    let got = read_all(&engine, "t", 0).await;
    assert_eq!(got.len(), acked);
    for (offset, b) in got {
        assert_eq!(b, Bytes::from(body(0, offset as usize, 1000)));
    }
}

/// Topic "t" with 50 messages of 400 bytes, uploaded (one object of
/// several blocks).
async fn fifty_messages_in_one_object(engine: &Engine) {
    engine
        .create_topic(T, "t", 1, MessageType::Normal, Some(Retention::Unlimited))
        .await
        .unwrap();
    for i in 0..50 {
        engine
            .publish(T, "t", vec![to_queue(0, body(0, i, 400))])
            .await
            .unwrap();
    }
    upload_all(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_block_is_an_error_naming_the_object_never_wrong_data() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path());
    {
        let engine = Engine::open(c.clone(), Arc::new(SystemClock))
            .await
            .unwrap();
        fifty_messages_in_one_object(&engine).await;
        engine.close().await.unwrap();
    }
    // The segment objects (the message index's run is beside them).
    let objects: Vec<_> = walk(&dir.path().join("objects").join("seg"));
    assert_eq!(objects.len(), 1);
    let mut bytes = std::fs::read(&objects[0]).unwrap();
    bytes[10] ^= 0x55;
    std::fs::write(&objects[0], &bytes).unwrap();

    let engine = Engine::open(c, Arc::new(SystemClock)).await.unwrap();
    let err = engine
        .read(T, "t", 0, 0, 10, Duration::ZERO)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.code().as_str(), "INTERNAL");
    assert!(
        text.contains("seg/") && text.contains(".seg"),
        "names the object: {text}"
    );
}

/// A read that waits on a read-ahead's fetch of the same block gets the
/// object's own error when that fetch fails, not a copy of its message: a
/// node following a separate compactor resynchronises a queue's ranges only
/// on a missing object, and a SIGKILL suite hit the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_behind_a_failed_read_ahead_reports_the_missing_object() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.tail_cache_bytes = 0;
    let engine = Engine::open(c, Arc::new(SystemClock)).await.unwrap();
    fifty_messages_in_one_object(&engine).await;
    let objects = engine.object_store();
    let segments = objects.list("seg/").await.unwrap();
    assert_eq!(segments.len(), 1, "{segments:?}");
    let segment = &segments[0].key;

    // The first block is read slowly; its read-ahead of the second starts
    // as slowly, and finds the object deleted meanwhile.
    objects.faults().set_latency(Duration::from_millis(300));
    let first = engine.read(T, "t", 0, 0, 1, Duration::ZERO).await.unwrap();
    assert_eq!(first.messages.len(), 1);
    objects.faults().set_latency(Duration::ZERO);
    objects.delete(segment).await.unwrap();
    // The first block is decoded already; the second is the read-ahead's.
    let err = engine
        .read(T, "t", 0, 0, 1000, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::ObjectMissing(object) if object == segment),
        "{err:?}"
    );
}

/// A queue whose data lies in several ranges (one per upload): reading the
/// last block of one range reads ahead the first block of the next, so
/// the next read finds it in the block cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_ahead_crosses_into_the_next_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.tail_cache_bytes = 0;
    let engine = Engine::open(c, Arc::new(SystemClock)).await.unwrap();
    engine
        .create_topic(T, "t", 1, MessageType::Normal, Some(Retention::Unlimited))
        .await
        .unwrap();
    // Three uploads of 10 messages of 2 KB: ranges of a few 4 KiB blocks,
    // and more than a WAL segment each, so the first ranges are read from
    // object storage only.
    for upload in 0..3 {
        for i in 0..10 {
            let message = to_queue(0, body(0, upload * 10 + i, 2000));
            engine.publish(T, "t", vec![message]).await.unwrap();
        }
        upload_all(&engine).await;
    }
    assert_eq!(engine.status().tiering.uploads, 3);
    let prefetched = |engine: &Engine| engine.status().tiering.cold_reader.prefetches_spawned;
    let cached = |engine: &Engine| engine.status().tiering.block_cache;

    // The first range's last message: its block is the range's last.
    let last = engine.read(T, "t", 0, 9, 1, Duration::ZERO).await.unwrap();
    assert_eq!(last.messages[0].offset, 9);
    assert_eq!(
        prefetched(&engine),
        1,
        "the next range's block was not read ahead"
    );
    // The read-ahead runs on the cold runtime: wait until its fetch runs.
    // The next read then finds the block in the cache, or joins that fetch
    // if it is still under way; either way it fetches nothing itself.
    let mut waited = 0;
    while cached(&engine).misses < 2 {
        assert!(waited < 500, "the read-ahead never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    // Its GET is one of the cold reader's fetches: under its permits and
    // bandwidth budget, not beside them.
    let fetches = |engine: &Engine| engine.status().tiering.cold_reader.fetches;
    while fetches(&engine) < 2 {
        assert!(
            waited < 500,
            "the read-ahead's GET bypassed the cold reader's limits"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    let before = cached(&engine);
    let next = engine.read(T, "t", 0, 10, 1, Duration::ZERO).await.unwrap();
    assert_eq!(next.messages[0].offset, 10);
    // (It reads ahead the block after it: a miss, but not its own.)
    let after = cached(&engine);
    assert_eq!(
        after.hits + after.coalesced,
        before.hits + before.coalesced + 1,
        "the read-ahead block was fetched again"
    );
    // Reading through every range returns every message, once, in order.
    let all = read_all(&engine, "t", 0).await;
    assert_eq!(all.len(), 30);
    for (offset, b) in all {
        assert_eq!(b, Bytes::from(body(0, offset as usize, 2000)));
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_by_timestamp_in_cold_and_hot_data() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(10_000, 1);
    let engine = Engine::open(config(dir.path()), clock.clone() as Arc<dyn Clock>)
        .await
        .unwrap();
    engine
        .create_topic(T, "t", 1, MessageType::Normal, Some(Retention::Unlimited))
        .await
        .unwrap();
    // Offset i is appended at 10_000 + 1000 * i; the first 20 go cold.
    for i in 0..30 {
        if i == 20 {
            upload_all(&engine).await;
        }
        engine
            .publish(T, "t", vec![to_queue(0, body(0, i, 300))])
            .await
            .unwrap();
        clock.advance_ms(1000);
    }
    let info = engine.queue_info(T, "t", 0).unwrap();
    assert_eq!(info.object_end_offset, Some(20));
    let at = |ts: i64| engine.offset_for_time(T, "t", 0, ts);
    assert_eq!(at(0).await.unwrap(), 0, "before everything: first offset");
    assert_eq!(at(10_000).await.unwrap(), 0);
    assert_eq!(at(10_001).await.unwrap(), 1, "first at or after");
    assert_eq!(at(15_500).await.unwrap(), 6, "inside cold data");
    assert_eq!(at(29_000).await.unwrap(), 19, "last cold offset");
    assert_eq!(at(29_001).await.unwrap(), 20, "first hot offset");
    assert_eq!(at(35_000).await.unwrap(), 25, "inside hot data");
    assert_eq!(
        at(1_000_000).await.unwrap(),
        30,
        "after everything: the end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_retention_keeps_the_newest_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path()), Arc::new(SystemClock))
        .await
        .unwrap();
    engine
        .create_topic_with(
            T,
            "t",
            strata_engine::TopicSpec {
                queues: 1,
                message_type: MessageType::Normal,
                retention: Some(Retention::Unlimited),
                retention_bytes: Some(20_000),
            },
        )
        .await
        .unwrap();
    // Ten uploads of ten messages: ten ranges of a few KiB each.
    for round in 0..10 {
        for i in 0..10 {
            engine
                .publish(T, "t", vec![to_queue(0, body(0, round * 10 + i, 600))])
                .await
                .unwrap();
        }
        upload_all(&engine).await;
    }
    let before = engine.queue_info(T, "t", 0).unwrap();
    assert!(before.object_bytes > 20_000, "{before:?}");
    let expired = engine.enforce_retention().await.unwrap();
    assert!(expired > 0);
    let after = engine.queue_info(T, "t", 0).unwrap();
    // At least the limit stays (ranges go whole), and less than one more
    // range of the ten.
    assert!(
        after.object_bytes >= 20_000 && after.object_bytes < 20_000 + before.object_bytes / 5,
        "{before:?} {after:?}"
    );
    assert!(after.first_offset > 0 && after.end_offset == 100);
    let got = read_all(&engine, "t", 0).await;
    assert_eq!(got.first().map(|(o, _)| *o), Some(after.first_offset));
    assert_eq!(got.len() as u64, 100 - after.first_offset);

    // A burst larger than the limit, uploaded as one range, is the newest
    // data: it stays whole (it went, newest messages included), and the
    // older ranges go.
    for i in 100..150 {
        engine
            .publish(T, "t", vec![to_queue(0, body(0, i, 600))])
            .await
            .unwrap();
    }
    upload_all(&engine).await;
    engine.enforce_retention().await.unwrap();
    let burst = engine.queue_info(T, "t", 0).unwrap();
    assert_eq!(
        (burst.first_offset, burst.end_offset),
        (100, 150),
        "{burst:?}"
    );
    assert_eq!(read_all(&engine, "t", 0).await.len(), 50);

    // Newer data still only in the WAL, more than the limit, does not let
    // the stored data go: its stored size is not known until it is
    // uploaded (compressed it may be a fraction), and counting it at WAL
    // size once left a queue a seventh of its limit.
    for i in 150..200 {
        engine
            .publish(T, "t", vec![to_queue(0, body(0, i, 600))])
            .await
            .unwrap();
    }
    engine.enforce_retention().await.unwrap();
    let waiting = engine.queue_info(T, "t", 0).unwrap();
    assert_eq!(waiting.first_offset, 100, "{waiting:?}");
    assert_eq!(read_all(&engine, "t", 0).await.len(), 100);
}

/// A read bounded by body bytes (a reader near its consume-bytes quota)
/// returns a prefix within the bound, at least one message, and
/// `next_offset` right after it, so reading on visits every message once:
/// from the tail cache, from the WAL and from object storage alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_byte_bounds_cut_reads_in_every_tier() {
    for tier in ["tail", "wal", "cold"] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        if tier != "tail" {
            c.tail_cache_bytes = 0;
        }
        let engine = Engine::open(c, Arc::new(SystemClock)).await.unwrap();
        engine
            .create_topic(T, "t", 1, MessageType::Normal, Some(Retention::Unlimited))
            .await
            .unwrap();
        // 40 KB: more than two 16 KiB WAL segments, so once uploaded the
        // first ones are read from object storage only.
        for i in 0..40 {
            let message = to_queue(0, body(0, i, 1000));
            engine.publish(T, "t", vec![message]).await.unwrap();
        }
        if tier == "cold" {
            upload_all(&engine).await;
        }
        let limits = |budget| ReadLimits {
            max_messages: 1000,
            max_returned: None,
            max_body_bytes: Some(budget),
            filter: &TagFilter::All,
        };
        for budget in [0, 500, 3500, 10_000] {
            let mut offset = 0;
            while offset < 40 {
                let r = engine
                    .read_within(T, "t", 0, offset, Duration::ZERO, limits(budget))
                    .await
                    .unwrap();
                let offsets: Vec<u64> = r.messages.iter().map(|m| m.offset).collect();
                let n = offsets.len() as u64;
                assert!(n >= 1, "{tier} {budget}: nothing at {offset}");
                assert_eq!(offsets, (offset..offset + n).collect::<Vec<_>>());
                assert_eq!(r.next_offset, offset + n, "{tier} {budget}");
                let bytes: usize = r.messages.iter().map(|m| m.message.body.len()).sum();
                assert!(
                    n == 1 || bytes as u64 <= budget,
                    "{tier} {budget}: {n} messages, {bytes} bytes"
                );
                for m in &r.messages {
                    assert_eq!(
                        m.message.body,
                        Bytes::from(body(0, m.offset as usize, 1000))
                    );
                }
                offset = r.next_offset;
            }
        }
        // Where the reads went: object storage for the cold tier only.
        let cache = engine.status().tiering.block_cache;
        assert_eq!(cache.misses > 0, tier == "cold", "{tier}: {cache:?}");
        // Unbounded by bytes, one read takes them all.
        let r = engine
            .read_within(T, "t", 0, 0, Duration::ZERO, ReadLimits::messages(1000))
            .await
            .unwrap();
        assert_eq!(r.messages.len(), 40, "{tier}");
        engine.close().await.unwrap();
    }
}
