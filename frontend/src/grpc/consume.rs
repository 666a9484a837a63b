//! Consumption RPCs: ReceiveMessage, ChangeInvisibleDuration,
//! ForwardMessageToDeadLetterQueue and QueryAssignment, on the engine's
//! POP consumption (AckMessage: [`super::ack`]).

use std::time::Duration;

use md5::Digest as _;
use strata_common::MESSAGE_GROUP_PROPERTY;
use strata_engine::{EngineError, Popped, ReceiveRequest, TagFilter};
use strata_tenancy::Permission;
use tonic::Request;

use crate::grpc::caller::{Caller, GrpcState};
use crate::grpc::clients::client_id;
use crate::grpc::convert::{
    PROP_BORN_HOST, PROP_BORN_MS, PROP_KEYS, RESERVED_PREFIX, message_type,
};
use crate::grpc::failure::{Failure, ok};
use crate::grpc::pb::{self, Code};
use crate::grpc::settings::{LONG_POLLING_TIMEOUT, RECEIVE_BATCH_SIZE};
use crate::grpc::unsent::ReceiveStream;

/// Invisible duration when a receive does not say.
pub const DEFAULT_INVISIBLE: Duration = Duration::from_secs(30);

fn to_duration(d: &prost_types::Duration) -> Option<Duration> {
    let secs = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).ok()?;
    Some(Duration::new(secs, nanos))
}

/// A request's long-polling timeout: `default` when absent, at most the
/// longest this server waits, and refused when negative.
pub(crate) fn polling_timeout(
    d: Option<&prost_types::Duration>,
    default: Duration,
) -> Result<Duration, Failure> {
    match d {
        None => Ok(default),
        Some(d) => to_duration(d)
            .map(|d| d.min(LONG_POLLING_TIMEOUT))
            .ok_or_else(|| {
                Failure::new(
                    Code::IllegalPollingTime,
                    format!(
                        "long polling timeout {}s {}ns is negative",
                        d.seconds, d.nanos
                    ),
                )
            }),
    }
}

fn from_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

/// Checks a requested invisible duration against `min` and the engine's
/// longest.
fn invisible(d: Option<&prost_types::Duration>, min: Duration) -> Result<Duration, Failure> {
    let Some(d) = d else {
        return Ok(DEFAULT_INVISIBLE);
    };
    let max = strata_engine::pop::MAX_INVISIBLE;
    let value = to_duration(d)
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| {
            Failure::new(
                Code::IllegalInvisibleTime,
                format!("invisible duration must be between {min:?} and {max:?}"),
            )
        })?;
    Ok(value)
}

/// The tag filter a request asks for (`*` when none); SQL is refused.
pub(crate) fn tag_filter(f: Option<&pb::FilterExpression>) -> Result<TagFilter, Failure> {
    match f {
        Some(f) if f.r#type == pb::FilterType::Sql as i32 => Err(Failure::new(
            Code::IllegalFilterExpression,
            "SQL filter expressions are not supported; use tags (`a || b`)",
        )),
        Some(f) if pb::FilterType::try_from(f.r#type).is_err() => Err(Failure::new(
            Code::IllegalFilterExpression,
            format!("filter type {} is neither TAG nor SQL", f.r#type),
        )),
        Some(f) => TagFilter::parse(&f.expression)
            .map_err(|e| Failure::new(Code::IllegalFilterExpression, e.to_string())),
        None => Ok(TagFilter::All),
    }
}

/// Engine failures of consumption, with the codes consumers expect.
pub(crate) fn consume_failure(e: EngineError) -> Failure {
    match e {
        EngineError::InvalidReceiptHandle(m) => Failure::new(Code::InvalidReceiptHandle, m),
        EngineError::GroupNotFound(g) => Failure::new(
            Code::ConsumerGroupNotFound,
            format!("consumer group {g:?} does not exist; create it first"),
        ),
        other => other.into(),
    }
}

