//! `RedbStore`: the embedded default [`MetaStore`], one redb file per node
//! plus its commit journal (`<file>.journal`).
//!
//! All data lives in a single table `kv` of raw bytes to raw bytes.
//!
//! Commits are group-committed: one writer thread takes every commit that
//! is waiting and applies them, in arrival order, inside one redb write
//! transaction. Each commit's checks are read inside that transaction,
//! after the commits before it in the group, and a commit whose check fails
//! writes nothing, so the outcome is exactly that of running the commits one
//! by one. The group is made durable by one synced append to the journal
//! (see [`crate::redb_writer`]); a `Committed` outcome survives a crash.
//! Concurrent writers (POP state of many queues, index batches, offsets)
//! thereby pay one small sync per group instead of one B-tree sync each.
//!
//! Reads block on disk I/O too, so they run on tokio's blocking pool via
//! `spawn_blocking` and never stall an async worker. They see a group only
//! once its journal record is synced.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use redb::{Database, ReadableDatabase};

pub use crate::redb_writer::Checkpoints;
pub use crate::redb_writer::JournalCut;
use crate::redb_writer::{Job, KV, Writer, backend, cut_damaged_journal};
use crate::store::{
    MetaError, MetaStore, Txn, TxnOutcome, range_is_empty, validate_key, validate_scan,
    validate_txn,
};

/// A [`MetaStore`] backed by a local redb database file.
pub struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
    /// To the writer thread; taken on drop so the thread ends.
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    reads: Arc<Reads>,
    /// Groups of commits the journal replayed at open.
    replayed: u64,
    /// Dropped last of all (fields drop in order, after `Drop::drop`), so
    /// its receivers learn the database is closed and its file free.
    closed: watch::Sender<()>,
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        drop(self.jobs.take());
        // The writer thread and the reads on the blocking pool hold the
        // database: wait for them, so the file can be opened again as soon
        // as this store is gone.
        if let Some(thread) = self.writer.take() {
            let _ = thread.join();
        }
        self.reads.wait_for_none();
    }
}

/// Reads running (or queued) on the blocking pool. A read whose caller
/// went away, a pass abandoned at shutdown say, still runs to its end
/// holding the database, and while it does the file cannot be opened
/// again (an engine reopened in the same process failed so).
#[derive(Default)]
struct Reads {
    running: Mutex<usize>,
    none: Condvar,
}

/// One read from its spawn to the end of its closure, holding the
/// database; whether the closure ran or was dropped unrun (a runtime
/// shutting down), the database is let go before the read counts as ended.
struct ReadGuard {
    db: Option<Arc<Database>>,
    reads: Arc<Reads>,
}

impl ReadGuard {
    fn db(&self) -> &Database {
        // Taken only in `drop`.
        self.db.as_deref().unwrap_or_else(|| unreachable!())
    }
}

/// How long dropping the store waits for a read: any read ends in
/// milliseconds unless the disk hangs, and then the drop goes on, warning.
const READS_WAIT: Duration = Duration::from_secs(30);

impl Reads {
    fn start(self: &Arc<Self>, db: &Arc<Database>) -> ReadGuard {
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        ReadGuard {
            db: Some(db.clone()),
            reads: self.clone(),
        }
    }

    /// Real time, not a `Clock`: this bounds a wait on other threads in a
    /// destructor, which a test's manual clock would never end.
    fn wait_for_none(&self) {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let (running, waited) = self
            .none
            .wait_timeout_while(running, READS_WAIT, |n| *n > 0)
            .unwrap_or_else(PoisonError::into_inner);
        if waited.timed_out() {
            tracing::warn!(
                reads = *running,
                "closing the metadata store with reads still running"
            );
        }
    }
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        drop(self.db.take());
        let mut running = self
            .reads
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *running -= 1;
        if *running == 0 {
            self.reads.none.notify_all();
        }
    }
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The embedded store's page cache unless configured (`metadata.cache_bytes`).
/// redb's own default is 1 GiB, which the message index fills as data is
/// written, so the server's memory would grow with the data it stores.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

