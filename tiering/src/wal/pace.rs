//! Pacing appends while the WAL fills: pure arithmetic, no I/O, no clock.
//!
//! Without it a WAL whose uploads fall behind fills to `max_bytes`, and from
//! then on every release (a few segments freed by one upload) lets a burst
//! of appends in, which fill it again at once; everyone else waits for the
//! next upload. Producers see it as stalls of hundreds of milliseconds.
//!
//! Above `start_bytes` appends are admitted at the rate the WAL drains
//! instead, slowed further the closer the WAL is to full (down to half of
//! that rate at `max_bytes`), so it settles just above the start with room
//! to spare. Each append is given the next slot of that rate (a virtual
//! schedule, like a token bucket of one append), so the wait is spread
//! evenly over every append instead of falling whole on the unlucky ones.
//!
//! ```text
//!   drain = bytes released after the oldest release kept / (now − that release)
//!   rate  = drain × (1 − ½ · (used − start) / (max − start))
//!   wait  = min(max(now, next_slot), now + MAX_WAIT) − now;  next_slot = now + wait + len / rate
//! ```
//!
//! The releases kept are those of the last [`WINDOW`] (at most
//! [`MAX_RELEASES`]). Measuring from the oldest one, not from the window's
//! start, keeps an upload that frees a lot at once from reading as a burst
//! of speed; dividing by the time up to `now` makes the estimate fall when
//! releases stop. With fewer than two releases kept the drain is unknown,
//! and nothing is paced: an object store that is down drains nothing, and
//! pacing cannot help (appends then wait at `max_bytes`, as before).
//! [`MAX_WAIT`] bounds one append's wait, so a schedule that fell far behind
//! (a very low rate, a large record) never holds an append for long.

use std::collections::VecDeque;
use std::time::Duration;

/// How far back releases count towards the drain rate.
pub const WINDOW: Duration = Duration::from_secs(30);
/// The most releases kept for the estimate.
pub const MAX_RELEASES: usize = 64;
/// The longest one append waits for its slot.
pub const MAX_WAIT: Duration = Duration::from_millis(200);

