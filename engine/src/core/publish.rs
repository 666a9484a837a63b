//! The write path: validate, route, assign offsets, hand to the WAL, wait
//! for durability, make visible.

use std::collections::BTreeMap;
use std::sync::Arc;

use strata_common::clock::timeout;
use strata_common::limits::{
    MAX_KEY_LEN, MAX_PROPERTIES, MAX_PROPERTY_NAME_LEN, MAX_PROPERTY_VALUE_LEN,
    MAX_STORED_PROPERTIES, MAX_TAG_LEN,
};
use strata_common::usage::Counter;
use strata_common::{Message, RESERVED_PROPERTY_PREFIX, StoredMessage};
use strata_tiering::batch::encode_batch;
use strata_tiering::{PendingAppend, WalError};

use super::Core;
use super::queue::{BatchRef, IndexEntry, QueueState};
use super::topic::TopicState;
use crate::error::{EngineError, Result};
use crate::types::{PublishMessage, Published};
use strata_metadata::MessageType;

use strata_common::limits::MAX_MESSAGE_ID_LEN;

/// Whether an append is billed as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Billing {
    /// Messages a tenant publishes now, whatever path they take (a plain
    /// publish; the schedule and half topics, dead letters, a delay
    /// already due).
    Bill,
    /// Messages billed when they were accepted, delivered now to their
    /// topic (a delay that came due, a committed transaction).
    AlreadyBilled,
}

