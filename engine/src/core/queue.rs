//! One queue as the engine holds it: its owner, its append lock, its
//! high-watermark watch, and its [`QueueLog`] (the index over the WAL and
//! the object ranges, in `strata_tiering::log`).

use std::sync::{Arc, MutexGuard};

use strata_common::QueueKey;
use strata_metadata::OwnerRecord;
pub(crate) use strata_tiering::log::{BatchRef, IndexEntry, QueueIndex as QueueInner, QueueLog};
use tokio::sync::watch;

/// Shared handle to one queue.
#[derive(Debug)]
pub(crate) struct QueueState {
    pub key: QueueKey,
    /// The tenant owning the queue's topic: who its usage is billed to.
    pub tenant: Arc<str>,
    pub owner: OwnerRecord,
    /// Serialises offset assignment + WAL hand-off for this queue.
    pub append_lock: tokio::sync::Mutex<()>,
    /// The queue's index over the tiers, shared with the readers.
    pub log: Arc<QueueLog>,
    high_watermark: watch::Sender<u64>,
    /// Shared by every queue of the topic: see [`TopicActivity`].
    activity: Arc<TopicActivity>,
}

/// Wakes the topic-wide waiters (long-polling receives) whenever something
/// may have become deliverable on any queue of a topic: new messages, or
/// an acknowledgement that frees the next message of a FIFO group.
/// A waiter subscribes before it looks, so no change between its look and
/// its wait is missed. Closed when the topic leaves this node (deleted, or
/// its tenant released), so that long polls on it end instead of waiting
/// out their time on a topic nobody will write to again.
#[derive(Debug)]
pub(crate) struct TopicActivity {
    changes: watch::Sender<u64>,
    closed: watch::Sender<bool>,
}

impl TopicActivity {
    pub fn new() -> Self {
        Self {
            changes: watch::Sender::new(0),
            closed: watch::Sender::new(false),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn bump(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The topic left this node: wakes every waiter for good.
    pub fn close(&self) {
        self.closed.send_replace(true);
        self.bump();
    }

    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Resolves once the topic has left this node.
    pub async fn wait_closed(&self) {
        let mut closed = self.closed.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = closed.wait_for(|c| *c).await;
    }
}

impl QueueState {
    pub fn new(
        key: QueueKey,
        tenant: Arc<str>,
        owner: OwnerRecord,
        activity: Arc<TopicActivity>,
    ) -> Self {
        let log = Arc::new(QueueLog::new(key, tenant.clone()));
        Self {
            key,
            tenant,
            owner,
            append_lock: tokio::sync::Mutex::new(()),
            log,
            high_watermark: watch::Sender::new(0),
            activity,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, QueueInner> {
        self.log.lock()
    }

    /// Publishes a new high watermark to long-polling readers.
    pub fn announce(&self, high_watermark: u64) {
        self.high_watermark.send_replace(high_watermark);
        self.activity.bump();
    }

    /// The topic-wide activity signal this queue bumps.
    pub fn activity(&self) -> &TopicActivity {
        &self.activity
    }

    pub fn watch(&self) -> watch::Receiver<u64> {
        self.high_watermark.subscribe()
    }
}
