//! Graceful shutdown under load: every publish acknowledged with 200 before
//! or during shutdown is readable after a restart, byte-identical at the
//! acknowledged queue and offset; every other publish failed cleanly.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{TestServer, b64, unb64};
use serde_json::{Value, json};

const TOPIC: &str = "drain";
const QUEUES: u32 = 4;
const TASKS: usize = 32;
const REQUESTS: usize = 20;

#[derive(Default)]
struct Outcomes {
    /// (queue, offset) → body of every acknowledged message.
    acked: HashMap<(u32, u64), Vec<u8>>,
    connection_errors: usize,
    unavailable: usize,
}

async fn publisher(
    http: reqwest::Client,
    url: String,
    task: usize,
    outcomes: Arc<Mutex<Outcomes>>,
    done: Arc<AtomicUsize>,
) {
    let mut rng = fastrand::Rng::with_seed(task as u64);
    for r in 0..REQUESTS {
        let count = rng.usize(1..=3);
        let bodies: Vec<Vec<u8>> = (0..count)
            .map(|i| {
                let mut b = format!("t{task}-r{r}-m{i}-").into_bytes();
                let pad = rng.usize(0..512);
                b.extend((0..pad).map(|_| rng.u8(..)));
                b
            })
            .collect();
        let messages: Vec<Value> = bodies
            .iter()
            .map(|b| match rng.u8(0..3) {
                0 => json!({"body_base64": b64(b), "queue": rng.u32(0..QUEUES)}),
                1 => json!({"body_base64": b64(b), "key": format!("k{}", rng.u8(..))}),
                _ => json!({"body_base64": b64(b)}),
            })
            .collect();
        let sent = http
            .post(format!("{url}/v1/topics/{TOPIC}/messages"))
            .json(&json!({ "messages": messages }))
            .send()
            .await;
        let outcome = match sent {
            Err(_) => None,
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Err(_) => None,
                    Ok(body) => Some((status, body)),
                }
            }
        };
        {
            let mut o = outcomes.lock().unwrap();
            match outcome {
                None => o.connection_errors += 1,
                Some((200, body)) => {
                    let reply: Value = serde_json::from_slice(&body).expect("200 has JSON");
                    let placed = reply["messages"].as_array().expect("messages");
                    assert_eq!(placed.len(), bodies.len(), "{reply}");
                    for (p, b) in placed.iter().zip(&bodies) {
                        let key = (
                            p["queue"].as_u64().unwrap() as u32,
                            p["offset"].as_u64().unwrap(),
                        );
                        let previous = o.acked.insert(key, b.clone());
                        assert!(previous.is_none(), "{key:?} acknowledged twice");
                    }
                }
                Some((status, body)) => {
                    let v: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
                        panic!(
                            "publish failed with {status} and a non-JSON body: {}",
                            String::from_utf8_lossy(&body)
                        )
                    });
                    assert_eq!(
                        (status, v["error"]["code"].as_str()),
                        (503, Some("UNAVAILABLE")),
                        "publish failed uncleanly: {v}"
                    );
                    o.unavailable += 1;
                }
            }
        }
        done.fetch_add(1, Ordering::SeqCst);
    }
}

