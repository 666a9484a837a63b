//! Time and randomness, passed in so tests can control both.
//!
//! Every wait in the server (long polls, retry backoff, timers, ticks) sleeps
//! on the [`Clock`] it was given, and every duration it measures reads the
//! clock's [`monotonic`](Clock::monotonic) time. With a [`ManualClock`] a test
//! decides when a timer fires. `clippy.toml` forbids the direct calls
//! (`tokio::time::sleep`, `Instant::now`, ...) outside this module.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// A sleep in progress: completes once its time has passed on its clock.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Source of time, timers and randomness for the whole process.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A uniformly random 64-bit number.
    fn random_u64(&self) -> u64;
    /// Time since an arbitrary fixed origin that never goes backwards: the
    /// one to measure durations and deadlines with.
    fn monotonic(&self) -> Duration;
    /// Completes once `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// `future`'s output, or `None` if `duration` passes on the clock first
/// (the future is then dropped).
pub async fn timeout<F: Future>(
    clock: &dyn Clock,
    duration: Duration,
    future: F,
) -> Option<F::Output> {
    tokio::select! {
        biased; // a future that is ready wins a tie with the deadline
        out = future => Some(out),
        () = clock.sleep(duration) => None,
    }
}

/// The real clock and an unseeded random generator.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[allow(clippy::disallowed_methods)] // the one place the real clock is read
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

    fn monotonic(&self) -> Duration {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that moves only when a test tells it to, with seeded randomness.
/// Its sleeps end when the test moves the time past them, never on their own.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: watch::Sender<i64>,
    start_ms: i64,
    rng: Mutex<fastrand::Rng>,
}

impl ManualClock {
    pub fn new(start_ms: i64, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            now_ms: watch::Sender::new(start_ms),
            start_ms,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        })
    }

    /// Moves the time forward, waking every sleep that falls due.
    pub fn advance_ms(&self, delta: i64) {
        self.now_ms.send_modify(|now| *now += delta);
    }

    /// Sets the wall-clock time. Moving it backwards is allowed (clocks
    /// jump); [`Clock::monotonic`] then stays where it was until the time
    /// passes it again.
    pub fn set_ms(&self, now: i64) {
        self.now_ms.send_modify(|at| *at = now);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        *self.now_ms.borrow()
    }

    fn monotonic(&self) -> Duration {
        let ms = (self.now_ms() - self.start_ms).max(0);
        Duration::from_millis(ms as u64)
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        // Rounded up, so a sleep never ends before its whole duration passed.
        let ms = duration.as_nanos().div_ceil(1_000_000);
        let deadline = self
            .now_ms()
            .saturating_add(i64::try_from(ms).unwrap_or(i64::MAX));
        let mut now = self.now_ms.subscribe();
        Box::pin(async move {
            // An error means the clock is gone, and with it anything to wait for.
            let _ = now.wait_for(|now| *now >= deadline).await;
        })
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

    #[tokio::test]
    async fn manual_sleep_ends_only_when_time_passes_it() {
        let clock = ManualClock::new(1_000, 7);
        let mut sleep = clock.sleep(Duration::from_micros(1_500));
        let poll = |sleep: &mut Sleep| {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            sleep.as_mut().poll(&mut cx).is_ready()
        };
        assert!(!poll(&mut sleep));
        clock.advance_ms(1);
        assert!(!poll(&mut sleep), "1.5 ms rounds up to 2 ms");
        clock.advance_ms(1);
        assert!(poll(&mut sleep));
        assert_eq!(clock.monotonic(), Duration::from_millis(2));
        let dyn_clock: &dyn Clock = clock.as_ref();
        assert_eq!(
            timeout(dyn_clock, Duration::ZERO, async { 5 }).await,
            Some(5)
        );
        let never = std::future::pending::<()>();
        let waited = timeout(dyn_clock, Duration::from_millis(10), never);
        let advance = async {
            tokio::task::yield_now().await;
            clock.advance_ms(10);
        };
        let (waited, ()) = tokio::join!(waited, advance);
        assert_eq!(waited, None);
    }

    #[test]
    fn manual_clock_randomness_is_seeded() {
        let a = ManualClock::new(0, 42);
        let b = ManualClock::new(0, 42);
        assert_eq!(a.random_u64(), b.random_u64());
    }
}
