//! `GET /v1/topics/{topic}/messages?id=|key=`: finding messages without
//! knowing their queue or offset.

mod common;

use common::TestServer;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_found_by_id_and_by_key_with_clear_errors() {
    let s = TestServer::start().await;
    s.post_json("/v1/topics", &json!({ "name": "orders", "queues": 4 }))
        .await
        .expect(201);
    let published = s
        .post_json(
            "/v1/topics/orders/messages",
            &json!({ "messages": [
                { "id": "order-1", "key": "customer-7", "body": "first" },
                { "key": "customer-7", "body": "second", "tag": "paid" },
                { "key": "customer-8", "body": "other" },
                { "key": "customer-7/x", "body": "another key" },
            ]}),
        )
        .await
        .expect(200);
    let second_id = published["messages"][1]["id"].as_str().unwrap().to_string();

    let found = s
        .get("/v1/topics/orders/messages?id=order-1")
        .await
        .expect(200);
    let messages = found["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["body"], "first");
    assert_eq!(messages[0]["queue"], published["messages"][0]["queue"]);
    assert_eq!(messages[0]["offset"], published["messages"][0]["offset"]);

    // A server-assigned id is found too.
    let found = s
        .get(&format!("/v1/topics/orders/messages?id={second_id}"))
        .await
        .expect(200);
    assert_eq!(found["messages"][0]["tag"], "paid");

    let found = s
        .get("/v1/topics/orders/messages?key=customer-7")
        .await
        .expect(200);
    let bodies: Vec<&str> = found["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["first", "second"]);
    assert_eq!(found["more"], false);
    let found = s
        .get("/v1/topics/orders/messages?key=customer-7&limit=1&encoding=base64")
        .await
        .expect(200);
    assert_eq!(found["messages"].as_array().unwrap().len(), 1);
    assert_eq!(found["messages"][0]["body_base64"], "Zmlyc3Q=");
    assert_eq!(found["more"], true, "the limit cut the answer");
    let none = s
        .get("/v1/topics/orders/messages?key=nobody")
        .await
        .expect(200);
    assert_eq!(none["messages"], json!([]));

    for bad in [
        "",
        "?id=a&key=b",
        "?id=",
        "?key=x&limit=0",
        "?key=x&encoding=hex",
        "?key=x&offset=3",
        // No message can have these: publishing refuses them.
        "?key=a%20b",
        "?id=a%09b",
    ] {
        s.get(&format!("/v1/topics/orders/messages{bad}"))
            .await
            .expect_error(400, "INVALID_ARGUMENT");
    }
    let long = "k".repeat(1025);
    s.get(&format!("/v1/topics/orders/messages?key={long}"))
        .await
        .expect_error(400, "INVALID_ARGUMENT");
    s.get("/v1/topics/nowhere/messages?id=order-1")
        .await
        .expect_error(404, "TOPIC_NOT_FOUND");

    // A publish-only key may not read messages back.
    s.create_tenant("shop").await;
    let publisher = s.create_key("shop", "publisher").await;
    publisher
        .get("/v1/topics/orders/messages?id=order-1")
        .await
        .expect_error(403, "PERMISSION_DENIED");
}