/// One queue's batch of a publish, encoded, before the WAL takes it.
struct Prepared {
    /// Where each message was in the publish.
    indexes: Vec<usize>,
    messages: Vec<Message>,
    base_offset: u64,
    timestamp_ms: i64,
    /// Bytes of the encoded batch.
    bytes: u64,
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

impl Core {
    /// Publishes a producer's messages and returns once all of them are
    /// durable. The topic's type must take plain messages: DELAY and
    /// TRANSACTION topics take theirs through their features, FIFO topics
    /// need a message group on each, NORMAL topics none.
    ///
    /// Messages for one queue keep their order and form one WAL record. A
    /// batch spanning queues is not atomic: on error some queues may have
    /// stored their part (retrying gives at-least-once delivery).
    pub async fn publish(
        self: &Arc<Self>,
        tenant: &str,
        topic_name: &str,
        mut messages: Vec<PublishMessage>,
    ) -> Result<Vec<Published>> {
        self.check_batch(&messages)?;
        check_client_fields(&messages)?;
        let topic = self.topic(tenant, topic_name)?;
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
                // A group goes to the queue its name hashes to, whatever
                // queue a producer named: producers that pick queues their
                // own way (each SDK hashes groups differently) would
                // otherwise split one group over queues and lose its order.
                for m in &mut messages {
                    m.queue = None;
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
        self.append(tenant, topic_name, messages, Billing::Bill)
            .await
    }

    /// Appends messages to any topic, whatever its type, and returns once
    /// all of them are durable: [`Core::publish`] after its checks, and the
    /// features storing or delivering the messages they took.
    pub(crate) async fn append(
        self: &Arc<Self>,
        tenant: &str,
        topic_name: &str,
        messages: Vec<PublishMessage>,
        billing: Billing,
    ) -> Result<Vec<Published>> {
        self.check_batch(&messages)?;
        let topic = self.topic(tenant, topic_name)?;
        let meter = billing == Billing::Bill;
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
        if !self.serves(tenant) {
            return Err(super::served::not_served(tenant));
        }
        let core = self.clone();
        let task = tokio::spawn(async move {
            let result = core.append_groups(&topic, groups, meter).await;
            drop(guard);
            result
        });
        let mut results = task
            .await
            .map_err(|e| EngineError::Internal(format!("append task failed: {e}")))??;
        results.sort_by_key(|(index, _)| *index);
        Ok(results.into_iter().map(|(_, p)| p).collect())
    }

    /// The engine is open and the batch holds 1 to the configured most
    /// messages.
    fn check_batch(&self, messages: &[PublishMessage]) -> Result<()> {
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
        Ok(())
    }

    async fn append_groups(
        &self,
        topic: &TopicState,
        groups: BTreeMap<u32, Vec<(usize, Message)>>,
        meter: bool,
    ) -> Result<Vec<(usize, Published)>> {
        // Behind a shut fence nothing is written, so that the refusal means
        // what it says and a client's retry stores the messages once.
        self.check_write_fence()?;
        let deadline = self.clock.monotonic() + self.config.append_timeout;
        let (in_flight, results) = self.submit(topic, groups, deadline).await?;
        let mut first_error = None;
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
        if first_error.is_none() {
            // Durable, but a node that may have lost its namespace to
            // another must not acknowledge: the other did not see it. The
            // fence shut while the write was under way, so it is stored.
            first_error = self.check_write_fence().err().map(|e| match e {
                EngineError::Refused { code, message } => EngineError::Refused {
                    code,
                    message: format!(
                        "{message}; these messages were written before the fence shut and \
                         may still be delivered, so a retry may store them twice"
                    ),
                },
                other => other,
            });
        }
        // A tenant released while this append was in flight is still
        // acknowledged: the release waits for the appends lock this append
        // holds until here, then uploads everything durable, this included,
        // before the tenant goes to another node. Refusing it would make a
        // client's retry store it twice.
        match first_error {
            Some(e) => Err(e),
            None => Ok(results),
        }
    }

    /// Assigns offsets and hands every queue's batch to the WAL together:
    /// all of them are written or none. The wait for the queues' turns
    /// counts against the append timeout like the wait for WAL room: a
    /// producer queued behind others that wait for room would otherwise
    /// wait out each of their timeouts in turn.
    async fn submit(
        &self,
        topic: &TopicState,
        groups: BTreeMap<u32, Vec<(usize, Message)>>,
        deadline: std::time::Duration,
    ) -> Result<(Vec<InFlight>, Vec<(usize, Published)>)> {
        let queues = groups
            .keys()
            .map(|queue| topic.queue(*queue).cloned())
            .collect::<Result<Vec<_>>>()?;
        // In ascending queue order (the map's), so that two publishes never
        // hold each other's next lock.
        let mut turns = Vec::with_capacity(queues.len());
        for q in &queues {
            let left = deadline.saturating_sub(self.clock.monotonic());
            match timeout(self.clock.as_ref(), left, q.append_lock.lock()).await {
                Some(turn) => turns.push(turn),
                None => {
                    let stats = self.wal.stats();
                    // The whole timeout went by waiting behind others.
                    return Err(WalError::Full {
                        waited_ms: self.config.append_timeout.as_millis() as u64,
                        used_bytes: stats.used_bytes,
                        max_bytes: stats.max_bytes,
                    }
                    .into());
                }
            }
        }
        let mut prepared = Vec::with_capacity(queues.len());
        let mut payloads = Vec::with_capacity(queues.len());
        for (q, messages) in queues.iter().zip(groups.into_values()) {
            let (base_offset, timestamp_ms) = {
                let inner = q.lock();
                (
                    inner.next_offset,
                    self.clock.now_ms().max(inner.last_timestamp_ms),
                )
            };
            let (indexes, messages): (Vec<usize>, Vec<Message>) = messages.into_iter().unzip();
            let payload = encode_batch(q.key, q.owner.epoch, base_offset, timestamp_ms, &messages)?;
            prepared.push(Prepared {
                indexes,
                messages,
                base_offset,
                timestamp_ms,
                bytes: payload.len() as u64,
            });
            payloads.push(payload);
        }
        let pending = self.wal.submit_all(payloads, deadline).await?;
        let mut in_flight = Vec::with_capacity(queues.len());
        let mut results = Vec::new();
        for ((q, batch), pending) in queues.iter().zip(prepared).zip(pending) {
            let (batch, published) = self.accepted(q, batch, pending);
            in_flight.push(batch);
            results.extend(published);
        }
        drop(turns);
        Ok((in_flight, results))
    }

    /// Indexes a batch the WAL took and puts it in the tail cache; it is
    /// read once durable.
    fn accepted(
        &self,
        q: &Arc<QueueState>,
        batch: Prepared,
        pending: PendingAppend,
    ) -> (InFlight, Vec<(usize, Published)>) {
        let Prepared {
            indexes,
            messages,
            base_offset,
            timestamp_ms,
            bytes,
        } = batch;
        let metered_bytes = messages.iter().map(|m| m.metered_size() as u64).sum();
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
        self.index_feed.push(q.key, base_offset, &messages);
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
                        deliver_at_ms: None,
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
        self.tiers.tail().insert(q.key, stored);
        let batch = InFlight {
            queue: q.clone(),
            end_offset: entry.end_offset(),
            pending,
            messages: u64::from(entry.count),
            metered_bytes,
        };
        (batch, published)
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
        // The reserved properties the server adds do not count against
        // the user's; the whole stays within what the format holds.
        let reserved = m
            .properties
            .iter()
            .filter(|(name, _)| name.starts_with(RESERVED_PROPERTY_PREFIX))
            .count();
        if m.properties.len() - reserved > MAX_PROPERTIES {
            return bad(format!("has more than {MAX_PROPERTIES} properties"));
        }
        if m.properties.len() > MAX_STORED_PROPERTIES {
            return bad(format!(
                "has more than {MAX_STORED_PROPERTIES} properties, reserved ones included"
            ));
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

/// Refuses what a client may not publish: keys, tags, ids and property
/// names the `strata_common::limits` rules reject (a tag with `|` or
/// whitespace no filter can name, a key with a space the RocketMQ key list
/// cannot hold, control characters anywhere). Only there: messages the
/// engine stores again (delayed, committed, dead-lettered) passed it, or
/// were stored before it existed, and must not be stuck by it.
pub(crate) fn check_client_fields<'a>(
    messages: impl IntoIterator<Item = &'a PublishMessage>,
) -> Result<()> {
    use strata_common::limits::{id_problem, key_problem, property_name_problem, tag_problem};
    for (index, m) in messages.into_iter().enumerate() {
        let m = &m.message;
        let problem = m
            .key
            .as_deref()
            .and_then(key_problem)
            .or_else(|| m.tag.as_deref().and_then(tag_problem))
            .or_else(|| (!m.id.is_empty()).then(|| id_problem(&m.id)).flatten())
            .or_else(|| {
                m.properties
                    .iter()
                    .find_map(|(name, _)| property_name_problem(name))
            });
        if let Some(problem) = problem {
            return Err(EngineError::InvalidArgument(format!(
                "message {index}: {problem}"
            )));
        }
    }
    Ok(())
}
