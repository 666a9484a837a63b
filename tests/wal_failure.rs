//! A node whose WAL fails (a write refused, as on a full disk) stops by
//! itself with a message saying why, so a supervisor restarts it; the
//! restart recovers the log, keeps every acknowledged message and takes
//! publishes again.

#![allow(clippy::disallowed_methods)] // waits on a real process

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::Server;
use serde_json::json;

const TOPIC: &str = "full";
/// Files of the node may not grow past this (`ulimit -f`, 512-byte blocks):
/// its WAL segment reaches it after a few dozen publishes.
const FILE_LIMIT_BLOCKS: u64 = 16 * 1024;
const BODY_BYTES: usize = 128 * 1024;

fn body(i: usize) -> String {
    let mut b = format!("message {i:05} ").into_bytes();
    b.resize(BODY_BYTES, b'x');
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_wal_stops_the_node_and_a_restart_keeps_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A write past the limit fails with EFBIG instead of killing the
    // process with SIGXFSZ, as a write to a full disk fails with ENOSPC.
    let script = format!("trap '' XFSZ; ulimit -f {FILE_LIMIT_BLOCKS}; exec \"$0\" \"$@\"");
    // The block cache's disk file is preallocated: memory only.
    let env = [("STRATA_CACHE_BLOCK_DISK_DIR", "none")];
    let mut server = Server::start_in_shell(&data, &env, &script);
    common::create_topic(&server.url, TOPIC, 1).await;

    let client = common::http();
    let mut acknowledged = Vec::new();
    let mut refusal = None;
    for i in 0..200 {
        let sent = client
            .post(format!("{}/v1/topics/{TOPIC}/messages", server.url))
            .json(&json!({"messages": [{"body_base64": body(i)}]}))
            .send()
            .await;
        match sent {
            Ok(r) if r.status() == 200 => acknowledged.push(i),
            Ok(r) => {
                refusal = Some((r.status().as_u16(), r.text().await.unwrap_or_default()));
                break;
            }
            // The node may already be stopping.
            Err(_) => break,
        }
    }
    assert!(
        acknowledged.len() > 8,
        "the limit leaves room for a few publishes: {}",
        acknowledged.len()
    );
    if let Some((status, text)) = &refusal {
        assert_eq!(*status, 503, "{text}");
        assert!(text.contains("write-ahead log"), "{text}");
    }

    // It stops by itself, with an error exit and a message naming the cause.
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the node with a failed WAL is still running: {:?}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "{status:?}");
    // The reader thread may still be taking the last lines.
    let mut said = String::new();
    for _ in 0..50 {
        said = server.stderr().join("\n");
        if said.contains("stopped because the write-ahead log failed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        said.contains("stopped because the write-ahead log failed") && said.contains("restart"),
        "{said}"
    );

    // The restart (without the limit) recovers the log.
    drop(server);
    let server = Server::start(&data, &[]);
    let stored = common::read_all(&server.url, TOPIC, 0).await;
    let stored: Vec<String> = stored
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(&b[..14]).into_owned())
        .collect();
    for i in &acknowledged {
        let want = format!("message {i:05}");
        assert!(
            stored.iter().any(|s| s.trim_end() == want),
            "acknowledged {want} is missing after the restart ({} stored)",
            stored.len()
        );
    }
    let reply = client
        .post(format!("{}/v1/topics/{TOPIC}/messages", server.url))
        .json(&json!({"messages": [{"body_base64": body(999)}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200, "{}", reply.text().await.unwrap());
    server.stop();
}
