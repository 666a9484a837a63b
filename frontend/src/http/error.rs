//! How a [`ServiceError`](crate::pipeline::ServiceError) travels over HTTP:
//! the one error shape every endpoint returns,
//! `{"error": {"code": "TOPIC_NOT_FOUND", "message": "..."}}` with the code's
//! HTTP status.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use strata_common::ErrorCode;

/// The pipeline's error, rendered as an HTTP response here.
pub type ApiError = crate::pipeline::ServiceError;

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(code = %self.code, message = %self.message, "request failed");
        }
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                retry_after_ms: self.retry_after_ms,
            },
        };
        let mut response = (status, Json(body)).into_response();
        // A 503 is always worth retrying (a tenant moving between nodes, a
        // shut write fence, the metadata store out of reach, a full WAL):
        // one second unless the error says when.
        let retry_after_ms = self
            .retry_after_ms
            .or((status == StatusCode::SERVICE_UNAVAILABLE).then_some(1000));
        if let Some(ms) = retry_after_ms {
            // Retry-After is in whole seconds; round up so clients never retry early.
            let secs = ms.div_ceil(1000).max(1);
            if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        if self.code == ErrorCode::PayloadTooLarge {
            // The rest of the body is left unread, so the connection cannot
            // be reused; say so, or a client's next request on it fails.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                ErrorCode::UnsupportedMediaType,
                "expected Content-Type: application/json",
            ),
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(
                    ErrorCode::PayloadTooLarge,
                    "request body exceeds the size limit (http.max_request_bytes)",
                )
            }
            other => Self::new(ErrorCode::InvalidJson, other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::invalid(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::invalid(r.body_text())
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(
                ErrorCode::PayloadTooLarge,
                "request body exceeds the size limit (http.max_request_bytes)",
            )
        } else {
            Self::invalid(r.body_text())
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_after(e: ApiError) -> Option<String> {
        e.into_response()
            .headers()
            .get(axum::http::header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap_or_default().to_string())
    }

    #[test]
    fn unavailable_answers_say_when_to_retry() {
        let moving = ApiError::new(ErrorCode::Unavailable, "tenant moving");
        assert_eq!(retry_after(moving).as_deref(), Some("1"));
        let full = ApiError::new(ErrorCode::WalFull, "no room");
        assert_eq!(retry_after(full).as_deref(), Some("1"));
        let missing = ApiError::new(ErrorCode::TopicNotFound, "no such topic");
        assert_eq!(retry_after(missing), None);
    }
}
