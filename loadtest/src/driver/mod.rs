//! Drivers: how a scenario talks to a system under test. Scenarios decide
//! what to send and when; drivers only send it and classify the outcome.

pub mod endpoint;
pub mod nats;
pub mod redis;
pub mod strata_admin;
pub mod strata_body;
pub mod strata_group;
pub mod strata_grpc;
pub mod strata_http;
pub mod strata_status;
pub mod strata_stream;

use std::fmt;

/// Why one request failed. [`RequestError::kind`] is the bucket the reports
/// count it under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The server answered with a non-success status (and maybe an error code).
    Http { status: u16, code: Option<String> },
    /// The request did not complete within the per-request timeout.
    Timeout,
    /// Could not connect.
    Connect,
    /// Any other transport failure (reset connection, truncated body, ...).
    Transport,
    /// The server answered 200 with a reply that does not match the request.
    BadReply(String),
    /// A peer (NATS, Redis) refused the request; a short, bounded label
    /// such as "redis OOM" or "nats 503".
    Refused(String),
}

impl RequestError {
    pub fn from_transport(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            Self::Timeout
        } else if e.is_connect() {
            Self::Connect
        } else {
            Self::Transport
        }
    }

    /// A short, bounded-cardinality label: "503 WAL_FULL", "500", "timeout", ...
    pub fn kind(&self) -> String {
        match self {
            Self::Http {
                status,
                code: Some(code),
            } => format!("{status} {code}"),
            Self::Http { status, code: None } => status.to_string(),
            Self::Timeout => "timeout".into(),
            Self::Connect => "connect".into(),
            Self::Transport => "transport".into(),
            Self::BadReply(_) => "bad_reply".into(),
            Self::Refused(code) => code.clone(),
        }
    }

    /// Transport-level failures, after which a sender should back off briefly
    /// instead of spinning.
    pub fn is_transport(&self) -> bool {
        matches!(self, Self::Timeout | Self::Connect | Self::Transport)
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadReply(detail) => write!(f, "bad_reply: {detail}"),
            other => f.write_str(&other.kind()),
        }
    }
}

impl std::error::Error for RequestError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let e = RequestError::Http {
            status: 503,
            code: Some("WAL_FULL".into()),
        };
        assert_eq!(e.kind(), "503 WAL_FULL");
        assert_eq!(
            RequestError::Http {
                status: 500,
                code: None
            }
            .kind(),
            "500"
        );
        assert_eq!(RequestError::BadReply("x".into()).kind(), "bad_reply");
        assert!(RequestError::Timeout.is_transport());
        assert!(!e.is_transport());
    }
}
