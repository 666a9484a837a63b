//! The `publish` scenario: N tasks publish batches of random messages, as
//! fast as acknowledgements allow or on a fixed schedule, at each
//! concurrency level in turn.
//!
//! Timeline of one level: warm-up (unmeasured) then the measured window.
//! A request belongs to the window its (intended) send time falls in; no new
//! request starts after the window ends, and in-flight ones are bounded by
//! the per-request timeout. Latency is the time from the (intended) send to
//! the durable acknowledgement; failed requests are counted, never timed.

use std::io::IsTerminal as _;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use bytes::Bytes;
use reqwest::Url;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cli::PublishArgs;
use crate::driver::strata_body::encode_publish_body;
use crate::driver::strata_http::{ServerStatus, StrataHttp, TopicOutcome};
use crate::report::{LevelResult, MachineInfo, Parameters, Report, WalDelta};
use crate::stats::{self, TaskStats};
use crate::{Target, connect};

use super::publish_task::{Level, TRANSPORT_BACKOFF, lock, progress, worker};

/// Upper bound on the memory spent on pre-generated request bodies.
const POOL_BYTES: usize = 64 << 20;
/// Most distinct request bodies in the pool.
const POOL_MAX_BODIES: usize = 256;
/// Extra time granted after the last possible request timeout before the
/// remaining tasks are aborted.
const JOIN_GRACE: Duration = Duration::from_secs(5);

/// Runs the scenario and returns its report (printing is the caller's job).
pub async fn run(args: &PublishArgs) -> Result<Report> {
    validate(args)?;
    let started_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let target = connect(&args.target, args.timeout).await?;
    let client = &target.client;
    // A tenant's own key (a tenant's share of a cluster) may not read the
    // service status: measure anyway, without the server's version and
    // WAL counters.
    let (version, node_id) = match client.status().await {
        Ok(status) => (status.version, status.node_id),
        Err(e) if client.healthy().await => {
            eprintln!("{e:#}: the report leaves out the server version and WAL counters");
            ("unknown".to_string(), "unknown".to_string())
        }
        Err(e) => return Err(e.context("cannot read the server's /v1/status")),
    };
    let kind = args.deliver_after.map(|_| "delay");
    let topic_outcome = client
        .create_topic_of_type(&args.topic, args.queues, kind)
        .await?;
    if topic_outcome == TopicOutcome::AlreadyExisted {
        eprintln!(
            "topic {:?} already exists; reusing it (its queue count may differ from --queues {})",
            args.topic, args.queues
        );
    }
    let url = client.publish_url(&args.topic)?;
    let pool = Arc::new(payload_pool(args)?);

    let mut levels = Vec::with_capacity(args.concurrency.len());
    for &concurrency in &args.concurrency {
        let level = run_level(client, &url, &pool, args, concurrency, None).await?;
        if !args.output.quiet {
            eprintln!(
                "c={concurrency}: done, {} messages, {:.0} msgs/s, p99 {:.3} ms, {} errors",
                level.messages, level.msgs_per_sec, level.latency_ms.p99, level.errors
            );
        }
        levels.push(level);
    }

    Ok(Report {
        tool: "strata-loadtest".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        scenario: "publish".into(),
        started_unix_ms,
        parameters: parameters(args, &target, topic_outcome),
        machine: MachineInfo::collect(version, node_id),
        levels,
    })
}

pub(crate) fn validate(args: &PublishArgs) -> Result<()> {
    if args.concurrency.is_empty() {
        bail!("--concurrency needs at least one level");
    }
    if args.duration.is_zero() {
        bail!("--duration must be longer than zero");
    }
    if args.timeout.is_zero() {
        bail!("--timeout must be longer than zero");
    }
    if let Some(rate) = args.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        bail!("--rate must be a positive number of messages per second, not {rate}");
    }
    if args.max_messages == Some(0) {
        bail!("--max-messages must be at least 1");
    }
    if args
        .deliver_after
        .is_some_and(|d| d.is_zero() || d > Duration::from_secs(365 * 86_400))
    {
        bail!("--deliver-after must be longer than zero and at most a year");
    }
    let body = u64::from(args.message_size) * u64::from(args.batch);
    if body > POOL_BYTES as u64 {
        bail!("--message-size x --batch is {body} bytes per request; the limit is {POOL_BYTES}");
    }
    Ok(())
}

fn parameters(args: &PublishArgs, target: &Target, topic: TopicOutcome) -> Parameters {
    Parameters {
        server: target.client.base().to_string(),
        spawned: args
            .target
            .spawn
            .as_ref()
            .map(|_| crate::report::STRATA_BIN.to_string()),
        spawn_data_dir: target
            .spawned
            .as_ref()
            .map(|_| crate::report::TMP_DIR.to_string()),
        topic: args.topic.clone(),
        topic_created: topic == TopicOutcome::Created,
        queues: args.queues,
        concurrency: args.concurrency.clone(),
        message_size: args.message_size,
        batch: args.batch,
        duration_s: args.duration.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
        rate: args.rate,
        max_messages: args.max_messages,
        timeout_s: args.timeout.as_secs_f64(),
        seed: args.seed,
        deliver_after_s: args.deliver_after.map(|d| d.as_secs_f64()),
    }
}

/// Pre-encoded request bodies of `--batch` random messages each.
pub(crate) fn payload_pool(args: &PublishArgs) -> Result<Vec<Bytes>> {
    payload_pool_of(args, POOL_MAX_BODIES)
}

