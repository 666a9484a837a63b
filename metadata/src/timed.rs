//! [`TimedStore`]: any [`MetaStore`] with its calls counted and timed, so
//! an operator sees how long the metadata service takes to make a commit
//! durable (the embedded store's journal sync, an etcd round trip through
//! raft) next to the WAL's own sync time, and how often commits lose a
//! race (a check that did not hold). The node wraps the store it opens;
//! callers use it as any other store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use strata_common::{Clock, LatencyHistogram, LatencySnapshot};

use crate::store::{MetaError, MetaStore, Txn, TxnOutcome};

/// `inner`, timed on `clock`.
#[derive(Debug)]
pub struct TimedStore {
    inner: Arc<dyn MetaStore>,
    clock: Arc<dyn Clock>,
    counts: Counts,
}

#[derive(Debug, Default)]
struct Counts {
    commits: LatencyHistogram,
    reads: LatencyHistogram,
    checks_failed: AtomicU64,
    failed_commits: AtomicU64,
    failed_reads: AtomicU64,
}

/// What a [`TimedStore`] counted since it was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaTimings {
    /// The backend's name ("redb", "etcd", ...).
    pub backend: &'static str,
    /// Every commit that returned, committed or not, by how long it took.
    pub commits: LatencySnapshot,
    /// Commits that wrote nothing because a check did not hold (a lost
    /// race, a fenced owner).
    pub checks_failed: u64,
    /// Commits that returned an error.
    pub failed_commits: u64,
    /// Gets and scans (one page each), by how long they took.
    pub reads: LatencySnapshot,
    /// Gets and scans that returned an error.
    pub failed_reads: u64,
}

impl TimedStore {
    /// `inner`, timed on `clock`. A store that is timed already is
    /// returned as it is, so wrapping twice never counts a call twice.
    pub fn wrap(inner: Arc<dyn MetaStore>, clock: Arc<dyn Clock>) -> Arc<dyn MetaStore> {
        if inner.timings().is_some() {
            return inner;
        }
        Arc::new(TimedStore {
            inner,
            clock,
            counts: Counts::default(),
        })
    }

    fn read_done<T>(&self, started: std::time::Duration, result: &Result<T, MetaError>) {
        self.counts
            .reads
            .record(self.clock.monotonic().saturating_sub(started));
        if result.is_err() {
            self.counts.failed_reads.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[async_trait::async_trait]
impl MetaStore for TimedStore {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MetaError> {
        let started = self.clock.monotonic();
        let result = self.inner.get(key).await;
        self.read_done(started, &result);
        result
    }

    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, MetaError> {
        let started = self.clock.monotonic();
        let result = self.inner.scan(start, end, limit).await;
        self.read_done(started, &result);
        result
    }

    async fn commit(&self, txn: Txn) -> Result<TxnOutcome, MetaError> {
        let started = self.clock.monotonic();
        let result = self.inner.commit(txn).await;
        self.counts
            .commits
            .record(self.clock.monotonic().saturating_sub(started));
        let failed = match result {
            Ok(TxnOutcome::Committed) => None,
            Ok(TxnOutcome::CheckFailed { .. }) => Some(&self.counts.checks_failed),
            Err(_) => Some(&self.counts.failed_commits),
        };
        if let Some(failed) = failed {
            failed.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn compact_history(&self) -> Result<Option<i64>, MetaError> {
        self.inner.compact_history().await
    }

    fn timings(&self) -> Option<MetaTimings> {
        Some(MetaTimings {
            backend: self.inner.backend_name(),
            commits: self.counts.commits.snapshot(),
            checks_failed: self.counts.checks_failed.load(Ordering::Relaxed),
            failed_commits: self.counts.failed_commits.load(Ordering::Relaxed),
            reads: self.counts.reads.snapshot(),
            failed_reads: self.counts.failed_reads.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use strata_common::ManualClock;

    use super::*;
    use crate::store::Check;
    use crate::{MemoryStore, conformance};

    #[tokio::test]
    async fn a_timed_store_conforms() {
        let clock = ManualClock::new(0, 1);
        conformance::run_all(TimedStore::wrap(MemoryStore::new(), clock)).await;
    }

    /// Each call lands in its histogram with the time it took on the clock;
    /// a failed check and an error are counted apart from successes.
    #[tokio::test]
    async fn calls_are_timed_and_failures_counted() {
        let clock = ManualClock::new(0, 1);
        let store = TimedStore::wrap(MemoryStore::new(), clock.clone());
        let untimed: Arc<dyn MetaStore> = MemoryStore::new();
        assert_eq!(untimed.timings(), None);
        assert!(
            Arc::ptr_eq(&store, &TimedStore::wrap(store.clone(), clock.clone())),
            "wrapping a timed store again must not count its calls twice"
        );

        let put = Txn::new().put(b"k".to_vec(), b"v".to_vec());
        assert_eq!(store.commit(put).await.unwrap(), TxnOutcome::Committed);
        let stale = Txn::new()
            .check(Check::Absent { key: b"k".to_vec() })
            .put(b"k".to_vec(), b"w".to_vec());
        assert!(matches!(
            store.commit(stale).await.unwrap(),
            TxnOutcome::CheckFailed { .. }
        ));
        let empty_key = Txn::new().put(Vec::new(), b"v".to_vec());
        assert!(store.commit(empty_key).await.is_err());
        assert_eq!(store.get(b"k").await.unwrap(), Some(b"v".to_vec()));
        assert!(store.scan(b"a", b"z", 0).await.is_err());

        let t = store.timings().unwrap();
        assert_eq!(t.backend, "memory");
        assert_eq!(t.commits.count(), 3);
        assert_eq!(t.checks_failed, 1);
        assert_eq!(t.failed_commits, 1);
        assert_eq!(t.reads.count(), 2);
        assert_eq!(t.failed_reads, 1);

        // A call's time is the clock's advance while it ran: a manual clock
        // that nobody moves records nothing but zeros.
        assert_eq!(t.commits.sum_us, 0);
        let slow = SlowStore {
            inner: MemoryStore::new(),
            clock: clock.clone(),
        };
        let store = TimedStore::wrap(Arc::new(slow), clock.clone());
        store.get(b"k").await.unwrap();
        let t = store.timings().unwrap();
        assert_eq!(t.reads.sum_us, 3_000);
        assert_eq!(t.reads.counts[6], 1, "3 ms falls in the (2, 5] ms bucket");
    }

    /// A store whose reads take 3 ms of a manual clock.
    #[derive(Debug)]
    struct SlowStore {
        inner: Arc<MemoryStore>,
        clock: Arc<ManualClock>,
    }

    #[async_trait::async_trait]
    impl MetaStore for SlowStore {
        fn backend_name(&self) -> &'static str {
            "slow"
        }
        async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MetaError> {
            self.clock.advance_ms(3);
            self.inner.get(key).await
        }
        async fn scan(
            &self,
            start: &[u8],
            end: &[u8],
            limit: usize,
        ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, MetaError> {
            self.inner.scan(start, end, limit).await
        }
        async fn commit(&self, txn: Txn) -> Result<TxnOutcome, MetaError> {
            self.inner.commit(txn).await
        }
    }
}
