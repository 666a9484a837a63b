//! [`TimedStore`]: any [`MetaStore`] with its calls counted and timed, so
//! an operator sees how long the metadata service takes to make a commit
//! durable (the embedded store's journal sync, an etcd round trip through
//! raft) next to the WAL's own sync time, and how often commits lose a
//! race (a check that did not hold). The node wraps the store it opens;
//! callers use it as any other store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
    cancelled: AtomicU64,
}

/// What a [`TimedStore`] counted since it was opened. A call the caller
/// gave up on (a pass abandoned at shutdown, a timeout) is timed until
/// then and counted as cancelled; a request the store refused as invalid
/// (an empty key, a zero limit) is the caller's error, not the store's,
/// and is not counted at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaTimings {
    /// Every commit, committed or not, by how long it took.
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
    /// Calls whose caller stopped waiting before they returned.
    pub cancelled: u64,
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

    fn start<'a>(&'a self, histogram: &'a LatencyHistogram) -> Call<'a> {
        Call {
            store: self,
            histogram,
            started: self.clock.monotonic(),
            failed: None,
            done: false,
        }
    }
}

/// One call being timed: recorded when it ends, or when the caller drops
/// it unfinished.
struct Call<'a> {
    store: &'a TimedStore,
    histogram: &'a LatencyHistogram,
    started: Duration,
    /// The counter the outcome adds to, if it failed.
    failed: Option<&'a AtomicU64>,
    done: bool,
}

impl<'a> Call<'a> {
    /// The call returned `result`; `failed` is the counter of an error.
    fn ended<T>(mut self, result: &Result<T, MetaError>, failed: &'a AtomicU64) {
        match result {
            // The caller's mistake, answered before the backend saw it.
            Err(MetaError::Invalid(_)) => {
                self.done = true;
                return;
            }
            Err(_) => self.failed = Some(failed),
            Ok(_) => {}
        }
        self.done = true;
        self.record();
    }

    fn record(&mut self) {
        let took = self.store.clock.monotonic().saturating_sub(self.started);
        self.histogram.record(took);
        if let Some(failed) = self.failed {
            failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.record();
            self.store.counts.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[async_trait::async_trait]
impl MetaStore for TimedStore {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MetaError> {
        let call = self.start(&self.counts.reads);
        let result = self.inner.get(key).await;
        call.ended(&result, &self.counts.failed_reads);
        result
    }

    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, MetaError> {
        let call = self.start(&self.counts.reads);
        let result = self.inner.scan(start, end, limit).await;
        call.ended(&result, &self.counts.failed_reads);
        result
    }

    async fn commit(&self, txn: Txn) -> Result<TxnOutcome, MetaError> {
        let call = self.start(&self.counts.commits);
        let result = self.inner.commit(txn).await;
        if let Ok(TxnOutcome::CheckFailed { .. }) = result {
            self.counts.checks_failed.fetch_add(1, Ordering::Relaxed);
        }
        call.ended(&result, &self.counts.failed_commits);
        result
    }

    async fn compact_history(&self) -> Result<Option<i64>, MetaError> {
        self.inner.compact_history().await
    }

    fn timings(&self) -> Option<MetaTimings> {
        let c = &self.counts;
        Some(MetaTimings {
            commits: c.commits.snapshot(),
            checks_failed: c.checks_failed.load(Ordering::Relaxed),
            failed_commits: c.failed_commits.load(Ordering::Relaxed),
            reads: c.reads.snapshot(),
            failed_reads: c.failed_reads.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
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
    /// a failed check and an error are counted apart from successes, a
    /// request refused as invalid not at all.
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
        assert_eq!(t.commits.count(), 2, "the invalid commit is not counted");
        assert_eq!(t.checks_failed, 1);
        assert_eq!(t.failed_commits, 0);
        assert_eq!(t.reads.count(), 1);
        assert_eq!((t.failed_reads, t.cancelled), (0, 0));
        // A manual clock that nobody moves: every call took no time.
        assert_eq!(t.commits.sum_us, 0);

        // The backend's own failure is counted, and timed.
        let broken = TimedStore::wrap(Arc::new(SlowStore::new(&clock, true)), clock.clone());
        assert!(broken.get(b"k").await.is_err());
        let t = broken.timings().unwrap();
        assert_eq!((t.reads.count(), t.failed_reads), (1, 1));
        assert_eq!(t.reads.sum_us, 3_000);
        assert_eq!(t.reads.counts[6], 1, "3 ms falls in the (2, 5] ms bucket");
    }

    /// A call whose caller stops waiting is timed until then and counted
    /// as cancelled.
    #[tokio::test]
    async fn a_call_given_up_is_counted_as_cancelled() {
        let clock = ManualClock::new(0, 1);
        let store = TimedStore::wrap(Arc::new(SlowStore::new(&clock, false)), clock.clone());
        let mut commit = Box::pin(store.commit(Txn::new().put(b"k".to_vec(), b"v".to_vec())));
        tokio::select! {
            biased;
            _ = &mut commit => panic!("the commit never waits"),
            _ = std::future::ready(()) => {}
        }
        drop(commit);
        let t = store.timings().unwrap();
        assert_eq!(
            (t.commits.count(), t.cancelled, t.failed_commits),
            (1, 1, 0)
        );
    }

    /// A store whose gets take 3 ms of a manual clock (and fail if
    /// `broken`), and whose commits never end.
    #[derive(Debug)]
    struct SlowStore {
        inner: Arc<MemoryStore>,
        clock: Arc<ManualClock>,
        broken: bool,
    }

    impl SlowStore {
        fn new(clock: &Arc<ManualClock>, broken: bool) -> Self {
            Self {
                inner: MemoryStore::new(),
                clock: clock.clone(),
                broken,
            }
        }
    }

    #[async_trait::async_trait]
    impl MetaStore for SlowStore {
        fn backend_name(&self) -> &'static str {
            "slow"
        }
        async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MetaError> {
            self.clock.advance_ms(3);
            if self.broken {
                return Err(MetaError::Backend("the disk is gone".into()));
            }
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
        async fn commit(&self, _txn: Txn) -> Result<TxnOutcome, MetaError> {
            std::future::pending().await
        }
    }
}
