//! Strata's consumer groups in the shape the `consume` scenario uses: a
//! group made over HTTP (starting at the end of the topic), and members
//! that receive from every queue of the topic and acknowledge with one
//! request per batch, over HTTP (`/v1/groups/{group}/receive`, `/ack`) or
//! over RocketMQ 5 gRPC (ReceiveMessage, AckMessage with one entry per
//! message), as the official SDKs' simple consumers do.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use reqwest::Url;
use reqwest::header::CONTENT_TYPE;
use strata_client::api::pop::{AckJson, AckReply, ReceiveJson, ReceiveReply};
use strata_client::pb::messaging_service_client::MessagingServiceClient;
use strata_client::pb::{self, Code};
use tonic::transport::Channel;

use super::RequestError;
use super::endpoint::ConsumeGroup;
use super::strata_grpc::{StrataGrpc, status_error, transport};
use super::strata_http::{StrataHttp, describe_failure};
use super::strata_stream::send;

/// How long a received message stays invisible to the rest of the group:
/// long enough that nothing is delivered twice while a member acks.
const INVISIBLE: Duration = Duration::from_secs(60);

impl StrataHttp {
    /// `POST /v1/groups` with `start: latest` (an existing group is kept).
    pub async fn create_group(&self, group: &str) -> anyhow::Result<()> {
        let url = self.base().join("/v1/groups")?;
        let response = self
            .http()
            .post(url.clone())
            .json(&serde_json::json!({ "name": group, "start": "latest" }))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("POST {url}: {e}"))?;
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        if status.is_success() {
            Ok(())
        } else {
            anyhow::bail!(
                "cannot create group {group:?}: {}",
                describe_failure(status, &body)
            )
        }
    }

    /// A member of `group` on `topic` over HTTP, on its own connection.
    pub fn http_member(
        &self,
        topic: &str,
        group: &str,
        timeout: Duration,
    ) -> Result<HttpMember, RequestError> {
        let client = self
            .fresh(timeout + Duration::from_secs(30))
            .map_err(|e| RequestError::BadReply(format!("{e:#}")))?;
        let url = |action: &str| {
            let mut url = client.base().clone();
            url.path_segments_mut()
                .map_err(|()| RequestError::BadReply("not a base URL".into()))?
                .clear()
                .extend(["v1", "groups", group, action]);
            Ok::<_, RequestError>(url)
        };
        let (receive, ack) = (url("receive")?, url("ack")?);
        Ok(HttpMember {
            client,
            topic: topic.to_string(),
            receive,
            ack,
            handles: Vec::new(),
        })
    }
}

/// A consumer-group member over Strata's HTTP API.
#[derive(Debug)]
pub struct HttpMember {
    client: StrataHttp,
    topic: String,
    receive: Url,
    ack: Url,
    /// Receipt handles of the last receive.
    handles: Vec<String>,
}