impl RedbStore {
    /// Opens (creating if missing, along with its parent directory) the
    /// database at `path` with a page cache of [`DEFAULT_CACHE_BYTES`]. This
    /// blocks on file I/O; call it at startup or from a blocking context.
    pub fn open(path: &Path) -> Result<Arc<RedbStore>, MetaError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`RedbStore::open`] with a page cache of at most `cache_bytes`.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Arc<RedbStore>, MetaError> {
        Self::open_with(path, cache_bytes, Checkpoints::default())
    }

    /// [`RedbStore::open_with_cache`], syncing the B-tree at `checkpoints`.
    /// Opening replays the journal of a store that was not closed cleanly.
    pub fn open_with(
        path: &Path,
        cache_bytes: usize,
        checkpoints: Checkpoints,
    ) -> Result<Arc<RedbStore>, MetaError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| MetaError::Backend(format!("creating {}: {e}", parent.display())))?;
        }
        if checkpoints.groups == 0 || checkpoints.bytes == 0 {
            return Err(MetaError::Invalid(
                "checkpoints need at least 1 group and 1 byte".into(),
            ));
        }
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(backend)?;
        // Create the table up front so read transactions can always open it.
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(KV).map_err(backend)?;
        txn.commit().map_err(backend)?;
        let db = Arc::new(db);
        let writer = Writer::open(Arc::clone(&db), &journal_path(path), checkpoints)?;
        let replayed = writer.replayed;
        tracing::debug!(path = %path.display(), "opened redb metadata store");
        let (jobs, queue) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("strata-meta-writer".into())
            .spawn(move || writer.run(&queue))
            .map_err(|e| MetaError::Backend(format!("starting the metadata writer: {e}")))?;
        Ok(Arc::new(RedbStore {
            db,
            path: path.to_path_buf(),
            jobs: Some(jobs),
            writer: Some(writer),
            reads: Arc::default(),
            replayed,
            closed: watch::channel(()).0,
        }))
    }

    /// Offline repair of a store whose journal is refused as damaged: keeps
    /// the commits before the damage, saves the rest to `<journal>.damaged`
    /// and cuts it off, so the store opens with the state as of the last
    /// commit before the damage. `None` when there was nothing to cut.
    /// Fails while a process has the store open.
    pub fn cut_damaged_journal(path: &Path) -> Result<Option<JournalCut>, MetaError> {
        let db = redb::Builder::new().create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => MetaError::Backend(format!(
                "{} is open in another process: stop the node first",
                path.display()
            )),
            e => backend(e),
        })?;
        cut_damaged_journal(&db, &journal_path(path))
    }

    /// How many groups of commits opening replayed from the journal: 0
    /// after a clean close, which checkpoints.
    pub fn replayed_at_open(&self) -> u64 {
        self.replayed
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Ends once this store is dropped and its database closed, so its
    /// file can be opened again: the last holder of the store may be a
    /// task that drops it a moment after the owner let go.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut closed = self.closed.subscribe();
        async move { while closed.changed().await.is_ok() {} }
    }

    /// Runs `f` with the database on the blocking pool.
    async fn blocking<R, F>(&self, f: F) -> Result<R, MetaError>
    where
        R: Send + 'static,
        F: FnOnce(&Database) -> Result<R, MetaError> + Send + 'static,
    {
        let read = self.reads.start(&self.db);
        tokio::task::spawn_blocking(move || {
            let result = f(read.db());
            drop(read);
            result
        })
        .await
        .map_err(|e| MetaError::Backend(format!("redb task failed: {e}")))?
    }
}

#[async_trait::async_trait]
impl MetaStore for RedbStore {
    fn backend_name(&self) -> &'static str {
        "redb"
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MetaError> {
        validate_key(key)?;
        let key = key.to_vec();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(KV).map_err(backend)?;
            let value = table.get(key.as_slice()).map_err(backend)?;
            Ok(value.map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, MetaError> {
        validate_scan(limit)?;
        if range_is_empty(start, end) {
            return Ok(Vec::new());
        }
        let (start, end) = (start.to_vec(), end.to_vec());
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(KV).map_err(backend)?;
            let upper = if end.is_empty() {
                Bound::Unbounded
            } else {
                Bound::Excluded(end.as_slice())
            };
            let range = table
                .range::<&[u8]>((Bound::Included(start.as_slice()), upper))
                .map_err(backend)?;
            let mut out = Vec::new();
            for entry in range.take(limit) {
                let (k, v) = entry.map_err(backend)?;
                out.push((k.value().to_vec(), v.value().to_vec()));
            }
            Ok(out)
        })
        .await
    }

    async fn commit(&self, txn: Txn) -> Result<TxnOutcome, MetaError> {
        validate_txn(&txn)?;
        let (reply, outcome) = oneshot::channel();
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|j| j.send((txn, reply)).is_ok());
        if !sent {
            return Err(MetaError::Backend(
                "redb: the metadata writer has stopped".into(),
            ));
        }
        outcome
            .await
            .map_err(|_| MetaError::Backend("redb: the metadata writer has stopped".into()))?
    }
}

/// Where the journal of the database at `path` lives.
pub fn journal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read whose caller was cancelled holds the database until it ends;
    /// dropping the store waits for it, and the file opens again at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_store_waits_for_a_read_whose_caller_went_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        let store = RedbStore::open(&path).unwrap();
        let (started_tx, started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let reading = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .blocking(move |_| {
                        let _ = started_tx.send(());
                        let _ = released.recv();
                        Ok(())
                    })
                    .await
            })
        };
        started.recv().unwrap();
        reading.abort();
        assert!(reading.await.unwrap_err().is_cancelled());

        let (dropped_tx, dropped) = mpsc::channel();
        let reopen = std::thread::spawn(move || {
            drop(store);
            let _ = dropped_tx.send(());
            RedbStore::open(&path).map(drop)
        });
        assert_eq!(
            dropped.recv_timeout(Duration::from_millis(200)),
            Err(mpsc::RecvTimeoutError::Timeout),
            "the store was dropped while a read still held its database"
        );
        release.send(()).unwrap();
        reopen.join().unwrap().unwrap();
    }

    /// `closed` ends only once the last holder dropped the store, not when
    /// the first one let go; the file then opens again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closed_ends_once_the_last_holder_dropped_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        let store = RedbStore::open(&path).unwrap();
        let mut closed = Box::pin(store.closed());
        let holder = store.clone();
        drop(store);
        tokio::select! {
            biased;
            _ = &mut closed => panic!("closed while a holder still has the store"),
            _ = std::future::ready(()) => {}
        }
        std::thread::spawn(move || drop(holder)).join().unwrap();
        closed.await;
        RedbStore::open(&path).unwrap();
    }
}
