//! The official Rust SDK's transactional producer (crate `rocketmq`
//! 5.0.0, unchanged) against Strata: commit delivers, rollback discards,
//! and an unresolved transaction is resolved through the server's
//! check-back on the producer's Telemetry stream.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rocketmq::Producer;
use rocketmq::conf::{ClientOption, ProducerOption};
use rocketmq::model::message::MessageBuilder;
use rocketmq::model::transaction::{Transaction, TransactionResolution};
use strata_compat_rocketmq_rust::Strata;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_rollback_and_check_back() {
    let strata = Strata::start("txn");
    let key = strata.tenant_key("acme", "publisher");
    strata.cli(&[
        "--tenant",
        "acme",
        "topic",
        "create",
        "tx",
        "--queues",
        "1",
        "--type",
        "transaction",
    ]);
    let mut po = ProducerOption::default();
    po.set_topics(vec!["tx"]);
    let mut co = ClientOption::default();
    co.set_access_url(strata.grpc.clone());
    co.set_access_key(key.0.clone());
    co.set_secret_key(key.1.clone());
    // The checker commits what the application recorded as done.
    let done: Arc<Mutex<HashSet<String>>> = Arc::default();
    let checked = done.clone();
    let mut producer = Producer::new_transaction_producer(
        po,
        co,
        Box::new(move |_transaction_id, message| {
            if checked.lock().unwrap().contains(message.message_id()) {
                TransactionResolution::COMMIT
            } else {
                TransactionResolution::ROLLBACK
            }
        }),
    )
    .expect("transaction producer");
    producer.start().await.expect("producer starts");

    let send = |body: &str| {
        MessageBuilder::transaction_message_builder("tx", body.as_bytes().to_vec())
            .build()
            .unwrap()
    };
    let t = producer
        .send_transaction_message(send("committed"))
        .await
        .expect("half sent");
    t.commit().await.expect("commit");
    let t = producer
        .send_transaction_message(send("rolled-back"))
        .await
        .expect("half sent");
    t.rollback().await.expect("rollback");
    // Neither committed nor rolled back by the producer: the server asks.
    let t = producer
        .send_transaction_message(send("checked"))
        .await
        .expect("half sent");
    done.lock().unwrap().insert(t.message_id().to_string());
    drop(t);

    let mut bodies = Vec::new();
    for _ in 0..150 {
        bodies = strata
            .consume_all("acme", "tx")
            .iter()
            .map(|m| m["body"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>();
        if bodies.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        bodies,
        ["committed", "checked"],
        "the check-back committed the third"
    );
    producer.shutdown().await.ok();
}
