//! Service error codes: one code maps to both an HTTP status and a gRPC status.

use serde::{Deserialize, Serialize};

/// gRPC status codes by number (from the gRPC specification), kept here so
/// that this crate needs no RPC framework.
pub mod grpc {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const NOT_FOUND: i32 = 5;
    pub const ALREADY_EXISTS: i32 = 6;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const OUT_OF_RANGE: i32 = 11;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
    pub const UNAUTHENTICATED: i32 = 16;
}

/// Every error a client can see. The wire name (`SCREAMING_SNAKE_CASE`) is
/// part of the public API: clients match on it, so names never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// A request field is missing or has an invalid value.
    InvalidArgument,
    /// The request body is not valid JSON for the endpoint's schema.
    InvalidJson,
    /// A topic or group name breaks the naming rules.
    InvalidName,
    /// The Content-Type header is not one the endpoint accepts.
    UnsupportedMediaType,
    /// The whole request body exceeds the request size limit.
    PayloadTooLarge,
    /// One message body exceeds the message size limit.
    MessageTooLarge,
    /// A batch holds more messages than allowed.
    BatchTooLarge,
    /// The topic does not exist.
    TopicNotFound,
    /// A topic with that name already exists.
    TopicAlreadyExists,
    /// The queue id is not one of the topic's queues.
    QueueNotFound,
    /// The consumer group does not exist.
    GroupNotFound,
    /// The offset is before the first retained offset or after the end.
    OffsetOutOfRange,
    /// No route matches the path.
    NotFound,
    /// The route exists but not for this HTTP method.
    MethodNotAllowed,
    /// No valid credentials: missing, malformed, unknown, revoked or expired.
    Unauthenticated,
    /// Valid credentials whose role does not allow the operation.
    PermissionDenied,
    /// The tenant does not exist.
    TenantNotFound,
    /// A tenant with that name already exists.
    TenantAlreadyExists,
    /// The tenant still owns topics or groups.
    TenantNotEmpty,
    /// The access key does not exist (or belongs to another tenant).
    KeyNotFound,
    /// The quota plan does not exist.
    PlanNotFound,
    /// A rate quota was exceeded; retry after the hinted delay.
    TooManyRequests,
    /// A count or size quota (topics, queues, groups, stored bytes) is used up.
    QuotaExceeded,
    /// The write-ahead log stayed full for the whole append timeout.
    WalFull,
    /// The node is shutting down or storage failed; retry elsewhere or later.
    Unavailable,
    /// A conditional metadata write lost a race; retry.
    Conflict,
    /// A bug or an unexpected storage error.
    Internal,
}

impl ErrorCode {
    /// The HTTP status this code is returned with.
    pub fn http_status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidArgument | InvalidJson | InvalidName | BatchTooLarge => 400,
            Unauthenticated => 401,
            PermissionDenied | QuotaExceeded => 403,
            TopicNotFound | QueueNotFound | GroupNotFound | NotFound | TenantNotFound
            | KeyNotFound | PlanNotFound => 404,
            MethodNotAllowed => 405,
            TopicAlreadyExists | Conflict | TenantAlreadyExists | TenantNotEmpty => 409,
            TooManyRequests => 429,
            PayloadTooLarge | MessageTooLarge => 413,
            UnsupportedMediaType => 415,
            OffsetOutOfRange => 416,
            Internal => 500,
            WalFull | Unavailable => 503,
        }
    }

    /// The gRPC status code this code is returned with.
    pub fn grpc_code(self) -> i32 {
        use ErrorCode::*;
        match self {
            InvalidArgument | InvalidJson | InvalidName | BatchTooLarge | MessageTooLarge
            | PayloadTooLarge | UnsupportedMediaType => grpc::INVALID_ARGUMENT,
            TopicNotFound | QueueNotFound | GroupNotFound | NotFound | TenantNotFound
            | KeyNotFound | PlanNotFound => grpc::NOT_FOUND,
            MethodNotAllowed => grpc::UNIMPLEMENTED,
            TopicAlreadyExists | TenantAlreadyExists => grpc::ALREADY_EXISTS,
            Conflict | TenantNotEmpty => grpc::FAILED_PRECONDITION,
            Unauthenticated => grpc::UNAUTHENTICATED,
            PermissionDenied => grpc::PERMISSION_DENIED,
            TooManyRequests | QuotaExceeded => grpc::RESOURCE_EXHAUSTED,
            OffsetOutOfRange => grpc::OUT_OF_RANGE,
            Internal => grpc::INTERNAL,
            WalFull => grpc::RESOURCE_EXHAUSTED,
            Unavailable => grpc::UNAVAILABLE,
        }
    }

    /// The wire name, e.g. `TOPIC_NOT_FOUND`.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidArgument => "INVALID_ARGUMENT",
            InvalidJson => "INVALID_JSON",
            InvalidName => "INVALID_NAME",
            UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            MessageTooLarge => "MESSAGE_TOO_LARGE",
            BatchTooLarge => "BATCH_TOO_LARGE",
            TopicNotFound => "TOPIC_NOT_FOUND",
            TopicAlreadyExists => "TOPIC_ALREADY_EXISTS",
            QueueNotFound => "QUEUE_NOT_FOUND",
            GroupNotFound => "GROUP_NOT_FOUND",
            OffsetOutOfRange => "OFFSET_OUT_OF_RANGE",
            NotFound => "NOT_FOUND",
            MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Unauthenticated => "UNAUTHENTICATED",
            PermissionDenied => "PERMISSION_DENIED",
            TenantNotFound => "TENANT_NOT_FOUND",
            TenantAlreadyExists => "TENANT_ALREADY_EXISTS",
            TenantNotEmpty => "TENANT_NOT_EMPTY",
            KeyNotFound => "KEY_NOT_FOUND",
            PlanNotFound => "PLAN_NOT_FOUND",
            TooManyRequests => "TOO_MANY_REQUESTS",
            QuotaExceeded => "QUOTA_EXCEEDED",
            WalFull => "WAL_FULL",
            Unavailable => "UNAVAILABLE",
            Conflict => "CONFLICT",
            Internal => "INTERNAL",
        }
    }

    /// Every code, for documentation and exhaustive tests.
    pub const ALL: [ErrorCode; 27] = [
        ErrorCode::InvalidArgument,
        ErrorCode::InvalidJson,
        ErrorCode::InvalidName,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::PayloadTooLarge,
        ErrorCode::MessageTooLarge,
        ErrorCode::BatchTooLarge,
        ErrorCode::TopicNotFound,
        ErrorCode::TopicAlreadyExists,
        ErrorCode::QueueNotFound,
        ErrorCode::GroupNotFound,
        ErrorCode::OffsetOutOfRange,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Unauthenticated,
        ErrorCode::PermissionDenied,
        ErrorCode::TenantNotFound,
        ErrorCode::TenantAlreadyExists,
        ErrorCode::TenantNotEmpty,
        ErrorCode::KeyNotFound,
        ErrorCode::PlanNotFound,
        ErrorCode::TooManyRequests,
        ErrorCode::QuotaExceeded,
        ErrorCode::WalFull,
        ErrorCode::Unavailable,
        ErrorCode::Conflict,
        ErrorCode::Internal,
    ];
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_statuses_are_errors() {
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        for code in ErrorCode::ALL {
            assert!(code.http_status() >= 400, "{code}");
            assert_ne!(code.grpc_code(), 0, "{code}");
        }
    }
}
