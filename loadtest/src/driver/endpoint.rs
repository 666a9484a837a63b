//! The one interface every system under test implements: create a topic of
//! N queues, publish a batch of bodies to one queue, read one queue from
//! its start or from its end. Concepts map as
//!
//! | Strata            | NATS JetStream                 | Redis Streams            |
//! |-------------------|--------------------------------|--------------------------|
//! | topic             | stream `<topic>`               | (key prefix)             |
//! | queue q           | subject `<topic>.<q>`          | stream key `<topic>:<q>` |
//! | publish (durable) | publish + PubAck per message   | XADD (pipelined)         |
//! | read from offset  | pull consumer on `<topic>.<q>` | XREAD from an id         |
//! | consumer group    | durable pull consumer, explicit acks | XGROUP on every queue's key |
//! | receive + ack     | pull + `double_ack` per message | XREADGROUP + XACK (pipelined) |
//!
//! Each system's driver is one file beside this one ([`super::strata_stream`]
//! for Strata's HTTP API, [`super::strata_grpc`], [`super::nats`],
//! [`super::redis`]). Each producer or reader owns its own connection (or
//! shares the HTTP pool, for Strata's HTTP API). Where a late reply could
//! be taken for the answer to a newer request (Redis, Strata gRPC), a
//! producer drops its connection after a transport failure or timeout and
//! the next call reconnects; a NATS publish waits on its own reply inbox.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use bytes::Bytes;

use super::RequestError;
use super::strata_http::StrataHttp;

/// Messages asked for per read.
pub const READ_BATCH: u32 = 1000;

/// Messages asked for per receive of a consumer-group member (the
/// official RocketMQ SDKs' default batch).
pub const GROUP_BATCH: u32 = 32;

/// Where a reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The first message of the queue.
    Start,
    /// The next message published after the reader is created.
    End,
}

/// A system under test, reachable and ready.
#[async_trait]
pub trait Driver: Send + Sync + fmt::Debug {
    /// Creates `topic` with `queues` queues (an existing one is reused).
    async fn create_topic(&self, topic: &str, queues: u32, timeout: Duration) -> Result<()>;

    /// A producer for one task. It may connect lazily, on its first publish.
    async fn producer(&self, topic: &str, timeout: Duration) -> Result<Box<dyn Publish>>;

    /// A reader of one queue. `End` readers must be created before the
    /// producers start: whatever is published afterwards is read.
    async fn reader(
        &self,
        topic: &str,
        queue: u32,
        from: ReadFrom,
        timeout: Duration,
    ) -> Result<Box<dyn ReadQueue>, RequestError>;

    /// Creates consumer group `group` on every queue of `topic`, starting
    /// at the end: it gets what is published afterwards. An existing group
    /// is reused where it stands (each scenario has its own topics, so the
    /// group is new there).
    async fn create_group(
        &self,
        topic: &str,
        queues: u32,
        group: &str,
        timeout: Duration,
    ) -> Result<()>;

    /// Member `member` of `group` (made by [`Driver::create_group`]): it
    /// receives from any queue of `topic` and acknowledges what it got.
    async fn group_member(
        &self,
        topic: &str,
        queues: u32,
        group: &str,
        member: u32,
        timeout: Duration,
    ) -> Result<Box<dyn ConsumeGroup>, RequestError>;

    /// Strata's HTTP client (admin, status, offsets); `None` for peers.
    fn strata_http(&self) -> Option<&StrataHttp> {
        None
    }
}

/// Publishes to one topic; used by one task.
#[async_trait]
pub trait Publish: Send + fmt::Debug {
    /// Publishes `bodies` to `queue` and waits until the system acknowledged
    /// every one of them.
    async fn publish(&mut self, queue: u32, bodies: &[Bytes]) -> Result<(), RequestError>;
}

/// Reads one queue in order; used by one task. A failed reader is not
/// reconnected: the caller counts the error and stops it.
#[async_trait]
pub trait ReadQueue: Send + fmt::Debug {
    /// The next bodies in order, waiting up to `wait` when there are none
    /// (an empty result then).
    async fn next_batch(&mut self, wait: Duration) -> Result<Vec<Vec<u8>>, RequestError>;
}

/// One member of a consumer group; used by one task. Like a reader, a
/// failed member is not reconnected.
#[async_trait]
pub trait ConsumeGroup: Send + fmt::Debug {
    /// Up to `max` bodies from any queue, waiting up to `wait` when none is
    /// ready (an empty result then). The member keeps what it needs to
    /// acknowledge them.
    async fn receive(&mut self, max: u32, wait: Duration) -> Result<Vec<Vec<u8>>, RequestError>;

    /// Acknowledges every message of the last receive, in as few requests
    /// as the system's client allows, and waits for the answers where the
    /// client gives any.
    async fn ack(&mut self) -> Result<(), RequestError>;
}

/// A shared handle on a system's driver.
#[derive(Debug, Clone)]
pub struct Endpoint(Arc<dyn Driver>);

/// A producer of one task.
pub type Producer = Box<dyn Publish>;
/// A reader of one queue.
pub type Reader = Box<dyn ReadQueue>;
/// A member of a consumer group.
pub type Member = Box<dyn ConsumeGroup>;

impl Endpoint {
    pub fn new(driver: impl Driver + 'static) -> Self {
        Self(Arc::new(driver))
    }

    /// The HTTP client of a Strata endpoint (admin, status, offsets).
    pub fn strata_http(&self) -> Option<&StrataHttp> {
        self.0.strata_http()
    }

    pub async fn create_topic(&self, topic: &str, queues: u32, timeout: Duration) -> Result<()> {
        self.0.create_topic(topic, queues, timeout).await
    }

    pub async fn producer(&self, topic: &str, timeout: Duration) -> Result<Producer> {
        self.0.producer(topic, timeout).await
    }

    pub async fn reader(
        &self,
        topic: &str,
        queue: u32,
        from: ReadFrom,
        timeout: Duration,
    ) -> Result<Reader, RequestError> {
        self.0.reader(topic, queue, from, timeout).await
    }

    pub async fn create_group(
        &self,
        topic: &str,
        queues: u32,
        group: &str,
        timeout: Duration,
    ) -> Result<()> {
        self.0.create_group(topic, queues, group, timeout).await
    }

    pub async fn group_member(
        &self,
        topic: &str,
        queues: u32,
        group: &str,
        member: u32,
        timeout: Duration,
    ) -> Result<Member, RequestError> {
        self.0
            .group_member(topic, queues, group, member, timeout)
            .await
    }
}

/// Drops a producer's connection after a failure that may leave a reply in
/// flight (anything but a clean refusal), so the next call reconnects.
pub(crate) fn keep_connection<C>(slot: &mut Option<C>, result: &Result<(), RequestError>) {
    if result
        .as_ref()
        .is_err_and(|e| !matches!(e, RequestError::Refused(_)))
    {
        *slot = None;
    }
}
