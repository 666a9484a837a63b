//! [`StartPosition`]: where a new consumer group starts. Stored with the
//! group, sent and read over the HTTP API.

use serde::{Deserialize, Serialize};

/// Where a consumer group starts consuming by message on a queue it never
/// consumed before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartPosition {
    /// The oldest message still retained.
    Earliest,
    /// The first message appended since the group was created: what
    /// RocketMQ's proxy asks for (`ConsumeInitMode.MAX`), the default.
    Latest,
}

impl StartPosition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Earliest => "earliest",
            Self::Latest => "latest",
        }
    }
}

impl std::str::FromStr for StartPosition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "earliest" => Ok(Self::Earliest),
            "latest" => Ok(Self::Latest),
            other => Err(format!(
                "start position {other:?} is neither \"earliest\" nor \"latest\""
            )),
        }
    }
}
