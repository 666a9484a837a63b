//! Tiered storage: WAL data moves to object storage within seconds, and
//! cold reads come back through the block cache.
//!
//! The loops here carry out what `strata_compactor` plans:
//!
//! - **upload** ([`upload`]): durable WAL batches from the checkpoint on are
//!   packed into one object (sorted by queue, then offset), PUT, then
//!   committed to the metadata store as per-queue ranges together with the
//!   new checkpoint, in one transaction fenced by the queues' owner epochs.
//!   Only then is WAL space released.
//! - **maintenance** ([`maintenance`]): retention expires old ranges; merges
//!   rewrite runs of small ranges into per-queue objects; garbage collection
//!   deletes objects no committed range references.
//! - **cold reads** ([`cold_read`]): a range → block → cache or ranged GET
//!   on the cold-read runtime.
//!
//! Every step is crash-safe: an object is only referenced after its commit,
//! so a crash leaves at worst an unreferenced object, which GC deletes; the
//! WAL is only released below a committed checkpoint, so nothing is lost; a
//! re-upload after a crash skips offsets already committed.

pub(crate) mod cold_read;
pub(crate) mod maintenance;
pub(crate) mod upload;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use strata_cache::{BlockCache, ColdReader};
use strata_common::Clock;
use strata_objects::Objects;

use crate::engine::Engine;
use crate::error::{EngineError, Result};

/// Object prefix of upload objects (many queues each).
pub(crate) const UPLOAD_PREFIX: &str = "seg/";
/// Object prefix of merged objects (one queue each).
pub(crate) const MERGED_PREFIX: &str = "merged/";

/// Tiered-storage state of the engine.
pub(crate) struct Tiering {
    pub objects: Objects,
    pub blocks: BlockCache,
    pub cold: Arc<ColdReader>,
    /// WAL position below which everything is in object storage.
    pub checkpoint: AtomicU64,
    /// Serialises upload, merge, expiry and GC: GC must never see an object
    /// whose commit is in progress.
    pub lock: tokio::sync::Mutex<()>,
    pub counters: Counters,
    pub last_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for Tiering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiering")
            .field("objects", &self.objects.describe())
            .field("checkpoint", &self.checkpoint.load(Ordering::Relaxed))
            .finish()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub uploads: AtomicU64,
    pub uploaded_bytes: AtomicU64,
    pub merges: AtomicU64,
    pub merged_bytes: AtomicU64,
    pub expired_ranges: AtomicU64,
    pub gc_deleted: AtomicU64,
}

impl Tiering {
    pub async fn open(config: &crate::EngineConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        let objects = Objects::open(&config.object_store, clock.clone())
            .map_err(|e| EngineError::Internal(format!("object store: {e}")))?;
        let blocks = BlockCache::open(&config.block_cache)
            .await
            .map_err(|e| EngineError::Internal(format!("block cache: {e}")))?;
        let cold = ColdReader::start(&config.cold_reader, clock.clone())
            .map(Arc::new)
            .map_err(|e| EngineError::Internal(format!("cold reader: {e}")))?;
        Ok(Self {
            objects,
            blocks,
            cold,
            checkpoint: AtomicU64::new(0),
            lock: tokio::sync::Mutex::new(()),
            counters: Counters::default(),
            last_error: Mutex::new(None),
        })
    }

    pub fn note_error(&self, what: &str, e: &EngineError) {
        tracing::warn!(error = %e, "{what} failed; will retry");
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{what}: {e}"));
    }

    pub fn clear_error(&self) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// A random 64-bit suffix for object names, so a zombie writer can never
/// overwrite another writer's object.
pub(crate) fn unique_suffix(engine: &Engine) -> String {
    format!("{:016x}", engine.clock.random_u64())
}

impl Engine {
    /// The object store wrapper: its metrics, and its fault switches in tests.
    pub fn object_store(&self) -> &Objects {
        &self.tiering.objects
    }

    /// The low-priority runtime of reads: protocol adapters encode read
    /// replies here (`spawn_blocking` on it runs on its threads), so
    /// consumers never compete with producers for the async workers.
    pub fn read_runtime(&self) -> tokio::runtime::Handle {
        self.tiering.cold.handle().clone()
    }

    /// The node's WAL checkpoint: everything below is in object storage.
    pub fn wal_checkpoint(&self) -> u64 {
        self.tiering.checkpoint.load(Ordering::Acquire)
    }

    pub(crate) fn tiering_status(&self) -> crate::types::TieringStatus {
        let tier = &self.tiering;
        let checkpoint = tier.checkpoint.load(Ordering::Acquire);
        let oldest_pending = self
            .topics_read()
            .all()
            .flat_map(|t| t.queues.iter())
            .filter_map(|q| {
                let inner = q.lock();
                let i = inner.index.partition_point(|e| e.at.lsn < checkpoint);
                inner.index.get(i).map(|e| e.at.timestamp_ms)
            })
            .min();
        let c = &tier.counters;
        crate::types::TieringStatus {
            object_store: tier.objects.describe(),
            checkpoint_lsn: checkpoint,
            upload_lag_bytes: self.upload_lag_bytes(),
            upload_lag_ms: oldest_pending.map_or(0, |ts| (self.clock.now_ms() - ts).max(0)),
            uploads: c.uploads.load(Ordering::Relaxed),
            uploaded_bytes: c.uploaded_bytes.load(Ordering::Relaxed),
            merges: c.merges.load(Ordering::Relaxed),
            merged_bytes: c.merged_bytes.load(Ordering::Relaxed),
            expired_ranges: c.expired_ranges.load(Ordering::Relaxed),
            gc_deleted_objects: c.gc_deleted.load(Ordering::Relaxed),
            last_error: tier
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            objects: tier.objects.metrics(),
            block_cache: tier.blocks.stats(),
            cold_reader: tier.cold.stats(),
        }
    }
}
