//! Retention over object ranges: how many of a queue's oldest ranges go.

use strata_common::Retention;

/// What retention needs to know about a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeAge {
    pub max_timestamp_ms: i64,
    pub stored_bytes: u64,
}

/// The number of ranges (oldest first) to delete: those whose newest
/// message is older than the time limit, plus the oldest ones beyond the
/// size limit (`max_bytes`, counted over these ranges plus `newer_bytes`
/// still in the WAL). Ranges are removed whole, so retention is a minimum.
pub fn expired(
    ranges: &[RangeAge],
    policy: Retention,
    max_bytes: Option<u64>,
    newer_bytes: u64,
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
            let mut total: u64 = newer_bytes + ranges.iter().map(|r| r.stored_bytes).sum::<u64>();
            let mut n = 0;
            while n < ranges.len() && total > limit {
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
        assert_eq!(expired(&rs, Retention::Ms(500), None, 0, 1000), 1);
        assert_eq!(expired(&rs, Retention::Ms(5), None, 0, 1000), 3);
        assert_eq!(expired(&rs, Retention::Unlimited, None, 0, 1000), 0);
    }

    #[test]
    fn size_limit_counts_the_wal_too() {
        let rs = [r(0, 10), r(0, 10), r(0, 10)];
        assert_eq!(expired(&rs, Retention::Unlimited, Some(25), 0, 0), 1);
        assert_eq!(expired(&rs, Retention::Unlimited, Some(25), 10, 0), 2);
        assert_eq!(expired(&rs, Retention::Unlimited, Some(1000), 0, 0), 0);
    }
}
