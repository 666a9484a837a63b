//! The hybrid block cache: compressed object-storage blocks kept in memory,
//! spilling to a local disk tier, so cold reads hit object storage once.
//!
//! Backed by foyer's `HybridCache`. Blocks live in a weighted in-memory LRU
//! (weighed in bytes); with a disk tier configured, blocks evicted from
//! memory are written to foyer's block engine on a local directory
//! (`WriteOnEviction`) and read back from there instead of being fetched
//! again. Without a disk directory the cache is memory-only.
//!
//! Misses are coalesced by foyer itself: concurrent `get_or_fetch` calls for
//! one key share a single in-flight fetch, and a failed fetch is reported to
//! every waiter without being cached.

use std::fmt;
use std::future::Future;
use std::io::{Read, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use foyer::{
    BlockEngineConfig, Code, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder,
    Source, Throttle,
};

use crate::error::CacheError;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Largest block the cache is sized for. foyer's disk engine cannot store an
/// entry bigger than one of its blocks, so engine blocks are at least twice
/// this.
pub const MAX_BLOCK_BYTES: usize = 4 * MIB;

/// Smallest disk-engine block: room for a [`MAX_BLOCK_BYTES`] value plus
/// entry headers, with slack.
const MIN_ENGINE_BLOCK: usize = 2 * MAX_BLOCK_BYTES;
/// Largest disk-engine block; bigger blocks make eviction too coarse.
const MAX_ENGINE_BLOCK: usize = 64 * MIB;
/// The disk tier needs several engine blocks so eviction (which frees a
/// whole engine block) does not wipe most of the tier at once.
const MIN_ENGINE_BLOCKS: usize = 4;
/// Aim for at least this many engine blocks on large disks.
const TARGET_ENGINE_BLOCKS: usize = 16;
/// Each in-memory shard should hold this many max-size blocks, or a shard
/// would evict a block as soon as it is inserted.
const MEMORY_BYTES_PER_SHARD: usize = 16 * MAX_BLOCK_BYTES;
const MAX_MEMORY_SHARDS: usize = 8;
/// Charged per entry on top of the payload: key, record and index overhead.
const ENTRY_OVERHEAD_BYTES: usize = 128;

/// Identifies one block of an object: the object's key in the store and the
/// byte offset where the block starts. Objects are immutable, so a key always
/// names the same bytes and entries never need invalidation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockKey {
    pub object: String,
    pub offset: u64,
}

impl BlockKey {
    pub fn new(object: impl Into<String>, offset: u64) -> Self {
        Self {
            object: object.into(),
            offset,
        }
    }
}

impl fmt::Display for BlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.object, self.offset)
    }
}

/// foyer's disk tier serializes keys through its `Code` trait (its serde
/// path is behind a feature flag we do not enable): object name, then
/// offset, using foyer's own length-prefixed encodings.
impl Code for BlockKey {
    fn encode(&self, writer: &mut impl Write) -> foyer::Result<()> {
        self.object.encode(writer)?;
        self.offset.encode(writer)
    }

    fn decode(reader: &mut impl Read) -> foyer::Result<Self> {
        let object = String::decode(reader)?;
        let offset = u64::decode(reader)?;
        Ok(Self { object, offset })
    }

    fn estimated_size(&self) -> usize {
        self.object.estimated_size() + self.offset.estimated_size()
    }
}

/// Sizing of the two tiers.
#[derive(Debug, Clone)]
pub struct BlockCacheConfig {
    /// Memory tier budget in bytes (block payloads plus a small per-entry
    /// overhead). Must be non-zero.
    pub memory_bytes: usize,
    /// Directory of the disk tier; `None` keeps the cache memory-only.
    /// Created if missing.
    pub disk_dir: Option<PathBuf>,
    /// Disk tier budget in bytes; ignored without `disk_dir`. Must allow at
    /// least four engine blocks (32 MiB).
    pub disk_bytes: u64,
    /// Write budget of the disk tier in bytes/s (0 = unlimited). The disk
    /// tier usually shares a device with the WAL; a catch-up reader filling
    /// it must not slow the fdatasyncs producers wait for. Blocks over the
    /// budget stay memory-only.
    pub disk_write_bytes_per_sec: u64,
}

