//! Consumption by message: receive, ack and change-invisible on `/v1/groups/{group}/…`.

use serde::{Deserialize, Serialize};

use crate::api::messages::StoredJson;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiveJson {
    pub topic: String,
    /// One queue only; absent: every queue of the topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_messages: Option<usize>,
    /// How long received messages stay invisible to the group (1 s..12 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invisible_ms: Option<u64>,
    /// Long poll: how long to wait when nothing is deliverable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    /// Tag filter: `*` (default) or `a || b`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct ReceivedJson {
    pub queue: u32,
    pub receipt_handle: String,
    /// 1 for the first delivery.
    pub attempt: u32,
    pub visible_at_ms: i64,
    pub message: StoredJson,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct ReceiveReply {
    pub messages: Vec<ReceivedJson>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AckJson {
    pub topic: String,
    pub receipt_handles: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct AckResult {
    pub receipt_handle: String,
    /// `OK`, or the error code (e.g. `INVALID_ARGUMENT` for a handle that
    /// expired, was superseded or was never issued).
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct AckReply {
    pub results: Vec<AckResult>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InvisibleJson {
    pub topic: String,
    pub receipt_handle: String,
    pub invisible_ms: u64,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct InvisibleReply {
    /// The new handle; the old one no longer works.
    pub receipt_handle: String,
}
