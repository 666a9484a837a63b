//! `apache.rocketmq.v2.MessagingService` on the Strata engine.
//!
//! Every RPC authenticates first (see [`crate::grpc::caller`]); failures are
//! answered with a result code in the response body, as the protocol
//! expects — never a hang or a panic. Publishing and routes are here;
//! consumption by message is in [`crate::grpc::consume`], consumption by
//! offset in [`crate::grpc::pull`] (PullMessage) and [`crate::grpc::offsets`],
//! transactions in [`crate::grpc::txn`].

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use strata_common::ErrorCode;
use strata_tenancy::Permission;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::grpc::caller::{Caller, GrpcState};
use crate::grpc::convert::{InflateBudget, client_picks_queues, to_publish};
use crate::grpc::failure::{Failure, WithStatus, ok};
use crate::grpc::pb::messaging_service_server::MessagingService;
use crate::grpc::pb::{self, Code};
use crate::grpc::settings::{ConsumerGroup, server_settings};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The service; cheap to clone.
#[derive(Debug, Clone)]
pub struct Service {
    pub state: GrpcState,
    /// Bounds one decoded request, and what its GZIP bodies inflate to.
    pub max_request_bytes: usize,
}

/// Answers a unary RPC: the result, or the failure in the body status.
fn answer<R: WithStatus + std::fmt::Debug>(
    rpc: &str,
    result: Result<R, Failure>,
) -> Result<Response<R>, Status> {
    Ok(Response::new(result.unwrap_or_else(|f| {
        tracing::debug!(rpc, code = ?f.code, message = %f.message, "request refused");
        R::failed(&f)
    })))
}

/// A one-item stream holding a failure status.
fn failed_stream<T, F>(f: Failure, wrap: F) -> BoxStream<T>
where
    T: Send + 'static,
    F: FnOnce(pb::Status) -> T,
{
    Box::pin(tokio_stream::once(Ok(wrap(f.status()))))
}

impl Service {
    async fn query_route_inner(
        &self,
        request: Request<pb::QueryRouteRequest>,
    ) -> Result<pb::QueryRouteResponse, Failure> {
        let caller = self.state.caller(&request, "QueryRoute").await?;
        caller.require(Permission::Describe)?;
        let topic = request.get_ref().topic.clone();
        let name = caller.resource(topic.as_ref(), "topic")?;
        let message_queues = self.state.route(&caller, topic.clone(), name).await?;
        Ok(pb::QueryRouteResponse {
            status: Some(ok()),
            message_queues,
        })
    }

