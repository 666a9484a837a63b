//! Publishing and reading by offset: `/v1/topics/{topic}/messages`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PublishJson {
    pub messages: Vec<MessageJson>,
}

#[derive(Debug, Deserialize, Serialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct MessageJson {
    /// Producer-chosen id; the server assigns one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Body as UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Body as standard base64 (for binary data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<u32>,
    /// DELAY topics: when to deliver (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at_ms: Option<i64>,
    /// FIFO topics: the message group (required there, refused elsewhere);
    /// messages of one group are delivered in order, one at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_group: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParams {
    pub key: Option<String>,
    pub tag: Option<String>,
    pub queue: Option<u32>,
    pub id: Option<String>,
    pub deliver_at_ms: Option<i64>,
    pub message_group: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PublishedJson {
    /// Where the message landed; absent for a delayed message still
    /// waiting for its time (it lands when delivered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    pub id: String,
    /// For a delayed message still waiting: when it will be delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at_ms: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PublishReply {
    pub messages: Vec<PublishedJson>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    /// First offset to return; the queue's first retained offset if absent.
    pub offset: Option<u64>,
    /// Most messages to return (capped by the server's limit).
    pub limit: Option<usize>,
    /// Long-poll: how long to wait when `offset` is the end of the queue.
    pub wait_ms: Option<u64>,
    /// "auto" (text when the body is UTF-8, else base64) or "base64".
    pub encoding: Option<String>,
    /// Consumer group reading (must exist): messages it was given before
    /// are metered as redeliveries.
    pub group: Option<String>,
    /// Tag filter: `*` or tags joined by `||`. Messages that do not match
    /// are skipped (neither returned nor metered); `next_offset` is past
    /// them, unless the reply was cut by the tenant's consume quotas.
    pub tags: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StoredJson {
    pub offset: u64,
    pub timestamp_ms: i64,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// FIFO topics: the message's group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_group: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ReadReply {
    pub messages: Vec<StoredJson>,
    pub next_offset: u64,
    pub first_offset: u64,
    pub end_offset: u64,
}
