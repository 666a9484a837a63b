//! Errors of the block cache and the cold-read runtime.

use std::path::PathBuf;

/// Errors raised by [`crate::BlockCache`] and [`crate::ColdReader`].
///
/// Callers of the generic fetch paths (`get_or_fetch`, `run`) keep their own
/// error type `E` and only need `E: From<CacheError>`, so a cache failure can
/// be folded into whatever error the read path already reports.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The configuration cannot work (zero sizes, disk tier too small, ...).
    #[error("invalid cache configuration: {0}")]
    InvalidConfig(String),

    /// The disk-tier directory could not be created.
    #[error("cannot create block cache directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The hybrid cache engine (foyer) failed: building the disk tier,
    /// reading it back, or closing it.
    #[error("block cache {operation} failed: {source}")]
    Storage {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// Another caller's fetch of the same block failed while this caller was
    /// waiting on it (coalesced miss). The leader's original error went to the
    /// leader; followers get its message here.
    #[error("fetch of block {object}@{offset} failed: {message}")]
    FetchFailed {
        object: String,
        offset: u64,
        message: String,
    },

    /// The cold-read runtime could not be started.
    #[error("cannot start cold-read runtime: {0}")]
    Runtime(#[source] std::io::Error),

    /// A task on the cold-read runtime panicked or was cancelled because the
    /// runtime is shutting down.
    #[error("cold read task did not complete: {0}")]
    ColdTask(String),
}
