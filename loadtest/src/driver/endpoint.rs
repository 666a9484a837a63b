//! One interface over every system under test: create a topic of N queues,
//! publish a batch of bodies to one queue, read one queue from its start
//! or from its end. Concepts map as
//!
//! | Strata            | NATS JetStream                 | Redis Streams          |
//! |-------------------|--------------------------------|------------------------|
//! | topic             | stream `<topic>`               | (key prefix)           |
//! | queue q           | subject `<topic>.<q>`          | stream key `<topic>:<q>` |
//! | publish (durable) | publish + PubAck per message   | XADD (pipelined)       |
//! | read from offset  | pull consumer on `<topic>.<q>` | XREAD from an id       |
//!
//! Each producer or reader owns one connection (NATS, Redis) or shares the
//! HTTP pool (Strata); after a transport failure or timeout the connection
//! is dropped and the next call reconnects, so a late reply can never be
//! taken for the answer to a newer request.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use reqwest::Url;

use super::RequestError;
use super::nats::NatsConn;
use super::nats_pull::PullReader;
use super::redis::{self, RedisConn};
use super::strata_grpc::StrataGrpc;
use super::strata_http::StrataHttp;
use strata_client::pb::messaging_service_client::MessagingServiceClient;
use tonic::transport::Channel;

/// Messages asked for per read.
pub const READ_BATCH: u32 = 1000;

/// Where a system under test listens.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Strata(StrataHttp),
    /// Strata over its RocketMQ 5 gRPC API.
    StrataGrpc(StrataGrpc),
    Nats(SocketAddr),
    Redis(SocketAddr),
}

/// Where a reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The first message of the queue.
    Start,
    /// The next message published after the reader is created.
    End,
}

impl Endpoint {
    /// The HTTP client of a Strata endpoint (admin, status, offsets).
    pub fn strata_http(&self) -> Option<&StrataHttp> {
        match self {
            Self::Strata(c) => Some(c),
            Self::StrataGrpc(g) => Some(&g.http),
            _ => None,
        }
    }

    /// Creates `topic` with `queues` queues (an existing one is reused).
    pub async fn create_topic(&self, topic: &str, queues: u32, timeout: Duration) -> Result<()> {
        match self {
            Self::Strata(c) => c.create_topic(topic, queues).await.map(|_| ()),
            Self::StrataGrpc(g) => g.http.create_topic(topic, queues).await.map(|_| ()),
            Self::Nats(addr) => {
                let mut conn = NatsConn::connect(*addr, timeout).await?;
                conn.create_stream(topic)
                    .await
                    .with_context(|| format!("cannot create JetStream stream {topic}"))
            }
            // Redis creates a stream key on its first XADD.
            Self::Redis(_) => Ok(()),
        }
    }

    pub async fn producer(&self, topic: &str, timeout: Duration) -> Result<Producer> {
        let kind = match self {
            Self::Strata(c) => ProducerKind::Strata {
                client: c.clone(),
                url: c.publish_url(topic)?,
            },
            Self::StrataGrpc(g) => ProducerKind::StrataGrpc(g.clone(), None),
            Self::Nats(addr) => ProducerKind::Nats(*addr, None),
            Self::Redis(addr) => ProducerKind::Redis(*addr, None),
        };
        Ok(Producer {
            kind,
            topic: topic.to_string(),
            timeout,
        })
    }

    /// A reader of one queue. `End` readers must be created before the
    /// producers start: whatever is published afterwards is read.
    pub async fn reader(
        &self,
        topic: &str,
        queue: u32,
        from: ReadFrom,
        timeout: Duration,
    ) -> Result<Reader, RequestError> {
        let kind = match self {
            Self::Strata(c) => {
                let offset = match from {
                    ReadFrom::Start => 0,
                    ReadFrom::End => c
                        .queue_stats(topic)
                        .await
                        .map_err(|e| RequestError::BadReply(format!("{e:#}")))?
                        .iter()
                        .find(|q| q.queue == queue)
                        .map_or(0, |q| q.end_offset),
                };
                let url = c
                    .read_url(topic, queue)
                    .map_err(|e| RequestError::BadReply(format!("{e:#}")))?;
                ReaderKind::Strata {
                    client: c
                        .fresh(timeout + Duration::from_secs(30))
                        .map_err(|e| RequestError::BadReply(format!("{e:#}")))?,
                    url,
                    offset,
                }
            }
            Self::StrataGrpc(g) => {
                let offset = match from {
                    ReadFrom::Start => 0,
                    ReadFrom::End => g
                        .http
                        .queue_stats(topic)
                        .await
                        .map_err(|e| RequestError::BadReply(format!("{e:#}")))?
                        .iter()
                        .find(|q| q.queue == queue)
                        .map_or(0, |q| q.end_offset),
                };
                let client = g.connect(timeout + Duration::from_secs(30)).await?;
                ReaderKind::StrataGrpc {
                    grpc: g.clone(),
                    client,
                    topic: topic.to_string(),
                    queue,
                    offset,
                }
            }
            Self::Nats(addr) => {
                let mut conn = NatsConn::connect(*addr, timeout).await?;
                let consumer = conn
                    .create_consumer(topic, queue, from == ReadFrom::Start)
                    .await?;
                ReaderKind::Nats(PullReader::new(conn, topic, consumer))
            }
            Self::Redis(addr) => {
                let mut conn = RedisConn::connect(*addr, timeout).await?;
                let key = redis::key(topic, queue);
                let after = match from {
                    ReadFrom::Start => "0-0".to_string(),
                    ReadFrom::End => conn.last_id(&key).await?,
                };
                ReaderKind::Redis { conn, key, after }
            }
        };
        Ok(Reader { kind })
    }
}