async fn post_json(client: &StrataHttp, url: &Url, body: Vec<u8>) -> Result<Bytes, RequestError> {
    let request = client
        .http()
        .post(url.clone())
        .header(CONTENT_TYPE, "application/json")
        .body(body);
    send(request).await
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, RequestError> {
    serde_json::to_vec(value).map_err(|e| RequestError::BadReply(e.to_string()))
}

#[async_trait]
impl ConsumeGroup for HttpMember {
    async fn receive(&mut self, max: u32, wait: Duration) -> Result<Vec<Vec<u8>>, RequestError> {
        let request = to_json(&ReceiveJson {
            topic: self.topic.clone(),
            queue: None,
            max_messages: Some(max as usize),
            invisible_ms: Some(INVISIBLE.as_millis() as u64),
            wait_ms: Some(wait.as_millis() as u64),
            tags: None,
        })?;
        let body = post_json(&self.client, &self.receive, request).await?;
        let reply: ReceiveReply = serde_json::from_slice(&body)
            .map_err(|e| RequestError::BadReply(format!("not receive JSON: {e}")))?;
        let mut bodies = Vec::with_capacity(reply.messages.len());
        self.handles.clear();
        for m in reply.messages {
            let text = m
                .message
                .body_base64
                .ok_or_else(|| RequestError::BadReply("no body_base64".into()))?;
            bodies.push(
                B64.decode(text.as_bytes())
                    .map_err(|e| RequestError::BadReply(format!("body_base64: {e}")))?,
            );
            self.handles.push(m.receipt_handle);
        }
        Ok(bodies)
    }

    async fn ack(&mut self) -> Result<(), RequestError> {
        if self.handles.is_empty() {
            return Ok(());
        }
        let handles = std::mem::take(&mut self.handles);
        let count = handles.len();
        let request = to_json(&AckJson {
            topic: self.topic.clone(),
            receipt_handles: handles,
        })?;
        let body = post_json(&self.client, &self.ack, request).await?;
        let reply: AckReply = serde_json::from_slice(&body)
            .map_err(|e| RequestError::BadReply(format!("not ack JSON: {e}")))?;
        let failed = reply.results.iter().find(|r| r.code != "OK");
        match failed {
            _ if reply.results.len() != count => Err(RequestError::BadReply(format!(
                "{} results for {count} handles",
                reply.results.len()
            ))),
            Some(r) => Err(RequestError::Http {
                status: 200,
                code: Some(r.code.clone()),
            }),
            None => Ok(()),
        }
    }
}

/// A consumer-group member over RocketMQ 5 gRPC, on its own connection.
#[derive(Debug)]
pub struct GrpcMember {
    pub(super) grpc: StrataGrpc,
    pub(super) client: MessagingServiceClient<Channel>,
    pub(super) topic: String,
    pub(super) group: String,
    /// (message id, receipt handle) of the last receive.
    pub(super) entries: Vec<pb::AckMessageEntry>,
}

fn resource(name: &str) -> Option<pb::Resource> {
    Some(pb::Resource {
        resource_namespace: String::new(),
        name: name.to_string(),
    })
}

fn duration(d: Duration) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    })
}

#[async_trait]
impl ConsumeGroup for GrpcMember {
    async fn receive(&mut self, max: u32, wait: Duration) -> Result<Vec<Vec<u8>>, RequestError> {
        let request = pb::ReceiveMessageRequest {
            group: resource(&self.group),
            // The queue names the topic; a receive spans its queues.
            message_queue: Some(pb::MessageQueue {
                topic: resource(&self.topic),
                ..Default::default()
            }),
            filter_expression: None,
            batch_size: max as i32,
            invisible_duration: duration(INVISIBLE),
            auto_renew: false,
            long_polling_timeout: duration(wait),
            attempt_id: None,
        };
        let mut stream = self
            .client
            .receive_message(self.grpc.signed(request))
            .await
            .map_err(|e| transport(&e))?
            .into_inner();
        self.entries.clear();
        let mut bodies = Vec::new();
        while let Some(item) = stream.message().await.map_err(|e| transport(&e))? {
            match item.content {
                Some(pb::receive_message_response::Content::Message(m)) => {
                    let props = m.system_properties.unwrap_or_default();
                    self.entries.push(pb::AckMessageEntry {
                        message_id: props.message_id,
                        receipt_handle: props.receipt_handle.unwrap_or_default(),
                        lite_topic: None,
                    });
                    bodies.push(m.body);
                }
                Some(pb::receive_message_response::Content::Status(s))
                    if s.code == Code::MessageNotFound as i32 => {}
                Some(pb::receive_message_response::Content::Status(s)) => {
                    status_error(Some(s))?;
                }
                _ => {}
            }
        }
        Ok(bodies)
    }

    async fn ack(&mut self) -> Result<(), RequestError> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let request = pb::AckMessageRequest {
            group: resource(&self.group),
            topic: resource(&self.topic),
            entries: std::mem::take(&mut self.entries),
        };
        let reply = self
            .client
            .ack_message(self.grpc.signed(request))
            .await
            .map_err(|e| transport(&e))?
            .into_inner();
        status_error(reply.status)
    }
}
