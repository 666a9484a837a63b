//! SIGKILL the real server at random moments while several clients publish;
//! after every restart, every acknowledged message must be readable exactly
//! once, at the offset it was acknowledged with, byte-identical, and every
//! queue's offsets must be dense.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Server, create_topic, http, read_all};

const TOPIC: &str = "durable";
const QUEUES: u32 = 4;
const WRITERS: usize = 8;
const CYCLES: usize = 24;

/// (queue, offset) → body of every acknowledged message.
type Acked = Arc<Mutex<HashMap<(u32, u64), Vec<u8>>>>;

async fn writer(url: String, cycle: usize, id: usize, acked: Acked, seed: u64) {
    let client = http();
    let mut rng = fastrand::Rng::with_seed(seed);
    for seq in 0u64.. {
        let count = rng.usize(1..=5);
        let bodies: Vec<Vec<u8>> = (0..count)
            .map(|i| {
                let mut b = format!("c{cycle}-w{id}-s{seq}-m{i}-").into_bytes();
                let pad = rng.usize(0..3000);
                b.extend((0..pad).map(|_| rng.u8(..)));
                b
            })
            .collect();
        let queue = rng.u32(0..QUEUES);
        let messages: Vec<_> = bodies
            .iter()
            .map(|b| {
                serde_json::json!({
                    "body_base64": base64::engine::general_purpose::STANDARD.encode(b),
                    "queue": queue,
                })
            })
            .collect();
        let resp = client
            .post(format!("{url}/v1/topics/{TOPIC}/messages"))
            .json(&serde_json::json!({ "messages": messages }))
            .send()
            .await;
        let Ok(resp) = resp else { return };
        if resp.status().as_u16() != 200 {
            return;
        }
        let Ok(reply) = resp.json::<serde_json::Value>().await else {
            return;
        };
        let mut acked = acked.lock().unwrap();
        for (m, body) in reply["messages"].as_array().unwrap().iter().zip(bodies) {
            let key = (
                m["queue"].as_u64().unwrap() as u32,
                m["offset"].as_u64().unwrap(),
            );
            assert!(
                acked.insert(key, body).is_none(),
                "offset {key:?} acknowledged twice"
            );
        }
    }
}

async fn verify(url: &str, acked: &Acked, cycle: usize) -> usize {
    let acked = acked.lock().unwrap().clone();
    let mut total = 0;
    for queue in 0..QUEUES {
        let messages = read_all(url, TOPIC, queue).await;
        for (i, (offset, _)) in messages.iter().enumerate() {
            assert_eq!(
                *offset, i as u64,
                "cycle {cycle}: queue {queue} offsets not dense"
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (_, body) in &messages {
            assert!(
                seen.insert(body.clone()),
                "cycle {cycle}: queue {queue} holds a message twice"
            );
        }
        for ((q, offset), body) in acked.iter().filter(|((q, _), _)| *q == queue) {
            let got = messages.get(*offset as usize).map(|(_, b)| b);
            assert_eq!(
                got,
                Some(body),
                "cycle {cycle}: acknowledged message at queue {q} offset {offset} lost or changed"
            );
        }
        total += messages.len();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_repeated_sigkill() {
    sigkill_cycles(&[]).await;
}

/// The same with the node's metadata (offsets, ranges, checkpoints) in the
/// etcd cluster `scripts/test.sh` starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_repeated_sigkill_with_metadata_on_etcd() {
    let Some(url) = common::etcd_test_url("durability") else {
        return;
    };
    sigkill_cycles(&[("STRATA_METADATA_URL", url.as_str())]).await;
}

async fn sigkill_cycles(env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let acked: Acked = Arc::default();
    let mut rng = fastrand::Rng::with_seed(0x5742_4154);
    let started = Instant::now();
    for cycle in 0..CYCLES {
        let server = Server::start(dir.path(), env);
        if cycle == 0 {
            create_topic(&server.url, TOPIC, QUEUES).await;
        }
        let stored = verify(&server.url, &acked, cycle).await;
        let writers: Vec<_> = (0..WRITERS)
            .map(|id| {
                tokio::spawn(writer(
                    server.url.clone(),
                    cycle,
                    id,
                    acked.clone(),
                    rng.u64(..),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.u64(30..400))).await;
        server.kill();
        for w in writers {
            w.await.unwrap();
        }
        eprintln!(
            "cycle {cycle}: {stored} stored before, {} acknowledged so far",
            acked.lock().unwrap().len()
        );
    }
    let server = Server::start(dir.path(), env);
    let stored = verify(&server.url, &acked, CYCLES).await;
    let acked_total = acked.lock().unwrap().len();
    assert!(
        acked_total > CYCLES * 10,
        "too little load to mean anything: {acked_total}"
    );
    assert!(stored >= acked_total);
    eprintln!(
        "{CYCLES} SIGKILL cycles, {acked_total} acknowledged, {stored} stored, {:.1}s",
        started.elapsed().as_secs_f64()
    );
    server.stop();
}
