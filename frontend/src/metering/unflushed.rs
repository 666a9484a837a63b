//! Usage a node could not write when it stopped (the metadata store
//! unreachable at its last flush), kept in its data directory until a later
//! start, or the node adopting the directory, writes it.
//!
//! One file per process incarnation: `<data_dir>/usage-unflushed/<incarnation>.json`,
//! a JSON [`UnflushedUsage`] written to a temporary name, synced and renamed,
//! so a file is either whole or absent. Its values are absolute per minute
//! under the stopped process's own node and incarnation, so writing a file
//! twice (a crash between writing it and removing it) changes nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use strata_tenancy::{UnflushedUsage, UsageLedger};

/// The directory under a data directory that holds unflushed usage.
const DIR: &str = "usage-unflushed";

/// Flushes everything `ledger` holds; if that fails, or `give_up` ends
/// first (the store unreachable: a flush would wait out its timeouts), keeps
/// it in `data_dir`. What a stopping node calls last.
pub async fn flush_or_keep(
    ledger: &UsageLedger,
    data_dir: &Path,
    give_up: impl std::future::Future<Output = ()>,
) {
    // A flush dropped mid-write puts what it took back (`UsageLedger`), and
    // values are absolute per minute, so keeping after a write that landed
    // after all counts nothing twice.
    let error = tokio::select! {
        biased;
        flushed = ledger.flush() => match flushed {
            Ok(s) => {
                tracing::info!(records = s.records, "final usage flush");
                return;
            }
            Err(e) => e.to_string(),
        },
        () = give_up => "the metadata store did not answer before this node's lease lapsed".to_string(),
    };
    let left = ledger.unflushed();
    if left.records.is_empty() {
        return;
    }
    let records = left.records.len();
    let dir = data_dir.join(DIR);
    match tokio::task::spawn_blocking(move || keep(&dir, &left)).await {
        Ok(Ok(path)) => tracing::warn!(
            error = %error,
            records,
            file = %path.display(),
            "final usage flush failed; kept the usage in the data directory for the next start to write"
        ),
        Ok(Err(e)) => tracing::error!(
            flush_error = %error,
            error = %e,
            records,
            "final usage flush failed and keeping it in the data directory failed too; this node's usage since its last flush is lost"
        ),
        Err(e) => tracing::error!(error = %e, "keeping unflushed usage panicked"),
    }
}

/// Writes every file of unflushed usage in `data_dir` through `ledger`,
/// removing each once written. True when none is left.
pub async fn write_kept(ledger: &UsageLedger, data_dir: &Path) -> bool {
    let dir = data_dir.join(DIR);
    let files = match tokio::task::spawn_blocking(move || read_all(&dir)).await {
        Ok(Ok(files)) => files,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "reading unflushed usage failed; will retry");
            return false;
        }
        Err(e) => {
            tracing::error!(error = %e, "reading unflushed usage panicked");
            return false;
        }
    };
    let mut all = true;
    for (path, left) in files {
        if let Err(e) = ledger.write_unflushed(&left).await {
            tracing::warn!(error = %e, file = %path.display(), "writing unflushed usage failed; will retry");
            all = false;
            continue;
        }
        let shown = path.display().to_string();
        match tokio::task::spawn_blocking(move || remove(&path)).await {
            Ok(Ok(())) => tracing::info!(
                file = %shown,
                records = left.records.len(),
                "wrote usage a stopped process could not"
            ),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, file = %shown, "removing written usage failed (writing it again changes nothing)");
                all = false;
            }
            Err(e) => {
                tracing::error!(error = %e, "removing written usage panicked");
                all = false;
            }
        }
    }
    all
}

fn keep(dir: &Path, left: &UnflushedUsage) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{}.json", left.incarnation));
    let tmp = dir.join(format!("{}.json.tmp", left.incarnation));
    let body = serde_json::to_vec(left).map_err(std::io::Error::other)?;
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&body)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(path)
}

