//! Short real runs of the `strata-loadtest` binary: `compare` against a
//! spawned `strata` binary and the two peers (nats-server, redis-server),
//! and `tenants`. No timing assertions: only that each run completes and
//! writes a well-formed report with successful messages and charts.
//!
//! The peers come from scripts/peers.sh (scripts/test.sh installs them and
//! sets STRATA_TEST_REQUIRE_PEERS=1). Without them, and without that
//! variable, the peers are skipped with a message and Strata runs alone.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const LOADTEST: &str = env!("CARGO_BIN_EXE_strata-loadtest");

/// The `strata` binary of the same profile as this test's `strata-loadtest`
/// (target/debug or target/release), built first if it is not there yet.
fn strata_binary() -> PathBuf {
    let dir = Path::new(LOADTEST).parent().expect("binary directory");
    let path = dir.join(format!("strata{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "-p", "strata", "--bin", "strata"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        if dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build -p strata");
        assert!(status.success(), "cargo build -p strata failed");
    }
    assert!(path.is_file(), "{} missing after the build", path.display());
    path
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
}

/// The systems to compare: Strata, plus the peers when installed.
fn systems() -> Vec<&'static str> {
    let have_peers = on_path("nats-server") && on_path("redis-server");
    if !have_peers {
        assert!(
            std::env::var_os("STRATA_TEST_REQUIRE_PEERS").is_none(),
            "nats-server/redis-server not on PATH; run scripts/peers.sh"
        );
        eprintln!("SKIPPING the peers (nats, redis): not installed; run scripts/peers.sh");
        return vec!["strata-http", "strata-grpc"];
    }
    vec!["strata-http", "strata-grpc", "nats", "redis"]
}

fn run(args: &[&str]) -> String {
    let out = Command::new(LOADTEST)
        .args(args)
        .output()
        .expect("run strata-loadtest");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "strata-loadtest {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("report written");
    serde_json::from_str(&text).expect("the JSON report parses")
}

