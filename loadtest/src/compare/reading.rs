//! Readers of a phase: one per queue, tailing new messages (end-to-end
//! latency) or reading a backlog from the start (catch-up throughput); or
//! the members of one consumer group per topic, receiving from every queue
//! and acknowledging each batch (end-to-end and acknowledgement latency).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::phase::{lock, stamped_at};
use crate::driver::RequestError;
use crate::driver::endpoint::{Endpoint, GROUP_BATCH, Member, ReadFrom, Reader};
use crate::stats::{self, Latency, LatencySummary};

/// A reader gives up after this many failed reads in a row.
const MAX_CONSECUTIVE_FAILURES: u32 = 10;
const READ_BACKOFF: Duration = Duration::from_millis(50);

/// How a phase reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// One reader per queue of every topic, by offset.
    Queues(ReadFrom),
    /// `consumers` members of one consumer group, spread over the topics
    /// (member i on topic i mod N), created at the end of each topic.
    Group { consumers: u32 },
}

/// The consumer group of the `consume` scenario.
pub const GROUP: &str = "bench";

#[derive(Debug, Clone)]
pub struct ReadSpec {
    pub mode: ReadMode,
    /// Record end-to-end latency (tail readers; not for old backlogs).
    pub e2e: bool,
    /// Per queue of every topic (topic-major): stop after this many
    /// messages (catch-up).
    pub expected: Option<Vec<u64>>,
    /// How long readers may run after the producers stopped.
    pub drain: Duration,
    /// Long-poll wait of one read.
    pub wait: Duration,
}

/// A reader or a group member, opened before the producers start.
#[derive(Debug)]
pub enum Opened {
    Queue(Reader),
    Member(Member),
}

impl ReadSpec {
    /// Opens every reader (one per queue of every topic, topic-major) or
    /// every member of the group.
    pub async fn open_all(
        &self,
        endpoint: &Endpoint,
        topics: &[String],
        queues: u32,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Opened>> {
        let mut opened = Vec::new();
        match self.mode {
            ReadMode::Queues(from) => {
                for topic in topics {
                    for q in 0..queues {
                        let reader =
                            endpoint
                                .reader(topic, q, from, timeout)
                                .await
                                .map_err(|e| {
                                    anyhow::anyhow!(
                                        "cannot open a reader on {topic} queue {q}: {e}"
                                    )
                                })?;
                        opened.push(Opened::Queue(reader));
                    }
                }
            }
            ReadMode::Group { consumers } => {
                for topic in topics {
                    endpoint.create_group(topic, queues, GROUP, timeout).await?;
                }
                for i in 0..consumers {
                    let topic = &topics[i as usize % topics.len()];
                    let member = endpoint
                        .group_member(topic, queues, GROUP, i, timeout)
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "cannot open member {i} of group {GROUP} on {topic}: {e}"
                            )
                        })?;
                    opened.push(Opened::Member(member));
                }
            }
        }
        Ok(opened)
    }
}

#[derive(Debug, Default)]
pub struct ReaderStats {
    /// End-to-end latency of messages sent in the measured window.
    pub e2e: Latency,
    /// Since the last sample (progress line, timeline).
    pub interval: Latency,
    pub interval_messages: u64,
    pub messages: u64,
    pub bytes: u64,
    pub started: Option<Instant>,
    pub last_read: Option<Instant>,
    pub errors: BTreeMap<String, u64>,
    pub gave_up: bool,
    /// Group members: one acknowledgement request asked for after the
    /// warm-up (the drain included).
    pub ack: Latency,
    /// Group members: the id of every message received.
    pub ids: Vec<u64>,
}

