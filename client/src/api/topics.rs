//! Topics: `POST /v1/topics`, `GET /v1/topics`, `GET /v1/topics/{topic}`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    pub name: String,
    #[serde(default = "one")]
    pub queues: u32,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    /// "unlimited" or a duration such as "72h"; the server default if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
    /// Size limit per queue in bytes (oldest data goes first); none if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_bytes: Option<u64>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TopicJson {
    pub name: String,
    pub id: u64,
    pub queues: u32,
    #[serde(rename = "type")]
    pub message_type: String,
    pub retention: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_bytes: Option<u64>,
    pub created_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct QueueJson {
    pub queue: u32,
    pub first_offset: u64,
    pub end_offset: u64,
    pub messages: u64,
    pub bytes: u64,
    pub batches: u64,
    pub oldest_timestamp_ms: Option<i64>,
    pub newest_timestamp_ms: Option<i64>,
    pub owner_node: String,
    pub owner_epoch: u64,
    /// First offset still in the local WAL (hot tier), if any.
    pub wal_first_offset: Option<u64>,
    /// Offsets held in object storage (cold tier): `[first, end)`.
    pub object_first_offset: Option<u64>,
    pub object_end_offset: Option<u64>,
    pub object_bytes: u64,
    pub object_ranges: u64,
    pub objects: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TopicDetail {
    #[serde(flatten)]
    pub topic: TopicJson,
    pub queue_stats: Vec<QueueJson>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TopicList {
    pub topics: Vec<TopicJson>,
}

/// `GET /v1/topics/{topic}/queues/{queue}/offset?timestamp_ms=…`.
#[derive(Debug, Serialize, Deserialize)]
pub struct OffsetAtTime {
    pub queue: u32,
    pub timestamp_ms: i64,
    /// First offset appended at or after `timestamp_ms`; the end offset if none.
    pub offset: u64,
}
