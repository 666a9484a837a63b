//! The `strata-grpc` driver: Strata over its RocketMQ 5 gRPC API, through
//! the generated client code: SendMessage to publish (signed
//! `MQv2-HMAC-SHA1`, as the official SDKs do), PullMessage to read a queue
//! by offset. Topic creation and queue offsets go through the HTTP admin
//! client.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use bytes::Bytes;
use strata_client::pb::messaging_service_client::MessagingServiceClient;
use strata_client::pb::{self, Code};
use strata_client::signing::{DATE_HEADER, signed_headers};
use tonic::transport::{Channel, Endpoint};

use async_trait::async_trait;

use super::RequestError;
use super::endpoint::{
    ConsumeGroup, Driver, Publish, READ_BATCH, ReadFrom, ReadQueue, keep_connection,
};
use super::strata_group::GrpcMember;
use super::strata_http::StrataHttp;
use super::strata_stream::start_offset;

/// A Strata node's gRPC API plus its HTTP admin client.
#[derive(Debug, Clone)]
pub struct StrataGrpc {
    pub http: StrataHttp,
    addr: SocketAddr,
    access_key: String,
    secret_key: String,
}

pub(super) fn status_error(status: Option<pb::Status>) -> Result<(), RequestError> {
    let s = status.unwrap_or_default();
    if s.code == Code::Ok as i32 {
        return Ok(());
    }
    let name =
        Code::try_from(s.code).map_or_else(|_| s.code.to_string(), |c| c.as_str_name().to_string());
    Err(RequestError::Refused(format!("grpc {name}")))
}

pub(super) fn transport(e: &tonic::Status) -> RequestError {
    match e.code() {
        tonic::Code::DeadlineExceeded => RequestError::Timeout,
        tonic::Code::Unavailable => RequestError::Connect,
        _ => RequestError::Transport,
    }
}

impl StrataGrpc {
    pub fn new(http: StrataHttp, addr: SocketAddr, access_key: String, secret_key: String) -> Self {
        Self {
            http,
            addr,
            access_key,
            secret_key,
        }
    }

    /// A client on its own HTTP/2 connection (one per producer or reader).
    pub async fn connect(
        &self,
        timeout: Duration,
    ) -> Result<MessagingServiceClient<Channel>, RequestError> {
        let channel = Endpoint::from_shared(format!("http://{}", self.addr))
            .map_err(|_| RequestError::Connect)?
            .timeout(timeout)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|_| RequestError::Connect)?;
        Ok(MessagingServiceClient::new(channel))
    }

    pub(super) fn signed<T>(&self, body: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(body);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let (date, authorization) = signed_headers(&self.access_key, &self.secret_key, now);
        let md = r.metadata_mut();
        if let (Ok(d), Ok(a)) = (date.parse(), authorization.parse()) {
            md.insert(DATE_HEADER, d);
            md.insert("authorization", a);
        }
        r
    }

    /// Publishes `bodies` to one queue as NORMAL messages.
    pub async fn publish(
        &self,
        client: &mut MessagingServiceClient<Channel>,
        topic: &str,
        queue: u32,
        bodies: &[Bytes],
    ) -> Result<(), RequestError> {
        let messages = bodies
            .iter()
            .map(|b| pb::Message {
                topic: Some(pb::Resource {
                    resource_namespace: String::new(),
                    name: topic.to_string(),
                }),
                user_properties: Default::default(),
                system_properties: Some(pb::SystemProperties {
                    message_id: format!("{:016X}{:016X}", fastrand::u64(..), fastrand::u64(..)),
                    message_type: pb::MessageType::Normal as i32,
                    queue_id: queue as i32,
                    ..Default::default()
                }),
                body: b.to_vec(),
            })
            .collect();
        let reply = client
            .send_message(self.signed(pb::SendMessageRequest { messages }))
            .await
            .map_err(|e| transport(&e))?
            .into_inner();
        status_error(reply.status)?;
        if reply.entries.len() != bodies.len() {
            return Err(RequestError::BadReply(format!(
                "{} entries for {} messages",
                reply.entries.len(),
                bodies.len()
            )));
        }
        Ok(())
    }

    /// Up to `max` bodies from `offset`, long-polling up to `wait`; returns
    /// them with the next offset.
    pub async fn pull(
        &self,
        client: &mut MessagingServiceClient<Channel>,
        topic: &str,
        queue: u32,
        offset: u64,
        max: u32,
        wait: Duration,
    ) -> Result<(Vec<Vec<u8>>, u64), RequestError> {
        let request = pb::PullMessageRequest {
            group: Some(pb::Resource {
                resource_namespace: String::new(),
                name: "loadtest".into(),
            }),
            message_queue: Some(pb::MessageQueue {
                topic: Some(pb::Resource {
                    resource_namespace: String::new(),
                    name: topic.to_string(),
                }),
                id: queue as i32,
                ..Default::default()
            }),
            offset: offset as i64,
            batch_size: max as i32,
            filter_expression: None,
            long_polling_timeout: Some(prost_types::Duration {
                seconds: wait.as_secs() as i64,
                nanos: 0,
            }),
        };
        let mut stream = client
            .pull_message(self.signed(request))
            .await
            .map_err(|e| transport(&e))?
            .into_inner();
        let (mut bodies, mut next) = (Vec::new(), offset);
        while let Some(item) = stream.message().await.map_err(|e| transport(&e))? {
            match item.content {
                Some(pb::pull_message_response::Content::Message(m)) => bodies.push(m.body),
                Some(pb::pull_message_response::Content::NextOffset(n)) => next = n.max(0) as u64,
                Some(pb::pull_message_response::Content::Status(s)) => status_error(Some(s))?,
                None => {}
            }
        }
        Ok((bodies, next))
    }
}

