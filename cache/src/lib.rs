//! Read caches.
//!
//! Today this holds the hot tail cache: the most recent batches of every
//! queue, kept in memory so tailing consumers never touch the disk. The
//! hybrid block cache for cold object-storage reads joins it with tiered
//! storage.

pub mod tail;

pub use tail::{TailCache, TailCacheStats};
