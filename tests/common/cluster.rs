//! Helpers of the cluster-mode tests (`tests/cluster.rs`): nodes in
//! cluster mode on the test etcd, and tenants publishing and reading
//! through any of them, as the anonymous admin naming the tenant.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Server;

pub const LEASE_TTL_MS: u64 = 2000;
pub const TENANTS: usize = 6;
pub const QUEUES: u32 = 4;

pub fn start(dir: &Path, url: &str, shared: &Path, node: &str) -> Server {
    start_with(dir, url, shared, node, &[])
}

/// [`start`] with `extra` settings.
pub fn start_with(
    dir: &Path,
    url: &str,
    shared: &Path,
    node: &str,
    extra: &[(&str, &str)],
) -> Server {
    let mut env = node_env(url, shared, node);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start(dir, &env)
}

/// The settings of a cluster node `node` on etcd `url`.
fn node_env(url: &str, shared: &Path, node: &str) -> Vec<(String, String)> {
    let objects = shared.join("objects").display().to_string();
    let key = shared.join("master.key").display().to_string();
    [
        ("STRATA_METADATA_URL", url.to_string()),
        ("STRATA_NODE_ID", node.to_string()),
        ("STRATA_SERVING_CLUSTER", "true".to_string()),
        ("STRATA_SERVING_LEASE_TTL_MS", LEASE_TTL_MS.to_string()),
        ("STRATA_OBJECT_STORE_ROOT", objects),
        ("STRATA_AUTH_MASTER_KEY_FILE", key),
        ("STRATA_AUTH_ANONYMOUS", "true".to_string()),
        ("STRATA_CACHE_BLOCK_DISK_DIR", "none".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Starts node `node` on `dir` expecting it to refuse: waits for it to
/// exit (failing the test if it serves, or runs a minute) and returns what
/// it printed.
pub fn refused_start(dir: &Path, url: &str, shared: &Path, node: &str) -> String {
    refused_start_with(dir, url, shared, node, &[])
}

/// [`refused_start`] with `extra` settings.
pub fn refused_start_with(
    dir: &Path,
    url: &str,
    shared: &Path,
    node: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut child = std::process::Command::new(super::BIN)
        .args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--grpc-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir)
        .envs(node_env(url, shared, node))
        .envs(extra.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn strata serve");
    let began = Instant::now();
    while child.try_wait().expect("wait for strata").is_none() {
        if began.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("node {node} kept running instead of refusing to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("strata output");
    assert!(!out.status.success(), "node {node} exited successfully");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// node-a (with `extra_a` settings) and node-b on `dirs`, with every
/// tenant and its topic "orders" created; returns them and the tenants
/// placed on node-a.
pub async fn two_nodes_with_topics(
    dirs: [&Path; 2],
    url: &str,
    shared: &Path,
    extra_a: &[(&str, &str)],
) -> (Server, Server, Vec<String>) {
    two_nodes_with_topics_and(dirs, url, shared, [extra_a, &[]]).await
}

/// [`two_nodes_with_topics`] with settings for each node.
pub async fn two_nodes_with_topics_and(
    dirs: [&Path; 2],
    url: &str,
    shared: &Path,
    extra: [&[(&str, &str)]; 2],
) -> (Server, Server, Vec<String>) {
    let a = start_with(dirs[0], url, shared, "node-a", extra[0]);
    let b = start_with(dirs[1], url, shared, "node-b", extra[1]);
    create_tenants(&[a.url.clone(), b.url.clone()]).await;
    settled(&a.url, &["node-a", "node-b"]).await;
    let mut on_a = Vec::new();
    for t in (0..TENANTS).map(tenant) {
        create_topic(&b.url, &t).await;
        if served_by(&b.url, &t).await.as_deref() == Some("node-a") {
            on_a.push(t);
        }
    }
    (a, b, on_a)
}

pub fn tenant(i: usize) -> String {
    format!("tenant{i}")
}

/// A request as the anonymous admin acting on `tenant`; `None` when it
/// did not succeed (refused, moving, node gone).
pub async fn call(
    method: reqwest::Method,
    url: &str,
    tenant: &str,
    body: Option<Value>,
) -> Option<Value> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .ok()?;
    let mut request = client
        .request(method, url)
        .header("x-strata-tenant", tenant);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        let status = response.status();
        eprintln!(
            "{url} for {tenant}: {status} {}",
            response.text().await.unwrap_or_default()
        );
        return None;
    }
    response.json().await.ok()
}

/// Creates `TENANTS` tenants, each through one of `urls` in turn.
pub async fn create_tenants(urls: &[String]) {
    let client = reqwest::Client::new();
    for i in 0..TENANTS {
        let created = client
            .post(format!("{}/v1/tenants", urls[i % urls.len()]))
            .json(&json!({ "name": tenant(i) }))
            .send()
            .await
            .expect("create tenant");
        assert!(
            created.status().is_success(),
            "{}",
            created.text().await.unwrap_or_default()
        );
    }
}

/// Creates `tenant`'s topic "orders" through `url`, retrying while the
/// tenant is being placed.
pub async fn create_topic(url: &str, tenant: &str) {
    let began = Instant::now();
    while call(
        reqwest::Method::POST,
        &format!("{url}/v1/topics"),
        tenant,
        Some(json!({ "name": "orders", "queues": QUEUES })),
    )
    .await
    .is_none()
    {
        // A retry after a lost answer finds the topic made.
        let exists = format!("{url}/v1/topics/orders");
        if call(reqwest::Method::GET, &exists, tenant, None)
            .await
            .is_some()
        {
            return;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "create a topic for {tenant}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The node that serves `tenant`, named by the answer to a request
/// through `url` (`x-strata-served-by`).
pub async fn served_by(url: &str, tenant: &str) -> Option<String> {
    let answer = reqwest::Client::new()
        .get(format!("{url}/v1/topics/orders"))
        .header("x-strata-tenant", tenant)
        .send()
        .await
        .ok()?;
    answer
        .headers()
        .get("x-strata-served-by")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The nodes of `GET /v1/cluster` through `url`.
async fn cluster_nodes(url: &str) -> Vec<Value> {
    let cluster = reqwest::get(format!("{url}/v1/cluster"))
        .await
        .expect("cluster status")
        .json::<Value>()
        .await
        .expect("cluster json");
    cluster["nodes"].as_array().expect("nodes").clone()
}

/// `node`'s state ("live", "expired", ...) as `url` sees the cluster.
pub async fn node_state(url: &str, node: &str) -> String {
    cluster_nodes(url)
        .await
        .iter()
        .find(|n| n["node"] == node)
        .and_then(|n| n["state"].as_str())
        .unwrap_or("absent")
        .to_string()
}

/// Waits (up to 30 s) until `url` reports `node` in `state`.
pub async fn wait_for_state(url: &str, node: &str, state: &str) {
    let began = Instant::now();
    while node_state(url, node).await != state {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "{node} never became {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `sig` ("-STOP", "-CONT", ...) to process `pid`.
pub fn signal(pid: u32, sig: &str) {
    let sent = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill {sig} {pid}");
}

/// Publishes `body` through `url`, retrying for up to 10 s while the
/// tenant is refused (moving between nodes, a heartbeat late under load).
pub async fn publish_until_acked(url: &str, tenant: &str, body: &str) {
    let began = Instant::now();
    while !publish(url, tenant, body).await {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "publishing {body} through {url} kept failing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn publish(url: &str, tenant: &str, body: &str) -> bool {
    call(
        reqwest::Method::POST,
        &format!("{url}/v1/topics/orders/messages"),
        tenant,
        Some(json!({ "messages": [{ "body": body }] })),
    )
    .await
    .is_some()
}

/// Every body in `tenant`'s topic, read through `url` (a read may stop at
/// a tier boundary, so each queue is read until it has no more).
pub async fn bodies(url: &str, tenant: &str) -> Vec<String> {
    let mut out = Vec::new();
    for q in 0..QUEUES {
        let mut offset = 0;
        loop {
            let path =
                format!("{url}/v1/topics/orders/queues/{q}/messages?offset={offset}&limit=10000");
            // A tenant moving between nodes answers 503 for a moment.
            let began = Instant::now();
            let got = loop {
                if let Some(got) = call(reqwest::Method::GET, &path, tenant, None).await {
                    break got;
                }
                assert!(
                    began.elapsed() < Duration::from_secs(10),
                    "read {tenant} queue {q} through {url}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let messages = got["messages"].as_array().expect("messages");
            if messages.is_empty() {
                break;
            }
            for m in messages {
                out.push(m["body"].as_str().unwrap_or_default().to_string());
            }
            offset = got["next_offset"].as_u64().expect("next_offset");
        }
    }
    out.sort();
    out
}

/// The broker endpoint a QueryRoute for `tenant`'s topic through `grpc`
/// names (`host:port`).
pub async fn route_of(grpc: &str, tenant: &str) -> String {
    use strata_frontend::grpc::pb;
    let mut client = super::Grpc::connect(format!("http://{grpc}"))
        .await
        .expect("gRPC connects");
    let mut request = tonic::Request::new(pb::QueryRouteRequest {
        topic: Some(pb::Resource {
            resource_namespace: String::new(),
            name: "orders".into(),
        }),
        endpoints: None,
    });
    request
        .metadata_mut()
        .insert("x-mq-namespace", tenant.parse().expect("namespace header"));
    let answer = client
        .query_route(request)
        .await
        .expect("QueryRoute")
        .into_inner();
    assert_eq!(
        super::grpc_code(answer.status),
        pb::Code::Ok,
        "{tenant} via {grpc}"
    );
    let endpoints = answer.message_queues[0]
        .broker
        .as_ref()
        .and_then(|b| b.endpoints.as_ref())
        .expect("broker endpoints");
    let address = &endpoints.addresses[0];
    format!("{}:{}", address.host, address.port)
}

/// A SendMessage of one message to `tenant`'s topic through `grpc`, as
/// the anonymous admin naming the tenant's namespace.
pub async fn send_grpc(
    grpc: &str,
    tenant: &str,
    body: &str,
) -> strata_frontend::grpc::pb::SendMessageResponse {
    use strata_frontend::grpc::pb;
    let mut client = super::Grpc::connect(format!("http://{grpc}"))
        .await
        .expect("gRPC connects");
    let message = pb::Message {
        topic: Some(pb::Resource {
            resource_namespace: String::new(),
            name: "orders".into(),
        }),
        user_properties: Default::default(),
        system_properties: Some(pb::SystemProperties {
            message_id: body.to_string(),
            message_type: pb::MessageType::Normal as i32,
            ..Default::default()
        }),
        body: body.as_bytes().to_vec(),
    };
    let mut request = tonic::Request::new(pb::SendMessageRequest {
        messages: vec![message],
    });
    request
        .metadata_mut()
        .insert("x-mq-namespace", tenant.parse().expect("namespace header"));
    client
        .send_message(request)
        .await
        .expect("SendMessage")
        .into_inner()
}

/// Asserts `tenant`'s topic, read through `url`, holds every body of
/// `want` once and otherwise only bodies of `unsure` (publishes that
/// failed: a refused append may or may not have been stored, never
/// acknowledged); on a mismatch shows what differs, the topic and the
/// cluster as `url` sees them.
pub async fn expect_bodies(
    url: &str,
    tenant: &str,
    want: &[String],
    unsure: &BTreeSet<String>,
    when: &str,
) {
    let got = bodies(url, tenant).await;
    let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
    for body in &got {
        *counts.entry(body).or_default() += 1;
    }
    let missing: Vec<&String> = want.iter().filter(|b| !counts.contains_key(b)).collect();
    let twice: Vec<&String> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(b, _)| *b)
        .collect();
    let stray: Vec<&String> = counts
        .keys()
        .filter(|b| !want.contains(b) && !unsure.contains(**b))
        .copied()
        .collect();
    if missing.is_empty() && twice.is_empty() && stray.is_empty() {
        return;
    }
    let topic = call(
        reqwest::Method::GET,
        &format!("{url}/v1/topics/orders"),
        tenant,
        None,
    )
    .await;
    let cluster = reqwest::get(format!("{url}/v1/cluster")).await.ok();
    let cluster = match cluster {
        Some(r) => r.text().await.unwrap_or_default(),
        None => String::new(),
    };
    panic!(
        "{tenant} {when}: read {} messages through {url}, {} acknowledged; missing {missing:?}, twice {twice:?}, never sent {stray:?}\ntopic: {topic:?}\ncluster: {cluster}",
        got.len(),
        want.len()
    );
}

/// Tenants per live node, as `url` sees the cluster.
pub async fn tenants_per_node(url: &str) -> BTreeMap<String, u64> {
    cluster_nodes(url)
        .await
        .iter()
        .filter(|n| n["state"] == "live")
        .map(|n| {
            (
                n["node"].as_str().unwrap_or_default().to_string(),
                n["tenants"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Waits until every tenant (and the default one) is placed on one of
/// `nodes`, each holding at least one; returns how long that took.
pub async fn settled(url: &str, nodes: &[&str]) -> Duration {
    let began = Instant::now();
    loop {
        let view = tenants_per_node(url).await;
        let placed: u64 = view.values().sum();
        if placed == TENANTS as u64 + 1
            && view.len() == nodes.len()
            && nodes.iter().all(|n| view.get(*n).is_some_and(|t| *t > 0))
        {
            return began.elapsed();
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "never settled: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each tenant's acknowledged bodies with when they were acknowledged,
/// and the bodies whose publish failed.
pub type Published = (BTreeMap<String, Vec<(String, Instant)>>, BTreeSet<String>);

/// Every tenant publishes one message after another through `url` for
/// `run`, each tenant on its own task (a tenant whose node hangs holds up
/// only itself).
pub fn publish_for(
    url: String,
    run: Duration,
    tag: &'static str,
) -> tokio::task::JoinHandle<Published> {
    tokio::spawn(async move {
        let tasks: Vec<_> = (0..TENANTS)
            .map(|i| {
                let url = url.clone();
                tokio::spawn(async move {
                    let t = tenant(i);
                    let mut acked = Vec::new();
                    let mut failed = BTreeSet::new();
                    let began = Instant::now();
                    let mut n = 0;
                    while began.elapsed() < run {
                        let body = format!("{t}-{tag}-{n:04}");
                        if publish(&url, &t, &body).await {
                            acked.push((body, Instant::now()));
                        } else {
                            failed.insert(body);
                        }
                        n += 1;
                    }
                    (t, acked, failed)
                })
            })
            .collect();
        let mut acked = BTreeMap::new();
        let mut failed = BTreeSet::new();
        for task in tasks {
            let (t, list, refused) = task.await.expect("publisher task");
            acked.insert(t, list);
            failed.extend(refused);
        }
        (acked, failed)
    })
}
