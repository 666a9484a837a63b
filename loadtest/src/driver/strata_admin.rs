//! Strata's admin API, as far as the scenarios need it: topics, and for
//! the tenants scenario tenants, access keys and quota plans
//! (service-admin credentials required).

use anyhow::{Context, Result, bail};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::strata_http::{StrataHttp, TopicOutcome, describe_failure, error_code};

#[derive(Debug, Serialize)]
struct CreateTopic<'a> {
    name: &'a str,
    queues: u32,
    retention: &'a str,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
struct IssuedKey {
    access_key: String,
    secret_key: String,
}

impl StrataHttp {
    pub async fn create_topic(&self, name: &str, queues: u32) -> Result<TopicOutcome> {
        self.create_topic_of_type(name, queues, None).await
    }

    /// [`StrataHttp::create_topic`] of a message type (`delay`, `fifo`, ...).
    pub async fn create_topic_of_type(
        &self,
        name: &str,
        queues: u32,
        kind: Option<&str>,
    ) -> Result<TopicOutcome> {
        let url = self.url("/v1/topics")?;
        let response = self
            .http()
            .post(url.clone())
            .json(&CreateTopic {
                name,
                queues,
                retention: "unlimited",
                kind,
            })
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("POST {url}"))?;
        match status {
            StatusCode::CREATED | StatusCode::OK => Ok(TopicOutcome::Created),
            StatusCode::CONFLICT
                if error_code(&body).as_deref() == Some("TOPIC_ALREADY_EXISTS") =>
            {
                Ok(TopicOutcome::AlreadyExisted)
            }
            _ => bail!(
                "cannot create topic {name:?}: {}",
                describe_failure(status, &body)
            ),
        }
    }

    async fn admin_call(&self, method: Method, path: &str, body: &Value) -> Result<Value> {
        let url = self
            .base()
            .join(path)
            .with_context(|| format!("cannot form a URL from {path}"))?;
        let response = self
            .http()
            .request(method.clone(), url.clone())
            .json(body)
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("{method} {url}"))?;
        if !(status == StatusCode::OK || status == StatusCode::CREATED) {
            bail!("{method} {url}: {}", describe_failure(status, &bytes));
        }
        serde_json::from_slice(&bytes).with_context(|| format!("{method} {url}: not JSON"))
    }

    /// `PUT /v1/plans/{plan}`: creates or replaces a plan. `quotas` holds
    /// only the fields to set (the rest take the default plan's values).
    pub async fn put_plan(&self, plan: &str, quotas: &Value) -> Result<()> {
        self.admin_call(Method::PUT, &format!("/v1/plans/{plan}"), quotas)
            .await
            .map(|_| ())
    }

    /// `POST /v1/tenants` on `plan`.
    pub async fn create_tenant(&self, name: &str, plan: &str) -> Result<()> {
        self.admin_call(
            Method::POST,
            "/v1/tenants",
            &json!({"name": name, "plan": plan}),
        )
        .await
        .map(|_| ())
    }

    /// `PUT /v1/tenants/{tenant}/plan`.
    pub async fn set_tenant_plan(&self, tenant: &str, plan: &str) -> Result<()> {
        self.admin_call(
            Method::PUT,
            &format!("/v1/tenants/{tenant}/plan"),
            &json!({"plan": plan}),
        )
        .await
        .map(|_| ())
    }

    /// `POST /v1/keys`: a new key of `tenant` with `role`; returns
    /// (access key, secret key).
    pub async fn create_key(&self, tenant: &str, role: &str) -> Result<(String, String)> {
        let reply = self
            .admin_call(
                Method::POST,
                "/v1/keys",
                &json!({"tenant": tenant, "role": role, "description": "strata-loadtest"}),
            )
            .await?;
        let key: IssuedKey =
            serde_json::from_value(reply).context("POST /v1/keys: unexpected reply")?;
        Ok((key.access_key, key.secret_key))
    }
}
