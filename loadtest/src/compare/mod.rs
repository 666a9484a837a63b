//! `strata-loadtest compare`: scenarios 1–4 and 7 (consumer groups) against several systems in one
//! invocation (Strata over HTTP, NATS JetStream, Redis Streams), each
//! started fresh on loopback, with the durability of each stated beside
//! its numbers. Output: report.json, report.md and SVG charts in `--out`.

pub mod args;
pub mod charts;
pub mod phase;
mod producer;
pub mod reading;
pub mod report;
mod report_charts;
mod report_tables;
pub mod sampler;
mod stamp;
pub mod tenants;
pub mod workload;

use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use self::args::{CompareArgs, ScenarioKind};
use self::phase::{GroupSpec, PhaseResult, PhaseSpec};
use self::reading::{ReadMode, ReadSpec};
use self::report::{CompareReport, RunResult, SystemInfo};
use crate::driver::endpoint::{Endpoint, ReadFrom};
use crate::report::{MachineInfo, unix_ms_now};
use crate::scenario::tiering::{TieringDelta, wait_uploaded};
use crate::systems::{self, Binaries, Running};

/// Long-poll wait of one read.
const READ_WAIT: Duration = Duration::from_secs(1);
/// Tail readers' time to receive what was published last.
const TAIL_DRAIN: Duration = Duration::from_secs(3);