/// A delivered message in the protocol's shape.
pub fn to_pb(
    p: Popped,
    topic: pb::Resource,
    accepts: strata_engine::MessageType,
    invisible: Duration,
    store_host: &str,
) -> pb::Message {
    let m = p.message.message;
    let prop = |name: &str| {
        m.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let keys: Vec<String> = match prop(PROP_KEYS) {
        Some(all) => all.split(' ').map(str::to_string).collect(),
        None => m.key.iter().cloned().collect(),
    };
    let born_ms = prop(PROP_BORN_MS)
        .and_then(|v| v.parse().ok())
        .unwrap_or(p.message.timestamp_ms);
    let digest = hex::encode_upper(md5::Md5::digest(&m.body));
    pb::Message {
        topic: Some(topic),
        user_properties: m
            .properties
            .iter()
            .filter(|(k, _)| !k.starts_with(RESERVED_PREFIX))
            .cloned()
            .collect(),
        system_properties: Some(pb::SystemProperties {
            tag: m.tag.clone(),
            keys,
            message_id: m.id.clone(),
            body_digest: Some(pb::Digest {
                r#type: pb::DigestType::Md5 as i32,
                checksum: digest,
            }),
            body_encoding: pb::Encoding::Identity as i32,
            message_type: message_type(accepts) as i32,
            born_timestamp: Some(timestamp(born_ms)),
            born_host: prop(PROP_BORN_HOST).unwrap_or_default(),
            store_timestamp: Some(timestamp(p.message.timestamp_ms)),
            store_host: store_host.to_string(),
            receipt_handle: Some(p.handle),
            queue_id: i32::try_from(p.queue).unwrap_or(i32::MAX),
            queue_offset: Some(i64::try_from(p.message.offset).unwrap_or(i64::MAX)),
            invisible_duration: Some(from_duration(invisible)),
            delivery_attempt: Some(i32::try_from(p.attempt).unwrap_or(i32::MAX)),
            message_group: prop(MESSAGE_GROUP_PROPERTY),
            // A delayed message says when it was due, as RocketMQ's do.
            delivery_timestamp: prop(strata_engine::delay::PROP_DELIVER_AT)
                .and_then(|v| v.parse().ok())
                .map(timestamp),
            ..Default::default()
        }),
        body: m.body.to_vec(),
    }
}

impl GrpcState {
    /// The messages of one receive, then the closing status; those the
    /// transport never takes go back to the group ([`ReceiveStream`]).
    pub(crate) async fn receive_inner(
        &self,
        request: Request<pb::ReceiveMessageRequest>,
    ) -> Result<ReceiveStream, Failure> {
        let caller = self.caller(&request, "ReceiveMessage").await?;
        caller.require(Permission::Consume)?;
        let client = client_id(request.metadata());
        let r = request.into_inner();
        let group = caller
            .resource(r.group.as_ref(), "consumer group")?
            .to_string();
        let mq = r
            .message_queue
            .as_ref()
            .ok_or_else(|| Failure::bad_request("ReceiveMessage names no message queue"))?;
        let topic_resource = mq.topic.clone();
        // As in RocketMQ's proxy, the queue names the topic (and the node
        // serving it), not a queue to pop: a receive spans the topic.
        let topic = caller
            .resource(topic_resource.as_ref(), "topic")?
            .to_string();
        let filter = tag_filter(r.filter_expression.as_ref())?;
        let invisible = invisible(
            r.invisible_duration.as_ref(),
            strata_engine::pop::MIN_INVISIBLE,
        )?;
        // Answer well before the client's own deadline for the call, which
        // SDKs derive from the same timeout.
        let wait = polling_timeout(r.long_polling_timeout.as_ref(), LONG_POLLING_TIMEOUT)? * 4 / 5;
        let batch = if r.batch_size <= 0 {
            RECEIVE_BATCH_SIZE as usize
        } else {
            r.batch_size as usize
        };
        let budget = caller.take_consume(&self.limiter).await?;
        let info = self.engine.topic_info(&caller.tenant, &topic)?;
        let receive = self.engine.receive(ReceiveRequest {
            tenant: &caller.tenant,
            group: &group,
            topic: &topic,
            queue: None,
            max_messages: budget.messages(batch),
            invisible,
            wait,
            filter: &filter,
            max_body_bytes: budget.bytes,
        });
        // A client that announces its termination gets its long polls
        // back at once (deliveries already committed are released).
        let popped = match &client {
            Some(id) => {
                let mut receiving = self.clients.receiving(&caller.tenant, id);
                tokio::select! {
                    popped = receive => popped,
                    () = receiving.gone() => Ok(Vec::new()),
                }
            }
            None => receive.await,
        }
        .map_err(consume_failure)?;
        self.charge_consumed(&caller, &popped);
        let resource = pb::Resource {
            resource_namespace: topic_resource
                .map(|t| t.resource_namespace)
                .unwrap_or_default(),
            name: topic,
        };
        let store_host = self.engine.config().node_id.clone();
        let found = !popped.is_empty();
        let mut out: Vec<pb::ReceiveMessageResponse> = popped
            .into_iter()
            .map(|p| pb::ReceiveMessageResponse {
                content: Some(pb::receive_message_response::Content::Message(to_pb(
                    p,
                    resource.clone(),
                    info.message_type,
                    invisible,
                    &store_host,
                ))),
            })
            .collect();
        let status = if found {
            ok()
        } else {
            Failure::new(Code::MessageNotFound, "no new message").status()
        };
        out.push(pb::ReceiveMessageResponse {
            content: Some(pb::receive_message_response::Content::Status(status)),
        });
        // RocketMQ's proxy ends every receive with the time it delivered;
        // SDKs time consumption from it (the Python PushConsumer fails every
        // batch that lacks it).
        out.push(pb::ReceiveMessageResponse {
            content: Some(pb::receive_message_response::Content::DeliveryTimestamp(
                timestamp(self.engine.clock().now_ms()),
            )),
        });
        Ok(ReceiveStream::new(
            out,
            self.engine.clone(),
            &caller.tenant,
            &group,
        ))
    }

    fn charge_consumed(&self, caller: &Caller, popped: &[Popped]) {
        let bytes: u64 = popped
            .iter()
            .map(|p| p.message.message.body.len() as u64)
            .sum();
        caller.charge_consumed(&self.limiter, popped.len() as u64, bytes);
    }

    pub(crate) async fn change_invisible_inner(
        &self,
        request: Request<pb::ChangeInvisibleDurationRequest>,
    ) -> Result<pb::ChangeInvisibleDurationResponse, Failure> {
        let caller = self.caller(&request, "ChangeInvisibleDuration").await?;
        caller.require(Permission::Consume)?;
        let r = request.into_inner();
        let group = caller
            .resource(r.group.as_ref(), "consumer group")?
            .to_string();
        let topic = caller.resource(r.topic.as_ref(), "topic")?.to_string();
        let d = r.invisible_duration.as_ref().ok_or_else(|| {
            Failure::new(Code::IllegalInvisibleTime, "no invisible duration given")
        })?;
        // Push consumers nack with their retry backoff, which the official
        // Node.js SDK sends in milliseconds where it means seconds: short
        // durations are accepted and mean "deliver again soon".
        let d = invisible(Some(d), Duration::ZERO)?;
        let handle = self
            .engine
            .change_invisible(&caller.tenant, &group, &topic, &r.receipt_handle, d)
            .await
            .map_err(consume_failure)?;
        Ok(pb::ChangeInvisibleDurationResponse {
            status: Some(ok()),
            receipt_handle: handle,
        })
    }

    pub(crate) async fn forward_to_dlq_inner(
        &self,
        request: Request<pb::ForwardMessageToDeadLetterQueueRequest>,
    ) -> Result<pb::ForwardMessageToDeadLetterQueueResponse, Failure> {
        let caller = self
            .caller(&request, "ForwardMessageToDeadLetterQueue")
            .await?;
        caller.require(Permission::Consume)?;
        let r = request.into_inner();
        let group = caller
            .resource(r.group.as_ref(), "consumer group")?
            .to_string();
        let topic = caller.resource(r.topic.as_ref(), "topic")?.to_string();
        self.engine
            .forward_to_dead_letter(&caller.tenant, &group, &topic, &r.receipt_handle)
            .await
            .map_err(consume_failure)?;
        Ok(pb::ForwardMessageToDeadLetterQueueResponse { status: Some(ok()) })
    }

    /// Where a push consumer runs its receive loops. A receive spans the
    /// topic, so one assignment serves a group that takes the topic
    /// unordered (RocketMQ's proxy likewise answers one "broker" queue);
    /// a group consuming a FIFO topic in order gets every queue, as there.
    /// POP consumption keeps either free of duplicates.
    pub(crate) async fn query_assignment_inner(
        &self,
        request: Request<pb::QueryAssignmentRequest>,
    ) -> Result<pb::QueryAssignmentResponse, Failure> {
        let caller = self.caller(&request, "QueryAssignment").await?;
        caller.require(Permission::Consume)?;
        let r = request.into_inner();
        let topic = caller.resource(r.topic.as_ref(), "topic")?;
        let group = caller.resource(r.group.as_ref(), "consumer group")?;
        let group = self
            .engine
            .group(&caller.tenant, group)
            .await
            .map_err(consume_failure)?;
        let mut route = self.route(&caller, r.topic.clone(), topic).await?;
        let fifo = pb::MessageType::Fifo as i32;
        let ordered = group.fifo
            && route
                .first()
                .is_some_and(|mq| mq.accept_message_types.contains(&fifo));
        if !ordered {
            route.truncate(1);
        }
        Ok(pb::QueryAssignmentResponse {
            status: Some(ok()),
            assignments: route
                .into_iter()
                .map(|mq| pb::Assignment {
                    message_queue: Some(mq),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_filter_types_are_refused() {
        let filter = |r#type: i32| pb::FilterExpression {
            r#type,
            expression: "a".into(),
        };
        assert!(tag_filter(Some(&filter(pb::FilterType::Tag as i32))).is_ok());
        for bad in [pb::FilterType::Sql as i32, 77] {
            let e = tag_filter(Some(&filter(bad))).unwrap_err();
            assert_eq!(e.code, Code::IllegalFilterExpression);
        }
    }

    #[test]
    fn a_delayed_message_says_when_it_was_due() {
        let popped = |properties: Vec<(String, String)>| Popped {
            message: strata_common::StoredMessage {
                offset: 3,
                timestamp_ms: 5_100,
                message: strata_common::Message {
                    properties,
                    ..Default::default()
                },
            },
            queue: 0,
            attempt: 1,
            handle: "h".into(),
            visible_ms: 0,
        };
        let sys = |p: Popped| {
            let resource = pb::Resource::default();
            let m = to_pb(
                p,
                resource,
                strata_engine::MessageType::Delay,
                Duration::ZERO,
                "",
            );
            m.system_properties.unwrap_or_default()
        };
        let due = vec![(
            strata_engine::delay::PROP_DELIVER_AT.to_string(),
            "5000".to_string(),
        )];
        assert_eq!(sys(popped(due)).delivery_timestamp, Some(timestamp(5_000)));
        assert_eq!(sys(popped(Vec::new())).delivery_timestamp, None);
    }

    #[test]
    fn polling_timeouts_keep_fractions_are_capped_and_never_negative() {
        let d = |seconds, nanos| prost_types::Duration { seconds, nanos };
        let default = Duration::from_secs(3);
        assert_eq!(polling_timeout(None, default).unwrap(), default);
        assert_eq!(
            polling_timeout(Some(&d(0, 900_000_000)), default).unwrap(),
            Duration::from_millis(900)
        );
        assert_eq!(
            polling_timeout(Some(&d(3600, 0)), default).unwrap(),
            LONG_POLLING_TIMEOUT
        );
        for bad in [d(-1, 0), d(0, -5)] {
            let e = polling_timeout(Some(&bad), default).unwrap_err();
            assert_eq!(e.code, Code::IllegalPollingTime);
        }
    }
}
