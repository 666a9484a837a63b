//! Consumer groups and their committed offsets: `/v1/groups`.

use serde::{Deserialize, Serialize};
use strata_common::StartPosition;

fn earliest() -> StartPosition {
    StartPosition::Earliest
}

fn fifo_on() -> bool {
    true
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    pub name: String,
    /// Retry policy (the server's retry policy); defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delivery_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_initial_backoff_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_max_backoff_ms: Option<u64>,
    /// Where consumption by message starts on a queue the group never
    /// read: `latest` (default: messages published after the group was
    /// created) or `earliest` (every retained message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<StartPosition>,
    /// Whether FIFO topics are delivered in order, one message per message
    /// group at a time (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fifo: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OffsetJson {
    pub topic: String,
    pub queue: u32,
    pub offset: u64,
    pub lag: u64,
    pub updated_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct GroupJson {
    pub name: String,
    pub created_ms: i64,
    pub max_delivery_attempts: u32,
    pub retry_initial_backoff_ms: u64,
    pub retry_max_backoff_ms: u64,
    /// Servers before start positions answered without it: their groups
    /// started at the earliest message.
    #[serde(default = "earliest")]
    pub start: StartPosition,
    #[serde(default = "fifo_on")]
    pub fifo: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets: Option<Vec<OffsetJson>>,
    /// Where the group receives by message (the RocketMQ SDKs' consumers,
    /// `/receive`), per queue of each topic it receives from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving: Option<Vec<ReceivingJson>>,
}

/// One queue of a topic a group receives from by message.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReceivingJson {
    pub topic: String,
    pub queue: u32,
    /// The first offset never delivered to the group; absent where it has
    /// not received yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<u64>,
    /// Delivered, not yet acknowledged.
    pub in_flight: u64,
    /// Not delivered yet.
    pub ready: u64,
    /// `ready + in_flight`: what the group has yet to acknowledge.
    pub lag: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct GroupList {
    pub groups: Vec<GroupJson>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitOffset {
    /// The next offset the group will consume.
    pub offset: u64,
}

/// `PUT /v1/groups/{group}/offsets/{topic}`: moves the group on every
/// queue of the topic at once. Exactly one of the three fields.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetOffsets {
    /// `earliest` (each queue's first readable offset) or `latest` (each
    /// queue's end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The same offset on every queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Each queue's first message appended at or after this Unix ms time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
}

/// The offsets a reset committed, one per queue.
#[derive(Debug, Serialize, Deserialize)]
pub struct ResetJson {
    pub group: String,
    pub topic: String,
    pub offsets: Vec<QueueOffsetJson>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct QueueOffsetJson {
    pub queue: u32,
    pub offset: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CommittedJson {
    pub group: String,
    pub topic: String,
    pub queue: u32,
    /// `null` when the group never committed on this queue.
    pub offset: Option<u64>,
}
