//! Strata's HTTP/JSON API, as far as the scenarios need it.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, StatusCode, Url};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::RequestError;
pub use super::strata_status::{
    BlockCache, ColdReads, ObjectRequests, ServerStatus, TieringStatus, WalStatus,
};
use crate::target;

/// A client for one loopback Strata server.
#[derive(Debug, Clone)]
pub struct StrataHttp {
    client: Client,
    base: Url,
    /// `Authorization` value sent with every request, if any.
    authorization: Option<String>,
}

use strata_client::api::topics::{QueueJson, TopicDetail};

/// What one read returned: the offsets in order and the decoded body sizes.
#[derive(Debug, Clone, Default)]
pub struct ReadBatch {
    pub offsets: Vec<u64>,
    pub body_lens: Vec<usize>,
    pub next_offset: u64,
    pub end_offset: u64,
}

#[derive(Debug, Deserialize)]
struct ReadReply {
    messages: Vec<ReadMessage>,
    next_offset: u64,
    end_offset: u64,
}

#[derive(Debug, Deserialize)]
struct ReadMessage {
    offset: u64,
    #[serde(default)]
    body_base64: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PublishReply {
    messages: Vec<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
struct ErrorReply {
    error: ErrorInner,
}

#[derive(Debug, Deserialize)]
struct ErrorInner {
    code: String,
    #[serde(default)]
    message: String,
}

/// Whether [`StrataHttp::create_topic`] made the topic or found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicOutcome {
    Created,
    AlreadyExisted,
}

impl StrataHttp {
    /// `base` must be a loopback URL (see [`target::loopback_url`]); this is
    /// checked again here so no code path can bypass it.
    pub fn new(base: &str, request_timeout: Duration) -> Result<Self> {
        Self::with_authorization(base, request_timeout, None)
    }

    /// A client that sends `authorization` (e.g. `Bearer AK:SK`) with every
    /// request.
    pub fn with_authorization(
        base: &str,
        request_timeout: Duration,
        authorization: Option<String>,
    ) -> Result<Self> {
        let base = target::loopback_url(base)?;
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(value) = &authorization {
            let value = reqwest::header::HeaderValue::from_str(value)
                .context("the credentials do not fit in an HTTP header")?;
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let client = Client::builder()
            .default_headers(headers)
            .no_proxy()
            .timeout(request_timeout)
            .connect_timeout(Duration::from_secs(5).min(request_timeout))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(4096)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            client,
            base,
            authorization,
        })
    }

    /// A new client (own connection pool) for the same server and credentials.
    pub fn fresh(&self, request_timeout: Duration) -> Result<Self> {
        Self::with_authorization(
            self.base.as_str(),
            request_timeout,
            self.authorization.clone(),
        )
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The underlying HTTP client (with the default headers).
    pub(crate) fn http(&self) -> &Client {
        &self.client
    }

    pub(super) fn url(&self, path: &str) -> Result<Url> {
        self.base
            .join(path)
            .with_context(|| format!("cannot form a URL from {} and {path}", self.base))
    }

    /// True when `GET /healthz` answers 200.
    pub async fn healthy(&self) -> bool {
        let Ok(url) = self.url("/healthz") else {
            return false;
        };
        match self.client.get(url).send().await {
            Ok(r) => r.status() == StatusCode::OK,
            Err(_) => false,
        }
    }

    pub async fn status(&self) -> Result<ServerStatus> {
        let body = self.status_text().await?;
        serde_json::from_str(&body).context("GET /v1/status: the reply is not Strata status JSON")
    }

    /// The raw `GET /v1/status` reply, for error reports.
    pub async fn status_text(&self) -> Result<String> {
        self.get_json_text(self.url("/v1/status")?).await
    }

    /// `queue_stats` of `GET /v1/topics/{topic}`.
    pub async fn queue_stats(&self, topic: &str) -> Result<Vec<QueueJson>> {
        let mut url = self.url("/v1/topics")?;
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("{} cannot be a base URL", self.base))?
            .pop_if_empty()
            .push(topic);
        let body = self.get_json_text(url.clone()).await?;
        let detail: TopicDetail = serde_json::from_str(&body)
            .with_context(|| format!("GET {url}: the reply is not topic JSON"))?;
        Ok(detail.queue_stats)
    }

