//! Pacing appends while the WAL fills: pure arithmetic, no I/O, no clock.
//!
//! Without it a WAL whose uploads fall behind fills to `max_bytes`, and from
//! then on every release (a few segments freed by one upload) lets a burst
//! of appends in, which fill it again at once; everyone else waits for the
//! next upload. Producers see it as stalls of hundreds of milliseconds.
//!
//! Above `start_bytes` appends are admitted at the rate the WAL drains
//! instead: the bytes released over the last [`WINDOW`], slowed further
//! the closer the WAL is to full (down to half of that rate at
//! `max_bytes`), so it settles between the two with room to spare. Each
//! append is given the next slot of that rate (a virtual schedule, like a
//! token bucket of one append), so the wait is spread evenly over every
//! append instead of falling whole on the unlucky ones.
//!
//! ```text
//!   rate = drained bytes in window / min(time since first release, WINDOW)
//!        × (1 − ½ · (used − start) / (max − start))
//!   wait = max(now, next_slot) − now;   next_slot = that + frame_len / rate
//! ```
//!
//! Before anything was released (or for a WINDOW without releases) the
//! drain is unknown and taken as `max_bytes / 64` per second.

use std::collections::VecDeque;
use std::time::Duration;

/// How far back releases count towards the drain rate.
pub const WINDOW: Duration = Duration::from_secs(10);
/// The shortest span the drain is averaged over, so the first release after
/// a quiet spell does not read as an enormous rate.
const MIN_SPAN: Duration = Duration::from_secs(1);
/// With no release in the window, `max_bytes / UNKNOWN_DRAIN_DIVISOR` per second.
const UNKNOWN_DRAIN_DIVISOR: u64 = 64;

/// The pacing state of one WAL.
#[derive(Debug)]
pub struct Pacer {
    start_bytes: u64,
    max_bytes: u64,
    /// (when, bytes) of the releases within [`WINDOW`], oldest first.
    releases: VecDeque<(Duration, u64)>,
    /// The first release since the WAL last went a whole window without
    /// one: the drain is averaged over the time since (at most [`WINDOW`]).
    since: Option<Duration>,
    /// The earliest time the next paced append may go.
    next_slot: Duration,
}

impl Pacer {
    /// Paces above `start_bytes`; `start_bytes >= max_bytes` never paces.
    pub fn new(start_bytes: u64, max_bytes: u64) -> Self {
        Self {
            start_bytes,
            max_bytes,
            releases: VecDeque::new(),
            since: None,
            next_slot: Duration::ZERO,
        }
    }

    /// Records `bytes` released at `now`.
    pub fn released(&mut self, now: Duration, bytes: u64) {
        self.forget_before(now);
        if self.since.is_none() {
            self.since = Some(now);
        }
        self.releases.push_back((now, bytes));
    }

    fn forget_before(&mut self, now: Duration) {
        let cutoff = now.saturating_sub(WINDOW);
        while self.releases.front().is_some_and(|(at, _)| *at < cutoff) {
            self.releases.pop_front();
        }
        if self.releases.is_empty() {
            self.since = None;
        }
    }

    /// Bytes per second the WAL drained lately, if anything was released
    /// within the window.
    pub fn drain_rate(&mut self, now: Duration) -> Option<f64> {
        self.forget_before(now);
        let since = self.since?;
        let bytes: u64 = self.releases.iter().map(|(_, b)| b).sum();
        let span = now.saturating_sub(since).clamp(MIN_SPAN, WINDOW);
        Some(bytes as f64 / span.as_secs_f64())
    }

    /// The admission rate with `used` bytes in the WAL; `None` below the
    /// start (no pacing).
    pub fn rate(&mut self, now: Duration, used: u64) -> Option<f64> {
        if used <= self.start_bytes || self.start_bytes >= self.max_bytes {
            return None;
        }
        let drain = self
            .drain_rate(now)
            .unwrap_or((self.max_bytes / UNKNOWN_DRAIN_DIVISOR) as f64);
        let depth = (used - self.start_bytes) as f64 / (self.max_bytes - self.start_bytes) as f64;
        let slow = 1.0 - 0.5 * depth.min(1.0);
        Some((drain * slow).max(1.0))
    }

