//! Scenario 6, `strata-loadtest tenants`: many tenants, one of them noisy.
//! A fresh Strata gets N tenants (each with its own tenant-admin key and
//! topic). Quiet tenants publish at a fixed, modest rate in three phases:
//! alone; while one noisy tenant (on a plan with a low publish quota)
//! publishes at exactly its quota; and while it publishes as fast as it
//! can, ignoring Retry-After. The second phase separates the cost of the
//! noisy tenant's accepted load from the cost of its excess. Its 429s are
//! counted as throttled, not as failures of the tool.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::charts::{self, Series, XAxis};
use super::phase::{self, GroupResult, GroupSpec, PhaseResult, PhaseSpec};
use super::report::SystemInfo;
use crate::cli::parse_duration;
use crate::driver::endpoint::Endpoint;
use crate::driver::strata_http::StrataHttp;
use crate::report::{MachineInfo, Render, unix_ms_now};
use crate::systems::{self, Binaries, System};

#[derive(Debug, Clone, Args)]
pub struct TenantsArgs {
    /// The `strata` binary to start (fresh data directory on loopback).
    #[arg(long, default_value = "target/release/strata")]
    pub strata_bin: PathBuf,
    /// Parent of the temporary data directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Tenants in all, the last one noisy.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub tenants: u32,
    /// Publish rate of each quiet tenant, messages/s.
    #[arg(long, default_value_t = 100.0)]
    pub quiet_rate: f64,
    /// Producer tasks per quiet tenant.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub quiet_producers: u32,
    /// Producer tasks of the noisy tenant (max rate).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub noisy_producers: u32,
    /// The noisy tenant's plan: publish quota in messages/s.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub noisy_quota: u64,
    /// Queues of each tenant's topic.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub queues: u32,
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(16..=(1 << 20)))]
    pub message_size: u32,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch: u32,
    /// Measured time of each phase (alone, with the noisy tenant).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Directory for tenants.json, tenants.md and the SVG charts.
    #[arg(long, value_name = "DIR", default_value = "loadtest-report")]
    pub out: PathBuf,
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantsReport {
    pub tool: String,
    pub tool_version: String,
    pub scenario: String,
    pub started_unix_ms: u64,
    pub tenants: u32,
    pub quiet_rate: f64,
    pub noisy_quota: u64,
    pub machine: MachineInfo,
    pub system: SystemInfo,
    /// Quiet tenants only.
    pub alone: PhaseResult,
    /// Quiet tenants plus the noisy one (the last group) at its quota.
    pub at_quota: PhaseResult,
    /// Quiet tenants plus the noisy one (the last group) at max rate.
    pub with_noisy: PhaseResult,
}

