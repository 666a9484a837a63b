//! The tail cache: recent batches of every queue, bounded by bytes.
//!
//! Batches are inserted in offset order per queue and evicted oldest-first
//! across all queues (insertion order), so a queue's cached messages are
//! always one contiguous range ending at its newest message. A read either
//! starts inside that range (hit) or falls back to the WAL (miss).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use strata_common::{QueueKey, StoredMessage};

struct CachedBatch {
    base_offset: u64,
    messages: Vec<StoredMessage>,
    bytes: usize,
}

impl CachedBatch {
    fn end_offset(&self) -> u64 {
        self.base_offset + self.messages.len() as u64
    }
}

#[derive(Default)]
struct Inner {
    queues: HashMap<QueueKey, VecDeque<Arc<CachedBatch>>>,
    /// Insertion order across queues: the eviction order.
    order: VecDeque<(QueueKey, u64)>,
    bytes: usize,
}

/// Counters for status pages and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailCacheStats {
    pub bytes: usize,
    pub capacity_bytes: usize,
    pub batches: usize,
    pub hits: u64,
    pub misses: u64,
}

/// Bounded in-memory cache of the newest batches of every queue.
pub struct TailCache {
    inner: Mutex<Inner>,
    capacity_bytes: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for TailCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailCache")
            .field("stats", &self.stats())
            .finish()
    }
}

fn batch_bytes(messages: &[StoredMessage]) -> usize {
    // Per-message overhead approximates the struct and allocation headers.
    messages.iter().map(|m| m.message.approx_size() + 96).sum()
}

impl TailCache {
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            capacity_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves only a cache behind; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a queue's newest batch. `messages` must be non-empty with dense
    /// offsets. A batch that does not continue the cached range replaces it.
    pub fn insert(&self, queue: QueueKey, messages: Vec<StoredMessage>) {
        let Some(first) = messages.first() else {
            return;
        };
        let base_offset = first.offset;
        let bytes = batch_bytes(&messages);
        if bytes > self.capacity_bytes {
            self.remove_queue(queue);
            return;
        }
        let batch = Arc::new(CachedBatch {
            base_offset,
            messages,
            bytes,
        });
        let mut inner = self.lock();
        let contiguous = inner
            .queues
            .get(&queue)
            .and_then(|q| q.back())
            .is_none_or(|last| last.end_offset() == base_offset);
        if !contiguous {
            drop_queue(&mut inner, queue);
        }
        inner.queues.entry(queue).or_default().push_back(batch);
        inner.order.push_back((queue, base_offset));
        inner.bytes += bytes;
        while inner.bytes > self.capacity_bytes {
            let Some((victim, victim_base)) = inner.order.pop_front() else {
                break;
            };
            evict_front(&mut inner, victim, victim_base);
        }
    }

    /// Messages from `offset` (inclusive) up to `end` (exclusive), at most
    /// `max_messages` and `max_bytes` (`Message::approx_size`; the first
    /// message is always taken, however large), if `offset` lies inside the
    /// cached range; `None` on a miss (the caller reads the WAL instead).
    pub fn read(
        &self,
        queue: QueueKey,
        offset: u64,
        end: u64,
        max_messages: usize,
        max_bytes: u64,
    ) -> Option<Vec<StoredMessage>> {
        let inner = self.lock();
        let batches = inner.queues.get(&queue);
        let covered = batches.is_some_and(|b| {
            b.front().is_some_and(|f| f.base_offset <= offset)
                && b.back().is_some_and(|l| offset < l.end_offset())
        });
        let Some(batches) = batches.filter(|_| covered) else {
            drop(inner);
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let start = batches.partition_point(|b| b.end_offset() <= offset);
        let mut out = Vec::new();
        let mut bytes = 0u64;
        // Offsets ascend within and across batches: stop at the first
        // message past the limit rather than visiting every later batch.
        'batches: for batch in batches.iter().skip(start) {
            for m in &batch.messages {
                if out.len() >= max_messages || m.offset >= end {
                    break 'batches;
                }
                if m.offset >= offset {
                    bytes += m.message.approx_size() as u64;
                    if !out.is_empty() && bytes > max_bytes {
                        break 'batches;
                    }
                    out.push(m.clone());
                }
            }
        }
        drop(inner);
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(out)
    }

    /// Forgets everything cached for a queue (e.g. its topic was deleted).
    pub fn remove_queue(&self, queue: QueueKey) {
        let mut inner = self.lock();
        drop_queue(&mut inner, queue);
    }

    /// Forgets a queue's cached messages below `offset` (retention released them).
    pub fn trim_below(&self, queue: QueueKey, offset: u64) {
        let mut inner = self.lock();
        let keep = inner
            .queues
            .get(&queue)
            .and_then(|q| q.front())
            .is_none_or(|f| f.base_offset >= offset);
        if !keep {
            drop_queue(&mut inner, queue);
        }
    }