    /// Takes the next slot for an append of `len` bytes with `used` bytes
    /// in the WAL: how long it waits before it may go. Zero below the start.
    pub fn admit(&mut self, now: Duration, used: u64, len: u64) -> Duration {
        let Some(rate) = self.rate(now, used) else {
            self.next_slot = now;
            return Duration::ZERO;
        };
        let slot = self.next_slot.max(now);
        self.next_slot = slot + Duration::from_secs_f64(len as f64 / rate);
        slot - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn below_the_start_nothing_waits() {
        let mut p = Pacer::new(768 * MIB, 1024 * MIB);
        for i in 0..100 {
            assert_eq!(
                p.admit(secs(i as f64 * 0.001), 768 * MIB, MIB),
                Duration::ZERO
            );
        }
    }

    #[test]
    fn a_start_at_the_maximum_never_paces() {
        let mut p = Pacer::new(1024 * MIB, 1024 * MIB);
        assert_eq!(p.admit(secs(1.0), 1024 * MIB, MIB), Duration::ZERO);
    }

    #[test]
    fn above_the_start_appends_go_at_the_drain_rate() {
        let mut p = Pacer::new(768 * MIB, 1024 * MIB);
        // 100 MiB/s drained over the last 10 s.
        for i in 0..=10 {
            p.released(secs(i as f64), 100 * MIB);
        }
        let now = secs(10.0);
        let rate = p.drain_rate(now).unwrap_or(0.0);
        assert!((rate / MIB as f64 - 110.0).abs() < 1.0, "{rate}");
        // Just above the start: close to the drain rate; 10 appends of 1 MiB
        // are spread over about 10 / 110 s, the first going at once.
        let used = 768 * MIB + 1;
        let waits: Vec<Duration> = (0..10).map(|_| p.admit(now, used, MIB)).collect();
        assert_eq!(waits[0], Duration::ZERO);
        let last = waits[9].as_secs_f64();
        assert!((last - 9.0 / 110.0).abs() < 0.001, "{last}");
        assert!(waits.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn the_fuller_the_slower_down_to_half() {
        let mut p = Pacer::new(512 * MIB, 1024 * MIB);
        for i in 0..=10 {
            p.released(secs(i as f64), 100 * MIB);
        }
        let now = secs(10.0);
        let drain = p.drain_rate(now).unwrap_or(0.0);
        let at = |p: &mut Pacer, used| p.rate(now, used).unwrap_or(0.0) / drain;
        assert!((at(&mut p, 513 * MIB) - 1.0).abs() < 0.01);
        assert!((at(&mut p, 768 * MIB) - 0.75).abs() < 0.01);
        assert!((at(&mut p, 1024 * MIB) - 0.5).abs() < 0.01);
        // Over the maximum (a record larger than the room) stays at half.
        assert!((at(&mut p, 2048 * MIB) - 0.5).abs() < 0.01);
    }

    #[test]
    fn without_releases_the_drain_is_a_sixty_fourth_of_the_wal() {
        let mut p = Pacer::new(0, 1024 * MIB);
        assert_eq!(p.drain_rate(secs(5.0)), None);
        let rate = p.rate(secs(5.0), 1).unwrap_or(0.0);
        assert!((rate / MIB as f64 - 16.0).abs() < 0.1, "{rate}");
    }

    #[test]
    fn releases_older_than_the_window_are_forgotten() {
        let mut p = Pacer::new(0, 1024 * MIB);
        p.released(secs(0.0), 500 * MIB);
        assert!(p.drain_rate(secs(5.0)).is_some());
        assert_eq!(p.drain_rate(secs(10.5)), None);
        // A new release after the quiet spell is averaged over at least
        // MIN_SPAN, not over the time since the forgotten one.
        p.released(secs(20.0), 50 * MIB);
        let rate = p.drain_rate(secs(20.0)).unwrap_or(0.0);
        assert!((rate / MIB as f64 - 50.0).abs() < 0.1, "{rate}");
    }

    #[test]
    fn falling_below_the_start_clears_the_schedule() {
        let mut p = Pacer::new(512 * MIB, 1024 * MIB);
        p.released(secs(0.0), 10 * MIB);
        let now = secs(1.0);
        for _ in 0..100 {
            p.admit(now, 800 * MIB, MIB);
        }
        assert!(p.admit(now, 800 * MIB, MIB) > Duration::from_secs(1));
        assert_eq!(p.admit(now, 100 * MIB, MIB), Duration::ZERO);
        assert_eq!(p.admit(now, 800 * MIB, MIB), Duration::ZERO);
    }
}
