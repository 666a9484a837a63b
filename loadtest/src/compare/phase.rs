//! One measured phase against any system: groups of producers (max rate or
//! a fixed schedule) and optional readers, one per queue.
//!
//! Every body starts with the producer's *intended* send time (8 bytes,
//! nanoseconds since a process-wide anchor) and a phase-wide message id
//! (8 bytes: group members count duplicates), so readers measure end-to-end
//! latency from the moment the message was due, not from when a stalled
//! sender got round to it (no coordinated omission). Acknowledgement
//! latency is measured the same way. Failed requests are counted, never
//! timed; a request belongs to the window its intended send time is in.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Result, bail};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::producer;
use super::reading::{self, ReadMode, ReadOutcome, ReadSpec, ReaderStats};
use super::sampler::{self, Sampled, TimelinePoint};
use crate::driver::endpoint::Endpoint;
use crate::procstat::ProcUsage;
use crate::scenario::tiering::TieringDelta;
use crate::stats::{self, LatencySummary, TaskStats};

/// Random bytes the bodies are cut from.
const POOL_BYTES: usize = 8 << 20;
/// Longest pause of a producer between its last request and its exit.
const TRANSPORT_BACKOFF: Duration = Duration::from_millis(10);
/// Extra time after the last possible request timeout before stragglers are aborted.
const JOIN_GRACE: Duration = Duration::from_secs(5);
/// Smallest body: the 8-byte send time and the 8-byte id.
pub const MIN_MESSAGE_SIZE: u32 = 16;

pub use super::stamp::{stamp, stamped_at};

