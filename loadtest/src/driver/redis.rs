//! The `redis` driver: Redis Streams through `redis` (redis-rs), the
//! maintained Rust client, async on tokio.
//!
//! A topic with N queues is N stream keys `<topic>:<queue>`. A publish is
//! one pipeline of XADDs (one round trip per batch); a reader XREADs with
//! COUNT and BLOCK from the last id it saw. Each producer and reader has
//! its own multiplexed connection.

use std::time::Duration;

use anyhow::{Context as _, Result};
use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands as _, AsyncConnectionConfig, RedisError};

use super::RequestError;
use super::endpoint::{
    ConsumeGroup, Driver, Publish, READ_BATCH, ReadFrom, ReadQueue, keep_connection,
};

/// The field that carries a message's body.
const FIELD: &str = "b";

/// A Redis server at `redis://addr`.
#[derive(Debug, Clone)]
pub struct Redis {
    client: redis::Client,
}

/// The stream key of one queue.
pub fn key(topic: &str, queue: u32) -> String {
    format!("{topic}:{queue}")
}

fn request_error(e: &RedisError) -> RequestError {
    if e.is_timeout() {
        RequestError::Timeout
    } else if e.is_connection_refusal() {
        RequestError::Connect
    } else if e.is_io_error() || e.is_connection_dropped() {
        RequestError::Transport
    } else {
        match e.code() {
            // The server refused: its error code is the label.
            Some(code) => RequestError::Refused(format!("redis {code}")),
            // The client could not read the reply.
            None => RequestError::BadReply(e.to_string()),
        }
    }
}

impl Redis {
    pub fn new(addr: std::net::SocketAddr) -> Result<Self> {
        let client = redis::Client::open(format!("redis://{addr}/"))
            .context("cannot make a Redis client")?;
        Ok(Self { client })
    }

    /// A new connection whose replies time out after `timeout`.
    pub async fn connect(&self, timeout: Duration) -> Result<MultiplexedConnection, RequestError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| match request_error(&e) {
                RequestError::Refused(_) => RequestError::Connect,
                other => other,
            })
    }
}

#[async_trait]
impl Driver for Redis {
    // Redis creates a stream key on its first XADD.
    async fn create_topic(&self, _topic: &str, _queues: u32, _timeout: Duration) -> Result<()> {
        Ok(())
    }

