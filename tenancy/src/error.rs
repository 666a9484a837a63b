//! Errors of authentication ([`AuthError`]) and of tenant and key
//! management ([`TenancyError`]), each with the [`ErrorCode`] clients see.

use std::path::PathBuf;

use strata_common::ErrorCode;
use strata_metadata::{CatalogError, MetaError};

use crate::roles::{Permission, Role};
use crate::secrets::SecretsError;
use crate::signature::DATE_HEADER;

/// Why a request's credentials were refused.
///
/// [`AuthError::UnknownKey`] and [`AuthError::BadSignature`] are separate
/// for logs and tests but print the same "invalid credentials", so a client
/// cannot probe which access keys exist. [`AuthError::Revoked`] is only
/// returned after the signature or secret checked out, so it reveals nothing
/// to someone who does not hold the key.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials: send an authorization header")]
    MissingCredentials,
    #[error("malformed authorization: {0}")]
    Malformed(String),
    #[error("missing {DATE_HEADER} header, which the signature covers")]
    MissingDateHeader,
    #[error("unsupported SignedHeaders {0:?}: only {DATE_HEADER} is supported")]
    UnsupportedSignedHeaders(Vec<String>),
    /// The access key does not exist.
    #[error("invalid credentials")]
    UnknownKey,
    /// The key exists but the signature or secret does not match.
    #[error("invalid credentials")]
    BadSignature,
    #[error("access key has been revoked")]
    Revoked,
    #[error("{}", clock_skew_message(*skew_ms, *max_ms))]
    ClockSkew { skew_ms: i64, max_ms: i64 },
    #[error("role {role} does not allow {permission}")]
    PermissionDenied { role: Role, permission: Permission },
    /// The credential store failed or holds something unusable; not the
    /// client's fault.
    #[error("credential store error: {0}")]
    Store(String),
    /// The credential store could not be reached (the metadata store's
    /// backend failed); worth retrying. Its details are logged, not told.
    #[error("the credential store is unavailable; retry")]
    StoreUnavailable,
}

impl AuthError {
    /// The code the client sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::PermissionDenied { .. } => ErrorCode::PermissionDenied,
            AuthError::Store(_) => ErrorCode::Internal,
            AuthError::StoreUnavailable => ErrorCode::Unavailable,
            _ => ErrorCode::Unauthenticated,
        }
    }
}

/// Errors from managing tenants and keys.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error(
        "invalid tenant name {name:?}: use 1 to {max} ASCII letters, digits, '-' or '_'",
        max = crate::credentials::MAX_TENANT_LEN
    )]
    InvalidTenantName { name: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("plan {name} not found")]
    PlanNotFound { name: String },
    #[error("access key {access_key} is revoked")]
    KeyRevoked { access_key: String },
    /// The change would leave no active service-admin key: nobody could
    /// manage the service until a restart issued a new bootstrap key.
    #[error(
        "{what} would leave no active service-admin key, and nobody could manage the service; \
         create another service-admin key first"
    )]
    LastServiceAdmin { what: String },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("cannot write credentials file {path}: {source}")]
    CredentialsFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl TenancyError {
    /// The code the client sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            TenancyError::InvalidTenantName { .. } => ErrorCode::InvalidName,
            TenancyError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            TenancyError::PlanNotFound { .. } => ErrorCode::PlanNotFound,
            // The key's state, not the request, is what is wrong; like a
            // lost race, the caller must look again before retrying.
            TenancyError::KeyRevoked { .. } | TenancyError::LastServiceAdmin { .. } => {
                ErrorCode::Conflict
            }
            TenancyError::Catalog(e) => match e {
                CatalogError::TenantAlreadyExists { .. } => ErrorCode::TenantAlreadyExists,
                CatalogError::TenantNotFound { .. } => ErrorCode::TenantNotFound,
                CatalogError::TenantNotEmpty { .. } => ErrorCode::TenantNotEmpty,
                CatalogError::KeyNotFound { .. } => ErrorCode::KeyNotFound,
                CatalogError::TopicAlreadyExists { .. } => ErrorCode::TopicAlreadyExists,
                CatalogError::TopicNotFound { .. } => ErrorCode::TopicNotFound,
                CatalogError::GroupNotFound { .. } => ErrorCode::GroupNotFound,
                CatalogError::Conflict(_) | CatalogError::AccessKeyAlreadyExists { .. } => {
                    ErrorCode::Conflict
                }
                CatalogError::Meta(MetaError::Backend(_)) => ErrorCode::Unavailable,
                CatalogError::Meta(_)
                | CatalogError::NamespaceServed(_)
                | CatalogError::NodeIdTaken(_)
                | CatalogError::NodeForgotten(_) => ErrorCode::Internal,
            },
            TenancyError::Secrets(_) | TenancyError::CredentialsFile { .. } => ErrorCode::Internal,
        }
    }
}

