//! Defragmentation: which adjacent small ranges of a queue are merged.
//!
//! Uploads pack many queues per object, so a queue that trickles messages
//! ends up with many tiny ranges, each costing a GET on a cold read. A merge
//! rewrites a run of adjacent small ranges of a queue into one range; one
//! merge pass packs the runs of many queues into one object (see
//! `merge_pass`), so merges cost PUTs by the bytes they rewrite, not by
//! the number of queues.
//!
//! Every merge must grow what it rewrites: no range of a run may hold more
//! than `1 / g` of the run's bytes, where `g` is [`GROWTH`] or, if smaller,
//! `max(min_ranges, 2) - 1/2` (so that `min_ranges` ranges of about the
//! same size qualify). So a byte is rewritten only when the range
//! holding it grows at least `g` times, at most
//! `log_g(small_range_bytes / smallest range)` times in all, instead of once
//! per merge of a queue's one growing range with a few new ones.

/// Least factor by which a merge grows every range it rewrites (unless
/// `min_ranges` is smaller).
pub const GROWTH: u64 = 4;

/// What the planner needs to know about a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeSize {
    pub base_offset: u64,
    pub end_offset: u64,
    /// Bytes in the object (compressed): what a merge rewrites.
    pub stored_bytes: u64,
    /// Bytes before compression: what blocks are cut by, so what says
    /// whether the range is small.
    pub raw_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergePolicy {
    /// Ranges holding this many bytes or more before compression are
    /// left alone (blocks are cut by uncompressed size, so this counts
    /// blocks whatever the data compresses to).
    pub small_range_bytes: u64,
    /// A merge needs at least this many adjacent small ranges.
    pub min_ranges: usize,
    /// A merged range stops growing at this size.
    pub target_bytes: u64,
}

/// The index span `[start, end)` of `ranges` (sorted, oldest first) to
/// merge, if any: the first run of at least `min_ranges` adjacent small
/// ranges, cut at `target_bytes`, in which no range holds more than
/// `1 / g` of the bytes (see the module's documentation). `skip_newest` ranges at the end are left
/// alone (they may still be growing into larger neighbours).
pub fn plan(
    ranges: &[RangeSize],
    policy: MergePolicy,
    skip_newest: usize,
) -> Option<(usize, usize)> {
    let usable = ranges.len().saturating_sub(skip_newest);
    let min = policy.min_ranges.max(2);
    // Twice the growth factor, in integers: min(GROWTH, min - 1/2).
    let twice_growth = (2 * min as u64 - 1).min(2 * GROWTH);
    for start in 0..usable {
        let end = small_run_end(ranges, usable, start, policy);
        let (s, mut e) = (start, end);
        while e - s >= min {
            let run = &ranges[s..e];
            let total: u64 = run.iter().map(|r| r.stored_bytes).sum();
            let (largest, bytes) = run
                .iter()
                .enumerate()
                .map(|(i, r)| (i, r.stored_bytes))
                .max_by_key(|&(i, b)| (b, std::cmp::Reverse(i)))?;
            if bytes.saturating_mul(twice_growth) <= total.saturating_mul(2) {
                return Some((s, e));
            }
            // Merging around the largest range grows it too little; try the
            // run before it, which starts at `start` like this one.
            e = s + largest;
        }
    }
    None
}

/// End of the run of adjacent small ranges from `start`, cut at the target.
fn small_run_end(ranges: &[RangeSize], usable: usize, start: usize, policy: MergePolicy) -> usize {
    let mut end = start;
    let mut bytes = 0u64;
    while end < usable {
        let r = &ranges[end];
        let adjacent = end == start || ranges[end - 1].end_offset == r.base_offset;
        if r.raw_bytes >= policy.small_range_bytes
            || !adjacent
            || (end > start && bytes + r.stored_bytes > policy.target_bytes)
        {
            break;
        }
        bytes += r.stored_bytes;
        end += 1;
    }
    end
}