/// One group of producers (one tenant, or the only group).
#[derive(Debug, Clone)]
pub struct GroupSpec {
    pub label: String,
    pub endpoint: Endpoint,
    /// The topics the group publishes to: producer i to topic i mod N.
    /// Queue q of topic t is "queue" t × queues + q in the per-queue counts.
    pub topics: Vec<String>,
    pub producers: u32,
    /// Total messages/s for the group; `None` = as fast as acknowledgements allow.
    pub rate: Option<f64>,
    /// Stop after this many messages (whole batches), warm-up included.
    pub max_messages: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct PhaseSpec {
    pub name: String,
    pub groups: Vec<GroupSpec>,
    pub queues: u32,
    pub batch: u32,
    pub message_size: u32,
    pub warmup: Duration,
    pub duration: Duration,
    pub timeout: Duration,
    pub seed: u64,
    pub readers: Option<ReadSpec>,
    /// Progress lines on stderr.
    pub progress: bool,
    /// The server process to sample (CPU, RSS).
    pub server_pid: Option<u32>,
}

/// What one producer group achieved in the measured window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupResult {
    pub label: String,
    pub producers: u32,
    pub rate: Option<f64>,
    pub requests: u64,
    pub messages: u64,
    pub payload_bytes: u64,
    pub elapsed_s: f64,
    pub msgs_per_sec: f64,
    pub mib_per_sec: f64,
    /// From the intended send time to the acknowledgement, in ms.
    pub latency_ms: LatencySummary,
    /// (quantile, ms) for the percentile chart.
    pub spectrum: Vec<(f64, f64)>,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub warmup_errors: u64,
    /// Fixed rate: scheduled in the window but never sent (senders behind).
    pub unsent_messages: u64,
    /// Acknowledged messages per queue, warm-up included (topic-major: the
    /// queues of the first topic, then those of the second, ...).
    pub acked_per_queue: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseResult {
    pub name: String,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub groups: Vec<GroupResult>,
    pub read: Option<ReadOutcome>,
    /// The server process over the measured window.
    pub server: Option<ProcUsage>,
    /// This load generator over the measured window (it shares the machine).
    pub loadgen: Option<ProcUsage>,
    /// One point per second from the phase start (warm-up included).
    pub timeline: Vec<TimelinePoint>,
    /// Strata: object-store traffic and cache counters over the phase.
    pub objects: Option<TieringDelta>,
}

/// Shared, read-only description of one producer group while it runs.
pub(crate) struct Group {
    pub(crate) endpoint: Endpoint,
    pub(crate) topics: Vec<String>,
    pub(crate) producers: u32,
    pub(crate) pacing: Option<Duration>,
    pub(crate) max_messages: u64,
    pub(crate) claimed: AtomicU64,
    /// Per topic: the next queue to publish to, round-robin over the
    /// producers of that topic (one counter per topic, so every queue of
    /// every topic gets its share).
    pub(crate) next_queue: Vec<AtomicU64>,
    pub(crate) acked: Vec<AtomicU64>,
}

/// What every task of a phase shares.
pub(crate) struct Clock {
    pub(crate) start: Instant,
    pub(crate) warm_end: Instant,
    pub(crate) end: Instant,
    pub(crate) batch: u32,
    pub(crate) message_size: u32,
    pub(crate) queues: u32,
    pub(crate) timeout: Duration,
    pub(crate) pool: Bytes,
    /// The next message id (bytes 8..16 of a body).
    pub(crate) next_id: AtomicU64,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub async fn run(spec: &PhaseSpec) -> Result<PhaseResult> {
    if spec.message_size < MIN_MESSAGE_SIZE {
        bail!("--message-size must be at least {MIN_MESSAGE_SIZE} bytes");
    }
    if spec.groups.is_empty()
        || spec
            .groups
            .iter()
            .any(|g| g.producers == 0 || g.topics.is_empty())
        || spec.queues == 0
        || spec.batch == 0
    {
        bail!("a phase needs a producer group; producers, queues and batch must be at least 1");
    }
    let mut rng = fastrand::Rng::with_seed(spec.seed);
    let mut pool = vec![0u8; POOL_BYTES + spec.message_size as usize];
    rng.fill(&mut pool);

    // Readers first: "from the end" means after this point. They read the
    // topics of the first group.
    let readers = match &spec.readers {
        Some(read) => {
            let g = &spec.groups[0];
            read.open_all(&g.endpoint, &g.topics, spec.queues, spec.timeout)
                .await?
        }
        None => Vec::new(),
    };
    let reader_stats: Vec<Arc<Mutex<ReaderStats>>> = readers
        .iter()
        .map(|_| Arc::new(Mutex::new(ReaderStats::default())))
        .collect();

    let start = Instant::now();
    let clock = Arc::new(Clock {
        start,
        warm_end: start + spec.warmup,
        end: start + spec.warmup + spec.duration,
        batch: spec.batch,
        message_size: spec.message_size,
        queues: spec.queues,
        timeout: spec.timeout,
        pool: Bytes::from(pool),
        next_id: AtomicU64::new(0),
    });
    let stop_readers = Arc::new(AtomicBool::new(false));
    let mut reader_tasks = JoinSet::new();
    if let Some(read) = &spec.readers {
        for (q, reader) in readers.into_iter().enumerate() {
            reader_tasks.spawn(reading::run(
                reader,
                read.clone(),
                q,
                clock.warm_end,
                reader_stats[q].clone(),
                stop_readers.clone(),
            ));
        }
    }

    let mut groups = Vec::new();
    let mut group_stats = Vec::new();
    let mut workers = JoinSet::new();
    for g in &spec.groups {
        let group = Arc::new(Group {
            endpoint: g.endpoint.clone(),
            topics: g.topics.clone(),
            producers: g.producers,
            pacing: g.rate.map(|r| {
                Duration::from_secs_f64(f64::from(g.producers) * f64::from(spec.batch) / r)
            }),
            max_messages: g.max_messages.unwrap_or(u64::MAX),
            claimed: AtomicU64::new(0),
            next_queue: g.topics.iter().map(|_| AtomicU64::new(0)).collect(),
            acked: (0..g.topics.len() * spec.queues as usize)
                .map(|_| AtomicU64::new(0))
                .collect(),
        });
        let stats: Vec<Arc<Mutex<TaskStats>>> = (0..g.producers)
            .map(|_| Arc::new(Mutex::new(TaskStats::default())))
            .collect();
        for (i, s) in stats.iter().enumerate() {
            workers.spawn(producer::producer(
                clock.clone(),
                group.clone(),
                i as u32,
                s.clone(),
            ));
        }
        groups.push(group);
        group_stats.push(stats);
    }

    let sampled = Arc::new(Mutex::new(Sampled::default()));
    let stop_sampler = Arc::new(tokio::sync::Notify::new());
    let sampler = tokio::spawn(sampler::run(
        sampler::Inputs {
            stop: stop_sampler.clone(),
            label: spec.name.clone(),
            start,
            warm_end: clock.warm_end,
            end: clock.end,
            producers: group_stats.iter().flatten().cloned().collect(),
            readers: reader_stats.clone(),
            server_pid: spec.server_pid,
            progress: spec.progress,
        },
        sampled.clone(),
    ));

    tokio::time::sleep_until(clock.warm_end).await;
    let first = sampler::usage_sample(spec.server_pid);

    let deadline = clock.end + spec.timeout + TRANSPORT_BACKOFF + JOIN_GRACE;
    while let Ok(next) = tokio::time::timeout_at(deadline, workers.join_next()).await {
        match next {
            Some(Ok(())) => {}
            Some(Err(e)) => bail!("a producer task failed: {e}"),
            None => break,
        }
    }
    if !workers.is_empty() {
        eprintln!(
            "{}: some producers did not stop in time and were aborted",
            spec.name
        );
        workers.abort_all();
    }
    let producers_done = Instant::now();
    if let Some(read) = &spec.readers {
        let until = producers_done.max(clock.end) + read.drain;
        if let ReadMode::Group { .. } = read.mode {
            // Members never stop by themselves: until they have everything.
            let acked = groups[0].acked.iter().map(|a| a.load(Ordering::Relaxed));
            reading::wait_consumed(&reader_stats, acked.sum(), until).await;
            stop_readers.store(true, Ordering::Relaxed);
        }
        while let Ok(Some(next)) = tokio::time::timeout_at(until, reader_tasks.join_next()).await {
            if let Err(e) = next {
                bail!("a reader task failed: {e}");
            }
        }
        stop_readers.store(true, Ordering::Relaxed);
        let hard = Instant::now() + spec.timeout + JOIN_GRACE;
        while let Ok(Some(_)) = tokio::time::timeout_at(hard, reader_tasks.join_next()).await {}
        reader_tasks.abort_all();
    }
    let last = sampler::usage_sample(spec.server_pid);
    let window_s = producers_done
        .saturating_duration_since(clock.warm_end)
        .as_secs_f64();
    stop_sampler.notify_one();
    if tokio::time::timeout(JOIN_GRACE, sampler).await.is_err() {
        eprintln!("{}: the sampler did not stop", spec.name);
    }
    let sampled = std::mem::take(&mut *lock(&sampled));
    let usage = |f: Option<_>, l: Option<_>, max| match (f, l) {
        (Some(f), Some(l)) => Some(ProcUsage::between(f, l, max, window_s)),
        _ => None,
    };

    let group_results = spec
        .groups
        .iter()
        .zip(&groups)
        .zip(&group_stats)
        .map(|((g, state), stats)| group_result(g, state, stats, &clock, spec.duration))
        .collect();
    let read = spec
        .readers
        .as_ref()
        .map(|r| reading::outcome(r, &reader_stats, &groups[0].acked));
    Ok(PhaseResult {
        name: spec.name.clone(),
        warmup_s: spec.warmup.as_secs_f64(),
        duration_s: spec.duration.as_secs_f64(),
        groups: group_results,
        read,
        server: usage(first.0, last.0, sampled.server_rss_max),
        loadgen: usage(first.1, last.1, 0),
        timeline: sampled.timeline,
        objects: None,
    })
}

fn group_result(
    g: &GroupSpec,
    state: &Group,
    stats: &[Arc<Mutex<TaskStats>>],
    clock: &Clock,
    duration: Duration,
) -> GroupResult {
    let mut total = TaskStats::default();
    for s in stats {
        total.merge(&lock(s));
    }
    let elapsed = total
        .last_completion
        .map(|t| Instant::from_std(t).saturating_duration_since(clock.warm_end))
        .filter(|d| !d.is_zero())
        .unwrap_or(duration);
    GroupResult {
        label: g.label.clone(),
        producers: g.producers,
        rate: g.rate,
        requests: total.requests,
        messages: total.messages,
        payload_bytes: total.bytes,
        elapsed_s: elapsed.as_secs_f64(),
        msgs_per_sec: stats::per_second(total.messages, elapsed),
        mib_per_sec: stats::mib_per_second(total.bytes, elapsed),
        latency_ms: total.latency.summary(),
        spectrum: total.latency.spectrum(),
        errors: total.error_count(),
        errors_by_kind: total.errors,
        warmup_errors: total.warmup_errors,
        unsent_messages: total.unsent_messages,
        acked_per_queue: state
            .acked
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        // Times before the anchor's first use saturate to it; use a later one.
        let now = Instant::now() + Duration::from_millis(5);
        let at = stamped_at(&stamp(now)).expect("stamp");
        let diff = if at > now { at - now } else { now - at };
        assert!(diff < Duration::from_micros(1), "{diff:?}");
        assert!(stamped_at(b"short").is_none());
    }
}
