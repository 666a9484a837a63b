//! `strata metadata bench`: how fast a metadata store commits the way Strata
//! does, so an operator can size etcd (or compare it with the embedded
//! store) before deploying. It needs no running node.
//!
//! Each worker owns a few keys and repeats Strata's commonest commit shape
//! (POP state, offsets, ownership): check the key still holds what this
//! worker last wrote, then overwrite it. Everything is written under a
//! throwaway namespace (etcd) or a temporary file (embedded) and removed.

// Measures real elapsed time: that is the result.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use strata_metadata::store::{Check, MetaStore, Txn, TxnOutcome};
use strata_metadata::{EtcdAddress, EtcdStore, RedbStore};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// "embedded" (a redb file in a temporary directory, or --dir) or
    /// etcd://host:port[,host:port...][/namespace].
    #[arg(long, env = "STRATA_METADATA_URL", default_value = "embedded")]
    pub url: String,
    /// How long to commit for, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub seconds: u64,
    /// Concurrent committers (Strata commits from many queues at once).
    #[arg(long, default_value_t = 16, value_parser = at_least_one)]
    pub concurrency: usize,
    /// Bytes of each value (POP state of a queue is a few hundred).
    #[arg(long, default_value_t = 256)]
    pub value_bytes: usize,
    /// Directory of the embedded store's file [default: a temporary one].
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// What one bench run measured.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub backend: String,
    pub concurrency: usize,
    pub seconds: f64,
    pub commits: u64,
    pub commits_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Linearizable single-key reads per second, measured after the commits.
    pub reads_per_sec: f64,
}

pub async fn bench(args: BenchArgs, json: bool) -> anyhow::Result<()> {
    let nanos = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map_or(0, |d| d.as_nanos());
    let mut scratch = None;
    let store: Arc<dyn MetaStore> = if args.url.trim() == "embedded" {
        let dir = match &args.dir {
            Some(d) => d.clone(),
            None => {
                let d = std::env::temp_dir().join(format!(
                    "strata-metadata-bench-{}-{nanos:x}",
                    std::process::id()
                ));
                scratch = Some(d.clone());
                d
            }
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        RedbStore::open(&dir.join("bench.redb")).context("opening the embedded store")?
    } else {
        let mut address = EtcdAddress::parse(&args.url)?;
        // A sibling of the namespace, not inside it: keys under
        // `<namespace>/` belong to the nodes using it.
        address.namespace = format!("{}-bench-{nanos:x}", address.namespace);
        EtcdStore::connect(&address)
            .await
            .context("connecting to etcd")?
    };
    let report = run(store.clone(), &args).await;
    clean_up(&store, args.concurrency).await;
    drop(store);
    if let Some(dir) = scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
    let report = report?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{}: {} commits in {:.1} s by {} committers: {:.0} commits/s, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {:.0} reads/s",
            report.backend,
            report.commits,
            report.seconds,
            report.concurrency,
            report.commits_per_sec,
            report.p50_ms,
            report.p99_ms,
            report.max_ms,
            report.reads_per_sec
        );
    }
    Ok(())
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{text:?} is not a whole number of at least 1")),
    }
}

fn worker_key(worker: usize) -> Vec<u8> {
    format!("bench/{worker:05}").into_bytes()
}

async fn run(store: Arc<dyn MetaStore>, args: &BenchArgs) -> anyhow::Result<BenchReport> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency)
        .map(|w| {
            let store = store.clone();
            let value_bytes = args.value_bytes;
            tokio::spawn(async move { commit_loop(store, w, value_bytes, deadline).await })
        })
        .collect();
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.context("bench worker")??);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let reads_per_sec = read_rate(&store, args.concurrency).await?;
    Ok(BenchReport {
        backend: store.backend_name().to_string(),
        concurrency: args.concurrency,
        seconds,
        commits: latencies.len() as u64,
        commits_per_sec: latencies.len() as f64 / seconds,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        reads_per_sec,
    })
}

/// Commits check-and-overwrite on this worker's key until `deadline`.
async fn commit_loop(
    store: Arc<dyn MetaStore>,
    worker: usize,
    value_bytes: usize,
    deadline: Instant,
) -> anyhow::Result<Vec<Duration>> {
    let key = worker_key(worker);
    let mut last: Option<Vec<u8>> = None;
    let mut latencies = Vec::new();
    let mut n = 0u64;
    while Instant::now() < deadline {
        let mut value = vec![b'x'; value_bytes.max(8)];
        value[..8].copy_from_slice(&n.to_be_bytes());
        let check = match &last {
            Some(v) => Check::ValueEquals {
                key: key.clone(),
                value: v.clone(),
            },
            None => Check::Absent { key: key.clone() },
        };
        let txn = Txn::new().check(check).put(key.clone(), value.clone());
        let t = Instant::now();
        match store.commit(txn).await? {
            TxnOutcome::Committed => latencies.push(t.elapsed()),
            TxnOutcome::CheckFailed { .. } => {
                bail!(
                    "worker {worker}: its own key changed underneath; is another bench running on the same namespace?"
                )
            }
        }
        last = Some(value);
        n += 1;
    }
    Ok(latencies)
}

/// Single-key reads per second for two seconds, from as many readers.
async fn read_rate(store: &Arc<dyn MetaStore>, concurrency: usize) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let started = Instant::now();
    let readers: Vec<_> = (0..concurrency)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = worker_key(w);
                let mut reads = 0u64;
                while Instant::now() < deadline {
                    store.get(&key).await?;
                    reads += 1;
                }
                anyhow::Ok(reads)
            })
        })
        .collect();
    let mut total = 0;
    for r in readers {
        total += r.await.context("bench reader")??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// Deletes the bench's keys (best effort: they are in a throwaway namespace).
async fn clean_up(store: &Arc<dyn MetaStore>, concurrency: usize) {
    let mut txn = Txn::new();
    for w in 0..concurrency {
        txn = txn.delete(worker_key(w));
    }
    if let Err(e) = store.commit(txn).await {
        eprintln!("could not delete the bench keys: {e}");
    }
}
