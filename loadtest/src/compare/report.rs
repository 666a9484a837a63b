//! The comparison report: JSON with everything, Markdown tables with the
//! headline numbers (durability beside every row), and SVG charts.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::args::CompareArgs;
use super::phase::{GroupResult, PhaseResult};
use super::report_tables;
use crate::report::{MachineInfo, Render};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompareReport {
    pub tool: String,
    pub tool_version: String,
    pub scenario: String,
    pub started_unix_ms: u64,
    pub parameters: CompareParameters,
    pub machine: MachineInfo,
    pub systems: Vec<SystemInfo>,
    pub runs: Vec<RunResult>,
    /// `render` with several reports: where each part came from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompareParameters {
    pub systems: Vec<String>,
    pub scenarios: Vec<String>,
    pub producers: u32,
    /// Topics per scenario (1 in reports of versions without `--topics`).
    #[serde(default = "one")]
    pub topics: u32,
    pub queues: u32,
    pub message_size: u32,
    pub batch: u32,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub rate: f64,
    pub backlog_mib: u64,
    pub max_messages: Option<u64>,
    pub timeout_s: f64,
    pub seed: u64,
    pub data_dir: Option<String>,
    /// Strata's settle time before each scenario (absent in reports of
    /// versions that had a fixed 3 s settle, or none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle_s: Option<f64>,
    /// The OpenMessaging Benchmark workload the run followed, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
}

fn one() -> u32 {
    1
}

pub fn parameters(a: &CompareArgs) -> CompareParameters {
    CompareParameters {
        systems: a.systems.iter().map(|s| s.name().to_string()).collect(),
        scenarios: a.scenarios.iter().map(|s| s.name().to_string()).collect(),
        producers: a.producers,
        topics: a.topics,
        queues: a.queues,
        message_size: a.message_size,
        batch: a.batch,
        duration_s: a.duration.as_secs_f64(),
        warmup_s: a.warmup.as_secs_f64(),
        rate: a.rate,
        backlog_mib: a.backlog_mib,
        max_messages: a.max_messages,
        timeout_s: a.timeout.as_secs_f64(),
        seed: a.seed,
        // A directory of the machine that ran it: named, not shown.
        data_dir: a
            .data_dir
            .as_ref()
            .map(|_| crate::report::TMP_DIR.to_string()),
        settle_s: Some(a.settle.as_secs_f64()),
        workload: None,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SystemInfo {
    pub system: String,
    pub version: String,
    pub durable: bool,
    pub durability: String,
    pub settings: String,
}

/// One scenario on one system.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub system: String,
    pub durable: bool,
    pub scenario: String,
    pub phases: Vec<PhaseResult>,
}

impl RunResult {
    /// The phase the headline table shows (catch-up: with the readers).
    pub fn main_phase(&self) -> Option<&PhaseResult> {
        self.phases.last()
    }

    pub fn phase(&self, suffix: &str) -> Option<&PhaseResult> {
        self.phases.iter().find(|p| p.name.ends_with(suffix))
    }
}

pub(super) fn durable_label(durable: bool) -> &'static str {
    if durable { "yes" } else { "**no**" }
}

fn errors_text(g: &GroupResult) -> String {
    if g.errors == 0 {
        return "0".into();
    }
    let kinds: Vec<String> = g
        .errors_by_kind
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect();
    format!("{} ({})", g.errors, kinds.join(", "))
}

