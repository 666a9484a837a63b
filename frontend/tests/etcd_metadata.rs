//! A node whose metadata lives in etcd (`metadata.url = "etcd://..."`): the
//! HTTP API behaves as on the embedded store, everything survives a restart,
//! and a bad URL or an unreachable cluster stops the start with a clear error.
//!
//! Needs the etcd cluster `scripts/test.sh` starts (`STRATA_TEST_ETCD_ENDPOINTS`);
//! skips with a message without it unless `STRATA_TEST_REQUIRE_ETCD` is set.

mod common;

use common::TestServer;
use serde_json::{Value, json};
use strata_frontend::Config;

fn etcd_url(test: &str) -> Option<String> {
    let endpoints = match std::env::var("STRATA_TEST_ETCD_ENDPOINTS") {
        Ok(e) => e,
        Err(_) if std::env::var_os("STRATA_TEST_REQUIRE_ETCD").is_some() => {
            panic!("STRATA_TEST_REQUIRE_ETCD is set but STRATA_TEST_ETCD_ENDPOINTS is not")
        }
        Err(_) => {
            eprintln!(
                "SKIPPED: STRATA_TEST_ETCD_ENDPOINTS not set (scripts/test.sh starts a 3-member etcd cluster)"
            );
            return None;
        }
    };
    let nanos = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map_or(0, |d| d.as_nanos());
    Some(format!(
        "etcd://{endpoints}/strata-test/{test}/{}-{nanos}",
        std::process::id()
    ))
}

async fn restart(s: TestServer) -> TestServer {
    let config = s.config.clone();
    let dir = s.shutdown().await;
    TestServer::start_in(dir, config).await
}

/// A snapshot with only what a client relies on per queue: its offsets.
/// Owner epochs grow on every start (the node claims its queues anew), and
/// a graceful stop on shared metadata moves the WAL to object storage, so
/// where the bytes are (and their encoded size) changes.
fn logical(mut snapshot: Value) -> Value {
    for topic in snapshot["topics"].as_array_mut().expect("topics") {
        for q in topic["queue_stats"].as_array_mut().expect("queue stats") {
            let keep = ["queue", "first_offset", "end_offset", "messages"];
            q.as_object_mut()
                .expect("queue")
                .retain(|k, _| keep.contains(&k.as_str()));
        }
    }
    snapshot
}

