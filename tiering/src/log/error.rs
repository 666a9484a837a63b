//! [`TierError`]: what a read, a release or a span scan over the tiers can
//! hit.

use strata_cache::CacheError;
use strata_objects::ObjectError;

use crate::wal::WalError;

#[derive(Debug, thiserror::Error)]
pub enum TierError {
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The object store failed (after its retries) or refused.
    #[error("object storage unavailable: {0}")]
    ObjectStore(String),
    /// A range points at an object that is gone: corrupt, unless a
    /// separate compactor merged the range away since it was read.
    #[error("stored data is corrupt: object {0} is referenced but missing")]
    ObjectMissing(String),
    #[error("block cache: {0}")]
    Cache(#[from] CacheError),
    /// Stored bytes that do not decode.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Opening a tier failed (object store, block cache, cold-read runtime).
    #[error("{0}")]
    Open(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ObjectError> for TierError {
    fn from(e: ObjectError) -> Self {
        match e {
            ObjectError::NotFound { key } => TierError::ObjectMissing(key),
            other => TierError::ObjectStore(other.to_string()),
        }
    }
}

/// A blocking task that did not finish (panicked or was cancelled).
pub(crate) fn task_failed(what: &str) -> impl FnOnce(tokio::task::JoinError) -> TierError + '_ {
    move |e| TierError::Internal(format!("{what} task failed: {e}"))
}
