//! Measurement primitives: latency histograms (microseconds), per-task
//! counters, and the rate arithmetic the reports use.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency a histogram tracks: one hour, in µs. Larger values are
/// clamped (recorded as the maximum) rather than dropped.
const MAX_TRACKABLE_US: u64 = 3_600_000_000;

/// An HDR histogram of latencies in microseconds, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    pub fn new() -> Self {
        // The bounds are constants that HdrHistogram accepts (low >= 1,
        // high >= 2 * low, 3 significant figures), so this cannot fail.
        let hist = Histogram::new_with_bounds(1, MAX_TRACKABLE_US, 3)
            .expect("constant histogram bounds are valid");
        Self { hist }
    }

    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.hist.saturating_record(us.max(1));
    }

    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, and saturating on overflow of the
        // trackable range cannot happen for equal bounds.
        let _ = self.hist.add(&other.hist);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    pub fn reset(&mut self) {
        self.hist.reset();
    }

    /// The value at `quantile` (0.0..=1.0), in microseconds; 0 when empty.
    pub fn quantile_us(&self, quantile: f64) -> u64 {
        if self.hist.is_empty() {
            0
        } else {
            self.hist.value_at_quantile(quantile)
        }
    }

    /// (quantile, milliseconds) at the quantiles of a percentile chart,
    /// up to the largest one the sample count supports; empty when empty.
    pub fn spectrum(&self) -> Vec<(f64, f64)> {
        const QUANTILES: [f64; 11] = [
            0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99995, 0.99999,
        ];
        let n = self.hist.len() as f64;
        QUANTILES
            .iter()
            .filter(|&&q| n * (1.0 - q) >= 1.0 || q == 0.5)
            .filter(|_| n > 0.0)
            .map(|&q| (q, self.hist.value_at_quantile(q) as f64 / 1000.0))
            .collect()
    }

    pub fn summary(&self) -> LatencySummary {
        if self.hist.is_empty() {
            return LatencySummary::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            p50: ms(self.hist.value_at_quantile(0.50)),
            p90: ms(self.hist.value_at_quantile(0.90)),
            p99: ms(self.hist.value_at_quantile(0.99)),
            p999: ms(self.hist.value_at_quantile(0.999)),
            p9999: ms(self.hist.value_at_quantile(0.9999)),
            max: ms(self.hist.max()),
            mean: self.hist.mean() / 1000.0,
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    /// p99.99 (absent in reports written before it was added).
    #[serde(default)]
    pub p9999: f64,
    pub max: f64,
    pub mean: f64,
}

/// What one worker task measured. Each task owns one behind its own mutex,
/// so recording is uncontended; the progress reporter and the final merge
/// lock it briefly.
#[derive(Debug, Default)]
pub struct TaskStats {
    /// Acknowledgement latency of successful requests in the measured window.
    pub latency: Latency,
    /// Successful-request latency since the last progress line (warm-up included).
    pub interval: Latency,
    /// Messages acknowledged since the last progress line.
    pub interval_messages: u64,
    /// Successful requests / messages / payload bytes in the measured window.
    pub requests: u64,
    pub messages: u64,
    pub bytes: u64,
    /// Failed requests in the measured window, by kind ("503 WAL_FULL", "timeout", ...).
    pub errors: BTreeMap<String, u64>,
    /// Failed requests during warm-up (not in `errors`).
    pub warmup_errors: u64,
    /// Messages whose fixed-rate send slot fell in the measured window but that
    /// were never sent because the level ended first (the sender was behind).
    pub unsent_messages: u64,
    /// When the last measured request completed.
    pub last_completion: Option<Instant>,
}

impl TaskStats {
    pub fn record_success(&mut self, measured: bool, latency: Duration, messages: u64, bytes: u64) {
        self.interval.record(latency);
        self.interval_messages += messages;
        if measured {
            self.latency.record(latency);
            self.requests += 1;
            self.messages += messages;
            self.bytes += bytes;
        }
    }

    /// Notes that a measured request (successful or not) completed at `at`.
    pub fn completed_at(&mut self, at: Instant) {
        self.last_completion = Some(self.last_completion.map_or(at, |t| t.max(at)));
    }

    pub fn record_error(&mut self, measured: bool, kind: &str) {
        if measured {
            *self.errors.entry(kind.to_string()).or_default() += 1;
        } else {
            self.warmup_errors += 1;
        }
    }

    /// Adds `other`'s measured-window numbers (not the interval ones) to `self`.
    pub fn merge(&mut self, other: &TaskStats) {
        self.latency.merge(&other.latency);
        self.requests += other.requests;
        self.messages += other.messages;
        self.bytes += other.bytes;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
        self.warmup_errors += other.warmup_errors;
        self.unsent_messages += other.unsent_messages;
        if let Some(at) = other.last_completion {
            self.completed_at(at);
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// `count` per second over `elapsed`; 0 for an empty interval.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        0.0
    } else {
        count as f64 / secs
    }
}

/// Payload throughput in MiB/s (2^20 bytes per second).
pub fn mib_per_second(bytes: u64, elapsed: Duration) -> f64 {
    per_second(bytes, elapsed) / (1024.0 * 1024.0)
}

/// Fixed-rate schedule: how many send slots `phase + k * interval`
/// (k = 0, 1, ...) fall strictly before `offset`. A zero interval has none.
pub fn slots_before(offset: Duration, phase: Duration, interval: Duration) -> u64 {
    let interval = interval.as_nanos();
    if interval == 0 || offset <= phase {
        return 0;
    }
    let span = (offset - phase).as_nanos();
    u64::try_from(span.div_ceil(interval)).unwrap_or(u64::MAX)
}

/// Offset of fixed-rate slot `k`: `phase + k * interval`, saturating.
pub fn slot_offset(k: u64, phase: Duration, interval: Duration) -> Duration {
    let nanos = interval.as_nanos().saturating_mul(u128::from(k));
    let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
    phase.saturating_add(Duration::from_nanos(nanos))
}

/// A send loop's window: when it starts, when measuring starts, when it ends.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: tokio::time::Instant,
    pub warm_end: tokio::time::Instant,
    pub end: tokio::time::Instant,
}

/// A sending task's schedule: its window and pacing, and the message
/// budget it shares with the phase's other tasks.
#[derive(Debug)]
pub struct Schedule<'a> {
    pub window: Window,
    pub pacing: Option<Duration>,
    pub phase: Duration,
    /// Messages per request.
    pub batch: u64,
    /// Messages claimed by every task so far, and the most they may claim.
    pub claimed: &'a AtomicU64,
    pub max_messages: u64,
}

