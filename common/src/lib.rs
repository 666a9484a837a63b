//! Domain types at the bottom of the Strata dependency graph.
//!
//! Nothing here does I/O (the one exception starts threads: the background
//! runtime). Every other crate may depend on this one; this one depends on
//! no other Strata crate.

pub mod background;
pub mod block;
pub mod clock;
pub mod code;
pub mod histogram;
pub mod limits;
pub mod message;
pub mod names;
pub mod quotas;
pub mod retention;
pub mod rfc3339;
pub mod start;
pub mod task;
pub mod usage;

pub use background::BackgroundRuntime;
pub use block::BlockRef;
pub use clock::{Clock, ManualClock, SystemClock};
pub use code::ErrorCode;
pub use histogram::{LatencyHistogram, LatencySnapshot};
pub use message::{
    KEYS_PROPERTY, MESSAGE_GROUP_PROPERTY, Message, QueueKey, RESERVED_PROPERTY_PREFIX,
    StoredMessage, TopicId,
};
pub use quotas::Quotas;
pub use retention::Retention;
pub use start::StartPosition;

/// Prefix of topic names the engine keeps for itself (the schedule of
/// delayed messages, transactions' half messages): clients cannot create or
/// name them, lists leave them out, and they do not keep a tenant from
/// being deleted.
pub const SYSTEM_TOPIC_PREFIX: &str = "__sys-";

/// Whether `name` is one of the engine's hidden topics.
pub fn is_hidden_topic(name: &str) -> bool {
    name.starts_with(SYSTEM_TOPIC_PREFIX)
}
