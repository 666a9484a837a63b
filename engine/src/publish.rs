//! The write path: validate, route, assign offsets, hand to the WAL, wait
//! for durability, make visible.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::queue::BatchRef;
use strata_common::limits::{
    MAX_KEY_LEN, MAX_PROPERTIES, MAX_PROPERTY_NAME_LEN, MAX_PROPERTY_VALUE_LEN, MAX_TAG_LEN,
};
use strata_common::usage::Counter;
use strata_common::{Message, StoredMessage};
use strata_tiering::PendingAppend;
use strata_tiering::batch::encode_batch;

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::queue::{IndexEntry, QueueState};
use crate::topic::TopicState;
use crate::types::{PublishMessage, Published};
use strata_metadata::MessageType;

/// Longest producer-supplied message id.
pub const MAX_MESSAGE_ID_LEN: usize = 128;

/// Who publishes, which decides the checks and the billing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A producer: the topic's type must take plain messages; billed.
    Client,
    /// The engine storing accepted messages (schedule and half topics,
    /// dead letters, a delay already due): any topic type; billed.
    Internal,
    /// The engine delivering messages billed when they were accepted
    /// (a delay that came due, a committed transaction): not billed again.
    Delivery,
}

/// A batch handed to the WAL, not yet durable.
struct InFlight {
    queue: Arc<QueueState>,
    end_offset: u64,
    pending: PendingAppend,
    /// Messages and metered bytes, counted once durable.
    messages: u64,
    metered_bytes: u64,
}

impl Engine {
    /// Publishes messages and returns once all of them are durable.
    ///
    /// Messages for one queue keep their order and form one WAL record. A
    /// batch spanning queues is not atomic: on error some queues may have
    /// stored their part (retrying gives at-least-once delivery).
    ///
    /// DELAY topics take their messages through [`Engine::publish_at`].
    pub async fn publish(
        self: &Arc<Self>,
        tenant: &str,
        topic: &str,
        messages: Vec<PublishMessage>,
    ) -> Result<Vec<Published>> {
        self.publish_with(tenant, topic, messages, Origin::Client)
            .await
    }

    /// [`Engine::publish`], for the engine's own publishes too.
    pub(crate) async fn publish_with(
        self: &Arc<Self>,
        tenant: &str,
        topic_name: &str,
        messages: Vec<PublishMessage>,
        origin: Origin,
    ) -> Result<Vec<Published>> {
        self.check_open()?;
        if messages.is_empty() {
            return Err(EngineError::InvalidArgument(
                "a publish needs at least one message".into(),
            ));
        }
        if messages.len() > self.config.max_batch_messages {
            return Err(EngineError::BatchTooLarge {
                count: messages.len(),
                limit: self.config.max_batch_messages,
            });
        }
        let topic = self.topic(tenant, topic_name)?;
        if origin == Origin::Client {
            match topic.record.message_type {
                MessageType::Delay => {
                    return Err(EngineError::InvalidArgument(format!(
                        "topic {topic_name:?} accepts DELAY messages: give each a delivery time"
                    )));
                }
                MessageType::Transaction => {
                    return Err(EngineError::InvalidArgument(format!(
                        "topic {topic_name:?} accepts TRANSACTION messages: send them as half messages and commit"
                    )));
                }
                MessageType::Fifo => {
                    if let Some(i) = messages
                        .iter()
                        .position(|m| m.message.message_group().is_none_or(str::is_empty))
                    {
                        return Err(EngineError::InvalidArgument(format!(
                            "message {i}: topic {topic_name:?} accepts FIFO messages: give each a message group"
                        )));
                    }
                }
                MessageType::Normal => {
                    if let Some(i) = messages
                        .iter()
                        .position(|m| m.message.message_group().is_some())
                    {
                        return Err(EngineError::InvalidArgument(format!(
                            "message {i}: topic {topic_name:?} accepts NORMAL messages, which carry no message group; create a FIFO topic for ordered groups"
                        )));
                    }
                }
            }
        }
        let meter = origin != Origin::Delivery;
        let unkeyed = topic.next_round_robin();
        let mut groups: BTreeMap<u32, Vec<(usize, Message)>> = BTreeMap::new();
        for (index, m) in messages.into_iter().enumerate() {
            self.validate(index, &m.message)?;
            let queue = match m.queue {
                Some(q) => {
                    topic.queue(q)?;
                    q
                }
                // A message group keeps to one queue, so its order holds.
                None => topic.route(
                    m.message.message_group().or(m.message.key.as_deref()),
                    unkeyed,
                ),
            };
            let mut message = m.message;
            if message.id.is_empty() {
                message.id = self.new_message_id();
            }
            groups.entry(queue).or_default().push((index, message));
        }
        // The append runs in its own task so a client that disconnects
        // cannot cancel it between the WAL hand-off and the bookkeeping.
        let guard = self.appends.clone().read_owned().await;
        self.check_open()?;
        let engine = self.clone();
        let task = tokio::spawn(async move {
            let result = engine.append_groups(&topic, groups, meter).await;
            drop(guard);
            result
        });
        let mut results = task
            .await
            .map_err(|e| EngineError::Internal(format!("append task failed: {e}")))??;
        results.sort_by_key(|(index, _)| *index);
        Ok(results.into_iter().map(|(_, p)| p).collect())
    }