/// Byte spans to GET from one object so that every block in `blocks`
/// (offset, stored length) is read, in offset order: blocks closer than
/// `max_gap` bytes share a span unless it would grow past `max_span`, so a
/// merge reads each source object in a few ranged GETs instead of one per
/// block, and reads little it does not need.
pub fn read_spans(blocks: &[(u64, u32)], max_gap: u64, max_span: u64) -> Vec<std::ops::Range<u64>> {
    let mut sorted: Vec<(u64, u32)> = blocks.to_vec();
    sorted.sort_unstable();
    let mut spans: Vec<std::ops::Range<u64>> = Vec::new();
    for (offset, len) in sorted {
        let end = offset + u64::from(len);
        match spans.last_mut() {
            Some(last)
                if offset <= last.end.saturating_add(max_gap)
                    && end.saturating_sub(last.start) <= max_span =>
            {
                last.end = last.end.max(end);
            }
            _ => spans.push(offset..end),
        }
    }
    spans
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
                raw_bytes: *s,
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

    /// Small is judged before compression: ranges that compressed well
    /// below the threshold but hold enough data are left alone.
    #[test]
    fn small_means_small_before_compression() {
        let mut rs = ranges(&[10, 10, 10]);
        assert_eq!(plan(&rs, POLICY, 0), Some((0, 3)));
        for r in &mut rs {
            r.raw_bytes = POLICY.small_range_bytes;
        }
        assert_eq!(plan(&rs, POLICY, 0), None);
    }

    #[test]
    fn a_grown_range_waits_for_enough_new_ones() {
        // 60 with three 10s would grow 60 by less than 2.5x: merge the 10s alone.
        assert_eq!(plan(&ranges(&[60, 10, 10, 10]), POLICY, 0), Some((1, 4)));
        assert_eq!(plan(&ranges(&[60, 10, 10]), POLICY, 0), None);
        // Once the small ones add up, the grown range joins them.
        assert_eq!(plan(&ranges(&[60, 40, 40, 40]), POLICY, 0), Some((0, 4)));
        // The run before a range too large to merge is still found.
        assert_eq!(
            plan(&ranges(&[10, 10, 10, 90, 10]), POLICY, 0),
            Some((0, 3))
        );
    }

    /// A queue trickling tiny ranges, merged after every upload: the bytes
    /// merges rewrite stay within a few times what was written, where
    /// merging the one growing range with each few new ones rewrote it
    /// hundreds of times.
    #[test]
    fn trickling_writes_are_rewritten_a_bounded_number_of_times() {
        let policy = MergePolicy {
            small_range_bytes: 10_000,
            min_ranges: 3,
            target_bytes: 1 << 30,
        };
        let mut rs: Vec<RangeSize> = Vec::new();
        let (mut written, mut rewritten) = (0u64, 0u64);
        for i in 0..2_000u64 {
            rs.push(RangeSize {
                base_offset: i,
                end_offset: i + 1,
                stored_bytes: 10,
                raw_bytes: 10,
            });
            written += 10;
            while let Some((s, e)) = plan(&rs, policy, 1) {
                let bytes: u64 = rs[s..e].iter().map(|r| r.stored_bytes).sum();
                rewritten += bytes;
                let merged = RangeSize {
                    base_offset: rs[s].base_offset,
                    end_offset: rs[e - 1].end_offset,
                    stored_bytes: bytes,
                    raw_bytes: bytes,
                };
                rs.splice(s..e, [merged]);
            }
        }
        // log_2.5(10_000 / 10) is under 8 rewrites per byte.
        assert!(
            rewritten <= 8 * written,
            "{rewritten} rewritten for {written} written"
        );
        assert!(rs.len() < 40, "ranges stay few: {}", rs.len());
    }

    #[test]
    fn spans_cover_blocks_and_bridge_small_gaps() {
        assert_eq!(read_spans(&[], 10, 1000), vec![]);
        assert_eq!(
            read_spans(&[(100, 50), (0, 100), (160, 10), (500, 20)], 10, 1000),
            vec![0..170, 500..520]
        );
        assert_eq!(
            read_spans(&[(0, 10), (11, 10)], 0, 1000),
            vec![0..10, 11..21]
        );
        assert_eq!(
            read_spans(&[(0, 100), (100, 100), (200, 100)], 10, 250),
            vec![0..200, 200..300],
            "a span stops growing at max_span"
        );
    }

    proptest! {
        #[test]
        fn spans_are_sorted_bounded_and_hold_every_block(
            layout in proptest::collection::vec((0u64..400, 1u32..500), 0..40),
            gap in 0u64..300,
            max_span in 1u64..2000,
        ) {
            // Blocks of an object never overlap: each starts some bytes
            // after the one before; the planner gets them in any order.
            let mut at = 0;
            let mut blocks: Vec<(u64, u32)> = layout
                .iter()
                .map(|&(skip, len)| {
                    let block = (at + skip, len);
                    at += skip + u64::from(len);
                    block
                })
                .collect();
            blocks.reverse();
            let spans = read_spans(&blocks, gap, max_span);
            for w in spans.windows(2) {
                prop_assert!(w[0].start < w[1].start, "{spans:?}");
            }
            for s in &spans {
                let widest = blocks.iter().map(|b| u64::from(b.1)).max().unwrap_or(0);
                prop_assert!(s.end - s.start <= max_span.max(widest), "{spans:?}");
            }
            // A block is in the last span starting at or before it (how a
            // merge finds it).
            for (offset, len) in &blocks {
                let end = offset + u64::from(*len);
                let span = spans.iter().rev().find(|s| s.start <= *offset);
                prop_assert!(span.is_some_and(|s| end <= s.end), "{spans:?}");
            }
        }

        #[test]
        fn plans_are_valid(sizes in proptest::collection::vec(1u64..300, 0..30), skip in 0usize..3) {
            let rs = ranges(&sizes);
            if let Some((s, e)) = plan(&rs, POLICY, skip) {
                prop_assert!(e - s >= POLICY.min_ranges);
                prop_assert!(e <= rs.len().saturating_sub(skip));
                prop_assert!(rs[s..e].iter().all(|r| r.raw_bytes < POLICY.small_range_bytes));
                prop_assert!(rs[s..e].iter().map(|r| r.stored_bytes).sum::<u64>() <= POLICY.target_bytes);
                let total: u64 = rs[s..e].iter().map(|r| r.stored_bytes).sum();
                prop_assert!(rs[s..e].iter().all(|r| r.stored_bytes * 5 <= total * 2), "every range grows 2.5x");
            }
        }
    }
}