impl From<strata_metadata::MetaError> for TenancyError {
    fn from(e: strata_metadata::MetaError) -> Self {
        TenancyError::Catalog(e.into())
    }
}

/// The skew error's text. A skew of whole quarter hours (within the skew
/// allowed) up to 14 hours is a time zone's offset, not a wrong clock: the
/// client wrote its local time as UTC, as the RocketMQ Python SDK 5.1.2
/// does (`datetime.now()` with a `Z`).
fn clock_skew_message(skew_ms: i64, max_ms: i64) -> String {
    const QUARTER_HOUR_MS: i64 = 15 * 60 * 1000;
    let mut text = format!(
        "request time differs from server time by {skew_ms} ms; at most {max_ms} ms is allowed"
    );
    let quarters = (skew_ms as f64 / QUARTER_HOUR_MS as f64).round() as i64;
    let zone_ms = quarters * QUARTER_HOUR_MS;
    let looks_like_a_zone = quarters != 0
        && zone_ms.abs() <= 14 * 3_600_000
        && (skew_ms - zone_ms).abs() <= max_ms.abs();
    if looks_like_a_zone {
        let minutes = zone_ms.abs() / 60_000;
        text.push_str(&format!(
            ": {}{}:{:02} is a time zone's offset, so the client wrote its local time as UTC \
             (the RocketMQ Python SDK 5.1.2 does); run it with TZ=UTC",
            if zone_ms > 0 { "+" } else { "-" },
            minutes / 60,
            minutes % 60
        ));
    } else {
        text.push_str(" (check the client's clock)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skew_of_a_time_zone_says_so() {
        let eight_hours = 8 * 3_600_000;
        let text = AuthError::ClockSkew {
            skew_ms: eight_hours + 1_234,
            max_ms: 900_000,
        }
        .to_string();
        assert!(text.contains("+8:00") && text.contains("TZ=UTC"), "{text}");
        let text = AuthError::ClockSkew {
            skew_ms: -(5 * 3_600_000 + 30 * 60_000),
            max_ms: 900_000,
        }
        .to_string();
        assert!(text.contains("-5:30"), "{text}");
        let text = AuthError::ClockSkew {
            skew_ms: 3 * 86_400_000,
            max_ms: 900_000,
        }
        .to_string();
        assert!(text.contains("check the client's clock"), "{text}");
    }

    #[test]
    fn codes() {
        assert_eq!(AuthError::BadSignature.code(), ErrorCode::Unauthenticated);
        assert_eq!(AuthError::Revoked.code(), ErrorCode::Unauthenticated);
        assert_eq!(AuthError::Store("x".into()).code(), ErrorCode::Internal);
        assert_eq!(AuthError::StoreUnavailable.code(), ErrorCode::Unavailable);
        let denied = AuthError::PermissionDenied {
            role: Role::Consumer,
            permission: Permission::Publish,
        };
        assert_eq!(denied.code(), ErrorCode::PermissionDenied);
        // Unknown keys and wrong secrets look the same to the client.
        assert_eq!(
            AuthError::UnknownKey.to_string(),
            AuthError::BadSignature.to_string()
        );
        let not_empty = TenancyError::from(CatalogError::TenantNotEmpty {
            name: "a".into(),
            reason: "r".into(),
        });
        assert_eq!(not_empty.code(), ErrorCode::TenantNotEmpty);
    }
}
