//! Defragmentation: which adjacent small ranges of a queue become one object.
//!
//! Uploads pack many queues per object, so a queue that trickles messages
//! ends up with many tiny ranges, each costing a GET on a cold read. A merge
//! rewrites a run of adjacent small ranges into one per-queue object.

/// What the planner needs to know about a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeSize {
    pub base_offset: u64,
    pub end_offset: u64,
    pub stored_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergePolicy {
    /// Ranges at or above this size are left alone.
    pub small_range_bytes: u64,
    /// A merge needs at least this many adjacent small ranges.
    pub min_ranges: usize,
    /// A merged object stops growing at this size.
    pub target_bytes: u64,
}

/// The index span `[start, end)` of `ranges` (sorted, oldest first) to
/// merge, if any: the first run of at least `min_ranges` adjacent small
/// ranges, cut at `target_bytes`. `skip_newest` ranges at the end are left
/// alone (they may still be growing into larger neighbours).
pub fn plan(
    ranges: &[RangeSize],
    policy: MergePolicy,
    skip_newest: usize,
) -> Option<(usize, usize)> {
    let usable = ranges.len().saturating_sub(skip_newest);
    let mut start = 0;
    while start < usable {
        let mut end = start;
        let mut bytes = 0u64;
        while end < usable {
            let r = &ranges[end];
            let adjacent = end == start || ranges[end - 1].end_offset == r.base_offset;
            if r.stored_bytes >= policy.small_range_bytes
                || !adjacent
                || (end > start && bytes + r.stored_bytes > policy.target_bytes)
            {
                break;
            }
            bytes += r.stored_bytes;
            end += 1;
        }
        if end - start >= policy.min_ranges.max(2) {
            return Some((start, end));
        }
        start = end.max(start + 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const POLICY: MergePolicy = MergePolicy {
        small_range_bytes: 100,
        min_ranges: 3,
        target_bytes: 250,
    };

    fn ranges(sizes: &[u64]) -> Vec<RangeSize> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, s)| RangeSize {
                base_offset: i as u64 * 10,
                end_offset: i as u64 * 10 + 10,
                stored_bytes: *s,
            })
            .collect()
    }

    #[test]
    fn merges_the_first_run_of_small_ranges() {
        assert_eq!(
            plan(&ranges(&[500, 10, 10, 10, 500]), POLICY, 0),
            Some((1, 4))
        );
        assert_eq!(plan(&ranges(&[10, 10, 500, 10]), POLICY, 0), None);
        assert_eq!(
            plan(&ranges(&[10, 10, 10]), POLICY, 1),
            None,
            "newest left alone"
        );
    }

    #[test]
    fn stops_at_the_target_size_and_at_gaps() {
        assert_eq!(
            plan(&ranges(&[90, 90, 90, 90]), POLICY, 0),
            None,
            "any 3 exceed 250"
        );
        assert_eq!(plan(&ranges(&[80, 80, 80, 80]), POLICY, 0), Some((0, 3)));
        let mut gap = ranges(&[10, 10, 10, 10]);
        gap[2].base_offset += 1;
        gap[2].end_offset += 1;
        gap[3].base_offset += 1;
        gap[3].end_offset += 1;
        assert_eq!(plan(&gap, POLICY, 0), None);
    }

    proptest! {
        #[test]
        fn plans_are_valid(sizes in proptest::collection::vec(1u64..300, 0..30), skip in 0usize..3) {
            let rs = ranges(&sizes);
            if let Some((s, e)) = plan(&rs, POLICY, skip) {
                prop_assert!(e - s >= POLICY.min_ranges);
                prop_assert!(e <= rs.len().saturating_sub(skip));
                prop_assert!(rs[s..e].iter().all(|r| r.stored_bytes < POLICY.small_range_bytes));
                prop_assert!(rs[s..e].iter().map(|r| r.stored_bytes).sum::<u64>() <= POLICY.target_bytes);
            }
        }
    }
}
