//! Isolation of cold (object-storage) reads from the hot write path.
//!
//! A consumer replaying an old backlog can issue many large object-storage
//! reads and decompress what they return. Run on the main runtime, that
//! work competes with WAL appends for worker threads and the network. The
//! [`ColdReader`] gives cold reads their own tokio runtime (own OS threads,
//! one by default on a two-core machine), caps how many run at once, and
//! meters their bytes against a token bucket, so a burst of cold reads
//! queues up instead of slowing writes.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_common::task::AbortOnDrop;
use strata_common::{BackgroundRuntime, Clock};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use crate::error::CacheError;

/// Sizing of the cold-read runtime.
#[derive(Debug, Clone)]
pub struct ColdReaderConfig {
    /// Worker threads of the cold runtime, and pieces of CPU work
    /// ([`ColdReader::compute`]) run at once. Must be non-zero.
    pub threads: usize,
    /// Fetches allowed to run at once; also the bound on queued prefetches.
    /// Must be non-zero.
    pub max_concurrent_fetches: usize,
    /// Byte budget per second across all fetches; 0 means unlimited.
    pub bandwidth_bytes_per_sec: u64,
}

impl Default for ColdReaderConfig {
    fn default() -> Self {
        Self {
            threads: 1,
            max_concurrent_fetches: 8,
            bandwidth_bytes_per_sec: 0,
        }
    }
}

/// Counters for status pages and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ColdReaderStats {
    /// Fetches completed through [`ColdReader::run`] (ok or error).
    pub fetches: u64,
    /// Of `fetches`, those that returned an error.
    pub fetch_errors: u64,
    /// Bytes reported by successful fetches.
    pub bytes: u64,
    /// Times a fetch had to wait for the bandwidth budget to refill.
    pub throttled_waits: u64,
    /// Fetches running right now.
    pub in_flight: usize,
    pub prefetches_spawned: u64,
    /// Prefetches refused because too many were already queued.
    pub prefetches_dropped: u64,
    /// Pieces of readers' CPU work run through [`ColdReader::compute`].
    pub cpu_tasks: u64,
}

#[derive(Default)]
struct Counters {
    fetches: AtomicU64,
    fetch_errors: AtomicU64,
    bytes: AtomicU64,
    throttled_waits: AtomicU64,
    in_flight: AtomicUsize,
    prefetches_spawned: AtomicU64,
    prefetches_dropped: AtomicU64,
    prefetches_pending: AtomicUsize,
    cpu_tasks: AtomicU64,
}

/// Byte budget. Tokens may go negative: a fetch's size is only known once it
/// completes, so it is charged afterwards and the debt delays the next
/// fetch. Burst capacity is one second's worth.
struct TokenBucket {
    rate: f64,
    state: Mutex<BucketState>,
    clock: Arc<dyn Clock>,
}

struct BucketState {
    tokens: f64,
    /// When the tokens were last counted, on the clock's monotonic time.
    last: Duration,
}