/// What the readers of a phase did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadOutcome {
    pub readers: u32,
    pub messages: u64,
    pub bytes: u64,
    /// From the readers' start to the last message read.
    pub elapsed_s: f64,
    pub msgs_per_sec: f64,
    pub mib_per_sec: f64,
    /// Catch-up: messages the readers were to read, and those they did not.
    pub expected: Option<u64>,
    pub unread: u64,
    /// Tail: from the intended send time to the reader having the message.
    pub e2e_latency_ms: Option<LatencySummary>,
    pub e2e_spectrum: Vec<(f64, f64)>,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Group members: one acknowledgement request (a received batch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_latency_ms: Option<LatencySummary>,
    /// Group members: distinct messages received beyond what the producers
    /// had acknowledged (a publish stored after its producer gave up on it).
    #[serde(default)]
    pub extra_received: u64,
    /// Group members: messages received more than once (each repeat).
    #[serde(default)]
    pub duplicates: u64,
    /// Members or readers that gave up after repeated failures.
    #[serde(default)]
    pub gave_up: u32,
}

/// Runs one reader or group member until it is done or told to stop.
pub async fn run(
    opened: Opened,
    spec: ReadSpec,
    index: usize,
    warm_end: Instant,
    stats: Arc<Mutex<ReaderStats>>,
    stop: Arc<AtomicBool>,
) {
    match opened {
        Opened::Queue(r) => run_reader(r, spec, index, warm_end, stats, stop).await,
        Opened::Member(m) => run_member(m, spec, warm_end, stats, stop).await,
    }
}

/// Records what one read or receive returned.
fn record(spec: &ReadSpec, stats: &Mutex<ReaderStats>, bodies: &[Vec<u8>], warm_end: Instant) {
    let now = Instant::now();
    let group = matches!(spec.mode, ReadMode::Group { .. });
    let mut s = lock(stats);
    for b in bodies {
        if group && let Some(id) = b.get(8..16).and_then(|r| <[u8; 8]>::try_from(r).ok()) {
            s.ids.push(u64::from_le_bytes(id));
        }
        if spec.e2e
            && let Some(sent) = stamped_at(b)
            && sent >= warm_end
        {
            let latency = now.saturating_duration_since(sent);
            s.e2e.record(latency);
            s.interval.record(latency);
        }
        s.bytes += b.len() as u64;
    }
    let n = bodies.len() as u64;
    s.messages += n;
    s.interval_messages += n;
    if n > 0 {
        s.last_read = Some(now);
    }
}

/// Counts a failure; true when the reader or member should give up: after
/// [`MAX_CONSECUTIVE_FAILURES`] in a row, or at once for a reader whose
/// failure is not [`retryable`] (members retry anything: a member that
/// stopped would strand its messages until their invisible time ends).
fn failed(stats: &Mutex<ReaderStats>, e: &RequestError, failures: &mut u32, member: bool) -> bool {
    *failures += 1;
    let give_up = *failures >= MAX_CONSECUTIVE_FAILURES || !(member || retryable(e));
    let mut s = lock(stats);
    *s.errors.entry(e.kind()).or_default() += 1;
    s.gave_up = give_up;
    give_up
}

/// Receive a batch, record it, acknowledge it, time the acknowledgement.
async fn run_member(
    mut member: Member,
    spec: ReadSpec,
    warm_end: Instant,
    stats: Arc<Mutex<ReaderStats>>,
    stop: Arc<AtomicBool>,
) {
    lock(&stats).started = Some(Instant::now());
    let mut failures = 0;
    while !stop.load(Ordering::Relaxed) {
        let bodies = match member.receive(GROUP_BATCH, spec.wait).await {
            Ok(bodies) => bodies,
            Err(e) => {
                if failed(&stats, &e, &mut failures, true) {
                    break;
                }
                tokio::time::sleep(READ_BACKOFF).await;
                continue;
            }
        };
        record(&spec, &stats, &bodies, warm_end);
        if bodies.is_empty() {
            failures = 0;
            continue;
        }
        let asked = Instant::now();
        match member.ack().await {
            Ok(()) => {
                failures = 0;
                if asked >= warm_end {
                    lock(&stats).ack.record(asked.elapsed());
                }
            }
            Err(e) => {
                if failed(&stats, &e, &mut failures, true) {
                    break;
                }
                tokio::time::sleep(READ_BACKOFF).await;
            }
        }
    }
}

