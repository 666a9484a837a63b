//! The catalog's record types, stored as JSON values.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use strata_common::TopicId;

/// How a topic's messages are delivered (RocketMQ's topic message types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    Normal,
    Fifo,
    Delay,
    Transaction,
}

impl MessageType {
    /// Every variant, in declaration order.
    pub const ALL: [MessageType; 4] = [
        MessageType::Normal,
        MessageType::Fifo,
        MessageType::Delay,
        MessageType::Transaction,
    ];

    /// The lowercase name used in APIs, config and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Normal => "normal",
            MessageType::Fifo => "fifo",
            MessageType::Delay => "delay",
            MessageType::Transaction => "transaction",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a [`MessageType`] name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown message type {0:?}; allowed values: normal, fifo, delay, transaction")]
pub struct ParseMessageTypeError(pub String);

impl FromStr for MessageType {
    type Err = ParseMessageTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| ParseMessageTypeError(s.to_string()))
    }
}

pub use strata_common::Retention;

/// What a new topic is created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewTopic {
    pub queues: u32,
    pub message_type: MessageType,
    pub retention: Retention,
    pub retention_bytes: Option<u64>,
}

/// A topic. `id` is permanent and never reused, even after deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub id: TopicId,
    pub tenant: String,
    pub name: String,
    pub queues: u32,
    pub message_type: MessageType,
    pub retention: Retention,
    /// Size limit of the topic's data per queue, if any (older data goes first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_bytes: Option<u64>,
    pub created_ms: i64,
}

/// A consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub tenant: String,
    pub name: String,
    pub created_ms: i64,
    /// Random at creation: tells a group from one deleted before it under
    /// the same name (0 for groups stored before it existed).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub incarnation: u64,
    /// Groups stored before retry policies existed have the default.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Groups stored before start positions existed started at the earliest.
    #[serde(default = "earliest_start")]
    pub start: StartPosition,
    /// Whether FIFO topics are consumed in order (RocketMQ's
    /// `consumeMessageOrderly`). Groups stored before it existed had it on.
    #[serde(default = "fifo_on")]
    pub fifo: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// When a group is created, and its random incarnation
/// ([`GroupRecord::incarnation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupStamp {
    pub now_ms: i64,
    pub incarnation: u64,
}

fn fifo_on() -> bool {
    true
}

/// What a consumer group is created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSpec {
    pub retry: RetryPolicy,
    pub start: StartPosition,
    pub fifo: bool,
}

impl Default for GroupSpec {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::DEFAULT,
            start: StartPosition::Latest,
            fifo: true,
        }
    }
}

pub use strata_common::StartPosition;

fn earliest_start() -> StartPosition {
    StartPosition::Earliest
}

/// How a consumer group retries messages it received but did not
/// acknowledge in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Deliveries of one message before it moves to the group's
    /// dead-letter topic.
    pub max_delivery_attempts: u32,
    /// After a delivery's invisible time ends unacknowledged, the message
    /// waits this long before it is delivered again, doubling with every
    /// attempt up to `max_backoff_ms`. 0: delivered again at once.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl RetryPolicy {
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        max_delivery_attempts: 16,
        initial_backoff_ms: 0,
        max_backoff_ms: 0,
    };
    /// Most attempts a policy may allow.
    pub const MAX_ATTEMPTS_LIMIT: u32 = 1000;
    /// Longest backoff a policy may ask for (12 h, the longest invisible time).
    pub const MAX_BACKOFF_LIMIT_MS: u64 = 12 * 3600 * 1000;

    /// Why the policy is unusable, if it is.
    pub fn problem(&self) -> Option<String> {
        if !(1..=Self::MAX_ATTEMPTS_LIMIT).contains(&self.max_delivery_attempts) {
            return Some(format!(
                "max_delivery_attempts must be 1 to {}",
                Self::MAX_ATTEMPTS_LIMIT
            ));
        }
        if self.initial_backoff_ms > Self::MAX_BACKOFF_LIMIT_MS
            || self.max_backoff_ms > Self::MAX_BACKOFF_LIMIT_MS
        {
            return Some(format!(
                "backoffs may be at most {} ms (12 h)",
                Self::MAX_BACKOFF_LIMIT_MS
            ));
        }
        if self.max_backoff_ms < self.initial_backoff_ms {
            return Some("max_backoff_ms must be at least initial_backoff_ms".into());
        }
        None
    }

    /// The wait after delivery `attempt` (1-based) expired unacknowledged.
    pub fn backoff_ms(&self, attempt: u32) -> u64 {
        let doublings = attempt.saturating_sub(1).min(40);
        self.initial_backoff_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_backoff_ms)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::DEFAULT
    }
}

/// Which node owns a queue, and the fencing epoch of that ownership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    pub node: String,
    pub epoch: u64,
}

/// A consumer group's committed position in one queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub topic_id: TopicId,
    pub queue: u32,
    pub offset: u64,
    pub updated_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_type_names_round_trip() {
        for t in MessageType::ALL {
            assert_eq!(t.to_string().parse::<MessageType>().unwrap(), t);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{t}\""));
        }
        let err = "FIFO".parse::<MessageType>().unwrap_err().to_string();
        assert!(err.contains("normal, fifo, delay, transaction"), "{err}");
    }

    /// Range records hold block references: their encoding must not change.
    #[test]
    fn block_ref_encoding_is_stable() {
        let block = strata_common::BlockRef {
            base_offset: 1,
            end_offset: 2,
            min_timestamp_ms: 3,
            max_timestamp_ms: 4,
            offset: 5,
            len: 6,
            raw_len: 7,
            crc32c: 8,
        };
        assert_eq!(
            serde_json::to_string(&block).unwrap(),
            "{\"base_offset\":1,\"end_offset\":2,\"min_timestamp_ms\":3,\"max_timestamp_ms\":4,\"offset\":5,\"len\":6,\"raw_len\":7,\"crc32c\":8}"
        );
    }

    #[test]
    fn retention_encoding_is_stable() {
        assert_eq!(
            serde_json::to_string(&Retention::Unlimited).unwrap(),
            "\"unlimited\""
        );
        assert_eq!(
            serde_json::to_string(&Retention::Ms(5)).unwrap(),
            "{\"ms\":5}"
        );
    }
}
