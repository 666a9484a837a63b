//! The charts of a comparison report, per scenario: latency by percentile
//! and messages/s over time of its main phase (every system on one chart),
//! and the acknowledgement (and end-to-end) p99 over time of each phase.

use anyhow::Result;

use super::charts::{self, Series, XAxis};
use super::report::{CompareReport, RunResult};

fn label(r: &RunResult) -> String {
    let durable = if r.durable { "" } else { " (not durable)" };
    format!("{}{durable}", r.system)
}

/// The last part of a phase's name: "strata-http/tail/measure" → "measure".
fn phase_label(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

impl CompareReport {
    /// (file name, SVG) of the charts of one scenario.
    pub fn charts(&self, scenario: &str) -> Result<Vec<(String, String)>> {
        let runs: Vec<&RunResult> = self
            .runs
            .iter()
            .filter(|r| r.scenario == scenario)
            .collect();
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let mut latency = Vec::new();
        let mut throughput = Vec::new();
        for (color, r) in runs.iter().enumerate() {
            let Some(p) = r.main_phase() else { continue };
            if let Some(g) = p.groups.first() {
                latency.push(Series {
                    name: format!("{} ack", label(r)),
                    points: g.spectrum.clone(),
                    dashed: false,
                    color,
                });
            }
            if let Some(read) = &p.read
                && !read.e2e_spectrum.is_empty()
            {
                latency.push(Series {
                    name: format!("{} e2e", r.system),
                    points: read.e2e_spectrum.clone(),
                    dashed: true,
                    color,
                });
            }
            throughput.push(Series {
                name: format!("{} publish", label(r)),
                points: p
                    .timeline
                    .iter()
                    .map(|t| (t.t_s, t.published_msgs_per_sec))
                    .collect(),
                dashed: false,
                color,
            });
            if p.read.is_some() {
                throughput.push(Series {
                    name: format!("{} read", r.system),
                    points: p
                        .timeline
                        .iter()
                        .map(|t| (t.t_s, t.read_msgs_per_sec))
                        .collect(),
                    dashed: true,
                    color,
                });
            }
        }
        let what = if scenario == "catchup" {
            " (with catch-up readers)"
        } else {
            ""
        };
        let mut out = vec![
            (
                format!("{scenario}-latency.svg"),
                charts::line_chart(
                    &format!("{scenario}{what}: latency by percentile"),
                    "milliseconds (log)",
                    XAxis::Percentile,
                    true,
                    &latency,
                )?,
            ),
            (
                format!("{scenario}-throughput.svg"),
                charts::line_chart(
                    &format!("{scenario}{what}: messages/s per second"),
                    "messages/s",
                    XAxis::Seconds,
                    false,
                    &throughput,
                )?,
            ),
        ];
        out.extend(latency_over_time(scenario, &runs)?);
        Ok(out)
    }
}

/// One chart per phase of the scenario: each system's p99 per second.
fn latency_over_time(scenario: &str, runs: &[&RunResult]) -> Result<Vec<(String, String)>> {
    let mut phases: Vec<&str> = Vec::new();
    for r in runs {
        for p in &r.phases {
            let name = phase_label(&p.name);
            if !phases.contains(&name) {
                phases.push(name);
            }
        }
    }
    let mut out = Vec::new();
    for phase in phases {
        let mut series = Vec::new();
        for (color, r) in runs.iter().enumerate() {
            let Some(p) = r.phases.iter().find(|p| phase_label(&p.name) == phase) else {
                continue;
            };
            series.push(Series {
                name: format!("{} ack p99", label(r)),
                points: p.timeline.iter().map(|t| (t.t_s, t.ack_p99_ms)).collect(),
                dashed: false,
                color,
            });
            if p.timeline.iter().any(|t| t.e2e_p99_ms > 0.0) {
                series.push(Series {
                    name: format!("{} e2e p99", r.system),
                    points: p.timeline.iter().map(|t| (t.t_s, t.e2e_p99_ms)).collect(),
                    dashed: true,
                    color,
                });
            }
        }
        out.push((
            format!("{scenario}-{phase}-latency-over-time.svg"),
            charts::line_chart(
                &format!("{scenario} / {phase}: p99 latency per second"),
                "milliseconds (log)",
                XAxis::Seconds,
                true,
                &series,
            )?,
        ));
    }
    Ok(out)
}
