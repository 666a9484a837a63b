//! Consumer group endpoints.

use axum::Json as Reply;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use strata_engine::{GroupInfo, GroupSpec, RetryPolicy, StartPosition};

use super::AppState;
use super::auth::Caller;
use super::error::ApiResult;
use super::extract::{Json, Path};
use strata_tenancy::Permission;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    pub name: String,
    /// Retry policy (see [`RetryPolicy`]); defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delivery_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_initial_backoff_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_max_backoff_ms: Option<u64>,
    /// Where consumption by message starts on a queue the group never
    /// read: `latest` (default: messages published after the group was
    /// created) or `earliest` (every retained message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<StartPosition>,
    /// Whether FIFO topics are delivered in order, one message per message
    /// group at a time (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fifo: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OffsetJson {
    pub topic: String,
    pub queue: u32,
    pub offset: u64,
    pub lag: u64,
    pub updated_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct GroupJson {
    pub name: String,
    pub created_ms: i64,
    pub max_delivery_attempts: u32,
    pub retry_initial_backoff_ms: u64,
    pub retry_max_backoff_ms: u64,
    /// Servers before start positions answered without it: their groups
    /// started at the earliest message.
    #[serde(default = "earliest")]
    pub start: StartPosition,
    #[serde(default = "fifo_on")]
    pub fifo: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offsets: Option<Vec<OffsetJson>>,
}

fn earliest() -> StartPosition {
    StartPosition::Earliest
}

fn fifo_on() -> bool {
    true
}

fn group_json(g: GroupInfo, with_offsets: bool) -> GroupJson {
    GroupJson {
        name: g.name,
        created_ms: g.created_ms,
        max_delivery_attempts: g.retry.max_delivery_attempts,
        retry_initial_backoff_ms: g.retry.initial_backoff_ms,
        retry_max_backoff_ms: g.retry.max_backoff_ms,
        start: g.start,
        fifo: g.fifo,
        offsets: with_offsets.then(|| {
            g.offsets
                .into_iter()
                .map(|o| OffsetJson {
                    topic: o.topic,
                    queue: o.queue,
                    offset: o.offset,
                    lag: o.lag,
                    updated_ms: o.updated_ms,
                })
                .collect()
        }),
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct GroupList {
    pub groups: Vec<GroupJson>,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateGroup>,
) -> ApiResult<(StatusCode, Reply<GroupJson>)> {
    caller.require(Permission::Consume)?;
    let groups = state.engine.list_groups(&caller.tenant).await?;
    if !groups.iter().any(|g| g.name == req.name) {
        caller.within("consumer groups", |q| q.max_groups, groups.len() as u64, 1)?;
    }
    let d = GroupSpec::default();
    let initial = req
        .retry_initial_backoff_ms
        .unwrap_or(d.retry.initial_backoff_ms);
    let spec = GroupSpec {
        retry: RetryPolicy {
            max_delivery_attempts: req
                .max_delivery_attempts
                .unwrap_or(d.retry.max_delivery_attempts),
            initial_backoff_ms: initial,
            // Without a cap the backoff stays at its initial value.
            max_backoff_ms: req.retry_max_backoff_ms.unwrap_or(initial),
        },
        start: req.start.unwrap_or(d.start),
        fifo: req.fifo.unwrap_or(d.fifo),
    };
    let group = state
        .engine
        .create_group_with(&caller.tenant, &req.name, spec)
        .await?;
    Ok((StatusCode::CREATED, Reply(group_json(group, false))))
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Reply<GroupList>> {
    caller.require(Permission::Consume)?;
    let groups = state.engine.list_groups(&caller.tenant).await?;
    Ok(Reply(GroupList {
        groups: groups.into_iter().map(|g| group_json(g, false)).collect(),
    }))
}

pub async fn describe(
    State(state): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
) -> ApiResult<Reply<GroupJson>> {
    caller.require(Permission::Consume)?;
    let info = state.engine.describe_group(&caller.tenant, &group).await?;
    Ok(Reply(group_json(info, true)))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::ManageTenant)?;
    state.engine.delete_group(&caller.tenant, &group).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitOffset {
    /// The next offset the group will consume.
    pub offset: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CommittedJson {
    pub group: String,
    pub topic: String,
    pub queue: u32,
    /// `null` when the group never committed on this queue.
    pub offset: Option<u64>,
}

pub async fn commit(
    State(state): State<AppState>,
    caller: Caller,
    Path((group, topic, queue)): Path<(String, String, u32)>,
    Json(req): Json<CommitOffset>,
) -> ApiResult<Reply<CommittedJson>> {
    caller.require(Permission::Consume)?;
    state
        .engine
        .commit_offset(&caller.tenant, &group, &topic, queue, req.offset)
        .await?;
    Ok(Reply(CommittedJson {
        group,
        topic,
        queue,
        offset: Some(req.offset),
    }))
}

pub async fn get_offset(
    State(state): State<AppState>,
    caller: Caller,
    Path((group, topic, queue)): Path<(String, String, u32)>,
) -> ApiResult<Reply<CommittedJson>> {
    caller.require(Permission::Consume)?;
    let offset = state
        .engine
        .committed_offset(&caller.tenant, &group, &topic, queue)
        .await?;
    Ok(Reply(CommittedJson {
        group,
        topic,
        queue,
        offset,
    }))
}
