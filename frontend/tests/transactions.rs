//! Transactions over HTTP: a half message is invisible until committed,
//! discarded on rollback, listed while open (also after a restart), and
//! every misuse gets a clear error that changes nothing.

mod common;

use common::TestServer;
use serde_json::{Value, json};

const TXNS: &str = "/v1/topics/payments/transactions";

async fn restart(s: TestServer) -> TestServer {
    let config = s.config.clone();
    let dir = s.shutdown().await;
    TestServer::start_in(dir, config).await
}

async fn stored(s: &TestServer) -> u64 {
    let topic = s.get("/v1/topics/payments").await.expect(200);
    topic["queue_stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["end_offset"].as_u64().unwrap())
        .sum()
}

async fn open_ids(s: &TestServer) -> Vec<String> {
    let open: Value = s.get(TXNS).await.expect(200);
    open["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["transaction_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_messages_appear_on_commit_vanish_on_rollback_and_survive_a_restart() {
    let s = TestServer::start().await;
    s.post_json(
        "/v1/topics",
        &json!({"name": "payments", "queues": 2, "type": "transaction"}),
    )
    .await
    .expect(201);
    s.create_topic("plain", 1).await;

    let began = s
        .post_json(TXNS, &json!({"body": "pay-1", "key": "order-1"}))
        .await
        .expect(201);
    let t1 = began["transaction_id"].as_str().unwrap().to_string();
    let id1 = began["message_id"].as_str().unwrap().to_string();
    assert_eq!(stored(&s).await, 0, "a half message is in no queue");
    let found = s
        .get(&format!("/v1/topics/payments/messages?id={id1}"))
        .await
        .expect(200);
    assert_eq!(found["messages"], json!([]));
    assert_eq!(open_ids(&s).await, [t1.as_str()]);

    let committed = s
        .post_json(&format!("{TXNS}/{t1}/commit"), &json!({}))
        .await
        .expect(200);
    assert_eq!(committed["outcome"], "committed");
    assert_eq!(stored(&s).await, 1);
    let found = s
        .get(&format!("/v1/topics/payments/messages?id={id1}"))
        .await
        .expect(200);
    assert_eq!(found["messages"][0]["body"], "pay-1");
    assert_eq!(found["messages"][0]["key"], "order-1");
    assert!(open_ids(&s).await.is_empty());
    // Ended is ended: neither outcome applies again.
    for action in ["commit", "rollback"] {
        s.post_json(&format!("{TXNS}/{t1}/{action}"), &json!({}))
            .await
            .expect_error(400, "INVALID_ARGUMENT");
    }

    let t2 = s
        .post_json(TXNS, &json!({"body": "pay-2"}))
        .await
        .expect(201)["transaction_id"]
        .as_str()
        .unwrap()
        .to_string();
    let rolled = s
        .post_json(&format!("{TXNS}/{t2}/rollback"), &json!({}))
        .await
        .expect(200);
    assert_eq!(rolled["outcome"], "rolled_back");
    s.post_json(&format!("{TXNS}/{t2}/commit"), &json!({}))
        .await
        .expect_error(400, "INVALID_ARGUMENT");
    assert_eq!(stored(&s).await, 1, "a rolled-back message never appears");

    // An open transaction outlives a restart; its producer finds it by
    // listing and resolves it.
    let t3 = s
        .post_json(TXNS, &json!({"body": "pay-3"}))
        .await
        .expect(201)["transaction_id"]
        .as_str()
        .unwrap()
        .to_string();
    let s = restart(s).await;
    assert_eq!(open_ids(&s).await, [t3.as_str()]);
    s.post_json(&format!("{TXNS}/{t3}/commit"), &json!({}))
        .await
        .expect(200);
    assert_eq!(stored(&s).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_misuse_is_refused_and_changes_nothing() {
    let s = TestServer::start().await;
    s.post_json(
        "/v1/topics",
        &json!({"name": "payments", "queues": 1, "type": "transaction"}),
    )
    .await
    .expect(201);
    s.create_topic("plain", 1).await;
    for (path, body) in [
        ("/v1/topics/plain/transactions", json!({"body": "x"})),
        (TXNS, json!({"body": "x", "deliver_at_ms": 1})),
        (TXNS, json!({"body": "x", "message_group": "g"})),
        (
            TXNS,
            json!({"body": "x", "properties": {"__mq.txn_topic": "plain"}}),
        ),
        (TXNS, json!({"body": "x", "queue": 7})),
    ] {
        let r = s.post_json(path, &body).await;
        assert!(
            r.status == 400 || r.status == 404,
            "{path} {body}: {}",
            r.text()
        );
    }
    s.post_json(TXNS, &json!({"bodyy": "x"}))
        .await
        .expect_error(400, "INVALID_JSON");
    s.post_json("/v1/topics/nowhere/transactions", &json!({"body": "x"}))
        .await
        .expect_error(404, "TOPIC_NOT_FOUND");
    assert!(open_ids(&s).await.is_empty(), "nothing was opened");

    let t = s.post_json(TXNS, &json!({"body": "x"})).await.expect(201)["transaction_id"]
        .as_str()
        .unwrap()
        .to_string();
    for bad in ["not-a-real-one", "bad!id", &"a".repeat(65)] {
        s.post_json(&format!("{TXNS}/{bad}/commit"), &json!({}))
            .await
            .expect_error(400, "INVALID_ARGUMENT");
    }
    // The id belongs to another topic.
    s.post_json(
        "/v1/topics",
        &json!({"name": "refunds", "queues": 1, "type": "transaction"}),
    )
    .await
    .expect(201);
    s.post_json(
        &format!("/v1/topics/refunds/transactions/{t}/commit"),
        &json!({}),
    )
    .await
    .expect_error(400, "INVALID_ARGUMENT");
    // Consumers may not begin or end transactions; publishers may.
    let consumer = s.create_key("default", "consumer").await;
    consumer
        .post_json(TXNS, &json!({"body": "x"}))
        .await
        .expect_error(403, "PERMISSION_DENIED");
    consumer
        .post_json(&format!("{TXNS}/{t}/commit"), &json!({}))
        .await
        .expect_error(403, "PERMISSION_DENIED");
    assert_eq!(
        open_ids(&s).await,
        [t.as_str()],
        "still open after all that"
    );
    let publisher = s.create_key("default", "publisher").await;
    publisher
        .post_json(&format!("{TXNS}/{t}/commit"), &json!({}))
        .await
        .expect(200);
}
