//! The blocks cold reads decoded last, kept decoded for the reads after
//! them. A block holds about 256 KiB of one queue's batches and a receive
//! takes a few dozen messages, so readers going through a queue in order
//! would otherwise decompress the same block once per read: consumers
//! sharing a 16-queue topic, each taking two messages a queue, decompressed
//! about 128 times the bytes they returned. The block cache keeps blocks as
//! stored (compressed); this keeps the few being read right now decoded.
//!
//! Least recently used first out, bounded by decoded bytes
//! ([`DECODED_BLOCKS_BYTES`]) and by entries ([`DECODED_BLOCKS_MAX`], so
//! the linear lookup stays short when blocks are small). Objects are
//! immutable, so an entry never goes stale.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use strata_cache::BlockKey;

/// Decoded bytes kept at most.
pub const DECODED_BLOCKS_BYTES: usize = 16 << 20;
/// Blocks kept at most.
pub const DECODED_BLOCKS_MAX: usize = 128;

/// A block's batches, decompressed, and where each starts, so a read finds
/// its first batch by binary search instead of reading every header.
#[derive(Debug)]
pub struct DecodedBlock {
    pub payloads: Vec<Bytes>,
    /// (base offset, message count) of each payload.
    pub spans: Vec<(u64, u32)>,
    /// The spans are in offset order and do not overlap (a block is one
    /// queue's batches, written in order).
    ordered: bool,
}

impl DecodedBlock {
    pub fn new(payloads: Vec<Bytes>, spans: Vec<(u64, u32)>) -> Self {
        let ordered = spans
            .windows(2)
            .all(|w| w[0].0 + u64::from(w[0].1) <= w[1].0);
        Self {
            payloads,
            spans,
            ordered,
        }
    }

    /// The index of the first batch that may hold `offset` or later ones
    /// (every batch is looked at if they are somehow not in order).
    pub fn first_at(&self, offset: u64) -> usize {
        if !self.ordered {
            return 0;
        }
        self.spans
            .partition_point(|&(base, count)| base + u64::from(count) <= offset)
    }
}

#[derive(Debug, Default)]
pub(crate) struct DecodedBlocks {
    /// Most recently used last.
    lru: Mutex<Lru>,
}

#[derive(Debug, Default)]
struct Lru {
    entries: VecDeque<(BlockKey, Arc<DecodedBlock>, usize)>,
    bytes: usize,
}

impl DecodedBlocks {
    pub(crate) fn get(&self, key: &BlockKey) -> Option<Arc<DecodedBlock>> {
        let mut lru = self.lru.lock().unwrap_or_else(|p| p.into_inner());
        let at = lru.entries.iter().rposition(|(k, _, _)| k == key)?;
        let entry = lru.entries.remove(at)?;
        let block = entry.1.clone();
        lru.entries.push_back(entry);
        Some(block)
    }

    /// Keeps `block` (`bytes` decoded bytes), evicting the least recently
    /// used. A block larger than the whole budget is not kept.
    pub(crate) fn insert(&self, key: BlockKey, block: Arc<DecodedBlock>, bytes: usize) {
        if bytes > DECODED_BLOCKS_BYTES {
            return;
        }
        let mut lru = self.lru.lock().unwrap_or_else(|p| p.into_inner());
        if lru.entries.iter().any(|(k, _, _)| k == &key) {
            return;
        }
        while lru.bytes + bytes > DECODED_BLOCKS_BYTES || lru.entries.len() >= DECODED_BLOCKS_MAX {
            let Some((_, _, freed)) = lru.entries.pop_front() else {
                break;
            };
            lru.bytes -= freed;
        }
        lru.bytes += bytes;
        lru.entries.push_back((key, block, bytes));
    }

    /// Decoded bytes held.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lru.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(offset: u64) -> BlockKey {
        BlockKey {
            object: "o".into(),
            offset,
        }
    }

    fn block(tag: u8) -> Arc<DecodedBlock> {
        Arc::new(DecodedBlock::new(
            vec![Bytes::from(vec![tag])],
            vec![(0, 1)],
        ))
    }

    #[test]
    fn a_read_starts_at_the_batch_holding_its_offset() {
        let block = DecodedBlock::new(vec![Bytes::new(); 3], vec![(10, 5), (15, 1), (16, 4)]);
        let starts: Vec<usize> = [0, 10, 14, 15, 16, 19, 20, 99]
            .iter()
            .map(|&o| block.first_at(o))
            .collect();
        assert_eq!(starts, [0, 0, 0, 1, 2, 2, 3, 3]);
        let unordered = DecodedBlock::new(vec![Bytes::new(); 2], vec![(16, 4), (10, 5)]);
        assert_eq!(unordered.first_at(17), 0);
        let overlapping = DecodedBlock::new(vec![Bytes::new(); 2], vec![(10, 8), (15, 5)]);
        assert_eq!(overlapping.first_at(17), 0);
    }

    #[test]
    fn the_least_recently_used_goes_first_and_the_budget_holds() {
        let cache = DecodedBlocks::default();
        let quarter = DECODED_BLOCKS_BYTES / 4;
        for i in 0..4 {
            cache.insert(key(i), block(i as u8), quarter);
        }
        assert_eq!(cache.bytes(), DECODED_BLOCKS_BYTES);
        // Block 0 read again: block 1 is now the oldest.
        assert_eq!(cache.get(&key(0)).unwrap().payloads[0][0], 0);
        cache.insert(key(4), block(4), quarter);
        assert!(cache.get(&key(1)).is_none(), "evicted");
        for i in [0, 2, 3, 4] {
            assert_eq!(cache.get(&key(i)).unwrap().payloads[0][0], i as u8);
        }
        assert_eq!(cache.bytes(), DECODED_BLOCKS_BYTES);
        // Too big for the budget: not kept, nothing evicted for it.
        cache.insert(key(9), block(9), DECODED_BLOCKS_BYTES + 1);
        assert!(cache.get(&key(9)).is_none());
        assert!(cache.get(&key(4)).is_some());
    }

    #[test]
    fn entries_are_bounded_when_blocks_are_small() {
        let cache = DecodedBlocks::default();
        for i in 0..(DECODED_BLOCKS_MAX as u64 + 10) {
            cache.insert(key(i), block(0), 1);
        }
        assert_eq!(cache.bytes(), DECODED_BLOCKS_MAX);
        assert!(cache.get(&key(9)).is_none());
        assert!(cache.get(&key(10)).is_some());
        // The same block twice is kept once.
        cache.insert(key(10), block(0), 1);
        assert_eq!(cache.bytes(), DECODED_BLOCKS_MAX);
    }
}
