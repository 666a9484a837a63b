//! The `nats` driver: NATS JetStream through `async-nats`, the maintained
//! Rust client, used the way its documentation shows.
//!
//! A topic with N queues is one stream `<topic>` (file storage) with
//! subjects `<topic>.<queue>`. A publish sends every message of the batch
//! with `jetstream::Context::publish`, then awaits every PubAck. A reader
//! is an ephemeral pull consumer (ack policy none) filtered to one queue's
//! subject, consumed through `Consumer::stream()`, which keeps pull
//! requests open ahead of the reader. Each producer and reader has its own
//! client (its own TCP connection), as each Strata gRPC producer has.

use std::time::Duration;

use anyhow::{Context as _, Result};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, ReplayPolicy, pull};
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::{self, stream};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};

use super::RequestError;
use super::endpoint::{
    ConsumeGroup, Driver, GROUP_BATCH, Publish, READ_BATCH, ReadFrom, ReadQueue,
};

/// A NATS server with JetStream enabled, at `nats://addr`.
#[derive(Debug, Clone)]
pub struct Nats {
    pub url: String,
}

impl Nats {
    pub fn new(addr: std::net::SocketAddr) -> Self {
        Self {
            url: format!("nats://{addr}"),
        }
    }

    /// A JetStream context on a new connection; PubAcks and API calls time
    /// out after `timeout`.
    pub async fn connect(&self, timeout: Duration) -> Result<jetstream::Context, RequestError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(timeout)
            .request_timeout(Some(timeout))
            .connect(self.url.as_str())
            .await
            .map_err(|_| RequestError::Connect)?;
        let mut js = jetstream::new(client);
        js.set_timeout(timeout);
        Ok(js)
    }

    /// Whether JetStream answers its API: looking up a stream that does not
    /// exist gets a JetStream error back only once it is up.
    pub async fn ready(&self, timeout: Duration) -> bool {
        let Ok(js) = self.connect(timeout).await else {
            return false;
        };
        match js.get_stream("strata-loadtest-probe").await {
            Ok(_) => true,
            Err(e) => matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(_)
            ),
        }
    }
}

