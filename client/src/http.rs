//! A typed client for the HTTP API, used by the `strata` CLI and the tests.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::groups::{
    CommitOffset, CommittedJson, CreateGroup, GroupJson, GroupList, ResetJson, ResetOffsets,
};
use crate::api::messages::{MessageJson, PublishJson, PublishReply, ReadReply};
use crate::api::status::StatusJson;
use crate::api::topics::{CreateTopic, QueueJson, TopicDetail, TopicJson, TopicList};
use crate::signing::{DATE_HEADER, format_date_time, sign};

/// Header with which a service admin acts on another tenant's resources.
pub const TENANT_HEADER: &str = "x-strata-tenant";

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

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    /// Access key and secret key; the secret never leaves this value (not
    /// in requests, not in `Debug`).
    credentials: Option<(String, String)>,
    tenant: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("access_key", &self.credentials.as_ref().map(|(ak, _)| ak))
            .field("tenant", &self.tenant)
            .finish()
    }
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
            credentials: None,
            tenant: None,
        }
    }

    /// Signs every request with this access key (RocketMQ's
    /// MQv2-HMAC-SHA1 scheme: the secret never travels).
    pub fn with_credentials(mut self, access_key: &str, secret_key: &str) -> Self {
        self.credentials = Some((access_key.to_string(), secret_key.to_string()));
        self
    }

    /// Acts on another tenant's resources (service admins only).
    pub fn with_tenant(mut self, tenant: &str) -> Self {
        self.tenant = Some(tenant.to_string());
        self
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, url);
        if let Some((access_key, secret)) = &self.credentials {
            let now_ms = strata_common::Clock::now_ms(&strata_common::SystemClock);
            let date = format_date_time(now_ms);
            let signature = sign(secret, &date);
            request = request.header(DATE_HEADER, date).header(
                reqwest::header::AUTHORIZATION,
                format!(
                    "MQv2-HMAC-SHA1 Credential={access_key}, SignedHeaders={DATE_HEADER}, Signature={signature}"
                ),
            );
        }
        if let Some(tenant) = &self.tenant {
            request = request.header(TENANT_HEADER, tenant);
        }
        request
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `request` and returns the status and body of a 2xx answer;
    /// any other answer becomes the API error it carries.
    async fn fetch(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<(u16, bytes::Bytes), ClientError> {
        let connect = |source| ClientError::Connect {
            url: url.to_string(),
            source,
        };
        let response = request.send().await.map_err(connect)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(connect)?;
        if (200..300).contains(&status) {
            return Ok((status, bytes));
        }
        Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(e) => ClientError::Api {
                status,
                code: e.error.code,
                message: e.error.message,
            },
            Err(_) => ClientError::Protocol {
                url: url.to_string(),
                status,
                message: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
            },
        })
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: String,
    ) -> Result<T, ClientError> {
        let (status, bytes) = self.fetch(request, &url).await?;
        let body: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(body).map_err(|e| ClientError::Protocol {
            url,
            status,
            message: e.to_string(),
        })
    }

    /// GET returning the body as text (e.g. CSV); errors as for JSON.
    async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let url = self.url(path);
        let request = self.request(reqwest::Method::GET, &url);
        let (_, bytes) = self.fetch(request, &url).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Usage for `query` (`start=...&granularity=...`, already encoded).
    pub async fn usage(&self, query: &str) -> Result<crate::api::usage::UsageReply, ClientError> {
        self.get(&format!("/v1/usage?{query}")).await
    }

    /// Usage as CSV.
    pub async fn usage_csv(&self, query: &str) -> Result<String, ClientError> {
        self.get_text(&format!("/v1/usage?{query}&format=csv"))
            .await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        self.send(self.request(reqwest::Method::GET, &url), url)
            .await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        self.send(self.request(reqwest::Method::POST, &url).json(body), url)
            .await
    }

    async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        self.send(self.request(reqwest::Method::DELETE, &url), url)
            .await
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

    /// Messages of `topic` whose id (`by` = "id") or key (`by` = "key") is
    /// `value`.
    pub async fn find_messages(
        &self,
        topic: &str,
        by: &str,
        value: &str,
        limit: usize,
    ) -> Result<crate::api::lookup::FindReply, ClientError> {
        let url = self.url(&format!("/v1/topics/{topic}/messages"));
        let query = [(by, value.to_string()), ("limit", limit.to_string())];
        self.send(self.request(reqwest::Method::GET, &url).query(&query), url)
            .await
    }

    /// The first offset of a queue appended at or after `timestamp_ms`.
    pub async fn offset_at_time(
        &self,
        topic: &str,
        queue: u32,
        timestamp_ms: i64,
    ) -> Result<u64, ClientError> {
        let reply: crate::api::topics::OffsetAtTime = self
            .get(&format!(
                "/v1/topics/{topic}/queues/{queue}/offset?timestamp_ms={timestamp_ms}"
            ))
            .await?;
        Ok(reply.offset)
    }

    pub async fn create_group(&self, group: &CreateGroup) -> Result<GroupJson, ClientError> {
        self.post("/v1/groups", group).await
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
        self.send(
            self.request(reqwest::Method::PUT, &url)
                .json(&CommitOffset { offset }),
            url,
        )
        .await
    }

    /// Moves `group` on every queue of `topic` at once (see
    /// [`ResetOffsets`]).
    pub async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        to: &ResetOffsets,
    ) -> Result<ResetJson, ClientError> {
        let url = self.url(&format!("/v1/groups/{group}/offsets/{topic}"));
        self.send(self.request(reqwest::Method::PUT, &url).json(to), url)
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

    pub async fn cluster(&self) -> Result<crate::api::status::ClusterJson, ClientError> {
        self.get("/v1/cluster").await
    }

    /// Declares `node` lost, giving up what only its WAL holds (see
    /// `POST /v1/cluster/nodes/{node}/forget`).
    pub async fn forget_node(
        &self,
        node: &str,
    ) -> Result<crate::api::status::ClusterJson, ClientError> {
        let confirm = crate::api::status::ForgetNode {
            lose_unuploaded_messages: true,
        };
        self.post(&format!("/v1/cluster/nodes/{node}/forget"), &confirm)
            .await
    }
}