impl Schedule<'_> {
    /// The intended time of the request after `sent` requests, or `None`
    /// when the task is done: time is up (scheduled messages never sent
    /// are added to `stats`) or the budget is spent.
    pub async fn next(&self, sent: u64, stats: &Mutex<TaskStats>) -> Option<tokio::time::Instant> {
        let intended = match next_send(self.window, self.pacing, self.phase, sent).await {
            NextSend::At(t) => t,
            NextSend::Stop { unsent } => {
                let mut s = stats.lock().unwrap_or_else(PoisonError::into_inner);
                s.unsent_messages += unsent * self.batch;
                return None;
            }
        };
        let claimed = self.claimed.fetch_add(self.batch, Ordering::Relaxed);
        (claimed + self.batch <= self.max_messages).then_some(intended)
    }
}

/// When a sender should send its next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextSend {
    /// At this intended time (latency is measured from it).
    At(tokio::time::Instant),
    /// Time is up; `unsent` scheduled sends never happened (fixed rate only).
    Stop { unsent: u64 },
}

/// The next send of a loop that has sent `sent` requests: at max rate now,
/// at a fixed rate (`pacing` apart, starting `phase` into the window) its
/// slot, waiting for it. Behind schedule when time runs out, the slots
/// skipped inside the measured part are reported as unsent.
pub async fn next_send(
    window: Window,
    pacing: Option<Duration>,
    phase: Duration,
    sent: u64,
) -> NextSend {
    let now = tokio::time::Instant::now();
    let Some(interval) = pacing else {
        return if now >= window.end {
            NextSend::Stop { unsent: 0 }
        } else {
            NextSend::At(now)
        };
    };
    let slot = window.start + slot_offset(sent, phase, interval);
    if slot >= window.end {
        return NextSend::Stop { unsent: 0 };
    }
    if now >= window.end {
        let before = |t: tokio::time::Instant| slots_before(t - window.start, phase, interval);
        let first_unsent = sent.max(before(window.warm_end));
        return NextSend::Stop {
            unsent: before(window.end).saturating_sub(first_unsent),
        };
    }
    tokio::time::sleep_until(slot).await;
    NextSend::At(slot)
}

