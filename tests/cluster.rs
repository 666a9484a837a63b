//! Cluster mode (`serving.cluster = true`) on a 3-member etcd: three nodes
//! share one namespace and object store and each serves the tenants placed
//! on it. Every request works through every node (forwarded to the
//! tenant's node, over HTTP and gRPC alike); a node SIGKILLed under load
//! has its WAL adopted by a survivor and its tenants placed again with
//! every acknowledged message; a fourth node joining takes tenants over,
//! nothing lost; an etcd member SIGKILLed under load costs at most a pause.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::*;
use common::etcd_test_url;
use strata_metadata::LOST_OFFSETS_GAP;

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
    create_tenants(&urls).await;
    settled(&a.url, &["node-a", "node-b", "node-c"]).await;

    // Create, publish and read through three different nodes per tenant.
    let mut acked: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..TENANTS {
        let t = tenant(i);
        create_topic(&urls[i % 3], &t).await;
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

    // A tenant that does not exist is refused where the request arrives,
    // at once (routing first waited for it to be placed and said where
    // tenants are served).
    for url in &urls {
        let answer = reqwest::Client::new()
            .get(format!("{url}/v1/topics/orders"))
            .header("x-strata-tenant", "no-such-tenant")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404, "through {url}");
        assert!(
            answer.headers().get("x-strata-served-by").is_none(),
            "through {url}"
        );
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

/// SIGSTOP of a node for three leases. Its lease lapses, but its data
/// directory stays locked by a live process, so no survivor adopts its WAL
/// and its tenants wait (503) instead of moving: there is never a second
/// writer. The other node's tenants are served throughout. After SIGCONT
/// the node renews, keeps its tenants and serves them again; every
/// acknowledged message is there, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_keeps_its_tenants_and_nothing_is_served_twice() {
    let Some(url) = etcd_test_url("cluster-pause") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, b, on_a) =
        two_nodes_with_topics([dirs[0].path(), dirs[1].path()], &url, shared.path(), &[]).await;
    assert!(!on_a.is_empty() && on_a.len() < TENANTS, "{on_a:?}");

    let pause = Duration::from_millis(3 * LEASE_TTL_MS);
    let publisher = publish_for(b.url.clone(), pause + Duration::from_secs(3), "pause");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = a.child.id();
    signal(pid, "-STOP");
    let stopped = Instant::now();
    // A publish forwarded to the paused node, by a client that would wait
    // two minutes: node-b gives up on it once node-a's heartbeat lapses.
    let probe_body = "forwarded-into-the-pause";
    let probe = tokio::spawn(forwarded_into_the_pause(
        b.url.clone(),
        on_a[0].clone(),
        probe_body,
    ));
    tokio::time::sleep(pause).await;
    let state = node_state(&b.url, "node-a").await;
    let probe_answered_in_the_pause = probe.is_finished();
    signal(pid, "-CONT");
    let resumed = Instant::now();
    assert_eq!(state, "expired", "node-a paused past its lease");
    let (status, text) = probe.await.unwrap();
    assert!(
        probe_answered_in_the_pause,
        "a request forwarded to the paused node waited for it ({status} {text})"
    );
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("stopped heartbeating"), "{text}");
    let (during, mut unsure) = publisher.await.unwrap();
    // Sent before node-a stopped reading: it may still store it.
    unsure.insert(probe_body.to_string());

    // node-b's tenants were served while node-a was stopped.
    for (t, list) in &during {
        if !on_a.contains(t) {
            let served = list
                .iter()
                .filter(|(_, at)| *at > stopped && *at < resumed)
                .count();
            assert!(served > 0, "{t} (on node-b) not served during the pause");
        }
    }
    // node-a's tenants stayed with it, and it serves them again.
    assert_eq!(node_state(&b.url, "node-a").await, "live");
    let mut acked: BTreeMap<String, Vec<String>> = during
        .into_iter()
        .map(|(t, list)| (t, list.into_iter().map(|(body, _)| body).collect()))
        .collect();
    for t in (0..TENANTS).map(tenant) {
        let body = format!("{t}-after");
        publish_until_acked(&b.url, &t, &body).await;
        acked.entry(t.clone()).or_default().push(body);
        if on_a.contains(&t) {
            assert_eq!(served_by(&b.url, &t).await.as_deref(), Some("node-a"));
        }
    }
    for (t, list) in &mut acked {
        list.sort();
        expect_bodies(&a.url, t, list, &unsure, "after the pause").await;
    }
    eprintln!(
        "cluster: node-a SIGSTOPped {:.1} s with tenants {on_a:?}: kept them, nothing adopted; {} acknowledged messages all present once",
        pause.as_secs_f64(),
        acked.values().map(Vec::len).sum::<usize>()
    );
    b.stop();
    a.stop();
}