impl TokenBucket {
    fn new(bytes_per_sec: u64, clock: Arc<dyn Clock>) -> Self {
        let rate = bytes_per_sec as f64;
        Self {
            rate,
            state: Mutex::new(BucketState {
                tokens: rate,
                last: clock.monotonic(),
            }),
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BucketState> {
        // The state is two numbers that are always consistent; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refills and returns how long to wait before the budget is out of
    /// debt, or `None` if a fetch may start now.
    fn delay(&self) -> Option<Duration> {
        let mut state = self.lock();
        let now = self.clock.monotonic();
        let elapsed = now.saturating_sub(state.last).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.rate).min(self.rate);
        state.last = now;
        if state.tokens >= 0.0 {
            None
        } else {
            Some(Duration::from_secs_f64(-state.tokens / self.rate))
        }
    }

    fn charge(&self, bytes: u64) {
        self.lock().tokens -= bytes as f64;
    }
}

struct Shared {
    permits: Arc<Semaphore>,
    /// Pieces of CPU work (`ColdReader::compute`) running at once.
    compute: Arc<Semaphore>,
    bucket: Option<TokenBucket>,
    max_pending_prefetches: usize,
    counters: Counters,
}

impl Shared {
    /// Sleeps (on the cold runtime) until the bandwidth budget allows
    /// another fetch.
    async fn wait_for_budget(&self) {
        let Some(bucket) = &self.bucket else { return };
        while let Some(delay) = bucket.delay() {
            self.counters
                .throttled_waits
                .fetch_add(1, Ordering::Relaxed);
            tracing::trace!(?delay, "cold read throttled by bandwidth budget");
            bucket.clock.sleep(delay).await;
        }
    }
}

/// Keeps `in_flight` and the prefetch queue count right even when a task
/// panics or is aborted.
struct CountGuard<'a>(&'a AtomicUsize);

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs cold reads on a dedicated runtime with a concurrency cap and a
/// bandwidth budget. Share it behind an `Arc`.
///
/// Dropping it shuts the runtime down in the background (never blocking,
/// so it is safe to drop from inside another runtime); cold reads still
/// running are cancelled and their callers get [`CacheError::ColdTask`].
pub struct ColdReader {
    runtime: BackgroundRuntime,
    shared: Arc<Shared>,
}

impl fmt::Debug for ColdReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ColdReader")
            .field("stats", &self.stats())
            .finish()
    }
}

impl ColdReader {
    /// Starts the cold runtime's threads. Does not need to be called from
    /// inside a runtime.
    /// The bandwidth budget refills on `clock`.
    pub fn start(config: &ColdReaderConfig, clock: Arc<dyn Clock>) -> Result<Self, CacheError> {
        if config.threads == 0 {
            return Err(CacheError::InvalidConfig(
                "cold reader threads must be non-zero".into(),
            ));
        }
        if config.max_concurrent_fetches == 0 {
            return Err(CacheError::InvalidConfig(
                "cold reader max_concurrent_fetches must be non-zero".into(),
            ));
        }
        // The lowered priority holds only while the threads doing cold work
        // are few (see `start_bounded`): CPU work is bounded to `threads`
        // pieces by `compute`, and the whole blocking pool (a local store's
        // file reads too) to `threads` threads. A thread per fetch in flight
        // for the file reads was measured too: more of the lowered threads
        // ran at once, producers' p99 with 100 readers rose from 5-7 to
        // 9 ms, and it made about a fifth more GETs (fetches outran the
        // readers, and blocks were evicted before they were read).
        let runtime = BackgroundRuntime::start_bounded(
            "strata-cold-read",
            config.threads,
            config.threads,
            COLD_READ_NICE,
        )
        .map_err(CacheError::Runtime)?;
        let bucket = match config.bandwidth_bytes_per_sec {
            0 => None,
            rate => Some(TokenBucket::new(rate, clock)),
        };
        tracing::info!(
            threads = config.threads,
            max_concurrent_fetches = config.max_concurrent_fetches,
            bandwidth_bytes_per_sec = config.bandwidth_bytes_per_sec,
            "cold reader started"
        );
        Ok(Self {
            runtime,
            shared: Arc::new(Shared {
                permits: Arc::new(Semaphore::new(config.max_concurrent_fetches)),
                compute: Arc::new(Semaphore::new(config.threads)),
                bucket,
                max_pending_prefetches: config.max_concurrent_fetches,
                counters: Counters::default(),
            }),
        })
    }

    /// Handle of the cold runtime, for work that must stay off the hot
    /// runtime but does not fit [`ColdReader::run`].
    pub fn handle(&self) -> &Handle {
        self.runtime.handle()
    }

