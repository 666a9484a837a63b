//! Topic endpoints.

use axum::Json as Reply;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
pub use strata_client::api::topics::{
    CreateTopic, OffsetAtTime, QueueJson, TopicDetail, TopicJson, TopicList,
};
use strata_engine::{MessageType, QueueInfo, TopicInfo, TopicSpec};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, Path, Query};
use crate::config::{format_retention, parse_retention};
use strata_tenancy::Permission;

/// The wire form of a topic.
pub fn topic_json(t: &TopicInfo) -> TopicJson {
    TopicJson {
        name: t.name.clone(),
        id: t.id,
        queues: t.queues,
        message_type: t.message_type.to_string(),
        retention: format_retention(&t.retention),
        retention_bytes: t.retention_bytes,
        created_ms: t.created_ms,
    }
}

/// The wire form of a queue's statistics.
pub fn queue_json(q: &QueueInfo) -> QueueJson {
    QueueJson {
        queue: q.queue,
        first_offset: q.first_offset,
        end_offset: q.end_offset,
        messages: q.messages,
        bytes: q.bytes,
        batches: q.batches,
        oldest_timestamp_ms: q.oldest_timestamp_ms,
        newest_timestamp_ms: q.newest_timestamp_ms,
        owner_node: q.owner_node.clone(),
        owner_epoch: q.owner_epoch,
        wal_first_offset: q.wal_first_offset,
        object_first_offset: q.object_first_offset,
        object_end_offset: q.object_end_offset,
        object_bytes: q.object_bytes,
        object_ranges: q.object_ranges,
        objects: q.objects,
    }
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateTopic>,
) -> ApiResult<(StatusCode, Reply<TopicJson>)> {
    caller.require(Permission::ManageTenant)?;
    let message_type = match req.message_type.as_deref() {
        None => MessageType::Normal,
        Some(t) => t
            .parse::<MessageType>()
            .map_err(|e| ApiError::invalid(e.to_string()))?,
    };
    let retention = req
        .retention
        .as_deref()
        .map(parse_retention)
        .transpose()
        .map_err(ApiError::invalid)?;
    let existing = state.engine.list_topics(&caller.tenant);
    caller.within("topics", |q| q.max_topics, existing.len() as u64, 1)?;
    let queues_used: u64 = existing.iter().map(|t| u64::from(t.queues)).sum();
    caller.within(
        "queues",
        |q| q.max_queues,
        queues_used,
        u64::from(req.queues),
    )?;
    let spec = TopicSpec {
        queues: req.queues,
        message_type,
        retention,
        retention_bytes: req.retention_bytes,
    };
    let info = state
        .engine
        .create_topic_with(&caller.tenant, &req.name, spec)
        .await?;
    Ok((StatusCode::CREATED, Reply(topic_json(&info))))
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Reply<TopicList>> {
    caller.require(Permission::Describe)?;
    let topics = state.engine.list_topics(&caller.tenant);
    Ok(Reply(TopicList {
        topics: topics.iter().map(topic_json).collect(),
    }))
}

pub async fn describe(
    State(state): State<AppState>,
    caller: Caller,
    Path(topic): Path<String>,
) -> ApiResult<Reply<TopicDetail>> {
    caller.require(Permission::Describe)?;
    let (info, queues) = state.engine.describe_topic(&caller.tenant, &topic)?;
    Ok(Reply(TopicDetail {
        topic: topic_json(&info),
        queue_stats: queues.iter().map(queue_json).collect(),
    }))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(topic): Path<String>,
) -> ApiResult<Reply<TopicJson>> {
    caller.require(Permission::ManageTenant)?;
    let info = state.engine.delete_topic(&caller.tenant, &topic).await?;
    Ok(Reply(topic_json(&info)))
}

pub async fn queue(
    State(state): State<AppState>,
    caller: Caller,
    Path((topic, queue)): Path<(String, u32)>,
) -> ApiResult<Reply<QueueJson>> {
    caller.require(Permission::Describe)?;
    let info = state.engine.queue_info(&caller.tenant, &topic, queue)?;
    Ok(Reply(queue_json(&info)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeParams {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

pub async fn offset_at_time(
    State(state): State<AppState>,
    caller: Caller,
    Path((topic, queue)): Path<(String, u32)>,
    Query(params): Query<TimeParams>,
) -> ApiResult<Reply<OffsetAtTime>> {
    caller.require(Permission::Describe)?;
    if params.timestamp_ms < 0 {
        return Err(ApiError::invalid(
            "timestamp_ms is milliseconds since the Unix epoch and cannot be negative",
        ));
    }
    let offset = state
        .engine
        .offset_for_time(&caller.tenant, &topic, queue, params.timestamp_ms)
        .await?;
    Ok(Reply(OffsetAtTime {
        queue,
        timestamp_ms: params.timestamp_ms,
        offset,
    }))
}
