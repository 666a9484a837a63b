//! Consumption by message and delay messages under SIGKILL: two consumers
//! receive from every queue of a 4-queue topic (topic-wide receives) and
//! acknowledge while the server is killed at random moments.
//! An acknowledged message is never delivered again, every message is
//! eventually delivered and acknowledged, unacknowledged ones come back
//! with their attempt counted, and delayed messages all arrive.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, create_topic, http};
use serde_json::{Value, json};

const MESSAGES: usize = 200;
const CYCLES: usize = 6;
const QUEUES: u32 = 4;
const CONSUMERS: usize = 2;

#[derive(Default)]
struct Seen {
    /// Bodies whose acknowledgement the server confirmed.
    acked: HashSet<String>,
    /// Bodies whose acknowledgement was sent but not confirmed (the server
    /// died): committed or not, either is correct.
    uncertain: HashSet<String>,
    /// Receives that returned nothing, in a row.
    empty_receives: u32,
    /// Highest attempt seen per body.
    attempts: HashMap<String, u64>,
}

async fn post(url: &str, path: &str, body: &Value) -> Option<Value> {
    let r = http()
        .post(format!("{url}{path}"))
        .json(body)
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// Receives and acknowledges until the server goes away.
async fn consumer(url: String, seen: Arc<Mutex<Seen>>) {
    loop {
        let Some(got) = post(
            &url,
            "/v1/groups/workers/receive",
            &json!({"topic": "jobs", "max_messages": 10, "invisible_ms": 1000, "wait_ms": 200}),
        )
        .await
        else {
            return;
        };
        let mut handles = Vec::new();
        let messages = got["messages"].as_array().cloned().unwrap_or_default();
        {
            let mut s = seen.lock().unwrap();
            s.empty_receives = if messages.is_empty() {
                s.empty_receives + 1
            } else {
                0
            };
        }
        for m in &messages {
            let body = m["message"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let attempt = m["attempt"].as_u64().unwrap_or(0);
            let mut s = seen.lock().unwrap();
            assert!(
                !s.acked.contains(&body),
                "{body} was delivered again after its acknowledgement was confirmed"
            );
            let best = s.attempts.entry(body.clone()).or_default();
            *best = (*best).max(attempt);
            handles.push((
                body,
                m["receipt_handle"].as_str().unwrap_or_default().to_string(),
            ));
        }
        // Leave every fifth message unacknowledged once, to see it return.
        for (body, handle) in handles {
            let first_try = seen.lock().unwrap().attempts.get(&body) == Some(&1);
            if first_try && body.ends_with('5') {
                continue;
            }
            let acked = post(
                &url,
                "/v1/groups/workers/ack",
                &json!({"topic": "jobs", "receipt_handles": [handle]}),
            )
            .await;
            let mut s = seen.lock().unwrap();
            match acked {
                Some(a) if a["results"][0]["code"] == "OK" => {
                    s.uncertain.remove(&body);
                    s.acked.insert(body);
                }
                Some(_) => {}
                None => {
                    s.uncertain.insert(body);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pop_and_delay_state_survive_repeated_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut rng = fastrand::Rng::with_seed(0x504f_5021);
    let mut due_ms = 0;
    for cycle in 0..CYCLES {
        let server = Server::start(dir.path(), &[]);
        if cycle == 0 {
            create_topic(&server.url, "jobs", QUEUES).await;
            let c = http();
            c.post(format!("{}/v1/groups", server.url))
                .json(&json!({"name": "workers"}))
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap();
            c.post(format!("{}/v1/topics", server.url))
                .json(&json!({"name": "later", "queues": 1, "type": "delay"}))
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap();
            let messages: Vec<Value> = (0..MESSAGES)
                .map(|i| json!({"body": format!("job-{i:03}"), "queue": i % QUEUES as usize}))
                .collect();
            post(
                &server.url,
                "/v1/topics/jobs/messages",
                &json!({ "messages": messages }),
            )
            .await
            .expect("publish");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            due_ms = now + 1500;
            let delayed: Vec<Value> = (0..5)
                .map(|i| json!({"body": format!("later-{i}"), "deliver_at_ms": due_ms}))
                .collect();
            post(
                &server.url,
                "/v1/topics/later/messages",
                &json!({ "messages": delayed }),
            )
            .await
            .expect("publish delayed");
        }
        let tasks: Vec<_> = (0..CONSUMERS)
            .map(|_| tokio::spawn(consumer(server.url.clone(), seen.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.u64(150..700))).await;
        server.kill();
        for task in tasks {
            task.await.expect("consumer checks held");
        }
        let s = seen.lock().unwrap();
        eprintln!("cycle {cycle}: {} acknowledged", s.acked.len());
    }

    // A last run consumes whatever is left, until receives stay empty for
    // longer than the invisible time (nothing in flight comes back).
    let server = Server::start(dir.path(), &[]);
    seen.lock().unwrap().empty_receives = 0;
    let tasks: Vec<_> = (0..CONSUMERS)
        .map(|_| tokio::spawn(consumer(server.url.clone(), seen.clone())))
        .collect();
    let started = Instant::now();
    while seen.lock().unwrap().empty_receives < 10 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let later = http()
        .get(format!(
            "{}/v1/topics/later/queues/0/messages?offset=0",
            server.url
        ))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    server.stop();
    for task in tasks {
        let _ = task.await;
    }
    let s = seen.lock().unwrap();
    assert_eq!(s.attempts.len(), MESSAGES, "every message was delivered");
    for body in s.attempts.keys() {
        assert!(
            s.acked.contains(body) || s.uncertain.contains(body),
            "{body} was never acknowledged and is not delivered any more"
        );
    }
    eprintln!(
        "{} acknowledged, {} acknowledged as the server died",
        s.acked.len(),
        s.uncertain.len()
    );
    let returned = s
        .attempts
        .iter()
        .filter(|(b, a)| b.ends_with('5') && **a >= 2)
        .count();
    assert!(
        returned >= 15,
        "unacknowledged messages came back with attempt 2+: {returned}"
    );
    let bodies: HashSet<&str> = later["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    for i in 0..5 {
        assert!(
            bodies.contains(format!("later-{i}").as_str()),
            "later-{i} lost: {later}"
        );
    }
    for m in later["messages"].as_array().unwrap() {
        assert!(
            m["timestamp_ms"].as_i64().unwrap() >= due_ms,
            "delivered early: {m}"
        );
    }
}
