//! The report generator on a fixed `report.json` (a short real run of
//! `compare` on every system, kept in tests/data): the Markdown has every
//! system's row with its numbers, and every chart parses and has its series.

mod common;

use std::path::{Path, PathBuf};

use strata_loadtest::compare::report::merge_files;
use strata_loadtest::report::Render as _;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/report.json")
}

#[test]
fn renders_the_fixed_report() {
    let report = merge_files(&[fixture()]).expect("the fixture parses");
    let md = report.markdown();
    for run in &report.runs {
        let phase = run.main_phase().expect("a phase");
        let g = &phase.groups[0];
        let row = format!(
            "| {} | {} | {} | {:.0} |",
            run.scenario,
            run.system,
            if run.durable { "yes" } else { "**no**" },
            g.msgs_per_sec
        );
        assert!(md.contains(&row), "no row {row} in\n{md}");
        let server = phase.server.expect("the fixture sampled every server");
        let cpu = format!(
            "| {:.2} | {:.2} | {:.0} |",
            server.cpu_cores,
            server.cpu_cores * 10_000.0 / g.msgs_per_sec,
            server.rss_max_mib
        );
        let line = md.lines().find(|l| l.starts_with(&row)).expect("the row");
        assert!(
            line.contains(&cpu),
            "no CPU, CPU per 10k msgs/s, RSS {cpu} in {line}"
        );
    }
    assert!(md.contains("ran in this one invocation"), "{md}");

    let out = tempfile::tempdir().expect("tempdir");
    let charts = report.write(out.path()).expect("written");
    let scenarios = &report.parameters.scenarios;
    // Latency and throughput per scenario, plus p99 over time per phase.
    let phases: usize = scenarios
        .iter()
        .map(|s| {
            report
                .runs
                .iter()
                .find(|r| &r.scenario == s)
                .map_or(0, |r| r.phases.len())
        })
        .sum();
    assert_eq!(charts.len(), 2 * scenarios.len() + phases, "{charts:?}");
    for name in &charts {
        let svg = std::fs::read_to_string(out.path().join(name)).expect("chart");
        let texts = common::chart_texts(&svg);
        for run in report
            .runs
            .iter()
            .filter(|r| name.starts_with(&format!("{}-", r.scenario)))
        {
            assert!(
                texts
                    .iter()
                    .any(|t| t.starts_with(&format!("{} ", run.system))),
                "{name}: no series of {} in {texts:?}",
                run.system
            );
        }
    }
}
