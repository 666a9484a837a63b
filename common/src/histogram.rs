//! [`LatencyHistogram`]: how long an operation took, in fixed buckets that
//! a hot path can record into without a lock (one atomic add per bucket
//! and one for the sum).
//!
//! The buckets span 50 µs (a synced write on a fast disk) to 2 s (a disk in
//! trouble); the Prometheus exporter and the status page read a
//! [`LatencySnapshot`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds. A last bucket holds
/// everything above the largest.
pub const LATENCY_BOUNDS_US: [u64; 15] = [
    50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
    1_000_000, 2_000_000,
];

const BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// Counts of durations per bucket, recorded concurrently.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    counts: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl LatencyHistogram {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_US.partition_point(|&bound| bound < us);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The counts now. Taken bucket by bucket, so a record made meanwhile
    /// may show in the count and not yet in the sum, or the reverse.
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's counts at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// One count per bucket of [`LATENCY_BOUNDS_US`], then the count above
    /// the largest bound.
    pub counts: Vec<u64>,
    /// Sum of every recorded duration, in microseconds.
    pub sum_us: u64,
}

/// Nothing recorded: every bucket there, at zero.
impl Default for LatencySnapshot {
    fn default() -> Self {
        LatencyHistogram::new().snapshot()
    }
}

impl LatencySnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// (upper bound in seconds, count in the bucket) for every bucket, the
    /// last one's bound infinite: what the Prometheus encoder takes.
    pub fn buckets_seconds(&self) -> Vec<(f64, u64)> {
        LATENCY_BOUNDS_US
            .iter()
            .map(|&us| us as f64 / 1e6)
            .chain([f64::INFINITY])
            .zip(self.counts.iter().copied())
            .collect()
    }

    /// The upper bound of the bucket holding quantile `q` (0 < q ≤ 1): at
    /// least `q` of the durations were at most this. `None` with nothing
    /// recorded, `Duration::MAX` when it falls above the largest bound.
    pub fn quantile_bound(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let wanted = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return Some(
                    LATENCY_BOUNDS_US
                        .get(i)
                        .map_or(Duration::MAX, |&us| Duration::from_micros(us)),
                );
            }
        }
        Some(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_the_bucket_of_their_upper_bound() {
        let h = LatencyHistogram::new();
        for us in [0, 50, 51, 100, 999, 1_000, 2_000_000, 2_000_001, 10_000_000] {
            h.record(Duration::from_micros(us));
        }
        let s = h.snapshot();
        assert_eq!(s.counts.len(), LATENCY_BOUNDS_US.len() + 1);
        let at = |bound: u64| s.counts[LATENCY_BOUNDS_US.iter().position(|&b| b == bound).unwrap()];
        assert_eq!(at(50), 2, "0 and 50");
        assert_eq!(at(100), 2, "51 and 100");
        assert_eq!(at(1_000), 2, "999 and 1000");
        assert_eq!(at(2_000_000), 1);
        assert_eq!(s.counts[LATENCY_BOUNDS_US.len()], 2, "above every bound");
        assert_eq!(s.count(), 9);
    }

    #[test]
    fn cumulative_counts_and_quantiles() {
        let h = LatencyHistogram::new();
        for _ in 0..98 {
            h.record(Duration::from_micros(150));
        }
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(5));
        let s = h.snapshot();
        assert_eq!(s.sum_us, 98 * 150 + 3_000 + 5_000_000);
        let buckets = s.buckets_seconds();
        assert_eq!(buckets.len(), LATENCY_BOUNDS_US.len() + 1);
        assert_eq!(buckets[0], (0.00005, 0));
        assert_eq!(buckets[2], (0.0002, 98));
        assert_eq!(buckets[6], (0.005, 1));
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!(s.quantile_bound(0.5), Some(Duration::from_micros(200)));
        assert_eq!(s.quantile_bound(0.98), Some(Duration::from_micros(200)));
        assert_eq!(s.quantile_bound(0.99), Some(Duration::from_millis(5)));
        assert_eq!(s.quantile_bound(1.0), Some(Duration::MAX));
        assert_eq!(LatencySnapshot::default().quantile_bound(0.5), None);
    }
}
