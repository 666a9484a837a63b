//! Once a second during a phase: a timeline point (messages published and
//! read, p99, server CPU and RSS) and, on a terminal, a progress line.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::phase::lock;
use super::reading::ReaderStats;
use crate::procstat::{self, ProcSample};
use crate::stats::{self, Latency, TaskStats};

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Seconds since the phase started (end of this one-second bucket).
    pub t_s: f64,
    pub published_msgs_per_sec: f64,
    pub read_msgs_per_sec: f64,
    /// Acknowledgement p99 of the bucket.
    pub ack_p99_ms: f64,
    /// End-to-end p99 of the bucket (tail readers), 0 otherwise.
    pub e2e_p99_ms: f64,
    pub server_cpu_cores: Option<f64>,
    pub server_rss_mib: Option<f64>,
}

#[derive(Debug, Default)]
pub struct Sampled {
    pub timeline: Vec<TimelinePoint>,
    pub server_rss_max: u64,
}

pub struct Inputs {
    /// Notified when the phase is over: one last (partial) point, then stop.
    pub stop: Arc<tokio::sync::Notify>,
    pub label: String,
    pub start: Instant,
    pub warm_end: Instant,
    pub end: Instant,
    pub producers: Vec<Arc<Mutex<TaskStats>>>,
    pub readers: Vec<Arc<Mutex<ReaderStats>>>,
    pub server_pid: Option<u32>,
    pub progress: bool,
}

/// (server, this process) samples.
pub fn usage_sample(server: Option<u32>) -> (Option<ProcSample>, Option<ProcSample>) {
    (server.and_then(procstat::sample), procstat::sample_self())
}

/// Runs until `inputs.stop` is notified (or aborted by the phase).
pub async fn run(inputs: Inputs, out: Arc<Mutex<Sampled>>) {
    let period = Duration::from_secs(1);
    let mut ticker = tokio::time::interval_at(inputs.start + period, period);
    let mut acks = Latency::new();
    let mut e2e = Latency::new();
    let mut last = inputs.start;
    let mut last_server = inputs.server_pid.and_then(procstat::sample);
    loop {
        let (now, last_point) = tokio::select! {
            now = ticker.tick() => (now, false),
            () = inputs.stop.notified() => (Instant::now(), true),
        };
        // Bounded even if the phase never stops this task.
        if now > inputs.end + Duration::from_secs(3600) {
            break;
        }
        acks.reset();
        e2e.reset();
        let (mut published, mut read, mut errors) = (0, 0, 0);
        for p in &inputs.producers {
            let mut s = lock(p);
            acks.merge(&s.interval);
            s.interval.reset();
            published += std::mem::take(&mut s.interval_messages);
            errors += s.error_count() + s.warmup_errors;
        }
        for r in &inputs.readers {
            let mut s = lock(r);
            e2e.merge(&s.interval);
            s.interval.reset();
            read += std::mem::take(&mut s.interval_messages);
            errors += s.errors.values().sum::<u64>();
        }
        let span = now - last;
        let server = inputs.server_pid.and_then(procstat::sample);
        let cpu = match (last_server, server) {
            (Some(a), Some(b)) if span > Duration::ZERO => {
                Some((b.cpu_s - a.cpu_s).max(0.0) / span.as_secs_f64())
            }
            _ => None,
        };
        let point = TimelinePoint {
            t_s: (now - inputs.start).as_secs_f64(),
            published_msgs_per_sec: stats::per_second(published, span),
            read_msgs_per_sec: stats::per_second(read, span),
            ack_p99_ms: acks.quantile_us(0.99) as f64 / 1000.0,
            e2e_p99_ms: e2e.quantile_us(0.99) as f64 / 1000.0,
            server_cpu_cores: cpu,
            server_rss_mib: server.map(|s| s.rss_bytes as f64 / 1048576.0),
        };
        if inputs.progress {
            let phase = if now <= inputs.warm_end {
                "warm-up"
            } else if now <= inputs.end {
                "measure"
            } else {
                "drain"
            };
            let mut line = format!(
                "{} {phase} {:>5.1}s  {:>8.0} msgs/s  p99 {:>8.3} ms",
                inputs.label, point.t_s, point.published_msgs_per_sec, point.ack_p99_ms
            );
            if !inputs.readers.is_empty() {
                line.push_str(&format!(
                    "  read {:>8.0} msgs/s  e2e p99 {:>8.3} ms",
                    point.read_msgs_per_sec, point.e2e_p99_ms
                ));
            }
            if let Some(c) = cpu {
                line.push_str(&format!("  server cpu {c:.2}"));
            }
            eprintln!("{line}  errors {errors}");
        }
        {
            let mut o = lock(&out);
            // A last sliver of a second is mostly stragglers: keep it out
            // of the per-second timeline unless it is the only point.
            if !(last_point && span < Duration::from_millis(500) && !o.timeline.is_empty()) {
                o.timeline.push(point);
            }
            if let Some(s) = server {
                o.server_rss_max = o.server_rss_max.max(s.rss_bytes);
            }
        }
        last = now;
        last_server = server;
        if last_point {
            break;
        }
    }
}
