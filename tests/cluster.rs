//! Cluster mode (`serving.cluster = true`) on a 3-member etcd: three nodes
//! share one namespace and object store and each serves the tenants placed
//! on it. Every request works through every node (forwarded to the
//! tenant's node, over HTTP and gRPC alike); a node SIGKILLed under load
//! has its WAL adopted by a survivor and its tenants placed again with
//! every acknowledged message; a fourth node joining takes tenants over,
//! nothing lost; an etcd member SIGKILLed under load costs at most a pause.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, etcd_test_url};
use serde_json::{Value, json};

const LEASE_TTL_MS: u64 = 2000;
const TENANTS: usize = 6;
const QUEUES: u32 = 4;

fn start(dir: &Path, url: &str, shared: &Path, node: &str) -> Server {
    let objects = shared.join("objects").display().to_string();
    let key = shared.join("master.key").display().to_string();
    let ttl = LEASE_TTL_MS.to_string();
    let env = [
        ("STRATA_METADATA_URL", url),
        ("STRATA_NODE_ID", node),
        ("STRATA_SERVING_CLUSTER", "true"),
        ("STRATA_SERVING_LEASE_TTL_MS", ttl.as_str()),
        ("STRATA_OBJECT_STORE_ROOT", objects.as_str()),
        ("STRATA_AUTH_MASTER_KEY_FILE", key.as_str()),
        ("STRATA_AUTH_ANONYMOUS", "true"),
        ("STRATA_CACHE_BLOCK_DISK_DIR", "none"),
    ];
    Server::start(dir, &env)
}

fn tenant(i: usize) -> String {
    format!("tenant{i}")
}