impl Default for BlockCacheConfig {
    fn default() -> Self {
        Self {
            memory_bytes: 256 * MIB,
            disk_dir: None,
            disk_bytes: 0,
            disk_write_bytes_per_sec: 0,
        }
    }
}

/// Counters for status pages and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockCacheStats {
    /// Reads served from memory or disk without running a fetch.
    pub hits: u64,
    /// Of `hits`, those served from the disk tier.
    pub disk_hits: u64,
    /// Fetch closures that actually ran (one per coalesced miss).
    pub misses: u64,
    /// Reads that waited on another caller's in-flight fetch instead of
    /// running their own.
    pub coalesced: u64,
    /// Fetches that returned an error (not cached).
    pub fetch_errors: u64,
    /// Bytes currently charged to the memory tier.
    pub memory_bytes: usize,
    /// Memory tier budget.
    pub memory_capacity: usize,
    /// Whether a disk tier is configured.
    pub disk_enabled: bool,
    /// Bytes written to the disk tier since open (foyer device statistics).
    pub disk_write_bytes: u64,
    /// Write I/Os issued to the disk tier since open.
    pub disk_write_ios: u64,
    /// Bytes read back from the disk tier since open.
    pub disk_read_bytes: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    disk_hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    fetch_errors: AtomicU64,
}

/// The error handed to foyer when a fetch fails. foyer needs
/// `Into<anyhow::Error>` (so `Send + Sync`), which the caller's `E` need not
/// be; the original `E` goes to the leader through a side slot and only its
/// message travels through foyer to the followers.
#[derive(Debug)]
struct FetchFailure {
    message: String,
}

impl fmt::Display for FetchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FetchFailure {}

/// Hybrid (memory + optional disk) cache of compressed object blocks.
///
/// Cheap to clone: clones share the same cache and counters.
#[derive(Clone)]
pub struct BlockCache {
    hybrid: HybridCache<BlockKey, Bytes>,
    counters: Arc<Counters>,
    disk_enabled: bool,
}

impl fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockCache")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Memory-tier weight of one entry: what it really costs in RAM, so the
/// budget is in bytes rather than foyer's default of one unit per entry.
fn weigh(key: &BlockKey, value: &Bytes) -> usize {
    key.object.len() + value.len() + ENTRY_OVERHEAD_BYTES
}

/// Engine block size for a disk budget: about 1/16 of the disk, clamped so
/// a max-size block always fits and eviction stays reasonably fine-grained.
fn engine_block_size(disk_bytes: usize) -> usize {
    let size = (disk_bytes / TARGET_ENGINE_BLOCKS).clamp(MIN_ENGINE_BLOCK, MAX_ENGINE_BLOCK);
    size - size % (4 * KIB)
}

fn storage_error(operation: &'static str, err: foyer::Error) -> CacheError {
    CacheError::Storage {
        operation,
        source: Box::new(err),
    }
}

/// Whether a disk tier of `disk_bytes` can be opened: it must hold a few
/// of its engine's blocks (which grow with the tier). The error says the
/// minimum, for a config check to name its key.
pub fn check_disk_bytes(disk_bytes: u64) -> Result<(), String> {
    let bytes = usize::try_from(disk_bytes)
        .map_err(|_| format!("{disk_bytes} does not fit in memory addressing"))?;
    let block_size = engine_block_size(bytes);
    let minimum = MIN_ENGINE_BLOCKS * block_size;
    if bytes < minimum {
        return Err(format!(
            "{bytes} is below the minimum of {minimum} ({MIN_ENGINE_BLOCKS} engine blocks of {block_size})"
        ));
    }
    Ok(())
}