#[async_trait]
impl Driver for StrataGrpc {
    async fn create_topic(&self, topic: &str, queues: u32, _timeout: Duration) -> Result<()> {
        self.http.create_topic(topic, queues).await.map(|_| ())
    }

    async fn producer(&self, topic: &str, timeout: Duration) -> Result<Box<dyn Publish>> {
        Ok(Box::new(GrpcProducer {
            grpc: self.clone(),
            client: None,
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
        let offset = start_offset(&self.http, topic, queue, from).await?;
        let client = self.connect(timeout + Duration::from_secs(30)).await?;
        Ok(Box::new(GrpcReader {
            grpc: self.clone(),
            client,
            topic: topic.to_string(),
            queue,
            offset,
        }))
    }

    async fn create_group(
        &self,
        _topic: &str,
        _queues: u32,
        group: &str,
        _timeout: Duration,
    ) -> Result<()> {
        self.http.create_group(group).await
    }

    async fn group_member(
        &self,
        topic: &str,
        _queues: u32,
        group: &str,
        _member: u32,
        timeout: Duration,
    ) -> Result<Box<dyn ConsumeGroup>, RequestError> {
        Ok(Box::new(GrpcMember {
            grpc: self.clone(),
            client: self.connect(timeout + Duration::from_secs(30)).await?,
            topic: topic.to_string(),
            group: group.to_string(),
            entries: Vec::new(),
        }))
    }

    fn strata_http(&self) -> Option<&StrataHttp> {
        Some(&self.http)
    }
}

#[derive(Debug)]
struct GrpcProducer {
    grpc: StrataGrpc,
    client: Option<MessagingServiceClient<Channel>>,
    topic: String,
    timeout: Duration,
}

#[async_trait]
impl Publish for GrpcProducer {
    async fn publish(&mut self, queue: u32, bodies: &[Bytes]) -> Result<(), RequestError> {
        let client = match &mut self.client {
            Some(c) => c,
            None => self.client.insert(self.grpc.connect(self.timeout).await?),
        };
        let result = self.grpc.publish(client, &self.topic, queue, bodies).await;
        keep_connection(&mut self.client, &result);
        result
    }
}

#[derive(Debug)]
struct GrpcReader {
    grpc: StrataGrpc,
    client: MessagingServiceClient<Channel>,
    topic: String,
    queue: u32,
    offset: u64,
}

#[async_trait]
impl ReadQueue for GrpcReader {
    async fn next_batch(&mut self, wait: Duration) -> Result<Vec<Vec<u8>>, RequestError> {
        let (bodies, next) = self
            .grpc
            .pull(
                &mut self.client,
                &self.topic,
                self.queue,
                self.offset,
                READ_BATCH,
                wait,
            )
            .await?;
        self.offset = next;
        Ok(bodies)
    }
}