pub async fn run(args: &CompareArgs) -> Result<CompareReport> {
    let workload = match &args.workload {
        Some(path) => Some(workload::Workload::load(path)?),
        None => None,
    };
    let shaped;
    let args = match &workload {
        Some(w) => {
            shaped = w.apply(args)?;
            &shaped
        }
        None => args,
    };
    if args.systems.is_empty() || args.scenarios.is_empty() {
        bail!("--systems and --scenarios need at least one value each");
    }
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        bail!("--rate must be a number of messages per second (0: as fast as possible)");
    }
    if args.duration.is_zero() || args.timeout.is_zero() {
        bail!("--duration and --timeout must be longer than zero");
    }
    if args.max_messages == Some(0) {
        bail!("--max-messages must be at least 1");
    }
    if args.producers % args.topics != 0 {
        bail!(
            "--producers ({}) must be a multiple of --topics ({}): every topic gets the same number of producers",
            args.producers,
            args.topics
        );
    }
    if args.scenarios.contains(&ScenarioKind::Consume) && args.consumers % args.topics != 0 {
        bail!(
            "--consumers ({}) must be a multiple of --topics ({}): every topic gets the same number of group members",
            args.consumers,
            args.topics
        );
    }
    if args.rate == 0.0
        && let Some(s) = args
            .scenarios
            .iter()
            .find(|s| matches!(s, ScenarioKind::FixedRate | ScenarioKind::Catchup))
    {
        bail!(
            "scenario {} needs a fixed --rate above 0 (max-rate, tail and consume run at 0: as fast as possible)",
            s.name()
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let started_unix_ms = unix_ms_now();
    let bins = Binaries {
        strata: args.strata_bin.clone(),
        nats: args.nats_server.clone(),
        redis: args.redis_server.clone(),
        data_parent: args.data_dir.clone(),
        strata_env: args.strata_env.clone(),
    };
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let mut systems_info = Vec::new();
    let mut runs = Vec::new();
    for &system in &args.systems {
        note(args, format!("== {}: starting", system.name()));
        let running = systems::start(system, &bins, args.timeout).await?;
        let (durable, durability) = system.durability();
        systems_info.push(SystemInfo {
            system: system.name().into(),
            version: running.version.clone(),
            durable,
            durability: durability.into(),
            settings: running.settings.clone(),
        });
        for &scenario in &args.scenarios {
            note(args, format!("== {} / {}", system.name(), scenario.name()));
            let phases = run_scenario(args, &running, scenario, progress).await?;
            runs.push(RunResult {
                system: system.name().into(),
                durable,
                scenario: scenario.name().into(),
                phases,
            });
        }
        // Dropping `running` stops the server and deletes its data.
    }
    let report = CompareReport {
        tool: "strata-loadtest".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        scenario: "compare".into(),
        started_unix_ms,
        parameters: report::CompareParameters {
            workload: workload.map(|w| w.name),
            ..report::parameters(args)
        },
        machine: MachineInfo::collect(String::new(), String::new()),
        systems: systems_info,
        runs,
        merged_from: Vec::new(),
    };
    report.write(&args.out)?;
    Ok(report)
}

fn note(args: &CompareArgs, text: String) {
    if !args.quiet {
        eprintln!("{text}");
    }
}

fn base_spec(args: &CompareArgs, running: &Running, name: String, progress: bool) -> PhaseSpec {
    PhaseSpec {
        name,
        groups: Vec::new(),
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
    }
}

fn group(
    args: &CompareArgs,
    endpoint: &Endpoint,
    topics: &[String],
    rate: Option<f64>,
    max: Option<u64>,
) -> GroupSpec {
    GroupSpec {
        label: "producers".into(),
        endpoint: endpoint.clone(),
        topics: topics.to_vec(),
        producers: args.producers,
        rate,
        max_messages: max,
    }
}

async fn run_scenario(
    args: &CompareArgs,
    running: &Running,
    scenario: ScenarioKind,
    progress: bool,
) -> Result<Vec<PhaseResult>> {
    let endpoint = &running.endpoint;
    // Each scenario starts on an idle Strata: the uploads and merges that
    // follow the previous scenario's writes finish first (they are part of
    // that scenario's cost, and would otherwise land in this one's numbers).
    if let Some(client) = endpoint.strata_http() {
        wait_uploaded(client, args.upload_timeout, args.settle).await?;
    }
    let topics: Vec<String> = match args.topics {
        1 => vec![format!("bench-{}", scenario.name())],
        n => (0..n)
            .map(|t| format!("bench-{}-{t}", scenario.name()))
            .collect(),
    };
    for topic in &topics {
        endpoint
            .create_topic(topic, args.queues, args.timeout)
            .await?;
    }
    // A rate of 0 is "as fast as acknowledgements allow" in every scenario.
    let fixed = (args.rate > 0.0).then_some(args.rate);
    let label = |phase: &str| format!("{}/{}/{phase}", running.system.name(), scenario.name());
    let mut phases = Vec::new();
    match scenario {
        ScenarioKind::MaxRate
        | ScenarioKind::FixedRate
        | ScenarioKind::Tail
        | ScenarioKind::Consume => {
            let rate = fixed.filter(|_| scenario != ScenarioKind::MaxRate);
            let mut spec = base_spec(args, running, label("measure"), progress);
            spec.groups = vec![group(args, endpoint, &topics, rate, args.max_messages)];
            let mode = match scenario {
                ScenarioKind::Tail => Some(ReadMode::Queues(ReadFrom::End)),
                ScenarioKind::Consume => Some(ReadMode::Group {
                    consumers: args.consumers,
                }),
                _ => None,
            };
            if let Some(mode) = mode {
                spec.readers = Some(ReadSpec {
                    mode,
                    e2e: true,
                    expected: None,
                    drain: TAIL_DRAIN,
                    wait: READ_WAIT,
                });
            }
            phases.push(measured(running, &spec).await?);
        }
        ScenarioKind::Catchup => {
            let per_batch = u64::from(args.message_size) * u64::from(args.batch);
            let backlog = (args.backlog_mib << 20).div_ceil(per_batch) * u64::from(args.batch);
            let mut spec = base_spec(args, running, label("backlog"), progress);
            spec.warmup = Duration::ZERO;
            spec.duration = crate::cli::MAX_DURATION;
            spec.groups = vec![group(args, endpoint, &topics, None, Some(backlog))];
            let written = measured(running, &spec).await?;
            let mut expected = written.groups[0].acked_per_queue.clone();
            phases.push(written);
            if let Some(client) = endpoint.strata_http() {
                note(args, "waiting until Strata has uploaded the backlog".into());
                wait_uploaded(client, args.upload_timeout, args.settle).await?;
            }
            let mut spec = base_spec(args, running, label("baseline"), progress);
            spec.groups = vec![group(args, endpoint, &topics, fixed, None)];
            let baseline = measured(running, &spec).await?;
            // The readers read everything published before they start.
            for (e, b) in expected.iter_mut().zip(&baseline.groups[0].acked_per_queue) {
                *e += b;
            }
            phases.push(baseline);
            spec.name = label("with-catchup");
            spec.readers = Some(ReadSpec {
                mode: ReadMode::Queues(ReadFrom::Start),
                e2e: false,
                expected: Some(expected),
                drain: args.catchup_drain,
                wait: READ_WAIT,
            });
            phases.push(measured(running, &spec).await?);
        }
    }
    Ok(phases)
}

/// Runs a phase and adds the object-store traffic Strata reports over it.
async fn measured(running: &Running, spec: &PhaseSpec) -> Result<PhaseResult> {
    let client = running.endpoint.strata_http();
    let before = match client {
        Some(c) => c.status().await.ok(),
        None => None,
    };
    let mut result = phase::run(spec).await?;
    if let (Some(c), Some(before)) = (client, before)
        && let Ok(after) = c.status().await
    {
        result.objects = Some(TieringDelta::between(&before, &after));
    }
    Ok(result)
}
