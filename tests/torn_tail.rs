//! Damage the WAL tail on disk between runs: the server must recover every
//! record before the damage, cut the rest, say what it cut, and go on
//! serving with dense offsets.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::{Server, bodies, create_topic, http, read_all, wal_segments};

fn last_segment(data_dir: &Path) -> PathBuf {
    wal_segments(data_dir).pop().expect("a WAL segment")
}

async fn publish(url: &str, body: &str) -> u64 {
    let resp = http()
        .post(format!("{url}/v1/topics/t/messages"))
        .json(&serde_json::json!({"messages": [{"body": body, "queue": 0}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    v["messages"][0]["offset"].as_u64().unwrap()
}

async fn recovery(url: &str) -> serde_json::Value {
    let v: serde_json::Value = http()
        .get(format!("{url}/v1/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["recovery"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_the_last_record_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    create_topic(&server.url, "t", 1).await;
    for i in 0..20 {
        publish(&server.url, &format!("m{i}")).await;
    }
    server.kill();

    let garbage = [0xA5u8; 37];
    std::fs::OpenOptions::new()
        .append(true)
        .open(last_segment(dir.path()))
        .unwrap()
        .write_all(&garbage)
        .unwrap();

    let server = Server::start(dir.path(), &[]);
    let r = recovery(&server.url).await;
    assert_eq!(r["truncated_bytes"], 37, "{r}");
    assert!(r["truncated_path"].as_str().unwrap().ends_with(".wal"));
    let expected: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies(&read_all(&server.url, "t", 0).await), expected);
    assert_eq!(publish(&server.url, "after").await, 20);
    server.kill();

    // A further restart finds a clean log.
    let server = Server::start(dir.path(), &[]);
    assert_eq!(recovery(&server.url).await["truncated_bytes"], 0);
    assert_eq!(read_all(&server.url, "t", 0).await.len(), 21);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_record_is_cut_and_everything_before_survives() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    create_topic(&server.url, "t", 1).await;
    for i in 0..10 {
        publish(&server.url, &format!("keep{i}")).await;
    }
    publish(&server.url, &"torn".repeat(100)).await;
    server.kill();

    // Chop the middle of the last record off, as a torn write would.
    let segment = last_segment(dir.path());
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 150)
        .unwrap();

    let server = Server::start(dir.path(), &[]);
    let r = recovery(&server.url).await;
    assert!(r["truncated_bytes"].as_u64().unwrap() > 0, "{r}");
    assert!(!r["truncated_reason"].as_str().unwrap().is_empty());
    let expected: Vec<String> = (0..10).map(|i| format!("keep{i}")).collect();
    assert_eq!(bodies(&read_all(&server.url, "t", 0).await), expected);
    assert_eq!(publish(&server.url, "next").await, 10, "offsets stay dense");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_the_last_record_is_detected_by_the_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    create_topic(&server.url, "t", 1).await;
    for i in 0..5 {
        publish(&server.url, &format!("ok{i}")).await;
    }
    publish(&server.url, "this record gets a flipped byte").await;
    server.kill();

    let segment = last_segment(dir.path());
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes.len() - 5;
    bytes[at] ^= 0xFF;
    std::fs::write(&segment, &bytes).unwrap();

    let server = Server::start(dir.path(), &[]);
    let r = recovery(&server.url).await;
    assert!(r["truncated_bytes"].as_u64().unwrap() > 0, "{r}");
    let got = bodies(&read_all(&server.url, "t", 0).await);
    assert_eq!(got, (0..5).map(|i| format!("ok{i}")).collect::<Vec<_>>());
    server.stop();
}