impl BlockCache {
    /// Builds the cache, creating `disk_dir` when one is configured. Must be
    /// called inside a tokio runtime: foyer runs its disk flushers and
    /// shared fetches on the runtime that opened it.
    pub async fn open(config: &BlockCacheConfig) -> Result<Self, CacheError> {
        if config.memory_bytes == 0 {
            return Err(CacheError::InvalidConfig(
                "block cache memory_bytes must be non-zero".into(),
            ));
        }
        let shards = (config.memory_bytes / MEMORY_BYTES_PER_SHARD).clamp(1, MAX_MEMORY_SHARDS);
        let builder = HybridCacheBuilder::<BlockKey, Bytes>::new()
            .with_name("strata-block-cache")
            // Dumping the whole memory tier to disk would make shutdown as
            // slow as writing `memory_bytes`; the blocks can be refetched.
            .with_flush_on_close(false)
            .memory(config.memory_bytes)
            .with_shards(shards)
            .with_weighter(weigh)
            .storage();

        let (builder, disk_enabled) = match &config.disk_dir {
            None => (builder, false),
            Some(dir) => {
                let disk_bytes = usize::try_from(config.disk_bytes).map_err(|_| {
                    CacheError::InvalidConfig(format!(
                        "block cache disk_bytes {} does not fit in memory addressing",
                        config.disk_bytes
                    ))
                })?;
                let block_size = engine_block_size(disk_bytes);
                check_disk_bytes(config.disk_bytes).map_err(|e| {
                    CacheError::InvalidConfig(format!("block cache disk_bytes {e}"))
                })?;
                // Create it ourselves: foyer's FsDeviceBuilder unwraps its own
                // create_dir_all, which would panic instead of erroring.
                std::fs::create_dir_all(dir).map_err(|source| CacheError::CreateDir {
                    path: dir.clone(),
                    source,
                })?;
                let throttle = Throttle {
                    write_throughput: usize::try_from(config.disk_write_bytes_per_sec)
                        .ok()
                        .and_then(NonZeroUsize::new),
                    ..Throttle::default()
                };
                let device = FsDeviceBuilder::new(dir)
                    .with_capacity(disk_bytes)
                    .with_throttle(throttle)
                    .build()
                    .map_err(|e| storage_error("disk device setup", e))?;
                let engine = BlockEngineConfig::new(device).with_block_size(block_size);
                (builder.with_engine_config(engine), true)
            }
        };

        let hybrid = builder
            .build()
            .await
            .map_err(|e| storage_error("open", e))?;
        tracing::info!(
            memory_bytes = config.memory_bytes,
            shards,
            disk_dir = ?config.disk_dir,
            disk_bytes = config.disk_bytes,
            disk_enabled,
            "block cache opened"
        );
        Ok(Self {
            hybrid,
            counters: Arc::new(Counters::default()),
            disk_enabled,
        })
    }

