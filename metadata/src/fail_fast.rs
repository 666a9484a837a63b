//! [`FailFastStore`]: a shared metadata store (etcd, TiKV) that stops
//! making every caller wait once it stopped answering.
//!
//! When a cluster loses quorum (or the node is cut off from it), each call
//! waits out the backend's timeouts (etcd: 10 s a request, two for a read)
//! before it fails. A request touching metadata (a receive, an ack, an
//! offset commit, creating a topic) then answered 503 after 10–20 s, and
//! every one of them held a connection that long.
//!
//! So, once a call failed slowly (after [`SLOW_FAILURE`]: the backend timed
//! out rather than refused), the store counts as down: every call fails at
//! once with a [`MetaError::Backend`] that says since when, and a task of
//! its own reads one missing key from the backend every [`PROBE_EVERY`]
//! (each read waiting as long as the backend lets it); the first that gets
//! an answer ends it. Callers never wait on a store known to be down, and
//! learn it is back within about a second. A call that fails at once (a
//! refused connection) changes nothing: it already fails fast.
//!
//! Nothing else changes for callers: a write fence still shuts by the
//! time since its last renewal, and every loop that retries (heartbeats,
//! uploads, balancing) gets its answer sooner. A call failed here was never
//! sent, so it wrote nothing.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use strata_common::Clock;

use crate::store::{MetaError, MetaStore, Txn, TxnOutcome};

/// A failure that took this long was a timeout, not a refusal.
pub const SLOW_FAILURE: Duration = Duration::from_secs(5);
/// While down, the backend is tried this often.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// What a probe reads (nothing stores it).
const PROBE_KEY: &[u8] = b"\0fail-fast-probe";

/// `inner`, failing fast while it does not answer (see the module docs).
#[derive(Debug)]
pub struct FailFastStore {
    inner: Arc<dyn MetaStore>,
    clock: Arc<dyn Clock>,
    /// Since when (monotonic) the backend does not answer, and why.
    down: Arc<Mutex<Option<(Duration, String)>>>,
}

type Down = Mutex<Option<(Duration, String)>>;

fn lock(down: &Down) -> std::sync::MutexGuard<'_, Option<(Duration, String)>> {
    down.lock().unwrap_or_else(|e| e.into_inner())
}

impl FailFastStore {
    pub fn wrap(inner: Arc<dyn MetaStore>, clock: Arc<dyn Clock>) -> Arc<dyn MetaStore> {
        Arc::new(Self {
            inner,
            clock,
            down: Arc::default(),
        })
    }

    /// Fails a call at once while the backend is down; returns when it
    /// started otherwise.
    fn admit(&self) -> Result<Duration, MetaError> {
        let now = self.clock.monotonic();
        match &*lock(&self.down) {
            None => Ok(now),
            Some((since, why)) => Err(MetaError::Backend(format!(
                "the {} metadata store has not answered for {} s (last: {why}); failing at \
                 once until it answers again (tried every second)",
                self.inner.backend_name(),
                now.saturating_sub(*since).as_secs()
            ))),
        }
    }

    /// Notes how a call admitted at `started` ended.
    fn ended<T>(&self, started: Duration, result: &Result<T, MetaError>) {
        let Err(MetaError::Backend(why)) = result else {
            return;
        };
        let now = self.clock.monotonic();
        if now.saturating_sub(started) < SLOW_FAILURE {
            return;
        }
        let mut down = lock(&self.down);
        if down.is_some() {
            return;
        }
        tracing::warn!(error = %why, backend = self.inner.backend_name(),
            "the metadata store stopped answering; failing metadata calls at once until it answers again");
        *down = Some((now, why.clone()));
        drop(down);
        tokio::spawn(probe(
            self.inner.clone(),
            self.clock.clone(),
            Arc::downgrade(&self.down),
        ));
    }
}

/// Reads [`PROBE_KEY`] at once and then every [`PROBE_EVERY`], each read on
/// its own, until one is answered (the store is up again) or the store is
/// dropped.
async fn probe(inner: Arc<dyn MetaStore>, clock: Arc<dyn Clock>, down: Weak<Down>) {
    loop {
        let Some(state) = down.upgrade() else {
            return;
        };
        if lock(&state).is_none() {
            return;
        }
        let (inner_, clock_, down_) = (inner.clone(), clock.clone(), down.clone());
        tokio::spawn(async move {
            if inner_.get(PROBE_KEY).await.is_err() {
                return;
            }
            let Some(state) = down_.upgrade() else {
                return;
            };
            if let Some((since, _)) = lock(&state).take() {
                tracing::info!(
                    down_s = clock_.monotonic().saturating_sub(since).as_secs(),
                    "the metadata store answers again"
                );
            }
        });
        drop(state);
        clock.sleep(PROBE_EVERY).await;
    }
}

#[async_trait::async_trait]
impl MetaStore for FailFastStore {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MetaError> {
        let started = self.admit()?;
        let result = self.inner.get(key).await;
        self.ended(started, &result);
        result
    }

    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, MetaError> {
        let started = self.admit()?;
        let result = self.inner.scan(start, end, limit).await;
        self.ended(started, &result);
        result
    }

