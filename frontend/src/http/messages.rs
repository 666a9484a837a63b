//! Publishing and reading messages.
//!
//! Publish takes JSON (`application/json`, many messages, bodies as UTF-8
//! text or base64) or one raw message (`application/octet-stream` or
//! `text/plain`, with key/tag/queue in the query string).

use std::collections::BTreeMap;
use std::time::Duration;
pub use strata_client::api::messages::{
    MessageJson, PublishJson, PublishReply, PublishedJson, RawParams, ReadParams, ReadReply,
    StoredJson,
};

use axum::Json as Reply;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use strata_common::{
    ErrorCode, MESSAGE_GROUP_PROPERTY, Message, RESERVED_PROPERTY_PREFIX, StoredMessage,
};
use strata_engine::{PublishMessage, Published, ReadLimits, TagFilter};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{Path, Query};
use strata_tenancy::Permission;

pub(crate) fn to_publish(index: usize, m: MessageJson) -> ApiResult<(PublishMessage, Option<i64>)> {
    let body = match (m.body, m.body_base64) {
        (Some(text), None) => Bytes::from(text),
        (None, Some(b64)) => B64.decode(b64.as_bytes()).map(Bytes::from).map_err(|e| {
            ApiError::invalid(format!(
                "message {index}: body_base64 is not valid base64: {e}"
            ))
        })?,
        (None, None) => {
            return Err(ApiError::invalid(format!(
                "message {index}: give \"body\" (text) or \"body_base64\""
            )));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(format!(
                "message {index}: give either \"body\" or \"body_base64\", not both"
            )));
        }
    };
    if let Some(name) = m
        .properties
        .keys()
        .find(|k| k.starts_with(RESERVED_PROPERTY_PREFIX))
    {
        return Err(ApiError::invalid(format!(
            "message {index}: property {name:?}: names starting with {RESERVED_PROPERTY_PREFIX:?} are reserved for the system{}",
            if name == MESSAGE_GROUP_PROPERTY {
                "; give a FIFO message group as \"message_group\""
            } else {
                ""
            }
        )));
    }
    let mut properties: Vec<(String, String)> = m.properties.into_iter().collect();
    properties.extend(group_property(index, m.message_group)?);
    let publish = PublishMessage {
        queue: m.queue,
        message: Message {
            id: m.id.unwrap_or_default(),
            key: m.key,
            tag: m.tag,
            properties,
            body,
        },
    };
    Ok((publish, m.deliver_at_ms))
}

/// The property that carries a FIFO message group, checked.
fn group_property(index: usize, group: Option<String>) -> ApiResult<Option<(String, String)>> {
    match group {
        None => Ok(None),
        Some(g) => match strata_common::limits::message_group_problem(&g) {
            Some(problem) => Err(ApiError::invalid(format!("message {index}: {problem}"))),
            None => Ok(Some((MESSAGE_GROUP_PROPERTY.to_string(), g))),
        },
    }
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(
        raw.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    Path(topic): Path<String>,
    Query(params): Query<RawParams>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Reply<PublishReply>> {
    caller.require(Permission::Publish)?;
    let body = body?;
    let messages = match media_type(&headers).as_deref() {
        Some("application/json") => {
            if params.key.is_some()
                || params.tag.is_some()
                || params.queue.is_some()
                || params.id.is_some()
                || params.deliver_at_ms.is_some()
                || params.message_group.is_some()
            {
                return Err(ApiError::invalid(
                    "query parameters key/tag/queue/id/deliver_at_ms/message_group apply to raw bodies only; put them in the JSON message",
                ));
            }
            let parsed: PublishJson = serde_json::from_slice(&body)
                .and_then(|parsed| {
                    let mut de = serde_json::Deserializer::from_slice(&body);
                    ObjectShape { messages: true }.deserialize(&mut de)?;
                    Ok(parsed)
                })
                .map_err(|e| {
                    ApiError::new(ErrorCode::InvalidJson, format!("invalid publish JSON: {e}"))
                })?;
            parsed
                .messages
                .into_iter()
                .enumerate()
                .map(|(i, m)| to_publish(i, m))
                .collect::<ApiResult<Vec<_>>>()?
        }
        Some("application/octet-stream") | Some("text/plain") => vec![(
            PublishMessage {
                queue: params.queue,
                message: Message {
                    id: params.id.unwrap_or_default(),
                    key: params.key,
                    tag: params.tag,
                    properties: group_property(0, params.message_group)?
                        .into_iter()
                        .collect(),
                    body,
                },
            },
            params.deliver_at_ms,
        )],
        other => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "Content-Type {:?} is not accepted; use application/json, application/octet-stream or text/plain",
                    other.unwrap_or("(none)")
                ),
            ));
        }
    };
    let published =
        crate::pipeline::publish::publish(&state.engine, &state.limiter, &caller, &topic, messages)
            .await?;
    Ok(Reply(PublishReply {
        messages: published.into_iter().map(published_json).collect(),
    }))
}

