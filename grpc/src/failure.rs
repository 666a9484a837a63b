//! Failures of a RocketMQ request and how they travel: as a result code in
//! the response body (the protocol's way; the gRPC status stays OK).
//!
//! Codes are chosen among those every official SDK knows: the Rust SDK
//! 5.0.0 panics on codes missing from its enum (40019-40021, 40404, 41302
//! and newer), so those are never sent.

use strata_common::ErrorCode;
use strata_engine::EngineError;
use strata_tenancy::{AuthError, TenancyError};

use crate::pb::{self, Code};

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

/// The RocketMQ code a Strata service error is reported with.
pub fn code_for(e: ErrorCode) -> Code {
    use ErrorCode::*;
    match e {
        InvalidArgument | InvalidJson | UnsupportedMediaType | BatchTooLarge => Code::BadRequest,
        InvalidName => Code::IllegalTopic,
        PayloadTooLarge => Code::PayloadTooLarge,
        MessageTooLarge => Code::MessageBodyTooLarge,
        TopicNotFound | QueueNotFound => Code::TopicNotFound,
        GroupNotFound => Code::ConsumerGroupNotFound,
        NotFound | TenantNotFound | KeyNotFound | PlanNotFound => Code::NotFound,
        OffsetOutOfRange => Code::BadRequest,
        TopicAlreadyExists | TenantAlreadyExists | TenantNotEmpty | Conflict => {
            Code::PreconditionFailed
        }
        MethodNotAllowed => Code::NotImplemented,
        Unauthenticated => Code::Unauthorized,
        PermissionDenied | QuotaExceeded => Code::Forbidden,
        TooManyRequests => Code::TooManyRequests,
        WalFull | Unavailable => Code::ProxyTimeout,
        Internal => Code::InternalServerError,
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        let code = match &e {
            EngineError::TopicNotFound(_) => Code::TopicNotFound,
            other => code_for(other.code()),
        };
        Self::new(code, e.to_string())
    }
}

impl From<AuthError> for Failure {
    fn from(e: AuthError) -> Self {
        Self::new(code_for(e.code()), e.to_string())
    }
}

impl From<TenancyError> for Failure {
    fn from(e: TenancyError) -> Self {
        Self::new(code_for(e.code()), e.to_string())
    }
}

impl From<strata_tenancy::RateExceeded> for Failure {
    fn from(e: strata_tenancy::RateExceeded) -> Self {
        Self::new(Code::TooManyRequests, e.to_string())
    }
}

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

    /// Codes the Rust SDK 5.0.0 cannot decode must never be produced.
    #[test]
    fn never_sends_codes_old_sdks_panic_on() {
        let forbidden = [40019, 40020, 40021, 40404, 41302];
        for e in ErrorCode::ALL {
            let code = code_for(e) as i32;
            assert!(!forbidden.contains(&code), "{e:?} → {code}");
            assert!(code >= 40000, "{e:?} must map to a failure code");
        }
    }
}
