//! Fault injection, so tests can exercise the retry and timeout paths against
//! any backend without a flaky network.
//!
//! Faults act at the start of each attempt, inside the per-attempt timeout:
//! injected latency therefore trips the timeout exactly like a slow server,
//! and an injected error is retried exactly like a real one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

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
pub(crate) enum InjectedFault {
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
    pub fn set_error_rate(&self, rate: f64) {
        let rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        self.error_rate.store(rate.to_bits(), Ordering::Relaxed);
    }

    /// Each attempt waits this long before doing anything.
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
    pub(crate) async fn before_attempt(&self) -> Result<(), InjectedFault> {
        let latency = self.latency_ns.load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(Duration::from_nanos(latency)).await;
        }
        if self.down.load(Ordering::Relaxed) {
            return Err(InjectedFault::Down);
        }
        let rate = f64::from_bits(self.error_rate.load(Ordering::Relaxed));
        if rate > 0.0 && fastrand::f64() < rate {
            return Err(InjectedFault::Random);
        }
        Ok(())
    }
}
