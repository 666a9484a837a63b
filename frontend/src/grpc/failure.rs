//! Failures of a RocketMQ request and how they travel: as a result code in
//! the response body (the protocol's way; the gRPC status stays OK).
//!
//! Codes are chosen among those every official SDK knows: the Rust SDK
//! 5.0.0 panics on codes missing from its enum (40019-40021, 40404, 41302
//! and newer), so no service error maps to them. One exception: GetOffset
//! answers OFFSET_NOT_FOUND (40404) for a queue without a committed offset,
//! because only pull consumers call it, and the Rust SDK 5.0.0 has none.

use strata_common::ErrorCode;
use strata_engine::EngineError;
use strata_tenancy::{AuthError, RateExceeded, TenancyError};

use crate::grpc::pb::{self, Code};
use crate::pipeline::ServiceError;

/// A refused or failed request: a RocketMQ code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: Code,
    pub message: String,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A service error: its RocketMQ code, and its wire name ahead of the
    /// message, so a gRPC client reads the same code an HTTP client gets
    /// (`QUOTA_EXCEEDED: …`, where RocketMQ has only FORBIDDEN).
    pub fn service(code: ErrorCode, message: impl std::fmt::Display) -> Self {
        Self::new(code_for(code), format!("{code}: {message}"))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Code::BadRequest, message)
    }

    /// The body status for this failure.
    pub fn status(&self) -> pb::Status {
        pb::Status {
            code: self.code as i32,
            message: self.message.clone(),
        }
    }
}

/// The OK body status.
pub fn ok() -> pb::Status {
    pb::Status {
        code: Code::Ok as i32,
        message: "OK".into(),
    }
}

/// The RocketMQ code a Strata service error is reported with (one mapping,
/// in `strata_common`, shared with HTTP and gRPC statuses).
pub fn code_for(e: ErrorCode) -> Code {
    Code::try_from(e.rocketmq_code()).unwrap_or(Code::InternalServerError)
}

impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Self {
        Self::service(e.code, e.message)
    }
}

/// Errors of the crates below travel as the pipeline's [`ServiceError`].
macro_rules! via_service_error {
    ($($t:ty),*) => {
        $(impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                ServiceError::from(e).into()
            }
        })*
    };
}

via_service_error!(EngineError, AuthError, TenancyError, RateExceeded);

/// Responses that carry a body status, so a failure can be answered in
/// the response itself.
pub trait WithStatus: Default {
    fn set_status(&mut self, status: pb::Status);

    fn failed(failure: &Failure) -> Self {
        let mut r = Self::default();
        r.set_status(failure.status());
        r
    }
}

macro_rules! with_status {
    ($($t:ty),* $(,)?) => {
        $(impl WithStatus for $t {
            fn set_status(&mut self, status: pb::Status) {
                self.status = Some(status);
            }
        })*
    };
}

with_status!(
    pb::QueryRouteResponse,
    pb::HeartbeatResponse,
    pb::SendMessageResponse,
    pb::QueryAssignmentResponse,
    pb::AckMessageResponse,
    pb::ForwardMessageToDeadLetterQueueResponse,
    pb::UpdateOffsetResponse,
    pb::GetOffsetResponse,
    pb::QueryOffsetResponse,
    pb::EndTransactionResponse,
    pb::NotifyClientTerminationResponse,
    pb::ChangeInvisibleDurationResponse,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_error_names_its_code_where_rocketmq_has_none() {
        let f = Failure::service(ErrorCode::QuotaExceeded, "stored bytes over the plan");
        assert_eq!(f.code, Code::Forbidden);
        assert_eq!(f.message, "QUOTA_EXCEEDED: stored bytes over the plan");
        let f: Failure = EngineError::TopicNotFound("t".into()).into();
        assert_eq!(f.code, Code::TopicNotFound);
        assert!(f.message.starts_with("TOPIC_NOT_FOUND: "), "{}", f.message);
        let f: Failure = RateExceeded {
            tenant: "t".into(),
            rate: "requests",
            limit: 10,
            retry_after_ms: 100,
        }
        .into();
        assert_eq!(f.code, Code::TooManyRequests);
        assert!(
            f.message.starts_with("TOO_MANY_REQUESTS: "),
            "{}",
            f.message
        );
    }

    /// Codes the Rust SDK 5.0.0 cannot decode must never be produced.
    #[test]
    fn never_sends_codes_old_sdks_panic_on() {
        let forbidden = [40019, 40020, 40021, 40404, 41302];
        for e in ErrorCode::ALL {
            let code = code_for(e) as i32;
            assert_eq!(
                code,
                e.rocketmq_code(),
                "{e:?} is a code the protocol knows"
            );
            assert!(!forbidden.contains(&code), "{e:?} → {code}");
            assert!(code >= 40000, "{e:?} must map to a failure code");
        }
    }
}
