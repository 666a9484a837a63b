//! Transactional messages over HTTP: begin (store a half message no
//! consumer sees), then commit or roll back. HTTP producers get no
//! check-backs; they list their topic's open transactions after a restart
//! and resolve them. An open transaction nobody resolves is rolled back
//! after the engine's last unanswered check (see `strata_engine::txn`).

use axum::Json as Reply;
use axum::extract::State;
use axum::http::StatusCode;
pub use strata_client::api::txn::{
    BeganJson, EndedJson, OpenTransactionJson, OpenTransactionsJson,
};
use strata_engine::HalfRecord;
use strata_tenancy::Permission;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path};
use super::messages::{MessageJson, to_publish};

/// Begins a transaction: the message is stored as a half message.
pub async fn begin(
    State(state): State<AppState>,
    caller: Caller,
    Path(topic): Path<String>,
    Json(message): Json<MessageJson>,
) -> ApiResult<(StatusCode, Reply<BeganJson>)> {
    caller.require(Permission::Publish)?;
    if message.deliver_at_ms.is_some() || message.message_group.is_some() {
        return Err(ApiError::invalid(
            "a transactional message carries neither deliver_at_ms nor message_group",
        ));
    }
    let (publish, _) = to_publish(0, message)?;
    crate::pipeline::publish::charge(&state.engine, &state.limiter, &caller, [&publish]).await?;
    let (published, transaction_id) = state
        .engine
        .publish_half(&caller.tenant, &topic, publish)
        .await?;
    Ok((
        StatusCode::CREATED,
        Reply(BeganJson {
            transaction_id,
            message_id: published.message_id,
        }),
    ))
}

/// The topic's open transactions, oldest first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(topic): Path<String>,
) -> ApiResult<Reply<OpenTransactionsJson>> {
    caller.require(Permission::Publish)?;
    let open = state
        .engine
        .open_transactions(&caller.tenant, &topic)
        .await?;
    Ok(Reply(OpenTransactionsJson {
        transactions: open.into_iter().map(open_json).collect(),
    }))
}

fn open_json(h: HalfRecord) -> OpenTransactionJson {
    OpenTransactionJson {
        transaction_id: h.transaction_id,
        message_id: h.message_id,
        created_ms: h.created_ms,
        checks: h.checks,
        next_check_ms: h.next_check_ms,
    }
}

pub async fn commit(
    state: State<AppState>,
    caller: Caller,
    path: Path<(String, String)>,
) -> ApiResult<Reply<EndedJson>> {
    end(state, caller, path, true).await
}

pub async fn rollback(
    state: State<AppState>,
    caller: Caller,
    path: Path<(String, String)>,
) -> ApiResult<Reply<EndedJson>> {
    end(state, caller, path, false).await
}

async fn end(
    State(state): State<AppState>,
    caller: Caller,
    Path((topic, transaction_id)): Path<(String, String)>,
    commit: bool,
) -> ApiResult<Reply<EndedJson>> {
    caller.require(Permission::Publish)?;
    // The topic must exist for this tenant, whatever the transaction.
    state.engine.topic_info(&caller.tenant, &topic)?;
    state
        .engine
        .end_transaction(&caller.tenant, &topic, &transaction_id, commit)
        .await?;
    Ok(Reply(EndedJson {
        transaction_id,
        outcome: if commit { "committed" } else { "rolled_back" }.into(),
    }))
}