/// Waits until the members have received `target` messages in all, or
/// until `until`.
pub async fn wait_consumed(stats: &[Arc<Mutex<ReaderStats>>], target: u64, until: Instant) {
    let consumed = || stats.iter().map(|s| lock(s).messages).sum::<u64>();
    while consumed() < target && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn run_reader(
    mut reader: Reader,
    spec: ReadSpec,
    queue: usize,
    warm_end: Instant,
    stats: Arc<Mutex<ReaderStats>>,
    stop: Arc<AtomicBool>,
) {
    let target = spec
        .expected
        .as_ref()
        .map(|e| e.get(queue).copied().unwrap_or(0));
    lock(&stats).started = Some(Instant::now());
    let mut failures = 0;
    let mut read: u64 = 0;
    while !stop.load(Ordering::Relaxed) && target.is_none_or(|t| read < t) {
        match reader.next_batch(spec.wait).await {
            Ok(bodies) => {
                failures = 0;
                // A catch-up reader counts only its backlog, not what the
                // producers added since.
                let take = target.map_or(bodies.len(), |t| {
                    bodies
                        .len()
                        .min(usize::try_from(t.saturating_sub(read)).unwrap_or(usize::MAX))
                });
                record(&spec, &stats, &bodies[..take], warm_end);
                read += take as u64;
            }
            Err(e) => {
                if failed(&stats, &e, &mut failures, false) {
                    break;
                }
                tokio::time::sleep(READ_BACKOFF).await;
            }
        }
    }
}

/// HTTP readers retry anything. The other readers stop at their first
/// failure, so that a failed pull or XREAD shows in the report instead of
/// being retried away.
fn retryable(e: &RequestError) -> bool {
    matches!(e, RequestError::Http { .. })
}

/// What the readers did. `acked` (group members): what the producers had
/// acknowledged in all, which the members were to receive.
pub fn outcome(
    spec: &ReadSpec,
    readers: &[Arc<Mutex<ReaderStats>>],
    acked: &[AtomicU64],
) -> ReadOutcome {
    let group = matches!(spec.mode, ReadMode::Group { .. });
    let mut ack = Latency::new();
    let mut e2e = Latency::new();
    let (mut messages, mut bytes) = (0, 0);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut first: Option<Instant> = None;
    let mut last: Option<Instant> = None;
    let mut ids = std::collections::HashSet::new();
    let (mut received_ids, mut gave_up) = (0u64, 0u32);
    for r in readers {
        let s = lock(r);
        received_ids += s.ids.len() as u64;
        ids.extend(s.ids.iter().copied());
        gave_up += u32::from(s.gave_up);
        e2e.merge(&s.e2e);
        ack.merge(&s.ack);
        messages += s.messages;
        bytes += s.bytes;
        for (k, n) in &s.errors {
            *errors.entry(k.clone()).or_default() += n;
        }
        first = match (first, s.started) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        last = match (last, s.last_read) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    let elapsed = match (first, last) {
        (Some(f), Some(l)) => l.saturating_duration_since(f),
        _ => Duration::ZERO,
    };
    let expected = match group {
        true => Some(acked.iter().map(|a| a.load(Ordering::Relaxed)).sum()),
        false => spec.expected.as_ref().map(|e| e.iter().sum::<u64>()),
    };
    ReadOutcome {
        readers: readers.len() as u32,
        messages,
        bytes,
        elapsed_s: elapsed.as_secs_f64(),
        msgs_per_sec: stats::per_second(messages, elapsed),
        mib_per_sec: stats::mib_per_second(bytes, elapsed),
        expected,
        unread: expected.map_or(0, |e| {
            e.saturating_sub(if group { ids.len() as u64 } else { messages })
        }),
        e2e_latency_ms: spec.e2e.then(|| e2e.summary()),
        e2e_spectrum: if spec.e2e { e2e.spectrum() } else { Vec::new() },
        errors: errors.values().sum(),
        errors_by_kind: errors,
        ack_latency_ms: group.then(|| ack.summary()),
        extra_received: match (group, expected) {
            (true, Some(e)) => (ids.len() as u64).saturating_sub(e),
            _ => 0,
        },
        duplicates: received_ids - ids.len() as u64,
        gave_up,
    }
}
