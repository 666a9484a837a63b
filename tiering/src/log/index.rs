//! One queue's index over the tiers: offsets, where each batch still in the
//! WAL sits (hot), the object ranges that hold older ones (cold), and the
//! visible end.
//!
//! The engine assigns offsets under its per-queue append lock, in the same
//! order it hands the batches to the WAL, so per-queue WAL order equals offset order. A batch
//! becomes visible (below the high watermark) only once it and every earlier
//! batch of the queue are durable: readers never see data a crash could take
//! back.

use std::collections::VecDeque;
use std::sync::Arc;

use strata_metadata::RangeRecord;

/// Where one batch sits in the WAL and when it was appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRef {
    pub lsn: u64,
    pub timestamp_ms: i64,
}

/// Where one retained batch lives in the WAL.
#[derive(Debug, Clone, Copy)]
pub struct IndexEntry {
    pub base_offset: u64,
    pub count: u32,
    pub bytes: u64,
    pub at: BatchRef,
}

impl IndexEntry {
    pub fn end_offset(&self) -> u64 {
        self.base_offset + u64::from(self.count)
    }
}

#[derive(Debug)]
struct PendingBatch {
    end_offset: u64,
    durable: bool,
}

#[derive(Debug, Default)]
pub struct QueueIndex {
    /// First offset still retained.
    pub first_offset: u64,
    /// Next offset to assign (may run ahead of `high_watermark`).
    pub next_offset: u64,
    /// End of the durable, readable range.
    pub high_watermark: u64,
    /// Newest append timestamp, so timestamps never go backwards in a queue.
    pub last_timestamp_ms: i64,
    /// Batches still in the WAL (hot), oldest first.
    pub index: VecDeque<IndexEntry>,
    /// Bytes of `index`.
    pub retained_bytes: u64,
    /// Ranges in object storage (cold), oldest first; may overlap the
    /// oldest hot batches until their WAL space is released.
    pub cold: VecDeque<Arc<RangeRecord>>,
    /// Bytes of `cold`.
    pub cold_bytes: u64,
    pending: VecDeque<PendingBatch>,
    /// Loaded past a gap (a lost owner's offsets): counts subtract it.
    gapped: bool,
}

/// The first offset of a queue still stored, from its object ranges
/// (sorted by offset) and its floor (below which its data is gone): what a
/// node loading the queue starts it at.
pub fn first_stored_offset(ranges: &[RangeRecord], floor: u64) -> u64 {
    ranges.first().map_or(floor, |r| r.base_offset.max(floor))
}

impl QueueIndex {
    /// Entries holding offsets from `offset` on, in order.
    pub fn entries_from(&self, offset: u64) -> impl Iterator<Item = &IndexEntry> {
        let start = self.index.partition_point(|e| e.end_offset() <= offset);
        self.index.iter().skip(start)
    }

    /// End of the offsets held in object storage.
    pub fn cold_end(&self) -> Option<u64> {
        self.cold.back().map(|r| r.end_offset)
    }

    /// Bytes of the batches only the WAL holds (not yet in object
    /// storage) and still retained: what the queue stores hot. Uploaded
    /// batches stay in the WAL until their segment is released, and are
    /// counted cold only (or not at all once retention removed them).
    pub fn hot_only_bytes(&self) -> u64 {
        let from = self.cold_end().unwrap_or(0).max(self.first_offset);
        self.entries_from(from).map(|e| e.bytes).sum()
    }

    /// How many WAL batches hold offsets from `offset` on (binary search,
    /// not a walk: the WAL may hold millions).
    pub fn batches_from(&self, offset: u64) -> usize {
        self.index.len() - self.index.partition_point(|e| e.end_offset() <= offset)
    }

    /// First offset still in the WAL, if any.
    pub fn hot_first(&self) -> Option<u64> {
        self.index.front().map(|e| e.base_offset)
    }

