//! A consumer group's retry policy over HTTP: set at creation, shown on
//! the group, validated, and applied to redeliveries and dead-lettering.

mod common;

use common::TestServer;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_policies_are_validated_shown_and_applied() {
    let s = TestServer::start().await;
    s.create_topic("jobs", 1).await;
    for bad in [
        json!({"name": "g", "max_delivery_attempts": 0}),
        json!({"name": "g", "max_delivery_attempts": 1001}),
        json!({"name": "g", "retry_initial_backoff_ms": 5000, "retry_max_backoff_ms": 10}),
        json!({"name": "g", "retry_initial_backoff_ms": 43_200_001u64}),
    ] {
        s.post_json("/v1/groups", &bad)
            .await
            .expect_error(400, "INVALID_ARGUMENT");
    }
    let defaults = s
        .post_json("/v1/groups", &json!({"name": "plain"}))
        .await
        .expect(201);
    assert_eq!(defaults["max_delivery_attempts"], 16);
    assert_eq!(defaults["retry_initial_backoff_ms"], 0);
    let created = s
        .post_json(
            "/v1/groups",
            &json!({"name": "careful", "max_delivery_attempts": 2, "retry_initial_backoff_ms": 2000}),
        )
        .await
        .expect(201);
    assert_eq!(created["max_delivery_attempts"], 2);
    assert_eq!(
        created["retry_max_backoff_ms"], 2000,
        "cap defaults to the initial wait"
    );
    let described = s.get("/v1/groups/careful").await.expect(200);
    assert_eq!(described["retry_initial_backoff_ms"], 2000);

    s.publish("jobs", json!([{"body": "flaky"}])).await;
    let receive = |wait_ms: u64| json!({"topic": "jobs", "queue": 0, "invisible_ms": 1000, "wait_ms": wait_ms});
    let first = s
        .post_json("/v1/groups/careful/receive", &receive(0))
        .await
        .expect(200);
    assert_eq!(first["messages"][0]["attempt"], 1);
    // Invisible for 1 s, then 2 s of backoff: nothing within 2.5 s.
    let early = s
        .post_json("/v1/groups/careful/receive", &receive(2500))
        .await
        .expect(200);
    assert_eq!(
        early["messages"],
        json!([]),
        "redelivered before its backoff"
    );
    let second = s
        .post_json("/v1/groups/careful/receive", &receive(10_000))
        .await
        .expect(200);
    assert_eq!(second["messages"][0]["attempt"], 2);
    // That was the last attempt: next it goes to the group's DLQ.
    let none = s
        .post_json("/v1/groups/careful/receive", &receive(4000))
        .await
        .expect(200);
    assert_eq!(none["messages"], json!([]));
    let mut moved = false;
    for _ in 0..50 {
        let r = s.get("/v1/topics/careful-DLQ/queues/0/messages").await;
        if r.status == 200 && r.json()["messages"][0]["body"] == "flaky" {
            moved = true;
            break;
        }
        s.post_json("/v1/groups/careful/receive", &receive(500))
            .await
            .expect(200);
    }
    assert!(moved, "the message reached careful-DLQ");
}