    pub fn stats(&self) -> TailCacheStats {
        let inner = self.lock();
        TailCacheStats {
            bytes: inner.bytes,
            capacity_bytes: self.capacity_bytes,
            batches: inner.order.len(),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

fn drop_queue(inner: &mut Inner, queue: QueueKey) {
    if let Some(batches) = inner.queues.remove(&queue) {
        let freed: usize = batches.iter().map(|b| b.bytes).sum();
        inner.bytes -= freed;
        inner.order.retain(|(q, _)| *q != queue);
    }
}

fn evict_front(inner: &mut Inner, queue: QueueKey, base_offset: u64) {
    let Some(batches) = inner.queues.get_mut(&queue) else {
        return;
    };
    if batches
        .front()
        .is_some_and(|b| b.base_offset == base_offset)
        && let Some(batch) = batches.pop_front()
    {
        inner.bytes -= batch.bytes;
    }
    if batches.is_empty() {
        inner.queues.remove(&queue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use strata_common::Message;

    fn msg(offset: u64, body_len: usize) -> StoredMessage {
        StoredMessage {
            offset,
            timestamp_ms: 0,
            message: Message {
                id: format!("id{offset}"),
                body: vec![b'x'; body_len].into(),
                ..Message::default()
            },
        }
    }

    fn batch(base: u64, n: u64, body: usize) -> Vec<StoredMessage> {
        (base..base + n).map(|o| msg(o, body)).collect()
    }

    const Q: QueueKey = QueueKey { topic: 1, queue: 0 };

    #[test]
    fn reads_inside_range_hit_and_outside_miss() {
        let cache = TailCache::new(1 << 20);
        cache.insert(Q, batch(10, 5, 10));
        cache.insert(Q, batch(15, 5, 10));
        let got = cache.read(Q, 12, 20, 100, u64::MAX).unwrap();
        assert_eq!(
            got.iter().map(|m| m.offset).collect::<Vec<_>>(),
            (12..20).collect::<Vec<_>>()
        );
        assert_eq!(cache.read(Q, 12, 14, 100, u64::MAX).unwrap().len(), 2);
        assert_eq!(cache.read(Q, 12, 20, 3, u64::MAX).unwrap().len(), 3);
        assert!(cache.read(Q, 9, 20, 100, u64::MAX).is_none());
        assert!(cache.read(Q, 20, 25, 100, u64::MAX).is_none());
        let s = cache.stats();
        assert_eq!((s.hits, s.misses), (3, 2));
    }

    #[test]
    fn reads_stop_at_the_byte_budget_but_always_take_one() {
        let cache = TailCache::new(1 << 20);
        cache.insert(Q, batch(0, 10, 1000));
        let each = msg(0, 1000).message.approx_size() as u64;
        let offsets = |got: Vec<StoredMessage>| got.iter().map(|m| m.offset).collect::<Vec<_>>();
        assert_eq!(
            offsets(cache.read(Q, 2, 10, 100, 3 * each).unwrap()),
            [2, 3, 4]
        );
        assert_eq!(
            offsets(cache.read(Q, 2, 10, 100, 3 * each - 1).unwrap()),
            [2, 3]
        );
        assert_eq!(
            offsets(cache.read(Q, 2, 10, 100, 1).unwrap()),
            [2],
            "one, however large"
        );
    }

    #[test]
    fn evicts_oldest_batches_across_queues_within_budget() {
        let one = batch_bytes(&batch(0, 1, 1000));
        let cache = TailCache::new(one * 3);
        let other = QueueKey::new(2, 0);
        cache.insert(Q, batch(0, 1, 1000));
        cache.insert(other, batch(0, 1, 1000));
        cache.insert(Q, batch(1, 1, 1000));
        cache.insert(Q, batch(2, 1, 1000));
        assert!(cache.stats().bytes <= one * 3);
        assert!(
            cache.read(Q, 0, 3, 10, u64::MAX).is_none(),
            "oldest batch evicted"
        );
        assert!(cache.read(other, 0, 1, 10, u64::MAX).is_some());
        assert_eq!(cache.read(Q, 1, 3, 10, u64::MAX).unwrap().len(), 2);
    }

    #[test]
    fn non_contiguous_insert_replaces_queue_range() {
        let cache = TailCache::new(1 << 20);
        cache.insert(Q, batch(0, 3, 1));
        cache.insert(Q, batch(10, 2, 1));
        assert!(cache.read(Q, 0, 12, 10, u64::MAX).is_none());
        assert_eq!(cache.read(Q, 10, 12, 10, u64::MAX).unwrap().len(), 2);
        cache.trim_below(Q, 11);
        assert!(cache.read(Q, 11, 12, 10, u64::MAX).is_none());
        assert_eq!(cache.stats().bytes, 0);
    }

    proptest! {
        #[test]
        fn bytes_never_exceed_capacity_and_hits_are_exact(
            sizes in proptest::collection::vec((0u32..3, 1u64..5, 1usize..2000), 1..60),
            cap in 500usize..20_000,
        ) {
            let cache = TailCache::new(cap);
            let mut next = [0u64; 3];
            for (q, n, body) in sizes {
                let key = QueueKey::new(u64::from(q), 0);
                let base = next[q as usize];
                cache.insert(key, batch(base, n, body));
                next[q as usize] += n;
                prop_assert!(cache.stats().bytes <= cap);
            }
            for (q, end) in next.iter().enumerate() {
                let key = QueueKey::new(q as u64, 0);
                for off in 0..*end {
                    if let Some(got) = cache.read(key, off, *end, usize::MAX, u64::MAX) {
                        let offsets: Vec<u64> = got.iter().map(|m| m.offset).collect();
                        prop_assert_eq!(offsets, (off..*end).collect::<Vec<_>>());
                    }
                }
            }
        }
    }
}