    /// The first stored offset (in object storage or the WAL) at or after
    /// `offset`, if any: past a gap, the offsets a lost owner took.
    pub fn next_stored(&self, offset: u64) -> Option<u64> {
        let i = self.cold.partition_point(|r| r.end_offset <= offset);
        let cold = self.cold.get(i).map(|r| r.base_offset.max(offset));
        let hot = self
            .entries_from(offset)
            .next()
            .map(|e| e.base_offset.max(offset));
        cold.into_iter().chain(hot).min()
    }

    /// Messages readable from `from` to the high watermark: what retention
    /// removed and what nothing stores (a lost owner's gap) left out. A
    /// queue's retained count, and the lag of a reader at `from`.
    pub fn readable_from(&self, from: u64) -> u64 {
        let from = from.max(self.first_offset);
        let end = self.high_watermark;
        end.saturating_sub(from)
            .saturating_sub(self.unstored_between(from, end))
    }

    /// Offsets in `[from, to)` past the first retained one that nothing
    /// stores: the gap a lost owner's queue goes on after. Retained counts
    /// and lags subtract them.
    pub fn unstored_between(&self, from: u64, to: u64) -> u64 {
        let from = from.max(self.first_offset);
        if !self.gapped || from >= to {
            return 0;
        }
        // Cold ranges, then WAL batches (the oldest may overlap the last
        // ranges), all in offset order: count each offset once.
        let spans = self.cold.iter().map(|r| (r.base_offset, r.end_offset));
        let spans = spans.chain(self.index.iter().map(|e| (e.base_offset, e.end_offset())));
        let (mut at, mut stored) = (from, 0);
        for (base, end) in spans {
            let (start, stop) = (base.max(at), end.min(to));
            if stop > start {
                stored += stop - start;
                at = stop;
            }
        }
        (to - from).saturating_sub(stored)
    }

    /// The cold range holding `offset`.
    pub fn cold_range(&self, offset: u64) -> Option<Arc<RangeRecord>> {
        let i = self.cold.partition_point(|r| r.end_offset <= offset);
        self.cold
            .get(i)
            .filter(|r| r.base_offset <= offset)
            .cloned()
    }

    /// Loads the queue's object ranges at startup: offsets continue after
    /// them, or after `floor` or `resume` (a lost owner's gap), whichever
    /// is latest.
    pub fn load_cold(&mut self, ranges: Vec<RangeRecord>, floor: u64, resume: u64) {
        let end = ranges
            .last()
            .map_or(0, |r| r.end_offset)
            .max(floor)
            .max(resume);
        self.set_floor(end);
        self.gapped = !ranges.is_empty() && resume > ranges.last().map_or(0, |r| r.end_offset);
        self.first_offset = match ranges.is_empty() {
            true => end,
            false => first_stored_offset(&ranges, floor),
        };
        for r in ranges {
            self.cold_bytes += r.stored_bytes;
            self.cold.push_back(Arc::new(r));
        }
    }

    /// Appends a just-committed upload range.
    pub fn push_cold(&mut self, range: RangeRecord) {
        if self.cold.is_empty() && self.index.is_empty() {
            self.first_offset = range.base_offset;
        }
        self.cold_bytes += range.stored_bytes;
        self.cold.push_back(Arc::new(range));
    }

    /// Swaps the `count` cold ranges starting at `start` for `merged`, if
    /// they are still the ones the merge read.
    pub fn replace_cold(&mut self, old: &[RangeRecord], merged: RangeRecord) -> bool {
        let Some(start) = self
            .cold
            .iter()
            .position(|r| r.base_offset == old.first().map_or(u64::MAX, |o| o.base_offset))
        else {
            return false;
        };
        let same = old.len() <= self.cold.len() - start
            && old
                .iter()
                .zip(self.cold.iter().skip(start))
                .all(|(a, b)| a == b.as_ref());
        if !same {
            return false;
        }
        for r in self.cold.drain(start..start + old.len()) {
            self.cold_bytes -= r.stored_bytes;
        }
        self.cold_bytes += merged.stored_bytes;
        self.cold.insert(start, Arc::new(merged));
        true
    }

