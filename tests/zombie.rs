//! A zombie across machines: a cluster node is paused past its lease while
//! its volume is re-attached elsewhere and adopted by a survivor. On one
//! machine the data directory's LOCK keeps a paused node's WAL from being
//! adopted (`tests/cluster.rs`); across machines nothing does, so the
//! fences must: the write fence refuses acknowledgements once heartbeats
//! lapse, and every commit is conditioned on queue epochs the survivor has
//! since raised. When the paused node resumes, nothing it does may be
//! acknowledged or become visible, and every message acknowledged before
//! the pause, or by the survivor, is there once.
//!
//! The "other machine" is simulated on this one: while the node is stopped
//! its directory is renamed (the process keeps its open files: the old
//! machine's view of the volume) and a copy takes its place at the same
//! path (the volume as re-attached to the survivor's machine, unlocked).

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::*;
use common::etcd_test_url;
use serde_json::json;

/// A publish sent straight to one node: its body, the HTTP status it got
/// (none when the connection failed), and the node that says it served it.
struct Direct {
    body: String,
    status: Option<u16>,
    served_by: Option<String>,
}

impl Direct {
    fn acked(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Publishes `body` for `tenant` to `url` only (no retries), waiting up to
/// a minute for an answer (the node may be paused).
async fn publish_direct(url: &str, tenant: &str, body: String) -> Direct {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let answer = client
        .post(format!("{url}/v1/topics/orders/messages"))
        .header("x-strata-tenant", tenant)
        .json(&json!({ "messages": [{ "body": body }] }))
        .send()
        .await;
    let (status, served_by) = match answer {
        Ok(answer) => (
            Some(answer.status().as_u16()),
            answer
                .headers()
                .get("x-strata-served-by")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        ),
        Err(_) => (None, None),
    };
    Direct {
        body,
        status,
        served_by,
    }
}

/// Moves `dir` aside to `aside` and puts a copy of it back at `dir`.
fn reattach_elsewhere(dir: &Path, aside: &Path) {
    std::fs::rename(dir, aside).expect("move the paused node's directory aside");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(aside)
        .arg(dir)
        .status()
        .expect("cp runs");
    assert!(copied.success(), "copy the volume back to its path");
}

/// The upload objects written under `node`'s id in the object store at
/// `objects` (what the node's own uploads, or an adoption of its WAL, PUT).
fn uploads_of(objects: &Path, node: &str) -> BTreeSet<String> {
    let dir = objects.join("seg").join(node);
    std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_whose_volume_was_adopted_elsewhere_is_fenced() {
    let Some(url) = etcd_test_url("cluster-zombie") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (root.path().join("node-a"), root.path().join("node-b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    // node-a uploads only every 20 s, so it still holds the messages below
    // in its WAL when paused, and tries to upload them after it resumes.
    let slow_uploads = [("STRATA_COMPACTOR_UPLOAD_INTERVAL_MS", "20000")];
    let (a, b, on_a) =
        two_nodes_with_topics([&dir_a, &dir_b], &url, shared.path(), &slow_uploads).await;
    assert!(!on_a.is_empty(), "no tenant on node-a");

    // Acknowledged by node-a before the pause: only its WAL holds them.
    let mut acked: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in (0..TENANTS).map(tenant) {
        for n in 0..10 {
            let body = format!("{t}-before-{n:02}");
            publish_until_acked(&a.url, &t, &body).await;
            acked.entry(t.clone()).or_default().push(body);
        }
    }

    let pid = a.child.id();
    signal(pid, "-STOP");
    let stopped = Instant::now();
    reattach_elsewhere(&dir_a, &root.path().join("node-a-zombie"));

    // Clients of node-a keep sending to it; their requests wait for it.
    let mut zombie_sends = Vec::new();
    for t in &on_a {
        for n in 0..3 {
            let (url, t) = (a.url.clone(), t.clone());
            let body = format!("{t}-zombie-{n}");
            zombie_sends.push(tokio::spawn(
                async move { publish_direct(&url, &t, body).await },
            ));
        }
    }

    // The survivor adopts the copy and serves every tenant.
    settled(&b.url, &["node-b"]).await;
    let moved = stopped.elapsed();
    assert_eq!(node_state(&b.url, "node-a").await, "adopted");
    for t in &on_a {
        assert_eq!(served_by(&b.url, t).await.as_deref(), Some("node-b"));
        let body = format!("{t}-survivor");
        publish_until_acked(&b.url, t, &body).await;
        acked.entry(t.clone()).or_default().push(body);
    }

    // The zombie resumes: what it was sent while paused, and what it is
    // sent now, is refused, or served by the survivor (forwarded), until
    // its heartbeat finds its record adopted and it stops.
    let uploads_before = uploads_of(&shared.path().join("objects"), "node-a");
    assert!(!uploads_before.is_empty(), "node-b uploaded node-a's WAL");
    signal(pid, "-CONT");
    let resumed = Instant::now();
    let mut late = Vec::new();
    for task in zombie_sends {
        late.push(task.await.expect("zombie send"));
    }
    for t in &on_a {
        for n in 0..3 {
            late.push(publish_direct(&a.url, t, format!("{t}-late-{n}")).await);
        }
    }
    let mut refused = BTreeSet::new();
    let mut forwarded = 0;
    for sent in late {
        if !sent.acked() {
            // Refused as unavailable (the fence), or not answered once the
            // zombie stopped; never failed otherwise.
            assert!(
                matches!(sent.status, Some(503) | None),
                "{} got {:?}",
                sent.body,
                sent.status
            );
            refused.insert(sent.body);
            continue;
        }
        assert_eq!(
            sent.served_by.as_deref(),
            Some("node-b"),
            "{} acknowledged by the zombie",
            sent.body
        );
        forwarded += 1;
        let t = sent.body.split('-').next().unwrap_or_default().to_string();
        acked.entry(t).or_default().push(sent.body);
    }

    // The zombie stops on its own, and on its way out uploads nothing:
    // its write fence refuses its last upload before it reads or writes
    // anything (before the fence, each attempt PUT an orphan object).
    let mut a = a;
    let exited = loop {
        if let Some(status) = a.child.try_wait().expect("wait for node-a") {
            break status;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(20),
            "the zombie kept running after its record was adopted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!exited.success(), "{exited:?}");
    let stopped_after = resumed.elapsed();
    let new: Vec<String> = uploads_of(&shared.path().join("objects"), "node-a")
        .difference(&uploads_before)
        .cloned()
        .collect();
    assert!(new.is_empty(), "the zombie PUT upload objects {new:?}");

    // Every acknowledged message once on the survivor, nothing the zombie
    // was refused.
    let nothing_unsure = BTreeSet::new();
    for (t, list) in &mut acked {
        list.sort();
        expect_bodies(&b.url, t, list, &nothing_unsure, "after the zombie resumed").await;
    }
    eprintln!(
        "zombie: node-a's {} tenants served by node-b {:.1} s after SIGSTOP; after SIGCONT {} of its sends refused (503 or unanswered), {forwarded} forwarded to node-b; it stopped {:.1} s after SIGCONT ({exited}), no upload object PUT; {} acknowledged messages all present once",
        on_a.len(),
        moved.as_secs_f64(),
        refused.len(),
        stopped_after.as_secs_f64(),
        acked.values().map(Vec::len).sum::<usize>()
    );
    drop(a);
    b.stop();
}
