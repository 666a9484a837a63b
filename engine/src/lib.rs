//! The Strata message engine.
//!
//! Topics have N queues; each queue has dense offsets. A publish assigns
//! offsets under the queue's append lock, hands one record per queue to the
//! write-ahead log (which group-commits many of them into one fdatasync) and
//! acknowledges once the record is durable. Reads are served by the tiered
//! log (`strata_tiering::log::Tiers`): the tail cache when recent, the WAL
//! through each queue's batch index, or object storage. Queue state is
//! rebuilt at startup from the object ranges and by replaying the WAL.
//!
//! Every queue has one owner, recorded in the metadata store with an epoch
//! that grows on every claim; batches carry the epoch, and later metadata
//! commits can be fenced on it (see [`Engine::owner_check`]).
//!
//! The crate is a core and features on top of it. [`core`](crate::core)
//! holds topics, queues, the publish and read paths, groups' offsets and
//! the tiered log; the features ([`pop`], [`delay`], [`txn`], [`lookup`],
//! and `pull`) each hold an `Arc` of the core and their own state and loop,
//! and never each other; [`Engine`] assembles them.

mod core;
pub mod delay;
mod engine;
mod error;
mod filter;
pub mod lookup;
pub mod pop;
mod pull;
pub mod txn;
mod types;

pub use crate::core::{
    SYSTEM_TOPIC_PREFIX, SYSTEM_TOPIC_RETENTION, WalLayer, check_object_store_for_start,
};
pub use engine::{COMPACTION_NICE, Engine};
pub use error::{EngineError, Result};
pub use lookup::{FoundMessage, FoundMessages, IndexMaintenance};
pub use pop::{
    DELIVERED_ALONE_FROM, MAX_DELIVERY_ATTEMPTS, Popped, ReceiptHandle, ReceiveRequest, TagFilter,
    dead_letter_topic,
};
pub use strata_compactor::{MaintenanceSummary, UploadSummary};
pub use strata_metadata::{
    GroupSpec, HalfRecord, IndexKind, MessageType, Retention, RetryPolicy, StartPosition,
};
pub use types::*;