    async fn commit(&self, txn: Txn) -> Result<TxnOutcome, MetaError> {
        let started = self.admit()?;
        let result = self.inner.commit(txn).await;
        self.ended(started, &result);
        result
    }

    async fn compact_history(&self) -> Result<Option<i64>, MetaError> {
        let started = self.admit()?;
        let result = self.inner.compact_history().await;
        self.ended(started, &result);
        result
    }

    fn timings(&self) -> Option<crate::MetaTimings> {
        self.inner.timings()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use strata_common::ManualClock;

    use super::*;
    use crate::{MemoryStore, conformance};

    /// A store whose calls, while `hung`, fail after moving the clock on
    /// by `SLOW_FAILURE` (a backend timing out); counts the calls it saw.
    #[derive(Debug)]
    struct Hanging {
        inner: Arc<dyn MetaStore>,
        clock: Arc<ManualClock>,
        hung: AtomicBool,
        refused: AtomicBool,
        calls: AtomicUsize,
    }

    impl Hanging {
        fn call(&self) -> Result<(), MetaError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.refused.load(Ordering::SeqCst) {
                return Err(MetaError::Backend("connection refused".into()));
            }
            if self.hung.load(Ordering::SeqCst) {
                self.clock.advance_ms(SLOW_FAILURE.as_millis() as i64);
                return Err(MetaError::Backend("request timed out".into()));
            }
            Ok(())
        }
    }

    #[async_trait::async_trait]
    impl MetaStore for Hanging {
        fn backend_name(&self) -> &'static str {
            "hanging"
        }
        async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MetaError> {
            self.call()?;
            self.inner.get(key).await
        }
        async fn scan(
            &self,
            start: &[u8],
            end: &[u8],
            limit: usize,
        ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, MetaError> {
            self.call()?;
            self.inner.scan(start, end, limit).await
        }
        async fn commit(&self, txn: Txn) -> Result<TxnOutcome, MetaError> {
            self.call()?;
            self.inner.commit(txn).await
        }
    }

    #[tokio::test]
    async fn a_fail_fast_store_conforms() {
        let clock = ManualClock::new(0, 1);
        conformance::run_all(FailFastStore::wrap(MemoryStore::new(), clock)).await;
    }

    /// Yields to the probe tasks until `store` answers, moving the clock a
    /// second between tries; how many seconds that took.
    async fn seconds_until_up(store: &Arc<dyn MetaStore>, clock: &ManualClock) -> usize {
        for second in 0..10 {
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
            if store.get(b"k").await.is_ok() {
                return second;
            }
            clock.advance_ms(1_000);
        }
        panic!("the store never came back");
    }

    #[tokio::test]
    async fn once_a_call_times_out_calls_fail_at_once_until_a_probe_is_answered() {
        let clock = ManualClock::new(0, 1);
        let backend = Arc::new(Hanging {
            inner: MemoryStore::new(),
            clock: clock.clone(),
            hung: AtomicBool::new(false),
            refused: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
        });
        let store = FailFastStore::wrap(backend.clone(), clock.clone());
        let put = || Txn::new().put(b"k".to_vec(), b"v".to_vec());
        assert_eq!(store.commit(put()).await.unwrap(), TxnOutcome::Committed);

        // Refused at once: nothing to gain, every call still goes through.
        backend.refused.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            assert!(store.get(b"k").await.is_err());
        }
        assert_eq!(backend.calls.load(Ordering::SeqCst), 4);

        // A timeout: from then on calls fail without reaching the backend,
        // whose probes (refused meanwhile) are the only calls it sees.
        backend.refused.store(false, Ordering::SeqCst);
        backend.hung.store(true, Ordering::SeqCst);
        let slow = store.get(b"k").await.unwrap_err().to_string();
        assert!(slow.contains("timed out"), "{slow}");
        backend.hung.store(false, Ordering::SeqCst);
        backend.refused.store(true, Ordering::SeqCst);
        let seen = backend.calls.load(Ordering::SeqCst);
        clock.advance_ms(2_500);
        let fast = store.commit(put()).await.unwrap_err().to_string();
        assert!(fast.contains("has not answered for 2 s"), "{fast}");
        assert!(fast.contains("request timed out"), "{fast}");
        for _ in 0..5 {
            assert!(store.scan(b"", b"", 10).await.is_err());
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        let probes = backend.calls.load(Ordering::SeqCst) - seen;
        assert!((1..=4).contains(&probes), "{probes} probes in 2.5 s");

        // It answers again: the next probe ends it, and calls go through.
        backend.refused.store(false, Ordering::SeqCst);
        assert!(seconds_until_up(&store, &clock).await <= 1);
        assert_eq!(store.get(b"k").await.unwrap(), Some(b"v".to_vec()));
        assert_eq!(store.commit(put()).await.unwrap(), TxnOutcome::Committed);
    }
}
