//! The etcd backend against a real etcd cluster: the shared conformance
//! suite, txn limits, and a member going away.
//!
//! `scripts/test.sh` starts a 3-member cluster on 127.0.0.1 and sets
//! `STRATA_TEST_ETCD_ENDPOINTS` (and `STRATA_TEST_REQUIRE_ETCD`, so these
//! tests fail rather than skip when it is missing). Each test works in a
//! namespace of its own.

use std::sync::Arc;

use strata_metadata::store::{self, Check, MetaStore, Txn, TxnOutcome};
use strata_metadata::{EtcdAddress, EtcdStore, MetaError, conformance};

/// The test cluster's endpoints, or `None` (with the reason printed) when
/// no cluster was started and none is required.
fn endpoints() -> Option<String> {
    match std::env::var("STRATA_TEST_ETCD_ENDPOINTS") {
        Ok(e) => Some(e),
        Err(_) if std::env::var_os("STRATA_TEST_REQUIRE_ETCD").is_some() => {
            panic!("STRATA_TEST_REQUIRE_ETCD is set but STRATA_TEST_ETCD_ENDPOINTS is not")
        }
        Err(_) => {
            eprintln!(
                "SKIPPED: STRATA_TEST_ETCD_ENDPOINTS not set (scripts/test.sh starts a 3-member etcd cluster)"
            );
            None
        }
    }
}

/// A namespace no other test or run uses.
fn namespace(test: &str) -> String {
    let nanos = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map_or(0, |d| d.as_nanos());
    format!("strata-test/{test}/{}-{nanos}", std::process::id())
}

async fn connect(endpoints: &str, test: &str) -> Arc<EtcdStore> {
    connect_in(endpoints, &namespace(test)).await
}