/// Every chart of `report_dir` parses, and each system of a scenario has
/// its line in the legend of that scenario's charts.
fn check_charts(report_dir: &Path, report: &Value) {
    let mut charts = 0;
    for entry in std::fs::read_dir(report_dir).expect("report dir") {
        let path = entry.expect("entry").path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".svg") {
            continue;
        }
        charts += 1;
        let svg = std::fs::read_to_string(&path).expect("chart");
        let texts = common::chart_texts(&svg);
        for r in report["runs"].as_array().expect("runs") {
            let scenario = r["scenario"].as_str().expect("scenario");
            let system = r["system"].as_str().expect("system");
            if name.starts_with(&format!("{scenario}-")) {
                assert!(
                    texts.iter().any(|t| t.starts_with(&format!("{system} "))),
                    "{name}: no series of {system} in {texts:?}"
                );
            }
        }
    }
    assert!(charts > 0, "no charts in {}", report_dir.display());
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[test]
fn compare_runs_every_scenario_on_every_system() {
    let strata = strata_binary();
    let out = tempfile::tempdir().expect("tempdir");
    let systems = systems();
    let list = systems.join(",");
    let stdout = run(&[
        "compare",
        "--systems",
        &list,
        "--strata-bin",
        strata.to_str().expect("utf-8 path"),
        "--producers",
        "2",
        "--queues",
        "2",
        "--message-size",
        "256",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--rate",
        "100",
        "--backlog-mib",
        "1",
        "--max-messages",
        "5000",
        // More members than queues: members race for the same queues.
        "--consumers",
        "3",
        "--settle",
        "0s",
        "--quiet",
        "--out",
        out.path().to_str().expect("utf-8 path"),
    ]);
    assert!(
        stdout.contains("| scenario | system | durable ack |"),
        "{stdout}"
    );

    let report = read_json(&out.path().join("report.json"));
    assert_eq!(report["scenario"], "compare");
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), systems.len() * 5);
    for system in &systems {
        let info = report["systems"]
            .as_array()
            .expect("systems")
            .iter()
            .find(|s| s["system"] == *system)
            .unwrap_or_else(|| panic!("no system entry for {system}"));
        assert_eq!(info["durable"], *system != "nats", "{info}");
        assert!(!info["durability"].as_str().expect("durability").is_empty());
        // Reports get committed: programs by name, never a path of this
        // machine.
        let settings = info["settings"].as_str().expect("settings");
        let program = match *system {
            "nats" => "nats-server ",
            "redis" => "redis-server ",
            _ => "<strata-bin> serve --data-dir <tmp> ",
        };
        assert!(settings.starts_with(program), "{system}: {settings}");
    }
    let text = std::fs::read_to_string(out.path().join("report.json")).expect("report");
    assert!(
        !text.contains(strata.to_str().expect("utf-8 path")),
        "the report names the strata binary's path"
    );
    for r in runs {
        let what = format!("{} / {}", r["system"], r["scenario"]);
        for phase in r["phases"].as_array().expect("phases") {
            let g = &phase["groups"][0];
            assert!(num(g, "messages") > 0.0, "{what}: no messages in {phase}");
            assert_eq!(num(g, "errors"), 0.0, "{what}: {}", g["errors_by_kind"]);
            let l = &g["latency_ms"];
            assert!(
                num(l, "p50") > 0.0 && num(l, "p50") <= num(l, "max"),
                "{what}: {l}"
            );
            assert!(num(&phase["server"], "cpu_s") >= 0.0, "{what}: {phase}");
            assert!(!phase["timeline"].as_array().expect("timeline").is_empty());
        }
        let last = r["phases"]
            .as_array()
            .and_then(|p| p.last())
            .expect("phase");
        match r["scenario"].as_str() {
            Some("tail") => {
                let read = &last["read"];
                assert!(num(read, "messages") > 0.0, "{what}: {read}");
                assert!(num(&read["e2e_latency_ms"], "p50") > 0.0, "{what}: {read}");
            }
            Some("consume") => {
                // Every message acknowledged to a producer reached a member
                // (by id), none twice, and every batch was acknowledged.
                let read = &last["read"];
                let acked: f64 = last["groups"][0]["acked_per_queue"]
                    .as_array()
                    .expect("acked_per_queue")
                    .iter()
                    .filter_map(Value::as_f64)
                    .sum();
                assert!(acked > 0.0, "{what}: {last}");
                assert_eq!(num(read, "readers"), 3.0, "{what}: {read}");
                assert_eq!(num(read, "expected"), acked, "{what}: {read}");
                assert_eq!(num(read, "messages"), acked, "{what}: {read}");
                assert_eq!(num(read, "unread"), 0.0, "{what}: {read}");
                assert_eq!(num(read, "duplicates"), 0.0, "{what}: {read}");
                assert_eq!(num(read, "extra_received"), 0.0, "{what}: {read}");
                assert_eq!(num(read, "gave_up"), 0.0, "{what}: {read}");
                assert_eq!(num(read, "errors"), 0.0, "{what}: {read}");
                assert!(num(&read["e2e_latency_ms"], "p50") > 0.0, "{what}: {read}");
                assert!(num(&read["ack_latency_ms"], "max") > 0.0, "{what}: {read}");
            }
            Some("catchup") => {
                let read = &last["read"];
                assert!(num(read, "expected") > 0.0, "{what}: {read}");
                assert_eq!(
                    num(read, "messages"),
                    num(read, "expected"),
                    "{what}: {read}"
                );
                assert_eq!(num(read, "errors"), 0.0, "{what}: {read}");
            }
            _ => {}
        }
    }
    let md = std::fs::read_to_string(out.path().join("report.md")).expect("Markdown");
    assert!(
        md.contains("| catchup |")
            && md.contains("Tail consumers")
            && md.contains("Consumer group ("),
        "{md}"
    );
    check_charts(out.path(), &report);
    for scenario in ["max-rate", "fixed-rate", "tail", "catchup", "consume"] {
        for chart in ["latency", "throughput", "measure-latency-over-time"] {
            if scenario == "catchup" && chart.starts_with("measure") {
                continue;
            }
            let path = out.path().join(format!("{scenario}-{chart}.svg"));
            let svg = std::fs::read_to_string(&path).expect("chart written");
            assert!(
                svg.starts_with("<svg") && svg.contains("<polyline"),
                "{}",
                path.display()
            );
        }
    }

    // `render` redraws from the JSON, and merges several reports.
    let merged = out.path().join("merged");
    let json = out.path().join("report.json");
    let json = json.to_str().expect("utf-8 path");
    let stdout = run(&[
        "render",
        "--report",
        json,
        "--report",
        json,
        "--out",
        merged.to_str().expect("utf-8 path"),
    ]);
    assert!(
        stdout.contains("Merged from separate invocations"),
        "{stdout}"
    );
    let again = read_json(&merged.join("report.json"));
    assert_eq!(
        again["runs"].as_array().expect("runs").len(),
        2 * runs.len()
    );
    assert!(merged.join("tail-latency.svg").is_file());
}

