//! The index feed: ids and keys of appended messages, handed to the message
//! index task so it need not read the messages back.
//!
//! Reading back was the index's whole cost whenever it fell a few seconds
//! behind: by then the messages had left the tail cache and the WAL, and it
//! fetched them from object storage, one GET per block per queue (about
//! 2,000 GETs per GiB published on one queue, 90,000 on 10,000 queues).
//!
//! Appends push in offset order per queue (under the queue's append lock).
//! The feed is a cache, not a log: it holds at most [`MAX_FED_BYTES`],
//! refuses pushes beyond that, and is empty after a restart. The index task
//! takes what continues its mark and reads back only the gaps.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use strata_common::{Message, QueueKey};
use strata_objects::index_run::{ValueKind, entry_hash};

/// Most memory the feed holds (32 MiB, counted as [`FED_BYTES`] per
/// message, more for a message with several keys): about 800,000
/// messages, many index passes' worth. Part of the server's memory budget
/// (README).
pub const MAX_FED_BYTES: usize = 32 << 20;

/// What the index needs of one appended message: the hashes its id and
/// keys are filed under (hashed here, so the feed holds no strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FedMessage {
    pub offset: u64,
    pub id: Option<u64>,
    keys: FedKeys,
}

/// A message's key hashes. Most messages have one key or none; the few
/// with several (RocketMQ producers may give several) pay a separate
/// allocation, so every fed message stays 40 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FedKeys {
    None,
    One(u64),
    // A thin pointer to the rare vector keeps the enum at 16 bytes (a
    // `Box<[u64]>` alone is 16, and the enum would need a tag beside it).
    #[allow(clippy::box_collection)]
    Many(Box<Vec<u64>>),
}

const _: () = assert!(std::mem::size_of::<FedMessage>() == 40);

impl FedMessage {
    pub(crate) fn new(queue: QueueKey, offset: u64, message: &Message) -> Self {
        let mut hashes = message
            .keys()
            .map(|key| entry_hash(queue.topic, ValueKind::Key, key));
        let keys = match (hashes.next(), hashes.next()) {
            (None, _) => FedKeys::None,
            (Some(one), None) => FedKeys::One(one),
            (Some(first), Some(second)) => {
                let mut all = vec![first, second];
                all.extend(hashes);
                FedKeys::Many(Box::new(all))
            }
        };
        Self {
            offset,
            id: (!message.id.is_empty())
                .then(|| entry_hash(queue.topic, ValueKind::Id, &message.id)),
            keys,
        }
    }

    /// The first key's hash, if the message has a key.
    #[cfg(test)]
    fn key(&self) -> Option<u64> {
        self.key_hashes().first().copied()
    }

    fn key_hashes(&self) -> &[u64] {
        match &self.keys {
            FedKeys::None => &[],
            FedKeys::One(one) => std::slice::from_ref(one),
            FedKeys::Many(all) => all,
        }
    }

    /// Every hash the message is filed under.
    pub(crate) fn hashes(&self) -> impl Iterator<Item = u64> + '_ {
        self.id.into_iter().chain(self.key_hashes().iter().copied())
    }
}

/// Bytes one fed message is counted as, before its extra keys.
const FED_BYTES: usize = std::mem::size_of::<FedMessage>();

fn fed_bytes(m: &FedMessage) -> usize {
    match &m.keys {
        FedKeys::Many(all) => FED_BYTES + all.len() * 8,
        FedKeys::None | FedKeys::One(_) => FED_BYTES,
    }
}

#[derive(Debug, Default)]
struct Inner {
    queues: HashMap<QueueKey, VecDeque<FedMessage>>,
    bytes: usize,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct IndexFeed {
    inner: Mutex<Inner>,
}

impl IndexFeed {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere leaves a cache behind; the index can read back.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `messages` of `queue`, the first at `base_offset`; nothing if
    /// the feed is full (the index task then reads them back).
    pub(crate) fn push(&self, queue: QueueKey, base_offset: u64, messages: &[Message]) {
        if self.lock().bytes + messages.len() * FED_BYTES > MAX_FED_BYTES {
            return;
        }
        // Hashed outside the lock; appends of other queues push meanwhile.
        let entries: Vec<FedMessage> = messages
            .iter()
            .zip(base_offset..)
            .map(|(m, offset)| FedMessage::new(queue, offset, m))
            .collect();
        let bytes = entries.iter().map(fed_bytes).sum::<usize>();
        let mut inner = self.lock();
        if inner.bytes + bytes > MAX_FED_BYTES {
            return;
        }
        inner.bytes += bytes;
        inner.queues.entry(queue).or_default().extend(entries);
    }