/// Messages made durable per fdatasync; `None` when the server did not sync.
pub fn messages_per_sync(messages: u64, syncs: u64) -> Option<f64> {
    (syncs > 0).then(|| messages as f64 / syncs as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(per_second(500, Duration::from_millis(250)), 2000.0);
        assert_eq!(per_second(10, Duration::ZERO), 0.0);
        assert_eq!(mib_per_second(3 << 20, Duration::from_secs(2)), 1.5);
        assert_eq!(messages_per_sync(100, 8), Some(12.5));
        assert_eq!(messages_per_sync(100, 0), None);
    }

    #[test]
    fn fixed_rate_slots() {
        let ms = Duration::from_millis;
        // Slots at 0, 10, 20, ... ms: before 25 ms are 0, 10, 20.
        assert_eq!(slots_before(ms(25), ms(0), ms(10)), 3);
        // Strictly before: 30 ms itself is not before 30 ms.
        assert_eq!(slots_before(ms(30), ms(0), ms(10)), 3);
        // With a 5 ms phase: 5, 15, 25 before 30 ms.
        assert_eq!(slots_before(ms(30), ms(5), ms(10)), 3);
        assert_eq!(slots_before(ms(5), ms(5), ms(10)), 0);
        assert_eq!(slots_before(ms(30), ms(0), Duration::ZERO), 0);
        assert_eq!(slot_offset(3, ms(5), ms(10)), ms(35));
        assert_eq!(
            slot_offset(u64::MAX, ms(0), Duration::from_secs(1)),
            Duration::from_nanos(u64::MAX)
        );
        // Slots in the window [warm-up end, end) = before(end) - before(start).
        let in_window =
            slots_before(ms(1000), ms(0), ms(10)) - slots_before(ms(200), ms(0), ms(10));
        assert_eq!(in_window, 80);
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut l = Latency::new();
        // 1..=1000 ms, one sample each.
        for ms in 1..=1000u64 {
            l.record(Duration::from_millis(ms));
        }
        assert_eq!(l.count(), 1000);
        let s = l.summary();
        // 3 significant digits: within 0.1% of the exact rank value.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 1e-9;
        assert!(close(s.p50, 500.0), "p50 {}", s.p50);
        assert!(close(s.p90, 900.0), "p90 {}", s.p90);
        assert!(close(s.p99, 990.0), "p99 {}", s.p99);
        assert!(close(s.p999, 999.0), "p99.9 {}", s.p999);
        assert!(close(s.max, 1000.0), "max {}", s.max);
        assert!(close(s.mean, 500.5), "mean {}", s.mean);
        assert!(s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.p999 && s.p999 <= s.max);
    }

    #[test]
    fn empty_and_extreme_values() {
        let mut l = Latency::new();
        assert_eq!(l.summary(), LatencySummary::default());
        assert_eq!(l.quantile_us(0.99), 0);
        l.record(Duration::ZERO); // clamped up to 1 µs
        l.record(Duration::from_secs(100_000)); // clamped down to the max
        assert_eq!(l.count(), 2);
        assert!(l.summary().max >= 3_599_000.0);
    }

    #[test]
    fn merging_tasks() {
        let mut a = TaskStats::default();
        let mut b = TaskStats::default();
        a.record_success(true, Duration::from_millis(1), 10, 10_240);
        a.record_success(false, Duration::from_millis(50), 10, 10_240); // warm-up
        b.record_success(true, Duration::from_millis(3), 10, 10_240);
        b.record_error(true, "503 WAL_FULL");
        b.record_error(true, "503 WAL_FULL");
        b.record_error(false, "timeout");
        let mut total = TaskStats::default();
        total.merge(&a);
        total.merge(&b);
        assert_eq!(total.requests, 2);
        assert_eq!(total.messages, 20);
        assert_eq!(total.bytes, 20_480);
        assert_eq!(total.latency.count(), 2);
        assert_eq!(total.error_count(), 2);
        assert_eq!(total.errors.get("503 WAL_FULL"), Some(&2));
        assert_eq!(total.warmup_errors, 1);
        // Warm-up latency is excluded from the measured histogram.
        assert!(total.latency.summary().max < 4.0);
        // ...but shows in the progress interval.
        assert_eq!(a.interval.count(), 2);
        assert_eq!(a.interval_messages, 20);
    }
}
