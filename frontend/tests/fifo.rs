//! FIFO over HTTP: `message_group` on publish, one queue per group, and
//! in-order delivery to a consumer group, one message of a group at a time.

mod common;

use common::TestServer;
use serde_json::{Value, json};

fn bodies(received: &Value) -> Vec<String> {
    received["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"]["body"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_groups_keep_to_one_queue_and_are_delivered_in_order() {
    let s = TestServer::start().await;
    s.post_json(
        "/v1/topics",
        &json!({"name": "orders", "queues": 4, "type": "fifo"}),
    )
    .await
    .expect(201);
    s.create_topic("plain", 1).await;
    s.post_json("/v1/groups", &json!({"name": "shippers"}))
        .await
        .expect(201);

    // A FIFO message needs a group; the group is not a user property; and
    // a NORMAL topic takes no group. None of these stores anything.
    s.post_json(
        "/v1/topics/orders/messages",
        &json!({"messages": [{"body": "x"}]}),
    )
    .await
    .expect_error(400, "INVALID_ARGUMENT");
    s.post_json(
        "/v1/topics/orders/messages",
        &json!({"messages": [{"body": "x", "properties": {"__mq.group": "a"}}]}),
    )
    .await
    .expect_error(400, "INVALID_ARGUMENT");
    for group in ["", "g\u{1}"] {
        s.post_json(
            "/v1/topics/orders/messages",
            &json!({"messages": [{"body": "x", "message_group": group}]}),
        )
        .await
        .expect_error(400, "INVALID_ARGUMENT");
    }
    s.post_json(
        "/v1/topics/plain/messages",
        &json!({"messages": [{"body": "x", "message_group": "a"}]}),
    )
    .await
    .expect_error(400, "INVALID_ARGUMENT");
    let topic = s.get("/v1/topics/orders").await.expect(200);
    assert!(
        topic["queue_stats"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["end_offset"] == 0),
        "{topic}"
    );

    let published = s
        .post_json(
            "/v1/topics/orders/messages",
            &json!({"messages": [
                {"body": "a1", "message_group": "cart-a"},
                {"body": "a2", "message_group": "cart-a"},
                {"body": "a3", "message_group": "cart-a"},
            ]}),
        )
        .await
        .expect(200);
    let queue = published["messages"][0]["queue"].as_u64().unwrap();
    assert!(
        published["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["queue"].as_u64() == Some(queue))
    );
    // A raw body names its group in the query string; it joins the same queue.
    let raw = s
        .send(
            s.http
                .post(s.url("/v1/topics/orders/messages?message_group=cart-a"))
                .header("content-type", "text/plain")
                .body("a4"),
        )
        .await
        .expect(200);
    assert_eq!(raw["messages"][0]["queue"].as_u64(), Some(queue));

    // One message of the group at a time, in publish order.
    let receive =
        json!({"topic": "orders", "queue": queue, "max_messages": 10, "invisible_ms": 30000});
    let first = s
        .post_json("/v1/groups/shippers/receive", &receive)
        .await
        .expect(200);
    assert_eq!(bodies(&first), ["a1"]);
    let m = &first["messages"][0]["message"];
    assert_eq!(m["message_group"], "cart-a");
    assert!(m.get("properties").is_none(), "{m}");
    let none = s
        .post_json("/v1/groups/shippers/receive", &receive)
        .await
        .expect(200);
    assert!(bodies(&none).is_empty(), "a2 waits for a1: {none}");
    // Described, a1 is in flight and the three behind it are ready (they
    // were counted as in flight).
    let g = s.get("/v1/groups/shippers").await.expect(200);
    let row = g["receiving"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["queue"].as_u64() == Some(queue))
        .unwrap()
        .clone();
    assert_eq!(
        (&row["in_flight"], &row["ready"], &row["lag"]),
        (&json!(1), &json!(3), &json!(4)),
        "{g}"
    );
    let handle = first["messages"][0]["receipt_handle"].as_str().unwrap();
    s.post_json(
        "/v1/groups/shippers/ack",
        &json!({"topic": "orders", "receipt_handles": [handle]}),
    )
    .await
    .expect(200);
    let next = s
        .post_json("/v1/groups/shippers/receive", &receive)
        .await
        .expect(200);
    assert_eq!(bodies(&next), ["a2"]);
}