/// One publish for `tenant` through `url`, by a client that waits two
/// minutes for the answer: its status and text.
async fn forwarded_into_the_pause(url: String, tenant: String, body: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let answer = client
        .post(format!("{url}/v1/topics/orders/messages"))
        .header("x-strata-tenant", &tenant)
        .json(&serde_json::json!({ "messages": [{ "body": body }] }))
        .send()
        .await
        .expect("node-b answers");
    let status = answer.status().as_u16();
    (status, answer.text().await.unwrap_or_default())
}

/// A tenant's plan holds across the cluster: publishing through three
/// nodes at once, the tenant gets its plan's rate once, not three times
/// (every node forwards to the one node that serves it and counts there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_rate_is_counted_once_however_many_nodes_it_reaches() {
    const RATE: u64 = 50;
    let Some(url) = etcd_test_url("cluster-quota") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes: Vec<_> = ["node-a", "node-b", "node-c"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            // Over the rate: refused at once (429), not delayed.
            let extra = [("STRATA_QUOTAS_MAX_DELAY_MS", "0")];
            start_with(dirs[i].path(), &url, shared.path(), n, &extra)
        })
        .collect();
    let client = reqwest::Client::new();
    let plan = client
        .put(format!("{}/v1/plans/slow", nodes[0].url))
        .json(&serde_json::json!({ "publish_messages_per_sec": RATE }))
        .send()
        .await
        .unwrap();
    assert!(plan.status().is_success(), "{:?}", plan.text().await);
    let created = client
        .post(format!("{}/v1/tenants", nodes[0].url))
        .json(&serde_json::json!({ "name": "capped", "plan": "slow" }))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{:?}", created.text().await);
    create_topic(&nodes[1].url, "capped").await;
    // The tenant's own key: service admins are not rate limited.
    let key: serde_json::Value = client
        .post(format!("{}/v1/keys", nodes[2].url))
        .json(&serde_json::json!({ "tenant": "capped", "role": "publisher" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = format!(
        "Bearer {}:{}",
        key["access_key"].as_str().expect("access_key"),
        key["secret_key"].as_str().expect("secret_key")
    );

    // Every node publishes as fast as it is answered, for three seconds.
    let began = Instant::now();
    let publishers: Vec<_> = nodes
        .iter()
        .map(|n| {
            let url = n.url.clone();
            let bearer = bearer.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let (mut accepted, mut throttled) = (0u64, 0u64);
                let mut i = 0;
                while began.elapsed() < Duration::from_secs(3) {
                    let answer = client
                        .post(format!("{url}/v1/topics/orders/messages"))
                        .header("authorization", bearer.as_str())
                        .json(
                            &serde_json::json!({ "messages": [{ "body": format!("{url}-{i}") }] }),
                        )
                        .send()
                        .await
                        .expect("publish answered");
                    match answer.status().as_u16() {
                        200 => accepted += 1,
                        429 => throttled += 1,
                        other => panic!("{other}: {:?}", answer.text().await),
                    }
                    i += 1;
                }
                (accepted, throttled)
            })
        })
        .collect();
    let mut accepted = 0;
    let mut throttled = 0;
    for p in publishers {
        let (a, t) = p.await.unwrap();
        accepted += a;
        throttled += t;
    }
    let window = began.elapsed().as_secs_f64();
    // A full bucket (one second's worth) plus the refill over the window.
    let bound = (RATE as f64 * (window + 1.0)).ceil() as u64;
    eprintln!(
        "cluster: plan of {RATE} msgs/s through 3 nodes for {window:.1} s: {accepted} accepted (bound {bound}), {throttled} throttled"
    );
    assert!(throttled > 0, "the plan never throttled");
    assert!(accepted <= bound, "{accepted} accepted, more than {bound}");

    // The tenant is deleted through a node that does not serve it, after a
    // delayed message of a topic it then deleted: its hidden schedule is
    // deleted where it is served (the request is forwarded there), or the
    // catalog would refuse while it remains.
    let serving = served_by(&nodes[0].url, "capped").await.expect("served");
    let names = ["node-a", "node-b", "node-c"];
    let other = &nodes[names.iter().position(|n| *n != serving).unwrap()].url;
    let admin = |method, path: &str, body| {
        let url = format!("{other}{path}");
        async move { call(method, &url, "capped", body).await }
    };
    admin(
        reqwest::Method::POST,
        "/v1/topics",
        Some(serde_json::json!({ "name": "later", "type": "delay" })),
    )
    .await
    .expect("delay topic");
    let in_an_hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_600_000;
    admin(
        reqwest::Method::POST,
        "/v1/topics/later/messages",
        Some(serde_json::json!({ "messages": [{ "body": "b", "deliver_at_ms": in_an_hour }] })),
    )
    .await
    .expect("delayed publish");
    for topic in ["orders", "later"] {
        admin(
            reqwest::Method::DELETE,
            &format!("/v1/topics/{topic}"),
            None,
        )
        .await
        .expect("topic deleted");
    }
    let deleted = client
        .delete(format!("{other}/v1/tenants/capped"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200, "{:?}", deleted.text().await);
    for n in nodes {
        n.stop();
    }
}

/// A node whose disk is lost for good: SIGKILLed, its data directory gone.
/// Nobody can adopt its WAL, so its tenants wait (nothing acknowledged is
/// given up behind an operator's back) until an operator declares the
/// node lost. Then they are served again by the survivor with every
/// message that had reached object storage, take new messages, and the
/// node id may never join again, not even with its directory back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_disk_is_lost_is_forgotten_by_an_operator() {
    let Some(url) = etcd_test_url("cluster-lost") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, b, on_a) =
        two_nodes_with_topics([dirs[0].path(), dirs[1].path()], &url, shared.path(), &[]).await;
    let on_b: Vec<String> = (0..TENANTS)
        .map(tenant)
        .filter(|t| !on_a.contains(t))
        .collect();
    assert!(!on_a.is_empty() && !on_b.is_empty(), "{on_a:?}");

    // Acknowledged and uploaded: these outlive node-b's disk.
    let mut uploaded: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in (0..TENANTS).map(tenant) {
        for n in 0..5 {
            let body = format!("{t}-uploaded-{n}");
            publish_until_acked(&a.url, &t, &body).await;
            uploaded.entry(t.clone()).or_default().push(body);
        }
    }
    let began = Instant::now();
    while upload_lag(&b.url).await > 0 {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "node-b never uploaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Acknowledged, perhaps only in node-b's WAL: these may go with it.
    let mut maybe = std::collections::BTreeSet::new();
    for t in &on_b {
        for n in 0..5 {
            let body = format!("{t}-wal-{n}");
            publish_until_acked(&a.url, t, &body).await;
            maybe.insert(body);
        }
    }
    // A consumer group of one of them names those offsets: committed at
    // each queue's end, and every message received by POP, unacknowledged.
    let watched = on_b[0].clone();
    let group = serde_json::json!({ "name": "g", "start": "earliest" });
    let post = reqwest::Method::POST;
    call(
        post.clone(),
        &format!("{}/v1/groups", a.url),
        &watched,
        Some(group),
    )
    .await
    .expect("group created");
    let mut committed = Vec::new();
    for q in 0..QUEUES {
        let queue = format!("{}/v1/topics/orders/queues/{q}", a.url);
        let info = call(reqwest::Method::GET, &queue, &watched, None)
            .await
            .unwrap();
        let end = info["end_offset"].as_u64().unwrap();
        let commit = format!("{}/v1/groups/g/offsets/orders/{q}", a.url);
        let offset = serde_json::json!({ "offset": end });
        call(reqwest::Method::PUT, &commit, &watched, Some(offset))
            .await
            .expect("offset committed");
        committed.push(end);
    }
    let received = pop_all(&a.url, &watched).await;
    assert_eq!(received.len(), 10, "{received:?}");
    assert_eq!(received.keys().filter(|b| maybe.contains(*b)).count(), 5);
    b.kill();
    let lost_dir = dirs[1].path().with_extension("lost");
    std::fs::rename(dirs[1].path(), &lost_dir).unwrap();

    // Nobody adopts it: its tenants wait rather than lose messages.
    wait_for_state(&a.url, "node-b", "expired").await;
    tokio::time::sleep(Duration::from_millis(2 * LEASE_TTL_MS)).await;
    assert!(!publish(&a.url, &on_b[0], "refused").await);
    assert_eq!(node_state(&a.url, "node-b").await, "expired");

    // Mistakes are refused, and change nothing.
    let forget = |node: &str, confirm: bool| {
        reqwest::Client::new()
            .post(format!("{}/v1/cluster/nodes/{node}/forget", a.url))
            .json(&serde_json::json!({ "lose_unuploaded_messages": confirm }))
            .send()
    };
    for (node, confirm, status, code) in [
        ("node-b", false, 400, "INVALID_ARGUMENT"),
        ("node-a", true, 409, "CONFLICT"),
        ("node-z", true, 404, "NOT_FOUND"),
    ] {
        let answer = forget(node, confirm).await.unwrap();
        assert_eq!(answer.status().as_u16(), status, "{node}");
        let error: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{node}: {error}");
    }
    assert_eq!(node_state(&a.url, "node-b").await, "expired");
    let cli = |args: &[&str]| {
        let cwd = tempfile::tempdir().unwrap();
        std::process::Command::new(common::BIN)
            .args(args)
            .env("STRATA_SERVER", &a.url)
            .env_remove("STRATA_CREDENTIALS_FILE")
            .current_dir(cwd.path())
            .output()
            .expect("strata cluster forget")
    };
    let unconfirmed = cli(&["cluster", "forget", "node-b"]);
    assert!(!unconfirmed.status.success());
    let said = String::from_utf8_lossy(&unconfirmed.stderr);
    assert!(said.contains("--lose-unuploaded-messages"), "{said}");

    // The operator declares it lost: its tenants come to node-a.
    let forgot = cli(&["cluster", "forget", "node-b", "--lose-unuploaded-messages"]);
    let said = String::from_utf8_lossy(&forgot.stdout);
    assert!(
        forgot.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&forgot.stderr)
    );
    assert!(said.contains("node node-b declared lost"), "{said}");
    let forgotten = Instant::now();
    assert_eq!(node_state(&a.url, "node-b").await, "lost");
    // Once is enough: again is refused, saying when it was done.
    let again = cli(&["cluster", "forget", "node-b", "--lose-unuploaded-messages"]);
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success(), "{said}");
    assert!(said.contains("already declared lost"), "{said}");
    settled(&a.url, &["node-a"]).await;
    let took = forgotten.elapsed();
    for (t, list) in &mut uploaded {
        let body = format!("{t}-after");
        publish_until_acked(&a.url, t, &body).await;
        list.push(body);
        list.sort();
        expect_bodies(&a.url, t, list, &maybe, "after node-b was lost").await;
    }
    // Across the gap: the group's committed offsets lead to the new
    // messages, and its POP receives get nothing but acknowledged messages,
    // the new ones included, once the old deliveries' time is up.
    let after = format!("{watched}-after");
    let mut read_after = Vec::new();
    for (q, from) in committed.iter().enumerate() {
        let mut offset = *from;
        loop {
            let path = format!(
                "{}/v1/topics/orders/queues/{q}/messages?group=g&offset={offset}",
                a.url
            );
            let got = call(reqwest::Method::GET, &path, &watched, None)
                .await
                .unwrap();
            let messages = got["messages"].as_array().unwrap();
            read_after.extend(
                messages
                    .iter()
                    .map(|m| m["body"].as_str().unwrap().to_string()),
            );
            let next = got["next_offset"].as_u64().unwrap();
            if next == got["end_offset"].as_u64().unwrap() {
                assert!(
                    next > LOST_OFFSETS_GAP,
                    "queue {q} did not go on past the gap: {got}"
                );
                break;
            }
            assert!(next > offset, "queue {q} stuck at {offset}: {got}");
            offset = next;
        }
    }
    assert_eq!(read_after, std::slice::from_ref(&after));
    // (The deliveries before the kill were visible again seconds ago.)
    let redelivered = pop_all(&a.url, &watched).await;
    // A first delivery: no record of a lost offset took it for its own.
    assert_eq!(redelivered.get(&after), Some(&1), "{redelivered:?}");
    for body in redelivered.keys() {
        assert!(
            uploaded[&watched].contains(body) || maybe.contains(body),
            "POP delivered {body}, never published"
        );
    }
    let mut kept = 0;
    for t in &on_b {
        kept += bodies(&a.url, t)
            .await
            .iter()
            .filter(|b| maybe.contains(*b))
            .count();
    }
    eprintln!(
        "cluster: node-b's tenants {on_b:?} served again {:.2} s after it was declared lost; {kept} of {} messages published after its last upload survived",
        took.as_secs_f64(),
        maybe.len()
    );

    // Its directory back, or a fresh one: node-b may not join again.
    std::fs::rename(&lost_dir, dirs[1].path()).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    for dir in [dirs[1].path(), fresh.path()] {
        let refused = refused_start(dir, &url, shared.path(), "node-b");
        assert!(refused.contains("declared lost"), "{refused}");
    }
    a.stop();
}