    /// Runs CPU-bound blocking work for readers (encoding a reply) on the
    /// cold runtime's blocking pool, at most `threads` pieces at once; the
    /// rest wait their turn. Priority alone does not keep readers off the
    /// producers' CPU: the OS weighs each lowered thread on its own, and a
    /// hundred readers encoding at once on a hundred lowered threads
    /// outweighed the two request workers. Awaitable from any runtime.
    pub async fn compute<F, T>(&self, work: F) -> Result<T, CacheError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = self
            .shared
            .compute
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| CacheError::ColdTask("cold compute semaphore closed".into()))?;
        self.shared
            .counters
            .cpu_tasks
            .fetch_add(1, Ordering::Relaxed);
        let task = self.runtime.handle().spawn_blocking(move || {
            let _permit = permit;
            work()
        });
        // A caller that stops waiting (its client went away) takes its work
        // out of the queue; work already running finishes.
        AbortOnDrop(task).await.map_err(|join| {
            CacheError::ColdTask(if join.is_panic() {
                "cold work panicked".into()
            } else {
                "cold work cancelled (cold reader shutting down)".into()
            })
        })
    }

    /// Runs `fetch` on the cold runtime under the concurrency limit and
    /// charges the byte count it reports (the `u64` of its output) to the
    /// bandwidth budget. When the budget is in debt, the next fetch waits
    /// before starting. Awaitable from any runtime; dropping the returned
    /// future cancels the fetch.
    pub async fn run<Fut, T, E>(&self, fetch: Fut) -> Result<T, E>
    where
        Fut: Future<Output = Result<(T, u64), E>> + Send + 'static,
        T: Send + 'static,
        E: From<CacheError> + Send + 'static,
    {
        let shared = self.shared.clone();
        let task = self.runtime.handle().spawn(async move {
            // The semaphore is never closed, so acquiring only fails if that
            // invariant breaks; report it rather than panic.
            let _permit =
                shared.permits.clone().acquire_owned().await.map_err(|_| {
                    E::from(CacheError::ColdTask("cold read semaphore closed".into()))
                })?;
            shared.wait_for_budget().await;
            let counters = &shared.counters;
            counters.in_flight.fetch_add(1, Ordering::Relaxed);
            let _in_flight = CountGuard(&counters.in_flight);
            let result = fetch.await;
            counters.fetches.fetch_add(1, Ordering::Relaxed);
            match result {
                Ok((value, bytes)) => {
                    counters.bytes.fetch_add(bytes, Ordering::Relaxed);
                    if let Some(bucket) = &shared.bucket {
                        bucket.charge(bytes);
                    }
                    Ok(value)
                }
                Err(err) => {
                    counters.fetch_errors.fetch_add(1, Ordering::Relaxed);
                    Err(err)
                }
            }
        });
        match AbortOnDrop(task).await {
            Ok(result) => result,
            Err(join) => {
                let reason = if join.is_panic() {
                    "cold read panicked"
                } else {
                    "cold read cancelled (cold reader shutting down)"
                };
                tracing::warn!(reason, "cold read did not complete");
                Err(E::from(CacheError::ColdTask(reason.into())))
            }
        }
    }

    /// Fire-and-forget read-ahead on the cold runtime, e.g. pulling the next
    /// block into the [`crate::BlockCache`]. Dropped (and counted) when
    /// `max_concurrent_fetches` prefetches are already queued or running:
    /// read-ahead is an optimisation and must not pile up behind a slow
    /// store.
    ///
    /// The prefetch task itself takes no fetch permit, so it may call
    /// [`ColdReader::run`] for its object read (which is then limited and
    /// charged like any other) without deadlocking on the semaphore.
    pub fn spawn_prefetch<Fut>(&self, fut: Fut)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        let counters = &self.shared.counters;
        let admitted = counters
            .prefetches_pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |pending| {
                (pending < self.shared.max_pending_prefetches).then_some(pending + 1)
            })
            .is_ok();
        if !admitted {
            counters.prefetches_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("prefetch dropped: too many queued");
            return;
        }
        counters.prefetches_spawned.fetch_add(1, Ordering::Relaxed);
        let shared = self.shared.clone();
        self.runtime.handle().spawn(async move {
            let _pending = CountGuard(&shared.counters.prefetches_pending);
            fut.await;
        });
    }

    pub fn stats(&self) -> ColdReaderStats {
        let c = &self.shared.counters;
        ColdReaderStats {
            fetches: c.fetches.load(Ordering::Relaxed),
            fetch_errors: c.fetch_errors.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            throttled_waits: c.throttled_waits.load(Ordering::Relaxed),
            in_flight: c.in_flight.load(Ordering::Relaxed),
            prefetches_spawned: c.prefetches_spawned.load(Ordering::Relaxed),
            prefetches_dropped: c.prefetches_dropped.load(Ordering::Relaxed),
            cpu_tasks: c.cpu_tasks.load(Ordering::Relaxed),
        }
    }
}

