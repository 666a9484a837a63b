//! The embedded store under SIGKILL: a child process commits as fast as it
//! can (conditional puts and deletes from eight writers, checkpoints every
//! few dozen groups) and prints each commit the store acknowledged; it is
//! killed at random moments. Reopening must show every acknowledged commit,
//! each writer's chain unbroken, whether the kill landed before, during or
//! after a checkpoint. Some kills land while the child opens the store
//! (replaying the journal the previous kill left).

#![allow(clippy::disallowed_methods)] // the test kills real processes on a real timer

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_metadata::store::{Check, MetaStore, Txn, TxnOutcome};
use strata_metadata::{Checkpoints, RedbStore};

const CHILD_DIR: &str = "STRATA_REDB_KILL_DIR";
const WRITERS: u64 = 8;
const CYCLES: usize = 8;

fn tight() -> Checkpoints {
    Checkpoints {
        groups: 40,
        bytes: 64 << 10,
    }
}

fn counter_key(writer: u64) -> Vec<u8> {
    format!("count/{writer}").into_bytes()
}

fn step_key(writer: u64, n: u64) -> Vec<u8> {
    format!("step/{writer}/{n:012}").into_bytes()
}

async fn counter(store: &dyn MetaStore, writer: u64) -> u64 {
    match store.get(&counter_key(writer)).await.unwrap() {
        Some(v) => String::from_utf8(v).unwrap().parse().unwrap(),
        None => 0,
    }
}

/// Step n of a writer: the counter moves from n-1 to n (checked), step n is
/// recorded, and step n-2 is deleted, so replay covers puts, deletes and
/// checks.
fn step(writer: u64, n: u64) -> Txn {
    let check = if n == 1 {
        Check::Absent {
            key: counter_key(writer),
        }
    } else {
        Check::ValueEquals {
            key: counter_key(writer),
            value: (n - 1).to_string().into_bytes(),
        }
    };
    let mut txn = Txn::new()
        .check(check)
        .put(counter_key(writer), n.to_string())
        .put(step_key(writer, n), vec![b'x'; 64 + (n % 200) as usize]);
    if n > 2 {
        txn = txn.delete(step_key(writer, n - 2));
    }
    txn
}

/// The child: commits until killed, printing `<writer> <n>` per commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by redb_survives_sigkill_at_random_moments in a child process"]
async fn child_commits_until_killed() {
    let dir = std::env::var(CHILD_DIR).expect("run by the parent test");
    let store = RedbStore::open_with(&Path::new(&dir).join("meta.redb"), 8 << 20, tight()).unwrap();
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let (store, out) = (Arc::clone(&store), Arc::clone(&out));
        tasks.spawn(async move {
            let mut n = counter(store.as_ref(), writer).await;
            // Until killed.
            while n < u64::MAX {
                n += 1;
                let outcome = store.commit(step(writer, n)).await.unwrap();
                assert_eq!(outcome, TxnOutcome::Committed, "writer {writer} step {n}");
                let mut out = out.lock().unwrap();
                writeln!(out, "{writer} {n}").unwrap();
                out.flush().unwrap();
            }
        });
    }
    // A writer that fails ends the child loudly.
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_survives_sigkill_at_random_moments() {
    let seed = match std::env::var("STRATA_CRASH_SEED") {
        Ok(s) => s.parse().expect("STRATA_CRASH_SEED is a u64"),
        Err(_) => fastrand::u64(..),
    };
    eprintln!("seed {seed} (STRATA_CRASH_SEED={seed} replays the kill schedule)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    let mut acked: BTreeMap<u64, u64> = BTreeMap::new();
    let mut replays = 0;
    let stderr_path = dir.path().join("child.stderr");
    for cycle in 0..CYCLES {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "child_commits_until_killed",
                "--nocapture",
            ])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let _ = first_tx.send(());
                let Ok(line) = line else { break };
                let mut parts = line.split(' ');
                let (Some(w), Some(n)) = (parts.next(), parts.next()) else {
                    continue;
                };
                if let (Ok(w), Ok(n)) = (w.parse::<u64>(), n.parse::<u64>()) {
                    seen.push((w, n));
                }
            }
            seen
        });
        let during_open = cycle % 4 == 3;
        if during_open {
            // Somewhere in start-up: opening, replaying, first commits.
            std::thread::sleep(Duration::from_millis(rng.u64(0..60)));
        } else {
            // The clock starts at the first acknowledgement, so a slow
            // start-up does not eat the time meant for committing.
            let started = first_rx.recv_timeout(Duration::from_secs(60));
            let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            assert!(
                started.is_ok(),
                "cycle {cycle}: the child acknowledged nothing:\n{stderr}"
            );
            tokio::time::sleep(Duration::from_millis(rng.u64(50..1000))).await;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            panic!("cycle {cycle}: the child ended by itself ({status}):\n{stderr}");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let seen = reader.join().unwrap();
        for (w, n) in seen {
            let last = acked.entry(w).or_default();
            *last = (*last).max(n);
        }
        let store = RedbStore::open_with(&path, 8 << 20, tight()).unwrap();
        if store.replayed_at_open() > 0 {
            replays += 1;
        }
        for (w, n) in acked.clone() {
            let now = counter(store.as_ref(), w).await;
            // The commit in flight at the kill may or may not have landed.
            assert!(
                now == n || now == n + 1,
                "cycle {cycle}: writer {w} acknowledged step {n} but the store holds {now}"
            );
            assert!(store.get(&step_key(w, now)).await.unwrap().is_some());
            if now > 2 {
                assert_eq!(store.get(&step_key(w, now - 2)).await.unwrap(), None);
            }
            let steps = store
                .scan(
                    format!("step/{w}/").as_bytes(),
                    format!("step/{w}0").as_bytes(),
                    10,
                )
                .await
                .unwrap();
            assert_eq!(steps.len(), now.min(2) as usize, "writer {w}: {steps:?}");
            acked.insert(w, now);
        }
        drop(store);
        // A clean close checkpoints: nothing is left to replay.
        let reopened = RedbStore::open_with(&path, 8 << 20, tight()).unwrap();
        assert_eq!(reopened.replayed_at_open(), 0);
    }
    assert!(
        replays > 0,
        "no kill left a journal to replay: the test did not exercise recovery"
    );
}
