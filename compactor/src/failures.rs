//! [`Failures`]: the compactor's record of its loops' failing passes, which
//! decides what is logged and how long a loop waits before it retries.
//!
//! Failures are compared by kind, not by text: the messages of a fenced or
//! slow upload, or of a store outage, name the object they were writing,
//! which is new on every attempt. A failure of a new kind is a warning; the
//! same kind again is quiet, but warned once more every [`REWARN_AFTER`]
//! with the number of attempts, so an outage that lasts stays visible.
//! Pure: the caller passes the monotonic time in.

use std::time::Duration;

/// How long a repeating failure stays quiet before it is warned again.
pub(crate) const REWARN_AFTER: Duration = Duration::from_secs(60);

/// The compactor's loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    Upload,
    Maintenance,
}

impl Pass {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Pass::Upload => "upload",
            Pass::Maintenance => "maintenance",
        }
    }

    fn slot(self) -> usize {
        match self {
            Pass::Upload => 0,
            Pass::Maintenance => 1,
        }
    }
}

/// What to log for a failure just recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Logged {
    /// A warning: the first failure of its kind in a row, or a repeating
    /// one whose quiet time ran out (`attempts` in a row so far).
    Warn { attempts: u64 },
    /// A debug event only.
    Quiet,
}

#[derive(Debug, Clone)]
struct Failure {
    kind: &'static str,
    message: String,
    attempts: u64,
    warned_at: Duration,
}

/// The current run of failures of each loop.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    slots: [Option<Failure>; 2],
}

impl Failures {
    /// Records a failed pass of `kind` with `message` at monotonic `now`.
    pub(crate) fn failed(
        &mut self,
        pass: Pass,
        kind: &'static str,
        message: String,
        now: Duration,
    ) -> Logged {
        let slot = &mut self.slots[pass.slot()];
        match slot {
            Some(f) if f.kind == kind => {
                f.attempts += 1;
                f.message = message;
                if now.saturating_sub(f.warned_at) < REWARN_AFTER {
                    return Logged::Quiet;
                }
                f.warned_at = now;
                Logged::Warn {
                    attempts: f.attempts,
                }
            }
            _ => {
                *slot = Some(Failure {
                    kind,
                    message,
                    attempts: 1,
                    warned_at: now,
                });
                Logged::Warn { attempts: 1 }
            }
        }
    }

    /// Records a good pass; returns the failure it ends (its last message
    /// and how many attempts failed), if one was running.
    pub(crate) fn succeeded(&mut self, pass: Pass) -> Option<(String, u64)> {
        self.slots[pass.slot()]
            .take()
            .map(|f| (f.message, f.attempts))
    }

    /// Failed attempts in a row of `pass` (0 when its last pass was good).
    pub(crate) fn attempts(&self, pass: Pass) -> u64 {
        self.slots[pass.slot()].as_ref().map_or(0, |f| f.attempts)
    }

    /// How long `pass` waits before its next attempt: `base` after a good
    /// pass, doubling with each failure in a row, at most `cap`.
    pub(crate) fn retry_delay(&self, pass: Pass, base: Duration, cap: Duration) -> Duration {
        let doublings = self.attempts(pass).min(16) as u32;
        base.saturating_mul(1 << doublings).min(cap.max(base))
    }

    /// The failures running now, one line per loop, for status pages.
    pub(crate) fn describe(&self) -> Option<String> {
        let lines: Vec<String> = [Pass::Upload, Pass::Maintenance]
            .into_iter()
            .filter_map(|pass| {
                let f = self.slots[pass.slot()].as_ref()?;
                Some(match f.attempts {
                    1 => format!("{}: {}", pass.name(), f.message),
                    n => format!("{}: {} ({n} attempts in a row)", pass.name(), f.message),
                })
            })
            .collect();
        (!lines.is_empty()).then(|| lines.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn the_same_kind_with_a_new_message_is_quiet_until_the_rewarn_time() {
        let mut f = Failures::default();
        let up = Pass::Upload;
        assert_eq!(
            f.failed(up, "fenced", "object a".into(), S),
            Logged::Warn { attempts: 1 }
        );
        assert_eq!(
            f.failed(up, "fenced", "object b".into(), 2 * S),
            Logged::Quiet
        );
        assert_eq!(
            f.describe().as_deref(),
            Some("upload: object b (2 attempts in a row)")
        );
        let later = S + REWARN_AFTER;
        assert_eq!(
            f.failed(up, "fenced", "object c".into(), later),
            Logged::Warn { attempts: 3 }
        );
        assert_eq!(
            f.failed(up, "fenced", "object d".into(), later + S),
            Logged::Quiet
        );
    }

    #[test]
    fn a_new_kind_warns_and_starts_counting_again() {
        let mut f = Failures::default();
        let up = Pass::Upload;
        f.failed(up, "object_store_unavailable", "a".into(), S);
        f.failed(up, "object_store_unavailable", "b".into(), S);
        assert_eq!(
            f.failed(up, "metadata", "c".into(), S),
            Logged::Warn { attempts: 1 }
        );
        assert_eq!(f.attempts(up), 1);
    }

    #[test]
    fn loops_are_tracked_apart_and_a_good_pass_ends_only_its_own_run() {
        let mut f = Failures::default();
        f.failed(Pass::Upload, "fenced", "u".into(), S);
        assert_eq!(
            f.failed(Pass::Maintenance, "fenced", "m".into(), S),
            Logged::Warn { attempts: 1 }
        );
        assert_eq!(f.describe().as_deref(), Some("upload: u; maintenance: m"));
        assert_eq!(f.succeeded(Pass::Maintenance), Some(("m".into(), 1)));
        assert_eq!(f.succeeded(Pass::Maintenance), None);
        assert_eq!(f.describe().as_deref(), Some("upload: u"));
        assert_eq!(f.succeeded(Pass::Upload), Some(("u".into(), 1)));
        assert_eq!(f.describe(), None);
    }

    #[test]
    fn retries_back_off_doubling_up_to_the_cap() {
        let mut f = Failures::default();
        let (base, cap) = (Duration::from_millis(200), Duration::from_secs(5));
        let up = Pass::Upload;
        assert_eq!(f.retry_delay(up, base, cap), base);
        let delays: Vec<u128> = (0..7)
            .map(|_| {
                f.failed(up, "k", String::new(), S);
                f.retry_delay(up, base, cap).as_millis()
            })
            .collect();
        assert_eq!(delays, [400, 800, 1600, 3200, 5000, 5000, 5000]);
        for _ in 0..100 {
            f.failed(up, "k", String::new(), S);
        }
        assert_eq!(f.retry_delay(up, base, cap), cap);
        f.succeeded(up);
        assert_eq!(f.retry_delay(up, base, cap), base);
    }
}