    /// Takes the queue's cold ranges as the metadata store holds them now
    /// (a separate compactor uploaded, merged or expired some); `floor`,
    /// when known, is where retention moved the queue's start.
    pub fn sync_cold(&mut self, ranges: Vec<RangeRecord>, floor: Option<u64>) {
        if let Some(first) = ranges.first() {
            self.first_offset = self.first_offset.max(first.base_offset);
        }
        if let Some(floor) = floor {
            self.first_offset = self.first_offset.max(floor.min(self.next_offset));
        }
        self.cold_bytes = ranges.iter().map(|r| r.stored_bytes).sum();
        self.cold = ranges.into_iter().map(Arc::new).collect();
    }

    /// Drops the `count` oldest cold ranges (retention) and moves the first
    /// offset past them.
    pub fn expire_cold(&mut self, count: usize) {
        for _ in 0..count {
            if let Some(r) = self.cold.pop_front() {
                self.cold_bytes -= r.stored_bytes;
                self.first_offset = self.first_offset.max(r.end_offset);
            }
        }
    }

    /// Records a batch replayed from the WAL at startup. Returns false (and
    /// keeps nothing) for a batch below the queue's floor or out of sequence.
    pub fn recover(&mut self, entry: IndexEntry, timestamp_ms: i64) -> bool {
        if entry.base_offset < self.next_offset {
            return false;
        }
        if entry.base_offset != self.next_offset {
            if !self.index.is_empty() {
                return false;
            }
            if self.cold.is_empty() {
                self.first_offset = entry.base_offset;
            }
        }
        self.push(entry, timestamp_ms);
        self.high_watermark = self.next_offset;
        true
    }

    fn push(&mut self, entry: IndexEntry, timestamp_ms: i64) {
        self.next_offset = entry.end_offset();
        self.retained_bytes += entry.bytes;
        self.last_timestamp_ms = self.last_timestamp_ms.max(timestamp_ms);
        self.index.push_back(entry);
    }

    /// Registers a batch just handed to the WAL (not yet durable).
    pub fn append(&mut self, entry: IndexEntry) {
        self.pending.push_back(PendingBatch {
            end_offset: entry.end_offset(),
            durable: false,
        });
        self.push(entry, entry.at.timestamp_ms);
    }

    /// Marks the batch ending at `end_offset` durable; returns the new high
    /// watermark if it moved.
    pub fn mark_durable(&mut self, end_offset: u64) -> Option<u64> {
        if let Some(p) = self.pending.iter_mut().find(|p| p.end_offset == end_offset) {
            p.durable = true;
        }
        let before = self.high_watermark;
        while self.pending.front().is_some_and(|p| p.durable) {
            if let Some(p) = self.pending.pop_front() {
                self.high_watermark = p.end_offset;
            }
        }
        (self.high_watermark != before).then_some(self.high_watermark)
    }

    /// Drops index entries whose WAL data is gone. Data that was uploaded
    /// stays readable from its cold ranges.
    pub fn release_below(&mut self, first_lsn: u64) {
        while self.index.front().is_some_and(|e| e.at.lsn < first_lsn) {
            if let Some(e) = self.index.pop_front() {
                self.retained_bytes -= e.bytes;
            }
        }
        if self.cold.is_empty() {
            let first = self
                .index
                .front()
                .map_or(self.next_offset, |e| e.base_offset);
            self.first_offset = self.first_offset.max(first);
        }
    }

