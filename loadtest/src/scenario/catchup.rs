//! The `catchup` scenario: does a reader catching up from object storage
//! slow down producers?
//!
//! 1. Backlog: `--backlog-mib` of messages at max rate over `--queues` queues.
//! 2. Wait until `tiering.upload_lag_bytes == 0` (the backlog is uploaded).
//! 3. Baseline: fixed-rate producers for `--duration`.
//! 4. With catch-up: the same producers while one reader per queue reads the
//!    backlog from offset 0 ("cold": from object storage via the block cache).
//! 5. Warm: the same read again, without producers (block cache warm).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::publish::{payload_pool_of, run_level, validate};
use super::tiering::{PhaseSpec, ReadResult, publish_args, read_backlog, wait_uploaded};
use crate::cli::{CatchupArgs, MAX_DURATION};
use crate::connect;
use crate::driver::strata_http::StrataHttp;
use crate::report::{LevelResult, MachineInfo, Render, unix_ms_now};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatchupReport {
    pub tool: String,
    pub tool_version: String,
    pub scenario: String,
    pub started_unix_ms: u64,
    pub parameters: CatchupParameters,
    pub machine: MachineInfo,
    /// The max-rate backlog write.
    pub backlog: LevelResult,
    /// Seconds until the server reported upload lag 0 after the backlog.
    pub upload_wait_s: f64,
    /// Queues whose whole backlog `[0, end)` was in object storage then.
    pub queues_fully_in_objects: u32,
    /// Per queue: the backlog's end offset (the readers' target).
    pub backlog_end_offsets: Vec<u64>,
    pub baseline: LevelResult,
    pub with_catchup: LevelResult,
    pub cold_read: ReadResult,
    pub warm_read: ReadResult,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatchupParameters {
    pub server: String,
    pub spawned: Option<String>,
    pub spawn_data_dir: Option<String>,
    pub server_env: Vec<(String, String)>,
    pub topic: String,
    pub queues: u32,
    pub backlog_mib: u64,
    pub message_size: u32,
    pub batch: u32,
    pub concurrency: u32,
    pub rate: f64,
    pub duration_s: f64,
    pub timeout_s: f64,
    pub seed: u64,
}

pub async fn run(args: &CatchupArgs) -> Result<CatchupReport> {
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--rate must be a positive number of messages per second");
    }
    let started_unix_ms = unix_ms_now();
    let t = &args.tiering;
    let quiet = args.output.quiet;
    let per_batch = u64::from(t.message_size) * u64::from(args.batch);
    let batches = (args.backlog_mib << 20).div_ceil(per_batch).max(1);
    let phase = |duration, rate, max_messages| {
        let spec = PhaseSpec {
            topic: &args.topic,
            queues: args.queues,
            batch: args.batch,
            duration,
            rate,
            max_messages,
        };
        publish_args(&args.target, &args.output, t, &spec)
    };
    let backlog_args = phase(MAX_DURATION, None, Some(batches * u64::from(args.batch)));
    let fixed_args = phase(args.duration, Some(args.rate), None);
    validate(&backlog_args)?;
    validate(&fixed_args)?;

    let target = connect(&args.target, t.timeout).await?;
    let client = &target.client;
    let status = client.status().await.context("cannot read /v1/status")?;
    client.create_topic(&args.topic, args.queues).await?;
    let url = client.publish_url(&args.topic)?;
    let pool = Arc::new(payload_pool_of(&backlog_args, usize::MAX)?);
    let c = t.concurrency;

    let note = |text: String| {
        if !quiet {
            eprintln!("{text}");
        }
    };
    note(format!("backlog: {} MiB at max rate", args.backlog_mib));
    let backlog = run_level(client, &url, &pool, &backlog_args, c, None).await?;
    if backlog.errors > 0 {
        eprintln!(
            "warning: backlog publish errors: {:?}",
            backlog.errors_by_kind
        );
    }
    note("waiting for upload lag 0".into());
    let (_, waited) = wait_uploaded(client, t.lag_timeout, Duration::ZERO).await?;
    let stats = client.queue_stats(&args.topic).await?;
    let mut ends = vec![0u64; args.queues as usize];
    let mut in_objects = 0;
    for q in &stats {
        if let Some(end) = ends.get_mut(q.queue as usize) {
            *end = q.end_offset;
            if q.end_offset == 0
                || (q.object_first_offset == Some(0) && q.object_end_offset >= Some(q.end_offset))
            {
                in_objects += 1;
            }
        }
    }

    note("baseline: fixed rate, no reader".into());
    let baseline = run_level(client, &url, &pool, &fixed_args, c, None).await?;
    note("with catch-up: fixed rate + one reader per queue from offset 0".into());
    let reader = spawn_reader(client, &args.topic, &ends, t.message_size, t.timeout);
    let with_catchup = run_level(client, &url, &pool, &fixed_args, c, None).await?;
    let cold_read = reader
        .await
        .map_err(|e| anyhow::anyhow!("the catch-up reader thread failed: {e}"))??;
    note("warm read: the same backlog again".into());
    let warm_read = read_backlog(client, &args.topic, &ends, t.message_size).await?;

    Ok(CatchupReport {
        tool: "strata-loadtest".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        scenario: "catchup".into(),
        started_unix_ms,
        parameters: CatchupParameters {
            server: client.base().to_string(),
            spawned: args
                .target
                .spawn
                .as_ref()
                .map(|_| crate::report::STRATA_BIN.to_string()),
            spawn_data_dir: target
                .spawned
                .as_ref()
                .map(|_| crate::report::TMP_DIR.to_string()),
            server_env: args.target.server_env.clone(),
            topic: args.topic.clone(),
            queues: args.queues,
            backlog_mib: args.backlog_mib,
            message_size: t.message_size,
            batch: args.batch,
            concurrency: c,
            rate: args.rate,
            duration_s: args.duration.as_secs_f64(),
            timeout_s: t.timeout.as_secs_f64(),
            seed: t.seed,
        },
        machine: MachineInfo::collect(status.version, status.node_id),
        backlog,
        upload_wait_s: waited.as_secs_f64(),
        queues_fully_in_objects: in_objects,
        backlog_end_offsets: ends,
        baseline,
        with_catchup,
        cold_read,
        warm_read,
    })
}

