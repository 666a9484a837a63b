//! The results of a run: a JSON document with everything, and a Markdown
//! table with the headline numbers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::stats::LatencySummary;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub tool: String,
    pub tool_version: String,
    pub scenario: String,
    /// Wall-clock start, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    pub parameters: Parameters,
    pub machine: MachineInfo,
    pub levels: Vec<LevelResult>,
}

/// How a report names the `strata` binary it started: reports get
/// committed, so they hold no path of the machine that ran them.
pub const STRATA_BIN: &str = "<strata-bin>";
/// How a report names a temporary directory (see [`STRATA_BIN`]).
pub const TMP_DIR: &str = "<tmp>";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Parameters {
    pub server: String,
    /// [`STRATA_BIN`] if `--spawn` started a server for this run.
    pub spawned: Option<String>,
    /// [`TMP_DIR`] then: the data directory, deleted after the run.
    pub spawn_data_dir: Option<String>,
    pub topic: String,
    pub topic_created: bool,
    pub queues: u32,
    pub concurrency: Vec<u32>,
    pub message_size: u32,
    pub batch: u32,
    pub duration_s: f64,
    pub warmup_s: f64,
    /// Fixed total rate in messages/s; `None` means as fast as possible.
    pub rate: Option<f64>,
    pub max_messages: Option<u64>,
    pub timeout_s: f64,
    pub seed: u64,
    /// Delayed messages: due this long after the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_after_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MachineInfo {
    pub nproc: usize,
    pub os: String,
    pub arch: String,
    pub cpu_model: Option<String>,
    pub strata_version: String,
    pub strata_node_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LevelResult {
    pub concurrency: u32,
    /// Successful requests and acknowledged messages in the measured window.
    pub requests: u64,
    pub messages: u64,
    /// Message payload bytes (bodies only, not the JSON/base64 on the wire).
    pub payload_bytes: u64,
    /// Measured window: from the end of warm-up until the last measured
    /// request completed (at least --duration).
    pub elapsed_s: f64,
    pub msgs_per_sec: f64,
    /// Payload MiB/s (2^20 bytes).
    pub payload_mib_per_sec: f64,
    /// Acknowledgement latency of successful requests, in milliseconds.
    pub latency_ms: LatencySummary,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub warmup_errors: u64,
    /// Fixed-rate mode only: messages scheduled in the window but never sent
    /// because the senders were behind when the level ended.
    pub unsent_messages: u64,
    pub wal: WalDelta,
}

/// Server-side WAL counters over the measured window (from /v1/status).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WalDelta {
    pub syncs: u64,
    pub appends: u64,
    pub synced_bytes: u64,
    /// Seconds between the two /v1/status samples.
    pub window_s: f64,
    pub syncs_per_sec: f64,
    /// Measured messages per fdatasync (group-commit efficiency).
    pub msgs_per_sync: Option<f64>,
}

impl Report {
    /// The headline table (GitHub-flavoured Markdown), with a one-line
    /// parameter summary above it and error details below it.
    pub fn markdown(&self) -> String {
        let p = &self.parameters;
        let mut out = String::new();
        let mode = match p.rate {
            Some(r) => format!("fixed rate {r} msgs/s"),
            None => "max rate".to_string(),
        };
        let _ = writeln!(
            out,
            "strata-loadtest {}: {} B messages, batch {}, {} queues, {mode}, {}s measured after {}s warm-up; \
             strata {} on {} CPUs ({}/{}){}",
            self.scenario,
            p.message_size,
            p.batch,
            p.queues,
            p.duration_s,
            p.warmup_s,
            self.machine.strata_version,
            self.machine.nproc,
            self.machine.os,
            self.machine.arch,
            if p.spawned.is_some() {
                ", spawned fresh server"
            } else {
                ""
            },
        );
        out.push('\n');
        out.push_str(
            "| concurrency | messages | msgs/s | MiB/s (payload) | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | syncs/s | msgs/sync |\n",
        );
        out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for l in &self.levels {
            let msgs_per_sync = l
                .wal
                .msgs_per_sync
                .map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {:.2} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {:.0} | {} |",
                l.concurrency,
                l.messages,
                l.msgs_per_sec,
                l.payload_mib_per_sec,
                l.latency_ms.p50,
                l.latency_ms.p90,
                l.latency_ms.p99,
                l.latency_ms.p999,
                l.latency_ms.max,
                l.errors,
                l.wal.syncs_per_sec,
                msgs_per_sync,
            );
        }
        for l in &self.levels {
            if !l.errors_by_kind.is_empty() {
                let kinds: Vec<String> = l
                    .errors_by_kind
                    .iter()
                    .map(|(k, n)| format!("{k}: {n}"))
                    .collect();
                let _ = writeln!(
                    out,
                    "\nErrors at concurrency {}: {}",
                    l.concurrency,
                    kinds.join(", ")
                );
            }
            if l.unsent_messages > 0 {
                let _ = writeln!(
                    out,
                    "\nConcurrency {}: {} scheduled messages were not sent (senders behind the fixed rate).",
                    l.concurrency, l.unsent_messages
                );
            }
        }
        out
    }

    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).context("cannot encode the report as JSON")
    }

    /// Writes the JSON and Markdown files the user asked for.
    pub fn write_files(&self, json: Option<&Path>, markdown: Option<&Path>) -> Result<()> {
        write_files(self, json, markdown)
    }
}

