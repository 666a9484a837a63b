//! Failover on shared metadata (etcd): a standby node takes over the
//! namespace when the serving node is SIGKILLed under load, after adopting
//! the dead node's data directory (recovering and uploading its WAL), so
//! every message the dead node acknowledged is served by the survivor. A
//! node paused past its lease while its data directory is still locked is
//! not adopted (no two writers on one WAL); one whose directory is destroyed
//! is declared lost by an operator, and the standby goes on without it.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Acked, Server, create_topic, etcd_test_url, http, publish_until_refused, read_all, verify_acked,
};
use strata_metadata::LOST_OFFSETS_GAP;

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
    // A publish refused while node-a's renewal was still due (the fence
    // is checked after the WAL write) may be stored too: not acknowledged,
    // not lost. Every copy is the one message.
    let stored = read_all(&b.url, TOPIC, 0).await;
    assert!(!stored.is_empty());
    for (_, body) in &stored {
        assert_eq!(body, b"still here");
    }
    b.stop();
}

/// Node-a's data directory destroyed after a SIGKILL: the standby cannot
/// adopt it and waits, rather than lose what only that WAL held, until an
/// operator declares node-a lost with `strata metadata forget-node` (no
/// node serves HTTP meanwhile). Then it serves every message that had been
/// uploaded, goes on past a gap of offsets, and node-a may not come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_from_a_serving_node_declared_lost() {
    let Some(url) = etcd_test_url("failover-lost") else {
        return;
    };
    let Pair { a, standby, _dirs } = pair(&url, QUEUES).await;
    let [shared, dir_a, _] = &_dirs;
    let publish = |url: String, queue: u32, body: String| async move {
        let resp = http()
            .post(format!("{url}/v1/topics/{TOPIC}/messages"))
            .json(&serde_json::json!({ "messages": [{ "body": body, "queue": queue }] }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            200,
            "{}",
            resp.text().await.unwrap()
        );
        let reply: serde_json::Value = resp.json().await.unwrap();
        reply["messages"][0]["offset"].as_u64().expect("offset")
    };
    let mut uploaded = Vec::new();
    for i in 0..20u32 {
        let body = format!("uploaded-{i}");
        publish(a.url.clone(), i % QUEUES, body.clone()).await;
        uploaded.push((i % QUEUES, body));
    }
    let began = Instant::now();
    while upload_lag(&a.url).await > 0 {
        assert!(began.elapsed() < Duration::from_secs(30), "never uploaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Acknowledged, perhaps only in node-a's WAL: these may go with it.
    let mut maybe = std::collections::BTreeSet::new();
    for i in 0..8u32 {
        let body = format!("wal-{i}");
        publish(a.url.clone(), i % QUEUES, body.clone()).await;
        maybe.insert(body);
    }
    a.kill();
    let lost_dir = dir_a.path().with_extension("lost");
    std::fs::rename(dir_a.path(), &lost_dir).unwrap();

    let env = node_env(&url, shared.path(), "node-a");
    let forget = |confirm: bool| {
        let cwd = tempfile::tempdir().unwrap();
        let mut args = vec!["metadata", "forget-node", "node-a"];
        if confirm {
            args.push("--lose-unuploaded-messages");
        }
        let out = std::process::Command::new(common::BIN)
            .args(&args)
            .envs(env.iter().cloned())
            .current_dir(cwd.path())
            .output()
            .expect("strata metadata forget-node");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said)
    };
    // Refused while its heartbeat runs, then for two leases more (it may be
    // slow rather than dead), then unless confirmed.
    let (done, said) = forget(true);
    assert!(!done, "{said}");
    assert!(
        said.contains("holds its lease") || said.contains("slow rather than dead"),
        "{said}"
    );
    let (began, mut too_soon) = (Instant::now(), false);
    loop {
        let (done, said) = forget(false);
        assert!(!done, "{said}");
        if said.contains("--lose-unuploaded-messages") {
            break;
        }
        too_soon |= said.contains("slow rather than dead");
        assert!(
            said.contains("holds its lease") || said.contains("Try again in"),
            "{said}"
        );
        assert!(began.elapsed() < Duration::from_secs(30), "{said}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(too_soon, "never refused as too soon after its lease");
    assert!(!standby.is_finished(), "node-b took over a lost directory");
    let (done, said) = forget(true);
    assert!(done, "{said}");
    assert!(
        said.contains("a standby takes the namespace over"),
        "{said}"
    );
    let forgotten = Instant::now();
    let b = standby.await.unwrap();
    let took = forgotten.elapsed();

    let mut kept = 0;
    for queue in 0..QUEUES {
        let bodies: Vec<String> = read_all(&b.url, TOPIC, queue)
            .await
            .into_iter()
            .map(|(_, body)| String::from_utf8(body).unwrap())
            .collect();
        let expected: Vec<&String> = uploaded
            .iter()
            .filter(|(q, _)| *q == queue)
            .map(|(_, body)| body)
            .collect();
        // In publishing order, then whatever of the WAL's survived.
        let (first, rest) = bodies.split_at(expected.len().min(bodies.len()));
        assert_eq!(first.iter().collect::<Vec<_>>(), expected, "queue {queue}");
        for body in rest {
            assert!(maybe.contains(body), "{body} was never published");
        }
        kept += bodies.iter().filter(|b| maybe.contains(*b)).count();
        // New messages go on past the gap: no offset of the lost WAL is
        // given to a different message.
        let offset = publish(b.url.clone(), queue, format!("after-{queue}")).await;
        assert!(offset >= LOST_OFFSETS_GAP, "queue {queue}: offset {offset}");
    }
    let cluster: serde_json::Value = http()
        .get(format!("{}/v1/cluster", b.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cluster["nodes"][0]["node"], "node-a", "{cluster}");
    assert_eq!(cluster["nodes"][0]["state"], "lost", "{cluster}");
    eprintln!(
        "standby: node-b served {:.2} s after node-a was declared lost; {kept} of {} messages \
         published after its last upload survived",
        took.as_secs_f64(),
        maybe.len()
    );

    // Its directory back: node-a may not join again.
    std::fs::rename(&lost_dir, dir_a.path()).unwrap();
    let refused = std::process::Command::new(common::BIN)
        .args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--grpc-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir_a.path())
        .envs(env.iter().cloned())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("strata serve");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains("declared lost"), "{said}");
    b.stop();
}

/// A node's engine upload lag, from its own status.
async fn upload_lag(url: &str) -> u64 {
    let status: serde_json::Value = http()
        .get(format!("{url}/v1/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    status["tiering"]["upload_lag_bytes"].as_u64().expect("lag")
}