/// Runs [`read_backlog`] on its own thread and single-threaded runtime (with
/// its own client), so decoding the replies cannot delay the producers'
/// tasks in this process's scheduler.
fn spawn_reader(
    client: &StrataHttp,
    topic: &str,
    ends: &[u64],
    message_size: u32,
    timeout: Duration,
) -> oneshot::Receiver<Result<ReadResult>> {
    let (tx, rx) = oneshot::channel();
    let (template, topic, ends) = (client.clone(), topic.to_string(), ends.to_vec());
    std::thread::spawn(move || {
        // The catch-up consumer stands in for a client on another machine:
        // on a shared box it must not take CPU from the server's producers
        // first, so it runs at lower priority (Linux; ignored elsewhere).
        #[cfg(target_os = "linux")]
        // SAFETY: plain syscalls on this thread's own id.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, 10);
        }
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the reader runtime")
            .and_then(|rt| {
                rt.block_on(async {
                    let client = template.fresh(timeout)?;
                    read_backlog(&client, &topic, &ends, message_size).await
                })
            });
        let _ = tx.send(result);
    });
    rx
}

impl Render for CatchupReport {
    fn markdown(&self) -> String {
        let p = &self.parameters;
        let b = &self.backlog;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "strata-loadtest catchup: {} B messages, batch {}, {} queues, {} producers at {} msgs/s for {}s per phase; \
             backlog {} msgs ({:.1} MiB) written at {:.0} msgs/s, upload lag 0 after {:.1}s, {}/{} queues fully in objects; \
             strata {} on {} CPUs{}",
            p.message_size,
            p.batch,
            p.queues,
            p.concurrency,
            p.rate,
            p.duration_s,
            b.messages,
            b.payload_bytes as f64 / 1048576.0,
            b.msgs_per_sec,
            self.upload_wait_s,
            self.queues_fully_in_objects,
            p.queues,
            self.machine.strata_version,
            self.machine.nproc,
            if p.spawned.is_some() {
                ", spawned fresh server"
            } else {
                ""
            },
        );
        out.push_str("\n| producer phase | messages | msgs/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | unsent |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (name, l) in [
            ("baseline", &self.baseline),
            ("with catch-up", &self.with_catchup),
        ] {
            let s = &l.latency_ms;
            let _ = writeln!(
                out,
                "| {name} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} |",
                l.messages,
                l.msgs_per_sec,
                s.p50,
                s.p99,
                s.p999,
                s.max,
                l.errors,
                l.unsent_messages
            );
        }
        out.push_str("\n| catch-up read | messages | MiB | seconds | MiB/s | msgs/s | errors | unread | cache hits | cache misses | object GETs | GET MiB |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (name, r) in [
            ("cold (with producers)", &self.cold_read),
            ("warm", &self.warm_read),
        ] {
            let d = &r.tiering;
            let _ = writeln!(
                out,
                "| {name} | {}/{} | {:.1} | {:.2} | {:.1} | {:.0} | {} | {} | {} | {} | {} | {:.1} |",
                r.messages,
                r.expected_messages,
                r.body_bytes as f64 / 1048576.0,
                r.elapsed_s,
                r.mib_per_sec,
                r.msgs_per_sec,
                r.errors,
                r.unread,
                d.block_cache_hits,
                d.block_cache_misses,
                d.gets,
                d.get_bytes as f64 / 1048576.0,
            );
        }
        for (name, kinds) in [
            ("backlog publish", &self.backlog.errors_by_kind),
            ("baseline", &self.baseline.errors_by_kind),
            ("with catch-up", &self.with_catchup.errors_by_kind),
            ("cold read", &self.cold_read.errors_by_kind),
            ("warm read", &self.warm_read.errors_by_kind),
        ] {
            if !kinds.is_empty() {
                let list: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}: {n}")).collect();
                let _ = writeln!(out, "\nErrors in {name}: {}", list.join(", "));
            }
        }
        out
    }
}
