//! Fault injection, so tests can exercise the retry and timeout paths against
//! any backend without a flaky network. Built only for this crate's tests and
//! with the `faults` feature, which production builds leave off.
//!
//! Faults act at the start of each attempt, under the per-attempt timeout:
//! injected latency therefore trips the timeout exactly like a slow server,
//! and an injected error is retried exactly like a real one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ObjectMeta, ObjectStore, PutOptions, PutPayload, PutResult,
};
use strata_common::Clock;

use super::{display_as, pass_through};

/// Test switches shared by every clone of one `Objects`. All off by default.
#[derive(Debug, Default)]
pub struct Faults {
    down: AtomicBool,
    /// `f64` bits of the probability that an attempt fails.
    error_rate: AtomicU64,
    latency_ns: AtomicU64,
}

/// The error an injected fault produces; shown in `Unavailable::reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum InjectedFault {
    #[error("injected fault: store is down")]
    Down,
    #[error("injected fault: random error")]
    Random,
}

impl Faults {
    /// Every attempt fails while `down` is set.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }

    /// Each attempt fails with this probability; clamped to `0..=1` (NaN is 0).
    /// The draw uses `fastrand`'s thread-local generator, which a test may seed.
    pub fn set_error_rate(&self, rate: f64) {
        let rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        self.error_rate.store(rate.to_bits(), Ordering::Relaxed);
    }

    /// Each attempt waits this long (on the store's clock) before doing anything.
    pub fn set_latency(&self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latency_ns.store(ns, Ordering::Relaxed);
    }

    /// Turns every fault off.
    pub fn clear(&self) {
        self.set_down(false);
        self.set_error_rate(0.0);
        self.set_latency(Duration::ZERO);
    }

    /// Applies the configured faults to one attempt.
    async fn before_attempt(&self, clock: &dyn Clock) -> object_store::Result<()> {
        let latency = self.latency_ns.load(Ordering::Relaxed);
        if latency > 0 {
            clock.sleep(Duration::from_nanos(latency)).await;
        }
        let rate = f64::from_bits(self.error_rate.load(Ordering::Relaxed));
        let fault = if self.down.load(Ordering::Relaxed) {
            InjectedFault::Down
        } else if rate > 0.0 && fastrand::f64() < rate {
            InjectedFault::Random
        } else {
            return Ok(());
        };
        Err(object_store::Error::Generic {
            store: "faults",
            source: Box::new(fault),
        })
    }
}

#[derive(Debug)]
pub(crate) struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    faults: Arc<Faults>,
    clock: Arc<dyn Clock>,
}

impl FaultStore {
    pub(crate) fn new(
        inner: Arc<dyn ObjectStore>,
        faults: Arc<Faults>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            inner,
            faults,
            clock,
        }
    }

    /// Runs the faults before the stream's first item is asked of the store.
    fn faulty_stream<T: Send + 'static>(
        &self,
        items: impl FnOnce() -> BoxStream<'static, object_store::Result<T>> + Send + 'static,
    ) -> BoxStream<'static, object_store::Result<T>> {
        let (faults, clock) = (self.faults.clone(), self.clock.clone());
        stream::once(async move {
            match faults.before_attempt(clock.as_ref()).await {
                Ok(()) => items(),
                Err(e) => stream::iter([Err(e)]).boxed(),
            }
        })
        .flatten()
        .boxed()
    }
}

display_as!(FaultStore, "Faults");

#[async_trait::async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.faults.before_attempt(self.clock.as_ref()).await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.faults.before_attempt(self.clock.as_ref()).await?;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let inner = self.inner.clone();
        self.faulty_stream(move || inner.delete_stream(locations))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let (inner, prefix) = (self.inner.clone(), prefix.cloned());
        self.faulty_stream(move || inner.list(prefix.as_ref()))
    }

    pass_through!();
}
