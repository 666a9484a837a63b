//! Retries, timeouts, metrics and fault injection of the `Objects` wrapper,
//! plus reading corrupted segment objects back from disk.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::memory::InMemory;
use strata_common::QueueKey;
use strata_common::{Clock, ManualClock, SystemClock};
use strata_objects::format::{decode_block, decode_footer, decode_index};
use strata_objects::{
    FOOTER_LEN, FormatError, ObjectBuilder, ObjectError, ObjectMetrics, ObjectStoreConfig, Objects,
};

/// The real clock, for tests that do not drive time.
fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// Memory store with fast backoff so retry tests finish quickly.
fn memory(max_attempts: u32) -> Objects {
    let mut config = ObjectStoreConfig::memory();
    config.max_attempts = max_attempts;
    config.backoff_base = Duration::from_millis(1);
    config.backoff_max = Duration::from_millis(4);
    Objects::open(&config, clock()).unwrap()
}

#[tokio::test]
async fn flaky_store_still_succeeds_with_retries() {
    // Faults draw from fastrand's thread-local generator; a fixed seed on this
    // single-threaded runtime makes the run deterministic.
    fastrand::seed(7);
    let objects = memory(8);
    objects.faults().set_error_rate(0.5);
    for i in 0..10 {
        let key = format!("flaky/{i}");
        objects
            .put(&key, Bytes::from(vec![i as u8; 100]))
            .await
            .unwrap();
        assert_eq!(
            objects.get(&key).await.unwrap(),
            Bytes::from(vec![i as u8; 100])
        );
    }
    let m = objects.metrics();
    assert!(m.retries > 0, "{m:?}");
    assert_eq!(
        m.errors, m.retries,
        "every failed attempt was retried: {m:?}"
    );
    assert_eq!(m.puts + m.gets, 20 + m.retries, "{m:?}");
    assert_eq!(
        (m.put_bytes, m.get_bytes),
        (1000, 1000),
        "bytes count successes only: {m:?}"
    );
}

#[tokio::test]
async fn down_store_is_unavailable_after_max_attempts() {
    let objects = memory(3);
    objects.faults().set_down(true);
    match objects.put("k", Bytes::from_static(b"v")).await {
        Err(ObjectError::Unavailable {
            op: "put",
            key,
            attempts: 3,
            reason,
        }) => {
            assert_eq!(key, "k");
            assert!(reason.contains("down"), "{reason}");
        }
        other => panic!("expected Unavailable after 3 attempts, got {other:?}"),
    }
    let m = objects.metrics();
    assert_eq!(
        (m.puts, m.errors, m.retries, m.put_bytes),
        (3, 3, 2, 0),
        "{m:?}"
    );

    // A clone shares the switches; clearing them restores service.
    let clone = objects.clone();
    clone.faults().clear();
    objects.put("k", Bytes::from_static(b"v")).await.unwrap();
    assert_eq!(clone.metrics().puts, 4);
}

