//! A typed client for the HTTP API, used by the CLI and the tests.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::http::groups::{CommitOffset, CommittedJson, CreateGroup, GroupJson, GroupList};
use crate::http::messages::{MessageJson, PublishJson, PublishReply, ReadReply};
use crate::http::ops::StatusJson;
use crate::http::topics::{CreateTopic, QueueJson, TopicDetail, TopicJson, TopicList};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach Strata at {url}: {source}. Is `strata serve` running there? (set --server or STRATA_SERVER)"
    )]
    Connect { url: String, source: reqwest::Error },
    #[error("{code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected response from {url} (HTTP {status}): {message}")]
    Protocol {
        url: String,
        status: u16,
        message: String,
    },
}

#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorInner,
}

#[derive(serde::Deserialize)]
struct ErrorInner {
    code: String,
    message: String,
}

impl Client {
    /// `base` is like `http://127.0.0.1:8080`.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: String,
    ) -> Result<T, ClientError> {
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Connect {
                url: url.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| ClientError::Connect {
                url: url.clone(),
                source,
            })?;
        if (200..300).contains(&status) {
            let body: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return serde_json::from_slice(body).map_err(|e| ClientError::Protocol {
                url,
                status,
                message: e.to_string(),
            });
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(e) => Err(ClientError::Api {
                status,
                code: e.error.code,
                message: e.error.message,
            }),
            Err(_) => Err(ClientError::Protocol {
                url,
                status,
                message: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
            }),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        self.send(self.http.get(&url), url).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        self.send(self.http.post(&url).json(body), url).await
    }

    async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        self.send(self.http.delete(&url), url).await
    }

    pub async fn create_topic(&self, req: &CreateTopic) -> Result<TopicJson, ClientError> {
        self.post("/v1/topics", req).await
    }

    pub async fn list_topics(&self) -> Result<TopicList, ClientError> {
        self.get("/v1/topics").await
    }

    pub async fn describe_topic(&self, topic: &str) -> Result<TopicDetail, ClientError> {
        self.get(&format!("/v1/topics/{topic}")).await
    }

    pub async fn delete_topic(&self, topic: &str) -> Result<TopicJson, ClientError> {
        self.delete(&format!("/v1/topics/{topic}")).await
    }

    pub async fn queue(&self, topic: &str, queue: u32) -> Result<QueueJson, ClientError> {
        self.get(&format!("/v1/topics/{topic}/queues/{queue}"))
            .await
    }

    pub async fn publish(
        &self,
        topic: &str,
        messages: Vec<MessageJson>,
    ) -> Result<PublishReply, ClientError> {
        self.post(
            &format!("/v1/topics/{topic}/messages"),
            &PublishJson { messages },
        )
        .await
    }

    pub async fn read(
        &self,
        topic: &str,
        queue: u32,
        offset: u64,
        limit: usize,
        wait_ms: u64,
    ) -> Result<ReadReply, ClientError> {
        self.get(&format!(
            "/v1/topics/{topic}/queues/{queue}/messages?offset={offset}&limit={limit}&wait_ms={wait_ms}"
        ))
        .await
    }

    /// The first offset of a queue appended at or after `timestamp_ms`.
    pub async fn offset_at_time(
        &self,
        topic: &str,
        queue: u32,
        timestamp_ms: i64,
    ) -> Result<u64, ClientError> {
        let reply: crate::http::topics::OffsetAtTime = self
            .get(&format!(
                "/v1/topics/{topic}/queues/{queue}/offset?timestamp_ms={timestamp_ms}"
            ))
            .await?;
        Ok(reply.offset)
    }

    pub async fn create_group(&self, name: &str) -> Result<GroupJson, ClientError> {
        self.post("/v1/groups", &CreateGroup { name: name.into() })
            .await
    }

    pub async fn list_groups(&self) -> Result<GroupList, ClientError> {
        self.get("/v1/groups").await
    }

    pub async fn describe_group(&self, name: &str) -> Result<GroupJson, ClientError> {
        self.get(&format!("/v1/groups/{name}")).await
    }

    pub async fn delete_group(&self, name: &str) -> Result<(), ClientError> {
        self.delete::<Option<()>>(&format!("/v1/groups/{name}"))
            .await
            .map(|_| ())
    }

    pub async fn commit_offset(
        &self,
        group: &str,
        topic: &str,
        queue: u32,
        offset: u64,
    ) -> Result<CommittedJson, ClientError> {
        let url = self.url(&format!("/v1/groups/{group}/offsets/{topic}/{queue}"));
        self.send(self.http.put(&url).json(&CommitOffset { offset }), url)
            .await
    }

    pub async fn committed_offset(
        &self,
        group: &str,
        topic: &str,
        queue: u32,
    ) -> Result<CommittedJson, ClientError> {
        self.get(&format!("/v1/groups/{group}/offsets/{topic}/{queue}"))
            .await
    }

    pub async fn status(&self) -> Result<StatusJson, ClientError> {
        self.get("/v1/status").await
    }
}
