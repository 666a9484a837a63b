//! Readers of a phase: one per queue, tailing new messages (end-to-end
//! latency) or reading a backlog from the start (catch-up throughput).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::phase::{lock, stamped_at};
use crate::driver::RequestError;
use crate::driver::endpoint::{Endpoint, ReadFrom, Reader};
use crate::stats::{self, Latency, LatencySummary};

/// A reader gives up after this many failed reads in a row.
const MAX_CONSECUTIVE_FAILURES: u32 = 10;
const READ_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct ReadSpec {
    pub from: ReadFrom,
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

impl ReadSpec {
    /// Opens the reader of `queue` of `topic`.
    pub async fn open(
        &self,
        endpoint: &Endpoint,
        topic: &str,
        queue: u32,
        timeout: Duration,
    ) -> anyhow::Result<Reader> {
        endpoint
            .reader(topic, queue, self.from, timeout)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open a reader on {topic} queue {queue}: {e}"))
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
                let now = Instant::now();
                // A catch-up reader counts only its backlog, not what the
                // producers added since.
                let take = target.map_or(bodies.len(), |t| {
                    bodies
                        .len()
                        .min(usize::try_from(t.saturating_sub(read)).unwrap_or(usize::MAX))
                });
                let bodies = &bodies[..take];
                let mut s = lock(&stats);
                for b in bodies {
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
                read += n;
                if n > 0 {
                    s.last_read = Some(now);
                }
            }
            Err(e) => {
                failures += 1;
                let give_up = failures >= MAX_CONSECUTIVE_FAILURES || !retryable(&e);
                {
                    let mut s = lock(&stats);
                    *s.errors.entry(e.kind()).or_default() += 1;
                    s.gave_up = give_up;
                }
                if give_up {
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

pub fn outcome(spec: &ReadSpec, readers: &[Arc<Mutex<ReaderStats>>]) -> ReadOutcome {
    let mut e2e = Latency::new();
    let (mut messages, mut bytes) = (0, 0);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut first: Option<Instant> = None;
    let mut last: Option<Instant> = None;
    for r in readers {
        let s = lock(r);
        e2e.merge(&s.e2e);
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
    let expected = spec.expected.as_ref().map(|e| e.iter().sum::<u64>());
    ReadOutcome {
        readers: readers.len() as u32,
        messages,
        bytes,
        elapsed_s: elapsed.as_secs_f64(),
        msgs_per_sec: stats::per_second(messages, elapsed),
        mib_per_sec: stats::mib_per_second(bytes, elapsed),
        expected,
        unread: expected.map_or(0, |e| e.saturating_sub(messages)),
        e2e_latency_ms: spec.e2e.then(|| e2e.summary()),
        e2e_spectrum: if spec.e2e { e2e.spectrum() } else { Vec::new() },
        errors: errors.values().sum(),
        errors_by_kind: errors,
    }
}
