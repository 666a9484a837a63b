//! Consumer group endpoints.

use axum::Json as Reply;
use axum::extract::State;
use axum::http::StatusCode;
pub use strata_client::api::groups::{
    CommitOffset, CommittedJson, CreateGroup, GroupJson, GroupList, OffsetJson, QueueOffsetJson,
    ReceivingJson, ResetJson, ResetOffsets,
};
use strata_engine::{EngineError, GroupInfo, GroupSpec, OffsetTarget, RetryPolicy};

use super::AppState;
use super::auth::Caller;
use super::error::ApiResult;
use super::extract::{Json, Path};
use strata_tenancy::Permission;

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
        receiving: with_offsets.then(|| {
            g.receiving
                .into_iter()
                .map(|r| ReceivingJson {
                    topic: r.topic,
                    queue: r.queue,
                    cursor: r.cursor,
                    in_flight: r.in_flight,
                    ready: r.ready,
                    lag: r.ready.saturating_add(r.in_flight),
                })
                .collect()
        }),
    }
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateGroup>,
) -> ApiResult<(StatusCode, Reply<GroupJson>)> {
    caller.require(Permission::Consume)?;
    let groups = state.engine.list_groups(&caller.tenant).await?;
    let existed = groups.iter().any(|g| g.name == req.name);
    if !existed {
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
    let (group, created) = state
        .engine
        .create_group_reporting(&caller.tenant, &req.name, spec)
        .await?;
    // Creating a group that exists is fine when it asks for nothing else;
    // options it would change are refused by name rather than kept
    // silently (there is no update: delete and create again).
    let differ = options_that_differ(&req, &group);
    if !differ.is_empty() {
        return Err(super::ApiError::new(
            strata_common::ErrorCode::Conflict,
            format!(
                "group {:?} exists with other options ({}); delete it to create it with these",
                req.name,
                differ.join(", ")
            ),
        ));
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Reply(group_json(group, false))))
}

/// The options `req` gives that `group` does not have, as "name: has, asked".
fn options_that_differ(req: &CreateGroup, group: &GroupInfo) -> Vec<String> {
    let mut differ = Vec::new();
    let mut check = |name: &str, has: String, asked: Option<String>| {
        if let Some(asked) = asked.filter(|asked| *asked != has) {
            differ.push(format!("{name} is {has}, not {asked}"));
        }
    };
    let retry = &group.retry;
    check(
        "max_delivery_attempts",
        retry.max_delivery_attempts.to_string(),
        req.max_delivery_attempts.map(|v| v.to_string()),
    );
    check(
        "retry_initial_backoff_ms",
        retry.initial_backoff_ms.to_string(),
        req.retry_initial_backoff_ms.map(|v| v.to_string()),
    );
    check(
        "retry_max_backoff_ms",
        retry.max_backoff_ms.to_string(),
        req.retry_max_backoff_ms.map(|v| v.to_string()),
    );
    check(
        "start",
        group.start.as_str().to_string(),
        req.start.map(|v| v.as_str().to_string()),
    );
    check(
        "fifo",
        group.fifo.to_string(),
        req.fifo.map(|v| v.to_string()),
    );
    differ
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

pub async fn commit(
    State(state): State<AppState>,
    caller: Caller,
    Path((group, topic, queue)): Path<(String, String, u32)>,
    Json(req): Json<CommitOffset>,
) -> ApiResult<Reply<CommittedJson>> {
    caller.require(Permission::Consume)?;
    within_groups_if_new(&state, &caller, &group).await?;
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

/// A commit makes the group if it has none: that counts as creating it
/// (after the name's own check, which says more).
async fn within_groups_if_new(state: &AppState, caller: &Caller, group: &str) -> ApiResult<()> {
    strata_common::names::validate_group(group).map_err(EngineError::from)?;
    if state
        .engine
        .require_group(&caller.tenant, group)
        .await
        .is_err()
    {
        let groups = state.engine.list_groups(&caller.tenant).await?;
        if !groups.iter().any(|g| g.name == group) {
            caller.within("consumer groups", |q| q.max_groups, groups.len() as u64, 1)?;
        }
    }
    Ok(())
}

/// Moves the group on every queue of the topic at once.
pub async fn reset(
    State(state): State<AppState>,
    caller: Caller,
    Path((group, topic)): Path<(String, String)>,
    Json(req): Json<ResetOffsets>,
) -> ApiResult<Reply<ResetJson>> {
    caller.require(Permission::Consume)?;
    let to = match (req.to.as_deref(), req.offset, req.timestamp_ms) {
        (Some("earliest"), None, None) => OffsetTarget::Earliest,
        (Some("latest"), None, None) => OffsetTarget::Latest,
        (Some(other), None, None) => {
            return Err(EngineError::InvalidArgument(format!(
                "to must be \"earliest\" or \"latest\", not {other:?} (or give offset or timestamp_ms)"
            ))
            .into());
        }
        (None, Some(n), None) => OffsetTarget::Offset(n),
        (None, None, Some(ms)) if ms < 0 => {
            return Err(EngineError::InvalidArgument(format!(
                "timestamp_ms {ms} cannot be negative (Unix milliseconds)"
            ))
            .into());
        }
        (None, None, Some(ms)) => OffsetTarget::Time(ms),
        _ => {
            return Err(EngineError::InvalidArgument(
                "give exactly one of to (\"earliest\" or \"latest\"), offset or timestamp_ms"
                    .into(),
            )
            .into());
        }
    };
    within_groups_if_new(&state, &caller, &group).await?;
    let offsets = state
        .engine
        .reset_offsets(&caller.tenant, &group, &topic, to)
        .await?;
    Ok(Reply(ResetJson {
        group,
        topic,
        offsets: offsets
            .into_iter()
            .map(|(queue, offset)| QueueOffsetJson { queue, offset })
            .collect(),
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
    if offset.is_none() {
        // No offset of a group that does not exist: say which.
        state.engine.require_group(&caller.tenant, &group).await?;
    }
    Ok(Reply(CommittedJson {
        group,
        topic,
        queue,
        offset,
    }))
}
