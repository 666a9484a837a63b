//! [`ServiceError`]: how any stage of the pipeline refuses or fails a
//! request. One [`ErrorCode`] decides the HTTP status, the gRPC status and
//! the RocketMQ result code (see `strata_common::code`).

use strata_common::ErrorCode;
use strata_engine::EngineError;
use strata_tenancy::{AuthError, RateExceeded, TenancyError};

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    pub code: ErrorCode,
    pub message: String,
    /// For TOO_MANY_REQUESTS: when to retry.
    pub retry_after_ms: Option<u64>,
}

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ServiceError {}

impl From<EngineError> for ServiceError {
    fn from(e: EngineError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<AuthError> for ServiceError {
    fn from(e: AuthError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<TenancyError> for ServiceError {
    fn from(e: TenancyError) -> Self {
        // A backend failure's text names the metadata store's endpoints
        // and its client library's errors: the log gets it, not the caller.
        if let TenancyError::Catalog(strata_metadata::CatalogError::Meta(
            strata_metadata::MetaError::Backend(detail),
        )) = &e
        {
            tracing::warn!(error = %detail, "metadata store request failed");
            return Self::new(
                e.code(),
                "the metadata store is unavailable; retry (a change refused this way may have \
                 been applied)",
            );
        }
        Self::new(e.code(), e.to_string())
    }
}

impl From<RateExceeded> for ServiceError {
    fn from(e: RateExceeded) -> Self {
        Self {
            code: ErrorCode::TooManyRequests,
            message: e.to_string(),
            retry_after_ms: Some(e.retry_after_ms),
        }
    }
}