#[async_trait]
impl Driver for Nats {
    async fn create_topic(&self, topic: &str, _queues: u32, timeout: Duration) -> Result<()> {
        let js = self.connect(timeout).await?;
        js.get_or_create_stream(stream::Config {
            name: topic.to_string(),
            subjects: vec![format!("{topic}.*")],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .with_context(|| format!("cannot create JetStream stream {topic}"))?;
        Ok(())
    }

    async fn producer(&self, topic: &str, timeout: Duration) -> Result<Box<dyn Publish>> {
        Ok(Box::new(NatsProducer {
            nats: self.clone(),
            js: None,
            topic: topic.to_string(),
            timeout,
        }))
    }

    async fn reader(
        &self,
        topic: &str,
        queue: u32,
        from: ReadFrom,
        timeout: Duration,
    ) -> Result<Box<dyn ReadQueue>, RequestError> {
        let refused = |what: &str, e: &dyn std::fmt::Display| {
            RequestError::BadReply(format!("nats {what}: {e}"))
        };
        let js = self.connect(timeout).await?;
        let stream = js
            .get_stream(topic)
            .await
            .map_err(|e| refused("get stream", &e))?;
        let consumer = stream
            .create_consumer(pull::Config {
                filter_subject: format!("{topic}.{queue}"),
                deliver_policy: match from {
                    ReadFrom::Start => DeliverPolicy::All,
                    ReadFrom::End => DeliverPolicy::New,
                },
                ack_policy: AckPolicy::None,
                replay_policy: ReplayPolicy::Instant,
                inactive_threshold: Duration::from_secs(60),
                ..Default::default()
            })
            .await
            .map_err(|e| refused("create consumer", &e))?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(READ_BATCH as usize)
            .messages()
            .await
            .map_err(|e| refused("pull", &e))?;
        Ok(Box::new(NatsReader { messages }))
    }

    /// A durable pull consumer named `group` on every subject of the
    /// stream, with explicit acks, shared by the group's members.
    async fn create_group(
        &self,
        topic: &str,
        _queues: u32,
        group: &str,
        timeout: Duration,
    ) -> Result<()> {
        self.stream(topic, timeout)
            .await?
            .get_or_create_consumer(
                group,
                pull::Config {
                    durable_name: Some(group.to_string()),
                    deliver_policy: DeliverPolicy::New,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(60),
                    // Above what the members can hold, so it never throttles.
                    max_ack_pending: 100_000,
                    replay_policy: ReplayPolicy::Instant,
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("cannot create JetStream consumer {group} on {topic}"))?;
        Ok(())
    }

    async fn group_member(
        &self,
        topic: &str,
        _queues: u32,
        group: &str,
        _member: u32,
        timeout: Duration,
    ) -> Result<Box<dyn ConsumeGroup>, RequestError> {
        let consumer: jetstream::consumer::Consumer<pull::Config> = self
            .stream(topic, timeout)
            .await?
            .get_consumer(group)
            .await
            .map_err(|e| RequestError::BadReply(format!("nats get consumer: {e}")))?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(GROUP_BATCH as usize)
            .messages()
            .await
            .map_err(|e| RequestError::BadReply(format!("nats pull: {e}")))?;
        Ok(Box::new(NatsMember {
            messages,
            received: Vec::new(),
        }))
    }
}

impl Nats {
    /// The stream of `topic` on a new connection.
    async fn stream(&self, topic: &str, timeout: Duration) -> Result<stream::Stream, RequestError> {
        let js = self.connect(timeout).await?;
        js.get_stream(topic)
            .await
            .map_err(|e| RequestError::BadReply(format!("nats get stream: {e}")))
    }
}

#[derive(Debug)]
struct NatsProducer {
    nats: Nats,
    /// The client reconnects by itself; it is made on the first publish.
    js: Option<jetstream::Context>,
    topic: String,
    timeout: Duration,
}

fn publish_error(e: &jetstream::context::PublishError) -> RequestError {
    match e.kind() {
        PublishErrorKind::TimedOut => RequestError::Timeout,
        PublishErrorKind::BrokenPipe => RequestError::Transport,
        // A JetStream refusal carries its error code (bounded); anything
        // else (the client could not send) is a transport failure.
        PublishErrorKind::Other => {
            let code = std::error::Error::source(e)
                .and_then(|s| s.downcast_ref::<jetstream::Error>())
                .map(|j| j.error_code().0);
            match code {
                Some(code) => RequestError::Refused(format!("nats {code}")),
                None => RequestError::Transport,
            }
        }
        kind => RequestError::Refused(format!("nats {kind:?}")),
    }
}

#[async_trait]
impl Publish for NatsProducer {
    async fn publish(&mut self, queue: u32, bodies: &[Bytes]) -> Result<(), RequestError> {
        let js = match &self.js {
            Some(js) => js,
            None => self.js.insert(self.nats.connect(self.timeout).await?),
        };
        let subject = format!("{}.{queue}", self.topic);
        // Send the whole batch, then wait for its acknowledgements; the
        // whole batch within one request timeout, as for the other systems.
        let batch = async {
            let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(bodies.len());
            for body in bodies {
                let ack = js
                    .publish(subject.clone(), body.clone())
                    .await
                    .map_err(|e| publish_error(&e))?;
                acks.push(ack);
            }
            for ack in acks {
                ack.await.map_err(|e| publish_error(&e))?;
            }
            Ok(())
        };
        tokio::time::timeout(self.timeout, batch)
            .await
            .map_err(|_| RequestError::Timeout)?
    }
}

struct NatsReader {
    messages: pull::Stream,
}

impl std::fmt::Debug for NatsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NatsReader")
    }
}

#[async_trait]
impl ReadQueue for NatsReader {
    async fn next_batch(&mut self, wait: Duration) -> Result<Vec<Vec<u8>>, RequestError> {
        let bad = |e: pull::MessagesError| RequestError::Refused(format!("nats {:?}", e.kind()));
        let mut out = Vec::new();
        // Wait for the first message, then take what has already arrived.
        let first = match tokio::time::timeout(wait, self.messages.next()).await {
            Err(_) => return Ok(out),
            Ok(None) => return Err(RequestError::Transport),
            Ok(Some(m)) => m.map_err(bad)?,
        };
        out.push(first.payload.to_vec());
        while out.len() < READ_BATCH as usize {
            match self.messages.next().now_or_never() {
                Some(Some(m)) => out.push(m.map_err(bad)?.payload.to_vec()),
                Some(None) | None => break,
            }
        }
        Ok(out)
    }
}

/// A member of a consumer group: its own pull stream on the shared durable
/// consumer.
struct NatsMember {
    messages: pull::Stream,
    /// The messages of the last receive, to acknowledge.
    received: Vec<jetstream::Message>,
}

impl std::fmt::Debug for NatsMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NatsMember")
    }
}

#[async_trait]
impl ConsumeGroup for NatsMember {
    async fn receive(&mut self, max: u32, wait: Duration) -> Result<Vec<Vec<u8>>, RequestError> {
        let bad = |e: pull::MessagesError| RequestError::Refused(format!("nats {:?}", e.kind()));
        self.received.clear();
        let first = match tokio::time::timeout(wait, self.messages.next()).await {
            Err(_) => return Ok(Vec::new()),
            Ok(None) => return Err(RequestError::Transport),
            Ok(Some(m)) => m.map_err(bad)?,
        };
        self.received.push(first);
        while self.received.len() < max as usize {
            match self.messages.next().now_or_never() {
                Some(Some(m)) => self.received.push(m.map_err(bad)?),
                Some(None) | None => break,
            }
        }
        Ok(self.received.iter().map(|m| m.payload.to_vec()).collect())
    }

    /// One `double_ack` per message, all in flight together: each waits
    /// for the server to confirm, as Strata's and Redis's acks do (a plain
    /// `ack` is only queued in the client and would time nothing).
    async fn ack(&mut self) -> Result<(), RequestError> {
        let received = std::mem::take(&mut self.received);
        let acks = received.iter().map(|m| m.double_ack());
        for result in futures::future::join_all(acks).await {
            result.map_err(|_| RequestError::Transport)?;
        }
        Ok(())
    }
}
