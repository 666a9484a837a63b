//! Engine errors, each mapped to one service [`ErrorCode`].

use strata_common::ErrorCode;
use strata_metadata::{CatalogError, MetaError};
use strata_tiering::WalError;
use strata_tiering::batch::BatchError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    InvalidName(#[from] strata_common::names::NameError),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("message {index} has a {size}-byte body; the limit is {limit} bytes")]
    MessageTooLarge {
        index: usize,
        size: usize,
        limit: usize,
    },
    #[error("batch has {count} messages; the limit is {limit}")]
    BatchTooLarge { count: usize, limit: usize },
    #[error("topic {0:?} does not exist")]
    TopicNotFound(String),
    #[error("topic {0:?} already exists")]
    TopicAlreadyExists(String),
    #[error(
        "topic {topic:?} has {queues} queue(s), numbered 0 to {}; queue {queue} does not exist",
        queues.saturating_sub(1)
    )]
    QueueNotFound {
        topic: String,
        queue: u32,
        queues: u32,
    },
    #[error("consumer group {0:?} does not exist")]
    GroupNotFound(String),
    #[error(
        "offset {offset} is outside queue {queue} of topic {topic:?}: {}",
        readable(*first, *end)
    )]
    OffsetOutOfRange {
        topic: String,
        queue: u32,
        offset: u64,
        first: u64,
        end: u64,
    },
    #[error("{0}")]
    WalFull(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("write-ahead log unavailable: {0}")]
    WalFailed(String),
    #[error("metadata conflict: {0}")]
    Conflict(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("object storage unavailable: {0}")]
    ObjectStore(String),
    /// A range the node knows points at an object that is gone: corrupt,
    /// unless a separate compactor merged the range away since.
    #[error("stored data is corrupt: object {0} is referenced but missing")]
    ObjectMissing(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// A receipt handle that names no current delivery.
    #[error("invalid receipt handle: {0}")]
    InvalidReceiptHandle(String),
    /// A transaction id that names no open transaction.
    #[error("invalid transaction: {0}")]
    InvalidTransaction(String),
    /// A catalog refusal with its own service code (tenants, keys).
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
}

impl EngineError {
    /// The same failure again, for each of several requests it ended
    /// (same code and message; the errors are not `Clone`).
    pub fn shared(&self) -> EngineError {
        match self {
            EngineError::Conflict(m) => EngineError::Conflict(m.clone()),
            EngineError::Internal(m) => EngineError::Internal(m.clone()),
            EngineError::InvalidReceiptHandle(m) => EngineError::InvalidReceiptHandle(m.clone()),
            EngineError::ShuttingDown => EngineError::ShuttingDown,
            other => EngineError::Refused {
                code: other.code(),
                message: other.to_string(),
            },
        }
    }

    pub fn code(&self) -> ErrorCode {
        use EngineError::*;
        match self {
            InvalidReceiptHandle(_) | InvalidTransaction(_) => ErrorCode::InvalidArgument,
            InvalidName(_) => ErrorCode::InvalidName,
            InvalidArgument(_) => ErrorCode::InvalidArgument,
            MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
            BatchTooLarge { .. } => ErrorCode::BatchTooLarge,
            TopicNotFound(_) => ErrorCode::TopicNotFound,
            TopicAlreadyExists(_) => ErrorCode::TopicAlreadyExists,
            QueueNotFound { .. } => ErrorCode::QueueNotFound,
            GroupNotFound(_) => ErrorCode::GroupNotFound,
            OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            WalFull(_) => ErrorCode::WalFull,
            ShuttingDown | WalFailed(_) => ErrorCode::Unavailable,
            Conflict(_) => ErrorCode::Conflict,
            ObjectStore(_) => ErrorCode::Unavailable,
            Corrupt(_) | ObjectMissing(_) | Internal(_) => ErrorCode::Internal,
            Refused { code, .. } => *code,
        }
    }
}

impl From<WalError> for EngineError {
    fn from(e: WalError) -> Self {
        match e {
            WalError::Full { .. } => EngineError::WalFull(e.to_string()),
            WalError::Closed => EngineError::ShuttingDown,
            // Only a restart repairs it (the WAL recovers at start); a write
            // that failed may have left complete records recovery keeps.
            WalError::Failed(_) => EngineError::WalFailed(format!(
                "{e}; this node refuses publishes until it restarts (`strata serve` stops by \
                 itself for that, and its /healthz fails meanwhile), and messages of the \
                 write that failed may still be delivered, so a retry may store them twice"
            )),
            // What was submitted at once (one publish) is more than the WAL
            // takes at once: no retry clears it.
            WalError::TooLarge { len, max } => EngineError::Refused {
                code: ErrorCode::PayloadTooLarge,
                message: format!(
                    "the messages of this publish take {len} bytes in the write-ahead log, \
                     more than the {max} bytes it takes at once (half of wal.max_bytes); \
                     send them in smaller publishes"
                ),
            },
            other => EngineError::WalFailed(other.to_string()),
        }
    }
}

