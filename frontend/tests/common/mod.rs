//! Shared helpers for the HTTP integration tests: start a real server on a
//! temporary data directory, send raw requests, check error bodies, and
//! snapshot the visible state so a refused request can be shown to have
//! changed nothing.

#![allow(dead_code)]

use std::path::Path;

use serde_json::{Value, json};
use strata_client::http::Client;
use strata_frontend::Config;
use strata_frontend::server::Running;
use tempfile::TempDir;

/// A default config rooted at `dir`, listening on an ephemeral port.
pub fn config(dir: &Path) -> Config {
    let mut c = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    c.http.addr = "127.0.0.1:0".into();
    c.grpc.addr = "127.0.0.1:0".into();
    // Small segments keep the test directories small.
    c.wal.segment_bytes = 4 << 20;
    c.wal.max_bytes = 64 << 20;
    c.limits.max_message_bytes = 1 << 20;
    c.http.max_request_bytes = 4 << 20;
    c
}

/// A running node plus what a test needs to talk to it.
pub struct TestServer {
    pub running: Option<Running>,
    pub url: String,
    pub http: reqwest::Client,
    pub config: Config,
    pub dir: TempDir,
    pub access_key: String,
    pub secret_key: String,
}

/// A response with everything read, so tests can assert on it freely.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// Asserts a 2xx-or-given status and returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        self.json()
    }

    /// Asserts the documented error shape: `status`, a JSON content type and
    /// exactly `{"error":{"code":code,"message":non-empty}}`.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status,
            status,
            "expected {status} {code}; body: {}",
            self.text()
        );
        let ct = self.content_type.as_deref().unwrap_or("");
        assert!(
            ct.starts_with("application/json"),
            "error content type is {ct:?} (expected application/json); body: {}",
            self.text()
        );
        let v = self.json();
        let obj = v.as_object().expect("error body is an object");
        assert_eq!(obj.len(), 1, "error body has extra keys: {v}");
        let inner = v["error"].as_object().expect("error.error is an object");
        assert_eq!(inner.len(), 2, "error.error has extra keys: {v}");
        assert_eq!(v["error"]["code"], json!(code), "wrong code; body: {v}");
        let message = v["error"]["message"].as_str().expect("message is a string");
        assert!(!message.is_empty(), "empty error message: {v}");
    }
}

/// The bootstrap admin credential a fresh node writes on first start.
pub fn admin_credentials(path: &std::path::Path) -> (String, String) {
    let text = std::fs::read_to_string(path).expect("admin credentials file");
    let (ak, sk) = strata_tenancy::parse_credentials(&text).expect("credential lines");
    (ak, sk.expose().to_string())
}

pub async fn read_resp(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = r.bytes().await.expect("read response body").to_vec();
    Resp {
        status,
        content_type,
        body,
    }
}

