//! Read caches and the isolation of cold reads.
//!
//! - [`tail`]: the hot tail cache, the most recent batches of every queue
//!   kept in memory so tailing consumers never touch the disk.
//! - [`block`]: the hybrid block cache for cold reads. Compressed blocks of
//!   objects in object storage, kept in memory and spilled to a local disk
//!   tier (foyer), so a block is fetched from object storage once however
//!   many consumers replay it, and concurrent misses share one fetch.
//! - [`cold_reader`]: a separate tokio runtime with a concurrency cap and a
//!   bandwidth budget on which object-storage reads run, so replaying an old
//!   backlog cannot take worker threads or bandwidth from hot writes.
//!
//! A cold read typically combines the two: fetch the block through
//! `BlockCache::get_or_fetch` with a fetch closure that does
//! `ColdReader::run(object_store_read)`.

pub mod block;
pub mod cold_reader;
pub mod error;
pub mod tail;

pub use block::{BlockCache, BlockCacheConfig, BlockCacheStats, BlockKey};
pub use cold_reader::{ColdReader, ColdReaderConfig, ColdReaderStats};
pub use error::CacheError;
pub use tail::{TailCache, TailCacheStats};