fn bodies(messages: &Value) -> Vec<String> {
    let mut out: Vec<String> = messages
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let m = if m["message"].is_object() {
                &m["message"]
            } else {
                m
            };
            String::from_utf8(common::unb64(m["body"].as_str().expect("body"))).expect("utf-8")
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_etcd_serves_and_keeps_its_state_across_restarts() {
    let Some(url) = etcd_url("node") else { return };
    let s = TestServer::start_with(|c| c.metadata.url = url.clone()).await;

    // Topics, messages, a pull group's offset, a POP group half-acknowledged.
    s.create_topic("orders", 4).await;
    let sent: Vec<Value> = (0..20)
        .map(|i| json!({ "body": common::b64(format!("m{i:02}").as_bytes()), "key": format!("k{}", i % 7) }))
        .collect();
    s.publish("orders", json!(sent)).await;
    s.post_json(
        "/v1/groups",
        &json!({"name": "billing", "start": "earliest"}),
    )
    .await
    .expect(201);
    s.put_json("/v1/groups/billing/offsets/orders/0", &json!({"offset": 1}))
        .await
        .expect(200);
    s.post_json(
        "/v1/groups",
        &json!({"name": "workers", "start": "earliest"}),
    )
    .await
    .expect(201);
    let got = s
        .post_json(
            "/v1/groups/workers/receive",
            &json!({"topic": "orders", "max_messages": 10, "invisible_ms": 600000}),
        )
        .await
        .expect(200);
    let received = got["messages"].as_array().expect("messages").clone();
    assert_eq!(received.len(), 10, "{got}");
    let handles: Vec<Value> = received
        .iter()
        .map(|m| m["receipt_handle"].clone())
        .collect();
    let acked = s
        .post_json(
            "/v1/groups/workers/ack",
            &json!({"topic": "orders", "receipt_handles": handles}),
        )
        .await
        .expect(200);
    assert!(
        acked["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["code"] == "OK"),
        "{acked}"
    );
    let status = s.get("/v1/status").await.expect(200);
    let metadata = &status["metadata"];
    assert_eq!(metadata["backend"], "etcd", "{status}");
    assert_eq!(metadata["serving_lease"]["node"], "node-1", "{status}");
    assert_eq!(metadata["serving_lease"]["released"], false, "{status}");
    let before = logical(s.snapshot().await);

    let s = restart(s).await;
    assert_eq!(logical(s.snapshot().await), before);
    // The other ten, and only those, come to the POP group after the restart.
    let rest = s
        .post_json(
            "/v1/groups/workers/receive",
            &json!({"topic": "orders", "max_messages": 32, "invisible_ms": 600000}),
        )
        .await
        .expect(200);
    let mut all = bodies(&json!(received));
    all.extend(bodies(&rest["messages"]));
    all.sort();
    let want: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    assert_eq!(all, want, "{rest}");
    let mut total = 0;
    for q in 0..4 {
        let r = s.read("orders", q, "offset=0&limit=100").await;
        total += r["messages"].as_array().expect("messages").len();
    }
    assert_eq!(total, 20);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_in_different_namespaces_share_nothing() {
    let (Some(a_url), Some(b_url)) = (etcd_url("ns-a"), etcd_url("ns-b")) else {
        return;
    };
    let a = TestServer::start_with(|c| c.metadata.url = a_url.clone()).await;
    let b = TestServer::start_with(|c| c.metadata.url = b_url.clone()).await;
    a.create_topic("only-in-a", 1).await;
    let listed = b.get("/v1/topics").await.expect(200);
    assert_eq!(listed["topics"], json!([]), "{listed}");
    b.get("/v1/topics/only-in-a")
        .await
        .expect_error(404, "TOPIC_NOT_FOUND");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_metadata_urls_stop_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (url, expect) in [
        ("redis://x:1", "metadata.url must be \"embedded\", etcd://"),
        ("etcd://nohost", "endpoint \"nohost\" is not host:port"),
        // Nothing listens on port 1: the start fails (told not to wait),
        // naming the endpoint.
        (
            "etcd://127.0.0.1:1/x",
            "no etcd member answers at 127.0.0.1:1",
        ),
        ("tikv://pd", "endpoint \"pd\" is not host:port"),
        // Without the `tikv` feature the build says how to get it; with
        // it, the unreachable PD is named.
        (
            "tikv://127.0.0.1:1/x",
            if cfg!(feature = "tikv") {
                "TiKV (PD 127.0.0.1:1)"
            } else {
                "cargo build --release --features tikv"
            },
        ),
    ] {
        let mut c: Config = common::config(dir.path());
        c.metadata.url = url.into();
        c.metadata.connect_wait_ms = 0;
        let err = strata_frontend::server::start(c)
            .await
            .expect_err(url)
            .to_string();
        assert!(err.contains(expect), "{url}: {err}");
    }
}

/// Gives `to` the master key (which seals the namespace's secret keys) and
/// the bootstrap admin credential of `from`, as an operator moving a node
/// does: both belong to the namespace, not to one data directory.
fn share_secrets(from: &Config, to: &Config) {
    std::fs::create_dir_all(&to.data_dir).unwrap();
    std::fs::copy(from.master_key_path(), to.master_key_path()).unwrap();
    std::fs::copy(from.credentials_path(), to.credentials_path()).unwrap();
}

/// Two data directories sharing one namespace and one object store.
fn pair_config(dir: &std::path::Path, objects: &std::path::Path, url: &str, node: &str) -> Config {
    let mut c = common::config(dir);
    c.metadata.url = url.to_string();
    c.node_id = node.to_string();
    c.object_store.root = objects.display().to_string();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_waits_until_the_first_hands_the_namespace_over() {
    let Some(url) = etcd_url("handover") else {
        return;
    };
    let objects = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a_config = pair_config(dir_a.path(), objects.path(), &url, "node-a");
    let a = TestServer::start_in(dir_a, a_config.clone()).await;
    a.create_topic("orders", 2).await;
    let sent: Vec<Value> = (0..20)
        .map(|i| json!({ "body": common::b64(format!("m{i:02}").as_bytes()) }))
        .collect();
    a.publish("orders", json!(sent)).await;

    // Without node-a's master key, node-b could verify none of the
    // namespace's access keys: it says so, and does not touch the lease.
    let b_config = pair_config(dir_b.path(), objects.path(), &url, "node-b");
    let keyless = strata_frontend::server::start(b_config.clone())
        .await
        .expect_err("no master key")
        .to_string();
    assert!(keyless.contains("master key does not open"), "{keyless}");
    // The key that start made opened nothing, and is not left behind.
    assert!(!b_config.master_key_path().exists());
    let catalog = strata_metadata::Catalog::new(
        strata_metadata::EtcdStore::connect(&strata_metadata::EtcdAddress::parse(&url).unwrap())
            .await
            .unwrap(),
    );
    let lease = catalog.serving_lease().await.unwrap().expect("lease");
    assert_eq!((lease.node.as_str(), lease.released), ("node-a", false));
    // The registry has node-a, live, at the address it listens on.
    let cluster = a.get("/v1/cluster").await.expect(200);
    assert_eq!(cluster["backend"], "etcd", "{cluster}");
    let nodes = cluster["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{cluster}");
    assert_eq!(
        (&nodes[0]["node"], &nodes[0]["state"], &nodes[0]["queues"]),
        (&json!("node-a"), &json!("live"), &json!(2)),
        "{cluster}"
    );
    let a_http = a.url.trim_start_matches("http://").to_string();
    assert_eq!(nodes[0]["http_addr"], json!(a_http), "{cluster}");
    share_secrets(&a_config, &b_config);

    // While node-a serves the namespace, another data directory is refused.
    let refused = strata_frontend::server::start(b_config.clone())
        .await
        .expect_err("a second node on the namespace")
        .to_string();
    assert!(refused.contains("served by node \"node-a\""), "{refused}");

    // A graceful stop uploads node-a's whole WAL and hands over; node-b
    // then serves every message from object storage.
    let _dir_a = a.shutdown().await;
    let lease = catalog.serving_lease().await.unwrap().expect("lease");
    assert_eq!((lease.node.as_str(), lease.released), ("node-a", true));
    let b = TestServer::start_in(dir_b, b_config).await;
    let mut got = Vec::new();
    for q in 0..2 {
        got.extend(bodies(
            &b.read("orders", q, "offset=0&limit=100").await["messages"],
        ));
    }
    got.sort();
    let want: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    assert_eq!(got, want);
    // node-a left (its WAL is all uploaded); node-b owns the queues now.
    let cluster = b.get("/v1/cluster").await.expect(200);
    let view: Vec<(Value, Value, Value)> = cluster["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| (n["node"].clone(), n["state"].clone(), n["queues"].clone()))
        .collect();
    assert_eq!(
        view,
        [
            (json!("node-a"), json!("left"), json!(0)),
            (json!("node-b"), json!("live"), json!(2)),
        ],
        "{cluster}"
    );
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_could_not_upload_keeps_the_namespace_until_it_can() {
    let Some(url) = etcd_url("no-handover") else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let objects = scratch.path().join("objects");
    std::fs::create_dir(&objects).unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a_config = pair_config(dir_a.path(), &objects, &url, "node-a");
    let b_config = pair_config(dir_b.path(), &objects, &url, "node-b");
    let a = TestServer::start_in(dir_a, a_config.clone()).await;
    a.create_topic("orders", 1).await;
    a.publish("orders", json!([{ "body": common::b64(b"kept") }]))
        .await;

    // The object store breaks (its directory is now a file): the stop
    // cannot upload the WAL, so it does not hand over.
    let aside = scratch.path().join("objects.aside");
    std::fs::rename(&objects, &aside).unwrap();
    std::fs::write(&objects, b"not a directory").unwrap();
    let dir_a = a.shutdown().await;
    share_secrets(&a_config, &b_config);
    let refused = strata_frontend::server::start(b_config.clone())
        .await
        .expect_err("node-a never handed over")
        .to_string();
    assert!(refused.contains("node \"node-a\""), "{refused}");

    // node-a, started again on its own data directory, takes the namespace
    // back at once, uploads once the store works, and hands over.
    std::fs::remove_file(&objects).unwrap();
    std::fs::rename(&aside, &objects).unwrap();
    let a = TestServer::start_in(dir_a, a_config.clone()).await;
    let _dir_a = a.shutdown().await;
    share_secrets(&a_config, &b_config);
    let b = TestServer::start_in(dir_b, b_config).await;
    let read = b.read("orders", 0, "offset=0").await;
    assert_eq!(bodies(&read["messages"]), ["kept"]);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_lease_was_taken_acknowledges_no_more_writes() {
    let Some(url) = etcd_url("fenced") else {
        return;
    };
    let objects = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = pair_config(dir.path(), objects.path(), &url, "node-a");
    config.serving.lease_ttl_ms = 1000;
    let a = TestServer::start_in(dir, config).await;
    a.create_topic("orders", 1).await;
    let one = json!({ "messages": [{ "body": common::b64(b"m") }] });
    assert_eq!(
        a.post_json("/v1/topics/orders/messages", &one).await.status,
        200
    );

    // Another node takes the namespace over (as an adopter would: release
    // on node-a's behalf, then acquire).
    let catalog = strata_metadata::Catalog::new(
        strata_metadata::EtcdStore::connect(&strata_metadata::EtcdAddress::parse(&url).unwrap())
            .await
            .unwrap(),
    );
    let held = catalog.serving_lease().await.unwrap().expect("lease");
    let now = strata_common::Clock::now_ms(&strata_common::SystemClock);
    catalog
        .renew_serving_lease(&held, now, 0, true)
        .await
        .unwrap()
        .expect("released");
    catalog
        .acquire_serving_lease("node-z", "elsewhere", "/elsewhere", now, 60_000)
        .await
        .unwrap();

    // Node-a's next renewal finds the lease changed: its writes are refused.
    let mut refused = None;
    for _ in 0..40 {
        let resp = a.post_json("/v1/topics/orders/messages", &one).await;
        if resp.status == 503 {
            refused = Some(String::from_utf8_lossy(&resp.body).into_owned());
            break;
        }
        strata_common::Clock::sleep(
            &strata_common::SystemClock,
            std::time::Duration::from_millis(100),
        )
        .await;
    }
    let refused = refused.expect("node-a kept acknowledging writes after losing its lease");
    assert!(refused.contains("serving lease"), "{refused}");
    // A load balancer sees it (readiness), a supervisor does not restart it
    // (liveness), and the status says why.
    let probe = |path: &'static str| {
        let request = a.anonymous_http().get(a.url(path));
        async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, text) = probe("/readyz").await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("serving lease"), "{text}");
    assert_eq!(probe("/healthz").await.0, 200);
    let not_ready = a.get("/v1/status").await.json()["not_ready"].clone();
    assert!(
        not_ready
            .as_str()
            .is_some_and(|w| w.contains("serving lease")),
        "{not_ready}"
    );
    // Reads still work.
    assert_eq!(
        a.read("orders", 0, "offset=0&limit=10").await["messages"][0]["offset"],
        0
    );
}