/// A node whose object store is not the namespace's is refused before it
/// joins the node registry: a node that joined was handed tenants, which
/// then waited for its record to expire (a black-box run saw a tenant
/// answer "moving between nodes" for seconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_another_object_store_is_refused_before_it_joins() {
    let Some(url) = etcd_test_url("cluster-wrong-store") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let a_dir = tempfile::tempdir().unwrap();
    let a = start(a_dir.path(), &url, shared.path(), "node-a");
    let other = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let root = other.path().join("objects").display().to_string();
    let refused = refused_start_with(
        b_dir.path(),
        &url,
        shared.path(),
        "node-b",
        &[("STRATA_OBJECT_STORE_ROOT", root.as_str())],
    );
    assert!(refused.contains("not this namespace's"), "{refused}");
    assert_eq!(node_state(&a.url, "node-b").await, "absent");
    assert_eq!(node_state(&a.url, "node-a").await, "live");
    a.stop();
}

/// A node declared lost while it was only paused (its directory still
/// locked by it, so nobody could adopt it) stops on its own when it runs
/// again, saying why, instead of staying up behind a shut fence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_declared_lost_while_paused_stops_when_it_resumes() {
    let Some(url) = etcd_test_url("cluster-lost-paused") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut a, b, on_a) =
        two_nodes_with_topics([dirs[0].path(), dirs[1].path()], &url, shared.path(), &[]).await;
    assert!(!on_a.is_empty(), "{on_a:?}");
    let pid = a.child.id();
    signal(pid, "-STOP");
    wait_for_state(&b.url, "node-a", "expired").await;
    // Forgetting waits two leases past the expiry.
    tokio::time::sleep(Duration::from_millis(2 * LEASE_TTL_MS + 500)).await;
    let forgot = reqwest::Client::new()
        .post(format!("{}/v1/cluster/nodes/node-a/forget", b.url))
        .json(&serde_json::json!({ "lose_unuploaded_messages": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(forgot.status().as_u16(), 200, "{:?}", forgot.text().await);
    assert_eq!(node_state(&b.url, "node-a").await, "lost");
    signal(pid, "-CONT");
    let resumed = Instant::now();
    let status = loop {
        if let Some(status) = a.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(20),
            "node-a kept running after it was declared lost"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "{status:?}");
    // Its tenants are node-b's now.
    settled(&b.url, &["node-b"]).await;
    for t in &on_a {
        publish_until_acked(&b.url, t, "after").await;
        assert_eq!(served_by(&b.url, t).await.as_deref(), Some("node-b"));
    }
    eprintln!(
        "cluster: node-a, declared lost while paused, exited {:.1} s after it resumed ({status})",
        resumed.elapsed().as_secs_f64()
    );
    b.stop();
}

/// A node gone longer than `serving.gone_node_retention_ms` is pruned
/// from the registry, with its WAL checkpoint; its data directory started
/// again takes the checkpoint back from its hand-over mark, so the records
/// its WAL still holds are not uploaded a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_pruned_from_the_registry_comes_back_without_uploading_twice() {
    let Some(url) = etcd_test_url("cluster-prune") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let prune = [
        ("STRATA_SERVING_GONE_NODE_RETENTION_MS", "6000"),
        ("STRATA_COMPACTOR_GC_GRACE_MS", "6000"),
    ];
    let paths = [dirs[0].path(), dirs[1].path()];
    let (a, b, on_a) =
        two_nodes_with_topics_and(paths, &url, shared.path(), [&prune[..], &prune[..]]).await;
    let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in (0..TENANTS).map(tenant) {
        for n in 0..10 {
            let body = format!("{t}-before-{n}");
            publish_until_acked(&a.url, &t, &body).await;
            sent.entry(t.clone()).or_default().push(body);
        }
    }
    assert!(!on_a.is_empty(), "no tenant on node-a");
    // A graceful stop uploads its WAL and leaves; the WAL's last segment
    // keeps the records.
    assert!(a.stop().success());
    assert!(!common::wal_segments(dirs[0].path()).is_empty());
    let mark: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dirs[0].path().join("handed-over")).unwrap())
            .unwrap();
    let handed_over = mark["wal_checkpoint"].as_u64().expect("checkpoint");
    assert!(handed_over > 0, "{mark}");
    let before = uploads_of_node_a(shared.path());
    assert!(!before.is_empty());
    assert_eq!(node_state(&b.url, "node-a").await, "left");
    wait_for_state(&b.url, "node-a", "absent").await;

    // Its first upload comes once it serves tenants again, whose queues
    // the old records are of.
    let late_upload = [
        prune.as_slice(),
        &[("STRATA_COMPACTOR_UPLOAD_INTERVAL_MS", "6000")],
    ]
    .concat();
    let a = start_with(dirs[0].path(), &url, shared.path(), "node-a", &late_upload);
    settled(&b.url, &["node-a", "node-b"]).await;
    for t in (0..TENANTS).map(tenant) {
        let body = format!("{t}-after");
        publish_until_acked(&b.url, &t, &body).await;
        sent.entry(t).or_default().push(body);
    }
    let began = Instant::now();
    while upload_lag(&a.url).await > 0 {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "node-a never uploaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (t, bodies_sent) in &sent {
        let mut want = bodies_sent.clone();
        want.sort();
        assert_eq!(&bodies(&a.url, t).await, &want, "{t}");
    }
    // Nothing below the hand-over position was uploaded again.
    for key in uploads_of_node_a(shared.path()).difference(&before) {
        let name = key.rsplit('/').next().unwrap_or_default();
        let from: u64 = name.split('-').next().unwrap().parse().unwrap();
        assert!(
            from >= handed_over,
            "{key} re-uploads WAL below {handed_over}"
        );
    }
    a.stop();
    b.stop();
}

