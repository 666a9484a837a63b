//! Unresolved transactions under SIGKILL. Nobody answers their check-backs
//! (no producer is connected), so each must end rolled back after the
//! configured number of checks. The checks are counted in the catalog: a
//! kill never resets the count, and however many kills fall in between,
//! every transaction ends and none of their messages ever becomes visible.
//! The check timing is shortened through the server's config so the whole
//! life of a transaction fits in a few seconds.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Reply, Server, call, http, read_messages};
use serde_json::{Value, json};

/// 300 ms to the first check, then 600 ms apart, rolled back after 6.
const FAST_CHECKS: &[(&str, &str)] = &[
    ("STRATA_TRANSACTIONS_FIRST_CHECK_DELAY_MS", "300"),
    ("STRATA_TRANSACTIONS_MAX_CHECK_INTERVAL_MS", "600"),
    ("STRATA_TRANSACTIONS_MAX_CHECKS", "6"),
];
const MAX_CHECKS: u64 = 6;
const KILLS: usize = 5;
const TOPIC: &str = "orphans";

/// Open transactions of the topic → checks counted so far; None if the
/// server is gone.
async fn open(url: &str) -> Option<HashMap<String, u64>> {
    let r = http()
        .get(format!("{url}/v1/topics/{TOPIC}/transactions"))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let body: Value = r.json().await.ok()?;
    let list = body["transactions"].as_array()?;
    Some(
        list.iter()
            .filter_map(|t| {
                Some((
                    t["transaction_id"].as_str()?.to_string(),
                    t["checks"].as_u64()?,
                ))
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_transactions_roll_back_after_their_checks_across_sigkill() {
    let seed = common::crash_seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    // Highest check count seen per transaction: it may never go down.
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut problems = Vec::new();
    for cycle in 0..=KILLS {
        let server = Server::start(dir.path(), FAST_CHECKS);
        let url = server.url.clone();
        if cycle == 0 {
            let topic = json!({"name": TOPIC, "queues": 2, "type": "transaction"});
            assert!(matches!(
                call(&url, "/v1/topics", &topic).await,
                Reply::Ok(_)
            ));
        }
        if cycle < KILLS {
            // A few new transactions each run, so kills land at every
            // stage of their lives.
            for i in 0..6 {
                let body = json!({"body": format!("orphan-{cycle}-{i}")});
                if let Reply::Ok(v) =
                    call(&url, &format!("/v1/topics/{TOPIC}/transactions"), &body).await
                {
                    seen.entry(v["transaction_id"].as_str().unwrap().to_string())
                        .or_insert(0);
                }
            }
        }
        let until = Instant::now() + Duration::from_millis(rng.u64(300..2500));
        while cycle < KILLS && Instant::now() < until {
            if let Some(now) = open(&url).await {
                for (id, checks) in now {
                    let before = seen.entry(id.clone()).or_insert(0);
                    if checks < *before {
                        problems.push(format!("{id}: checks went from {before} to {checks}"));
                    }
                    if checks > MAX_CHECKS {
                        problems.push(format!("{id}: open after {checks} checks"));
                    }
                    *before = (*before).max(checks);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if cycle < KILLS {
            server.kill();
            continue;
        }
        // The last run: every transaction ends, unanswered, by rollback.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = open(&url).await.expect("server answers");
            if left.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "still open after 60 s: {left:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for queue in 0..2 {
            let visible = read_messages(&url, TOPIC, queue).await;
            if !visible.is_empty() {
                problems.push(format!("rolled-back messages became visible: {visible:?}"));
            }
        }
        server.kill();
    }
    assert!(
        seen.len() >= 20,
        "too few transactions opened: {}",
        seen.len()
    );
    assert!(
        seen.values().any(|&c| c > 0),
        "no check was ever counted: {seen:?}"
    );
    assert!(problems.is_empty(), "seed {seed}:\n{}", problems.join("\n"));
}
