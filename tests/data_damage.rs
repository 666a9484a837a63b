//! Damage on disk that no crash explains: a start refuses it, saying what
//! and how to proceed, and `strata check --cut-damage` gives up exactly the
//! records after it; a lost WAL starts again past what was uploaded.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{BIN, Server, bodies, create_topic, http, read_all, wal_segments};

/// One write (group commit) is at most 4 KiB, and nothing is uploaded.
const ENV: &[(&str, &str)] = &[
    ("STRATA_WAL_GROUP_COMMIT_MAX_BYTES", "4096"),
    ("STRATA_COMPACTOR_UPLOAD_INTERVAL_MS", "3600000"),
    ("STRATA_COMPACTOR_UPLOAD_TRIGGER_BYTES", "1099511627776"),
];

async fn publish(url: &str, body: &str) {
    let resp = http()
        .post(format!("{url}/v1/topics/t/messages"))
        .json(&serde_json::json!({"messages": [{"body": body, "queue": 0}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

/// Runs the binary with `args` and the test environment to its end.
fn run(args: &[&str], data_dir: &Path) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("STRATA_LOG_LEVEL", "warn")
        .stdin(Stdio::null());
    for (k, v) in ENV {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Starts `strata serve`, which must refuse and exit; one that keeps
/// running started on damaged data.
fn refused_start(data_dir: &Path) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--http-addr",
        "127.0.0.1:0",
        "--grpc-addr",
        "127.0.0.1:0",
    ])
    .arg("--data-dir")
    .arg(data_dir)
    .env("STRATA_LOG_LEVEL", "warn")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in ENV {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    for _ in 0..300 {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            assert!(!out.status.success(), "{}", text(&out));
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("strata serve started on damaged data");
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_damage_before_acknowledged_records_is_refused_until_given_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), ENV);
    create_topic(&server.url, "t", 1).await;
    for i in 0..40 {
        publish(&server.url, &format!("m{i:02}-{}", "x".repeat(400))).await;
    }
    server.kill();

    // One flipped byte in the tenth message's record, with 30 acknowledged
    // messages (about 13 KiB, more than one 4 KiB write) after it.
    let segment = wal_segments(dir.path()).pop().unwrap();
    let original = std::fs::read(&segment).unwrap();
    let mut bytes = original.clone();
    let tenth = bytes.windows(4).position(|w| w == b"m09-").unwrap();
    bytes[tenth + 100] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();

    let serve = refused_start(dir.path());
    let refused = text(&serve);
    assert!(refused.contains("bytes follow it"), "{refused}");
    assert!(refused.contains("--cut-damage"), "{refused}");
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bytes,
        "a refused start cuts nothing"
    );

    let check = run(&["check"], dir.path());
    assert!(!check.status.success(), "{}", text(&check));
    assert!(text(&check).contains("--cut-damage"), "{}", text(&check));
    // With --json a refusal is a report too, naming the damage.
    let refused = run(&["--json", "check"], dir.path());
    assert!(!refused.status.success(), "{}", text(&refused));
    let report: serde_json::Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["damage"]["store"], "wal", "{report}");
    assert_eq!(
        report["damage"]["file"].as_str(),
        segment.to_str(),
        "{report}"
    );
    let offset = report["damage"]["offset"].as_u64().unwrap();
    assert!(offset <= (tenth + 100) as u64, "{report}");
    assert!(report["error"].as_str().unwrap().contains("--cut-damage"));

    let cut = run(&["check", "--cut-damage"], dir.path());
    assert!(cut.status.success(), "{}", text(&cut));
    let said = text(&cut);
    assert!(said.contains("saved to"), "{said}");
    assert!(said.contains("ok: a node can start"), "{said}");

    let server = Server::start(dir.path(), ENV);
    let got = bodies(&read_all(&server.url, "t", 0).await);
    let kept: Vec<String> = got.iter().map(|b| b[..3].to_string()).collect();
    let expected: Vec<String> = (0..9).map(|i| format!("m{i:02}")).collect();
    assert_eq!(
        kept, expected,
        "the records before the damage, and only those"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_a_healthy_directory_and_refuses_a_running_node() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), ENV);
    create_topic(&server.url, "t", 1).await;
    for i in 0..5 {
        publish(&server.url, &format!("m{i}")).await;
    }
    let busy = run(&["check"], dir.path());
    assert!(!busy.status.success());
    assert!(
        text(&busy).contains("in use by another Strata process"),
        "{}",
        text(&busy)
    );
    server.kill();

    let out = run(&["--json", "check"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["metadata"], "embedded");
    assert_eq!(report["wal_records"], 5, "{report}");
    assert_eq!(report["wal_cut"], serde_json::Value::Null);
    assert_eq!(report["ok"], true);
    assert_eq!(report["damage"], serde_json::Value::Null);

    let missing = run(&["check"], &dir.path().join("nope"));
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("is not a directory"),
        "{}",
        text(&missing)
    );
    // A directory no node ran in (a mistyped path, a volume not mounted):
    // refused, and left as it was.
    let empty = tempfile::tempdir().unwrap();
    let nothing = run(&["check"], empty.path());
    assert!(!nothing.status.success());
    assert!(
        text(&nothing).contains("holds no Strata data"),
        "{}",
        text(&nothing)
    );
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_journal_damage_before_later_commits_is_refused_until_given_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), ENV);
    for i in 0..6 {
        create_topic(&server.url, &format!("t{i}"), 1).await;
    }
    server.kill();

    // The journal is written from its start again after each checkpoint
    // (at every start): damage its first record, with later ones after it.
    let journal = dir.path().join("meta.redb.journal");
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes[16 + 30] ^= 0x01;
    std::fs::write(&journal, &bytes).unwrap();

    let serve = refused_start(dir.path());
    let refused = text(&serve);
    assert!(refused.contains("is damaged, yet group"), "{refused}");
    assert!(refused.contains("--cut-damage"), "{refused}");
    assert_eq!(std::fs::read(&journal).unwrap(), bytes, "nothing replayed");

    let refused = run(&["--json", "check"], dir.path());
    assert!(!refused.status.success(), "{}", text(&refused));
    let report: serde_json::Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(report["damage"]["store"], "metadata_journal", "{report}");
    assert_eq!(report["damage"]["file"].as_str(), journal.to_str());

    let cut = run(&["--json", "check", "--cut-damage"], dir.path());
    assert!(cut.status.success(), "{}", text(&cut));
    let report: serde_json::Value = serde_json::from_slice(&cut.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["journal_cut"]["cut_bytes"].as_u64().unwrap() > 0);
    assert!(report["journal_cut"]["later_group_found"].as_u64().unwrap() > 1);
    let saved = dir.path().join("meta.redb.journal.damaged");
    assert!(std::fs::metadata(saved).unwrap().len() > 0);
    Server::start(dir.path(), ENV).stop();
}
