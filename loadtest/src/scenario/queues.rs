//! The `queues` scenario: what does the number of queues cost in object
//! storage? For each queue count N: publish `--messages` to a fresh topic
//! of N queues (each request one queue, round-robin), wait until the server
//! has uploaded everything and its counters are still, then report the
//! object-store traffic per GiB ingested.

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::publish::{payload_pool_of, run_level, validate};
use super::tiering::{PhaseSpec, TieringDelta, publish_args, wait_uploaded};
use crate::cli::{MAX_DURATION, QueuesArgs};
use crate::connect;
use crate::report::{MachineInfo, Render, opt, unix_ms_now};
use crate::stats::LatencySummary;

const GIB: f64 = (1u64 << 30) as f64;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueuesReport {
    pub tool: String,
    pub tool_version: String,
    pub scenario: String,
    pub started_unix_ms: u64,
    pub parameters: QueuesParameters,
    pub machine: MachineInfo,
    pub levels: Vec<QueuesLevel>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueuesParameters {
    pub server: String,
    pub spawned: Option<String>,
    pub spawn_data_dir: Option<String>,
    pub server_env: Vec<(String, String)>,
    pub topic_prefix: String,
    pub queues: Vec<u32>,
    pub messages: u64,
    pub message_size: u32,
    pub batch: u32,
    pub concurrency: u32,
    pub settle_s: f64,
    pub timeout_s: f64,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueuesLevel {
    pub queues: u32,
    pub topic: String,
    /// Acknowledged messages and their body bytes.
    pub messages: u64,
    pub body_bytes: u64,
    pub publish_s: f64,
    pub msgs_per_sec: f64,
    pub latency_ms: LatencySummary,
    pub errors: u64,
    pub errors_by_kind: std::collections::BTreeMap<String, u64>,
    /// From the end of publishing until upload lag 0 and still counters.
    pub upload_wait_s: f64,
    /// Server counters from before publishing to after the wait.
    pub tiering: TieringDelta,
    /// put_bytes / body_bytes.
    pub write_amplification: Option<f64>,
    pub puts_per_gib: Option<f64>,
    pub gets_per_gib: Option<f64>,
}

pub async fn run(args: &QueuesArgs) -> Result<QueuesReport> {
    if args.queues.is_empty() {
        anyhow::bail!("--queues needs at least one level");
    }
    let started_unix_ms = unix_ms_now();
    let t = &args.tiering;
    let base_args = |topic: &str, queues: u32| {
        let spec = PhaseSpec {
            topic,
            queues,
            batch: args.batch,
            duration: MAX_DURATION,
            rate: None,
            max_messages: Some(args.messages),
        };
        publish_args(&args.target, &args.output, t, &spec)
    };
    validate(&base_args(&args.topic, 1))?;
    let target = connect(&args.target, t.timeout).await?;
    let client = &target.client;
    let status = client.status().await.context("cannot read /v1/status")?;
    let pool = Arc::new(payload_pool_of(&base_args(&args.topic, 1), usize::MAX)?);

    // Start from a quiet server, so no earlier upload counts for level one.
    wait_uploaded(client, t.lag_timeout, args.settle).await?;
    let mut levels = Vec::with_capacity(args.queues.len());
    for &n in &args.queues {
        let topic = format!("{}-{n}", args.topic);
        client.create_topic(&topic, n).await?;
        let url = client.publish_url(&topic)?;
        let level_args = base_args(&topic, n);
        let before = client.status().await?;
        let published = run_level(client, &url, &pool, &level_args, t.concurrency, Some(n)).await?;
        let (after, waited) = wait_uploaded(client, t.lag_timeout, args.settle).await?;
        let tiering = TieringDelta::between(&before, &after);
        let body = published.payload_bytes;
        let per_gib = |count: u64| (body > 0).then(|| count as f64 / (body as f64 / GIB));
        let level = QueuesLevel {
            queues: n,
            topic,
            messages: published.messages,
            body_bytes: body,
            publish_s: published.elapsed_s,
            msgs_per_sec: published.msgs_per_sec,
            latency_ms: published.latency_ms,
            errors: published.errors,
            errors_by_kind: published.errors_by_kind,
            upload_wait_s: waited.as_secs_f64(),
            write_amplification: (body > 0).then(|| tiering.put_bytes as f64 / body as f64),
            puts_per_gib: per_gib(tiering.puts),
            gets_per_gib: (tiering.gets > 0).then(|| per_gib(tiering.gets)).flatten(),
            tiering,
        };
        if !args.output.quiet {
            eprintln!("queues={n}: {}", level_row(&level).trim_end());
        }
        levels.push(level);
    }
    Ok(QueuesReport {
        tool: "strata-loadtest".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        scenario: "queues".into(),
        started_unix_ms,
        parameters: QueuesParameters {
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
            topic_prefix: args.topic.clone(),
            queues: args.queues.clone(),
            messages: args.messages,
            message_size: t.message_size,
            batch: args.batch,
            concurrency: t.concurrency,
            settle_s: args.settle.as_secs_f64(),
            timeout_s: t.timeout.as_secs_f64(),
            seed: t.seed,
        },
        machine: MachineInfo::collect(status.version, status.node_id),
        levels,
    })
}

const HEADER: &str = "| queues | messages | MiB in | msgs/s | p99 ms | errors | uploads | PUTs | PUT MiB | merges | merged MiB | write amp | PUTs/GiB | GETs/GiB | upload wait s |\n\
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";

fn level_row(l: &QueuesLevel) -> String {
    let d = &l.tiering;
    let mib = |b: u64| b as f64 / 1048576.0;
    format!(
        "| {} | {} | {:.1} | {:.0} | {:.3} | {} | {} | {} | {:.1} | {} | {:.1} | {} | {} | {} | {:.1} |\n",
        l.queues,
        l.messages,
        mib(l.body_bytes),
        l.msgs_per_sec,
        l.latency_ms.p99,
        l.errors,
        d.uploads,
        d.puts,
        mib(d.put_bytes),
        d.merges,
        mib(d.merged_bytes),
        opt(l.write_amplification, 3),
        opt(l.puts_per_gib, 1),
        opt(l.gets_per_gib, 1),
        l.upload_wait_s,
    )
}

impl Render for QueuesReport {
    fn markdown(&self) -> String {
        let p = &self.parameters;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "strata-loadtest queues: {} messages of {} B per level, batch {} (one queue per request, round-robin), \
             {} producers at max rate; object-store deltas until upload lag 0 and {}s of still counters; \
             strata {} on {} CPUs{}",
            p.messages,
            p.message_size,
            p.batch,
            p.concurrency,
            p.settle_s,
            self.machine.strata_version,
            self.machine.nproc,
            if p.spawned.is_some() {
                ", spawned fresh server"
            } else {
                ""
            },
        );
        out.push('\n');
        out.push_str(HEADER);
        for l in &self.levels {
            out.push_str(&level_row(l));
        }
        for l in &self.levels {
            if !l.errors_by_kind.is_empty() {
                let list: Vec<String> = l
                    .errors_by_kind
                    .iter()
                    .map(|(k, n)| format!("{k}: {n}"))
                    .collect();
                let _ = writeln!(out, "\nErrors at {} queues: {}", l.queues, list.join(", "));
            }
            if l.tiering.object_errors > 0 {
                let _ = writeln!(
                    out,
                    "\n{} queues: {} object-store request errors on the server",
                    l.queues, l.tiering.object_errors
                );
            }
        }
        out
    }
}
