//! [`Compactor`]: the loops that move a node's data from its WAL to object
//! storage and keep what is there in shape (see the crate docs).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use strata_common::Clock;
use strata_metadata::Catalog;
use strata_objects::Objects;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{CompactorError, Result};
use crate::failures::{Failures, Logged, Pass};
use crate::host::TieredLog;

/// Longest wait between upload attempts while they keep failing.
const MAX_UPLOAD_RETRY_DELAY: Duration = Duration::from_secs(5);

/// How the compactor paces and sizes its work.
#[derive(Debug, Clone)]
pub struct CompactorConfig {
    /// The node whose WAL checkpoint the uploads advance.
    pub node_id: String,
    /// Upload at least this often while there is durable data.
    pub upload_interval: Duration,
    /// Upload at once when this much durable data waits.
    pub upload_trigger_bytes: u64,
    /// Largest upload object.
    pub max_object_bytes: u64,
    /// Uncompressed size blocks are cut at.
    pub target_block_bytes: usize,
    /// How often retention, merges and GC run.
    pub maintenance_interval: Duration,
    /// Ranges smaller than this are merge candidates.
    pub merge_small_range_bytes: u64,
    /// Fewest adjacent small ranges worth a merge.
    pub merge_min_ranges: usize,
    /// Size a merge aims for.
    pub merge_target_bytes: u64,
    /// Unreferenced objects younger than this are left alone (an upload
    /// may be about to commit them).
    pub gc_grace: Duration,
    /// The object store is this node's alone (in its data directory, or in
    /// memory): no other namespace can share it, so a mark missing on one
    /// side is written again instead of refused (see `store_mark`).
    pub private_store: bool,
}

/// Cumulative counters since start.
#[derive(Debug, Default)]
pub struct Counters {
    pub uploads: AtomicU64,
    pub uploaded_bytes: AtomicU64,
    pub merges: AtomicU64,
    pub merged_bytes: AtomicU64,
    pub expired_ranges: AtomicU64,
    pub gc_deleted: AtomicU64,
    /// Upload and maintenance passes that failed.
    pub failures: AtomicU64,
}

/// Moves one log's data to object storage. Cheap to share: wrap in `Arc`.
pub struct Compactor {
    pub(crate) log: Weak<dyn TieredLog>,
    pub(crate) catalog: Catalog,
    pub(crate) objects: Objects,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: CompactorConfig,
    /// WAL position below which everything is in object storage.
    pub(crate) checkpoint: AtomicU64,
    /// Serialises upload, merge, expiry and GC: GC must never see an object
    /// whose commit is in progress.
    pub(crate) lock: tokio::sync::Mutex<()>,
    pub(crate) counters: Counters,
    failures: Mutex<Failures>,
    /// The object store was found to be this namespace's (`store_mark`).
    pub(crate) store_verified: AtomicBool,
}

impl std::fmt::Debug for Compactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compactor")
            .field("node_id", &self.config.node_id)
            .field("objects", &self.objects.describe())
            .field("checkpoint", &self.checkpoint())
            .finish()
    }
}

impl Compactor {
    /// A compactor for `log`, starting at the WAL `checkpoint` the metadata
    /// store holds for the node. It holds the log weakly: the log owns it.
    pub fn new(
        log: Weak<dyn TieredLog>,
        catalog: Catalog,
        objects: Objects,
        clock: Arc<dyn Clock>,
        config: CompactorConfig,
        checkpoint: u64,
    ) -> Self {
        Self {
            log,
            catalog,
            objects,
            clock,
            config,
            checkpoint: AtomicU64::new(checkpoint),
            lock: tokio::sync::Mutex::new(()),
            counters: Counters::default(),
            failures: Mutex::new(Failures::default()),
            store_verified: AtomicBool::new(false),
        }
    }

    pub(crate) fn log(&self) -> Result<Arc<dyn TieredLog>> {
        self.log
            .upgrade()
            .ok_or_else(|| CompactorError::Log("the log is closed".into()))
    }

    /// The WAL checkpoint: everything below is in object storage.
    pub fn checkpoint(&self) -> u64 {
        self.checkpoint.load(Ordering::Acquire)
    }