pub async fn run(args: &TenantsArgs) -> Result<TenantsReport> {
    if !(args.quiet_rate.is_finite() && args.quiet_rate > 0.0) {
        bail!("--quiet-rate must be a positive number of messages per second");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let started_unix_ms = unix_ms_now();
    let bins = Binaries {
        strata: args.strata_bin.clone(),
        nats: PathBuf::new(),
        redis: PathBuf::new(),
        data_parent: args.data_dir.clone(),
        strata_env: Vec::new(),
    };
    let running = systems::start(System::StrataHttp, &bins, args.timeout).await?;
    let Some(admin) = running.endpoint.strata_http() else {
        bail!("the tenants scenario needs Strata");
    };
    admin
        .put_plan(
            "bench-noisy",
            &json!({"publish_messages_per_sec": args.noisy_quota}),
        )
        .await?;
    let mut groups = Vec::new();
    for i in 0..args.tenants {
        let noisy = i + 1 == args.tenants;
        let name = if noisy {
            "noisy".to_string()
        } else {
            format!("quiet-{i:03}")
        };
        admin.create_tenant(&name, "default").await?;
        if noisy {
            admin.set_tenant_plan(&name, "bench-noisy").await?;
        }
        let (ak, sk) = admin.create_key(&name, "tenant-admin").await?;
        let client = StrataHttp::with_authorization(
            admin.base().as_str(),
            args.timeout,
            Some(format!("Bearer {ak}:{sk}")),
        )?;
        let endpoint = Endpoint::new(client);
        endpoint
            .create_topic("bench", args.queues, args.timeout)
            .await?;
        groups.push(GroupSpec {
            label: name,
            endpoint,
            topics: vec!["bench".into()],
            producers: if noisy {
                args.noisy_producers
            } else {
                args.quiet_producers
            },
            rate: (!noisy).then_some(args.quiet_rate),
            max_messages: None,
        });
    }
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let noisy = groups.pop().context("no tenants")?;
    let mut spec = PhaseSpec {
        name: "tenants/alone".into(),
        groups,
        queues: args.queues,
        batch: args.batch,
        message_size: args.message_size,
        warmup: args.warmup,
        duration: args.duration,
        timeout: args.timeout,
        seed: args.seed,
        readers: None,
        progress,
        server_pid: running.pid,
    };
    let alone = phase::run(&spec).await?;
    spec.name = "tenants/at-quota".into();
    spec.groups.push(GroupSpec {
        rate: Some(args.noisy_quota as f64),
        ..noisy.clone()
    });
    let at_quota = phase::run(&spec).await?;
    spec.name = "tenants/with-noisy".into();
    spec.groups.pop();
    spec.groups.push(noisy);
    let with_noisy = phase::run(&spec).await?;
    let (durable, durability) = System::StrataHttp.durability();
    let report = TenantsReport {
        tool: "strata-loadtest".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        scenario: "tenants".into(),
        started_unix_ms,
        tenants: args.tenants,
        quiet_rate: args.quiet_rate,
        noisy_quota: args.noisy_quota,
        machine: MachineInfo::collect(String::new(), String::new()),
        system: SystemInfo {
            system: "strata-http".into(),
            version: running.version.clone(),
            durable,
            durability: durability.into(),
            settings: running.settings.clone(),
        },
        alone,
        at_quota,
        with_noisy,
    };
    report.write(&args.out)?;
    Ok(report)
}

/// Requests the server throttled (429) and other failures.
fn throttled(g: &GroupResult) -> (u64, u64) {
    let t: u64 = g
        .errors_by_kind
        .iter()
        .filter(|(k, _)| k.starts_with("429"))
        .map(|(_, n)| n)
        .sum();
    (t, g.errors - t)
}

impl Render for TenantsReport {
    fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "strata-loadtest tenants: {} tenants; each quiet tenant publishes {} msgs/s; the noisy tenant, on a plan \
             of {} msgs/s, publishes at its quota, then at max rate (ignoring Retry-After); {}s measured per phase; {}\n",
            self.tenants,
            self.quiet_rate,
            self.noisy_quota,
            self.alone.duration_s,
            self.system.durability
        );
        out.push_str(
            "| tenant | alone msgs/s | alone p50 / p99 ms | noisy at quota: msgs/s | p50 / p99 ms | noisy at max rate: msgs/s | p50 / p99 / p99.9 ms | errors (3 phases) |\n\
             |---|---:|---:|---:|---:|---:|---:|---|\n",
        );
        let phases = self
            .alone
            .groups
            .iter()
            .zip(&self.at_quota.groups)
            .zip(&self.with_noisy.groups);
        for ((a, q), w) in phases {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.3} / {:.3} | {:.0} | {:.3} / {:.3} | {:.0} | {:.3} / {:.3} / {:.3} | {} / {} / {} |",
                a.label,
                a.msgs_per_sec,
                a.latency_ms.p50,
                a.latency_ms.p99,
                q.msgs_per_sec,
                q.latency_ms.p50,
                q.latency_ms.p99,
                w.msgs_per_sec,
                w.latency_ms.p50,
                w.latency_ms.p99,
                w.latency_ms.p999,
                a.errors,
                q.errors,
                w.errors
            );
        }
        if let Some(n) = self.at_quota.groups.last() {
            let _ = writeln!(
                out,
                "\nNoisy tenant at its quota: {} messages accepted ({:.0} msgs/s), {} errors; p50 {:.3} ms, p99 {:.3} ms.",
                n.messages, n.msgs_per_sec, n.errors, n.latency_ms.p50, n.latency_ms.p99,
            );
        }
        if let Some(n) = self.with_noisy.groups.last() {
            let (t, other) = throttled(n);
            let window = n.elapsed_s.max(f64::MIN_POSITIVE);
            let _ = writeln!(
                out,
                "\nNoisy tenant at max rate: {} messages accepted ({:.0} msgs/s, quota {}), {t} requests refused with 429 \
                 ({:.0}/s), {other} other errors; accepted p50 {:.3} ms, p99 {:.3} ms.",
                n.messages,
                n.msgs_per_sec,
                self.noisy_quota,
                t as f64 / window,
                n.latency_ms.p50,
                n.latency_ms.p99,
            );
        }
        if let (Some(a), Some(q), Some(w)) = (
            self.alone.server,
            self.at_quota.server,
            self.with_noisy.server,
        ) {
            let _ = writeln!(
                out,
                "\nServer CPU: {:.2} cores alone, {:.2} with the noisy tenant at its quota, {:.2} at max rate; \
                 RSS max {:.0} / {:.0} / {:.0} MiB.",
                a.cpu_cores, q.cpu_cores, w.cpu_cores, a.rss_max_mib, q.rss_max_mib, w.rss_max_mib
            );
        }
        if let (Some(a), Some(q), Some(w)) = (
            self.alone.loadgen,
            self.at_quota.loadgen,
            self.with_noisy.loadgen,
        ) {
            let _ = writeln!(
                out,
                "\nLoad generator CPU (same machine): {:.2} cores alone, {:.2} with the noisy tenant at its quota, \
                 {:.2} at max rate.",
                a.cpu_cores, q.cpu_cores, w.cpu_cores
            );
        }
        out
    }
}

impl TenantsReport {
    pub fn write(&self, dir: &std::path::Path) -> Result<()> {
        let put = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
        };
        put("tenants.json", &(self.to_json()? + "\n"))?;
        put("tenants.md", &self.markdown())?;
        let phases = [
            ("alone", &self.alone),
            ("noisy at quota", &self.at_quota),
            ("noisy at max rate", &self.with_noisy),
        ];
        // One quiet tenant's spectrum per phase keeps the chart readable;
        // the table has them all.
        let latency: Vec<Series> = phases
            .iter()
            .enumerate()
            .filter_map(|(color, (name, phase))| {
                let g = phase.groups.first()?;
                Some(Series {
                    name: format!("{} {name}", g.label),
                    points: g.spectrum.clone(),
                    dashed: color == 0,
                    color,
                })
            })
            .collect();
        put(
            "tenants-latency.svg",
            &charts::line_chart(
                "quiet tenants: publish latency by percentile",
                "milliseconds (log)",
                XAxis::Percentile,
                true,
                &latency,
            )?,
        )?;
        let throughput: Vec<Series> = phases
            .iter()
            .enumerate()
            .map(|(color, (name, p))| Series {
                name: format!("all tenants, {name}"),
                points: p
                    .timeline
                    .iter()
                    .map(|t| (t.t_s, t.published_msgs_per_sec))
                    .collect(),
                dashed: color == 0,
                color,
            })
            .collect();
        put(
            "tenants-throughput.svg",
            &charts::line_chart(
                "accepted messages/s per second",
                "messages/s",
                XAxis::Seconds,
                false,
                &throughput,
            )?,
        )
    }
}
