//! The cold read path end to end: block cache misses fetched through the
//! cold reader, and read-ahead filling the cache from the cold runtime.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use strata_cache::{
    BlockCache, BlockCacheConfig, BlockKey, CacheError, ColdReader, ColdReaderConfig,
};

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// Stands in for an object-storage read: records the thread it ran on.
async fn read_object(
    key: BlockKey,
    threads: Arc<std::sync::Mutex<Vec<thread::ThreadId>>>,
) -> Result<(Bytes, u64), ReadError> {
    threads
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(thread::current().id());
    let data = Bytes::from(format!("{}:{}", key.object, key.offset).repeat(100));
    let len = data.len() as u64;
    Ok((data, len))
}

#[tokio::test]
async fn misses_are_fetched_on_the_cold_runtime_and_cached() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = BlockCache::open(&BlockCacheConfig {
        memory_bytes: 8 << 20,
        disk_dir: Some(dir.path().to_path_buf()),
        disk_bytes: 64 << 20,
        disk_write_bytes_per_sec: 0,
    })
    .await
    .expect("open cache");
    let reader = Arc::new(
        ColdReader::start(
            &ColdReaderConfig::default(),
            Arc::new(strata_common::SystemClock),
        )
        .expect("start reader"),
    );
    let threads = Arc::new(std::sync::Mutex::new(Vec::new()));

    let key = BlockKey::new("queues/q/0001.obj", 0);
    for _ in 0..3 {
        let (reader, threads, k) = (reader.clone(), threads.clone(), key.clone());
        let got = cache
            .get_or_fetch(key.clone(), move || async move {
                reader.run(read_object(k, threads)).await
            })
            .await
            .expect("read");
        assert!(got.starts_with(b"queues/q/0001.obj:0"));
    }
    let fetch_threads = threads.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(fetch_threads.len(), 1, "fetched once");
    assert_ne!(
        fetch_threads[0],
        thread::current().id(),
        "fetched off the caller's runtime"
    );
    assert_eq!((cache.stats().misses, cache.stats().hits), (1, 2));
    assert_eq!(reader.stats().fetches, 1);

    // Read-ahead of the next block, started from the cold runtime.
    let next = BlockKey::new("queues/q/0001.obj", 4096);
    let prefetched = Arc::new(AtomicUsize::new(0));
    {
        let (cache, reader2, threads, k, done) = (
            cache.clone(),
            reader.clone(),
            threads.clone(),
            next.clone(),
            prefetched.clone(),
        );
        reader.spawn_prefetch(async move {
            let k2 = k.clone();
            let result = cache
                .get_or_fetch(k, move || async move {
                    reader2.run(read_object(k2, threads)).await
                })
                .await;
            if result.is_ok() {
                done.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    for _ in 0..500 {
        if prefetched.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(prefetched.load(Ordering::SeqCst), 1, "prefetch completed");
    assert!(cache.contains(&next));
    let got = cache.get(&next).await.expect("get");
    assert!(got.is_some_and(|b| b.starts_with(b"queues/q/0001.obj:4096")));
    assert_eq!(reader.stats().prefetches_spawned, 1);

    cache.close().await;
}