    /// Returns the block, fetching it with `fetch` on a miss.
    ///
    /// Concurrent misses of the same key run one `fetch` (coalescing) and
    /// all get its bytes. `fetch` runs as a task on the runtime that opened
    /// the cache, so it keeps going even if this caller is cancelled, and the
    /// other waiters still get the block.
    ///
    /// A failed fetch is not cached. The caller whose `fetch` ran gets its
    /// error back unchanged; callers that were waiting on it get
    /// [`CacheError::FetchFailed`] carrying the error's message (`E` need not
    /// be `Clone`). Cache-internal failures also arrive as
    /// `E::from(CacheError)`.
    pub async fn get_or_fetch<F, Fut, E>(&self, key: BlockKey, fetch: F) -> Result<Bytes, E>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Bytes, E>> + Send + 'static,
        E: From<CacheError> + fmt::Display + Send + 'static,
    {
        let ran = Arc::new(AtomicBool::new(false));
        let own_error: Arc<Mutex<Option<E>>> = Arc::new(Mutex::new(None));

        let fetch_ran = ran.clone();
        let error_slot = own_error.clone();
        let counters = self.counters.clone();
        let fetch_key = key.clone();
        // foyer calls this closure eagerly on every call but only polls the
        // future it returns when this call leads a miss, so the user's
        // `fetch` runs (and a miss is counted) only in that case.
        let wrapped = move || async move {
            fetch_ran.store(true, Ordering::Relaxed);
            counters.misses.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(block = %fetch_key, "block cache miss: fetching");
            match fetch().await {
                Ok(bytes) => Ok(bytes),
                Err(err) => {
                    counters.fetch_errors.fetch_add(1, Ordering::Relaxed);
                    let message = err.to_string();
                    tracing::warn!(block = %fetch_key, error = %message, "block fetch failed");
                    *error_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(err);
                    Err(FetchFailure { message })
                }
            }
        };

        match self.hybrid.get_or_fetch(&key, wrapped).await {
            Ok(entry) => {
                match entry.source() {
                    Source::Memory => {
                        self.counters.hits.fetch_add(1, Ordering::Relaxed);
                    }
                    Source::Disk => {
                        self.counters.hits.fetch_add(1, Ordering::Relaxed);
                        self.counters.disk_hits.fetch_add(1, Ordering::Relaxed);
                    }
                    Source::Outer => {
                        if !ran.load(Ordering::Relaxed) {
                            self.counters.coalesced.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Ok(entry.value().clone())
            }
            Err(err) => {
                let own = own_error.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(own) = own {
                    return Err(own);
                }
                if let Some(failure) = err.downcast_ref::<FetchFailure>() {
                    return Err(E::from(CacheError::FetchFailed {
                        object: key.object,
                        offset: key.offset,
                        message: failure.message.clone(),
                    }));
                }
                tracing::warn!(block = %key, error = %err, "block cache lookup failed");
                Err(E::from(storage_error("lookup", err)))
            }
        }
    }

    /// Looks the block up in memory, then on disk, without fetching. A disk
    /// hit is promoted back into memory.
    pub async fn get(&self, key: &BlockKey) -> Result<Option<Bytes>, CacheError> {
        let entry = self
            .hybrid
            .get(key)
            .await
            .map_err(|e| storage_error("lookup", e))?;
        Ok(entry.map(|entry| {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            if entry.source() == Source::Disk {
                self.counters.disk_hits.fetch_add(1, Ordering::Relaxed);
            }
            entry.value().clone()
        }))
    }

    /// Whether the block is probably cached. May report a disk-tier block
    /// that a hash collision makes look present; never misses a memory one.
    pub fn contains(&self, key: &BlockKey) -> bool {
        self.hybrid.contains(key)
    }

    /// Waits until blocks already queued for the disk tier are written.
    /// Disk writes are asynchronous (flusher tasks); this makes them
    /// observable, e.g. before measuring disk usage.
    pub async fn wait_for_disk_writes(&self) {
        self.hybrid.storage().wait().await;
    }

    pub fn stats(&self) -> BlockCacheStats {
        let c = &self.counters;
        let disk = self.hybrid.statistics();
        BlockCacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            disk_hits: c.disk_hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            coalesced: c.coalesced.load(Ordering::Relaxed),
            fetch_errors: c.fetch_errors.load(Ordering::Relaxed),
            memory_bytes: self.hybrid.memory().usage(),
            memory_capacity: self.hybrid.memory().capacity(),
            disk_enabled: self.disk_enabled,
            disk_write_bytes: disk.disk_write_bytes() as u64,
            disk_write_ios: disk.disk_write_ios() as u64,
            disk_read_bytes: disk.disk_read_bytes() as u64,
        }
    }

    /// Stops the disk tier's background work, waiting for in-progress
    /// flushes. Errors are logged, not returned: at shutdown there is
    /// nothing useful to do about a cache that failed to close cleanly.
    pub async fn close(&self) {
        match self.hybrid.close().await {
            Ok(()) => tracing::info!(stats = ?self.stats(), "block cache closed"),
            Err(err) => tracing::warn!(error = %err, "block cache did not close cleanly"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pace concurrent readers with real sleeps
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    /// A caller's error type: keeps fetch errors apart from cache errors so
    /// tests can tell the leader's original error from a follower's copy.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum TestError {
        /// Produced by a fetch closure that ran.
        Fetch(String),
        /// Another caller's fetch failed while we waited on it.
        Follower(String),
        Cache(String),
    }

    impl From<CacheError> for TestError {
        fn from(err: CacheError) -> Self {
            match err {
                CacheError::FetchFailed { message, .. } => Self::Follower(message),
                other => Self::Cache(other.to_string()),
            }
        }
    }

    impl fmt::Display for TestError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Self::Fetch(m) | Self::Follower(m) | Self::Cache(m) => f.write_str(m),
            }
        }
    }

    fn memory_only(memory_bytes: usize) -> BlockCacheConfig {
        BlockCacheConfig {
            memory_bytes,
            disk_dir: None,
            disk_bytes: 0,
            disk_write_bytes_per_sec: 0,
        }
    }

    fn hybrid(memory_bytes: usize, dir: &tempfile::TempDir) -> BlockCacheConfig {
        BlockCacheConfig {
            memory_bytes,
            // A subdirectory, to check that open creates it.
            disk_dir: Some(dir.path().join("blocks")),
            disk_bytes: 64 * MIB as u64,
            disk_write_bytes_per_sec: 0,
        }
    }

    fn block(seed: u8, len: usize) -> Bytes {
        Bytes::from(
            (0..len)
                .map(|i| seed.wrapping_add(i as u8))
                .collect::<Vec<u8>>(),
        )
    }

    /// Fetch that counts its runs and returns `bytes`.
    fn counting_fetch(
        runs: &Arc<AtomicUsize>,
        bytes: Bytes,
    ) -> impl FnOnce() -> std::future::Ready<Result<Bytes, TestError>> + Send + 'static {
        let runs = runs.clone();
        move || {
            runs.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(bytes))
        }
    }

    async fn miss_then_hit(cache: BlockCache) {
        let runs = Arc::new(AtomicUsize::new(0));
        let key = BlockKey::new("queues/a/00000001.obj", 0);
        let data = block(1, 64 * KIB);

        let first = cache
            .get_or_fetch(key.clone(), counting_fetch(&runs, data.clone()))
            .await
            .expect("first read");
        let second = cache
            .get_or_fetch(key.clone(), counting_fetch(&runs, block(9, 10)))
            .await
            .expect("second read");

        assert_eq!(first, data);
        assert_eq!(second, data, "hit must return the cached bytes");
        assert_eq!(runs.load(Ordering::SeqCst), 1, "fetch runs once");
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.coalesced), (1, 1, 0));
        assert!(stats.memory_bytes >= data.len(), "{stats:?}");
        assert!(cache.contains(&key));
        assert_eq!(cache.get(&key).await.expect("get"), Some(data));
        assert_eq!(
            cache
                .get(&BlockKey::new("queues/a/00000001.obj", 64 * KIB as u64))
                .await
                .expect("get"),
            None
        );
        assert_eq!(cache.stats().hits, 2);
        cache.close().await;
    }

    #[tokio::test]
    async fn memory_only_miss_then_hit() {
        let cache = BlockCache::open(&memory_only(16 * MIB))
            .await
            .expect("open");
        assert!(!cache.stats().disk_enabled);
        miss_then_hit(cache).await;
    }

    #[tokio::test]
    async fn hybrid_miss_then_hit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = hybrid(16 * MIB, &dir);
        let cache = BlockCache::open(&config).await.expect("open");
        assert!(cache.stats().disk_enabled);
        assert!(dir.path().join("blocks").is_dir(), "open creates disk_dir");
        miss_then_hit(cache).await;
    }

    /// 32 concurrent readers of one missing block: one fetch, same bytes.
    async fn concurrent_misses_coalesce(cache: BlockCache) {
        const READERS: usize = 32;
        let runs = Arc::new(AtomicUsize::new(0));
        let entered = Arc::new(AtomicUsize::new(0));
        let key = BlockKey::new("queues/b/00000007.obj", 4 * MIB as u64);
        let data = block(7, 256 * KIB);

        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..READERS {
            let cache = cache.clone();
            let key = key.clone();
            let runs = runs.clone();
            let entered = entered.clone();
            let data = data.clone();
            tasks.spawn(async move {
                // The miss is registered on the first poll of get_or_fetch,
                // right after this increment, without yielding in between.
                entered.fetch_add(1, Ordering::SeqCst);
                let gate = entered.clone();
                cache
                    .get_or_fetch(key, move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        // Hold the fetch open until every reader has joined,
                        // so none can arrive after it completed (bounded).
                        for _ in 0..500 {
                            if gate.load(Ordering::SeqCst) == READERS {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, TestError>(data)
                    })
                    .await
            });
        }
        let results = tasks.join_all().await;

        assert_eq!(results.len(), READERS);
        for result in results {
            assert_eq!(result.expect("read"), data);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "one fetch for all readers");
        let stats = cache.stats();
        assert_eq!(stats.misses, 1, "{stats:?}");
        assert_eq!(
            stats.coalesced + stats.hits,
            READERS as u64 - 1,
            "{stats:?}"
        );
        cache.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_only_concurrent_misses_coalesce() {
        let cache = BlockCache::open(&memory_only(16 * MIB))
            .await
            .expect("open");
        concurrent_misses_coalesce(cache).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hybrid_concurrent_misses_coalesce() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = BlockCache::open(&hybrid(16 * MIB, &dir))
            .await
            .expect("open");
        concurrent_misses_coalesce(cache).await;
    }

    #[tokio::test]
    async fn fetch_errors_are_not_cached() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = BlockCache::open(&hybrid(16 * MIB, &dir))
            .await
            .expect("open");
        let key = BlockKey::new("queues/c/00000002.obj", 0);

        let err = cache
            .get_or_fetch(key.clone(), || async {
                Err::<Bytes, _>(TestError::Fetch("store unavailable".into()))
            })
            .await
            .expect_err("fetch error is returned");
        assert_eq!(
            err,
            TestError::Fetch("store unavailable".into()),
            "leader gets its own error"
        );
        assert!(!cache.contains(&key));

        let runs = Arc::new(AtomicUsize::new(0));
        let data = block(3, 4 * KIB);
        let got = cache
            .get_or_fetch(key, counting_fetch(&runs, data.clone()))
            .await
            .expect("retry succeeds");
        assert_eq!(got, data);
        assert_eq!(runs.load(Ordering::SeqCst), 1, "error was not cached");
        let stats = cache.stats();
        assert_eq!((stats.misses, stats.fetch_errors, stats.hits), (2, 1, 0));
        cache.close().await;
    }

    /// Every concurrent waiter on a failing fetch gets an error: the caller
    /// whose fetch ran gets the original, the others a `FetchFailed` copy.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fetch_error_reaches_every_waiter() {
        let cache = BlockCache::open(&memory_only(16 * MIB))
            .await
            .expect("open");
        let runs = Arc::new(AtomicUsize::new(0));
        let key = BlockKey::new("queues/d/00000003.obj", 0);

        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let cache = cache.clone();
            let key = key.clone();
            let runs = runs.clone();
            tasks.spawn(async move {
                cache
                    .get_or_fetch(key, move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Err::<Bytes, _>(TestError::Fetch("boom".into()))
                    })
                    .await
            });
        }
        let results = tasks.join_all().await;

        let leaders = results
            .iter()
            .filter(|r| **r == Err(TestError::Fetch("boom".into())))
            .count();
        let followers = results
            .iter()
            .filter(|r| **r == Err(TestError::Follower("boom".into())))
            .count();
        assert_eq!(leaders + followers, 8, "{results:?}");
        assert_eq!(
            leaders,
            runs.load(Ordering::SeqCst),
            "one original error per fetch run"
        );
        assert!(!cache.contains(&key));
        cache.close().await;
    }

    /// With a memory tier of a few blocks, blocks evicted from memory are
    /// written to disk and served from there without a refetch.
    #[tokio::test]
    async fn evicted_blocks_are_served_from_disk() {
        const BLOCKS: u8 = 32;
        let dir = tempfile::tempdir().expect("tempdir");
        // Room for about three 64 KiB blocks.
        let cache = BlockCache::open(&hybrid(200 * KIB, &dir))
            .await
            .expect("open");
        let key = |i: u8| BlockKey::new("queues/e/00000004.obj", u64::from(i) * 64 * KIB as u64);

        let runs = Arc::new(AtomicUsize::new(0));
        for i in 0..BLOCKS {
            cache
                .get_or_fetch(key(i), counting_fetch(&runs, block(i, 64 * KIB)))
                .await
                .expect("fill");
        }
        assert_eq!(runs.load(Ordering::SeqCst), usize::from(BLOCKS));
        let stats = cache.stats();
        assert!(stats.memory_bytes <= stats.memory_capacity, "{stats:?}");

        // Disk writes are asynchronous; until flushed, foyer still serves
        // queued blocks from its write buffer. Wait anyway so the reads
        // below exercise the device.
        cache.wait_for_disk_writes().await;
        assert!(cache.stats().disk_write_bytes > 0, "{:?}", cache.stats());

        let refetches = Arc::new(AtomicUsize::new(0));
        for i in 0..8 {
            let got = cache
                .get_or_fetch(
                    key(i),
                    counting_fetch(&refetches, Bytes::from_static(b"refetched")),
                )
                .await
                .expect("read back");
            assert_eq!(got, block(i, 64 * KIB), "block {i}");
        }
        assert_eq!(
            refetches.load(Ordering::SeqCst),
            0,
            "evicted blocks came from disk"
        );
        let stats = cache.stats();
        assert_eq!(stats.misses, u64::from(BLOCKS), "{stats:?}");
        assert_eq!(stats.hits, 8, "{stats:?}");
        assert!(stats.disk_hits >= 1, "{stats:?}");
        assert!(stats.disk_read_bytes > 0, "{stats:?}");
        cache.close().await;
    }

    #[tokio::test]
    async fn memory_only_evicts_without_disk() {
        let cache = BlockCache::open(&memory_only(200 * KIB))
            .await
            .expect("open");
        let runs = Arc::new(AtomicUsize::new(0));
        for i in 0..8u8 {
            cache
                .get_or_fetch(
                    BlockKey::new("o", u64::from(i)),
                    counting_fetch(&runs, block(i, 64 * KIB)),
                )
                .await
                .expect("fill");
        }
        let stats = cache.stats();
        assert!(stats.memory_bytes <= stats.memory_capacity, "{stats:?}");
        assert_eq!(stats.disk_write_bytes, 0);
        // The oldest block was evicted and there is no disk tier: refetch.
        cache
            .get_or_fetch(
                BlockKey::new("o", 0),
                counting_fetch(&runs, block(0, 64 * KIB)),
            )
            .await
            .expect("refetch");
        assert_eq!(runs.load(Ordering::SeqCst), 9);
    }

    #[tokio::test]
    async fn invalid_configs_are_rejected() {
        let err = BlockCache::open(&memory_only(0))
            .await
            .expect_err("zero memory");
        assert!(matches!(err, CacheError::InvalidConfig(_)), "{err}");

        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = hybrid(MIB, &dir);
        config.disk_bytes = 8 * MIB as u64;
        let err = BlockCache::open(&config).await.expect_err("tiny disk");
        assert!(matches!(err, CacheError::InvalidConfig(_)), "{err}");

        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").expect("write");
        let mut config = hybrid(MIB, &dir);
        config.disk_dir = Some(file.join("blocks"));
        let err = BlockCache::open(&config)
            .await
            .expect_err("dir under a file");
        assert!(matches!(err, CacheError::CreateDir { .. }), "{err}");
    }

    #[test]
    fn block_key_round_trips_through_foyer_code() {
        let key = BlockKey::new("queues/ü/00000009.obj", u64::MAX - 3);
        let mut buf = Vec::new();
        key.encode(&mut buf).expect("encode");
        assert_eq!(buf.len(), key.estimated_size());
        let decoded = BlockKey::decode(&mut buf.as_slice()).expect("decode");
        assert_eq!(decoded, key);
    }

    #[test]
    fn engine_block_size_fits_max_blocks() {
        assert_eq!(engine_block_size(32 * MIB), MIN_ENGINE_BLOCK);
        assert_eq!(engine_block_size(512 * MIB), 32 * MIB);
        assert_eq!(engine_block_size(64 << 30), MAX_ENGINE_BLOCK);
        assert!(engine_block_size(100 * MIB + 7).is_multiple_of(4 * KIB));
    }
}