/// Every whole file (temporaries of an interrupted write are skipped: the
/// usage they hold was lost with that process, as in any crash).
fn read_all(dir: &Path) -> std::io::Result<Vec<(PathBuf, UnflushedUsage)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let body = std::fs::read(&path)?;
        match serde_json::from_slice::<UnflushedUsage>(&body) {
            Ok(left) => out.push((path, left)),
            Err(e) => tracing::error!(
                error = %e,
                file = %path.display(),
                "unflushed usage file is not readable; left in place"
            ),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn remove(path: &Path) -> std::io::Result<()> {
    std::fs::remove_file(path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use strata_common::usage::{Counter, Meter};
    use strata_common::{Clock, ManualClock};
    use strata_metadata::{
        Catalog, CommitHook, HookedStore, MemoryStore, MetaError, MetaStore, Txn,
    };
    use strata_tenancy::Granularity;

    use super::*;

    /// Commits fail while `down` is set (an unreachable etcd), and never
    /// answer while `stalled` is (etcd without quorum).
    #[derive(Debug, Default)]
    struct Outage {
        down: AtomicBool,
        stalled: AtomicBool,
    }

    #[async_trait::async_trait]
    impl CommitHook for Outage {
        async fn before_commit(&self, _: &Arc<dyn MetaStore>, _: &Txn) -> Result<(), MetaError> {
            if self.stalled.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            if self.down.load(Ordering::SeqCst) {
                return Err(MetaError::Backend("connection refused".into()));
            }
            Ok(())
        }
    }

    const NOW_MS: i64 = 1_700_000_000_000;

    async fn published(ledger: &UsageLedger, clock: &Arc<ManualClock>) -> u64 {
        let counts = ledger
            .query(
                "acme",
                NOW_MS - 3_600_000,
                clock.now_ms() + 60_000,
                Granularity::Hour,
            )
            .await
            .unwrap();
        counts.iter().map(|b| b.counts.published_messages).sum()
    }

    #[tokio::test]
    async fn usage_of_a_stop_during_an_outage_is_written_by_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(NOW_MS, 1);
        let store = HookedStore::new(MemoryStore::new(), Outage::default());
        let ledger = |store: Arc<dyn MetaStore>| {
            let meter = Arc::new(Meter::new(clock.clone() as Arc<dyn Clock>));
            UsageLedger::new(
                Catalog::new(store),
                meter,
                clock.clone() as Arc<dyn Clock>,
                "n1",
            )
        };
        let stopping = ledger(store.clone());
        stopping.meter().add("acme", Counter::PublishedMessages, 5);
        stopping.flush().await.unwrap();
        // Two minutes more: one sealed by the failed flush, one still open.
        stopping.meter().add("acme", Counter::PublishedMessages, 7);
        clock.advance_ms(60_000);
        stopping.meter().add("acme", Counter::PublishedMessages, 11);
        store.hook().down.store(true, Ordering::SeqCst);
        flush_or_keep(&stopping, dir.path(), std::future::pending()).await;
        assert_eq!(std::fs::read_dir(dir.path().join(DIR)).unwrap().count(), 1);

        let file = std::fs::read_dir(dir.path().join(DIR))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let copy: UnflushedUsage = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();

        // A start while the store is still down writes nothing and keeps the file.
        let started = ledger(store.clone());
        assert!(!write_kept(&started, dir.path()).await);
        assert!(file.exists());
        store.hook().down.store(false, Ordering::SeqCst);
        assert_eq!(published(&started, &clock).await, 5);
        assert!(write_kept(&started, dir.path()).await);
        assert_eq!(published(&started, &clock).await, 23);
        assert!(!file.exists());

        // Written twice (a crash before the removal): counted once.
        keep(&dir.path().join(DIR), &copy).unwrap();
        assert!(write_kept(&started, dir.path()).await);
        assert_eq!(published(&started, &clock).await, 23);
    }

    #[tokio::test]
    async fn a_flush_the_store_never_answers_is_given_up_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(NOW_MS, 1);
        let store = HookedStore::new(MemoryStore::new(), Outage::default());
        let ledger = UsageLedger::new(
            Catalog::new(store.clone()),
            Arc::new(Meter::new(clock.clone() as Arc<dyn Clock>)),
            clock.clone() as Arc<dyn Clock>,
            "n1",
        );
        ledger.meter().add("acme", Counter::PublishedMessages, 5);
        clock.advance_ms(60_000);
        ledger.meter().add("acme", Counter::PublishedMessages, 7);
        store.hook().stalled.store(true, Ordering::SeqCst);
        // The lease lapsed while the flush waits: without giving up, this
        // would wait for as long as the store does not answer.
        let (lapsed, lapse) = tokio::sync::oneshot::channel::<()>();
        let stop = flush_or_keep(&ledger, dir.path(), async {
            let _ = lapse.await;
        });
        tokio::pin!(stop);
        assert!(futures::poll!(&mut stop).is_pending());
        lapsed.send(()).unwrap();
        stop.await;
        assert_eq!(std::fs::read_dir(dir.path().join(DIR)).unwrap().count(), 1);

        store.hook().stalled.store(false, Ordering::SeqCst);
        assert_eq!(published(&ledger, &clock).await, 0);
        assert!(write_kept(&ledger, dir.path()).await);
        assert_eq!(published(&ledger, &clock).await, 12);
    }
}