/// node-a's upload objects in the shared local object store.
fn uploads_of_node_a(shared: &std::path::Path) -> std::collections::BTreeSet<String> {
    let root = shared.join("objects");
    let mut out = std::collections::BTreeSet::new();
    common::files_under(&root.join("seg/node-a"), &root, &mut out);
    out
}

/// Node-b's engine upload lag, from its own status.
async fn upload_lag(url: &str) -> u64 {
    let status: serde_json::Value = reqwest::get(format!("{url}/v1/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    status["tiering"]["upload_lag_bytes"].as_u64().expect("lag")
}

/// Every message `tenant`'s group "g" receives by POP through `url` (one
/// second invisible, not acknowledged) until a receive comes back empty,
/// with the attempt it came as.
async fn pop_all(url: &str, tenant: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    loop {
        let ask = serde_json::json!({
            "topic": "orders", "max_messages": 32, "invisible_ms": 1000, "wait_ms": 0
        });
        let path = format!("{url}/v1/groups/g/receive");
        let got = call(reqwest::Method::POST, &path, tenant, Some(ask))
            .await
            .expect("receive");
        let messages = got["messages"].as_array().expect("messages");
        if messages.is_empty() {
            return out;
        }
        out.extend(messages.iter().map(|m| {
            let body = m["message"]["body"].as_str().unwrap().to_string();
            (body, m["attempt"].as_u64().unwrap())
        }));
    }
}