/// Checks that a publish body has objects where the schema has them: serde's
/// derived structs also accept arrays (fields by position), which the API
/// does not document. Walks the JSON without building it.
struct ObjectShape {
    /// Also check each element of the top-level `messages` array.
    messages: bool,
}

impl<'de> DeserializeSeed<'de> for ObjectShape {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectShape {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if self.messages && key == "messages" {
                map.next_value_seed(MessageObjects)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct MessageObjects;

impl<'de> DeserializeSeed<'de> for MessageObjects {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MessageObjects {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of message objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(ObjectShape { messages: false })?
            .is_some()
        {}
        Ok(())
    }
}

/// Where a message landed, or, for a delayed message still waiting, when
/// it will be delivered (where it waits is the engine's own business).
fn published_json(p: Published) -> PublishedJson {
    let landed = p.deliver_at_ms.is_none();
    PublishedJson {
        queue: landed.then_some(p.queue),
        offset: landed.then_some(p.offset),
        id: p.message_id,
        deliver_at_ms: p.deliver_at_ms,
    }
}

/// The `encoding` query parameter: whether bodies are always base64.
pub(crate) fn force_base64(encoding: Option<&str>) -> ApiResult<bool> {
    match encoding {
        None | Some("auto") => Ok(false),
        Some("base64") => Ok(true),
        Some(other) => Err(ApiError::invalid(format!(
            "encoding {other:?} is not one of \"auto\", \"base64\""
        ))),
    }
}

pub(crate) fn stored_json(m: StoredMessage, force_base64: bool) -> StoredJson {
    let text = if force_base64 {
        None
    } else {
        std::str::from_utf8(&m.message.body)
            .ok()
            .map(str::to_string)
    };
    let body_base64 = text.is_none().then(|| B64.encode(&m.message.body));
    let mut properties: BTreeMap<String, String> = m.message.properties.into_iter().collect();
    let message_group = properties.remove(MESSAGE_GROUP_PROPERTY);
    StoredJson {
        offset: m.offset,
        timestamp_ms: m.timestamp_ms,
        id: m.message.id,
        key: m.message.key,
        tag: m.message.tag,
        message_group,
        properties,
        body: text,
        body_base64,
    }
}

pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path((topic, queue)): Path<(String, u32)>,
    Query(params): Query<ReadParams>,
) -> ApiResult<Response> {
    caller.require(Permission::Consume)?;
    let force_base64 = force_base64(params.encoding.as_deref())?;
    let filter = TagFilter::parse(params.tags.as_deref().unwrap_or("*"))?;
    if params.limit == Some(0) {
        return Err(ApiError::invalid("limit must be at least 1"));
    }
    let offset = match params.offset {
        Some(o) => o,
        None => {
            state
                .engine
                .queue_info(&caller.tenant, &topic, queue)?
                .first_offset
        }
    };
    let budget = caller.take_consume(&state.limiter).await?;
    let limits = ReadLimits {
        max_messages: params.limit.unwrap_or(100),
        max_returned: budget.messages,
        max_body_bytes: budget.bytes,
        filter: &filter,
    };
    let wait = Duration::from_millis(params.wait_ms.unwrap_or(0));
    let tenant = &caller.tenant;
    let result = match &params.group {
        Some(group) => {
            state
                .engine
                .read_for_group(tenant, group, &topic, queue, offset, wait, limits)
                .await?
        }
        None => {
            state
                .engine
                .read_within(tenant, &topic, queue, offset, wait, limits)
                .await?
        }
    };
    let (read_bytes, size) = crate::pipeline::reply::sizes(&result.messages);
    caller.charge_consumed(&state.limiter, result.messages.len() as u64, read_bytes);
    json_reply(&state, size, move || ReadReply {
        messages: result
            .messages
            .into_iter()
            .map(|m| stored_json(m, force_base64))
            .collect(),
        next_offset: result.next_offset,
        first_offset: result.first_offset,
        end_offset: result.high_watermark,
    })
    .await
}

/// A JSON reply of messages whose encoding costs `size` bytes: built and
/// encoded in place when small, on the readers' pool when large
/// ([`crate::pipeline::reply`]).
pub(super) async fn json_reply<T, F>(state: &AppState, size: usize, build: F) -> ApiResult<Response>
where
    T: serde::Serialize,
    F: FnOnce() -> T + Send + 'static,
{
    let encode = move || serde_json::to_vec(&build());
    let body = crate::pipeline::reply::encode(&state.engine, size, encode)
        .await?
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("encoding the reply: {e}")))?;
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}