async fn connect_in(endpoints: &str, namespace: &str) -> Arc<EtcdStore> {
    let url = format!("etcd://{endpoints}/{namespace}");
    let address = EtcdAddress::parse(&url).expect("test URL parses");
    EtcdStore::connect(&address).await.expect("etcd connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_conforms() {
    let Some(endpoints) = endpoints() else { return };
    conformance::run_all(connect(&endpoints, "conformance").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_do_not_see_each_other() {
    let Some(endpoints) = endpoints() else { return };
    let a: Arc<dyn MetaStore> = connect(&endpoints, "ns-a").await;
    let b: Arc<dyn MetaStore> = connect(&endpoints, "ns-b").await;
    conformance::namespaces_are_disjoint(&a, &b).await;
}

/// The largest commits Strata makes (claiming a 10,000-queue topic, an
/// index batch) fit the limits `scripts/services.sh` and the docs give etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_key_txn_commits_whole() {
    let Some(endpoints) = endpoints() else { return };
    let s = connect(&endpoints, "big-txn").await;
    let mut txn = Txn::new();
    for i in 0..10_000u32 {
        let key = format!("owner/{i:05}");
        txn = txn
            .check(Check::Absent {
                key: key.clone().into_bytes(),
            })
            .put(key, vec![7u8; 64]);
    }
    assert_eq!(s.commit(txn).await.unwrap(), TxnOutcome::Committed);
    let all = s.scan(b"owner/", b"owner0", 20_000).await.unwrap();
    assert_eq!(all.len(), 10_000);
}

/// Past etcd's own limit, a txn fails as a whole, with a message that
/// names the etcd setting to raise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_txn_over_the_servers_limit_writes_nothing_and_says_why() {
    let Some(endpoints) = endpoints() else { return };
    let s = connect(&endpoints, "over-limit").await;
    let mut txn = Txn::new();
    for i in 0..70_000u32 {
        txn = txn.put(format!("k/{i:06}"), "v");
    }
    match s.commit(txn).await {
        Err(MetaError::Backend(m)) => assert!(m.contains("--max-txn-ops"), "{m}"),
        other => panic!("expected a backend error, got {other:?}"),
    }
    assert!(s.scan(b"k/", b"", 1).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_a_clear_error() {
    let address = EtcdAddress::parse("etcd://127.0.0.1:1/x").unwrap();
    let err = EtcdStore::connect(&address).await.unwrap_err().to_string();
    assert!(
        err.contains("no etcd member answers at 127.0.0.1:1"),
        "{err}"
    );
}

/// Commits `during/000..n` (each: absent, then put), retrying a failed
/// commit after `pause` as Strata's callers do. A retry may find its first
/// attempt applied after all (its answer was lost). Panics past
/// `max_failures` failed attempts; returns how many there were.
// Pauses in real time between attempts on a real cluster.
#[allow(clippy::disallowed_methods)]
async fn commit_all(
    s: &EtcdStore,
    n: u32,
    max_failures: usize,
    pause: std::time::Duration,
) -> usize {
    let mut failures = 0;
    for i in 0..n {
        let key = format!("during/{i:03}");
        let txn = Txn::new()
            .check(Check::Absent {
                key: key.clone().into_bytes(),
            })
            .put(key.clone(), "v");
        loop {
            match s.commit(txn.clone()).await {
                Ok(TxnOutcome::Committed) => break,
                Ok(TxnOutcome::CheckFailed { .. }) => {
                    assert_eq!(s.get(key.as_bytes()).await.unwrap(), Some(b"v".to_vec()));
                    break;
                }
                Err(e) => {
                    failures += 1;
                    eprintln!("commit {i} failed: {e}");
                    assert!(
                        failures <= max_failures,
                        "commits keep failing with two members up: {e}"
                    );
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
    failures
}

/// The pid file `scripts/services.sh` keeps for member `i`.
fn member_pid_file(i: usize) -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("STRATA_TEST_ETCD_DIR")?;
    Some(std::path::Path::new(&dir).join(format!("etcd{i}.pid")))
}

/// SIGKILLs the member the store talks to, of three: the store keeps
/// committing and reading on the other two (a quorum). The member is then started again from its
/// data directory, and catches up.
// Waits in real time for a real etcd process to rejoin.
#[allow(clippy::disallowed_methods)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_continue_with_one_member_killed() {
    let Some(endpoints) = endpoints() else { return };
    let Some(pid_file) = member_pid_file(0) else {
        eprintln!("SKIPPED: STRATA_TEST_ETCD_DIR not set (scripts/test.sh sets it)");
        return;
    };
    let ns = namespace("member-down");
    let s = connect_in(&endpoints, &ns).await;
    store::put(&s, b"before".to_vec(), b"1".to_vec())
        .await
        .unwrap();

    let pid = std::fs::read_to_string(&pid_file).expect("member pid file");
    let pid = pid.trim();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("member is running");
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());

    // Requests went to member 0; they move to the others. If member 0 led
    // the cluster, commits fail until the others elect a leader (about a
    // second); a failed commit is retried, as Strata's callers do. A retry
    // may find its first attempt applied after all (its answer was lost).
    let failures = commit_all(&s, 100, 100, std::time::Duration::from_millis(100)).await;
    eprintln!("{failures} failed attempts while the cluster moved on");
    assert_eq!(s.scan(b"during/", b"", 1000).await.unwrap().len(), 100);
    assert_eq!(s.get(b"before").await.unwrap(), Some(b"1".to_vec()));

    // Back from its data directory, the member catches up; reads through it
    // alone see every commit made while it was down.
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(pid_file.with_extension("log"))
        .expect("member log");
    // The member outlives this test; scripts/services.sh stops it by the
    // pid written below.
    #[allow(clippy::zombie_processes)]
    let child = std::process::Command::new(&args[0])
        .args(&args[1..])
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("member restarts");
    std::fs::write(&pid_file, child.id().to_string()).expect("pid file");
    let own_endpoint = endpoints.split(',').next().expect("three endpoints");
    let mut seen = 0;
    for _ in 0..300 {
        let alone = EtcdAddress::parse(&format!("etcd://{own_endpoint}/{ns}")).unwrap();
        if let Ok(through) = EtcdStore::connect(&alone).await {
            seen = through
                .scan(b"during/", b"", 1000)
                .await
                .map_or(0, |v| v.len());
            if seen == 100 {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 100, "the restarted member did not catch up");
}

/// SIGSTOPs the member the store talks to: it neither answers nor closes
/// its connections (a hung or partitioned member). At most the requests in
/// flight when it stopped fail, after the request timeout; the store then
/// works on the others. The member is resumed afterwards.
// Waits in real time on a real etcd process.
#[allow(clippy::disallowed_methods)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_member_costs_at_most_one_failed_commit() {
    let Some(endpoints) = endpoints() else { return };
    let Some(pid_file) = member_pid_file(0) else {
        eprintln!("SKIPPED: STRATA_TEST_ETCD_DIR not set (scripts/test.sh sets it)");
        return;
    };
    // A store that talks to member 0 first.
    let s = connect(&endpoints, "member-hung").await;
    store::put(&s, b"before".to_vec(), b"1".to_vec())
        .await
        .unwrap();
    let pid = std::fs::read_to_string(&pid_file).expect("member pid file");
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, pid.trim()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill {sig}");
    };
    signal("-STOP");
    let failures = commit_all(&s, 30, 3, std::time::Duration::ZERO).await;
    signal("-CONT");
    eprintln!("{failures} failed commits while member 0 hung");
    assert_eq!(s.scan(b"during/", b"", 100).await.unwrap().len(), 30);
}

/// etcd keeps every superseded value until its history is compacted; each
/// call compacts to the revision the previous one saw, so values
/// overwritten before that are gone while current ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_compacted_to_the_revision_of_the_previous_call() {
    let Some(endpoints) = endpoints() else { return };
    let ns = namespace("compaction");
    let s = connect_in(&endpoints, &ns).await;
    store::put(&s, b"k".to_vec(), b"1".to_vec()).await.unwrap();
    let first_endpoint = endpoints.split(',').next().expect("an endpoint");
    let mut raw = etcd_client::Client::connect([format!("http://{first_endpoint}")], None)
        .await
        .expect("raw client");
    let key = format!("{ns}/k");
    let written = raw.get(key.clone(), None).await.expect("read k");
    let first_write = written.kvs()[0].mod_revision();
    store::put(&s, b"k".to_vec(), b"2".to_vec()).await.unwrap();

    assert_eq!(
        s.compact_history().await.unwrap(),
        None,
        "first call only looks"
    );
    store::put(&s, b"k".to_vec(), b"3".to_vec()).await.unwrap();
    let floor = s
        .compact_history()
        .await
        .unwrap()
        .expect("second call compacts");
    assert!(floor > first_write, "{floor} <= {first_write}");

    let old = raw
        .get(
            key.clone(),
            Some(etcd_client::GetOptions::new().with_revision(first_write)),
        )
        .await;
    assert!(
        old.as_ref()
            .is_err_and(|e| e.to_string().contains("compacted")),
        "the overwritten value is still readable: {old:?}"
    );
    assert_eq!(s.get(b"k").await.unwrap(), Some(b"3".to_vec()));
    // Another node compacting too, behind or ahead, is not an error.
    let other = connect_in(&endpoints, &ns).await;
    assert_eq!(other.compact_history().await.unwrap(), None);
    other.compact_history().await.unwrap();
    s.compact_history().await.unwrap();
}

/// A port nothing listens on (bound, then let go).
fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = listener.local_addr().expect("its address");
    drop(listener);
    addr.to_string()
}

/// Needs no etcd: a start names the members that do not answer and why,
/// at once when told not to wait, and after waiting as long as it may.
#[allow(clippy::disallowed_methods)] // measures the real wait
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_waits_for_etcd_then_says_which_members_do_not_answer() {
    let dead = dead_endpoint();
    let address = EtcdAddress::parse(&format!("etcd://{dead}/strata-test")).expect("parses");
    let clock = strata_common::SystemClock;

    let err = EtcdStore::connect_waiting(&address, std::time::Duration::ZERO, &clock)
        .await
        .expect_err("nothing listens there");
    let text = err.to_string();
    assert!(
        text.contains(&format!("no etcd member answers at {dead}")),
        "{text}"
    );
    assert!(text.contains("refused"), "{text}");
    assert!(!text.contains("waited"), "{text}");

    let wait = std::time::Duration::from_millis(2500);
    let started = std::time::Instant::now();
    let err = EtcdStore::connect_waiting(&address, wait, &clock)
        .await
        .expect_err("nothing listens there");
    assert!(started.elapsed() >= wait, "gave up before the wait ended");
    let text = err.to_string();
    assert!(
        text.contains("no etcd member answers") && text.contains("metadata.connect_wait_ms"),
        "{text}"
    );
}
