//! The official Rust SDK against three nodes in cluster mode. Every tenant
//! is published to through every node and consumed through another: the
//! node the SDK first reaches answers QueryRoute with the tenant's node,
//! and the SDK then sends, receives and acks there. Runs on the 3-member
//! etcd `scripts/services.sh` starts; skips, saying so, without it.

use std::collections::BTreeSet;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rocketmq::conf::{ClientOption, ProducerOption, SimpleConsumerOption};
use rocketmq::model::common::{FilterExpression, FilterType};
use rocketmq::model::message::MessageBuilder;
use rocketmq::{Producer, SimpleConsumer};
use strata_compat_rocketmq_rust::{Cluster, Strata};

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
const PER_ROUND: usize = 10;

fn client(node: &Strata, key: &(String, String)) -> ClientOption {
    let mut client = ClientOption::default();
    client.set_access_url(node.grpc.clone());
    client.set_access_key(key.0.clone());
    client.set_secret_key(key.1.clone());
    client.set_long_polling_timeout(Duration::from_secs(2));
    client
}

/// Runs a CLI command through `node`, retrying for up to 20 s while the
/// tenant is still being placed (the node answers 503 meanwhile).
fn cli_until_ok(node: &Strata, args: &[&str]) {
    let began = Instant::now();
    loop {
        match node.try_cli(args) {
            Ok(_) => return,
            Err(e) if e.contains("already exists") => return,
            Err(e) => {
                assert!(
                    began.elapsed() < Duration::from_secs(20),
                    "strata {args:?}: {e}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Waits until the default tenant and `TENANTS` are placed, one or two on
/// each of the three nodes.
fn settled(cluster: &Cluster) -> Vec<(String, u64)> {
    let began = Instant::now();
    loop {
        let view = cluster.tenants_per_node();
        let placed: u64 = view.iter().map(|(_, t)| t).sum();
        if placed == TENANTS.len() as u64 + 1
            && view.len() == 3
            && view.iter().all(|(_, t)| (1..=2).contains(t))
        {
            return view;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "never settled: {view:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_takes_the_sdk_for_every_tenant() {
    let Some(cluster) = Cluster::start("cluster-sdk", 3) else {
        return;
    };
    let nodes = &cluster.nodes;
    let mut keys = Vec::new();
    for t in TENANTS {
        keys.push((
            nodes[0].tenant_key(t, "publisher"),
            nodes[0].tenant_key(t, "consumer"),
        ));
    }
    let view = settled(&cluster);
    for (i, t) in TENANTS.iter().enumerate() {
        let node = &nodes[i % nodes.len()];
        cli_until_ok(
            node,
            &["--tenant", t, "topic", "create", "orders", "--queues", "4"],
        );
        cli_until_ok(node, &["--tenant", t, "group", "create", "shipping"]);
    }

    let all = FilterExpression::new(FilterType::Tag, "*");
    for (i, t) in TENANTS.iter().enumerate() {
        let (publisher, consumer_key) = &keys[i];
        for access in 0..nodes.len() {
            // Produce through one node, consume through the next.
            let mut po = ProducerOption::default();
            po.set_topics(vec!["orders"]);
            let mut p = Producer::new(po, client(&nodes[access], publisher)).expect("producer");
            p.start().await.expect("producer starts");
            let mut sent = BTreeSet::new();
            for n in 0..PER_ROUND {
                let body = format!("{t}-{access}-{n}");
                let m = MessageBuilder::builder()
                    .set_topic("orders")
                    .set_keys(vec![body.clone()])
                    .set_body(body.clone().into_bytes())
                    .build()
                    .expect("message");
                p.send(m)
                    .await
                    .unwrap_or_else(|e| panic!("{t}: send through node {access}: {e:?}"));
                sent.insert(body);
            }
            p.shutdown().await.expect("producer shutdown");

            let reader = &nodes[(access + 1) % nodes.len()];
            let mut co = SimpleConsumerOption::default();
            co.set_topics(vec!["orders"]);
            co.set_consumer_group("shipping");
            let mut c = SimpleConsumer::new(co, client(reader, consumer_key)).expect("consumer");
            c.start().await.expect("consumer starts");
            let mut received = Vec::new();
            let began = Instant::now();
            while received.len() < PER_ROUND && began.elapsed() < Duration::from_secs(60) {
                let batch = c
                    .receive_with("orders", &all, 16, Duration::from_secs(30))
                    .await
                    .unwrap_or_else(|e| panic!("{t}: receive through {}: {e:?}", reader.grpc));
                for m in &batch {
                    c.ack(m).await.expect("ack");
                    received.push(String::from_utf8_lossy(m.body()).into_owned());
                }
            }
            c.shutdown().await.expect("consumer shutdown");
            let unique: BTreeSet<String> = received.iter().cloned().collect();
            assert_eq!(unique.len(), received.len(), "{t}: duplicates {received:?}");
            assert_eq!(unique, sent, "{t}: sent through node {access}");
        }
        // And over HTTP through a third node: every message, once.
        let stored = nodes[(i + 2) % nodes.len()].consume_all(t, "orders");
        assert_eq!(stored.len(), PER_ROUND * nodes.len(), "{t}: {stored:?}");
    }
    eprintln!("SDK through every node of 3 for tenants {TENANTS:?}: tenants per node {view:?}");
}

/// The node serving `tenant`, from the `x-strata-served-by` header of an
/// answer through `node` (asked with curl, as the bootstrap admin).
fn served_by(node: &Strata, tenant: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-D", "-", "-H"])
        .arg(format!("x-strata-tenant: {tenant}"))
        .arg("-H")
        .arg(format!("authorization: Bearer {}", node.admin_bearer()))
        .arg(format!("{}/v1/topics", node.http))
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-strata-served-by:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no x-strata-served-by in {:?}", out))
}

/// A TCP load balancer like the one a deployment puts in front of its
/// nodes: each connection goes to the next backend that accepts it.
struct LoadBalancer {
    addr: String,
    backends: Arc<Mutex<Vec<String>>>,
}

impl LoadBalancer {
    fn start() -> LoadBalancer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        let backends: Arc<Mutex<Vec<String>>> = Arc::default();
        let list = backends.clone();
        std::thread::spawn(move || {
            let mut next = 0;
            for inbound in listener.incoming().map_while(Result::ok) {
                let list = list.lock().expect("backends").clone();
                next += 1;
                let outbound = (0..list.len())
                    .find_map(|i| TcpStream::connect(&list[(next + i) % list.len()]).ok());
                if let Some(outbound) = outbound {
                    pipe(inbound, outbound);
                }
            }
        });
        LoadBalancer { addr, backends }
    }
}

/// Copies both ways until either side closes, then closes both.
fn pipe(a: TcpStream, b: TcpStream) {
    let (Ok(mut a2), Ok(mut b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let (mut a, mut b) = (a, b);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut a, &mut b2);
        let _ = b2.shutdown(Shutdown::Both);
    });
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut b, &mut a2);
        let _ = a2.shutdown(Shutdown::Both);
    });
}

/// SIGKILL of the node serving a tenant while the official SDK publishes
/// to it. The Rust SDK 5.0.0 never queries a route again once it has one,
/// so with routes naming the serving node it would send to the dead node
/// forever. With `grpc.route_addr` naming a load balancer in front of the
/// nodes, its connection is re-established through the balancer to a live
/// node, which forwards to wherever the tenant is now served: sends
/// succeed again once the tenant is placed, and every send the SDK saw
/// succeed is stored, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_behind_a_load_balancer_publishes_on_after_its_tenants_node_is_killed() {
    let balancer = LoadBalancer::start();
    let route = [("STRATA_GRPC_ROUTE_ADDR", balancer.addr.clone())];
    let Some(mut cluster) = Cluster::start_with("cluster-sdk-kill", 3, &route) else {
        return;
    };
    *balancer.backends.lock().expect("backends") =
        cluster.nodes.iter().map(|n| n.grpc.clone()).collect();
    let key = cluster.nodes[0].tenant_key("acme", "publisher");
    cli_until_ok(
        &cluster.nodes[0],
        &[
            "--tenant", "acme", "topic", "create", "orders", "--queues", "4",
        ],
    );
    let owner = served_by(&cluster.nodes[0], "acme");
    let victim = cluster
        .nodes
        .iter()
        .position(|n| n.node_id() == owner)
        .expect("the owner is a node");
    let access = (victim + 1) % cluster.nodes.len();
    let mut po = ProducerOption::default();
    po.set_topics(vec!["orders"]);
    let mut through = client(&cluster.nodes[access], &key);
    through.set_access_url(balancer.addr.clone());
    let mut p = Producer::new(po, through).expect("producer");
    p.start().await.expect("producer starts");
    let mut acked = BTreeSet::new();
    let mut killed_at = None;
    let mut recovered_after = None;
    let began = Instant::now();
    for n in 0.. {
        if n == 20 {
            cluster.nodes[victim].kill();
            killed_at = Some(Instant::now());
        }
        let body = format!("acme-{n:05}");
        let m = MessageBuilder::builder()
            .set_topic("orders")
            .set_body(body.clone().into_bytes())
            .build()
            .expect("message");
        let sent = tokio::time::timeout(Duration::from_secs(15), p.send(m)).await;
        if let Ok(Ok(_)) = sent {
            acked.insert(body);
            if let Some(at) = killed_at
                && recovered_after.is_none()
            {
                recovered_after = Some(at.elapsed());
            }
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if recovered_after.is_some() && acked.len() >= 40 {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "the SDK never published again after node {owner} was killed"
        );
    }
    let _ = p.shutdown().await;
    let reader = &cluster.nodes[access];
    let stored: Vec<String> = reader
        .consume_all("acme", "orders")
        .iter()
        .map(|m| m["body"].as_str().unwrap_or_default().to_string())
        .collect();
    let unique: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(unique.len(), stored.len(), "stored twice: {stored:?}");
    let missing: Vec<&String> = acked.difference(&unique).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    eprintln!(
        "official SDK behind a load balancer: node {owner} SIGKILLed; sends succeeded again {:.1} s later; {} acknowledged, all stored once",
        recovered_after.map_or(0.0, |d| d.as_secs_f64()),
        acked.len()
    );
}
