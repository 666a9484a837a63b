//! The `strata-http` driver: Strata's HTTP API in the shape the
//! cross-system scenarios use. Publish a batch of raw bodies to one queue,
//! read raw bodies from an offset (long-polling at the end of the queue).

use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use anyhow::Result;
use async_trait::async_trait;

use super::RequestError;
use super::endpoint::{ConsumeGroup, Driver, Publish, READ_BATCH, ReadFrom, ReadQueue};
use super::strata_http::{StrataHttp, error_code};

#[derive(Debug, Deserialize)]
struct ReadReply {
    messages: Vec<ReadMessage>,
    next_offset: u64,
}

#[derive(Debug, Deserialize)]
struct ReadMessage {
    #[serde(default)]
    body_base64: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PublishReply {
    messages: Vec<serde::de::IgnoredAny>,
}

/// `{"messages":[{"queue":Q,"body_base64":"..."},...]}`.
pub fn publish_body(queue: u32, bodies: &[Bytes]) -> Bytes {
    let size: usize = bodies.iter().map(|b| b.len() * 4 / 3 + 40).sum();
    let mut out = String::with_capacity(size + 16);
    out.push_str(r#"{"messages":["#);
    for (i, b) in bodies.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, r#"{{"queue":{queue},"body_base64":""#);
        B64.encode_string(b, &mut out);
        out.push_str("\"}");
    }
    out.push_str("]}");
    Bytes::from(out)
}

/// Sends `request`; the body of a 200 reply, else the status and error code.
pub(super) async fn send(request: reqwest::RequestBuilder) -> Result<Bytes, RequestError> {
    let response = request.send().await.map_err(RequestError::from_transport)?;
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
    Ok(body)
}

impl StrataHttp {
    /// Publishes `bodies` to `queue` of the topic whose publish URL is `url`
    /// and checks every message was acknowledged.
    pub async fn publish_raw(
        &self,
        url: &Url,
        queue: u32,
        bodies: &[Bytes],
    ) -> Result<(), RequestError> {
        let request = self
            .http()
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(publish_body(queue, bodies));
        let body = send(request).await?;
        match serde_json::from_slice::<PublishReply>(&body) {
            Ok(r) if r.messages.len() == bodies.len() => Ok(()),
            Ok(r) => Err(RequestError::BadReply(format!(
                "acknowledged {} of {} messages",
                r.messages.len(),
                bodies.len()
            ))),
            Err(e) => Err(RequestError::BadReply(format!("not publish JSON: {e}"))),
        }
    }

    /// Reads up to `limit` bodies from `offset` of the queue whose read URL
    /// is `url`, waiting up to `wait` when there are none yet. Returns the
    /// bodies and the next offset.
    pub async fn read_raw(
        &self,
        url: &Url,
        offset: u64,
        limit: u32,
        wait: Duration,
    ) -> Result<(Vec<Vec<u8>>, u64), RequestError> {
        let request = self.http().get(url.clone()).query(&[
            ("offset", offset.to_string()),
            ("limit", limit.to_string()),
            ("wait_ms", wait.as_millis().to_string()),
            ("encoding", "base64".to_string()),
        ]);
        let body = send(request).await?;
        let reply: ReadReply = serde_json::from_slice(&body)
            .map_err(|e| RequestError::BadReply(format!("not read JSON: {e}")))?;
        let mut bodies = Vec::with_capacity(reply.messages.len());
        for m in reply.messages {
            let text = m
                .body_base64
                .ok_or_else(|| RequestError::BadReply("no body_base64".into()))?;
            let raw = B64
                .decode(text.as_bytes())
                .map_err(|e| RequestError::BadReply(format!("body_base64: {e}")))?;
            bodies.push(raw);
        }
        Ok((bodies, reply.next_offset))
    }
}

/// The offset a reader of `queue` starts at.
pub(crate) async fn start_offset(
    http: &StrataHttp,
    topic: &str,
    queue: u32,
    from: ReadFrom,
) -> Result<u64, RequestError> {
    Ok(match from {
        ReadFrom::Start => 0,
        ReadFrom::End => http
            .queue_stats(topic)
            .await
            .map_err(|e| RequestError::BadReply(format!("{e:#}")))?
            .iter()
            .find(|q| q.queue == queue)
            .map_or(0, |q| q.end_offset),
    })
}

#[async_trait]
impl Driver for StrataHttp {
    async fn create_topic(&self, topic: &str, queues: u32, _timeout: Duration) -> Result<()> {
        StrataHttp::create_topic(self, topic, queues)
            .await
            .map(|_| ())
    }

    async fn producer(&self, topic: &str, _timeout: Duration) -> Result<Box<dyn Publish>> {
        Ok(Box::new(HttpProducer {
            client: self.clone(),
            url: self.publish_url(topic)?,
        }))
    }

    async fn reader(
        &self,
        topic: &str,
        queue: u32,
        from: ReadFrom,
        timeout: Duration,
    ) -> Result<Box<dyn ReadQueue>, RequestError> {
        let bad = |e: anyhow::Error| RequestError::BadReply(format!("{e:#}"));
        let offset = start_offset(self, topic, queue, from).await?;
        Ok(Box::new(HttpReader {
            // Its own connection: a long poll must not hold up producers.
            client: self.fresh(timeout + Duration::from_secs(30)).map_err(bad)?,
            url: self.read_url(topic, queue).map_err(bad)?,
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
        StrataHttp::create_group(self, group).await
    }

    async fn group_member(
        &self,
        topic: &str,
        _queues: u32,
        group: &str,
        _member: u32,
        timeout: Duration,
    ) -> Result<Box<dyn ConsumeGroup>, RequestError> {
        Ok(Box::new(self.http_member(topic, group, timeout)?))
    }

    fn strata_http(&self) -> Option<&StrataHttp> {
        Some(self)
    }
}

#[derive(Debug)]
struct HttpProducer {
    client: StrataHttp,
    url: Url,
}

#[async_trait]
impl Publish for HttpProducer {
    async fn publish(&mut self, queue: u32, bodies: &[Bytes]) -> Result<(), RequestError> {
        self.client.publish_raw(&self.url, queue, bodies).await
    }
}

#[derive(Debug)]
struct HttpReader {
    client: StrataHttp,
    url: Url,
    offset: u64,
}

#[async_trait]
impl ReadQueue for HttpReader {
    async fn next_batch(&mut self, wait: Duration) -> Result<Vec<Vec<u8>>, RequestError> {
        let (bodies, next) = self
            .client
            .read_raw(&self.url, self.offset, READ_BATCH, wait)
            .await?;
        self.offset = next;
        Ok(bodies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_body_is_json() {
        let body = publish_body(3, &[Bytes::from_static(&[0, 1, 2]), Bytes::new()]);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["messages"][0]["queue"], 3);
        assert_eq!(v["messages"][0]["body_base64"], "AAEC");
        assert_eq!(v["messages"][1]["body_base64"], "");
    }
}