/// A request as the anonymous admin acting on `tenant`; `None` when it
/// did not succeed (refused, moving, node gone).
async fn call(
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

/// Publishes `body` through `url`, retrying for up to 10 s while the
/// tenant is refused (moving between nodes, a heartbeat late under load).
async fn publish_until_acked(url: &str, tenant: &str, body: &str) {
    let began = Instant::now();
    while !publish(url, tenant, body).await {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "publishing {body} through {url} kept failing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn publish(url: &str, tenant: &str, body: &str) -> bool {
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
async fn bodies(url: &str, tenant: &str) -> Vec<String> {
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
async fn route_of(grpc: &str, tenant: &str) -> String {
    use strata_frontend::grpc::pb;
    let mut client = common::Grpc::connect(format!("http://{grpc}"))
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
        common::grpc_code(answer.status),
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
async fn send_grpc(
    grpc: &str,
    tenant: &str,
    body: &str,
) -> strata_frontend::grpc::pb::SendMessageResponse {
    use strata_frontend::grpc::pb;
    let mut client = common::Grpc::connect(format!("http://{grpc}"))
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
async fn expect_bodies(
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
async fn tenants_per_node(url: &str) -> BTreeMap<String, u64> {
    let cluster = reqwest::get(format!("{url}/v1/cluster"))
        .await
        .expect("cluster status")
        .json::<Value>()
        .await
        .expect("cluster json");
    cluster["nodes"]
        .as_array()
        .expect("nodes")
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
async fn settled(url: &str, nodes: &[&str]) -> Duration {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_spread_move_on_a_kill_and_rebalance_on_a_join() {
    let Some(url) = etcd_test_url("cluster") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start(dirs[0].path(), &url, shared.path(), "node-a");
    let b = start(dirs[1].path(), &url, shared.path(), "node-b");
    let c = start(dirs[2].path(), &url, shared.path(), "node-c");
    let urls = [a.url.clone(), b.url.clone(), c.url.clone()];
    let client = reqwest::Client::new();
    for i in 0..TENANTS {
        let created = client
            .post(format!("{}/v1/tenants", urls[i % 3]))
            .json(&json!({ "name": tenant(i) }))
            .send()
            .await
            .unwrap();
        assert!(
            created.status().is_success(),
            "{}",
            created.text().await.unwrap()
        );
    }
    settled(&a.url, &["node-a", "node-b", "node-c"]).await;

    // Create, publish and read through three different nodes per tenant.
    let mut acked: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..TENANTS {
        let t = tenant(i);
        let began = Instant::now();
        while call(
            reqwest::Method::POST,
            &format!("{}/v1/topics", urls[i % 3]),
            &t,
            Some(json!({ "name": "orders", "queues": QUEUES })),
        )
        .await
        .is_none()
        {
            // A retry after a lost answer finds the topic made.
            let exists = format!("{}/v1/topics/orders", urls[i % 3]);
            if call(reqwest::Method::GET, &exists, &t, None)
                .await
                .is_some()
            {
                break;
            }
            assert!(
                began.elapsed() < Duration::from_secs(10),
                "create a topic for {t}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for n in 0..20 {
            let body = format!("{t}-{n:03}");
            publish_until_acked(&urls[(i + 1) % 3], &t, &body).await;
            acked.entry(t.clone()).or_default().push(body);
        }
    }
    for (i, t) in (0..TENANTS).map(|i| (i, tenant(i))) {
        assert_eq!(bodies(&urls[(i + 2) % 3], &t).await, acked[&t]);
    }

    // gRPC: whichever node is asked, a route answer names the node that
    // serves the tenant (the official SDKs then talk to it directly).
    let grpc_addrs = [
        a.grpc_addr.clone(),
        b.grpc_addr.clone(),
        c.grpc_addr.clone(),
    ];
    for t in (0..TENANTS).map(tenant) {
        let mut named = Vec::new();
        for addr in &grpc_addrs {
            named.push(route_of(addr, &t).await);
        }
        assert!(named.iter().all(|n| *n == named[0]), "{t}: {named:?}");
        let at = grpc_addrs.iter().position(|a| *a == named[0]);
        let at = at.unwrap_or_else(|| panic!("{t}: {named:?} not a node"));
        // Over HTTP, every node's answer names the same serving node.
        for url in &urls {
            let answer = reqwest::Client::new()
                .get(format!("{url}/v1/topics/orders"))
                .header("x-strata-tenant", t.as_str())
                .send()
                .await
                .unwrap();
            let served_by = answer.headers().get("x-strata-served-by").cloned();
            assert_eq!(
                served_by.as_ref().and_then(|v| v.to_str().ok()),
                Some(["node-a", "node-b", "node-c"][at]),
                "{t} through {url}"
            );
        }
    }

    // Any RPC through any node: a SendMessage for a tenant served
    // elsewhere is forwarded (a client whose route went stale still works).
    for (i, t) in (0..TENANTS).map(|i| (i, tenant(i))) {
        for (n, addr) in grpc_addrs.iter().enumerate() {
            let body = format!("{t}-grpc-{n}");
            let answer = send_grpc(addr, &t, &body).await;
            assert_eq!(
                common::grpc_code(answer.status.clone()),
                strata_frontend::grpc::pb::Code::Ok,
                "{t} through {addr}: {answer:?}"
            );
            acked.entry(t.clone()).or_default().push(body);
        }
        let list = acked.get_mut(&t).expect("published");
        list.sort();
        assert_eq!(
            &bodies(&urls[i % 3], &t).await,
            list,
            "{t} after gRPC sends"
        );
    }

    // SIGKILL node-c while every tenant keeps publishing through node-a.
    let publisher = publish_for(a.url.clone(), Duration::from_secs(6), "live");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    c.kill();
    let killed = Instant::now();
    settled(&a.url, &["node-a", "node-b"]).await;
    let took = killed.elapsed();
    let (live, mut unsure) = publisher.await.unwrap();
    for (t, bodies_live) in live {
        acked
            .entry(t)
            .or_default()
            .extend(bodies_live.into_iter().map(|(b, _)| b));
    }
    for list in acked.values_mut() {
        list.sort();
    }
    for t in acked.keys() {
        expect_bodies(&b.url, t, &acked[t], &unsure, "after the kill").await;
    }
    eprintln!(
        "cluster: node-c's tenants served again {:.2} s after SIGKILL (lease {LEASE_TTL_MS} ms); {} acknowledged messages all present",
        took.as_secs_f64(),
        acked.values().map(Vec::len).sum::<usize>()
    );

    // A fourth node joins and takes tenants over, everything still there.
    let d = start(dirs[3].path(), &url, shared.path(), "node-d");
    settled(&a.url, &["node-a", "node-b", "node-d"]).await;
    for t in acked.keys() {
        expect_bodies(&d.url, t, &acked[t], &unsure, "after the join").await;
    }

    // One etcd member of three SIGKILLed while every tenant publishes
    // through node-d: the cluster keeps its quorum, the nodes keep their
    // tenants and publishes keep being acknowledged.
    let publisher = publish_for(d.url.clone(), Duration::from_secs(6), "quorum");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // The last member: the store tests kill and restart member 0.
    let member = common::kill_etcd_member(2);
    let member_killed = Instant::now();
    let (during, refused) = publisher.await.unwrap();
    unsure.extend(refused);
    let after_kill: usize = during
        .values()
        .flatten()
        .filter(|(_, at)| *at > member_killed)
        .count();
    if let Some(member) = member {
        member.restart();
    }
    assert!(
        after_kill > 0,
        "no publish acknowledged with an etcd member down"
    );
    for (t, list) in during {
        acked
            .entry(t)
            .or_default()
            .extend(list.into_iter().map(|(b, _)| b));
    }
    for list in acked.values_mut() {
        list.sort();
    }
    settled(&a.url, &["node-a", "node-b", "node-d"]).await;
    for t in acked.keys() {
        expect_bodies(&b.url, t, &acked[t], &unsure, "with an etcd member down").await;
    }
    eprintln!(
        "cluster: {after_kill} publishes acknowledged after an etcd member was SIGKILLed; every node kept its tenants"
    );
    d.stop();
    b.stop();
    a.stop();
}

/// Each tenant's acknowledged bodies with when they were acknowledged,
/// and the bodies whose publish failed.
type Published = (BTreeMap<String, Vec<(String, Instant)>>, BTreeSet<String>);

/// Publishes one message per tenant in turn through `url` for `run`.
fn publish_for(
    url: String,
    run: Duration,
    tag: &'static str,
) -> tokio::task::JoinHandle<Published> {
    tokio::spawn(async move {
        let mut acked: BTreeMap<String, Vec<(String, Instant)>> = BTreeMap::new();
        let mut failed = BTreeSet::new();
        let began = Instant::now();
        let mut n = 0;
        while began.elapsed() < run {
            for i in 0..TENANTS {
                let t = tenant(i);
                let body = format!("{t}-{tag}-{n:04}");
                if publish(&url, &t, &body).await {
                    acked.entry(t).or_default().push((body, Instant::now()));
                } else {
                    failed.insert(body);
                }
            }
            n += 1;
        }
        (acked, failed)
    })
}