    /// Takes up to `max` of `queue`'s messages that continue `from`
    /// without a gap and lie below `below` (the durable end); drops any
    /// before `from` (indexed or expired). Empty if the next one fed is not
    /// at `from`.
    pub(crate) fn take(
        &self,
        queue: QueueKey,
        from: u64,
        below: u64,
        max: usize,
    ) -> Vec<FedMessage> {
        let mut inner = self.lock();
        let Some(fed) = inner.queues.get_mut(&queue) else {
            return Vec::new();
        };
        let mut freed = 0;
        while let Some(m) = fed.front().filter(|m| m.offset < from) {
            freed += fed_bytes(m);
            fed.pop_front();
        }
        let mut taken = Vec::new();
        let mut next = from;
        while taken.len() < max
            && next < below
            && let Some(m) = fed.front()
            && m.offset == next
        {
            next += 1;
            freed += fed_bytes(m);
            taken.extend(fed.pop_front());
        }
        if fed.is_empty() {
            inner.queues.remove(&queue);
        }
        inner.bytes -= freed;
        taken
    }

    /// Forgets every queue not in `indexed` (deleted topics, system topics).
    pub(crate) fn retain(&self, indexed: &HashSet<QueueKey>) {
        let mut inner = self.lock();
        let mut forgotten = 0;
        inner.queues.retain(|q, fed| {
            let keep = indexed.contains(q);
            if !keep {
                forgotten += fed.iter().map(fed_bytes).sum::<usize>();
            }
            keep
        });
        inner.bytes -= forgotten;
    }

    /// Messages held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().queues.values().map(VecDeque::len).sum()
    }

    /// Bytes held now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn messages(n: usize) -> Vec<Message> {
        (0..n)
            .map(|i| Message {
                id: format!("id-{i}"),
                body: Bytes::from_static(b"x"),
                ..Message::default()
            })
            .collect()
    }

    #[test]
    fn takes_what_continues_the_mark_below_the_durable_end() {
        let feed = IndexFeed::default();
        let q = QueueKey::new(1, 0);
        feed.push(q, 10, &messages(5));
        assert!(feed.take(q, 9, 100, 10).is_empty(), "a gap before 10");
        let got = feed.take(q, 11, 13, 10);
        assert_eq!(got.iter().map(|m| m.offset).collect::<Vec<_>>(), [11, 12]);
        let want = entry_hash(1, ValueKind::Id, "id-1");
        assert_eq!((got[0].id, got[0].key()), (Some(want), None));
        assert_eq!(feed.len(), 2, "10 dropped, 13 and 14 wait");
        assert_eq!(feed.take(q, 13, 100, 1).len(), 1);
        assert_eq!(feed.take(q, 14, 100, 10).len(), 1);
        assert_eq!((feed.len(), feed.bytes()), (0, 0));
    }

    #[test]
    fn is_bounded_by_bytes_and_forgets_queues_no_longer_indexed() {
        let feed = IndexFeed::default();
        let (a, b) = (QueueKey::new(1, 0), QueueKey::new(2, 0));
        let full = MAX_FED_BYTES / FED_BYTES;
        feed.push(a, 0, &messages(full - 1));
        feed.push(a, full as u64 - 1, &messages(1));
        assert_eq!(feed.bytes(), full * FED_BYTES);
        feed.push(b, 0, &messages(1));
        assert_eq!(feed.len(), full, "a full feed refuses");
        assert_eq!(feed.take(a, 0, 1, 10).len(), 1);
        feed.push(b, 0, &messages(1));
        assert_eq!(feed.len(), full);
        feed.retain(&HashSet::from([b]));
        assert_eq!(feed.len(), 1);
        assert_eq!(feed.take(b, 0, 2, 10).len(), 1);
        assert_eq!(feed.bytes(), 0);
    }
}
