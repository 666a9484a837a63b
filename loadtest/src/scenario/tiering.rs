//! Shared by the tiered-storage scenarios (`catchup`, `queues`): publish
//! arguments for the `publish` level machinery, the upload-lag wait,
//! `/v1/status` deltas, and the catch-up reader.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cli::{OutputArgs, PublishArgs, TargetArgs, TieringArgs};
use crate::driver::strata_http::{ServerStatus, StrataHttp};
use crate::stats;

/// How often the upload-lag wait polls `/v1/status`.
const POLL: Duration = Duration::from_millis(100);
/// Messages per catch-up read request (the server's cap).
pub const READ_LIMIT: u32 = 1000;
/// A queue reader gives up after this many failed reads in a row.
const MAX_CONSECUTIVE_FAILURES: u32 = 20;
/// Pause after a failed read.
const READ_BACKOFF: Duration = Duration::from_millis(50);

/// What one publish phase of a tiering scenario needs from `publish`.
pub struct PhaseSpec<'a> {
    pub topic: &'a str,
    pub queues: u32,
    pub batch: u32,
    pub duration: Duration,
    pub rate: Option<f64>,
    pub max_messages: Option<u64>,
}

/// `PublishArgs` for one phase, so `publish::run_level` can run it.
pub fn publish_args(
    target: &TargetArgs,
    output: &OutputArgs,
    t: &TieringArgs,
    phase: &PhaseSpec<'_>,
) -> PublishArgs {
    PublishArgs {
        target: target.clone(),
        topic: phase.topic.to_string(),
        queues: phase.queues,
        concurrency: vec![t.concurrency],
        message_size: t.message_size,
        batch: phase.batch,
        duration: phase.duration,
        warmup: Duration::ZERO,
        rate: phase.rate,
        max_messages: phase.max_messages,
        timeout: t.timeout,
        seed: t.seed,
        deliver_after: None,
        output: output.clone(),
    }
}