    async fn send_inner(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Result<pb::SendMessageResponse, Failure> {
        let caller = self.state.caller(&request, "SendMessage").await?;
        caller.require(Permission::Publish)?;
        let picks_queues = client_picks_queues(request.metadata());
        let messages = request.into_inner().messages;
        let Some(first) = messages.first() else {
            return Err(Failure::bad_request("SendMessage carries no message"));
        };
        let topic = first.topic.clone();
        let name = caller.resource(topic.as_ref(), "topic")?.to_string();
        // Each message's namespace is checked as the first's was.
        for m in &messages[1..] {
            caller.resource(m.topic.as_ref(), "topic")?;
        }
        if messages
            .iter()
            .any(|m| m.topic.as_ref().map(|t| &t.name) != Some(&name))
        {
            return Err(Failure::new(
                Code::IllegalTopic,
                "all messages of one SendMessage must go to the same topic",
            ));
        }
        let info = self.state.engine.topic_info(&caller.tenant, &name)?;
        let mut budget = InflateBudget {
            per_message: self.state.engine.config().max_message_bytes,
            remaining: self.max_request_bytes,
        };
        let publishes = messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                to_publish(
                    i,
                    m,
                    info.message_type,
                    info.queues,
                    picks_queues,
                    &mut budget,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let engine = &self.state.engine;
        let limiter = &self.state.limiter;
        if info.message_type == strata_engine::MessageType::Transaction {
            let publishes: Vec<_> = publishes.into_iter().map(|(p, _)| p).collect();
            crate::pipeline::publish::charge(engine, limiter, &caller, &publishes).await?;
            // One WAL append and one metadata commit for the whole batch.
            let entries = engine
                .publish_halves(&caller.tenant, &name, publishes)
                .await?
                .into_iter()
                .map(|(published, transaction_id)| pb::SendResultEntry {
                    status: Some(ok()),
                    message_id: published.message_id,
                    transaction_id,
                    offset: i64::try_from(published.offset).unwrap_or(i64::MAX),
                    recall_handle: String::new(),
                })
                .collect();
            return Ok(pb::SendMessageResponse {
                status: Some(ok()),
                entries,
            });
        }
        let delayed = info.message_type == strata_engine::MessageType::Delay;
        let batch = publishes
            .into_iter()
            // A DELAY topic message without a delivery time is due at once.
            .map(|(p, at)| {
                (
                    p,
                    if delayed {
                        Some(at.unwrap_or_default())
                    } else {
                        at
                    },
                )
            })
            .collect();
        let published = crate::pipeline::publish::publish(engine, limiter, &caller, &name, batch)
            .await
            .map_err(|e| match e.code {
                ErrorCode::InvalidArgument if delayed => {
                    Failure::new(Code::IllegalDeliveryTime, e.message)
                }
                _ => e.into(),
            })?;
        Ok(pb::SendMessageResponse {
            status: Some(ok()),
            entries: published
                .into_iter()
                .map(|p| pb::SendResultEntry {
                    status: Some(ok()),
                    message_id: p.message_id,
                    transaction_id: String::new(),
                    offset: i64::try_from(p.offset).unwrap_or(i64::MAX),
                    recall_handle: String::new(),
                })
                .collect(),
        })
    }
}

#[tonic::async_trait]
impl MessagingService for Service {
    async fn query_route(
        &self,
        request: Request<pb::QueryRouteRequest>,
    ) -> Result<Response<pb::QueryRouteResponse>, Status> {
        answer("QueryRoute", self.query_route_inner(request).await)
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let result = match self.state.caller(&request, "Heartbeat").await {
            // A consumer's heartbeat names its group: a name that cannot be
            // one is refused like everywhere else.
            Ok(caller) => match request.get_ref().group.as_ref() {
                Some(group) if !group.name.is_empty() => caller
                    .resource(Some(group), "consumer group")
                    .map(|_| pb::HeartbeatResponse { status: Some(ok()) }),
                _ => Ok(pb::HeartbeatResponse { status: Some(ok()) }),
            },
            Err(f) => Err(f),
        };
        answer("Heartbeat", result)
    }

    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        answer("SendMessage", self.send_inner(request).await)
    }

    async fn query_assignment(
        &self,
        request: Request<pb::QueryAssignmentRequest>,
    ) -> Result<Response<pb::QueryAssignmentResponse>, Status> {
        answer(
            "QueryAssignment",
            self.state.query_assignment_inner(request).await,
        )
    }

    type ReceiveMessageStream = BoxStream<pb::ReceiveMessageResponse>;

    async fn receive_message(
        &self,
        request: Request<pb::ReceiveMessageRequest>,
    ) -> Result<Response<Self::ReceiveMessageStream>, Status> {
        match self.state.receive_inner(request).await {
            Ok(answer) => Ok(Response::new(Box::pin(answer))),
            Err(f) => Ok(Response::new(failed_stream(f, |s| {
                pb::ReceiveMessageResponse {
                    content: Some(pb::receive_message_response::Content::Status(s)),
                }
            }))),
        }
    }

    async fn ack_message(
        &self,
        request: Request<pb::AckMessageRequest>,
    ) -> Result<Response<pb::AckMessageResponse>, Status> {
        let entries: Vec<pb::AckMessageResultEntry> = request
            .get_ref()
            .entries
            .iter()
            .map(|e| pb::AckMessageResultEntry {
                message_id: e.message_id.clone(),
                receipt_handle: e.receipt_handle.clone(),
                status: None,
            })
            .collect();
        // Some SDKs expect one result entry per message, even on failure.
        let f = match self.state.ack_inner(request).await {
            Ok(r) => return Ok(Response::new(r)),
            Err(f) => f,
        };
        let entries = entries
            .into_iter()
            .map(|mut e| {
                e.status = Some(f.status());
                e
            })
            .collect();
        Ok(Response::new(pb::AckMessageResponse {
            status: Some(f.status()),
            entries,
        }))
    }

    async fn forward_message_to_dead_letter_queue(
        &self,
        request: Request<pb::ForwardMessageToDeadLetterQueueRequest>,
    ) -> Result<Response<pb::ForwardMessageToDeadLetterQueueResponse>, Status> {
        answer(
            "ForwardMessageToDeadLetterQueue",
            self.state.forward_to_dlq_inner(request).await,
        )
    }

    type PullMessageStream = BoxStream<pb::PullMessageResponse>;

    async fn pull_message(
        &self,
        request: Request<pb::PullMessageRequest>,
    ) -> Result<Response<Self::PullMessageStream>, Status> {
        // Served by `pull::PullRoute` with responses encoded ahead; this
        // answers alike for a server built without the route.
        match self.state.pull_read(request).await {
            Ok(pulled) => Ok(Response::new(Box::pin(tokio_stream::iter(
                pulled.responses().into_iter().map(Ok),
            )))),
            Err(f) => Ok(Response::new(failed_stream(f, |s| {
                pb::PullMessageResponse {
                    content: Some(pb::pull_message_response::Content::Status(s)),
                }
            }))),
        }
    }

    async fn update_offset(
        &self,
        request: Request<pb::UpdateOffsetRequest>,
    ) -> Result<Response<pb::UpdateOffsetResponse>, Status> {
        answer(
            "UpdateOffset",
            self.state.update_offset_inner(request).await,
        )
    }

    async fn get_offset(
        &self,
        request: Request<pb::GetOffsetRequest>,
    ) -> Result<Response<pb::GetOffsetResponse>, Status> {
        answer("GetOffset", self.state.get_offset_inner(request).await)
    }

    async fn query_offset(
        &self,
        request: Request<pb::QueryOffsetRequest>,
    ) -> Result<Response<pb::QueryOffsetResponse>, Status> {
        answer("QueryOffset", self.state.query_offset_inner(request).await)
    }

    async fn end_transaction(
        &self,
        request: Request<pb::EndTransactionRequest>,
    ) -> Result<Response<pb::EndTransactionResponse>, Status> {
        answer(
            "EndTransaction",
            self.state.end_transaction_inner(request).await,
        )
    }

    type TelemetryStream = BoxStream<pb::TelemetryCommand>;

    /// Answers at once with the outbound stream (SDKs wait for the response
    /// headers), then replies to every Settings command with the settings
    /// this server enforces.
    async fn telemetry(
        &self,
        request: Request<Streaming<pb::TelemetryCommand>>,
    ) -> Result<Response<Self::TelemetryStream>, Status> {
        let caller = match self.state.caller(&request, "Telemetry").await {
            Ok(c) => c,
            // The stream has no body status: the refusal goes in the gRPC
            // status, so a throttled client is not told its key is bad.
            Err(f) => {
                return Err(match f.code {
                    Code::Forbidden => Status::permission_denied(f.message),
                    Code::TooManyRequests => Status::resource_exhausted(f.message),
                    Code::Unauthorized => Status::unauthenticated(f.message),
                    c if c as i32 >= 50000 => Status::internal(f.message),
                    _ => Status::invalid_argument(f.message),
                });
            }
        };
        let producers = self.state.producers.clone();
        let engine = self.state.engine.clone();
        let max_body = engine.config().max_message_bytes;
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let stream = producers.stream_id();
        let mut down = engine.shutdown_signal();
        let clock = engine.clock().clone();
        tokio::spawn(async move {
            // However the loop ends (the client half-closed the stream, the
            // connection dropped, the reply stream is gone, the server is
            // stopping), the producer is forgotten and every sender is
            // dropped, so the reply stream ends as the client expects.
            // Clients hold this stream open for as long as they live: a
            // stop that waited for it to end would wait for every client.
            let _forget = ForgetProducer(producers.clone(), stream);
            let mut again = SettingsAgain::default();
            loop {
                let command = tokio::select! {
                    _ = down.wait_for(|d| *d) => return,
                    reply = again.due() => Err(reply),
                    command = inbound.message() => Ok(command),
                };
                let command = match command {
                    Ok(command) => command,
                    Err(reply) => {
                        if tx.send(Ok(reply)).await.is_err() {
                            return;
                        }
                        continue;
                    }
                };
                let Ok(Some(command)) = command else {
                    return;
                };
                if let Some(pb::telemetry_command::Command::Settings(settings)) = command.command {
                    if let Err(f) = settings_resources(&caller, &settings) {
                        let reply = pb::TelemetryCommand {
                            status: Some(f.status()),
                            command: None,
                        };
                        if tx.send(Ok(reply)).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    if let Some(pb::settings::PubSub::Publishing(p)) = &settings.pub_sub {
                        // Check-backs carry message bodies, and an answer
                        // ends a transaction: only a key that may publish
                        // is sent them.
                        if caller.principal.require(Permission::Publish).is_ok() {
                            let topics = p.topics.iter().map(|t| t.name.clone()).collect();
                            producers.register(stream, &caller.tenant, topics, tx.clone());
                        } else {
                            tracing::info!(
                                tenant = caller.tenant,
                                access_key = caller.principal.access_key,
                                "a key without the publish permission declared itself a producer; \
                                 it gets no transaction check-backs"
                            );
                        }
                    }
                    let group = match &settings.pub_sub {
                        Some(pb::settings::PubSub::Subscription(sub)) => {
                            consumer_group(&engine, &caller.tenant, sub).await
                        }
                        _ => None,
                    };
                    let reply = pb::TelemetryCommand {
                        status: Some(ok()),
                        command: Some(pb::telemetry_command::Command::Settings(server_settings(
                            settings, max_body, group,
                        ))),
                    };
                    again.answered(&reply, clock.as_ref());
                    if tx.send(Ok(reply)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn notify_client_termination(
        &self,
        request: Request<pb::NotifyClientTerminationRequest>,
    ) -> Result<Response<pb::NotifyClientTerminationResponse>, Status> {
        let client = crate::grpc::clients::client_id(request.metadata());
        let result = self
            .state
            .caller(&request, "NotifyClientTermination")
            .await
            .and_then(|caller| {
                // A consumer names its group (a producer none); like every
                // other RPC, a group of another namespace is refused.
                if let Some(group) = request
                    .get_ref()
                    .group
                    .as_ref()
                    .filter(|g| !g.name.is_empty())
                {
                    caller.resource(Some(group), "group")?;
                }
                if let Some(id) = client {
                    let ended = self.state.clients.terminate(&caller.tenant, &id);
                    tracing::debug!(client = id, ended, "client terminated");
                }
                Ok(pb::NotifyClientTerminationResponse { status: Some(ok()) })
            });
        answer("NotifyClientTermination", result)
    }

    async fn change_invisible_duration(
        &self,
        request: Request<pb::ChangeInvisibleDurationRequest>,
    ) -> Result<Response<pb::ChangeInvisibleDurationResponse>, Status> {
        answer(
            "ChangeInvisibleDuration",
            self.state.change_invisible_inner(request).await,
        )
    }
}

/// The topics and group a client's settings name must be legal names in
/// the namespace the stream acts in, like every request's resources.
fn settings_resources(caller: &Caller, settings: &pb::Settings) -> Result<(), Failure> {
    match &settings.pub_sub {
        Some(pb::settings::PubSub::Publishing(p)) => {
            for topic in &p.topics {
                caller.resource(Some(topic), "topic")?;
            }
        }
        Some(pb::settings::PubSub::Subscription(s)) => {
            caller.resource(s.group.as_ref(), "consumer group")?;
            for entry in &s.subscriptions {
                caller.resource(entry.topic.as_ref(), "topic")?;
            }
        }
        None => {}
    }
    Ok(())
}

/// When a stream's first Settings answer is sent again. The Node.js SDK
/// (1.0.8) starts waiting for that answer only after it has fetched the
/// routes of all its topics and misses one that came sooner: a producer of
/// four topics never finished starting on this server, which answers in
/// about a millisecond. Settings are idempotent; other clients apply them
/// again.
const SETTINGS_AGAIN_AFTER: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(5),
];

/// The stream's latest Settings answer, and the sleeps until it goes out
/// again, timed from the first answer ([`SETTINGS_AGAIN_AFTER`]).
#[derive(Default)]
struct SettingsAgain {
    reply: Option<pb::TelemetryCommand>,
    sleeps: std::collections::VecDeque<strata_common::clock::Sleep>,
}

impl SettingsAgain {
    /// Notes an answer. What goes out again is always the latest: a client
    /// that changed its settings since must not get the old ones back.
    fn answered(&mut self, reply: &pb::TelemetryCommand, clock: &dyn strata_common::Clock) {
        if self.reply.is_none() {
            let mut elapsed = Duration::ZERO;
            for at in SETTINGS_AGAIN_AFTER {
                self.sleeps.push_back(clock.sleep(at - elapsed));
                elapsed = at;
            }
        }
        self.reply = Some(reply.clone());
    }

    /// The answer, when it is next due; never, once it went out each time.
    async fn due(&mut self) -> pb::TelemetryCommand {
        match (self.sleeps.front_mut(), &self.reply) {
            (Some(sleep), Some(reply)) => {
                sleep.await;
                self.sleeps.pop_front();
                reply.clone()
            }
            _ => std::future::pending().await,
        }
    }
}

/// Unregisters a Telemetry stream's producer when its task ends.
struct ForgetProducer(std::sync::Arc<crate::grpc::producers::Producers>, u64);

impl Drop for ForgetProducer {
    fn drop(&mut self) {
        self.0.unregister(self.1);
    }
}

/// What a consumer's settings say about its group: FIFO when the group
/// consumes in order and subscribes to a FIFO topic (RocketMQ's proxy sends
/// the group's `consumeMessageOrderly`; here a group of plain topics is
/// never told FIFO, which would only slow its push consumers). `None` for an
/// unknown group: its receives fail with a clear error instead.
async fn consumer_group(
    engine: &strata_engine::Engine,
    tenant: &str,
    sub: &pb::Subscription,
) -> Option<ConsumerGroup> {
    let name = sub.group.as_ref()?.name.as_str();
    let group = engine.group(tenant, name).await.ok()?;
    let fifo_topic = sub.subscriptions.iter().any(|entry| {
        entry.topic.as_ref().is_some_and(|t| {
            engine
                .topic_info(tenant, &t.name)
                .is_ok_and(|info| info.message_type == strata_engine::MessageType::Fifo)
        })
    });
    Some(ConsumerGroup {
        fifo: group.fifo && fifo_topic,
        retry: group.retry,
    })
}