/// An OpenMessaging Benchmark workload (several topics, consumers) runs on
/// every system; what the readers got is what was acknowledged.
#[test]
fn compare_runs_an_omb_workload() {
    let strata = strata_binary();
    let out = tempfile::tempdir().expect("tempdir");
    let workload = out.path().join("workload.yaml");
    std::fs::write(
        &workload,
        "name: smoke\ntopics: 3\npartitionsPerTopic: 2\nmessageSize: 128\n\
         payloadFile: payload/payload-1Kb.data\nsubscriptionsPerTopic: 1\n\
         consumerPerSubscription: 1\nproducersPerTopic: 1\nproducerRate: 150\n\
         consumerBacklogSizeGB: 0\ntestDurationMinutes: 0.02\nwarmupDurationMinutes: 0\n",
    )
    .expect("write the workload");
    let systems = systems();
    run(&[
        "compare",
        "--workload",
        workload.to_str().expect("utf-8 path"),
        "--systems",
        &systems.join(","),
        "--strata-bin",
        strata.to_str().expect("utf-8 path"),
        "--settle",
        "0s",
        "--quiet",
        "--out",
        out.path().to_str().expect("utf-8 path"),
    ]);
    let report = read_json(&out.path().join("report.json"));
    assert_eq!(report["parameters"]["workload"], "smoke");
    assert_eq!(report["parameters"]["topics"], 3);
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), systems.len());
    for r in runs {
        let what = r["system"].to_string();
        assert_eq!(r["scenario"], "tail", "{what}");
        let phase = &r["phases"][0];
        let g = &phase["groups"][0];
        assert_eq!(num(g, "errors"), 0.0, "{what}: {}", g["errors_by_kind"]);
        let acked = g["acked_per_queue"].as_array().expect("acked_per_queue");
        assert_eq!(acked.len(), 6, "{what}: 3 topics × 2 queues");
        // Every queue of every topic got its share.
        let per_queue: Vec<f64> = acked.iter().map(|n| n.as_f64().unwrap_or(0.0)).collect();
        assert!(per_queue.iter().all(|&n| n > 0.0), "{what}: {per_queue:?}");
        let acked: f64 = per_queue.iter().sum();
        assert!(acked > 0.0, "{what}: nothing acknowledged");
        // One reader per queue of every topic, and it read back everything.
        let read = &phase["read"];
        assert_eq!(num(read, "readers"), 6.0, "{what}: {read}");
        assert_eq!(num(read, "messages"), acked, "{what}: {read}");
    }
    check_charts(out.path(), &report);
    let md = std::fs::read_to_string(out.path().join("report.md")).expect("Markdown");
    assert!(md.contains("Workload: smoke"), "{md}");
    assert!(md.contains("ran in this one invocation"), "{md}");
}

#[test]
fn tenants_counts_throttled_requests_of_the_noisy_tenant() {
    let strata = strata_binary();
    let out = tempfile::tempdir().expect("tempdir");
    run(&[
        "tenants",
        "--strata-bin",
        strata.to_str().expect("utf-8 path"),
        "--tenants",
        "3",
        "--quiet-rate",
        "50",
        "--noisy-producers",
        "4",
        "--noisy-quota",
        "20",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--quiet",
        "--out",
        out.path().to_str().expect("utf-8 path"),
    ]);
    let report = read_json(&out.path().join("tenants.json"));
    let alone = report["alone"]["groups"].as_array().expect("groups");
    let at_quota = report["at_quota"]["groups"].as_array().expect("groups");
    let with = report["with_noisy"]["groups"].as_array().expect("groups");
    assert_eq!(alone.len(), 2);
    assert_eq!(at_quota.len(), 3);
    assert_eq!(with.len(), 3);
    for g in alone.iter().chain(&at_quota[..2]).chain(&with[..2]) {
        assert!(num(g, "messages") > 0.0, "{g}");
        assert_eq!(num(g, "errors"), 0.0, "{g}");
    }
    assert_eq!(at_quota[2]["label"], "noisy");
    assert!(num(&at_quota[2], "messages") > 0.0, "{}", at_quota[2]);
    let noisy = &with[2];
    assert_eq!(noisy["label"], "noisy");
    assert!(num(noisy, "messages") > 0.0, "{noisy}");
    // Far over its quota: some requests must have been refused with 429.
    let throttled: f64 = noisy["errors_by_kind"]
        .as_object()
        .expect("errors_by_kind")
        .iter()
        .filter(|(k, _)| k.starts_with("429"))
        .map(|(_, n)| n.as_f64().unwrap_or(0.0))
        .sum();
    assert!(throttled > 0.0, "{noisy}");
    assert!(out.path().join("tenants-latency.svg").is_file());
    let md = std::fs::read_to_string(out.path().join("tenants.md")).expect("Markdown");
    assert!(
        md.contains("| quiet-000 |") && md.contains("Noisy tenant at max rate:"),
        "{md}"
    );
}