    /// Starts an empty queue at `floor` (offsets below it were released earlier).
    pub fn set_floor(&mut self, floor: u64) {
        self.first_offset = floor;
        self.next_offset = floor;
        self.high_watermark = floor;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_common::QueueKey;

    fn entry(base: u64, count: u32, lsn: u64) -> IndexEntry {
        IndexEntry {
            base_offset: base,
            count,
            bytes: 10,
            at: BatchRef {
                lsn,
                timestamp_ms: 0,
            },
        }
    }

    #[test]
    fn high_watermark_waits_for_earlier_batches() {
        let mut q = QueueIndex::default();
        q.append(entry(0, 2, 0));
        q.append(entry(2, 3, 100));
        assert_eq!(q.mark_durable(5), None, "later batch alone is not visible");
        assert_eq!(q.high_watermark, 0);
        assert_eq!(q.mark_durable(2), Some(5));
        assert_eq!(q.next_offset, 5);
    }

    #[test]
    fn recovery_skips_below_floor_and_accepts_gap_only_when_empty() {
        let mut q = QueueIndex::default();
        q.set_floor(4);
        assert!(!q.recover(entry(0, 4, 0), 0), "released batch skipped");
        assert!(q.recover(entry(4, 2, 10), 0));
        assert!(!q.recover(entry(9, 1, 20), 0), "gap after data refused");
        assert_eq!((q.first_offset, q.next_offset, q.high_watermark), (4, 6, 6));

        let mut fresh = QueueIndex::default();
        assert!(fresh.recover(entry(7, 1, 0), 0));
        assert_eq!(fresh.first_offset, 7);
    }

    fn range(base: u64, end: u64) -> RangeRecord {
        RangeRecord {
            queue: QueueKey::new(1, 0),
            base_offset: base,
            end_offset: end,
            object: format!("o{base}"),
            blocks: Vec::new(),
            min_timestamp_ms: 0,
            max_timestamp_ms: 0,
            stored_bytes: end - base,
        }
    }

    #[test]
    fn synced_cold_ranges_only_move_the_start_forward() {
        let mut q = QueueIndex::default();
        q.append(entry(0, 10, 0));
        q.mark_durable(10);
        q.sync_cold(vec![range(0, 4), range(4, 10)], None);
        assert_eq!((q.first_offset, q.cold_bytes, q.cold.len()), (0, 10, 2));
        // A merge elsewhere: one range now.
        q.sync_cold(vec![range(0, 10)], None);
        assert_eq!((q.first_offset, q.cold_bytes, q.cold.len()), (0, 10, 1));
        // Retention expired everything up to 10; the floor says so.
        q.sync_cold(Vec::new(), Some(10));
        assert_eq!((q.first_offset, q.cold_bytes), (10, 0));
        // An older view never moves the start back.
        q.sync_cold(vec![range(0, 10)], Some(0));
        assert_eq!(q.first_offset, 10);
    }

    #[test]
    fn a_resume_point_leaves_a_gap_that_reads_step_over() {
        // Ranges end at 10; a lost owner's offsets follow; the queue goes
        // on at 1000.
        let mut q = QueueIndex::default();
        q.load_cold(vec![range(0, 4), range(4, 10)], 0, 1000);
        assert_eq!(
            (q.first_offset, q.next_offset, q.high_watermark),
            (0, 1000, 1000)
        );
        assert_eq!(q.next_stored(2), Some(2));
        assert_eq!(q.next_stored(10), None);
        q.append(entry(1000, 5, 0));
        q.mark_durable(1005);
        assert_eq!(q.next_stored(10), Some(1000));
        assert_eq!(q.next_stored(500), Some(1000));
        assert_eq!(q.next_stored(1002), Some(1002));
        assert_eq!(q.next_stored(1005), None);
        assert_eq!(q.unstored_between(0, 1005), 990);
        assert_eq!(q.unstored_between(5, 1003), 990);
        assert_eq!(q.unstored_between(1001, 1005), 0);
        // Nothing stored yet: the queue starts at the resume point.
        let mut empty = QueueIndex::default();
        empty.load_cold(Vec::new(), 7, 1000);
        assert_eq!((empty.first_offset, empty.high_watermark), (1000, 1000));
        let mut plain = QueueIndex::default();
        plain.load_cold(Vec::new(), 7, 0);
        assert_eq!((plain.first_offset, plain.high_watermark), (7, 7));
    }

    #[test]
    fn release_moves_first_offset() {
        let mut q = QueueIndex::default();
        q.append(entry(0, 2, 0));
        q.append(entry(2, 2, 100));
        q.mark_durable(2);
        q.mark_durable(4);
        q.release_below(50);
        assert_eq!((q.first_offset, q.retained_bytes), (2, 10));
        q.release_below(u64::MAX);
        assert_eq!(q.first_offset, 4);
        assert_eq!(q.entries_from(0).count(), 0);
    }
}
