//! [`Retention`]: how long a topic keeps its messages. The topic record
//! stores it, the engine reads it, the compactor's expiry plans with it.

use serde::{Deserialize, Serialize};

/// How long a topic keeps messages. Stored as `"unlimited"` or `{"ms":N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retention {
    /// Keep everything.
    Unlimited,
    /// Keep messages appended within the last `ms` milliseconds.
    Ms(u64),
}
