//! Lookup by message id or key: `GET /v1/topics/{topic}/messages?id=…|key=…`.

use crate::api::messages::StoredJson;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindParams {
    /// The message id to find (exactly one of `id` and `key`).
    pub id: Option<String>,
    /// The message key to find.
    pub key: Option<String>,
    /// Most messages to return (default 32, capped by the server's read
    /// limit); the reply's `more` says whether the limit cut the answer.
    pub limit: Option<usize>,
    /// "auto" or "base64", as for reads.
    pub encoding: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FoundJson {
    pub queue: u32,
    #[serde(flatten)]
    pub message: StoredJson,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FindReply {
    pub messages: Vec<FoundJson>,
    /// More messages match than `messages` holds (the limit cut them).
    #[serde(default)]
    pub more: bool,
}