/// A scenario's report: a JSON document and a Markdown summary.
pub trait Render: Serialize {
    fn markdown(&self) -> String;

    fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).context("cannot encode the report as JSON")
    }
}

impl Render for Report {
    fn markdown(&self) -> String {
        Report::markdown(self)
    }
}

/// Writes the JSON and Markdown files the user asked for.
pub fn write_files<R: Render>(
    report: &R,
    json: Option<&Path>,
    markdown: Option<&Path>,
) -> Result<()> {
    if let Some(path) = json {
        let mut text = report.to_json()?;
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = markdown {
        std::fs::write(path, report.markdown())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// "-" for a missing value, else the value with `decimals` decimals.
pub fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

impl MachineInfo {
    /// This machine, plus what the server said about itself.
    pub fn collect(strata_version: String, strata_node_id: String) -> Self {
        Self {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            cpu_model: cpu_model(),
            strata_version,
            strata_node_id,
        }
    }
}

/// The first "model name" in /proc/cpuinfo (Linux); `None` elsewhere.
fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            tool: "strata-loadtest".into(),
            tool_version: "0.1.0".into(),
            scenario: "publish".into(),
            started_unix_ms: 0,
            parameters: Parameters {
                server: "http://127.0.0.1:1".into(),
                spawned: None,
                spawn_data_dir: None,
                topic: "bench".into(),
                topic_created: true,
                queues: 8,
                concurrency: vec![1],
                message_size: 1024,
                batch: 1,
                duration_s: 1.0,
                warmup_s: 0.0,
                rate: None,
                max_messages: None,
                timeout_s: 30.0,
                seed: 1,
                deliver_after_s: None,
            },
            machine: MachineInfo::collect("0.1.0".into(), "node".into()),
            levels: vec![LevelResult {
                concurrency: 1,
                requests: 10,
                messages: 10,
                payload_bytes: 10240,
                elapsed_s: 1.0,
                msgs_per_sec: 10.0,
                payload_mib_per_sec: 0.01,
                latency_ms: LatencySummary {
                    p50: 1.0,
                    p90: 2.0,
                    p99: 3.0,
                    p999: 4.0,
                    p9999: 4.5,
                    max: 5.0,
                    mean: 1.5,
                },
                errors: 2,
                errors_by_kind: BTreeMap::from([("503 WAL_FULL".to_string(), 2)]),
                warmup_errors: 0,
                unsent_messages: 0,
                wal: WalDelta {
                    syncs: 4,
                    appends: 10,
                    synced_bytes: 0,
                    window_s: 1.0,
                    syncs_per_sec: 4.0,
                    msgs_per_sync: Some(2.5),
                },
            }],
        }
    }

    #[test]
    fn markdown_table() {
        let md = sample().markdown();
        assert!(md.contains("| concurrency | messages | msgs/s | MiB/s (payload) |"));
        assert!(md.contains(
            "| 1 | 10 | 10 | 0.01 | 1.000 | 2.000 | 3.000 | 4.000 | 5.000 | 2 | 4 | 2.5 |"
        ));
        assert!(md.contains("Errors at concurrency 1: 503 WAL_FULL: 2"));
    }

    #[test]
    fn json_round_trip() {
        let json = sample().to_json().expect("json");
        let back: Report = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.levels[0].messages, 10);
        assert_eq!(back.levels[0].wal.msgs_per_sync, Some(2.5));
    }
}