impl Client {
    pub async fn whoami(&self) -> Result<crate::api::admin::WhoAmI, ClientError> {
        self.get("/v1/whoami").await
    }

    pub async fn create_tenant(
        &self,
        name: &str,
        plan: Option<&str>,
    ) -> Result<crate::api::admin::TenantJson, ClientError> {
        let body = crate::api::admin::CreateTenant {
            name: name.to_string(),
            plan: plan.map(str::to_string),
        };
        self.post("/v1/tenants", &body).await
    }

    pub async fn list_tenants(&self) -> Result<crate::api::admin::TenantList, ClientError> {
        self.get("/v1/tenants").await
    }

    pub async fn describe_tenant(
        &self,
        name: &str,
    ) -> Result<crate::api::admin::TenantJson, ClientError> {
        self.get(&format!("/v1/tenants/{name}")).await
    }

    pub async fn delete_tenant(
        &self,
        name: &str,
    ) -> Result<crate::api::admin::TenantJson, ClientError> {
        self.delete(&format!("/v1/tenants/{name}")).await
    }

    pub async fn create_key(
        &self,
        tenant: Option<&str>,
        role: &str,
        description: Option<&str>,
    ) -> Result<crate::api::admin::IssuedKeyJson, ClientError> {
        let body = crate::api::admin::CreateKey {
            tenant: tenant.map(str::to_string),
            role: role.to_string(),
            description: description.map(str::to_string),
        };
        self.post("/v1/keys", &body).await
    }

    pub async fn list_keys(
        &self,
        tenant: Option<&str>,
    ) -> Result<crate::api::admin::KeyList, ClientError> {
        match tenant {
            Some(t) => self.get(&format!("/v1/keys?tenant={t}")).await,
            None => self.get("/v1/keys").await,
        }
    }

    pub async fn rotate_key(
        &self,
        access_key: &str,
    ) -> Result<crate::api::admin::IssuedKeyJson, ClientError> {
        self.post(
            &format!("/v1/keys/{access_key}/rotate"),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn revoke_key(
        &self,
        access_key: &str,
    ) -> Result<crate::api::admin::KeyJson, ClientError> {
        self.delete(&format!("/v1/keys/{access_key}")).await
    }

    pub async fn set_tenant_plan(
        &self,
        tenant: &str,
        plan: &str,
    ) -> Result<crate::api::admin::TenantJson, ClientError> {
        let url = self.url(&format!("/v1/tenants/{tenant}/plan"));
        let body = crate::api::admin::SetPlan {
            plan: plan.to_string(),
        };
        self.send(self.request(reqwest::Method::PUT, &url).json(&body), url)
            .await
    }

    pub async fn list_plans(&self) -> Result<crate::api::admin::PlanList, ClientError> {
        self.get("/v1/plans").await
    }

    pub async fn get_plan(&self, plan: &str) -> Result<crate::api::admin::PlanJson, ClientError> {
        self.get(&format!("/v1/plans/{plan}")).await
    }

    pub async fn put_plan(
        &self,
        plan: &str,
        quotas: &strata_common::Quotas,
    ) -> Result<crate::api::admin::PlanJson, ClientError> {
        let url = self.url(&format!("/v1/plans/{plan}"));
        self.send(self.request(reqwest::Method::PUT, &url).json(quotas), url)
            .await
    }
}