impl From<strata_objects::ObjectError> for EngineError {
    fn from(e: strata_objects::ObjectError) -> Self {
        match e {
            // A committed range points at a missing object: corruption, not an outage.
            strata_objects::ObjectError::NotFound { key } => EngineError::ObjectMissing(key),
            other => EngineError::ObjectStore(other.to_string()),
        }
    }
}

impl From<strata_objects::index_run::RunFormatError> for EngineError {
    fn from(e: strata_objects::index_run::RunFormatError) -> Self {
        EngineError::Corrupt(e.to_string())
    }
}

impl From<strata_tiering::log::TierError> for EngineError {
    fn from(e: strata_tiering::log::TierError) -> Self {
        use strata_tiering::log::TierError as T;
        match e {
            T::Wal(e) => e.into(),
            T::ObjectStore(m) => EngineError::ObjectStore(m),
            T::ObjectMissing(key) => EngineError::ObjectMissing(key),
            T::Corrupt(m) => EngineError::Corrupt(m),
            T::Cache(e) => EngineError::Internal(format!("block cache: {e}")),
            T::Open(m) | T::Internal(m) => EngineError::Internal(m),
        }
    }
}

impl From<BatchError> for EngineError {
    fn from(e: BatchError) -> Self {
        EngineError::InvalidArgument(e.to_string())
    }
}

impl From<MetaError> for EngineError {
    /// A backend that failed (etcd without quorum, a connection reset, a
    /// timeout) is a retryable outage, not a bug; its details go to the
    /// log, not to the tenant. Whether a write that failed this way was
    /// applied is unknown, and the answer says so.
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::Backend(detail) => {
                tracing::warn!(error = %detail, "metadata store request failed");
                EngineError::Refused {
                    code: ErrorCode::Unavailable,
                    message: "the metadata store is unavailable; retry (a change refused this \
                              way may have been applied)"
                        .into(),
                }
            }
            other => EngineError::Internal(other.to_string()),
        }
    }
}

impl From<strata_compactor::CompactorError> for EngineError {
    fn from(e: strata_compactor::CompactorError) -> Self {
        use strata_compactor::CompactorError as C;
        match e {
            C::Objects(e) => e.into(),
            C::Catalog(e) => e.into(),
            C::Fenced(m) => EngineError::Conflict(m),
            C::Corrupt(m) => EngineError::Corrupt(m),
            C::Log(m) | C::TooSlow(m) | C::Internal(m) | C::WrongStore(m) => {
                EngineError::Internal(m)
            }
        }
    }
}

impl From<CatalogError> for EngineError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::TopicAlreadyExists { name, .. } => EngineError::TopicAlreadyExists(name),
            CatalogError::TopicNotFound { name, .. } => EngineError::TopicNotFound(name),
            CatalogError::GroupNotFound { name, .. } => EngineError::GroupNotFound(name),
            CatalogError::Conflict(m) => EngineError::Conflict(m),
            CatalogError::AccessKeyAlreadyExists { access_key } => {
                EngineError::Conflict(format!("access key {access_key} already exists"))
            }
            CatalogError::Meta(m) => m.into(),
            CatalogError::NamespaceServed(m)
            | CatalogError::NodeIdTaken(m)
            | CatalogError::NodeForgotten(m) => EngineError::Internal(m),
            other @ (CatalogError::TenantAlreadyExists { .. }
            | CatalogError::TenantNotFound { .. }
            | CatalogError::TenantNotEmpty { .. }
            | CatalogError::KeyNotFound { .. }) => {
                let code = match &other {
                    CatalogError::TenantAlreadyExists { .. } => ErrorCode::TenantAlreadyExists,
                    CatalogError::TenantNotFound { .. } => ErrorCode::TenantNotFound,
                    CatalogError::TenantNotEmpty { .. } => ErrorCode::TenantNotEmpty,
                    _ => ErrorCode::KeyNotFound,
                };
                EngineError::Refused {
                    code,
                    message: other.to_string(),
                }
            }
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// The readable offsets of a queue whose first is `first` and whose next
/// message gets `end`, in words (`first..end` read as inclusive).
fn readable(first: u64, end: u64) -> String {
    if first >= end {
        format!("it holds no message; the next one gets offset {end}")
    } else {
        format!(
            "readable offsets are {first} to {}; the next message gets offset {end}",
            end - 1
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_as_what_exists() {
        let missing = EngineError::QueueNotFound {
            topic: "t".into(),
            queue: 1,
            queues: 1,
        };
        assert!(missing.to_string().contains("1 queue(s), numbered 0 to 0"));
        let out = |first, end| {
            EngineError::OffsetOutOfRange {
                topic: "t".into(),
                queue: 0,
                offset: 5000,
                first,
                end,
            }
            .to_string()
        };
        assert!(out(0, 1019).contains("readable offsets are 0 to 1018"));
        assert!(out(7, 7).contains("holds no message; the next one gets offset 7"));
    }
}
