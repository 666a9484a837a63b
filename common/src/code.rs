//! Service error codes: one code maps to an HTTP status, a gRPC status and a
//! RocketMQ result code, so a refusal means the same on every protocol.

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

/// RocketMQ 5 result codes by number (`apache.rocketmq.v2.Code`): the ones
/// service errors are answered with over the RocketMQ protocol, all known to
/// the official SDKs (the Rust SDK 5.0.0 cannot decode newer ones).
pub mod rocketmq {
    pub const BAD_REQUEST: i32 = 40000;
    pub const ILLEGAL_TOPIC: i32 = 40002;
    pub const UNAUTHORIZED: i32 = 40100;
    pub const FORBIDDEN: i32 = 40300;
    pub const NOT_FOUND: i32 = 40400;
    pub const TOPIC_NOT_FOUND: i32 = 40402;
    pub const CONSUMER_GROUP_NOT_FOUND: i32 = 40403;
    pub const PAYLOAD_TOO_LARGE: i32 = 41300;
    pub const MESSAGE_BODY_TOO_LARGE: i32 = 41301;
    pub const PRECONDITION_FAILED: i32 = 42800;
    pub const TOO_MANY_REQUESTS: i32 = 42900;
    pub const INTERNAL_SERVER_ERROR: i32 = 50001;
    pub const NOT_IMPLEMENTED: i32 = 50100;
    pub const PROXY_TIMEOUT: i32 = 50400;
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

    /// The RocketMQ result code this code is answered with in a RocketMQ
    /// response body (see [`rocketmq`]).
    pub fn rocketmq_code(self) -> i32 {
        use ErrorCode::*;
        match self {
            InvalidArgument | InvalidJson | UnsupportedMediaType | BatchTooLarge
            | OffsetOutOfRange => rocketmq::BAD_REQUEST,
            InvalidName => rocketmq::ILLEGAL_TOPIC,
            PayloadTooLarge => rocketmq::PAYLOAD_TOO_LARGE,
            MessageTooLarge => rocketmq::MESSAGE_BODY_TOO_LARGE,
            TopicNotFound | QueueNotFound => rocketmq::TOPIC_NOT_FOUND,
            GroupNotFound => rocketmq::CONSUMER_GROUP_NOT_FOUND,
            NotFound | TenantNotFound | KeyNotFound | PlanNotFound => rocketmq::NOT_FOUND,
            TopicAlreadyExists | TenantAlreadyExists | TenantNotEmpty | Conflict => {
                rocketmq::PRECONDITION_FAILED
            }
            MethodNotAllowed => rocketmq::NOT_IMPLEMENTED,
            Unauthenticated => rocketmq::UNAUTHORIZED,
            PermissionDenied | QuotaExceeded => rocketmq::FORBIDDEN,
            TooManyRequests => rocketmq::TOO_MANY_REQUESTS,
            WalFull | Unavailable => rocketmq::PROXY_TIMEOUT,
            Internal => rocketmq::INTERNAL_SERVER_ERROR,
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

    /// What a status says a client should do, whichever protocol carries it.
    #[derive(Debug, PartialEq, Eq)]
    enum Meaning {
        FixTheRequest,
        Authenticate,
        NotAllowed,
        Missing,
        Conflicting,
        TooLarge,
        SlowDown,
        Unsupported,
        RetryLater,
        ServerFault,
    }

    fn http_meaning(status: u16) -> Meaning {
        match status {
            400 | 415 | 416 => Meaning::FixTheRequest,
            401 => Meaning::Authenticate,
            403 => Meaning::NotAllowed,
            404 => Meaning::Missing,
            405 => Meaning::Unsupported,
            409 => Meaning::Conflicting,
            413 => Meaning::TooLarge,
            429 => Meaning::SlowDown,
            503 => Meaning::RetryLater,
            500 => Meaning::ServerFault,
            other => panic!("unexpected HTTP status {other}"),
        }
    }

    fn grpc_meaning(code: i32) -> Meaning {
        match code {
            grpc::INVALID_ARGUMENT | grpc::OUT_OF_RANGE => Meaning::FixTheRequest,
            grpc::UNAUTHENTICATED => Meaning::Authenticate,
            grpc::PERMISSION_DENIED => Meaning::NotAllowed,
            grpc::NOT_FOUND => Meaning::Missing,
            grpc::UNIMPLEMENTED => Meaning::Unsupported,
            grpc::ALREADY_EXISTS | grpc::FAILED_PRECONDITION => Meaning::Conflicting,
            grpc::UNAVAILABLE => Meaning::RetryLater,
            grpc::INTERNAL => Meaning::ServerFault,
            other => panic!("unexpected gRPC code {other}"),
        }
    }

    fn rocketmq_meaning(code: i32) -> Meaning {
        match code {
            rocketmq::BAD_REQUEST | rocketmq::ILLEGAL_TOPIC => Meaning::FixTheRequest,
            rocketmq::UNAUTHORIZED => Meaning::Authenticate,
            rocketmq::FORBIDDEN => Meaning::NotAllowed,
            rocketmq::NOT_FOUND
            | rocketmq::TOPIC_NOT_FOUND
            | rocketmq::CONSUMER_GROUP_NOT_FOUND => Meaning::Missing,
            rocketmq::NOT_IMPLEMENTED => Meaning::Unsupported,
            rocketmq::PRECONDITION_FAILED => Meaning::Conflicting,
            rocketmq::PAYLOAD_TOO_LARGE | rocketmq::MESSAGE_BODY_TOO_LARGE => Meaning::TooLarge,
            rocketmq::TOO_MANY_REQUESTS => Meaning::SlowDown,
            rocketmq::PROXY_TIMEOUT => Meaning::RetryLater,
            rocketmq::INTERNAL_SERVER_ERROR => Meaning::ServerFault,
            other => panic!("unexpected RocketMQ code {other}"),
        }
    }

    #[test]
    fn every_code_means_the_same_on_http_grpc_and_rocketmq() {
        for code in ErrorCode::ALL {
            let http = http_meaning(code.http_status());
            assert_eq!(rocketmq_meaning(code.rocketmq_code()), http, "{code}");
            // gRPC has no "too large" or "slow down" of its own: those two are
            // INVALID_ARGUMENT and RESOURCE_EXHAUSTED; a quota used up and a
            // full WAL are RESOURCE_EXHAUSTED too.
            match code.grpc_code() {
                grpc::RESOURCE_EXHAUSTED => assert!(
                    matches!(
                        http,
                        Meaning::SlowDown | Meaning::NotAllowed | Meaning::RetryLater
                    ),
                    "{code}"
                ),
                g if http == Meaning::TooLarge => {
                    assert_eq!(g, grpc::INVALID_ARGUMENT, "{code}")
                }
                g => assert_eq!(grpc_meaning(g), http, "{code}"),
            }
        }
    }

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