#[tokio::test]
async fn latency_above_timeout_is_unavailable() {
    let mut config = ObjectStoreConfig::memory();
    config.timeout = Duration::from_millis(50);
    config.max_attempts = 2;
    config.backoff_base = Duration::from_millis(1);
    let objects = Objects::open(&config, clock()).unwrap();
    objects.faults().set_latency(Duration::from_secs(5));
    let err = objects.get("slow").await.unwrap_err();
    assert!(
        matches!(
            err,
            ObjectError::Unavailable {
                op: "get",
                attempts: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("timed out"), "{err}");
    let m = objects.metrics();
    assert_eq!(
        (m.gets, m.timeouts, m.errors, m.retries),
        (2, 2, 2, 1),
        "{m:?}"
    );
}

/// Timeouts and backoff run on the clock the store was given, so a test
/// with a manual clock decides when an attempt times out and when the next
/// one starts; nothing happens while the clock stands still.
#[tokio::test]
async fn timeouts_and_backoff_follow_the_given_clock() {
    let clock = ManualClock::new(0, 3);
    let mut config = ObjectStoreConfig::memory();
    config.timeout = Duration::from_secs(10);
    config.max_attempts = 2;
    config.backoff_base = Duration::from_secs(60);
    config.backoff_max = Duration::from_secs(60);
    let objects = Objects::open(&config, clock.clone()).unwrap();
    objects.faults().set_latency(Duration::from_secs(3600));
    let get = tokio::spawn({
        let objects = objects.clone();
        async move { objects.get("slow").await }
    });
    let settle = || async {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    };
    settle().await;
    assert_eq!(objects.metrics().gets, 1, "the first attempt is in flight");
    clock.advance_ms(9_999);
    settle().await;
    assert_eq!(objects.metrics().timeouts, 0, "not timed out before 10 s");
    clock.advance_ms(1);
    settle().await;
    assert_eq!((objects.metrics().timeouts, objects.metrics().gets), (1, 1));
    // The backoff is 30–60 s (jitter); the second attempt waits for it.
    clock.advance_ms(29_999);
    settle().await;
    assert_eq!(objects.metrics().gets, 1, "still backing off");
    clock.advance_ms(30_001);
    settle().await;
    assert_eq!(objects.metrics().gets, 2, "second attempt started");
    clock.advance_ms(10_000);
    let err = get.await.unwrap().unwrap_err();
    assert!(
        matches!(err, ObjectError::Unavailable { attempts: 2, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn not_found_is_not_retried() {
    let objects = memory(5);
    assert!(
        matches!(objects.get("missing").await, Err(ObjectError::NotFound { key }) if key == "missing")
    );
    assert!(matches!(
        objects.get_range("missing", 0..4).await,
        Err(ObjectError::NotFound { .. })
    ));
    assert_eq!(objects.head("missing").await.unwrap(), None);
    objects.delete("missing").await.unwrap();
    let m = objects.metrics();
    assert_eq!(
        (m.gets, m.heads, m.deletes, m.errors, m.retries),
        (2, 1, 1, 0, 0),
        "{m:?}"
    );
}

#[tokio::test]
async fn metrics_count_a_scripted_sequence_exactly() {
    let objects = memory(5);
    objects.put("m/a", Bytes::from(vec![1; 100])).await.unwrap();
    objects.put("m/b", Bytes::from(vec![2; 50])).await.unwrap();
    objects.put("m/a", Bytes::from(vec![3; 30])).await.unwrap();
    assert_eq!(objects.get("m/a").await.unwrap().len(), 30);
    assert_eq!(objects.get_range("m/b", 10..20).await.unwrap().len(), 10);
    assert_eq!(objects.get_range("m/b", 5..5).await.unwrap().len(), 0); // no request
    assert!(objects.head("m/b").await.unwrap().is_some());
    assert_eq!(objects.list("m/").await.unwrap().len(), 2);
    objects.delete("m/a").await.unwrap();
    let want = ObjectMetrics {
        puts: 3,
        gets: 2,
        heads: 1,
        lists: 1,
        deletes: 1,
        put_bytes: 180,
        get_bytes: 40,
        errors: 0,
        retries: 0,
        timeouts: 0,
    };
    assert_eq!(objects.metrics(), want);
}

#[tokio::test]
async fn invalid_keys_are_rejected_without_requests() {
    let objects = memory(5);
    for key in ["", "/a", "a/", "a//b", "a/../b"] {
        let err = objects.put(key, Bytes::new()).await.unwrap_err();
        assert!(
            matches!(err, ObjectError::Rejected { op: "put", .. }),
            "{key:?}: {err:?}"
        );
    }
    assert!(matches!(
        objects
            .get_range("k", std::ops::Range { start: 5, end: 2 })
            .await,
        Err(ObjectError::Rejected { .. })
    ));
    assert_eq!(objects.metrics(), ObjectMetrics::default());
    assert!(matches!(
        Objects::open(&ObjectStoreConfig::memory().with_prefix("a//b"), clock()),
        Err(ObjectError::Config(_))
    ));
}

#[tokio::test]
async fn prefixes_isolate_objects_sharing_a_store() {
    let store = Arc::new(InMemory::new());
    let a = Objects::with_store(
        store.clone(),
        &ObjectStoreConfig::memory().with_prefix("/a/"),
        clock(),
    );
    let b = Objects::with_store(
        store,
        &ObjectStoreConfig::memory().with_prefix("b"),
        clock(),
    );
    assert_eq!(
        (a.describe(), b.describe()),
        ("memory://a".to_string(), "memory://b".to_string())
    );
    a.put("k", Bytes::from_static(b"from a")).await.unwrap();
    assert!(matches!(
        b.get("k").await,
        Err(ObjectError::NotFound { .. })
    ));
    assert!(b.list("").await.unwrap().is_empty());
    let listed = a.list("").await.unwrap();
    assert_eq!(
        listed.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
        vec!["k"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_can_be_spawned() {
    let objects = memory(5);
    let handle = {
        let objects = objects.clone();
        tokio::spawn(async move { objects.put("spawned", Bytes::from_static(b"ok")).await })
    };
    handle.await.unwrap().unwrap();
    assert_eq!(objects.get("spawned").await.unwrap().as_ref(), b"ok");
}

// ---- corrupted segment objects on disk ----

/// Reads a segment object the way a reader does: footer, index, then each
/// block by range, decoding as it goes.
async fn read_segment(objects: &Objects, key: &str) -> Result<Vec<Bytes>, String> {
    let show = |e: FormatError| format!("{key}: {e}");
    let size = objects
        .head(key)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("missing")?
        .size;
    let tail = objects
        .get_range(key, size.saturating_sub(FOOTER_LEN as u64)..size)
        .await
        .map_err(|e| e.to_string())?;
    let footer = decode_footer(&tail).map_err(show)?;
    let index = objects
        .get_range(key, footer.index_range())
        .await
        .map_err(|e| e.to_string())?;
    let metas = decode_index(&index).map_err(show)?;
    let mut payloads = Vec::new();
    for meta in &metas {
        let block = objects
            .get_range(key, meta.block.range())
            .await
            .map_err(|e| e.to_string())?;
        payloads.extend(decode_block(&meta.block, &block).map_err(show)?);
    }
    Ok(payloads)
}

/// Writes a two-block segment object to a local store and returns the store,
/// the object's path on disk, and its first block's byte range.
async fn local_segment(
    dir: &std::path::Path,
) -> (Objects, std::path::PathBuf, std::ops::Range<u64>) {
    let objects =
        Objects::open(&ObjectStoreConfig::local(dir).with_prefix("segs"), clock()).unwrap();
    let mut builder = ObjectBuilder::new(64);
    builder
        .add_batch(QueueKey::new(1, 0), 0, 3, 1_000, &[b'a'; 60])
        .unwrap();
    builder
        .add_batch(QueueKey::new(1, 0), 3, 2, 2_000, &[b'b'; 60])
        .unwrap();
    let (object, metas) = builder.finish().unwrap();
    assert_eq!(metas.len(), 2);
    objects.put("seg/000001", object).await.unwrap();
    let path = dir.join("segs/seg/000001");
    assert!(path.exists());
    (objects, path, metas[0].block.range())
}

#[tokio::test]
async fn intact_segment_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, _, _) = local_segment(dir.path()).await;
    let payloads = read_segment(&objects, "seg/000001").await.unwrap();
    assert_eq!(
        payloads,
        vec![Bytes::from(vec![b'a'; 60]), Bytes::from(vec![b'b'; 60])]
    );
}

#[tokio::test]
async fn flipped_block_byte_on_disk_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, path, block) = local_segment(dir.path()).await;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(block.start + block.end) as usize / 2] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let err = read_segment(&objects, "seg/000001").await.unwrap_err();
    assert!(
        err.starts_with("seg/000001: corrupt segment object (block crc)"),
        "{err}"
    );
}

#[tokio::test]
async fn flipped_footer_byte_on_disk_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, path, _) = local_segment(dir.path()).await;
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let err = read_segment(&objects, "seg/000001").await.unwrap_err();
    assert!(
        err.starts_with("seg/000001: corrupt segment object (footer crc)"),
        "{err}"
    );
}

#[tokio::test]
async fn truncated_object_on_disk_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, path, _) = local_segment(dir.path()).await;
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
    let err = read_segment(&objects, "seg/000001").await.unwrap_err();
    assert!(
        err.starts_with("seg/000001: corrupt segment object"),
        "{err}"
    );
}
