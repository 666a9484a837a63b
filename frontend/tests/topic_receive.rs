//! Consumption by message over HTTP spans the topic: a receive without a
//! queue takes from every queue and its long poll wakes on any of them;
//! a group's start position and FIFO flag are set at creation, shown, and
//! validated; a receive can still pin one queue.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receive_without_a_queue_spans_the_topic() {
    let s = TestServer::start().await;
    s.create_topic("jobs", 4).await;
    let g = s
        .post_json("/v1/groups", &json!({"name": "w"}))
        .await
        .expect(201);
    assert_eq!(g["start"], "latest", "{g}");
    assert_eq!(g["fifo"], true, "{g}");

    // A consumer waiting before any producer: woken by a publish to queue 2.
    let waiting = {
        let http = s.http.clone();
        let url = s.url("/v1/groups/w/receive");
        tokio::spawn(async move {
            let started = Instant::now();
            let r = http
                .post(url)
                .json(&json!({"topic": "jobs", "wait_ms": 25_000}))
                .send()
                .await
                .unwrap();
            let v: serde_json::Value = r.json().await.unwrap();
            (v, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.publish("jobs", json!([{"body": "first", "queue": 2}]))
        .await;
    let (got, took) = waiting.await.unwrap();
    assert_eq!(got["messages"][0]["message"]["body"], "first", "{got}");
    assert_eq!(got["messages"][0]["queue"], 2);
    assert!(
        took < Duration::from_secs(15),
        "woken by the publish: {took:?}"
    );

    // Messages on every queue come back in one receive.
    let batch: Vec<_> = (0..4)
        .map(|q| json!({"body": format!("q{q}"), "queue": q}))
        .collect();
    s.publish("jobs", json!(batch)).await;
    let got = s
        .post_json("/v1/groups/w/receive", &json!({"topic": "jobs"}))
        .await
        .expect(200);
    let mut queues: Vec<u64> = got["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["queue"].as_u64().unwrap())
        .collect();
    queues.sort_unstable();
    assert_eq!(queues, [0, 1, 2, 3], "{got}");

    // Pinning a queue still works, and a queue that does not exist is refused.
    s.publish(
        "jobs",
        json!([{"body": "a", "queue": 1}, {"body": "b", "queue": 3}]),
    )
    .await;
    let pinned = s
        .post_json(
            "/v1/groups/w/receive",
            &json!({"topic": "jobs", "queue": 3}),
        )
        .await
        .expect(200);
    assert_eq!(pinned["messages"].as_array().unwrap().len(), 1, "{pinned}");
    assert_eq!(pinned["messages"][0]["message"]["body"], "b");
    s.post_json(
        "/v1/groups/w/receive",
        &json!({"topic": "jobs", "queue": 4}),
    )
    .await
    .expect_error(404, "QUEUE_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_start_position_decides_what_it_sees_first() {
    let s = TestServer::start().await;
    s.create_topic("log", 2).await;
    s.publish("log", json!([{"body": "old", "queue": 0}])).await;
    for bad in [
        json!({"name": "g", "start": "middle"}),
        json!({"name": "g", "fifo": "yes"}),
    ] {
        s.post_json("/v1/groups", &bad)
            .await
            .expect_error(400, "INVALID_JSON");
    }
    s.post_json("/v1/groups", &json!({"name": "new"}))
        .await
        .expect(201);
    let all = s
        .post_json(
            "/v1/groups",
            &json!({"name": "all", "start": "earliest", "fifo": false}),
        )
        .await
        .expect(201);
    assert_eq!(
        (&all["start"], &all["fifo"]),
        (&json!("earliest"), &json!(false))
    );
    let described = s.get("/v1/groups/all").await.expect(200);
    assert_eq!(described["start"], "earliest", "{described}");
    s.publish("log", json!([{"body": "fresh", "queue": 1}]))
        .await;
    let bodies = |v: serde_json::Value| -> Vec<String> {
        let mut b: Vec<String> = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["message"]["body"].as_str().unwrap().to_string())
            .collect();
        b.sort();
        b
    };
    let new = s
        .post_json("/v1/groups/new/receive", &json!({"topic": "log"}))
        .await
        .expect(200);
    assert_eq!(bodies(new), ["fresh"]);
    let all = s
        .post_json("/v1/groups/all/receive", &json!({"topic": "log"}))
        .await
        .expect(200);
    assert_eq!(bodies(all), ["fresh", "old"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_long_poll_does_not_take_the_next_message() {
    let s = TestServer::start().await;
    s.create_topic("jobs", 2).await;
    s.post_json("/v1/groups", &json!({"name": "w"}))
        .await
        .expect(201);
    // A consumer gives up on its long poll: its connection goes away.
    let gone = tokio::time::timeout(
        Duration::from_millis(300),
        s.http
            .post(s.url("/v1/groups/w/receive"))
            .json(&json!({"topic": "jobs", "wait_ms": 25_000}))
            .send(),
    )
    .await;
    assert!(gone.is_err(), "the long poll was still waiting");
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.publish("jobs", json!([{"body": "next"}])).await;
    // Had the abandoned receive still been waiting, it would have taken the
    // message (invisible for 30 s) and this receive would come back empty.
    let got = s
        .post_json(
            "/v1/groups/w/receive",
            &json!({"topic": "jobs", "wait_ms": 5_000}),
        )
        .await
        .expect(200);
    assert_eq!(got["messages"][0]["message"]["body"], "next", "{got}");
}

/// `GET /v1/groups/{group}` says where a group receiving by message is on
/// every queue of the topic: what is in flight, what is ready, the lag
/// (the official SDKs' groups commit no offsets, so it showed nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describing_a_group_shows_what_it_receives_by_message() {
    let s = TestServer::start().await;
    s.create_topic("work", 4).await;
    s.post_json("/v1/groups", &json!({"name": "sdk", "start": "earliest"}))
        .await
        .expect(201);
    let batch: Vec<_> = (0..12)
        .map(|i| json!({"body": format!("m{i}"), "queue": i % 4}))
        .collect();
    s.publish("work", json!(batch)).await;
    let got = s
        .post_json(
            "/v1/groups/sdk/receive",
            &json!({"topic": "work", "max_messages": 5}),
        )
        .await
        .expect(200);
    let received = got["messages"].as_array().unwrap().clone();
    assert_eq!(received.len(), 5, "{got}");
    let handle = received[0]["receipt_handle"].clone();
    s.post_json(
        "/v1/groups/sdk/ack",
        &json!({"topic": "work", "receipt_handles": [handle]}),
    )
    .await
    .expect(200);

    let g = s.get("/v1/groups/sdk").await.expect(200);
    let rows = g["receiving"].as_array().expect("receiving listed").clone();
    assert_eq!(rows.len(), 4, "every queue of the topic: {g}");
    let sum = |field: &str| rows.iter().map(|r| r[field].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("in_flight"), 4, "{g}");
    assert_eq!(sum("ready"), 7, "{g}");
    assert_eq!(sum("lag"), 11, "{g}");
    for r in &rows {
        assert_eq!(r["topic"], "work");
        let queue = r["queue"].as_u64().unwrap();
        let delivered = received
            .iter()
            .filter(|m| m["queue"].as_u64() == Some(queue))
            .count() as u64;
        match r.get("cursor").and_then(|c| c.as_u64()) {
            Some(cursor) => assert_eq!(cursor, delivered, "{r}"),
            None => assert_eq!(delivered, 0, "{r}"),
        }
        assert_eq!(r["ready"].as_u64().unwrap(), 3 - delivered, "{r}");
    }
    // Lists stay short: only a description has them.
    let listed = s.get("/v1/groups").await.expect(200);
    assert!(listed["groups"][0].get("receiving").is_none(), "{listed}");
}

/// A tag filter that can match nothing (`a|b`, a typo for `a||b`: tags hold
/// no `|`) is refused, on receive and on read, and passes over nothing:
/// accepted, it moved the group's cursor past every message undelivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_filter_that_can_match_nothing_is_refused_and_passes_over_nothing() {
    let s = TestServer::start().await;
    s.create_topic("rv", 1).await;
    let batch: Vec<_> = (0..6)
        .map(|i| json!({"body": format!("m{i}"), "tag": format!("t{}", i % 2)}))
        .collect();
    s.publish("rv", json!(batch)).await;
    s.post_json("/v1/groups", &json!({"name": "rg", "start": "earliest"}))
        .await
        .expect(201);
    for tags in ["a|b", "t0|t1", "t0 ||| t1"] {
        s.post_json(
            "/v1/groups/rg/receive",
            &json!({"topic": "rv", "tags": tags}),
        )
        .await
        .expect_error(400, "INVALID_ARGUMENT");
        s.get(&format!(
            "/v1/topics/rv/queues/0/messages?offset=0&tags={}",
            tags.replace('|', "%7C").replace(' ', "%20")
        ))
        .await
        .expect_error(400, "INVALID_ARGUMENT");
    }
    let received = s
        .post_json(
            "/v1/groups/rg/receive",
            &json!({"topic": "rv", "tags": "t0||t1", "max_messages": 10}),
        )
        .await
        .expect(200);
    assert_eq!(
        received["messages"].as_array().map(Vec::len),
        Some(6),
        "{received}"
    );
}

/// Creating a group that exists returns it when the options given match
/// (200, not 201), and refuses by name the options that differ: they were
/// kept silently, so `start: earliest` on an existing latest group did
/// nothing a caller could see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_an_existing_group_with_other_options_is_refused_by_name() {
    let s = TestServer::start().await;
    let created = s
        .post_json(
            "/v1/groups",
            &json!({"name": "g", "max_delivery_attempts": 5}),
        )
        .await
        .expect(201);
    assert_eq!(created["start"], "latest");
    let again = s
        .post_json(
            "/v1/groups",
            &json!({"name": "g", "max_delivery_attempts": 5}),
        )
        .await
        .expect(200);
    assert_eq!(again["created_ms"], created["created_ms"]);
    s.post_json("/v1/groups", &json!({"name": "g"}))
        .await
        .expect(200);
    let refused = s
        .post_json(
            "/v1/groups",
            &json!({"name": "g", "start": "earliest", "max_delivery_attempts": 5, "fifo": false}),
        )
        .await;
    refused.expect_error(409, "CONFLICT");
    let message = refused.json()["error"]["message"].to_string();
    assert!(
        message.contains("start is latest, not earliest")
            && message.contains("fifo is true, not false")
            && !message.contains("max_delivery_attempts"),
        "{message}"
    );
    let kept = s.get("/v1/groups/g").await.expect(200);
    assert_eq!(
        (
            &kept["start"],
            &kept["fifo"],
            &kept["max_delivery_attempts"]
        ),
        (&json!("latest"), &json!(true), &json!(5))
    );
}

/// A group's offsets list every queue of a topic it commits on: a queue it
/// never committed on shows where the group starts and all from there as
/// lag (listing only committed queues hid part of the backlog).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_lag_counts_the_queues_it_never_committed_on() {
    let s = TestServer::start().await;
    s.create_topic("td", 2).await;
    s.publish(
        "td",
        json!([
            {"body": "a", "queue": 0}, {"body": "b", "queue": 0}, {"body": "c", "queue": 0},
            {"body": "d", "queue": 1}, {"body": "e", "queue": 1}
        ]),
    )
    .await;
    s.post_json("/v1/groups", &json!({"name": "ge", "start": "earliest"}))
        .await
        .expect(201);
    s.put_json("/v1/groups/ge/offsets/td/0", &json!({"offset": 1}))
        .await
        .expect(200);
    let described = s.get("/v1/groups/ge").await.expect(200);
    let offsets: Vec<(u64, u64, u64, bool)> = described["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["queue"].as_u64().unwrap(),
                o["offset"].as_u64().unwrap(),
                o["lag"].as_u64().unwrap(),
                o["updated_ms"].as_i64().unwrap() > 0,
            )
        })
        .collect();
    assert_eq!(offsets, [(0, 1, 2, true), (1, 0, 2, false)], "{described}");
}
