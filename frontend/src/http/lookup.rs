//! Finding messages by message id or by key:
//! `GET /v1/topics/{topic}/messages?id=...` or `?key=...`.

use axum::extract::State;
use axum::response::Response;
pub use strata_client::api::lookup::{FindParams, FindReply, FoundJson};
use strata_common::limits::MAX_KEY_LEN;
use strata_engine::IndexKind;
use strata_tenancy::Permission;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{Path, Query};
use super::messages::{force_base64, json_reply, stored_json};

/// Matches returned when the request names no limit.
const DEFAULT_LIMIT: usize = 32;

pub async fn find(
    State(state): State<AppState>,
    caller: Caller,
    Path(topic): Path<String>,
    Query(params): Query<FindParams>,
) -> ApiResult<Response> {
    caller.require(Permission::Consume)?;
    let force_base64 = force_base64(params.encoding.as_deref())?;
    let (kind, value) = match (params.id, params.key) {
        (Some(id), None) => (IndexKind::Id, id),
        (None, Some(key)) => (IndexKind::Key, key),
        _ => {
            return Err(ApiError::invalid(
                "give exactly one of the query parameters id and key",
            ));
        }
    };
    if value.is_empty() || value.len() > MAX_KEY_LEN {
        return Err(ApiError::invalid(format!(
            "the value to find must be 1 to {MAX_KEY_LEN} bytes long"
        )));
    }
    if params.limit == Some(0) {
        return Err(ApiError::invalid("limit must be at least 1"));
    }
    // Not sized by the consume budget: a lookup has no offset to go on
    // from, so cutting it would hide matches. It is charged in full after.
    caller.take_consume(&state.limiter).await?;
    let found = state
        .engine
        .find_messages(
            &caller.tenant,
            &topic,
            kind,
            &value,
            params.limit.unwrap_or(DEFAULT_LIMIT),
        )
        .await?;
    let (bytes, size) = crate::pipeline::reply::sizes(found.messages.iter().map(|f| &f.message));
    caller.charge_consumed(&state.limiter, found.messages.len() as u64, bytes);
    json_reply(&state, size, move || FindReply {
        more: found.more,
        messages: found
            .messages
            .into_iter()
            .map(|f| FoundJson {
                queue: f.queue,
                message: stored_json(f.message, force_base64),
            })
            .collect(),
    })
    .await
}
