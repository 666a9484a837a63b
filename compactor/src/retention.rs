//! Retention planning: the WAL position before which everything has expired.
//!
//! WAL segments are shared by many queues and released oldest-first, so the
//! WAL can drop data below the *smallest* position any queue still needs.
//! Each queue contributes the position of its first batch that must stay:
//! its first batch for unlimited retention, its first unexpired batch for a
//! time limit, nothing for a deleted topic. Retention is therefore a minimum:
//! an expired batch stays readable until its whole segment can go.

/// How long a queue's data must be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionPolicy {
    /// Keep everything.
    Unlimited,
    /// Keep batches whose append time is newer than `now - ms`.
    ExpireAfterMs(u64),
}

/// Where one retained batch sits in the WAL and when it was appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRef {
    pub lsn: u64,
    pub timestamp_ms: i64,
}

/// The WAL position below which no queue needs its data any more.
///
/// `queues` yields, for every live queue, its policy and its retained
/// batches in WAL order. Returns `u64::MAX` when nothing is retained.
pub fn release_bound<'a, I, B>(queues: I, now_ms: i64) -> u64
where
    I: IntoIterator<Item = (RetentionPolicy, B)>,
    B: IntoIterator<Item = &'a BatchRef>,
{
    let mut bound = u64::MAX;
    for (policy, batches) in queues {
        let keep_from = match policy {
            RetentionPolicy::Unlimited => batches.into_iter().next().map(|b| b.lsn),
            RetentionPolicy::ExpireAfterMs(ms) => {
                let cutoff = now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX));
                batches
                    .into_iter()
                    .find(|b| b.timestamp_ms > cutoff)
                    .map(|b| b.lsn)
            }
        };
        if let Some(lsn) = keep_from {
            bound = bound.min(lsn);
        }
    }
    bound
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b(lsn: u64, ts: i64) -> BatchRef {
        BatchRef {
            lsn,
            timestamp_ms: ts,
        }
    }

    #[test]
    fn unlimited_holds_its_first_batch() {
        let q = [b(100, 0), b(200, 1)];
        assert_eq!(
            release_bound([(RetentionPolicy::Unlimited, q.iter())], 1_000_000),
            100
        );
    }

    #[test]
    fn expired_batches_do_not_hold_back() {
        let q = [b(100, 1_000), b(200, 5_000), b(300, 9_000)];
        let p = RetentionPolicy::ExpireAfterMs(4_000);
        // now 10_000: cutoff 6_000, first kept batch is lsn 300.
        assert_eq!(release_bound([(p, q.iter())], 10_000), 300);
        // now 4_000: cutoff 0, everything kept.
        assert_eq!(release_bound([(p, q.iter())], 4_000), 100);
        // all expired: nothing held.
        assert_eq!(release_bound([(p, q.iter())], 100_000), u64::MAX);
    }

    #[test]
    fn the_most_demanding_queue_wins() {
        let a = [b(100, 1_000)];
        let c = [b(50, 9_999)];
        let bound = release_bound(
            [
                (RetentionPolicy::ExpireAfterMs(10), a.iter()),
                (RetentionPolicy::ExpireAfterMs(10), c.iter()),
            ],
            10_000,
        );
        assert_eq!(bound, 50);
    }

    proptest! {
        #[test]
        fn nothing_unexpired_is_ever_below_the_bound(
            queues in proptest::collection::vec(
                (proptest::option::of(0u64..10_000), proptest::collection::vec((0u64..1_000_000, 0i64..20_000), 0..20)),
                0..8),
            now in 0i64..30_000,
        ) {
            let prepared: Vec<(RetentionPolicy, Vec<BatchRef>)> = queues.into_iter().map(|(p, mut bs)| {
                bs.sort();
                let policy = p.map_or(RetentionPolicy::Unlimited, RetentionPolicy::ExpireAfterMs);
                (policy, bs.into_iter().map(|(lsn, ts)| b(lsn, ts)).collect())
            }).collect();
            let bound = release_bound(prepared.iter().map(|(p, bs)| (*p, bs.iter())), now);
            for (policy, batches) in &prepared {
                for batch in batches.iter().filter(|x| x.lsn < bound) {
                    match policy {
                        RetentionPolicy::Unlimited => prop_assert!(false, "unlimited batch released"),
                        RetentionPolicy::ExpireAfterMs(ms) => prop_assert!(batch.timestamp_ms <= now - *ms as i64),
                    }
                }
            }
        }
    }
}