impl Render for CompareReport {
    fn markdown(&self) -> String {
        let p = &self.parameters;
        let mut out = String::new();
        if let Some(w) = &p.workload {
            let _ = writeln!(out, "Workload: {w} (OpenMessaging Benchmark format)\n");
        }
        let _ = writeln!(
            out,
            "strata-loadtest compare: {} B messages, batch {}, {} topic(s) of {} queues, {} producers, {}, \
             {}s measured after {}s warm-up per phase, catch-up backlog {} MiB; {} CPUs, {}",
            p.message_size,
            p.batch,
            p.topics,
            p.queues,
            p.producers,
            if p.rate > 0.0 {
                format!("fixed rate {} msgs/s", p.rate)
            } else {
                "every rate as fast as acknowledgements allow".to_string()
            },
            p.duration_s,
            p.warmup_s,
            p.backlog_mib,
            self.machine.nproc,
            self.machine.cpu_model.as_deref().unwrap_or("unknown CPU"),
        );
        out.push_str(
            "\n| system | version | durable ack | durability | settings |\n|---|---|---|---|---|\n",
        );
        for s in &self.systems {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | `{}` |",
                s.system,
                s.version,
                durable_label(s.durable),
                s.durability,
                s.settings
            );
        }
        out.push_str(
            "\nPublish (acknowledgement latency from the intended send time, ms; catch-up: producers while the readers catch up):\n\n\
             | scenario | system | durable ack | msgs/s | MiB/s | p50 | p90 | p99 | p99.9 | p99.99 | max | errors | unsent | server CPU (cores) | server CPU per 10k msgs/s | server RSS MiB | load generator CPU (cores) |\n\
             |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.runs {
            let Some(phase) = r.main_phase() else {
                continue;
            };
            let Some(g) = phase.groups.first() else {
                continue;
            };
            let l = &g.latency_ms;
            let (cpu, cpu_per_10k, rss) =
                phase
                    .server
                    .map_or(("-".into(), "-".into(), "-".into()), |u| {
                        (
                            format!("{:.2}", u.cpu_cores),
                            cpu_per_10k(u.cpu_cores, g.msgs_per_sec),
                            format!("{:.0}", u.rss_max_mib),
                        )
                    });
            let loadgen = phase
                .loadgen
                .map_or("-".into(), |u| format!("{:.2}", u.cpu_cores));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {:.2} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {cpu} | {cpu_per_10k} | {rss} | {loadgen} |",
                r.scenario,
                r.system,
                durable_label(r.durable),
                g.msgs_per_sec,
                g.mib_per_sec,
                l.p50,
                l.p90,
                l.p99,
                l.p999,
                l.p9999,
                l.max,
                errors_text(g),
                g.unsent_messages,
            );
        }
        report_tables::tail(&mut out, &self.runs);
        report_tables::catchup(&mut out, &self.runs);
        report_tables::consume(&mut out, &self.runs);
        if self.merged_from.len() > 1 {
            out.push_str("\nMerged from separate invocations (one per system):\n\n");
            for m in &self.merged_from {
                let _ = writeln!(out, "- {m}");
            }
        } else {
            out.push_str(
                "\nEvery system above ran in this one invocation, one after another on the same machine, \
                 each started fresh and stopped before the next.\n",
            );
        }
        out
    }
}

/// Reads `compare` reports and merges them: the first one's parameters
/// and machine, every file's systems and runs (a system that appears in
/// several files keeps the runs of each). Each merged file is noted in
/// `merged_from`.
pub fn merge_files(paths: &[std::path::PathBuf]) -> Result<CompareReport> {
    let mut merged: Option<CompareReport> = None;
    for path in paths {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut r: CompareReport = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a compare report", path.display()))?;
        let note = format!(
            "{}: {} started at {} ms since the epoch",
            path.display(),
            r.parameters.systems.join(","),
            r.started_unix_ms
        );
        match &mut merged {
            None => {
                if r.merged_from.is_empty() {
                    r.merged_from.push(note);
                }
                merged = Some(r);
            }
            Some(m) => {
                m.merged_from.push(note);
                for s in r.systems {
                    if !m.systems.iter().any(|x| x.system == s.system) {
                        m.parameters.systems.push(s.system.clone());
                        m.systems.push(s);
                    }
                }
                for sc in r.parameters.scenarios {
                    if !m.parameters.scenarios.contains(&sc) {
                        m.parameters.scenarios.push(sc);
                    }
                }
                m.runs.extend(r.runs);
            }
        }
    }
    merged.context("no report given")
}

impl CompareReport {
    /// Writes report.json, report.md and the charts into `dir`; returns the
    /// chart file names.
    pub fn write(&self, dir: &Path) -> Result<Vec<String>> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut json = self.to_json()?;
        json.push('\n');
        let put = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
        };
        put("report.json", &json)?;
        put("report.md", &self.markdown())?;
        let mut charts = Vec::new();
        for scenario in &self.parameters.scenarios {
            for (name, text) in self.charts(scenario)? {
                put(&name, &text)?;
                charts.push(name);
            }
        }
        Ok(charts)
    }
}

/// Cores per 10,000 msgs/s: what a message costs the server, comparable
/// across systems that ran at different rates.
fn cpu_per_10k(cores: f64, msgs_per_sec: f64) -> String {
    if msgs_per_sec > 0.0 {
        format!("{:.2}", cores * 10_000.0 / msgs_per_sec)
    } else {
        "-".into()
    }
}
