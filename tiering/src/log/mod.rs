//! The tiered log: one [`Tiers`] serves every queue's reads from whichever
//! tier holds the offsets — the tail cache, the WAL (hot) or object storage
//! through the block cache (cold) — through [`Tiers::read`]; each queue's
//! [`QueueIndex`] says which.
//!
//! ```text
//! read(queue, offset)
//!   ├─ offset below the first WAL batch, in a cold range → cold.rs:
//!   │    range → block → block cache or a ranged GET on the cold runtime
//!   │    (+ read-ahead of the next block) → decode (or the block still
//!   │    decoded from a read just before)
//!   ├─ in the tail cache → the cached messages
//!   ├─ in the WAL index → read.rs: the WAL records, decoded
//!   └─ released from the WAL meanwhile → cold, as above
//! ```
//!
//! The compactor's side is here too: [`Tiers::read_span`] (what an upload
//! packs) and [`Tiers::release_below`] (WAL segments whose data is in
//! object storage, and their index entries, go together).

mod cold;
mod decoded;
mod error;
mod index;
mod read;
mod span;

use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use strata_cache::{BlockCache, BlockCacheConfig, ColdReader, ColdReaderConfig, TailCache};
use strata_common::usage::Meter;
use strata_common::{Clock, QueueKey};
use strata_objects::{ObjectStoreConfig, Objects};

pub use error::TierError;
pub use index::{BatchRef, IndexEntry, QueueIndex, first_stored_offset};

use crate::Wal;

/// One queue as the tiers serve it.
#[derive(Debug)]
pub struct QueueLog {
    pub key: QueueKey,
    /// Billed for the queue's object reads.
    pub tenant: Arc<str>,
    index: Mutex<QueueIndex>,
}

impl QueueLog {
    pub fn new(key: QueueKey, tenant: Arc<str>) -> Self {
        Self {
            key,
            tenant,
            index: Mutex::new(QueueIndex::default()),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, QueueIndex> {
        // The index is updated in single steps; a poisoned lock still holds
        // consistent data.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How the tiers are sized.
#[derive(Debug, Clone)]
pub struct TiersConfig {
    pub object_store: ObjectStoreConfig,
    pub block_cache: BlockCacheConfig,
    pub cold_reader: ColdReaderConfig,
    pub tail_cache_bytes: usize,
    /// A read stops after the batch or block that reaches this many bytes
    /// (at least one is always read).
    pub max_read_bytes: usize,
}

/// The tiers of one node's log and the reads across them.
pub struct Tiers {
    wal: Arc<dyn Wal>,
    /// WAL reads hold it shared; segment deletion takes it exclusively.
    files: Arc<RwLock<()>>,
    tail: TailCache,
    objects: Objects,
    blocks: BlockCache,
    /// The blocks cold reads decoded last, still decoded.
    decoded: decoded::DecodedBlocks,
    cold: Arc<ColdReader>,
    /// Object GETs are billed to the queue's tenant here.
    meter: Arc<Meter>,
    max_read_bytes: u64,
}

impl std::fmt::Debug for Tiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiers")
            .field("wal", &self.wal)
            .field("objects", &self.objects.describe())
            .finish()
    }
}

impl Tiers {
    /// Opens the object store, the block cache and the cold-read runtime
    /// over `wal`.
    pub async fn open(
        config: &TiersConfig,
        wal: Arc<dyn Wal>,
        meter: Arc<Meter>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, TierError> {
        let objects = Objects::open(&config.object_store, clock.clone())
            .map_err(|e| TierError::Open(format!("object store: {e}")))?;
        let blocks = BlockCache::open(&config.block_cache)
            .await
            .map_err(|e| TierError::Open(format!("block cache: {e}")))?;
        let cold = ColdReader::start(&config.cold_reader, clock)
            .map(Arc::new)
            .map_err(|e| TierError::Open(format!("cold reader: {e}")))?;
        Ok(Self {
            wal,
            files: Arc::new(RwLock::new(())),
            tail: TailCache::new(config.tail_cache_bytes),
            objects,
            blocks,
            decoded: decoded::DecodedBlocks::default(),
            cold,
            meter,
            max_read_bytes: config.max_read_bytes as u64,
        })
    }

    /// The hot tier.
    pub fn wal(&self) -> &Arc<dyn Wal> {
        &self.wal
    }

    /// The most recent batches of every queue, in memory.
    pub fn tail(&self) -> &TailCache {
        &self.tail
    }

    /// The object store: its metrics, and its fault switches in tests.
    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    pub fn blocks(&self) -> &BlockCache {
        &self.blocks
    }

    /// The low-priority runtime cold reads (and read replies) run on.
    pub fn cold(&self) -> &Arc<ColdReader> {
        &self.cold
    }
}
