//! Decides which stored data may be released.
//!
//! Today the compactor's job on a single node is retention over the hot WAL:
//! given every live queue's retained batches, it finds the WAL position below
//! which nothing needs keeping. Uploading WAL spans to object storage and
//! merging objects join it with tiered storage.

pub mod retention;

pub use retention::{BatchRef, RetentionPolicy, release_bound};