    async fn append_groups(
        &self,
        topic: &TopicState,
        groups: BTreeMap<u32, Vec<(usize, Message)>>,
        meter: bool,
    ) -> Result<Vec<(usize, Published)>> {
        let mut results = Vec::new();
        let mut in_flight = Vec::new();
        let mut first_error = None;
        for (queue, messages) in groups {
            let q = topic.queue(queue)?.clone();
            match self.submit(&q, messages).await {
                Ok((batch, published)) => {
                    in_flight.push(batch);
                    results.extend(published);
                }
                Err(e) => {
                    first_error = Some(e);
                    break;
                }
            }
        }
        // Every submitted batch is seen through, even after an error, so
        // high watermarks keep moving.
        for batch in in_flight {
            match batch.pending.durable().await {
                Ok(_) => {
                    if let Some(hw) = batch.queue.lock().mark_durable(batch.end_offset) {
                        batch.queue.announce(hw);
                    }
                    let tenant = &batch.queue.tenant;
                    if !meter {
                        continue;
                    }
                    self.meter
                        .add(tenant, Counter::PublishedMessages, batch.messages);
                    self.meter
                        .add(tenant, Counter::PublishedBytes, batch.metered_bytes);
                }
                Err(e) => {
                    tracing::error!(queue = %batch.queue.key, error = %e, "append failed");
                    first_error.get_or_insert(e.into());
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(results),
        }
    }

    /// Assigns offsets and hands one queue's batch to the WAL.
    async fn submit(
        &self,
        q: &Arc<QueueState>,
        messages: Vec<(usize, Message)>,
    ) -> Result<(InFlight, Vec<(usize, Published)>)> {
        let _order = q.append_lock.lock().await;
        let (base_offset, timestamp_ms) = {
            let inner = q.lock();
            (
                inner.next_offset,
                self.clock.now_ms().max(inner.last_timestamp_ms),
            )
        };
        let (indexes, messages): (Vec<usize>, Vec<Message>) = messages.into_iter().unzip();
        let metered_bytes = messages.iter().map(|m| m.approx_size() as u64).sum();
        let payload = encode_batch(q.key, q.owner.epoch, base_offset, timestamp_ms, &messages)?;
        let bytes = payload.len() as u64;
        let pending = self.wal.submit(payload).await?;
        let entry = IndexEntry {
            base_offset,
            count: messages.len() as u32,
            bytes,
            at: BatchRef {
                lsn: pending.lsn,
                timestamp_ms,
            },
        };
        q.lock().append(entry);
        let published = indexes
            .into_iter()
            .zip(&messages)
            .zip(base_offset..)
            .map(|((index, m), offset)| {
                (
                    index,
                    Published {
                        queue: q.key.queue,
                        offset,
                        message_id: m.id.clone(),
                    },
                )
            })
            .collect();
        let stored = messages
            .into_iter()
            .zip(base_offset..)
            .map(|(message, offset)| StoredMessage {
                offset,
                timestamp_ms,
                message,
            })
            .collect();
        self.cache.insert(q.key, stored);
        let batch = InFlight {
            queue: q.clone(),
            end_offset: entry.end_offset(),
            pending,
            messages: u64::from(entry.count),
            metered_bytes,
        };
        Ok((batch, published))
    }

    fn validate(&self, index: usize, m: &Message) -> Result<()> {
        let limit = self.config.max_message_bytes;
        if m.body.len() > limit {
            return Err(EngineError::MessageTooLarge {
                index,
                size: m.body.len(),
                limit,
            });
        }
        let bad = |what: String| {
            Err(EngineError::InvalidArgument(format!(
                "message {index}: {what}"
            )))
        };
        if m.id.len() > MAX_MESSAGE_ID_LEN {
            return bad(format!("id is longer than {MAX_MESSAGE_ID_LEN} bytes"));
        }
        if m.key.as_ref().is_some_and(|k| k.len() > MAX_KEY_LEN) {
            return bad(format!("key is longer than {MAX_KEY_LEN} bytes"));
        }
        if m.tag.as_ref().is_some_and(|t| t.len() > MAX_TAG_LEN) {
            return bad(format!("tag is longer than {MAX_TAG_LEN} bytes"));
        }
        if m.properties.len() > MAX_PROPERTIES {
            return bad(format!("has more than {MAX_PROPERTIES} properties"));
        }
        for (name, value) in &m.properties {
            if name.is_empty() || name.len() > MAX_PROPERTY_NAME_LEN {
                return bad(format!(
                    "property names must be 1..={MAX_PROPERTY_NAME_LEN} bytes"
                ));
            }
            if value.len() > MAX_PROPERTY_VALUE_LEN {
                return bad(format!(
                    "property {name:?} is longer than {MAX_PROPERTY_VALUE_LEN} bytes"
                ));
            }
        }
        Ok(())
    }

    /// 32 hex digits: the millisecond clock then 64 random bits.
    fn new_message_id(&self) -> String {
        format!(
            "{:016X}{:016X}",
            self.clock.now_ms() as u64,
            self.clock.random_u64()
        )
    }
}
