//! [`CompactorError`]: what can stop an upload or a maintenance pass.

use strata_metadata::CatalogError;
use strata_objects::ObjectError;

#[derive(Debug, thiserror::Error)]
pub enum CompactorError {
    /// The object store failed (after its retries) or refused.
    #[error(transparent)]
    Objects(#[from] ObjectError),
    /// The metadata store failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The log the compactor serves failed, or is gone.
    #[error("log: {0}")]
    Log(String),
    /// Another node owns one of the queues now; nothing was committed.
    #[error("{0}")]
    Fenced(String),
    /// An object's PUT took so long that garbage collection may already
    /// treat it as an orphan; it is not committed (the work is redone).
    #[error("{0}")]
    TooSlow(String),
    /// Stored bytes that do not decode.
    #[error("{0}")]
    Corrupt(String),
    /// An object could not be built.
    #[error("{0}")]
    Internal(String),
    /// The object store is not this namespace's (see `store_mark`).
    #[error("{0}")]
    WrongStore(String),
}

impl CompactorError {
    /// A stable name of the failure's kind: repeated failures are compared
    /// by it (their messages name objects that differ on every attempt).
    pub fn kind(&self) -> &'static str {
        match self {
            CompactorError::Objects(ObjectError::NotFound { .. }) => "object_missing",
            CompactorError::Objects(ObjectError::Unavailable { .. }) => "object_store_unavailable",
            CompactorError::Objects(ObjectError::Rejected { .. }) => "object_store_rejected",
            CompactorError::Objects(ObjectError::Config(_)) => "object_store_config",
            CompactorError::Catalog(_) => "metadata",
            CompactorError::Log(_) => "log",
            CompactorError::Fenced(_) => "fenced",
            CompactorError::TooSlow(_) => "too_slow",
            CompactorError::Corrupt(_) => "corrupt",
            CompactorError::Internal(_) => "internal",
            CompactorError::WrongStore(_) => "wrong_object_store",
        }
    }
}

pub type Result<T, E = CompactorError> = std::result::Result<T, E>;
