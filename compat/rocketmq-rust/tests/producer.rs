//! The official RocketMQ 5 Rust SDK (crate `rocketmq` 5.0.0), unchanged,
//! publishing to Strata: normal and FIFO messages arrive with their tag,
//! keys and properties; an unknown topic fails the producer's start.

use std::collections::HashMap;

use rocketmq::Producer;
use rocketmq::conf::{ClientOption, ProducerOption};
use rocketmq::model::message::MessageBuilder;
use strata_compat_rocketmq_rust::Strata;

fn options(strata: &Strata, key: &(String, String), topic: &str) -> (ProducerOption, ClientOption) {
    let mut producer = ProducerOption::default();
    producer.set_topics(vec![topic]);
    let mut client = ClientOption::default();
    client.set_access_url(strata.grpc.clone());
    client.set_access_key(key.0.clone());
    client.set_secret_key(key.1.clone());
    (producer, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_messages_sent_by_the_official_sdk_are_stored() {
    let strata = Strata::start("normal");
    let key = strata.tenant_key("acme", "publisher");
    strata.cli(&[
        "--tenant", "acme", "topic", "create", "orders", "--queues", "4",
    ]);
    let (po, co) = options(&strata, &key, "orders");
    let mut producer = Producer::new(po, co).expect("producer options");
    producer
        .start()
        .await
        .expect("producer starts against Strata");
    let mut sent = HashMap::new();
    for i in 0..20 {
        let props: HashMap<String, String> = [("n".to_string(), i.to_string())].into();
        let message = MessageBuilder::builder()
            .set_topic("orders")
            .set_tag("TagA")
            .set_keys(vec![format!("key-{i}")])
            .set_properties(props)
            .set_body(format!("hello {i}").into_bytes())
            .build()
            .expect("message");
        let receipt = producer.send(message).await.expect("send succeeds");
        sent.insert(receipt.message_id().to_string(), i);
    }
    producer.shutdown().await.expect("shutdown");
    assert_eq!(sent.len(), 20, "message ids are unique");

    let stored = strata.consume_all("acme", "orders");
    assert_eq!(stored.len(), 20, "{stored:?}");
    for m in &stored {
        let msg = m;
        let id = msg["id"].as_str().expect("id");
        let i = sent
            .get(id)
            .unwrap_or_else(|| panic!("unexpected message {msg}"));
        assert_eq!(msg["body"], format!("hello {i}"));
        assert_eq!(msg["tag"], "TagA");
        assert_eq!(msg["key"], format!("key-{i}"));
        assert_eq!(msg["properties"]["n"], i.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_messages_of_one_group_land_in_one_queue_in_order() {
    let strata = Strata::start("fifo");
    let key = strata.tenant_key("acme", "publisher");
    strata.cli(&[
        "--tenant", "acme", "topic", "create", "fifo", "--queues", "4", "--type", "fifo",
    ]);
    let (po, co) = options(&strata, &key, "fifo");
    let mut producer = Producer::new(po, co).expect("producer options");
    producer.start().await.expect("producer starts");
    for i in 0..10 {
        let message = MessageBuilder::fifo_message_builder(
            "fifo",
            format!("step {i}").into_bytes(),
            "order-42",
        )
        .build()
        .expect("message");
        producer.send(message).await.expect("send succeeds");
    }
    producer.shutdown().await.expect("shutdown");
    let stored = strata.consume_all("acme", "fifo");
    assert_eq!(stored.len(), 10);
    let queue = &stored[0]["queue"];
    for (i, m) in stored.iter().enumerate() {
        assert_eq!(&m["queue"], queue, "one group, one queue");
        assert_eq!(m["body"], format!("step {i}"));
        assert_eq!(m["message_group"], "order-42");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_topic_fails_the_producer_start() {
    let strata = Strata::start("unknown");
    let key = strata.tenant_key("acme", "publisher");
    let (po, co) = options(&strata, &key, "missing");
    let mut producer = Producer::new(po, co).expect("producer options");
    let started = tokio::time::timeout(std::time::Duration::from_secs(30), producer.start()).await;
    assert!(matches!(started, Ok(Err(_))), "start must fail, not hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_messages_arrive_at_their_time() {
    let strata = Strata::start("delay");
    let key = strata.tenant_key("acme", "publisher");
    strata.cli(&[
        "--tenant", "acme", "topic", "create", "later", "--queues", "1", "--type", "delay",
    ]);
    let (po, co) = options(&strata, &key, "later");
    let mut producer = Producer::new(po, co).expect("producer options");
    producer.start().await.expect("producer starts");
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // The SDK takes whole seconds.
    let at = now_s + 2;
    let message = MessageBuilder::delay_message_builder("later", b"tick".to_vec(), at)
        .build()
        .expect("message");
    producer.send(message).await.expect("send succeeds");
    producer.shutdown().await.expect("shutdown");
    assert!(
        strata.consume_all("acme", "later").is_empty(),
        "not before its time"
    );
    let mut got = Vec::new();
    for _ in 0..100 {
        got = strata.consume_all("acme", "later");
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(got.len(), 1, "delivered");
    assert_eq!(got[0]["body"], "tick");
    let stored_ms = got[0]["timestamp_ms"].as_i64().unwrap();
    assert!(
        stored_ms >= at * 1000,
        "delivered at {stored_ms}, due {}",
        at * 1000
    );
}