    async fn producer(&self, topic: &str, timeout: Duration) -> Result<Box<dyn Publish>> {
        Ok(Box::new(RedisProducer {
            redis: self.clone(),
            conn: None,
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
        // Replies to a blocking XREAD come after up to the read's wait.
        let mut conn = self.connect(timeout + Duration::from_secs(30)).await?;
        let key = key(topic, queue);
        let after = match from {
            ReadFrom::Start => "0-0".to_string(),
            ReadFrom::End => {
                let last: StreamRangeReply = conn
                    .xrevrange_count(&key, "+", "-", 1)
                    .await
                    .map_err(|e| request_error(&e))?;
                last.ids
                    .first()
                    .map_or_else(|| "0-0".to_string(), |e| e.id.clone())
            }
        };
        Ok(Box::new(RedisReader { conn, key, after }))
    }

    /// `XGROUP CREATE <key> <group> $ MKSTREAM` on every queue's key (a
    /// group that already exists is kept).
    async fn create_group(
        &self,
        topic: &str,
        queues: u32,
        group: &str,
        timeout: Duration,
    ) -> Result<()> {
        let mut conn = self.connect(timeout).await?;
        for q in 0..queues {
            let key = key(topic, q);
            let made: Result<(), RedisError> = conn.xgroup_create_mkstream(&key, group, "$").await;
            match made {
                Ok(()) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => anyhow::bail!("XGROUP CREATE {key} {group}: {e}"),
            }
        }
        Ok(())
    }

    async fn group_member(
        &self,
        topic: &str,
        queues: u32,
        group: &str,
        member: u32,
        timeout: Duration,
    ) -> Result<Box<dyn ConsumeGroup>, RequestError> {
        Ok(Box::new(RedisMember {
            conn: self.connect(timeout + Duration::from_secs(30)).await?,
            keys: (0..queues).map(|q| key(topic, q)).collect(),
            group: group.to_string(),
            name: format!("member-{member}"),
            received: Vec::new(),
        }))
    }
}

#[derive(Debug)]
struct RedisProducer {
    redis: Redis,
    conn: Option<MultiplexedConnection>,
    topic: String,
    timeout: Duration,
}

#[async_trait]
impl Publish for RedisProducer {
    async fn publish(&mut self, queue: u32, bodies: &[Bytes]) -> Result<(), RequestError> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self.conn.insert(self.redis.connect(self.timeout).await?),
        };
        let key = key(&self.topic, queue);
        let mut pipe = redis::pipe();
        for body in bodies {
            pipe.xadd(&key, "*", &[(FIELD, body.as_ref())]);
        }
        let result = match pipe.query_async::<Vec<String>>(conn).await {
            Ok(ids) if ids.len() == bodies.len() => Ok(()),
            Ok(ids) => Err(RequestError::BadReply(format!(
                "{} ids for {} XADDs",
                ids.len(),
                bodies.len()
            ))),
            Err(e) => Err(request_error(&e)),
        };
        keep_connection(&mut self.conn, &result);
        result
    }
}

#[derive(Debug)]
struct RedisReader {
    conn: MultiplexedConnection,
    key: String,
    after: String,
}

#[async_trait]
impl ReadQueue for RedisReader {
    async fn next_batch(&mut self, wait: Duration) -> Result<Vec<Vec<u8>>, RequestError> {
        let options = StreamReadOptions::default()
            .count(READ_BATCH as usize)
            .block(wait.as_millis().max(1) as usize);
        let reply: Option<StreamReadReply> = self
            .conn
            .xread_options(&[&self.key], &[&self.after], &options)
            .await
            .map_err(|e| request_error(&e))?;
        let mut out = Vec::new();
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            let body: Vec<u8> = entry
                .get(FIELD)
                .ok_or_else(|| RequestError::BadReply(format!("entry {} has no body", entry.id)))?;
            out.push(body);
            self.after = entry.id;
        }
        Ok(out)
    }
}

/// A member of a consumer group: XREADGROUP over every queue's key, then
/// one pipelined XACK per key that delivered something.
#[derive(Debug)]
struct RedisMember {
    conn: MultiplexedConnection,
    keys: Vec<String>,
    group: String,
    name: String,
    /// Per key: the ids of the last receive.
    received: Vec<(String, Vec<String>)>,
}

#[async_trait]
impl ConsumeGroup for RedisMember {
    /// COUNT applies per key: it is `max` split over the keys (rounded up),
    /// so a receive returns about `max` when every queue has messages.
    async fn receive(&mut self, max: u32, wait: Duration) -> Result<Vec<Vec<u8>>, RequestError> {
        let per_key = (max as usize).div_ceil(self.keys.len().max(1)).max(1);
        let options = StreamReadOptions::default()
            .group(&self.group, &self.name)
            .count(per_key)
            .block(wait.as_millis().max(1) as usize);
        let new: Vec<&str> = self.keys.iter().map(|_| ">").collect();
        let reply: Option<StreamReadReply> = self
            .conn
            .xread_options(&self.keys, &new, &options)
            .await
            .map_err(|e| request_error(&e))?;
        self.received.clear();
        let mut out = Vec::new();
        for stream in reply.into_iter().flat_map(|r| r.keys) {
            let mut ids = Vec::with_capacity(stream.ids.len());
            for entry in stream.ids {
                let body: Vec<u8> = entry.get(FIELD).ok_or_else(|| {
                    RequestError::BadReply(format!("entry {} has no body", entry.id))
                })?;
                out.push(body);
                ids.push(entry.id);
            }
            self.received.push((stream.key, ids));
        }
        Ok(out)
    }

    async fn ack(&mut self) -> Result<(), RequestError> {
        if self.received.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        let mut expected = 0;
        for (key, ids) in self.received.drain(..) {
            expected += ids.len() as i64;
            pipe.xack(key, &self.group, &ids);
        }
        let counts: Vec<i64> = pipe
            .query_async(&mut self.conn)
            .await
            .map_err(|e| request_error(&e))?;
        let acked: i64 = counts.iter().sum();
        if acked != expected {
            return Err(RequestError::BadReply(format!(
                "XACK acknowledged {acked} of {expected}"
            )));
        }
        Ok(())
    }
}