/// Waits until the server reports `tiering.upload_lag_bytes == 0`, then
/// until the object-store counters have not moved for `settle`. Fails after
/// `timeout` with the server's status JSON. Returns the final status and
/// the time waited.
pub async fn wait_uploaded(
    client: &StrataHttp,
    timeout: Duration,
    settle: Duration,
) -> Result<(ServerStatus, Duration)> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut stable_since: Option<(Instant, [u64; 4])> = None;
    loop {
        let status = client.status().await?;
        let t = &status.tiering;
        if t.upload_lag_bytes == 0 {
            let o = &t.object_requests;
            let now = Instant::now();
            let key = [t.uploads, t.merges, o.puts, o.deletes];
            match stable_since {
                Some((since, k)) if k == key => {
                    if now - since >= settle {
                        return Ok((status, now - started));
                    }
                }
                _ => stable_since = Some((now, key)),
            }
            if settle.is_zero() {
                return Ok((status, now - started));
            }
        } else {
            stable_since = None;
        }
        if Instant::now() >= deadline {
            let raw = client
                .status_text()
                .await
                .unwrap_or_else(|e| format!("{e:#}"));
            bail!(
                "the server did not finish uploading within {} \
                 (tiering.upload_lag_bytes {}); its /v1/status:\n{raw}",
                humantime::format_duration(timeout),
                t.upload_lag_bytes
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Tiered-storage counters between two `/v1/status` samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TieringDelta {
    pub uploads: u64,
    pub uploaded_bytes: u64,
    pub merges: u64,
    pub merged_bytes: u64,
    pub puts: u64,
    pub put_bytes: u64,
    pub gets: u64,
    pub get_bytes: u64,
    pub lists: u64,
    pub deletes: u64,
    pub object_errors: u64,
    pub block_cache_hits: u64,
    pub block_cache_disk_hits: u64,
    pub block_cache_misses: u64,
    pub cold_fetches: u64,
    pub cold_fetch_errors: u64,
    pub cold_bytes: u64,
}

impl TieringDelta {
    pub fn between(a: &ServerStatus, b: &ServerStatus) -> Self {
        let (a, b) = (&a.tiering, &b.tiering);
        let d = |x: u64, y: u64| y.saturating_sub(x);
        let (ao, bo) = (&a.object_requests, &b.object_requests);
        let (ac, bc) = (&a.block_cache, &b.block_cache);
        Self {
            uploads: d(a.uploads, b.uploads),
            uploaded_bytes: d(a.uploaded_bytes, b.uploaded_bytes),
            merges: d(a.merges, b.merges),
            merged_bytes: d(a.merged_bytes, b.merged_bytes),
            puts: d(ao.puts, bo.puts),
            put_bytes: d(ao.put_bytes, bo.put_bytes),
            gets: d(ao.gets, bo.gets),
            get_bytes: d(ao.get_bytes, bo.get_bytes),
            lists: d(ao.lists, bo.lists),
            deletes: d(ao.deletes, bo.deletes),
            object_errors: d(ao.errors, bo.errors),
            block_cache_hits: d(ac.hits, bc.hits),
            block_cache_disk_hits: d(ac.disk_hits, bc.disk_hits),
            block_cache_misses: d(ac.misses, bc.misses),
            cold_fetches: d(a.cold_reads.fetches, b.cold_reads.fetches),
            cold_fetch_errors: d(a.cold_reads.fetch_errors, b.cold_reads.fetch_errors),
            cold_bytes: d(a.cold_reads.bytes, b.cold_reads.bytes),
        }
    }
}

/// One full read of a backlog: every queue from offset 0 to its end.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReadResult {
    /// Messages (and decoded body bytes) read below the backlog ends.
    pub messages: u64,
    pub body_bytes: u64,
    /// Messages the backlog holds (sum of the queues' end offsets).
    pub expected_messages: u64,
    pub requests: u64,
    /// From the first request to the last queue's last reply.
    pub elapsed_s: f64,
    pub msgs_per_sec: f64,
    pub mib_per_sec: f64,
    /// Offset gaps/disorder, wrong body sizes and failed requests.
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Messages not read because a queue's reader gave up.
    pub unread: u64,
    /// Server counters over the read (other load included, if any).
    pub tiering: TieringDelta,
}

#[derive(Default)]
struct QueueRead {
    messages: u64,
    body_bytes: u64,
    requests: u64,
    errors: BTreeMap<String, u64>,
    unread: u64,
}

impl QueueRead {
    fn error(&mut self, kind: &str, n: u64) {
        *self.errors.entry(kind.to_string()).or_default() += n;
    }
}

/// Reads `[0, ends[q])` of every queue `q` of `topic`, one task per queue,
/// checking that offsets are dense and bodies `message_size` bytes long.
pub async fn read_backlog(
    client: &StrataHttp,
    topic: &str,
    ends: &[u64],
    message_size: u32,
) -> Result<ReadResult> {
    let before = client.status().await?;
    let started = Instant::now();
    let mut readers = JoinSet::new();
    for (queue, &end) in ends.iter().enumerate() {
        let client = client.clone();
        let url = client.read_url(topic, queue as u32)?;
        readers.spawn(async move { read_queue(&client, &url, end, message_size).await });
    }
    let mut total = QueueRead::default();
    while let Some(joined) = readers.join_next().await {
        let q = joined.map_err(|e| anyhow::anyhow!("a reader task failed: {e}"))?;
        total.messages += q.messages;
        total.body_bytes += q.body_bytes;
        total.requests += q.requests;
        total.unread += q.unread;
        for (k, n) in q.errors {
            total.error(&k, n);
        }
    }
    let elapsed = started.elapsed();
    let after = client.status().await?;
    Ok(ReadResult {
        messages: total.messages,
        body_bytes: total.body_bytes,
        expected_messages: ends.iter().sum(),
        requests: total.requests,
        elapsed_s: elapsed.as_secs_f64(),
        msgs_per_sec: stats::per_second(total.messages, elapsed),
        mib_per_sec: stats::mib_per_second(total.body_bytes, elapsed),
        errors: total.errors.values().sum(),
        errors_by_kind: total.errors,
        unread: total.unread,
        tiering: TieringDelta::between(&before, &after),
    })
}

/// One queue's reader. Bounded: every successful read advances the offset,
/// and it gives up after [`MAX_CONSECUTIVE_FAILURES`] failures in a row.
async fn read_queue(client: &StrataHttp, url: &reqwest::Url, end: u64, size: u32) -> QueueRead {
    let mut r = QueueRead::default();
    let mut offset = 0u64;
    let mut failures = 0u32;
    while offset < end {
        r.requests += 1;
        let failed = match client.read(url, offset, READ_LIMIT).await {
            Ok(batch) => {
                let mut expected = offset;
                for (&o, &len) in batch.offsets.iter().zip(&batch.body_lens) {
                    if o >= end {
                        break;
                    }
                    if o < expected {
                        r.error("offset_disorder", 1);
                        continue;
                    }
                    if o > expected {
                        r.error("offset_gap", 1);
                    }
                    if len != size as usize {
                        r.error("wrong_body_size", 1);
                    }
                    r.messages += 1;
                    r.body_bytes += len as u64;
                    expected = o + 1;
                }
                if expected > offset {
                    offset = expected;
                    false
                } else {
                    // No progress below the end: an empty or stale reply.
                    r.error("no_progress", 1);
                    true
                }
            }
            Err(e) => {
                r.error(&e.kind(), 1);
                true
            }
        };
        if failed {
            failures += 1;
            if failures >= MAX_CONSECUTIVE_FAILURES {
                r.error("reader_gave_up", 1);
                break;
            }
            tokio::time::sleep(READ_BACKOFF).await;
        } else {
            failures = 0;
        }
    }
    r.unread = end.saturating_sub(offset);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::strata_http::TieringStatus;

    #[test]
    fn deltas_saturate() {
        let mut a = ServerStatus::default();
        let mut b = ServerStatus::default();
        a.tiering = TieringStatus {
            uploads: 3,
            merges: 5,
            ..TieringStatus::default()
        };
        b.tiering = TieringStatus {
            uploads: 10,
            merges: 1, // a restart: never negative
            ..TieringStatus::default()
        };
        b.tiering.object_requests.put_bytes = 100;
        b.tiering.block_cache.misses = 4;
        let d = TieringDelta::between(&a, &b);
        assert_eq!(d.uploads, 7);
        assert_eq!(d.merges, 0);
        assert_eq!(d.put_bytes, 100);
        assert_eq!(d.block_cache_misses, 4);
    }
}
