//! Failover on shared metadata (etcd): a standby node takes over the
//! namespace when the serving node is SIGKILLed under load, after adopting
//! the dead node's data directory (recovering and uploading its WAL), so
//! every message the dead node acknowledged is served by the survivor. A
//! node paused past its lease while its data directory is still locked is
//! not adopted (no two writers on one WAL).

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Acked, Server, create_topic, etcd_test_url, http, publish_until_refused, read_all, verify_acked,
};

const TOPIC: &str = "failover";
const QUEUES: u32 = 4;
const LEASE_TTL_MS: u64 = 2000;

/// The environment of one node of the pair: shared namespace, object store
/// and master key; its own node id.
fn node_env(url: &str, shared: &Path, node: &str) -> Vec<(String, String)> {
    vec![
        ("STRATA_METADATA_URL".into(), url.into()),
        ("STRATA_NODE_ID".into(), node.into()),
        ("STRATA_SERVING_STANDBY".into(), "true".into()),
        (
            "STRATA_SERVING_LEASE_TTL_MS".into(),
            LEASE_TTL_MS.to_string(),
        ),
        (
            "STRATA_OBJECT_STORE_ROOT".into(),
            shared.join("objects").display().to_string(),
        ),
        (
            "STRATA_AUTH_MASTER_KEY_FILE".into(),
            shared.join("master.key").display().to_string(),
        ),
        ("STRATA_CACHE_BLOCK_DISK_DIR".into(), "none".into()),
    ]
}

fn start(dir: &Path, env: &[(String, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start(dir, &env)
}

/// Node-a serving `TOPIC` with `queues` queues, and node-b standing by on
/// the same namespace, object store and master key (it prints its address,
/// so the task ends, only once it serves). The directories live as long as
/// the returned guards.
struct Pair {
    a: Server,
    standby: tokio::task::JoinHandle<Server>,
    _dirs: [tempfile::TempDir; 3],
}

async fn pair(url: &str, queues: u32) -> Pair {
    let shared = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let env_a = node_env(url, shared.path(), "node-a");
    let env_b = node_env(url, shared.path(), "node-b");
    let a = start(dir_a.path(), &env_a);
    create_topic(&a.url, TOPIC, queues).await;
    // Node-b signs requests in as the namespace's admin too.
    std::fs::copy(
        dir_a.path().join("admin-credentials"),
        dir_b.path().join("admin-credentials"),
    )
    .unwrap();
    let b_dir = dir_b.path().to_path_buf();
    let standby = tokio::task::spawn_blocking(move || start(&b_dir, &env_b));
    Pair {
        a,
        standby,
        _dirs: [shared, dir_a, dir_b],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_adopts_a_killed_node_and_serves_everything_it_acknowledged() {
    let Some(url) = etcd_test_url("failover-kill") else {
        return;
    };
    let Pair { a, standby, _dirs } = pair(&url, QUEUES).await;

    let acked: Acked = Arc::default();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (url, acked) = (a.url.clone(), acked.clone());
            tokio::spawn(publish_until_refused(
                url,
                TOPIC,
                QUEUES,
                format!("w{w}"),
                acked,
                w,
                1500,
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!standby.is_finished(), "node-b served while node-a did");
    a.kill();
    let killed = Instant::now();
    for w in writers {
        w.await.unwrap();
    }
    let b = standby.await.unwrap();
    let took = killed.elapsed();

    let total = acked.lock().unwrap().len();
    assert!(total > 50, "too little load: {total}");
    verify_acked(&b.url, TOPIC, QUEUES, &acked, 0).await;
    // The survivor takes new writes after the adopted ones.
    let client = http();
    let resp = client
        .post(format!("{}/v1/topics/{TOPIC}/messages", b.url))
        .json(&serde_json::json!({ "messages": [{ "body": "after", "queue": 0 }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // The registry records who adopted node-a's WAL.
    let cluster: serde_json::Value = client
        .get(format!("{}/v1/cluster", b.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let states: Vec<(&str, &str, Option<&str>)> = cluster["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap_or_default(),
                n["state"].as_str().unwrap_or_default(),
                n["adopted_by"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("node-a", "adopted", Some("node-b")),
            ("node-b", "live", None)
        ],
        "{cluster}"
    );
    eprintln!(
        "failover after SIGKILL: node-b served {:.2} s after the kill (lease {LEASE_TTL_MS} ms), {} acknowledged messages all present",
        took.as_secs_f64(),
        total
    );
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_keeps_its_locked_data_directory_and_a_killed_one_is_adopted() {
    let Some(url) = etcd_test_url("failover-pause") else {
        return;
    };
    let Pair { a, standby, _dirs } = pair(&url, 1).await;

    // Paused for three leases: its lease lapses, but its data directory is
    // still locked by a live process, so node-b must not adopt it.
    let pid = a.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3 * LEASE_TTL_MS)).await;
    assert!(
        !standby.is_finished(),
        "node-b took over a live node's data directory"
    );
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap();
    // Back, it renews its own lease and serves on.
    let client = http();
    let mut published = false;
    for _ in 0..50 {
        let resp = client
            .post(format!("{}/v1/topics/{TOPIC}/messages", a.url))
            .json(&serde_json::json!({ "messages": [{ "body": "still here" }] }))
            .send()
            .await
            .unwrap();
        if resp.status().as_u16() == 200 {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(published, "node-a did not serve again after SIGCONT");
    assert!(!standby.is_finished());

    a.kill();
    let b = standby.await.unwrap();
    let stored = read_all(&b.url, TOPIC, 0).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1, b"still here");
    b.stop();
}
