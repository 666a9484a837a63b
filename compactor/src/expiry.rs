//! Retention over object ranges: how many of a queue's oldest ranges go.

use strata_common::Retention;

/// What retention needs to know about a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeAge {
    pub max_timestamp_ms: i64,
    pub stored_bytes: u64,
}

/// The number of ranges (oldest first) to delete: those whose newest
/// message is older than the time limit, plus the oldest ones the size
/// limit lets go (`max_bytes`, counted over these ranges as stored).
/// Ranges are removed whole, so retention is a minimum: a range goes by
/// size only if what stays still holds `max_bytes`, so a queue keeps its
/// newest `max_bytes` even when they share a range with older data (a
/// burst uploaded together went whole, newest included). Data still only
/// in the WAL counts for nothing: its stored size is not known until it is
/// uploaded (compressed, it was a seventh of its WAL bytes in a tester's
/// run, and counting it at WAL size left the queue 15% of its limit).
pub fn expired(
    ranges: &[RangeAge],
    policy: Retention,
    max_bytes: Option<u64>,
    now_ms: i64,
) -> usize {
    let by_time = match policy {
        Retention::Unlimited => 0,
        Retention::Ms(ms) => {
            let cutoff = now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX));
            ranges
                .iter()
                .take_while(|r| r.max_timestamp_ms <= cutoff)
                .count()
        }
    };
    let by_size = match max_bytes {
        None => 0,
        Some(limit) => {
            let mut total: u64 = ranges.iter().map(|r| r.stored_bytes).sum::<u64>();
            let mut n = 0;
            while n < ranges.len() && total.saturating_sub(ranges[n].stored_bytes) >= limit {
                total -= ranges[n].stored_bytes;
                n += 1;
            }
            n
        }
    };
    by_time.max(by_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(ts: i64, bytes: u64) -> RangeAge {
        RangeAge {
            max_timestamp_ms: ts,
            stored_bytes: bytes,
        }
    }

    #[test]
    fn time_limit_removes_only_a_prefix() {
        let rs = [r(100, 1), r(900, 1), r(200, 1)];
        assert_eq!(expired(&rs, Retention::Ms(500), None, 1000), 1);
        assert_eq!(expired(&rs, Retention::Ms(5), None, 1000), 3);
        assert_eq!(expired(&rs, Retention::Unlimited, None, 1000), 0);
    }

    #[test]
    fn size_limit_counts_stored_ranges() {
        let rs = [r(0, 10), r(0, 10), r(0, 10)];
        assert_eq!(expired(&rs, Retention::Unlimited, Some(20), 0), 1);
        assert_eq!(expired(&rs, Retention::Unlimited, Some(15), 0), 1);
        assert_eq!(expired(&rs, Retention::Unlimited, Some(10), 0), 2);
        assert_eq!(expired(&rs, Retention::Unlimited, Some(1000), 0), 0);
    }

    #[test]
    fn size_limit_keeps_at_least_the_limit() {
        // One range holding more than the limit stays: removing it would
        // leave nothing of the newest data the limit promises.
        assert_eq!(expired(&[r(0, 100)], Retention::Unlimited, Some(25), 0), 0);
        // Once newer data holds the limit, the old range goes.
        let rs = [r(0, 100), r(0, 30)];
        assert_eq!(expired(&rs, Retention::Unlimited, Some(25), 0), 1);
        assert_eq!(expired(&rs, Retention::Unlimited, Some(40), 0), 0);
    }
}
