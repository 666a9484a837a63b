//! The HTTP API's happy paths against a real server: topics, publishing
//! (JSON, base64, raw bodies), reading, long polls, consumer groups and the
//! operational endpoints.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use common::{TestServer, b64, unb64};
use serde_json::{Value, json};
use strata_frontend::config::{format_retention, parse_retention};
use strata_frontend::http::topics::CreateTopic;

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} array in {list}"))
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_create_list_describe_delete() {
    let s = TestServer::start().await;

    let created = s
        .post_json(
            "/v1/topics",
            &json!({"name": "orders", "queues": 3, "type": "fifo", "retention": "7days"}),
        )
        .await
        .expect(201);
    assert_eq!(created["name"], "orders");
    assert_eq!(created["queues"], 3);
    assert_eq!(created["type"], "fifo");
    assert_eq!(created["retention"], "7days");
    assert!(created["id"].is_u64(), "{created}");
    assert!(created["created_ms"].as_i64().unwrap() > 0, "{created}");

    // Defaults: one queue, normal, the server's default retention.
    let plain = s
        .post_json("/v1/topics", &json!({"name": "plain"}))
        .await
        .expect(201);
    assert_eq!(plain["queues"], 1);
    assert_eq!(plain["type"], "normal");
    let default_retention =
        format_retention(&parse_retention(&s.config.retention.default).unwrap());
    assert_eq!(plain["retention"], json!(default_retention));
    assert_ne!(plain["id"], created["id"]);

    // The typed client sees the same API.
    let forever = s
        .client()
        .create_topic(&CreateTopic {
            name: "forever".into(),
            queues: 2,
            message_type: None,
            retention: Some("unlimited".into()),
            retention_bytes: None,
        })
        .await
        .unwrap();
    assert_eq!(forever.retention, "unlimited");
    assert_eq!(forever.queues, 2);

    let list = s.get("/v1/topics").await.expect(200);
    assert_eq!(names(&list, "topics"), ["forever", "orders", "plain"]);
    let listed = &list["topics"][1];
    assert_eq!(listed, &created, "list shows the same fields as create");

    let described = s.get("/v1/topics/orders").await.expect(200);
    for field in ["name", "id", "queues", "type", "retention", "created_ms"] {
        assert_eq!(described[field], created[field], "{field}");
    }
    let stats = described["queue_stats"].as_array().expect("queue_stats");
    assert_eq!(stats.len(), 3);
    for (i, q) in stats.iter().enumerate() {
        assert_eq!(q["queue"], i as u64);
        assert_eq!(q["first_offset"], 0);
        assert_eq!(q["end_offset"], 0);
        assert_eq!(q["messages"], 0);
        assert_eq!(q["bytes"], 0);
        assert_eq!(q["batches"], 0);
        assert!(q["oldest_timestamp_ms"].is_null());
        assert_eq!(q["owner_node"], json!(s.config.node_id));
    }

    let deleted = s.delete("/v1/topics/orders").await.expect(200);
    assert_eq!(deleted["name"], "orders");
    assert_eq!(deleted["id"], created["id"]);
    s.get("/v1/topics/orders")
        .await
        .expect_error(404, "TOPIC_NOT_FOUND");
    s.delete("/v1/topics/orders")
        .await
        .expect_error(404, "TOPIC_NOT_FOUND");
    s.post_json(
        "/v1/topics/orders/messages",
        &json!({"messages": [{"body": "x"}]}),
    )
    .await
    .expect_error(404, "TOPIC_NOT_FOUND");
    let list = s.get("/v1/topics").await.expect(200);
    assert_eq!(names(&list, "topics"), ["forever", "plain"]);

    // The name is free again.
    let again = s.create_topic("orders", 1).await;
    assert_ne!(again["id"], created["id"]);
    assert_eq!(s.queue("orders", 0).await["end_offset"], 0);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_json_and_read_by_offset() {
    let s = TestServer::start().await;
    s.create_topic("events", 2).await;

    let single = s
        .publish(
            "events",
            json!([{
                "body": "hello",
                "key": "k1",
                "tag": "greeting",
                "properties": {"a": "1", "b": "two"},
                "queue": 1
            }]),
        )
        .await;
    assert_eq!(single.len(), 1);
    assert_eq!(single[0]["queue"], 1);
    assert_eq!(single[0]["offset"], 0);
    let generated = single[0]["id"].as_str().unwrap();
    assert_eq!(generated.len(), 32, "{generated}");
    assert!(generated.chars().all(|c| c.is_ascii_hexdigit()));

    let batch: Vec<Value> = (0..5)
        .map(|i| {
            json!({
                "id": format!("m-{i}"),
                "body": format!("body {i}"),
                "tag": format!("t{i}"),
                "queue": 0
            })
        })
        .collect();
    let published = s.publish("events", Value::Array(batch)).await;
    assert_eq!(published.len(), 5);
    for (i, p) in published.iter().enumerate() {
        assert_eq!(p["queue"], 0);
        assert_eq!(p["offset"], i as u64, "offsets follow request order");
        assert_eq!(p["id"], json!(format!("m-{i}")));
    }

    // Read with a limit, then the rest, then at the end.
    let r = s.read("events", 0, "offset=0&limit=2").await;
    assert_eq!(r["messages"].as_array().unwrap().len(), 2);
    assert_eq!(r["next_offset"], 2);
    assert_eq!(r["first_offset"], 0);
    assert_eq!(r["end_offset"], 5);
    assert_eq!(r["messages"][0]["offset"], 0);
    assert_eq!(r["messages"][0]["body"], "body 0");
    assert_eq!(r["messages"][0]["id"], "m-0");
    assert_eq!(r["messages"][0]["tag"], "t0");
    assert!(r["messages"][0]["key"].is_null());
    assert!(r["messages"][0]["timestamp_ms"].as_i64().unwrap() > 0);
    assert!(r["messages"][0].get("body_base64").is_none());

    let r = s.read("events", 0, "offset=2&limit=100").await;
    let bodies: Vec<&str> = r["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["body 2", "body 3", "body 4"]);
    assert_eq!(r["next_offset"], 5);

    // A tag filter keeps what it names; the limit counts what was read,
    // and the next offset is past it, matching or not.
    let r = s
        .read("events", 0, "offset=0&limit=4&tags=t1%20||%20t3")
        .await;
    let ids: Vec<&str> = r["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["m-1", "m-3"]);
    assert_eq!(r["next_offset"], 4);
    let r = s.read("events", 0, "offset=0&tags=nothing").await;
    assert_eq!((&r["messages"], &r["next_offset"]), (&json!([]), &json!(5)));
    assert_eq!(
        s.read("events", 0, "offset=0&tags=*").await["next_offset"],
        5
    );
    s.get("/v1/topics/events/queues/0/messages?tags=a%20b")
        .await
        .expect_error(400, "INVALID_ARGUMENT");

    let r = s.read("events", 0, "offset=5").await;
    assert_eq!(r["messages"], json!([]));
    assert_eq!(r["next_offset"], 5);
    assert_eq!(r["end_offset"], 5);

    // No offset: from the first retained one.
    let r = s.read("events", 0, "").await;
    assert_eq!(r["messages"].as_array().unwrap().len(), 5);

    let r = s.read("events", 1, "offset=0").await;
    let m = &r["messages"][0];
    assert_eq!(m["body"], "hello");
    assert_eq!(m["key"], "k1");
    assert_eq!(m["tag"], "greeting");
    assert_eq!(m["properties"], json!({"a": "1", "b": "two"}));
    assert_eq!(m["id"], json!(generated));

    let q = s.queue("events", 0).await;
    assert_eq!(q["queue"], 0);
    assert_eq!(q["first_offset"], 0);
    assert_eq!(q["end_offset"], 5);
    assert_eq!(q["messages"], 5);
    assert!(q["bytes"].as_u64().unwrap() > 0, "{q}");
    assert!(q["batches"].as_u64().unwrap() >= 1, "{q}");
    assert!(q["oldest_timestamp_ms"].as_i64().unwrap() > 0, "{q}");
    assert!(q["newest_timestamp_ms"].as_i64().unwrap() > 0, "{q}");

    let described = s.get("/v1/topics/events").await.expect(200);
    assert_eq!(described["queue_stats"][0]["end_offset"], 5);
    assert_eq!(described["queue_stats"][1]["end_offset"], 1);

    // One key always lands on one queue.
    let keyed = s
        .publish(
            "events",
            json!([{"body": "a", "key": "same"}, {"body": "b", "key": "same"}, {"body": "c", "key": "same"}]),
        )
        .await;
    assert!(
        keyed.iter().all(|p| p["queue"] == keyed[0]["queue"]),
        "{keyed:?}"
    );

    // The typed client reads the same data.
    let typed = s.client().read("events", 0, 1, 2, 0).await.unwrap();
    assert_eq!(typed.messages.len(), 2);
    assert_eq!(typed.messages[0].body.as_deref(), Some("body 1"));
    assert_eq!(typed.next_offset, 3);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_bodies_round_trip_through_base64() {
    let s = TestServer::start().await;
    s.create_topic("bin", 1).await;

    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let bodies: Vec<Vec<u8>> = vec![
        vec![0x00],
        vec![0xFF],
        vec![0x00, 0xFF, 0x00, 0xFE, 0x80],
        all_bytes,
        "héllo wörld ✓".as_bytes().to_vec(),
        Vec::new(),
    ];
    let messages: Vec<Value> = bodies
        .iter()
        .map(|b| json!({"body_base64": b64(b), "queue": 0}))
        .collect();
    let published = s.publish("bin", Value::Array(messages)).await;
    assert_eq!(published.len(), bodies.len());

    let r = s.read("bin", 0, "offset=0&encoding=base64").await;
    let got = r["messages"].as_array().unwrap();
    assert_eq!(got.len(), bodies.len());
    for (m, want) in got.iter().zip(&bodies) {
        assert!(
            m.get("body").is_none(),
            "encoding=base64 never sends text: {m}"
        );
        assert_eq!(&unb64(m["body_base64"].as_str().unwrap()), want);
    }

    for query in ["offset=0", "offset=0&encoding=auto"] {
        let r = s.read("bin", 0, query).await;
        let got = r["messages"].as_array().unwrap();
        assert_eq!(got.len(), bodies.len());
        for (m, want) in got.iter().zip(&bodies) {
            match std::str::from_utf8(want) {
                Ok(text) => {
                    assert_eq!(m["body"], json!(text), "UTF-8 comes back as text");
                    assert!(m.get("body_base64").is_none(), "{m}");
                }
                Err(_) => {
                    assert!(m.get("body").is_none(), "binary is never text: {m}");
                    assert_eq!(&unb64(m["body_base64"].as_str().unwrap()), want);
                }
            }
        }
    }
    s.shutdown().await;
}

/// Replies of up to 64 KiB of bodies are encoded where the request is
/// served, larger ones on the cold-read runtime: both give the same JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_and_large_message_replies_encode_alike() {
    let s = TestServer::start().await;
    s.create_topic("big", 1).await;
    // 100 bodies of 2 KiB, half of them binary.
    let bodies: Vec<Vec<u8>> = (0..100u32)
        .map(|i| {
            let fill = if i % 2 == 0 {
                b'a' + (i % 26) as u8
            } else {
                0xF0
            };
            let mut body = vec![fill; 2048];
            body[..4].copy_from_slice(&i.to_be_bytes());
            body
        })
        .collect();
    let messages: Vec<Value> = bodies
        .iter()
        .map(|b| json!({"body_base64": b64(b), "queue": 0, "key": "k"}))
        .collect();
    assert_eq!(s.publish("big", Value::Array(messages)).await.len(), 100);
    s.post_json("/v1/groups", &json!({"name": "g", "start": "earliest"}))
        .await
        .expect(201);

    // 10 bodies (20 KiB) inline; all 100 (200 KiB) on the cold runtime.
    let cpu_tasks = || s.cold_cpu_tasks();
    let before = cpu_tasks().await;
    let small = s.read("big", 0, "offset=0&limit=10").await;
    assert_eq!(cpu_tasks().await, before, "a small reply left the worker");
    let large = s.read("big", 0, "offset=0&limit=100").await;
    assert_eq!(cpu_tasks().await, before + 1, "a large reply stayed inline");
    let (small, read) = (
        small["messages"].as_array().unwrap(),
        large["messages"].as_array().unwrap().clone(),
    );
    assert_eq!((small.len(), read.len()), (10, 100));
    assert_eq!(small[..], read[..10]);
    for (m, want) in read.iter().zip(&bodies) {
        let got = match m.get("body") {
            Some(text) => text.as_str().unwrap().as_bytes().to_vec(),
            None => unb64(m["body_base64"].as_str().unwrap()),
        };
        assert_eq!(&got, want);
    }

    // Lookups choose alike: 10 in place, 100 on the pool, the same JSON.
    let found = |limit: u32| {
        let s = &s;
        async move {
            s.get(&format!("/v1/topics/big/messages?key=k&limit={limit}"))
                .await
                .expect(200)["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let mut m = m.clone();
                    m.as_object_mut().unwrap().remove("queue");
                    m
                })
                .collect::<Vec<_>>()
        }
    };
    let small = found(10).await;
    assert_eq!(
        cpu_tasks().await,
        before + 1,
        "a small lookup left the worker"
    );
    let large = found(100).await;
    assert_eq!(
        cpu_tasks().await,
        before + 2,
        "a large lookup stayed inline"
    );
    assert_eq!((small, large), (read[..10].to_vec(), read.clone()));
    // Receives stay inline whatever their size: their deliveries are
    // committed before the reply is built (see `http::pop::receive`).
    let receive = |max: u32| {
        let s = &s;
        async move {
            let body = json!({"topic": "big", "max_messages": max, "invisible_ms": 60_000});
            s.post_json("/v1/groups/g/receive", &body).await.expect(200)["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["message"].clone())
                .collect::<Vec<_>>()
        }
    };
    let mut received = receive(10).await;
    assert_eq!(received.len(), 10);
    received.extend(receive(100).await);
    assert_eq!(cpu_tasks().await, before + 2, "a receive left the worker");
    assert_eq!(received, read, "received as read");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_bodies_octet_stream_and_text_plain() {
    let s = TestServer::start().await;
    s.create_topic("raw", 2).await;

    let binary = vec![0x00, 0x01, 0xFF, 0x80, 0x00, b'x'];
    let r = s
        .post_raw(
            "/v1/topics/raw/messages?key=rk&tag=rt&queue=1&id=my-id",
            Some("application/octet-stream"),
            binary.clone(),
        )
        .await
        .expect(200);
    assert_eq!(
        r["messages"],
        json!([{"queue": 1, "offset": 0, "id": "my-id"}])
    );

    let text = "plain text ✓\nline two";
    let r = s
        .post_raw(
            "/v1/topics/raw/messages?queue=0&tag=txt",
            Some("text/plain; charset=utf-8"),
            text,
        )
        .await
        .expect(200);
    assert_eq!(r["messages"][0]["queue"], 0);
    assert_eq!(r["messages"][0]["offset"], 0);

    // Media types are case-insensitive.
    let r = s
        .post_raw(
            "/v1/topics/raw/messages?queue=0",
            Some("Application/Octet-Stream"),
            vec![0xFEu8, 0xFF],
        )
        .await
        .expect(200);
    assert_eq!(r["messages"][0]["offset"], 1);

    let r = s.read("raw", 1, "offset=0&encoding=base64").await;
    let m = &r["messages"][0];
    assert_eq!(unb64(m["body_base64"].as_str().unwrap()), binary);
    assert_eq!(m["key"], "rk");
    assert_eq!(m["tag"], "rt");
    assert_eq!(m["id"], "my-id");
    assert!(m.get("properties").is_none() || m["properties"] == json!({}));

    let r = s.read("raw", 0, "offset=0").await;
    assert_eq!(r["messages"][0]["body"], json!(text));
    assert_eq!(r["messages"][0]["tag"], "txt");
    assert_eq!(
        unb64(r["messages"][1]["body_base64"].as_str().unwrap()),
        [0xFE, 0xFF]
    );
    assert_eq!(r["end_offset"], 2);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_returns_a_message_published_while_waiting() {
    let s = TestServer::start().await;
    s.create_topic("poll", 1).await;
    s.publish("poll", json!([{"body": "first"}])).await;

    let http = s.http.clone();
    let url = s.url("/v1/topics/poll/queues/0/messages?offset=1&wait_ms=20000");
    let waiting =
        tokio::spawn(async move { common::read_resp(http.get(url).send().await.unwrap()).await });
    // Give the read a chance to start waiting; correctness does not depend
    // on it (an early publish is simply read at once).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let p = s
        .publish("poll", json!([{"body": "late", "key": "k"}]))
        .await;
    assert_eq!(p[0]["offset"], 1);

    let r = waiting.await.unwrap().expect(200);
    let got = r["messages"].as_array().unwrap();
    assert_eq!(got.len(), 1, "{r}");
    assert_eq!(got[0]["body"], "late");
    assert_eq!(got[0]["offset"], 1);
    assert_eq!(r["next_offset"], 2);
    assert_eq!(r["end_offset"], 2);

    // A long poll below the end answers with what is there.
    let r = s.read("poll", 0, "offset=0&wait_ms=20000").await;
    assert_eq!(r["messages"].as_array().unwrap().len(), 2);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_group_lifecycle() {
    let s = TestServer::start().await;
    s.create_topic("work", 2).await;
    s.publish(
        "work",
        json!([
            {"body": "1", "queue": 0}, {"body": "2", "queue": 0},
            {"body": "3", "queue": 0}, {"body": "4", "queue": 0}
        ]),
    )
    .await;

    let g = s
        .post_json("/v1/groups", &json!({"name": "workers"}))
        .await
        .expect(201);
    assert_eq!(g["name"], "workers");
    assert!(g["created_ms"].as_i64().unwrap() > 0);
    assert!(g.get("offsets").is_none(), "{g}");
    // Creating again is idempotent: the group as it is, 200.
    let again = s
        .post_json("/v1/groups", &json!({"name": "workers"}))
        .await
        .expect(200);
    assert_eq!(again["name"], "workers");
    s.post_json("/v1/groups", &json!({"name": "others"}))
        .await
        .expect(201);

    let list = s.get("/v1/groups").await.expect(200);
    let mut listed = names(&list, "groups");
    listed.sort();
    assert_eq!(listed, ["others", "workers"]);

    let none = s.get("/v1/groups/workers/offsets/work/0").await.expect(200);
    assert_eq!(
        none,
        json!({"group": "workers", "topic": "work", "queue": 0, "offset": null})
    );
    // No offset of a group that does not exist; a name no group can have
    // (124 bytes: its dead-letter topic's would be too long) is refused.
    s.get("/v1/groups/nobody/offsets/work/0")
        .await
        .expect_error(404, "GROUP_NOT_FOUND");
    let too_long = "g".repeat(124);
    for path in [
        format!("/v1/groups/{too_long}"),
        format!("/v1/groups/{too_long}/offsets/work/0"),
    ] {
        s.get(&path).await.expect_error(400, "INVALID_NAME");
    }
    s.delete(&format!("/v1/groups/{too_long}"))
        .await
        .expect_error(400, "INVALID_NAME");

    // Of concurrent creates of one group exactly one made it.
    let racers = json!({"name": "racers"});
    let creates = (0..8).map(|_| s.post_json("/v1/groups", &racers));
    let mut statuses: Vec<u16> = futures::future::join_all(creates)
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 201]);
    s.delete("/v1/groups/racers").await;

    let committed = s
        .put_json("/v1/groups/workers/offsets/work/0", &json!({"offset": 3}))
        .await
        .expect(200);
    assert_eq!(
        committed,
        json!({"group": "workers", "topic": "work", "queue": 0, "offset": 3})
    );
    let got = s.get("/v1/groups/workers/offsets/work/0").await.expect(200);
    assert_eq!(got["offset"], 3);

    let described = s.get("/v1/groups/workers").await.expect(200);
    let offsets = described["offsets"].as_array().expect("offsets");
    // Every queue of the topic: queue 1, never committed on, shows where
    // the group starts (latest: after its creation, so no lag there).
    assert_eq!(offsets.len(), 2, "{described}");
    assert_eq!(offsets[0]["topic"], "work");
    assert_eq!(offsets[0]["queue"], 0);
    assert_eq!(offsets[0]["offset"], 3);
    assert_eq!(offsets[0]["lag"], 1);
    assert!(offsets[0]["updated_ms"].as_i64().unwrap() > 0);
    assert_eq!(
        (
            &offsets[1]["queue"],
            &offsets[1]["lag"],
            &offsets[1]["updated_ms"]
        ),
        (&json!(1), &json!(0), &json!(0))
    );

    // Committing the end is allowed and leaves no lag; the typed client agrees.
    let c = s.client();
    c.commit_offset("workers", "work", 0, 4).await.unwrap();
    c.commit_offset("workers", "work", 1, 0).await.unwrap();
    assert_eq!(
        c.committed_offset("workers", "work", 0)
            .await
            .unwrap()
            .offset,
        Some(4)
    );
    let described = c.describe_group("workers").await.unwrap();
    let offsets = described.offsets.unwrap();
    assert_eq!(offsets.len(), 2);
    assert_eq!((offsets[0].queue, offsets[0].lag), (0, 0));
    assert_eq!((offsets[1].queue, offsets[1].offset), (1, 0));

    let deleted = s.delete("/v1/groups/workers").await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    assert!(deleted.body.is_empty(), "{}", deleted.text());
    s.get("/v1/groups/workers")
        .await
        .expect_error(404, "GROUP_NOT_FOUND");
    s.delete("/v1/groups/workers")
        .await
        .expect_error(404, "GROUP_NOT_FOUND");
    let list = s.get("/v1/groups").await.expect(200);
    assert_eq!(names(&list, "groups"), ["others"]);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_status_and_metrics() {
    let s = TestServer::start().await;

    let h = s.get("/healthz").await;
    assert_eq!(h.status, 200);
    assert_eq!(h.text().trim(), "ok");

    s.create_topic("secret-topic-name", 3).await;
    s.publish(
        "secret-topic-name",
        json!([{"body": "x", "queue": 0}, {"body": "y", "queue": 2}]),
    )
    .await;
    s.get("/v1/topics/secret-topic-name/queues/0/messages?offset=0")
        .await
        .expect(200);
    s.get("/no/such/secret-path-xyz")
        .await
        .expect_error(404, "NOT_FOUND");
    // Two messages (queues 0 and 2) acknowledged in one request: one
    // commit per queue.
    s.post_json(
        "/v1/groups",
        &json!({"name": "workers", "start": "earliest"}),
    )
    .await
    .expect(201);
    let got = s
        .post_json(
            "/v1/groups/workers/receive",
            &json!({"topic": "secret-topic-name", "max_messages": 2}),
        )
        .await
        .expect(200);
    let handles: Vec<&Value> = got["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["receipt_handle"])
        .collect();
    assert_eq!(handles.len(), 2, "{got}");
    s.post_json(
        "/v1/groups/workers/ack",
        &json!({"topic": "secret-topic-name", "receipt_handles": handles}),
    )
    .await
    .expect(200);

    let status = s.get("/v1/status").await.expect(200);
    assert_eq!(status["node_id"], json!(s.config.node_id));
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert!(status["started_ms"].as_i64().unwrap() > 0);
    assert_eq!(status["topics"], 1);
    assert_eq!(status["queues"], 3);
    assert_eq!(status["retained_messages"], 2);
    assert!(status["retained_bytes"].as_u64().unwrap() > 0);
    assert_eq!(status["metadata"]["backend"], "redb");
    assert!(status["metadata"]["serving_lease"].is_null(), "{status}");
    let wal = &status["wal"];
    assert_eq!(wal["max_bytes"], json!(s.config.wal.max_bytes));
    assert!(wal["used_bytes"].as_u64().unwrap() > 0);
    assert!(wal["appends"].as_u64().unwrap() >= 1);
    assert!(wal["syncs"].as_u64().unwrap() >= 1);
    assert!(wal["segments"].as_u64().unwrap() >= 1);
    assert_eq!(wal["failed"], false);
    let fill = wal["fill_ratio"].as_f64().unwrap();
    assert!(fill > 0.0 && fill < 1.0, "{fill}");
    assert_eq!(
        status["tail_cache"]["capacity_bytes"],
        json!(s.config.cache.tail_bytes)
    );
    for key in ["bytes", "hits", "misses"] {
        assert!(status["tail_cache"][key].is_u64(), "{status}");
    }
    for key in ["segments", "records", "bytes", "truncated_bytes"] {
        assert!(status["recovery"][key].is_u64(), "{status}");
    }
    assert_eq!(status["pop"], json!({"acks": 2, "ack_commits": 2}));
    for key in [
        "pending_entries",
        "runs_written",
        "runs_merged",
        "runs_dropped",
    ] {
        assert!(status["message_index"][key].is_u64(), "{status}");
    }
    assert!(status["message_index"]["last_error"].is_null(), "{status}");
    let typed = s.client().status().await.unwrap();
    assert_eq!(typed.topics, 1);

    let m = s.get("/metrics").await;
    assert_eq!(m.status, 200);
    assert!(
        m.content_type
            .as_deref()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        m.content_type
    );
    let text = m.text();
    assert!(text.contains("strata_http_requests_total"), "{text}");
    assert!(text.contains("\nstrata_pop_acks_total 2\n"), "{text}");
    assert!(
        text.contains("\nstrata_pop_ack_commits_total 2\n"),
        "{text}"
    );
    assert!(
        text.contains("\nstrata_message_index_pending_entries "),
        "{text}"
    );
    let publish_line = text
        .lines()
        .find(|l| {
            l.starts_with("strata_http_requests_total{")
                && l.contains("route=\"/v1/topics/{topic}/messages\"")
                && l.contains("method=\"POST\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no publish counter in:\n{text}"));
    assert!(publish_line.trim_end().ends_with(" 1"), "{publish_line}");
    assert!(
        text.contains("route=\"/v1/topics/{topic}/queues/{queue}/messages\""),
        "{text}"
    );
    assert!(
        !text.contains("secret-topic-name"),
        "raw topic names leak into metric labels:\n{text}"
    );
    assert!(
        !text.contains("secret-path-xyz"),
        "raw unknown paths leak into metric labels:\n{text}"
    );
    assert!(text.contains("strata_wal_used_bytes"), "{text}");
    // Every WAL sync so far is in the histogram, as many as the status counts.
    let syncs = status["wal"]["syncs"].as_u64().unwrap();
    assert!(syncs > 0, "{status}");
    let sync_count = metric_value(&text, "strata_wal_sync_seconds_count");
    assert!(sync_count >= syncs, "{sync_count} < {syncs}");
    assert!(
        text.contains("strata_wal_sync_seconds_bucket{le=\"0.001\"}"),
        "{text}"
    );
    assert!(
        text.contains("strata_wal_sync_seconds_bucket{le=\"+Inf\"}"),
        "{text}"
    );
    let p50 = status["wal"]["sync_p50_ms"].as_f64().unwrap();
    let p999 = status["wal"]["sync_p999_ms"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= p999 && p999 <= 2000.0, "{status}");
    assert!(text.contains("strata_retained_messages 2"), "{text}");
    // The metadata store's calls: the topic, the group and the acks were
    // commits; every one is in the histogram, none failed.
    let commits = status["metadata"]["commits"].as_u64().unwrap();
    assert!(commits >= 3, "{status}");
    let commit_count = metric_value(&text, "strata_metadata_commit_seconds_count");
    assert!(commit_count >= commits, "{commit_count} < {commits}");
    assert!(
        text.contains("strata_metadata_read_seconds_bucket{le=\"+Inf\"}"),
        "{text}"
    );
    assert!(
        text.contains("\nstrata_metadata_failed_commits_total 0\n"),
        "{text}"
    );
    for key in ["commit_p50_ms", "commit_p99_ms", "commit_p999_ms"] {
        assert!(status["metadata"][key].is_f64(), "{key}: {status}");
    }
    assert!(
        status["metadata"]["reads"].as_u64().unwrap() > 0,
        "{status}"
    );
    assert_eq!(status["metadata"]["failed_reads"], 0, "{status}");
    assert!(status["metadata"]["cancelled"].is_u64(), "{status}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_by_timestamp_and_size_retention_fields() {
    let s = TestServer::start().await;
    let created = s
        .post_json(
            "/v1/topics",
            &serde_json::json!({"name": "timed", "queues": 1, "retention_bytes": 1048576}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["retention_bytes"], 1048576);
    let before = s
        .post_json(
            "/v1/topics/timed/messages",
            &serde_json::json!({"messages": [{"body": "a"}]}),
        )
        .await;
    assert_eq!(before.status, 200);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let at = |ts: i64| format!("/v1/topics/timed/queues/0/offset?timestamp_ms={ts}");
    assert_eq!(s.get(&at(0)).await.json()["offset"], 0);
    assert_eq!(
        s.get(&at(now_ms + 60_000)).await.json()["offset"],
        1,
        "future: the end"
    );
    s.get("/v1/topics/timed/queues/0/offset?timestamp_ms=soon")
        .await
        .expect_error(400, "INVALID_ARGUMENT");
    s.get(&at(0).replace("/0/", "/7/"))
        .await
        .expect_error(404, "QUEUE_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_messages_appear_at_their_time_not_before() {
    let s = TestServer::start().await;
    s.post_json(
        "/v1/topics",
        &json!({"name": "later", "queues": 1, "type": "delay"}),
    )
    .await
    .expect(201);
    s.post_json(
        "/v1/topics/later/messages",
        &json!({"messages": [{"body": "x"}]}),
    )
    .await
    .expect_error(400, "INVALID_ARGUMENT");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let at = now + 1500;
    let reply = s
        .post_json(
            "/v1/topics/later/messages",
            &json!({"messages": [{"body": "wake up", "deliver_at_ms": at}]}),
        )
        .await
        .expect(200);
    // Waiting, it has no place in its topic yet: the reply says when, not
    // where (where it waits is the service's own).
    let waiting = &reply["messages"][0];
    assert_eq!(waiting["deliver_at_ms"], at, "{reply}");
    assert!(
        waiting.get("queue").is_none() && waiting.get("offset").is_none(),
        "{reply}"
    );
    s.post_json(
        "/v1/topics/later/messages",
        &json!({"messages": [{"body": "a", "deliver_at_ms": at}, {"body": "b"}]}),
    )
    .await
    .expect_error(400, "INVALID_ARGUMENT");
    assert!(
        s.read("later", 0, "offset=0").await["messages"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Polled (not timed): it arrives, stamped no earlier than its time.
    let mut delivered = None;
    for _ in 0..200 {
        let r = s.read("later", 0, "offset=0").await;
        if let Some(m) = r["messages"].as_array().unwrap().first() {
            delivered = Some(m.clone());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let m = delivered.expect("the delayed message was delivered");
    assert_eq!(m["body"], "wake up");
    assert!(m["timestamp_ms"].as_i64().unwrap() >= at, "{m}");
    assert_eq!(m["properties"]["__mq.deliver_at_ms"], at.to_string());
    // A time already past lands at once, where the reply says.
    let landed = s
        .post_json(
            "/v1/topics/later/messages",
            &json!({"messages": [{"body": "now", "deliver_at_ms": now - 1000}]}),
        )
        .await
        .expect(200);
    assert_eq!(landed["messages"][0]["offset"], 1, "{landed}");
    assert!(
        landed["messages"][0].get("deliver_at_ms").is_none(),
        "{landed}"
    );
    // A time before 1970 is a mistake, not "now": refused, nothing stored.
    s.post_json(
        "/v1/topics/later/messages",
        &json!({"messages": [{"body": "never", "deliver_at_ms": -5}]}),
    )
    .await
    .expect_error(400, "INVALID_ARGUMENT");
    let q = s.get("/v1/topics/later/queues/0").await.expect(200);
    assert_eq!(q["end_offset"], 2, "{q}");
    // The schedule topic is not listed.
    let topics = s.get("/v1/topics").await.expect(200);
    assert_eq!(topics["topics"].as_array().unwrap().len(), 1, "{topics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_topics_are_not_found_and_do_not_keep_a_tenant_from_deletion() {
    let s = TestServer::start().await;
    s.create_tenant("later-co").await;
    let t = s.create_key("later-co", "tenant-admin").await;
    t.post_json(
        "/v1/topics",
        &json!({"name": "later", "queues": 4, "type": "delay"}),
    )
    .await
    .expect(201);
    let in_an_hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_600_000;
    t.post_json(
        "/v1/topics/later/messages",
        &json!({"messages": [{"body": "one", "deliver_at_ms": in_an_hour}]}),
    )
    .await
    .expect(200);
    // The schedule exists now, and no request can name it.
    for path in [
        "/v1/topics/__sys-schedule",
        "/v1/topics/__sys-schedule/queues/0",
        "/v1/topics/__sys-schedule/queues/0/messages?offset=0",
        "/v1/topics/__sys-schedule/queues/0/offset?timestamp_ms=0",
    ] {
        t.get(path).await.expect_error(404, "TOPIC_NOT_FOUND");
    }
    t.delete("/v1/topics/__sys-schedule")
        .await
        .expect_error(404, "TOPIC_NOT_FOUND");
    // A name no topic can have is a bad name, not a missing topic.
    for path in ["/v1/topics/bad.name", "/v1/topics/bad.name/queues/0"] {
        t.get(path).await.expect_error(400, "INVALID_NAME");
    }
    t.post_json(
        "/v1/topics/__sys-schedule/messages",
        &json!({"messages": [{"body": "x"}]}),
    )
    .await
    .expect_error(404, "TOPIC_NOT_FOUND");
    // Its topics keep a tenant; the hidden schedule does not.
    s.delete("/v1/tenants/later-co")
        .await
        .expect_error(409, "TENANT_NOT_EMPTY");
    t.delete("/v1/topics/later").await.expect(200);
    s.delete("/v1/tenants/later-co").await.expect(200);
    s.delete("/v1/tenants/later-co")
        .await
        .expect_error(404, "TENANT_NOT_FOUND");
    s.delete("/v1/tenants/a.b")
        .await
        .expect_error(400, "INVALID_NAME");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_groups_receive_ack_and_get_redeliveries_over_http() {
    let s = TestServer::start().await;
    s.create_topic("jobs", 1).await;
    s.publish(
        "jobs",
        json!([{"body": "j1", "tag": "a"}, {"body": "j2", "tag": "b"}, {"body": "j3", "tag": "a"}]),
    )
    .await;
    // Created after the publish: it must ask for the earliest messages.
    s.post_json(
        "/v1/groups",
        &json!({"name": "workers", "start": "earliest"}),
    )
    .await
    .expect(201);
    let got = s
        .post_json(
            "/v1/groups/workers/receive",
            &json!({"topic": "jobs", "queue": 0, "tags": "a", "invisible_ms": 1000}),
        )
        .await
        .expect(200);
    let msgs = got["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{got}");
    assert_eq!(msgs[0]["message"]["body"], "j1");
    assert_eq!(msgs[1]["message"]["body"], "j3");
    assert_eq!(msgs[0]["attempt"], 1);
    let h1 = msgs[0]["receipt_handle"].as_str().unwrap().to_string();
    let h3 = msgs[1]["receipt_handle"].as_str().unwrap().to_string();
    let acked = s
        .post_json(
            "/v1/groups/workers/ack",
            &json!({"topic": "jobs", "receipt_handles": [h1, "1-0-0-1"]}),
        )
        .await
        .expect(200);
    assert_eq!(acked["results"][0]["code"], "OK");
    assert_eq!(acked["results"][1]["code"], "INVALID_ARGUMENT");
    // A second ack of the same handle alone is an error.
    s.post_json(
        "/v1/groups/workers/ack",
        &json!({"topic": "jobs", "receipt_handles": [h1]}),
    )
    .await
    .expect_error(400, "INVALID_ARGUMENT");
    // j3 is not acknowledged: it comes back (long poll) as attempt 2.
    let again = s
        .post_json(
            "/v1/groups/workers/receive",
            &json!({"topic": "jobs", "queue": 0, "tags": "a", "wait_ms": 5000}),
        )
        .await
        .expect(200);
    assert_eq!(again["messages"][0]["message"]["body"], "j3", "{again}");
    assert_eq!(again["messages"][0]["attempt"], 2);
    // The handle of the first delivery no longer works.
    s.post_json(
        "/v1/groups/workers/invisible",
        &json!({"topic": "jobs", "receipt_handle": h3, "invisible_ms": 5000}),
    )
    .await
    .expect_error(400, "INVALID_ARGUMENT");
    let newer = again["messages"][0]["receipt_handle"].as_str().unwrap();
    let changed = s
        .post_json(
            "/v1/groups/workers/invisible",
            &json!({"topic": "jobs", "receipt_handle": newer, "invisible_ms": 5000}),
        )
        .await
        .expect(200);
    let latest = changed["receipt_handle"].as_str().unwrap();
    s.post_json(
        "/v1/groups/workers/ack",
        &json!({"topic": "jobs", "receipt_handles": [latest]}),
    )
    .await
    .expect(200);
    s.post_json(
        "/v1/groups/nobody/receive",
        &json!({"topic": "jobs", "queue": 0}),
    )
    .await
    .expect_error(404, "GROUP_NOT_FOUND");
    s.post_json(
        "/v1/groups/workers/receive",
        &json!({"topic": "jobs", "queue": 0, "invisible_ms": 10}),
    )
    .await
    .expect_error(400, "INVALID_ARGUMENT");
}

/// The value of the unlabelled metric `name` in a Prometheus text page.
fn metric_value(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// `PUT /v1/groups/{group}/offsets/{topic}` moves the group on every queue
/// at once: to the earliest or latest offsets, one offset, or a time; a
/// target out of one queue's range commits nothing on any queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_resets_on_every_queue_at_once() {
    let s = TestServer::start().await;
    s.create_topic("orders", 3).await;
    let batch = |n: u32| -> Vec<serde_json::Value> {
        (0..n)
            .map(|i| serde_json::json!({"body": format!("m{i}"), "queue": i % 3}))
            .collect()
    };
    s.publish("orders", serde_json::json!(batch(7))).await;
    let reset = |body: serde_json::Value| {
        let s = &s;
        async move { s.put_json("/v1/groups/g/offsets/orders", &body).await }
    };
    let offsets = |v: &serde_json::Value| -> Vec<(u64, u64)> {
        v["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["queue"].as_u64().unwrap(), o["offset"].as_u64().unwrap()))
            .collect()
    };
    // Queues 0, 1, 2 hold 3, 2, 2 messages. The group does not exist yet:
    // the reset makes it.
    let latest = reset(serde_json::json!({"to": "latest"})).await.expect(200);
    assert_eq!(offsets(&latest), [(0, 3), (1, 2), (2, 2)]);
    let described = s.get("/v1/groups/g").await.expect(200);
    assert_eq!(described["offsets"].as_array().unwrap().len(), 3);
    let earliest = reset(serde_json::json!({"to": "earliest"}))
        .await
        .expect(200);
    assert_eq!(offsets(&earliest), [(0, 0), (1, 0), (2, 0)]);
    let one = reset(serde_json::json!({"offset": 2})).await.expect(200);
    assert_eq!(offsets(&one), [(0, 2), (1, 2), (2, 2)]);

    // Past one queue's end: refused, and no queue moved.
    reset(serde_json::json!({"offset": 3}))
        .await
        .expect_error(416, "OFFSET_OUT_OF_RANGE");
    for q in 0..3 {
        let got = s.get(&format!("/v1/groups/g/offsets/orders/{q}")).await;
        assert_eq!(got.expect(200)["offset"], 2, "queue {q}");
    }

    // A time: messages published after it.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    s.publish("orders", serde_json::json!(batch(3))).await;
    let timed = reset(serde_json::json!({"timestamp_ms": now_ms}))
        .await
        .expect(200);
    assert_eq!(offsets(&timed), [(0, 3), (1, 2), (2, 2)]);
    let future = reset(serde_json::json!({"timestamp_ms": now_ms + 3_600_000}))
        .await
        .expect(200);
    assert_eq!(offsets(&future), [(0, 4), (1, 3), (2, 3)], "the ends");

    // Bad requests change nothing.
    for bad in [
        serde_json::json!({}),
        serde_json::json!({"to": "earliest", "offset": 1}),
        serde_json::json!({"to": "first"}),
        serde_json::json!({"timestamp_ms": -1}),
    ] {
        reset(bad).await.expect_error(400, "INVALID_ARGUMENT");
    }
    reset(serde_json::json!({"to": "latest", "extra": 1}))
        .await
        .expect_error(400, "INVALID_JSON");
    s.put_json(
        "/v1/groups/g/offsets/nowhere",
        &serde_json::json!({"to": "latest"}),
    )
    .await
    .expect_error(404, "TOPIC_NOT_FOUND");
    s.put_json(
        "/v1/groups/bad.name/offsets/orders",
        &serde_json::json!({"to": "latest"}),
    )
    .await
    .expect_error(400, "INVALID_NAME");
    let after = s.get("/v1/groups/g").await.expect(200);
    let kept: Vec<u64> = after["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(kept, [4, 3, 3]);

    // Receiving by message follows a reset too: back to the earliest, the
    // group's receives deliver every message again, on every queue.
    let receive_all = |group: &'static str| {
        let s = &s;
        async move {
            let mut bodies = Vec::new();
            loop {
                let got = s
                    .post_json(
                        &format!("/v1/groups/{group}/receive"),
                        &json!({"topic": "orders", "max_messages": 4}),
                    )
                    .await
                    .expect(200);
                let msgs = got["messages"].as_array().unwrap().clone();
                if msgs.is_empty() {
                    bodies.sort();
                    return bodies;
                }
                for m in msgs {
                    bodies.push(m["message"]["body"].as_str().unwrap().to_string());
                }
            }
        }
    };
    s.post_json("/v1/groups", &json!({"name": "pop", "start": "earliest"}))
        .await
        .expect(201);
    let first = receive_all("pop").await;
    assert_eq!(first.len(), 10, "{first:?}");
    assert!(receive_all("pop").await.is_empty(), "all in flight");
    s.put_json("/v1/groups/pop/offsets/orders", &json!({"to": "earliest"}))
        .await
        .expect(200);
    assert_eq!(receive_all("pop").await, first, "everything again, once");
    s.put_json("/v1/groups/pop/offsets/orders", &json!({"to": "latest"}))
        .await
        .expect(200);
    s.publish("orders", serde_json::json!(batch(3))).await;
    assert_eq!(receive_all("pop").await, ["m0", "m1", "m2"]);
    s.shutdown().await;
}
