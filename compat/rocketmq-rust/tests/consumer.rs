//! The official RocketMQ 5 Rust SDK's SimpleConsumer (crate `rocketmq`
//! 5.0.0, unchanged) against Strata: receive, redelivery after the
//! invisible duration with the attempt counted, acknowledgement, tag filters.

use std::collections::BTreeSet;
use std::time::Duration;

use rocketmq::conf::{ClientOption, ProducerOption, SimpleConsumerOption};
use rocketmq::model::common::{FilterExpression, FilterType};
use rocketmq::model::message::MessageBuilder;
use rocketmq::{Producer, SimpleConsumer};
use strata_compat_rocketmq_rust::Strata;

fn client(strata: &Strata, key: &(String, String)) -> ClientOption {
    let mut client = ClientOption::default();
    client.set_access_url(strata.grpc.clone());
    client.set_access_key(key.0.clone());
    client.set_secret_key(key.1.clone());
    // Empty receives return after this long instead of the 20 s default.
    client.set_long_polling_timeout(Duration::from_secs(3));
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_consumer_receives_gets_redeliveries_and_acks() {
    let strata = Strata::start("consumer");
    let publisher = strata.tenant_key("acme", "publisher");
    let consumer_key = strata.tenant_key("acme", "consumer");
    strata.cli(&[
        "--tenant", "acme", "topic", "create", "orders", "--queues", "1",
    ]);
    strata.cli(&["--tenant", "acme", "group", "create", "billing"]);

    let mut po = ProducerOption::default();
    po.set_topics(vec!["orders"]);
    let mut producer = Producer::new(po, client(&strata, &publisher)).expect("producer");
    producer.start().await.expect("producer starts");
    for i in 0..6 {
        let tag = if i % 2 == 0 { "even" } else { "odd" };
        let m = MessageBuilder::builder()
            .set_topic("orders")
            .set_tag(tag)
            .set_body(format!("m{i}").into_bytes())
            .build()
            .expect("message");
        producer.send(m).await.expect("send");
    }
    producer.shutdown().await.expect("producer shutdown");

    let mut co = SimpleConsumerOption::default();
    co.set_topics(vec!["orders"]);
    co.set_consumer_group("billing");
    let mut consumer = SimpleConsumer::new(co, client(&strata, &consumer_key)).expect("consumer");
    consumer.start().await.expect("consumer starts");
    let even = FilterExpression::new(FilterType::Tag, "even");
    let first = consumer
        .receive_with("orders", &even, 32, Duration::from_secs(2))
        .await
        .expect("receive");
    let bodies: BTreeSet<Vec<u8>> = first.iter().map(|m| m.body().to_vec()).collect();
    let expected: BTreeSet<Vec<u8>> = ["m0", "m2", "m4"]
        .iter()
        .map(|b| b.as_bytes().to_vec())
        .collect();
    assert_eq!(bodies, expected, "the tag filter keeps the even ones");
    assert!(first.iter().all(|m| m.delivery_attempt() == 1));

    // Not acknowledged: after the invisible duration they come back.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let again = consumer
        .receive_with("orders", &even, 32, Duration::from_secs(30))
        .await
        .expect("receive again");
    assert_eq!(again.len(), 3);
    assert!(
        again.iter().all(|m| m.delivery_attempt() == 2),
        "attempt counted"
    );
    for m in &again {
        consumer.ack(m).await.expect("ack");
    }
    // An acknowledged message is gone for good.
    let rest = consumer
        .receive_with("orders", &even, 32, Duration::from_secs(30))
        .await
        .expect("receive after ack");
    assert!(rest.is_empty(), "{} left", rest.len());
    consumer.shutdown().await.expect("consumer shutdown");
}