    /// Takes a checkpoint another process committed (a separate
    /// compactor's); it never moves back.
    pub fn observe_checkpoint(&self, checkpoint: u64) {
        self.checkpoint.fetch_max(checkpoint, Ordering::AcqRel);
    }

    /// Durable WAL bytes not yet in object storage.
    pub fn lag_bytes(&self) -> u64 {
        self.log()
            .map_or(0, |log| log.durable_lsn().saturating_sub(self.checkpoint()))
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The object store the compactor writes to.
    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    /// The failures of the loops that keep failing (the last message of
    /// each and how many attempts in a row), until a later pass succeeds.
    pub fn last_error(&self) -> Option<String> {
        self.lock_failures().describe()
    }

    fn lock_failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a pass's outcome. Failures are compared by kind (see
    /// [`Failures`]): the first of a kind is a warning, repeats are debug
    /// events with a warning again every minute, and recovery is logged.
    fn note(&self, pass: Pass, result: Result<()>) {
        let what = pass.name();
        let mut failures = self.lock_failures();
        match result {
            Ok(()) => {
                if let Some((was, attempts)) = failures.succeeded(pass) {
                    tracing::info!(failure = %was, attempts, "{what} succeeded again");
                }
            }
            Err(e) => {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                let now = self.clock.monotonic();
                match failures.failed(pass, e.kind(), e.to_string(), now) {
                    Logged::Warn { attempts: 1 } => {
                        tracing::warn!(error = %e, kind = e.kind(), "{what} failed; will retry");
                    }
                    Logged::Warn { attempts } => tracing::warn!(
                        error = %e, kind = e.kind(), attempts,
                        "{what} keeps failing; still retrying"
                    ),
                    Logged::Quiet => {
                        tracing::debug!(error = %e, kind = e.kind(), "{what} failed again; will retry");
                    }
                }
            }
        }
    }

    /// How long the upload loop waits after its last attempt: its tick, or
    /// longer while attempts keep failing, so a node whose uploads are
    /// refused (fenced, a store outage) does not redo the work every tick.
    fn upload_retry_delay(&self, tick: Duration) -> Duration {
        self.lock_failures()
            .retry_delay(Pass::Upload, tick, MAX_UPLOAD_RETRY_DELAY)
    }

    /// Runs CPU-heavy work (building, compressing or decoding an object)
    /// on the blocking pool of the runtime it is called from, so the
    /// compaction runtime's one worker keeps driving the other loop and the
    /// object requests in flight.
    pub(crate) async fn on_blocking_pool<T: Send + 'static>(
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| CompactorError::Internal(format!("compaction task failed: {e}")))?
    }

    /// Refuses to commit object `name`, whose PUT began at `began` (on the
    /// monotonic clock), once more than half of `gc_grace` has passed:
    /// garbage collection deletes unreferenced objects older than the
    /// grace, so a commit arriving later (after a pause, a slow store)
    /// could reference a deleted object. Other nodes leave this node's
    /// objects alone while its record is live and for a grace after it is
    /// marked left or adopted (see `gc`); this guards what they cannot
    /// tell apart (a node outside the registry, as under the serving
    /// lease). The other half is left for the commit itself. The
    /// object stays an orphan for GC to collect.
    /// A zero grace (one compactor per store, as in tests) turns it off:
    /// GC and commits then take turns under the compactor's lock.
    pub(crate) fn fresh_enough(&self, name: &str, began: Duration) -> Result<()> {
        let grace = self.config.gc_grace;
        let age = self.clock.monotonic().saturating_sub(began);
        if crate::gc::commit_in_time(age, grace) {
            return Ok(());
        }
        Err(CompactorError::TooSlow(format!(
            "object {name} was written {:.1} s ago, over half the GC grace of {} s: not committed (left for garbage collection); the work is retried",
            age.as_secs_f64(),
            grace.as_secs()
        )))
    }

    /// A random 64-bit suffix for object names, so a zombie writer can never
    /// overwrite another writer's object.
    pub(crate) fn unique_suffix(&self) -> String {
        format!("{:016x}", self.clock.random_u64())
    }

    /// Starts the upload and maintenance loops on `runtime`; they end when
    /// `shutdown` turns true (a pass in progress is abandoned). A node
    /// passes its low-priority background runtime: building, compressing
    /// and merging objects then never holds up the workers that serve
    /// requests.
    ///
    /// Uploads of a WAL more than half full run on the caller's runtime
    /// instead, at its priority: producers are then waiting for room, and
    /// at low priority on two busy cores the compactor fell ever further
    /// behind them (the WAL stayed full and publishes stalled behind it).
    pub fn spawn(
        self: &Arc<Self>,
        shutdown: &watch::Receiver<bool>,
        runtime: &Handle,
    ) -> [JoinHandle<()>; 2] {
        [
            self.spawn_uploads(shutdown.clone(), runtime),
            self.spawn_maintenance(shutdown.clone(), runtime),
        ]
    }

    fn spawn_uploads(
        self: &Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
        runtime: &Handle,
    ) -> JoinHandle<()> {
        let this = self.clone();
        let interval = self.config.upload_interval;
        let trigger = self.config.upload_trigger_bytes;
        let tick = interval.clamp(Duration::from_millis(10), Duration::from_millis(200));
        let urgent = Handle::try_current().ok();
        runtime.spawn(async move {
            let clock = this.clock.clone();
            let mut last = clock.monotonic();
            let mut attempted = last;
            loop {
                tokio::select! {
                    _ = clock.sleep(tick) => {}
                    _ = shutdown.wait_for(|down| *down) => break,
                }
                let Ok(log) = this.log() else { break };
                let lag = this.lag_bytes();
                // A filling WAL uploads at once: appends are waiting for room.
                let filling = log.wal_filling();
                drop(log);
                let now = clock.monotonic();
                let since = now.saturating_sub(last);
                // With nothing to upload, a filling WAL still needs its
                // sealed segments released (the pass does that): after a
                // restart with a smaller wal.max_bytes nothing else frees them.
                if (lag == 0 && !filling) || (lag < trigger && !filling && since < interval) {
                    continue;
                }
                // Backing off never holds up producers waiting for room:
                // a filling WAL is retried every tick.
                let wait = this.upload_retry_delay(tick);
                if !filling && wait > tick && now.saturating_sub(attempted) < wait {
                    continue;
                }
                attempted = now;
                // Abandoned at shutdown, like a maintenance pass (below). An
                // urgent upload runs as a task of its own: it is aborted and
                // awaited, so nothing of it outlives the loop.
                let uploaded = match urgent.as_ref().filter(|_| filling) {
                    Some(urgent) => {
                        let upload = this.clone();
                        let mut task = urgent.spawn(async move { upload.upload_once().await });
                        let joined = tokio::select! {
                            joined = &mut task => Some(joined),
                            _ = shutdown.wait_for(|down| *down) => None,
                        };
                        let Some(joined) = joined else {
                            task.abort();
                            let _ = task.await;
                            break;
                        };
                        joined.unwrap_or_else(|e| {
                            Err(CompactorError::Internal(format!("upload task failed: {e}")))
                        })
                    }
                    None => tokio::select! {
                        uploaded = this.upload_once() => uploaded,
                        _ = shutdown.wait_for(|down| *down) => break,
                    },
                };
                if uploaded.is_ok() {
                    last = clock.monotonic();
                }
                this.note(Pass::Upload, uploaded.map(drop));
            }
        })
    }

    fn spawn_maintenance(
        self: &Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
        runtime: &Handle,
    ) -> JoinHandle<()> {
        let this = self.clone();
        let interval = self.config.maintenance_interval;
        runtime.spawn(async move {
            let clock = this.clock.clone();
            loop {
                tokio::select! {
                    _ = clock.sleep(interval) => {}
                    _ = shutdown.wait_for(|down| *down) => break,
                }
                if this.log.strong_count() == 0 {
                    break;
                }
                // A pass is abandoned at shutdown (it is crash-safe, so it is
                // safe to stop anywhere): against an object store that is
                // down, or a test clock that jumped past a timeout, it
                // could otherwise retry long after the node was told to stop.
                let passed = tokio::select! {
                    passed = this.maintain() => passed,
                    _ = shutdown.wait_for(|down| *down) => break,
                };
                this.note(Pass::Maintenance, passed.map(drop));
            }
        })
    }
}