#[derive(Debug)]
enum ProducerKind {
    Strata { client: StrataHttp, url: Url },
    StrataGrpc(StrataGrpc, Option<MessagingServiceClient<Channel>>),
    Nats(SocketAddr, Option<NatsConn>),
    Redis(SocketAddr, Option<RedisConn>),
}

/// Publishes to one topic; used by one task.
#[derive(Debug)]
pub struct Producer {
    kind: ProducerKind,
    topic: String,
    timeout: Duration,
}

impl Producer {
    /// Publishes `bodies` to `queue` and waits until the system acknowledged
    /// every one of them.
    pub async fn publish(&mut self, queue: u32, bodies: &[Bytes]) -> Result<(), RequestError> {
        let timeout = self.timeout;
        match &mut self.kind {
            ProducerKind::Strata { client, url } => client.publish_raw(url, queue, bodies).await,
            ProducerKind::StrataGrpc(grpc, slot) => {
                let client = match slot {
                    Some(c) => c,
                    None => slot.insert(grpc.connect(timeout).await?),
                };
                let result = grpc.publish(client, &self.topic, queue, bodies).await;
                if result
                    .as_ref()
                    .is_err_and(|e| !matches!(e, RequestError::Refused(_)))
                {
                    *slot = None;
                }
                result
            }
            ProducerKind::Nats(addr, slot) => {
                let conn = match slot {
                    Some(c) => c,
                    None => slot.insert(NatsConn::connect(*addr, timeout).await?),
                };
                let subject = format!("{}.{queue}", self.topic);
                let result = conn.publish(&subject, bodies).await;
                if result
                    .as_ref()
                    .is_err_and(|e| !matches!(e, RequestError::Refused(_)))
                {
                    *slot = None;
                }
                result
            }
            ProducerKind::Redis(addr, slot) => {
                let conn = match slot {
                    Some(c) => c,
                    None => slot.insert(RedisConn::connect(*addr, timeout).await?),
                };
                let result = conn.xadd(&redis::key(&self.topic, queue), bodies).await;
                if result
                    .as_ref()
                    .is_err_and(|e| !matches!(e, RequestError::Refused(_)))
                {
                    *slot = None;
                }
                result
            }
        }
    }
}

#[derive(Debug)]
enum ReaderKind {
    Strata {
        client: StrataHttp,
        url: Url,
        offset: u64,
    },
    StrataGrpc {
        grpc: StrataGrpc,
        client: MessagingServiceClient<Channel>,
        topic: String,
        queue: u32,
        offset: u64,
    },
    Nats(PullReader),
    Redis {
        conn: RedisConn,
        key: String,
        after: String,
    },
}

/// Reads one queue in order; used by one task. A failed reader is not
/// reconnected: the caller counts the error and stops it.
#[derive(Debug)]
pub struct Reader {
    kind: ReaderKind,
}

impl Reader {
    /// The next bodies in order, waiting up to `wait` when there are none
    /// (an empty result then).
    pub async fn next_batch(&mut self, wait: Duration) -> Result<Vec<Vec<u8>>, RequestError> {
        match &mut self.kind {
            ReaderKind::Strata {
                client,
                url,
                offset,
            } => {
                let (bodies, next) = client.read_raw(url, *offset, READ_BATCH, wait).await?;
                *offset = next;
                Ok(bodies)
            }
            ReaderKind::StrataGrpc {
                grpc,
                client,
                topic,
                queue,
                offset,
            } => {
                let (bodies, next) = grpc
                    .pull(client, topic, *queue, *offset, READ_BATCH, wait)
                    .await?;
                *offset = next;
                Ok(bodies)
            }
            ReaderKind::Redis { conn, key, after } => {
                let entries = conn.xread(key, after, READ_BATCH, wait).await?;
                if let Some((id, _)) = entries.last() {
                    *after = id.clone();
                }
                Ok(entries.into_iter().map(|(_, body)| body).collect())
            }
            ReaderKind::Nats(reader) => reader.next_batch(READ_BATCH, wait).await,
        }
    }
}