impl Drop for ColdReader {
    fn drop(&mut self) {
        // The runtime shuts down in the background as it drops.
        tracing::info!("cold reader stopped");
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pace real threads with real sleeps
mod tests {
    use std::fmt;
    use std::thread;

    use strata_common::SystemClock;

    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum TestError {
        Fetch(&'static str),
        Cache(String),
    }

    impl From<CacheError> for TestError {
        fn from(err: CacheError) -> Self {
            Self::Cache(err.to_string())
        }
    }

    impl fmt::Display for TestError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{self:?}")
        }
    }

    fn config(threads: usize, max_concurrent_fetches: usize, bandwidth: u64) -> ColdReaderConfig {
        ColdReaderConfig {
            threads,
            max_concurrent_fetches,
            bandwidth_bytes_per_sec: bandwidth,
        }
    }

    #[tokio::test]
    async fn fetches_run_on_the_cold_runtime_threads() {
        let reader =
            ColdReader::start(&ColdReaderConfig::default(), Arc::new(SystemClock)).expect("start");
        let (id, name) = reader
            .run(async {
                let current = thread::current();
                Ok::<_, TestError>(((current.id(), current.name().map(str::to_owned)), 10))
            })
            .await
            .expect("run");
        assert_ne!(id, thread::current().id());
        assert_eq!(name.as_deref(), Some("strata-cold-read"));
        let stats = reader.stats();
        assert_eq!((stats.fetches, stats.bytes, stats.in_flight), (1, 10, 0));
    }

    /// With one thread, CPU work runs one piece at a time, on a lowered
    /// thread of the cold runtime; waiting pieces wait for a permit, not in
    /// the blocking pool's queue, so other blocking work (a local store's
    /// file read) queued after them runs first; async fetches run beside.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compute_runs_one_piece_per_thread_beside_fetches() {
        use std::sync::mpsc;

        let reader =
            Arc::new(ColdReader::start(&config(1, 4, 0), Arc::new(SystemClock)).expect("start"));
        let order = Arc::new(Mutex::new(Vec::new()));
        let (release, held) = mpsc::channel::<()>();
        let (started, running) = mpsc::channel::<()>();
        let first = tokio::spawn({
            let reader = reader.clone();
            async move {
                reader
                    .compute(move || {
                        started.send(()).expect("started");
                        held.recv().expect("released");
                        (
                            thread::current().name().map(str::to_owned),
                            strata_common::background::current_thread_nice(),
                        )
                    })
                    .await
            }
        });
        tokio::task::spawn_blocking(move || running.recv_timeout(Duration::from_secs(10)))
            .await
            .expect("join")
            .expect("the first piece never ran");
        let second = reader.compute({
            let order = order.clone();
            move || order.lock().unwrap().push("second piece")
        });
        tokio::pin!(second);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut second)
                .await
                .is_err(),
            "a second piece ran beside the first"
        );
        let file_read = reader.handle().spawn_blocking({
            let order = order.clone();
            move || order.lock().unwrap().push("file read")
        });
        // An async fetch (an S3 GET) runs on the worker, beside the CPU work.
        let fetched = tokio::time::timeout(
            Duration::from_secs(10),
            reader.run(async { Ok::<_, TestError>((1u32, 1)) }),
        )
        .await
        .expect("a fetch waited behind CPU work");
        assert_eq!(fetched, Ok(1));
        release.send(()).expect("release");
        let (name, nice) = first.await.expect("join").expect("first");
        assert_eq!(name.as_deref(), Some("strata-cold-read"));
        if cfg!(target_os = "linux") {
            assert!(nice >= COLD_READ_NICE, "nice {nice}");
        }
        file_read.await.expect("file read");
        second.await.expect("second");
        assert_eq!(*order.lock().unwrap(), ["file read", "second piece"]);
        assert_eq!(reader.stats().cpu_tasks, 2);
    }

    /// The caller's runtime needs no timer or I/O driver: the fetch uses the
    /// cold runtime's.
    #[test]
    fn awaitable_from_a_bare_runtime() {
        let reader =
            ColdReader::start(&ColdReaderConfig::default(), Arc::new(SystemClock)).expect("start");
        let bare = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("bare runtime");
        let value = bare
            .block_on(reader.run(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok::<_, TestError>((7u32, 1))
            }))
            .expect("run");
        assert_eq!(value, 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrency_never_exceeds_the_limit() {
        const LIMIT: usize = 3;
        let reader = Arc::new(
            ColdReader::start(&config(2, LIMIT, 0), Arc::new(SystemClock)).expect("start"),
        );
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_seen = Arc::new(AtomicUsize::new(0));

        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20u64 {
            let reader = reader.clone();
            let in_flight = in_flight.clone();
            let max_seen = max_seen.clone();
            tasks.spawn(async move {
                reader
                    .run(async move {
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        max_seen.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, TestError>((i, 100))
                    })
                    .await
            });
        }
        let mut results: Vec<u64> = tasks
            .join_all()
            .await
            .into_iter()
            .map(|r| r.expect("run"))
            .collect();
        results.sort_unstable();

        assert_eq!(results, (0..20).collect::<Vec<_>>());
        let max = max_seen.load(Ordering::SeqCst);
        assert!((1..=LIMIT).contains(&max), "max in flight {max}");
        let stats = reader.stats();
        assert_eq!((stats.fetches, stats.bytes, stats.in_flight), (20, 2000, 0));
    }

    #[tokio::test]
    async fn bandwidth_budget_throttles() {
        const RATE: u64 = 64 << 20;
        let reader = ColdReader::start(&config(1, 4, RATE), Arc::new(SystemClock)).expect("start");
        // The first fetch overdraws the one-second bucket by half a second's
        // worth, so the next one must wait for the refill.
        reader
            .run(async { Ok::<_, TestError>(((), RATE + RATE / 2)) })
            .await
            .expect("first");
        assert_eq!(reader.stats().throttled_waits, 0);
        reader
            .run(async { Ok::<_, TestError>(((), 1)) })
            .await
            .expect("second");
        let stats = reader.stats();
        assert!(stats.throttled_waits > 0, "{stats:?}");
        assert_eq!(stats.bytes, RATE + RATE / 2 + 1);

        let unlimited = ColdReader::start(&config(1, 4, 0), Arc::new(SystemClock)).expect("start");
        for _ in 0..3 {
            unlimited
                .run(async { Ok::<_, TestError>(((), RATE * 10)) })
                .await
                .expect("unlimited");
        }
        assert_eq!(unlimited.stats().throttled_waits, 0);
    }

    #[tokio::test]
    async fn errors_and_panics_reach_the_caller() {
        let reader =
            ColdReader::start(&ColdReaderConfig::default(), Arc::new(SystemClock)).expect("start");
        let err = reader
            .run(async { Err::<((), u64), _>(TestError::Fetch("not found")) })
            .await
            .expect_err("error");
        assert_eq!(err, TestError::Fetch("not found"));

        let err = reader
            .run(async {
                if true {
                    panic!("fetch bug");
                }
                Ok::<((), u64), TestError>(((), 0))
            })
            .await
            .expect_err("panic");
        assert!(
            matches!(err, TestError::Cache(ref m) if m.contains("panicked")),
            "{err:?}"
        );

        let stats = reader.stats();
        assert_eq!(
            (stats.fetches, stats.fetch_errors, stats.in_flight),
            (1, 1, 0)
        );
        // The runtime survives a panicking task.
        let ok = reader.run(async { Ok::<_, TestError>((1u8, 0)) }).await;
        assert_eq!(ok, Ok(1));
    }

    #[tokio::test]
    async fn prefetches_beyond_the_limit_are_dropped() {
        let reader = ColdReader::start(&config(1, 2, 0), Arc::new(SystemClock)).expect("start");
        let gate = Arc::new(Semaphore::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..5 {
            let gate = gate.clone();
            let done = done.clone();
            reader.spawn_prefetch(async move {
                if let Ok(permit) = gate.acquire().await {
                    permit.forget();
                }
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        let stats = reader.stats();
        assert_eq!((stats.prefetches_spawned, stats.prefetches_dropped), (2, 3));

        gate.add_permits(2);
        for _ in 0..500 {
            if done.load(Ordering::SeqCst) == 2
                && reader
                    .shared
                    .counters
                    .prefetches_pending
                    .load(Ordering::SeqCst)
                    == 0
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(done.load(Ordering::SeqCst), 2);

        // Slots free up once queued prefetches finish.
        let (tx, rx) = tokio::sync::oneshot::channel();
        reader.spawn_prefetch(async move {
            let _ = tx.send(thread::current().id());
        });
        let id = rx.await.expect("prefetch ran");
        assert_ne!(id, thread::current().id());
        assert_eq!(reader.stats().prefetches_spawned, 3);
    }

    /// A prefetch that reads through `run` does not deadlock on the
    /// concurrency limit, even with a single permit.
    #[tokio::test]
    async fn prefetch_may_call_run() {
        let reader =
            Arc::new(ColdReader::start(&config(1, 1, 0), Arc::new(SystemClock)).expect("start"));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let inner = reader.clone();
        reader.spawn_prefetch(async move {
            let got = inner.run(async { Ok::<_, TestError>((5u8, 5)) }).await;
            let _ = tx.send(got);
        });
        assert_eq!(rx.await.expect("prefetch ran"), Ok(5));
        // `inner` lives in the finished prefetch task; drop ours here, inside
        // the test's runtime.
    }

    #[tokio::test]
    async fn dropping_inside_a_runtime_does_not_panic() {
        let reader =
            ColdReader::start(&config(1, 2, 1 << 20), Arc::new(SystemClock)).expect("start");
        reader
            .run(async { Ok::<_, TestError>(((), 10)) })
            .await
            .expect("run");
        // Leave work running on the cold runtime when it is dropped.
        reader.spawn_prefetch(async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        drop(reader);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        for bad in [config(0, 1, 0), config(1, 0, 0)] {
            let err = ColdReader::start(&bad, Arc::new(SystemClock)).expect_err("invalid");
            assert!(matches!(err, CacheError::InvalidConfig(_)), "{err}");
        }
    }
}

/// Nice levels cold-read threads run below the server's: when CPU is short, the OS runs the threads
/// that acknowledge producers first and catch-up reads with what is left.
pub const COLD_READ_NICE: i32 = 10;

#[cfg(all(test, target_os = "linux"))]
mod priority_tests {
    use super::*;

    #[tokio::test]
    async fn cold_read_threads_run_at_lower_priority() {
        let reader = ColdReader::start(
            &ColdReaderConfig {
                threads: 1,
                max_concurrent_fetches: 1,
                bandwidth_bytes_per_sec: 0,
            },
            Arc::new(strata_common::SystemClock),
        )
        .unwrap();
        let nice = reader
            .run(async {
                Ok::<_, CacheError>((strata_common::background::current_thread_nice(), 0))
            })
            .await
            .unwrap();
        assert!(nice >= COLD_READ_NICE, "cold-read thread nice {nice}");
    }
}
