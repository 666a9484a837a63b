//! The official Rust SDK against three nodes in cluster mode. Every tenant
//! is published to through every node and consumed through another: the
//! node the SDK first reaches answers QueryRoute with the tenant's node,
//! and the SDK then sends, receives and acks there. Runs on the 3-member
//! etcd `scripts/services.sh` starts; skips, saying so, without it.

use std::collections::BTreeSet;
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