impl TestServer {
    /// Starts a node with the test defaults, adjusted by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = config(dir.path());
        tweak(&mut c);
        Self::start_in(dir, c).await
    }

    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a node on an existing directory with an explicit config.
    pub async fn start_in(dir: TempDir, config: Config) -> Self {
        let running = strata_frontend::server::start(config.clone())
            .await
            .expect("server starts");
        let url = format!("http://{}", running.http_addr);
        let (access_key, secret_key) = admin_credentials(&config.credentials_path());
        let mut headers = reqwest::header::HeaderMap::new();
        let bearer = format!("Bearer {access_key}:{secret_key}");
        headers.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&bearer).expect("header value"),
        );
        Self {
            running: Some(running),
            url,
            http: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .expect("http client"),
            config,
            dir,
            access_key,
            secret_key,
        }
    }

    /// The typed client, signing as the bootstrap admin.
    pub fn client(&self) -> Client {
        Client::new(&self.url).with_credentials(&self.access_key, &self.secret_key)
    }

    /// A raw HTTP client that sends no credentials.
    pub fn anonymous_http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("server is running")
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Resp {
        read_resp(request.send().await.expect("request is answered")).await
    }

    /// `tiering.cold_reads.cpu_tasks` of `/v1/status`: pieces of readers'
    /// CPU work run on the cold-read pool so far.
    pub async fn cold_cpu_tasks(&self) -> u64 {
        let status = self.get("/v1/status").await.expect(200);
        status["tiering"]["cold_reads"]["cpu_tasks"]
            .as_u64()
            .expect("cold_reads.cpu_tasks in /v1/status")
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.http.delete(self.url(path))).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Resp {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Resp {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    /// Sends `body` as-is with the given Content-Type (None: no header).
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Resp {
        let mut req = self.http.post(self.url(path)).body(body);
        if let Some(ct) = content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        self.send(req).await
    }

    pub async fn create_topic(&self, name: &str, queues: u32) -> Value {
        self.post_json("/v1/topics", &json!({ "name": name, "queues": queues }))
            .await
            .expect(201)
    }

    /// Publishes JSON messages and returns the `messages` array of the reply.
    pub async fn publish(&self, topic: &str, messages: Value) -> Vec<Value> {
        let v = self
            .post_json(
                &format!("/v1/topics/{topic}/messages"),
                &json!({ "messages": messages }),
            )
            .await
            .expect(200);
        v["messages"].as_array().expect("messages array").clone()
    }

    pub async fn read(&self, topic: &str, queue: u32, query: &str) -> Value {
        self.get(&format!(
            "/v1/topics/{topic}/queues/{queue}/messages?{query}"
        ))
        .await
        .expect(200)
    }

    pub async fn queue(&self, topic: &str, queue: u32) -> Value {
        self.get(&format!("/v1/topics/{topic}/queues/{queue}"))
            .await
            .expect(200)
    }

    /// Everything a client can observe about topics, queues and groups.
    pub async fn snapshot(&self) -> Value {
        let topics = self.get("/v1/topics").await.expect(200);
        let mut detail = Vec::new();
        for t in topics["topics"].as_array().expect("topics") {
            let name = t["name"].as_str().expect("name");
            detail.push(self.get(&format!("/v1/topics/{name}")).await.expect(200));
        }
        let groups = self.get("/v1/groups").await.expect(200);
        let mut group_detail = Vec::new();
        for g in groups["groups"].as_array().expect("groups") {
            let name = g["name"].as_str().expect("name");
            group_detail.push(self.get(&format!("/v1/groups/{name}")).await.expect(200));
        }
        json!({ "topics": detail, "groups": group_detail })
    }

    /// Sends a request that must be refused with `status`/`code`, then checks
    /// the server still answers and nothing visible changed.
    pub async fn rejects(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
        status: u16,
        code: &str,
    ) {
        let before = self.snapshot().await;
        let resp = self.send(request).await;
        if resp.status != status {
            panic!(
                "{what}: expected {status} {code}, got {} {:?}: {}",
                resp.status,
                resp.content_type,
                resp.text()
            );
        }
        let got = resp.json();
        assert_eq!(
            got["error"]["code"],
            json!(code),
            "{what}: wrong code: {got}"
        );
        resp.expect_error(status, code);
        let health = self.get("/healthz").await;
        assert_eq!(health.status, 200, "{what}: server stopped answering");
        let after = self.snapshot().await;
        assert_eq!(before, after, "{what}: a refused request changed state");
    }

    pub async fn shutdown(mut self) -> TempDir {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("clean shutdown");
        }
        self.dir
    }
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_else(|e| panic!("server sent bad base64 {text:?}: {e}"))
}

/// A raw HTTP client signing every request as one access key (bearer), for
/// tests of roles and tenants.
#[derive(Clone)]
pub struct Actor {
    pub http: reqwest::Client,
    pub base: String,
    pub access_key: String,
    pub secret_key: String,
    pub tenant: String,
    pub role: String,
}

/// A reqwest client whose every request carries `Authorization: <value>`.
pub fn client_with_authorization(value: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(value).expect("header value"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("http client")
}

impl Actor {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request for `method` ("get", "post", ... as in `ROUTES`) on `path`.
    pub fn request(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .expect("HTTP method");
        self.http.request(method, self.url(path))
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Resp {
        read_resp(request.send().await.expect("request is answered")).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.request("get", path)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.request("delete", path)).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Resp {
        self.send(self.request("post", path).json(body)).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Resp {
        self.send(self.request("put", path).json(body)).await
    }
}

impl TestServer {
    /// An [`Actor`] for a key whose tenant and role the caller states.
    pub fn actor(&self, access_key: &str, secret_key: &str, tenant: &str, role: &str) -> Actor {
        Actor {
            http: client_with_authorization(&format!("Bearer {access_key}:{secret_key}")),
            base: self.url.clone(),
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            tenant: tenant.into(),
            role: role.into(),
        }
    }

    /// Creates tenant `name` as the bootstrap admin.
    pub async fn create_tenant(&self, name: &str) -> Value {
        self.post_json("/v1/tenants", &json!({ "name": name }))
            .await
            .expect(201)
    }

    /// Creates a key of `role` in `tenant` as the bootstrap admin.
    pub async fn create_key(&self, tenant: &str, role: &str) -> Actor {
        let v = self
            .post_json("/v1/keys", &json!({ "tenant": tenant, "role": role }))
            .await
            .expect(201);
        assert_eq!(v["tenant"], json!(tenant), "{v}");
        assert_eq!(v["role"], json!(role), "{v}");
        self.actor(
            v["access_key"].as_str().expect("access_key"),
            v["secret_key"].as_str().expect("secret_key"),
            tenant,
            role,
        )
    }
}

/// `path` (an OpenAPI template from `ROUTES`) with each `{name}` replaced.
pub fn fill_path(template: &str, values: &[(&str, &str)]) -> String {
    let mut path = template.to_string();
    for (name, value) in values {
        path = path.replace(&format!("{{{name}}}"), value);
    }
    assert!(
        !path.contains('{'),
        "{template}: a path parameter has no value"
    );
    path
}