/// Like [`payload_pool`] with up to `max_bodies` bodies (still at most
/// [`POOL_BYTES`] of messages). Scenarios that measure stored bytes use a
/// large pool: a body repeated within the object format's compression window
/// would make the data look compressible.
pub(crate) fn payload_pool_of(args: &PublishArgs, max_bodies: usize) -> Result<Vec<Bytes>> {
    let raw = (args.message_size as usize).saturating_mul(args.batch as usize);
    let deliver_at_ms = args.deliver_after.map(|after| {
        let due = SystemTime::now() + after;
        due.duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    });
    let bodies = (POOL_BYTES / raw.max(1)).clamp(1, max_bodies.max(1));
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let mut messages = vec![vec![0u8; args.message_size as usize]; args.batch as usize];
    (0..bodies)
        .map(|_| {
            for m in &mut messages {
                rng.fill(m);
            }
            encode_publish_body(&messages, deliver_at_ms)
        })
        .collect()
}

/// One level: `concurrency` tasks publish for `args.warmup + args.duration`
/// (or until `args.max_messages`). With `route_queues`, request k goes to
/// queue k mod `route_queues`.
pub(crate) async fn run_level(
    client: &StrataHttp,
    url: &Url,
    pool: &Arc<Vec<Bytes>>,
    args: &PublishArgs,
    concurrency: u32,
    route_queues: Option<u32>,
) -> Result<LevelResult> {
    let start = Instant::now();
    let warm_end = start + args.warmup;
    let end = warm_end + args.duration;
    let pacing = args.rate.map(|rate| {
        // Each task sends concurrency * batch / rate seconds apart.
        Duration::from_secs_f64(f64::from(concurrency) * f64::from(args.batch) / rate)
    });
    let level = Arc::new(Level {
        client: client.clone(),
        url: url.clone(),
        pool: pool.clone(),
        concurrency,
        batch: args.batch,
        message_size: args.message_size,
        start,
        warm_end,
        end,
        pacing,
        max_messages: args.max_messages.unwrap_or(u64::MAX),
        claimed: AtomicU64::new(0),
        route_queues,
        next_queue: AtomicU64::new(0),
    });
    let stats: Vec<Arc<Mutex<TaskStats>>> = (0..concurrency)
        .map(|_| Arc::new(Mutex::new(TaskStats::default())))
        .collect();

    let mut workers = JoinSet::new();
    for (index, task_stats) in stats.iter().enumerate() {
        workers.spawn(worker(level.clone(), index as u32, task_stats.clone()));
    }
    // Progress lines only for a person watching: not with --quiet, and not
    // when stderr is a file or a pipe.
    let watched = !args.output.quiet && std::io::stderr().is_terminal();
    let progress = watched.then(|| tokio::spawn(progress(level.clone(), stats.clone())));

    // WAL counters at the start of the measured window.
    tokio::time::sleep_until(warm_end).await;
    let before = client.status().await;
    let before_at = Instant::now();

    let deadline = end + args.timeout + TRANSPORT_BACKOFF + JOIN_GRACE;
    let mut aborted = false;
    loop {
        match tokio::time::timeout_at(deadline, workers.join_next()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => bail!("a publishing task failed: {e}"),
            Ok(None) => break,
            Err(_) => {
                workers.abort_all();
                aborted = true;
            }
        }
    }
    if let Some(p) = progress {
        p.abort();
    }
    if aborted {
        eprintln!("c={concurrency}: some tasks did not stop in time and were aborted");
    }
    let after = client.status().await;
    let after_at = Instant::now();

    let mut total = TaskStats::default();
    for s in &stats {
        total.merge(&lock(s));
    }
    // The measured window runs from the end of warm-up to the last measured
    // completion; a level with no completions counts the full window.
    let elapsed = total
        .last_completion
        .map(|t| Instant::from_std(t).saturating_duration_since(warm_end))
        .filter(|d| !d.is_zero())
        .unwrap_or(args.duration);
    let wal = wal_delta(&before, &after, after_at - before_at, total.messages);
    Ok(LevelResult {
        concurrency,
        requests: total.requests,
        messages: total.messages,
        payload_bytes: total.bytes,
        elapsed_s: elapsed.as_secs_f64(),
        msgs_per_sec: stats::per_second(total.messages, elapsed),
        payload_mib_per_sec: stats::mib_per_second(total.bytes, elapsed),
        latency_ms: total.latency.summary(),
        errors: total.error_count(),
        errors_by_kind: total.errors,
        warmup_errors: total.warmup_errors,
        unsent_messages: total.unsent_messages,
        wal,
    })
}

fn wal_delta(
    before: &Result<ServerStatus>,
    after: &Result<ServerStatus>,
    window: Duration,
    messages: u64,
) -> WalDelta {
    match (before, after) {
        (Ok(b), Ok(a)) => {
            let syncs = a.wal.syncs.saturating_sub(b.wal.syncs);
            WalDelta {
                syncs,
                appends: a.wal.appends.saturating_sub(b.wal.appends),
                synced_bytes: a.wal.synced_bytes.saturating_sub(b.wal.synced_bytes),
                window_s: window.as_secs_f64(),
                syncs_per_sec: stats::per_second(syncs, window),
                msgs_per_sync: stats::messages_per_sync(messages, syncs),
            }
        }
        (b, a) => {
            for e in [b.as_ref().err(), a.as_ref().err()].into_iter().flatten() {
                eprintln!("warning: no WAL numbers for this level: {e:#}");
            }
            WalDelta {
                syncs: 0,
                appends: 0,
                synced_bytes: 0,
                window_s: window.as_secs_f64(),
                syncs_per_sec: 0.0,
                msgs_per_sync: None,
            }
        }
    }
}