    /// The read URL of one queue.
    pub fn read_url(&self, topic: &str, queue: u32) -> Result<Url> {
        let mut url = self.url("/v1/topics")?;
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("{} cannot be a base URL", self.base))?
            .pop_if_empty()
            .push(topic)
            .push("queues")
            .push(&queue.to_string())
            .push("messages");
        Ok(url)
    }

    /// Reads up to `limit` messages from `offset` (no long-poll), bodies as base64.
    pub async fn read(
        &self,
        url: &Url,
        offset: u64,
        limit: u32,
    ) -> Result<ReadBatch, RequestError> {
        let response = self
            .client
            .get(url.clone())
            .query(&[
                ("offset", offset.to_string()),
                ("limit", limit.to_string()),
                ("encoding", "base64".to_string()),
            ])
            .send()
            .await
            .map_err(RequestError::from_transport)?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(RequestError::from_transport)?;
        if status != StatusCode::OK {
            return Err(RequestError::Http {
                status: status.as_u16(),
                code: error_code(&body),
            });
        }
        let reply: ReadReply = serde_json::from_slice(&body)
            .map_err(|e| RequestError::BadReply(format!("not read JSON: {e}")))?;
        let mut batch = ReadBatch {
            offsets: Vec::with_capacity(reply.messages.len()),
            body_lens: Vec::with_capacity(reply.messages.len()),
            next_offset: reply.next_offset,
            end_offset: reply.end_offset,
        };
        for m in reply.messages {
            let b64 = m.body_base64.ok_or_else(|| {
                RequestError::BadReply(format!("offset {}: no body_base64", m.offset))
            })?;
            let len = B64
                .decode(b64.as_bytes())
                .map_err(|e| RequestError::BadReply(format!("offset {}: {e}", m.offset)))?
                .len();
            batch.offsets.push(m.offset);
            batch.body_lens.push(len);
        }
        Ok(batch)
    }

    async fn get_json_text(&self, url: Url) -> Result<String> {
        let response = self
            .client
            .get(url.clone())
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("GET {url}"))?;
        if status != StatusCode::OK {
            bail!("GET {url}: {}", describe_failure(status, &body));
        }
        String::from_utf8(body.to_vec()).with_context(|| format!("GET {url}: not UTF-8"))
    }

    /// The publish URL of `topic`, computed once per run.
    pub fn publish_url(&self, topic: &str) -> Result<Url> {
        let mut url = self.url("/v1/topics")?;
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("{} cannot be a base URL", self.base))?
            .pop_if_empty()
            .push(topic)
            .push("messages");
        Ok(url)
    }

    /// Publishes one pre-encoded JSON body (see [`encode_publish_body`]) and
    /// checks that the server acknowledged `expected` messages.
    pub async fn publish(
        &self,
        url: &Url,
        body: Bytes,
        expected: usize,
    ) -> Result<(), RequestError> {
        let request = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        let body = super::strata_stream::send(request).await?;
        match serde_json::from_slice::<PublishReply>(&body) {
            Ok(reply) if reply.messages.len() == expected => Ok(()),
            Ok(reply) => Err(RequestError::BadReply(format!(
                "acknowledged {} of {expected} messages",
                reply.messages.len()
            ))),
            Err(e) => Err(RequestError::BadReply(format!("not publish JSON: {e}"))),
        }
    }
}

/// The `error.code` of a Strata error body, if it is one.
pub(crate) fn error_code(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ErrorReply>(body)
        .ok()
        .map(|e| e.error.code)
}

pub(crate) fn describe_failure(status: StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorReply>(body) {
        Ok(e) => format!("HTTP {status} {}: {}", e.error.code, e.error.message),
        Err(_) => format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_remote_base() {
        assert!(StrataHttp::new("http://192.0.2.1:8080", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn publish_url_escapes_the_topic() {
        let c = StrataHttp::new("http://127.0.0.1:8080/", Duration::from_secs(1)).expect("ok");
        assert_eq!(
            c.publish_url("bench").expect("url").as_str(),
            "http://127.0.0.1:8080/v1/topics/bench/messages"
        );
        assert_eq!(
            c.publish_url("a/b").expect("url").as_str(),
            "http://127.0.0.1:8080/v1/topics/a%2Fb/messages"
        );
    }

    #[test]
    fn read_url_escapes() {
        let c = StrataHttp::new("http://127.0.0.1:8080", Duration::from_secs(1)).expect("ok");
        assert_eq!(
            c.read_url("a b", 3).expect("url").as_str(),
            "http://127.0.0.1:8080/v1/topics/a%20b/queues/3/messages"
        );
    }

    #[test]
    fn error_codes() {
        let body = br#"{"error":{"code":"WAL_FULL","message":"full"}}"#;
        assert_eq!(error_code(body).as_deref(), Some("WAL_FULL"));
        assert_eq!(error_code(b"<html>"), None);
        assert!(describe_failure(StatusCode::BAD_GATEWAY, b"oops").contains("oops"));
    }
}