/// Every message of a queue, by offset, read page by page.
async fn read_queue(s: &TestServer, queue: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let first = s.queue(TOPIC, queue).await;
    assert_eq!(first["first_offset"], 0);
    let end = first["end_offset"].as_u64().unwrap();
    let mut offset = 0u64;
    while offset < end {
        let r = s
            .read(
                TOPIC,
                queue,
                &format!("offset={offset}&limit=1000&encoding=base64"),
            )
            .await;
        let messages = r["messages"].as_array().unwrap();
        assert!(!messages.is_empty(), "no progress at {offset} of {end}");
        for m in messages {
            assert_eq!(m["offset"].as_u64().unwrap(), offset, "offsets are dense");
            out.push(unb64(m["body_base64"].as_str().unwrap()));
            offset += 1;
        }
        assert_eq!(r["next_offset"].as_u64().unwrap(), offset);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_keeps_every_acknowledged_publish() {
    let mut s = TestServer::start().await;
    s.create_topic(TOPIC, QUEUES).await;

    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let done = Arc::new(AtomicUsize::new(0));
    let http = s.http.clone();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            tokio::spawn(publisher(
                http.clone(),
                s.url.clone(),
                task,
                outcomes.clone(),
                done.clone(),
            ))
        })
        .collect();

    // Shut down once a quarter of the requests are answered, while the rest
    // are in flight or yet to be sent.
    while done.load(Ordering::SeqCst) < TASKS * REQUESTS / 4 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let running = s.running.take().unwrap();
    running.shutdown().await.expect("clean shutdown");
    for t in tasks {
        t.await.expect("publisher task");
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    assert_eq!(done.load(Ordering::SeqCst), TASKS * REQUESTS);
    assert!(
        outcomes.acked.len() >= TASKS * REQUESTS / 4,
        "only {} acknowledged messages",
        outcomes.acked.len()
    );
    assert!(
        outcomes.connection_errors + outcomes.unavailable > 0,
        "no request was refused: shutdown happened after all traffic"
    );
    eprintln!(
        "acked messages: {}, connection errors: {}, 503s: {}",
        outcomes.acked.len(),
        outcomes.connection_errors,
        outcomes.unavailable
    );

    let config = s.config.clone();
    let s = TestServer::start_in(s.dir, config).await;
    let mut stored: HashMap<(u32, u64), Vec<u8>> = HashMap::new();
    let mut seen_bodies: HashMap<Vec<u8>, usize> = HashMap::new();
    for q in 0..QUEUES {
        for (offset, body) in read_queue(&s, q).await.into_iter().enumerate() {
            *seen_bodies.entry(body.clone()).or_default() += 1;
            stored.insert((q, offset as u64), body);
        }
    }
    for (key, body) in &outcomes.acked {
        let got = stored
            .get(key)
            .unwrap_or_else(|| panic!("acknowledged message at {key:?} is missing"));
        assert!(got == body, "message at {key:?} differs after restart");
        assert_eq!(seen_bodies[body], 1, "message at {key:?} stored twice");
    }
    // Nothing appears that nobody sent.
    for body in stored.values() {
        assert!(body.starts_with(b"t"), "unexpected body {body:?}");
    }
    s.shutdown().await;
}

/// The snapshot without queue owner epochs, and those epochs in order.
fn without_epochs(mut snapshot: Value) -> (Value, Vec<u64>) {
    let mut epochs = Vec::new();
    for topic in snapshot["topics"].as_array_mut().unwrap() {
        for q in topic["queue_stats"].as_array_mut().unwrap() {
            let epoch = q.as_object_mut().unwrap().remove("owner_epoch");
            epochs.push(epoch.and_then(|e| e.as_u64()).expect("owner_epoch"));
        }
    }
    (snapshot, epochs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_topics_groups_and_offsets() {
    let s = TestServer::start().await;
    s.create_topic("keep", 2).await;
    s.post_json(
        "/v1/topics",
        &json!({"name": "gone", "queues": 1, "retention": "unlimited"}),
    )
    .await
    .expect(201);
    s.publish(
        "keep",
        json!([{"body": "a", "queue": 1}, {"body_base64": b64(&[0, 255]), "queue": 1}]),
    )
    .await;
    s.publish("gone", json!([{"body": "bye"}])).await;
    s.delete("/v1/topics/gone").await.expect(200);
    s.post_json("/v1/groups", &json!({"name": "readers"}))
        .await
        .expect(201);
    s.put_json("/v1/groups/readers/offsets/keep/1", &json!({"offset": 1}))
        .await
        .expect(200);
    let (before, epochs_before) = without_epochs(s.snapshot().await);

    let config = s.config.clone();
    let dir = s.shutdown().await;
    let s = TestServer::start_in(dir, config).await;
    let (after, epochs_after) = without_epochs(s.snapshot().await);
    assert_eq!(after, before);
    // The restarted node claims its queues again, under a newer epoch.
    assert_eq!(epochs_after.len(), epochs_before.len());
    for (a, b) in epochs_after.iter().zip(&epochs_before) {
        assert!(a > b, "owner epoch {a} after restart, {b} before");
    }
    let r = s.read("keep", 1, "offset=0&encoding=base64").await;
    let bodies: Vec<Vec<u8>> = r["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| unb64(m["body_base64"].as_str().unwrap()))
        .collect();
    assert_eq!(bodies, [b"a".to_vec(), vec![0, 255]]);
    s.get("/v1/topics/gone")
        .await
        .expect_error(404, "TOPIC_NOT_FOUND");
    // Offsets continue where they were.
    let p = s.publish("keep", json!([{"body": "c", "queue": 1}])).await;
    assert_eq!(p[0]["offset"], 2);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_pending_long_polls() {
    let mut s = TestServer::start_with(|c| c.limits.max_wait_ms = 600_000).await;
    s.create_topic("idle", 1).await;
    let polls: Vec<_> = (0..4)
        .map(|_| {
            let request = s
                .http
                .get(s.url("/v1/topics/idle/queues/0/messages?offset=0&wait_ms=600000"));
            tokio::spawn(async move {
                match request.send().await {
                    Err(_) => None,
                    Ok(r) => Some(common::read_resp(r).await),
                }
            })
        })
        .collect();
    // Let the polls reach the server (not needed for correctness).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let running = s.running.take().unwrap();
    // A hang guard, far below the polls' ten minutes: shutdown must not wait
    // for them to run out.
    tokio::time::timeout(std::time::Duration::from_secs(60), running.shutdown())
        .await
        .expect("shutdown waited for long polls")
        .expect("clean shutdown");
    for poll in polls {
        match poll.await.unwrap() {
            None => {}
            Some(r) if r.status == 200 => {
                let v = r.json();
                assert_eq!(v["messages"], json!([]), "{v}");
                assert_eq!(v["next_offset"], 0);
            }
            Some(r) => r.expect_error(503, "UNAVAILABLE"),
        }
    }
}
