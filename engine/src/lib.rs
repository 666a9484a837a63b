//! The Strata message engine.
//!
//! Topics have N queues; each queue has dense offsets. A publish assigns
//! offsets under the queue's append lock, hands one record per queue to the
//! write-ahead log (which group-commits many of them into one fdatasync) and
//! acknowledges once the record is durable. Reads come from the tail cache
//! when recent, otherwise from the WAL through a per-queue batch index.
//! Queue state is rebuilt at startup by replaying the WAL.
//!
//! Every queue has one owner, recorded in the metadata store with an epoch
//! that grows on every claim; batches carry the epoch, and later metadata
//! commits can be fenced on it (see [`Engine::owner_check`]).

pub mod delay;
mod engine;
mod error;
mod groups;
pub mod lookup;
pub mod pop;
mod publish;
mod queue;
mod read;
mod tiered;
mod topic;
pub mod txn;
mod types;

pub use engine::Engine;
pub use error::{EngineError, Result};
pub use lookup::FoundMessage;
pub use pop::{
    MAX_DELIVERY_ATTEMPTS, Popped, ReceiptHandle, ReceiveRequest, TagFilter, dead_letter_topic,
};
pub use strata_compactor::{MaintenanceSummary, UploadSummary};
pub use strata_metadata::{
    GroupSpec, HalfRecord, IndexKind, MessageType, Retention, RetryPolicy, StartPosition,
};
pub use types::*;
