//! A live topic: its catalog record and its queues.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use strata_common::TopicId;
use strata_metadata::TopicRecord;

use crate::core::queue::QueueState;
use crate::error::{EngineError, Result};

#[derive(Debug)]
pub(crate) struct TopicState {
    pub record: TopicRecord,
    pub queues: Vec<Arc<QueueState>>,
    round_robin: AtomicU64,
}

impl TopicState {
    pub fn new(record: TopicRecord, queues: Vec<Arc<QueueState>>) -> Self {
        Self {
            record,
            queues,
            round_robin: AtomicU64::new(0),
        }
    }

    /// Wakes the topic's waiters for good: it left this node. Its queues
    /// share one activity signal.
    fn close(&self) {
        if let Some(q) = self.queues.first() {
            q.activity().close();
        }
    }

    /// Whether the topic left this node (see [`TopicState::close`]).
    pub fn is_closed(&self) -> bool {
        self.queues
            .first()
            .is_some_and(|q| q.activity().is_closed())
    }

    /// Subscribes to the topic's activity (see [`crate::core::queue::TopicActivity`]).
    pub fn activity(&self) -> tokio::sync::watch::Receiver<u64> {
        match self.queues.first() {
            Some(q) => q.activity().subscribe(),
            // A topic without queues never changes.
            None => tokio::sync::watch::Sender::new(0).subscribe(),
        }
    }

    pub fn queue(&self, queue: u32) -> Result<&Arc<QueueState>> {
        self.queues
            .get(queue as usize)
            .ok_or_else(|| EngineError::QueueNotFound {
                topic: self.record.name.clone(),
                queue,
                queues: self.record.queues,
            })
    }

    /// Queue for a message: its key's hash when it has one, otherwise the
    /// batch-wide round-robin choice `unkeyed`.
    pub fn route(&self, key: Option<&str>, unkeyed: u32) -> u32 {
        match key {
            Some(k) => (fnv1a(k.as_bytes()) % u64::from(self.record.queues)) as u32,
            None => unkeyed,
        }
    }

    /// Next round-robin queue for unkeyed messages.
    pub fn next_round_robin(&self) -> u32 {
        let n = self.round_robin.fetch_add(1, Ordering::Relaxed);
        (n % u64::from(self.record.queues)) as u32
    }
}

/// FNV-1a: a stable hash, so a key maps to the same queue across versions.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Every live topic, by (tenant, name) and by id.
#[derive(Debug, Default)]
pub(crate) struct Topics {
    by_name: HashMap<(String, String), Arc<TopicState>>,
    by_id: HashMap<TopicId, Arc<TopicState>>,
}

impl Topics {
    pub fn insert(&mut self, topic: Arc<TopicState>) {
        let key = (topic.record.tenant.clone(), topic.record.name.clone());
        self.by_id.insert(topic.record.id, topic.clone());
        if let Some(old) = self.by_name.insert(key, topic.clone())
            && !Arc::ptr_eq(&old, &topic)
        {
            old.close();
        }
    }

    /// Takes a topic off this node; its waiters wake and find it gone.
    pub fn remove(&mut self, tenant: &str, name: &str) -> Option<Arc<TopicState>> {
        let topic = self
            .by_name
            .remove(&(tenant.to_string(), name.to_string()))?;
        self.by_id.remove(&topic.record.id);
        topic.close();
        Some(topic)
    }

    pub fn get(&self, tenant: &str, name: &str) -> Option<&Arc<TopicState>> {
        self.by_name.get(&(tenant.to_string(), name.to_string()))
    }

    pub fn by_id(&self, id: TopicId) -> Option<&Arc<TopicState>> {
        self.by_id.get(&id)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<TopicState>> {
        self.by_id.values()
    }

    pub fn id_map(&self) -> HashMap<TopicId, Arc<TopicState>> {
        self.by_id.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::fnv1a;

    #[test]
    fn key_hash_is_stable() {
        // Pinned values: changing the hash would move keys between queues.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
