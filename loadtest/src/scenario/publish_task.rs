//! The tasks of one `publish` level: the publishers and the progress line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;
use tokio::time::Instant;

use crate::driver::strata_body::route_to_queue;
use crate::driver::strata_http::StrataHttp;
use crate::stats::{self, Latency, TaskStats};

/// Pause after a transport failure in max-rate mode, so a dead server is not
/// hammered in a tight loop.
pub(super) const TRANSPORT_BACKOFF: Duration = Duration::from_millis(10);

/// Shared, read-only description of one level.
pub(super) struct Level {
    pub(super) client: StrataHttp,
    pub(super) url: Url,
    pub(super) pool: Arc<Vec<Bytes>>,
    pub(super) concurrency: u32,
    pub(super) batch: u32,
    pub(super) message_size: u32,
    pub(super) start: Instant,
    pub(super) warm_end: Instant,
    pub(super) end: Instant,
    /// Fixed-rate mode: the time between one task's consecutive sends.
    pub(super) pacing: Option<Duration>,
    /// Messages this level may still send (--max-messages, or unbounded).
    pub(super) max_messages: u64,
    pub(super) claimed: AtomicU64,
    /// Route each request to the next of this many queues (round-robin)
    /// instead of letting the server choose.
    pub(super) route_queues: Option<u32>,
    pub(super) next_queue: AtomicU64,
}

pub(super) fn lock(stats: &Mutex<TaskStats>) -> MutexGuard<'_, TaskStats> {
    stats.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One publishing task: bounded by the level's end time and message budget.
pub(super) async fn worker(level: Arc<Level>, index: u32, stats: Arc<Mutex<TaskStats>>) {
    let batch = u64::from(level.batch);
    let payload = batch * u64::from(level.message_size);
    // Spread the tasks' fixed-rate schedules evenly over one interval.
    let phase = level.pacing.map_or(Duration::ZERO, |p| {
        p.mul_f64(f64::from(index) / f64::from(level.concurrency))
    });
    // Tasks start spread over the pool, so two tasks do not send the same
    // body at about the same time.
    let mut body_index = index as usize * level.pool.len() / level.concurrency.max(1) as usize;
    let schedule = stats::Schedule {
        window: stats::Window {
            start: level.start,
            warm_end: level.warm_end,
            end: level.end,
        },
        pacing: level.pacing,
        phase,
        batch,
        claimed: &level.claimed,
        max_messages: level.max_messages,
    };
    let mut sent: u64 = 0;
    while let Some(intended) = schedule.next(sent, &stats).await {
        let mut body = level.pool[body_index % level.pool.len()].clone();
        if let Some(queues) = level.route_queues {
            let k = level.next_queue.fetch_add(1, Ordering::Relaxed);
            body = route_to_queue(&body, (k % u64::from(queues.max(1))) as u32);
        }
        body_index = body_index.wrapping_add(1);
        let result = level
            .client
            .publish(&level.url, body, level.batch as usize)
            .await;
        let done = Instant::now();
        let measured = intended >= level.warm_end;
        let transport_failure = {
            let mut s = lock(&stats);
            if measured {
                s.completed_at(done.into_std());
            }
            match &result {
                Ok(()) => {
                    s.record_success(measured, done - intended, batch, payload);
                    false
                }
                Err(e) => {
                    s.record_error(measured, &e.kind());
                    e.is_transport()
                }
            }
        };
        sent += 1;
        if transport_failure && level.pacing.is_none() {
            tokio::time::sleep(TRANSPORT_BACKOFF).await;
        }
    }
}

/// Prints one line a second: elapsed time, msgs/s and p99 over the last second.
pub(super) async fn progress(level: Arc<Level>, stats: Vec<Arc<Mutex<TaskStats>>>) {
    let period = Duration::from_secs(1);
    let mut ticker = tokio::time::interval_at(level.start + period, period);
    let mut window = Latency::new();
    let mut last = level.start;
    // Bounded: the level's coordinator aborts this task, and it stops by
    // itself shortly after the level's end anyway.
    while last < level.end + period {
        let now = ticker.tick().await;
        let mut messages = 0;
        let mut errors = 0;
        window.reset();
        for s in &stats {
            let mut s = lock(s);
            window.merge(&s.interval);
            s.interval.reset();
            messages += std::mem::take(&mut s.interval_messages);
            errors += s.error_count() + s.warmup_errors;
        }
        let phase = if now <= level.warm_end {
            "warm-up"
        } else {
            "measure"
        };
        eprintln!(
            "c={} {phase} {:>5.1}s {:>9.0} msgs/s  p99 {:>8.3} ms  errors {}",
            level.concurrency,
            (now - level.start).as_secs_f64(),
            stats::per_second(messages, now - last),
            window.quantile_us(0.99) as f64 / 1000.0,
            errors,
        );
        last = now;
    }
}
