//! Time and randomness, passed in so tests can control both.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Source of wall-clock time and randomness for the whole process.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A uniformly random 64-bit number.
    fn random_u64(&self) -> u64;
}

/// The real clock and an unseeded random generator.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    fn random_u64(&self) -> u64 {
        fastrand::u64(..)
    }
}

/// A clock that moves only when a test tells it to, with seeded randomness.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicI64,
    rng: Mutex<fastrand::Rng>,
}

impl ManualClock {
    pub fn new(start_ms: i64, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            now_ms: AtomicI64::new(start_ms),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        })
    }

    pub fn advance_ms(&self, delta: i64) {
        self.now_ms.fetch_add(delta, Ordering::SeqCst);
    }

    pub fn set_ms(&self, now: i64) {
        self.now_ms.store(now, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn random_u64(&self) -> u64 {
        match self.rng.lock() {
            Ok(mut rng) => rng.u64(..),
            Err(poisoned) => poisoned.into_inner().u64(..),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000, 7);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance_ms(250);
        assert_eq!(clock.now_ms(), 1_250);
        clock.set_ms(5);
        assert_eq!(clock.now_ms(), 5);
    }

    #[test]
    fn manual_clock_randomness_is_seeded() {
        let a = ManualClock::new(0, 42);
        let b = ManualClock::new(0, 42);
        assert_eq!(a.random_u64(), b.random_u64());
    }
}
