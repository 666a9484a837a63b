//! The compactor as its own process (`strata compactor`) beside a node run
//! with `compactor.mode = "separate"`, metadata on the etcd cluster the test
//! command starts. Node and compactor are SIGKILLed at random moments, apart
//! and together, while producers publish; after every restart each
//! acknowledged message is readable exactly once at its offset, though the
//! compactor uploads, merges and collects garbage behind the node's back. At
//! the end the node's WAL has been released below the compactor's
//! checkpoint, no range points at a missing object and no object is orphaned.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{
    Acked, BIN, Server, assert_objects_match_ranges, create_topic, etcd_test_url, http,
    publish_until_refused, tiny_tiering_env, verify_acked,
};

const TOPIC: &str = "apart";
const QUEUES: u32 = 3;
const CYCLES: usize = 14;

/// `strata compactor` for the node whose data directory is `dir`.
fn compactor(dir: &Path, env: &[(&str, &str)], extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("compactor")
        .args(extra)
        .env("STRATA_DATA_DIR", dir)
        .env("STRATA_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn start_compactor(dir: &Path, env: &[(&str, &str)]) -> Child {
    compactor(dir, env, &[])
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn strata compactor")
}

async fn status(url: &str) -> serde_json::Value {
    http()
        .get(format!("{url}/v1/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_node_and_compactor_loses_nothing_and_leaves_no_garbage() {
    let Some(url) = etcd_test_url("separate-compactor") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut env = tiny_tiering_env(&[
        ("STRATA_COMPACTOR_MODE", "separate"),
        ("STRATA_RETENTION_CHECK_INTERVAL_MS", "200"),
    ]);
    env.push(("STRATA_METADATA_URL", url.as_str()));
    let acked: Acked = Arc::default();
    let mut rng = fastrand::Rng::with_seed(0x5e9a_7a7e);
    let mut worker: Option<Child> = None;
    let mut last_checkpoint = 0u64;
    let mut compactor_kills = 0;
    for cycle in 0..CYCLES {
        let node = Server::start(dir.path(), &env);
        if cycle == 0 {
            create_topic(&node.url, TOPIC, QUEUES).await;
            let s = status(&node.url).await;
            assert_eq!(s["tiering"]["compactor"], "separate", "{s}");
        }
        if worker.is_none() {
            worker = Some(start_compactor(dir.path(), &env));
        }
        verify_acked(&node.url, TOPIC, QUEUES, &acked, cycle).await;
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let tag = format!("c{cycle}w{w}");
                tokio::spawn(publish_until_refused(
                    node.url.clone(),
                    TOPIC,
                    QUEUES,
                    tag,
                    acked.clone(),
                    rng.u64(..),
                    3000,
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.u64(200..700))).await;
        // Half the cycles also kill the compactor, mid-pass; it comes back
        // at once or only with the next cycle.
        if rng.bool()
            && let Some(mut c) = worker.take()
        {
            let _ = c.kill();
            let _ = c.wait();
            compactor_kills += 1;
            tokio::time::sleep(Duration::from_millis(rng.u64(50..300))).await;
            if rng.bool() {
                worker = Some(start_compactor(dir.path(), &env));
            }
        }
        let checkpoint = status(&node.url).await["tiering"]["checkpoint_lsn"]
            .as_u64()
            .unwrap();
        assert!(checkpoint >= last_checkpoint, "the checkpoint went back");
        last_checkpoint = checkpoint;
        node.kill();
        for w in writers {
            w.await.unwrap();
        }
    }
    assert!(compactor_kills > 0);
    assert!(last_checkpoint > 0, "the separate compactor never uploaded");

    // Quiet: the compactor uploads everything; the node follows and
    // releases its WAL.
    let node = Server::start(dir.path(), &env);
    if worker.is_none() {
        worker = Some(start_compactor(dir.path(), &env));
    }
    verify_acked(&node.url, TOPIC, QUEUES, &acked, CYCLES).await;
    let mut quiet = serde_json::Value::Null;
    for _ in 0..100 {
        quiet = status(&node.url).await;
        if quiet["tiering"]["upload_lag_bytes"] == 0 && quiet["wal"]["segments"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(quiet["tiering"]["upload_lag_bytes"], 0, "{quiet}");
    assert_eq!(quiet["wal"]["segments"], 1, "WAL not released: {quiet}");
    // Everything is read back from object storage now.
    verify_acked(&node.url, TOPIC, QUEUES, &acked, CYCLES + 1).await;

    // A second compactor on the same volume is refused while one runs.
    let second = compactor(dir.path(), &env, &["--once"]).output().unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("one compactor per WAL volume"), "{err}");

    node.stop();
    // GC (grace 0) collects what the kills orphaned.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    if let Some(mut c) = worker.take() {
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        assert!(c.wait().unwrap().success(), "compactor exit on SIGTERM");
    }
    let once = compactor(dir.path(), &env, &["--once"]).output().unwrap();
    assert!(
        once.status.success(),
        "{}",
        String::from_utf8_lossy(&once.stderr)
    );

    let address = strata_metadata::EtcdAddress::parse(&url).unwrap();
    let store = strata_metadata::EtcdStore::connect(&address).await.unwrap();
    let catalog = strata_metadata::Catalog::new(store);
    let referenced = assert_objects_match_ranges(&catalog, &dir.path().join("objects")).await;
    assert!(
        referenced.iter().any(|o| o.starts_with("merged/")),
        "no merge ran: {referenced:?}"
    );
    eprintln!(
        "{CYCLES} node kills, {compactor_kills} compactor kills; {} acknowledged; {} objects referenced",
        acked.lock().unwrap().len(),
        referenced.len()
    );
}

#[test]
fn a_separate_compactor_needs_shared_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let out = compactor(dir.path(), &[], &["--once"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("metadata.url"), "{err}");
    let out = compactor(dir.path(), &[], &["--volume", "no-equals-sign"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NODE_ID=DATA_DIR"), "{err}");
}

/// One `strata compactor` for several nodes' volumes (nodes sharing one
/// metadata namespace): each volume is uploaded for its own node, fenced
/// by that node's queue ownership, and advances that node's checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_compactor_process_serves_several_volumes() {
    use strata_common::{Message, QueueKey};
    use strata_metadata::{MessageType, NewTopic, Retention};
    use strata_tiering::wal::write_durable_mark;
    use strata_tiering::{FileWal, WalConfig};

    let Some(url) = etcd_test_url("separate-compactor") else {
        return;
    };
    let address = strata_metadata::EtcdAddress::parse(&url).unwrap();
    let catalog =
        strata_metadata::Catalog::new(strata_metadata::EtcdStore::connect(&address).await.unwrap());
    let spec = NewTopic {
        queues: 2,
        message_type: MessageType::Normal,
        retention: Retention::Unlimited,
        retention_bytes: None,
    };
    let topic = catalog.create_topic("acme", "t", spec, 0).await.unwrap();
    let nodes = ["node-a", "node-b"];
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut durable = Vec::new();
    for (i, (node, dir)) in nodes.iter().zip(&dirs).enumerate() {
        let queue = QueueKey::new(topic.id, i as u32);
        catalog.claim_queue(queue, node).await.unwrap();
        let wal_dir = dir.path().join("wal");
        let (wal, _) = FileWal::open(WalConfig::new(&wal_dir), |_, _| Ok(())).unwrap();
        for base in [0u64, 2] {
            let messages: Vec<Message> = (0..2)
                .map(|m| Message {
                    id: format!("{node}-{base}-{m}"),
                    key: None,
                    tag: None,
                    properties: Vec::new(),
                    body: bytes::Bytes::from(format!("body of {node} {base} {m}")),
                })
                .collect();
            let batch =
                strata_tiering::batch::encode_batch(queue, 1, base, 1_000, &messages).unwrap();
            wal.submit(batch).await.unwrap().durable().await.unwrap();
        }
        write_durable_mark(&wal_dir, wal.durable_lsn()).unwrap();
        durable.push(wal.durable_lsn());
        wal.close().unwrap();
    }
    let objects = tempfile::tempdir().unwrap();
    let env = [("STRATA_METADATA_URL", url.as_str())];
    let out = compactor(objects.path(), &env, &["--once"])
        .args(nodes.iter().zip(&dirs).flat_map(|(node, dir)| {
            [
                "--volume".to_string(),
                format!("{node}={}", dir.path().display()),
            ]
        }))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("node node-a: 1 uploads") && err.contains("node node-b: 1 uploads"),
        "{err}"
    );
    let ranges = catalog.all_ranges().await.unwrap();
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(
            catalog.wal_checkpoint(node).await.unwrap(),
            Some(durable[i])
        );
        let queue = QueueKey::new(topic.id, i as u32);
        let offsets: Vec<(u64, u64)> = ranges[&queue]
            .iter()
            .map(|r| (r.base_offset, r.end_offset))
            .collect();
        assert_eq!(offsets, vec![(0, 4)], "{node}");
    }
}