/// The pacing state of one WAL.
#[derive(Debug)]
pub struct Pacer {
    start_bytes: u64,
    max_bytes: u64,
    /// (when, bytes) of the releases within [`WINDOW`], oldest first.
    releases: VecDeque<(Duration, u64)>,
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
            next_slot: Duration::ZERO,
        }
    }

    /// Records `bytes` released at `now`.
    pub fn released(&mut self, now: Duration, bytes: u64) {
        self.releases.push_back((now, bytes));
        if self.releases.len() > MAX_RELEASES {
            self.releases.pop_front();
        }
        self.forget_before(now);
    }

    fn forget_before(&mut self, now: Duration) {
        let cutoff = now.saturating_sub(WINDOW);
        while self.releases.front().is_some_and(|(at, _)| *at < cutoff) {
            self.releases.pop_front();
        }
    }

    /// Bytes per second the WAL drained lately; `None` with fewer than two
    /// releases in the window.
    pub fn drain_rate(&mut self, now: Duration) -> Option<f64> {
        self.forget_before(now);
        let (first, _) = *self.releases.front()?;
        if self.releases.len() < 2 {
            return None;
        }
        let bytes: u64 = self.releases.iter().skip(1).map(|(_, b)| b).sum();
        let span = now.saturating_sub(first).max(Duration::from_millis(1));
        Some(bytes as f64 / span.as_secs_f64())
    }

    /// Whether appends are paced at all with `used` bytes in the WAL (a
    /// cheap check for every append); below the start the schedule starts
    /// afresh.
    pub fn paces(&mut self, used: u64) -> bool {
        let paces = used > self.start_bytes && self.start_bytes < self.max_bytes;
        if !paces {
            self.next_slot = Duration::ZERO;
        }
        paces
    }

    /// The admission rate with `used` bytes in the WAL; `None` when nothing
    /// is paced (below the start, or the drain unknown).
    pub fn rate(&mut self, now: Duration, used: u64) -> Option<f64> {
        if used <= self.start_bytes || self.start_bytes >= self.max_bytes {
            return None;
        }
        let drain = self.drain_rate(now)?;
        let depth = (used - self.start_bytes) as f64 / (self.max_bytes - self.start_bytes) as f64;
        let slow = 1.0 - 0.5 * depth.min(1.0);
        Some((drain * slow).max(1.0))
    }

    /// Takes the next slot for an append of `len` bytes with `used` bytes
    /// in the WAL: how long it waits before it may go, at most
    /// [`MAX_WAIT`]. Zero when nothing is paced.
    pub fn admit(&mut self, now: Duration, used: u64, len: u64) -> Duration {
        let Some(rate) = self.rate(now, used) else {
            self.next_slot = now;
            return Duration::ZERO;
        };
        let slot = self.next_slot.max(now).min(now + MAX_WAIT);
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

    /// A pacer that saw `per_s` bytes released every second from 0 to 10 s.
    fn draining(start: u64, max: u64, per_s: u64) -> Pacer {
        let mut p = Pacer::new(start, max);
        for i in 0..=10 {
            p.released(secs(i as f64), per_s);
        }
        p
    }

    #[test]
    fn below_the_start_nothing_waits() {
        let mut p = draining(768 * MIB, 1024 * MIB, 10 * MIB);
        for i in 0..100 {
            let now = secs(10.0 + i as f64 * 0.001);
            assert_eq!(p.admit(now, 768 * MIB, MIB), Duration::ZERO);
        }
    }

    #[test]
    fn a_start_at_the_maximum_never_paces() {
        let mut p = draining(1024 * MIB, 1024 * MIB, 10 * MIB);
        assert!(!p.paces(1024 * MIB));
        assert_eq!(p.admit(secs(10.0), 1024 * MIB, MIB), Duration::ZERO);
    }

    #[test]
    fn only_above_the_start_are_appends_paced() {
        let mut p = draining(768 * MIB, 1024 * MIB, 10 * MIB);
        assert!(!p.paces(768 * MIB));
        assert!(p.paces(768 * MIB + 1));
        // Dipping below the start drops the debt of the schedule.
        for _ in 0..100 {
            p.admit(secs(10.0), 800 * MIB, MIB);
        }
        assert!(!p.paces(100 * MIB));
        assert_eq!(p.admit(secs(10.0), 800 * MIB, MIB), Duration::ZERO);
    }

    #[test]
    fn the_drain_is_what_was_released_over_the_time_it_took() {
        // 100 MiB a second: measured from the first release, not inflated
        // by counting it.
        let mut p = draining(0, 1024 * MIB, 100 * MIB);
        let rate = p.drain_rate(secs(10.0)).unwrap_or(0.0) / MIB as f64;
        assert!((rate - 100.0).abs() < 0.1, "{rate}");
        // Half a second after the last release, a little lower.
        let rate = p.drain_rate(secs(10.5)).unwrap_or(0.0) / MIB as f64;
        assert!((rate - 1000.0 / 10.5).abs() < 0.1, "{rate}");
        // One big release every 5 s is 64 MiB / 5 s, not 64 MiB / 1 s.
        let mut p = Pacer::new(0, 1024 * MIB);
        for i in 0..4 {
            p.released(secs(i as f64 * 5.0), 64 * MIB);
        }
        let rate = p.drain_rate(secs(15.0)).unwrap_or(0.0) / MIB as f64;
        assert!((rate - 12.8).abs() < 0.1, "{rate}");
    }

    #[test]
    fn above_the_start_appends_go_at_the_drain_rate() {
        let mut p = draining(768 * MIB, 1024 * MIB, 100 * MIB);
        let now = secs(10.0);
        // Just above the start: the drain rate; 10 appends of 1 MiB are
        // spread over about 10 / 100 s, the first going at once.
        let used = 768 * MIB + 1;
        let waits: Vec<Duration> = (0..10).map(|_| p.admit(now, used, MIB)).collect();
        assert_eq!(waits[0], Duration::ZERO);
        let last = waits[9].as_secs_f64();
        assert!((last - 0.09).abs() < 0.001, "{last}");
        assert!(waits.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn the_fuller_the_slower_down_to_half() {
        let mut p = draining(512 * MIB, 1024 * MIB, 100 * MIB);
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
    fn without_two_releases_in_the_window_nothing_is_paced() {
        let mut p = Pacer::new(0, 1024 * MIB);
        assert_eq!(p.admit(secs(1.0), 512 * MIB, MIB), Duration::ZERO);
        p.released(secs(1.0), 64 * MIB);
        assert_eq!(p.drain_rate(secs(2.0)), None);
        assert_eq!(p.admit(secs(2.0), 512 * MIB, MIB), Duration::ZERO);
        p.released(secs(2.0), 64 * MIB);
        assert!(p.drain_rate(secs(2.0)).is_some());
        // Releases stop (the object store went down): the estimate falls,
        // then, once they are older than the window, nothing is paced.
        let early = p.drain_rate(secs(3.0)).unwrap_or(0.0);
        let late = p.drain_rate(secs(20.0)).unwrap_or(f64::MAX);
        assert!(late < early / 5.0, "{early} {late}");
        assert_eq!(p.drain_rate(secs(32.0)), None);
        assert_eq!(p.admit(secs(32.0), 512 * MIB, MIB), Duration::ZERO);
    }

    #[test]
    fn no_append_waits_longer_than_the_bound() {
        // 1 KiB/s drained; appends of 1 MiB would each need 1000 s.
        let mut p = draining(0, 1024 * MIB, 1024);
        let now = secs(10.0);
        for _ in 0..100 {
            assert!(p.admit(now, 512 * MIB, MIB) <= MAX_WAIT);
        }
        // The debt does not grow either: later appends wait the bound too.
        assert!(p.admit(secs(11.0), 512 * MIB, MIB) <= MAX_WAIT);
    }

    #[test]
    fn falling_below_the_start_clears_the_schedule() {
        let mut p = draining(512 * MIB, 1024 * MIB, 10 * MIB);
        let now = secs(10.0);
        for _ in 0..100 {
            p.admit(now, 800 * MIB, MIB);
        }
        assert_eq!(p.admit(now, 800 * MIB, MIB), MAX_WAIT);
        assert_eq!(p.admit(now, 100 * MIB, MIB), Duration::ZERO);
        assert_eq!(p.admit(now, 800 * MIB, MIB), Duration::ZERO);
    }
}
