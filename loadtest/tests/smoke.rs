//! A short real run against an in-process Strata server. No timing
//! assertions: only that the run completes and the report is well formed.

use clap::Parser;
use strata_loadtest::cli::Cli;

async fn start_server(dir: &std::path::Path) -> strata_frontend::Running {
    let defaults = strata_frontend::Config::default();
    let config = strata_frontend::Config {
        data_dir: dir.to_path_buf(),
        http: strata_frontend::config::HttpConfig {
            addr: "127.0.0.1:0".into(),
            ..defaults.http.clone()
        },
        ..defaults
    };
    strata_frontend::server::start(config)
        .await
        .expect("start an in-process Strata server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publish_smoke_run_produces_a_valid_report() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let running = start_server(data.path()).await;
    let server = format!("http://{}", running.http_addr);
    let json_path = out.path().join("report.json");
    let md_path = out.path().join("report.md");

    let cli = Cli::try_parse_from([
        "strata-loadtest",
        "publish",
        "--server",
        &server,
        "--topic",
        "smoke",
        "--queues",
        "4",
        "--concurrency",
        "1,4",
        "--message-size",
        "256",
        "--batch",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--quiet",
        "--json-out",
        json_path.to_str().expect("utf-8 path"),
        "--markdown-out",
        md_path.to_str().expect("utf-8 path"),
    ])
    .expect("valid arguments");
    let report = strata_loadtest::run(cli).await.expect("the run succeeds");
    assert_eq!(report.levels.len(), 2);

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("JSON written"))
            .expect("the JSON report parses");
    assert_eq!(json["scenario"], "publish");
    assert_eq!(json["parameters"]["concurrency"], serde_json::json!([1, 4]));
    assert_eq!(json["parameters"]["batch"], 2);
    assert!(json["machine"]["nproc"].as_u64().expect("nproc") >= 1);
    assert!(
        !json["machine"]["strata_version"]
            .as_str()
            .expect("version")
            .is_empty()
    );
    let levels = json["levels"].as_array().expect("levels");
    assert_eq!(levels.len(), 2);
    for (level, want_concurrency) in levels.iter().zip([1, 4]) {
        let num = |key: &str| {
            level[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{key} missing"))
        };
        let latency = |key: &str| {
            level["latency_ms"][key]
                .as_f64()
                .unwrap_or_else(|| panic!("latency_ms.{key} missing"))
        };
        assert_eq!(level["concurrency"], want_concurrency);
        assert!(num("messages") > 0.0, "no messages at c={want_concurrency}");
        assert_eq!(num("messages"), 2.0 * num("requests"));
        assert_eq!(num("payload_bytes"), 256.0 * num("messages"));
        assert!(num("msgs_per_sec") > 0.0);
        assert_eq!(num("errors"), 0.0, "errors: {}", level["errors_by_kind"]);
        let (p50, p99, max) = (latency("p50"), latency("p99"), latency("max"));
        assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "{p50} {p99} {max}");
        assert!(latency("p90") <= latency("p999"));
        // Every acknowledged publish was fdatasynced at least once.
        assert!(level["wal"]["syncs"].as_u64().expect("syncs") > 0);
    }

    let md = std::fs::read_to_string(&md_path).expect("Markdown written");
    assert!(md.contains("| concurrency | messages | msgs/s |"), "{md}");
    assert!(md.contains("|---:|"), "{md}");
    assert_eq!(md, report.markdown());

    // The messages really are in the topic.
    let status = reqwest::get(format!("{server}/v1/status"))
        .await
        .expect("status")
        .json::<serde_json::Value>()
        .await
        .expect("status JSON");
    let published: u64 = report.levels.iter().map(|l| l.messages).sum();
    assert!(status["retained_messages"].as_u64().expect("retained") >= published);

    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn non_loopback_server_is_refused_before_any_request() {
    let cli = Cli::try_parse_from([
        "strata-loadtest",
        "publish",
        "--server",
        "http://192.0.2.10:8080",
        "--duration",
        "1s",
        "--quiet",
    ])
    .expect("valid arguments");
    let err = strata_loadtest::run(cli).await.expect_err("must refuse");
    let text = format!("{err:#}");
    assert!(text.contains("not loopback"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_messages_bounds_the_run() {
    let data = tempfile::tempdir().expect("tempdir");
    let running = start_server(data.path()).await;
    let server = format!("http://{}", running.http_addr);
    let cli = Cli::try_parse_from([
        "strata-loadtest",
        "publish",
        "--server",
        &server,
        "--concurrency",
        "3",
        "--batch",
        "5",
        "--max-messages",
        "52",
        "--duration",
        "30s",
        "--warmup",
        "0s",
        "--quiet",
    ])
    .expect("valid arguments");
    let report = strata_loadtest::run(cli).await.expect("the run succeeds");
    // Whole batches only: 10 batches of 5.
    assert_eq!(report.levels[0].messages, 50);
    assert_eq!(report.levels[0].errors, 0);
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_rate_run() {
    let data = tempfile::tempdir().expect("tempdir");
    let running = start_server(data.path()).await;
    let server = format!("http://{}", running.http_addr);
    let cli = Cli::try_parse_from([
        "strata-loadtest",
        "publish",
        "--server",
        &server,
        "--concurrency",
        "2",
        "--rate",
        "200",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--quiet",
    ])
    .expect("valid arguments");
    let report = strata_loadtest::run(cli).await.expect("the run succeeds");
    let level = &report.levels[0];
    // 200 msgs/s for 1 s: at most 200 sends are scheduled in the window.
    assert!(level.messages + level.unsent_messages <= 200, "{level:?}");
    assert!(level.messages > 0);
    assert_eq!(level.errors, 0);
    running.shutdown().await.expect("clean shutdown");
}
