//! The official Rust SDK's SimpleConsumer on multi-queue topics. The SDK
//! puts one queue of the route in each ReceiveMessage, rotating; Strata's
//! receive spans the topic whatever queue it names, as RocketMQ's proxy
//! does. Shapes: FIFO with several message groups over several queues,
//! a delayed message on a multi-queue topic, and one message on a
//! 16-queue topic with the consumer waiting before the producer sends.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rocketmq::conf::{ClientOption, ProducerOption, SimpleConsumerOption};
use rocketmq::model::common::{FilterExpression, FilterType};
use rocketmq::model::message::MessageBuilder;
use rocketmq::{Producer, SimpleConsumer};
use strata_compat_rocketmq_rust::Strata;

fn client(strata: &Strata, key: &(String, String), long_poll: Duration) -> ClientOption {
    let mut client = ClientOption::default();
    client.set_access_url(strata.grpc.clone());
    client.set_access_key(key.0.clone());
    client.set_secret_key(key.1.clone());
    client.set_long_polling_timeout(long_poll);
    client
}

async fn producer(strata: &Strata, key: &(String, String), topic: &str) -> Producer {
    let mut po = ProducerOption::default();
    po.set_topics(vec![topic]);
    let mut p = Producer::new(po, client(strata, key, Duration::from_secs(10))).expect("producer");
    p.start().await.expect("producer starts");
    p
}

async fn consumer(
    strata: &Strata,
    key: &(String, String),
    topic: &str,
    group: &str,
    long_poll: Duration,
) -> SimpleConsumer {
    let mut co = SimpleConsumerOption::default();
    co.set_topics(vec![topic]);
    co.set_consumer_group(group);
    let mut c = SimpleConsumer::new(co, client(strata, key, long_poll)).expect("consumer");
    c.start().await.expect("consumer starts");
    c
}

fn body(m: &rocketmq::model::message::MessageView) -> String {
    String::from_utf8_lossy(m.body()).into_owned()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_over_several_queues_and_groups_arrives_once_in_order() {
    let strata = Strata::start("fifo-queues");
    let publisher = strata.tenant_key("acme", "publisher");
    let consumer_key = strata.tenant_key("acme", "consumer");
    strata.cli(&[
        "--tenant", "acme", "topic", "create", "orders", "--queues", "4", "--type", "fifo",
    ]);
    strata.cli(&["--tenant", "acme", "group", "create", "shipping"]);
    let mut p = producer(&strata, &publisher, "orders").await;
    let groups = ["alpha", "beta", "gamma"];
    for i in 0..20 {
        for g in groups {
            let m =
                MessageBuilder::fifo_message_builder("orders", format!("{g}-{i}").into_bytes(), g)
                    .build()
                    .expect("message");
            p.send(m).await.expect("send");
        }
    }
    p.shutdown().await.expect("producer shutdown");

    let mut c = consumer(
        &strata,
        &consumer_key,
        "orders",
        "shipping",
        Duration::from_secs(3),
    )
    .await;
    let all = FilterExpression::new(FilterType::Tag, "*");
    let started = Instant::now();
    let mut seen: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut total = 0;
    // The issue this answers: 21 of 60 arrived in 90 s when each receive
    // was bound to the queue the SDK named.
    while total < 60 && started.elapsed() < Duration::from_secs(60) {
        let batch = c
            .receive_with("orders", &all, 16, Duration::from_secs(30))
            .await
            .expect("receive");
        for m in &batch {
            let b = body(m);
            let (g, i) = b.split_once('-').expect("group-index body");
            seen.entry(g.to_string())
                .or_default()
                .push(i.parse().expect("index"));
            c.ack(m).await.expect("ack");
            total += 1;
        }
    }
    let took = started.elapsed();
    assert_eq!(total, 60, "every message once: {seen:?}");
    for g in groups {
        assert_eq!(seen[g], (0..20).collect::<Vec<_>>(), "group {g} in order");
    }
    eprintln!("60 FIFO messages in 3 groups over 4 queues received in {took:?}");
    c.shutdown().await.expect("consumer shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_message_on_a_multi_queue_topic_arrives_on_time() {
    let strata = Strata::start("delay-queues");
    let publisher = strata.tenant_key("acme", "publisher");
    let consumer_key = strata.tenant_key("acme", "consumer");
    strata.cli(&[
        "--tenant", "acme", "topic", "create", "later", "--queues", "4", "--type", "delay",
    ]);
    strata.cli(&["--tenant", "acme", "group", "create", "timers"]);
    let mut c = consumer(
        &strata,
        &consumer_key,
        "later",
        "timers",
        Duration::from_secs(20),
    )
    .await;
    let mut p = producer(&strata, &publisher, "later").await;
    // The SDK takes whole seconds.
    let due_ms = (now_ms() / 1000 + 4) * 1000;
    let m = MessageBuilder::delay_message_builder("later", b"tick".to_vec(), due_ms / 1000)
        .build()
        .expect("message");
    p.send(m).await.expect("send");
    p.shutdown().await.expect("producer shutdown");
    let all = FilterExpression::new(FilterType::Tag, "*");
    let mut got = Vec::new();
    while got.is_empty() && now_ms() < due_ms + 30_000 {
        got = c
            .receive_with("later", &all, 16, Duration::from_secs(30))
            .await
            .expect("receive");
    }
    let arrived_ms = now_ms();
    assert_eq!(got.len(), 1, "delivered");
    assert_eq!(body(&got[0]), "tick");
    let late_ms = arrived_ms - due_ms;
    eprintln!("delayed message received {late_ms} ms after its due time");
    assert!(late_ms >= 0, "not before its time ({late_ms} ms)");
    assert!(late_ms < 1000, "within a second of its time ({late_ms} ms)");
    c.ack(&got[0]).await.expect("ack");
    c.shutdown().await.expect("consumer shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_in_one_of_sixteen_queues_is_received_at_once() {
    let strata = Strata::start("sixteen");
    let publisher = strata.tenant_key("acme", "publisher");
    let consumer_key = strata.tenant_key("acme", "consumer");
    strata.cli(&[
        "--tenant", "acme", "topic", "create", "wide", "--queues", "16",
    ]);
    strata.cli(&["--tenant", "acme", "group", "create", "readers"]);
    let mut c = consumer(
        &strata,
        &consumer_key,
        "wide",
        "readers",
        Duration::from_secs(20),
    )
    .await;
    let mut p = producer(&strata, &publisher, "wide").await;
    let all = FilterExpression::new(FilterType::Tag, "*");
    let mut latencies = Vec::new();
    for i in 0..5 {
        // Keys spread the messages over different queues.
        let m = MessageBuilder::builder()
            .set_topic("wide")
            .set_keys(vec![format!("k{i}")])
            .set_body(format!("only-{i}").into_bytes())
            .build()
            .expect("message");
        let sent = Instant::now();
        p.send(m).await.expect("send");
        let got = c
            .receive_with("wide", &all, 16, Duration::from_secs(30))
            .await
            .expect("receive");
        latencies.push(sent.elapsed());
        assert_eq!(
            got.len(),
            1,
            "the one message, whatever queue the SDK named"
        );
        assert_eq!(body(&got[0]), format!("only-{i}"));
        c.ack(&got[0]).await.expect("ack");
    }
    eprintln!("send → receive on a 16-queue topic: {latencies:?}");
    // Each receive would otherwise have long-polled an empty queue for 20 s.
    assert!(
        latencies.iter().all(|l| *l < Duration::from_secs(10)),
        "{latencies:?}"
    );
    p.shutdown().await.expect("producer shutdown");
    c.shutdown().await.expect("consumer shutdown");
}
