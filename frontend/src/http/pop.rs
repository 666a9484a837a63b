//! Consumption by message over HTTP: a consumer group receives messages
//! with receipt handles, acknowledges them, or changes how long they stay
//! invisible. The same engine operations serve the RocketMQ gRPC API.

use std::time::Duration;
pub use strata_client::api::pop::{
    AckJson, AckReply, AckResult, InvisibleJson, InvisibleReply, ReceiveJson, ReceiveReply,
    ReceivedJson,
};

use axum::Json as Reply;
use axum::extract::State;
use strata_engine::{ReceiveRequest, TagFilter};
use strata_tenancy::Permission;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path};
use super::messages::stored_json;

/// Invisible time when a receive does not say.
const DEFAULT_INVISIBLE_MS: u64 = 30_000;

pub async fn receive(
    State(state): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
    Json(req): Json<ReceiveJson>,
) -> ApiResult<Reply<ReceiveReply>> {
    caller.require(Permission::Consume)?;
    let filter = TagFilter::parse(req.tags.as_deref().unwrap_or("*"))?;
    if req.max_messages == Some(0) {
        return Err(ApiError::invalid("max_messages must be at least 1"));
    }
    let budget = caller.take_consume(&state.limiter).await?;
    let popped = state
        .engine
        .receive(ReceiveRequest {
            tenant: &caller.tenant,
            group: &group,
            topic: &req.topic,
            queue: req.queue,
            max_messages: budget.messages(req.max_messages.unwrap_or(32)),
            invisible: Duration::from_millis(req.invisible_ms.unwrap_or(DEFAULT_INVISIBLE_MS)),
            wait: Duration::from_millis(req.wait_ms.unwrap_or(0)),
            filter: &filter,
            max_body_bytes: budget.bytes,
        })
        .await?;
    let bytes = popped
        .iter()
        .map(|p| p.message.message.body.len() as u64)
        .sum();
    caller.charge_consumed(&state.limiter, popped.len() as u64, bytes);
    // Encoded here, however large: the deliveries are committed, and a
    // reply waiting its turn on the readers' pool would keep them hidden
    // (their invisible time running) were the client to leave meanwhile.
    Ok(Reply(ReceiveReply {
        messages: popped
            .into_iter()
            .map(|p| ReceivedJson {
                queue: p.queue,
                receipt_handle: p.handle,
                attempt: p.attempt,
                visible_at_ms: p.visible_ms,
                message: stored_json(p.message, false),
            })
            .collect(),
    }))
}

/// Most receipt handles per acknowledgement request.
pub const MAX_ACK_HANDLES: usize = strata_engine::pop::MAX_ACK_BATCH;

pub async fn ack(
    State(state): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
    Json(req): Json<AckJson>,
) -> ApiResult<Reply<AckReply>> {
    caller.require(Permission::Consume)?;
    if req.receipt_handles.is_empty() || req.receipt_handles.len() > MAX_ACK_HANDLES {
        return Err(ApiError::invalid(format!(
            "receipt_handles must hold 1..={MAX_ACK_HANDLES} handles"
        )));
    }
    // One commit per queue for the whole batch.
    let outcomes = state
        .engine
        .ack_many(&caller.tenant, &group, &req.topic, &req.receipt_handles)
        .await?;
    let mut results = Vec::with_capacity(outcomes.len());
    let mut first_error = None;
    for (handle, outcome) in req.receipt_handles.into_iter().zip(outcomes) {
        results.push(match outcome {
            Ok(()) => AckResult {
                receipt_handle: handle,
                code: "OK".into(),
                message: None,
            },
            Err(e) => {
                let result = AckResult {
                    receipt_handle: handle,
                    code: e.code().as_str().to_string(),
                    message: Some(e.to_string()),
                };
                first_error.get_or_insert(e);
                result
            }
        });
    }
    // Nothing acknowledged, all for the same reason: that is the answer.
    if let Some(e) = first_error
        && results.iter().all(|r| r.code == results[0].code)
    {
        return Err(e.into());
    }
    Ok(Reply(AckReply { results }))
}

pub async fn change_invisible(
    State(state): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
    Json(req): Json<InvisibleJson>,
) -> ApiResult<Reply<InvisibleReply>> {
    caller.require(Permission::Consume)?;
    let handle = state
        .engine
        .change_invisible(
            &caller.tenant,
            &group,
            &req.topic,
            &req.receipt_handle,
            Duration::from_millis(req.invisible_ms),
        )
        .await?;
    Ok(Reply(InvisibleReply {
        receipt_handle: handle,
    }))
}
