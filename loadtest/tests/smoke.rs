//! A short real run against an in-process Strata server. No timing
//! assertions: only that the run completes and the report is well formed.

use clap::Parser;
use strata_loadtest::cli::Cli;

async fn start_server(dir: &std::path::Path) -> strata_frontend::Running {
    let defaults = strata_frontend::Config::default();
    let mut config = strata_frontend::Config {
        data_dir: dir.to_path_buf(),
        http: strata_frontend::config::HttpConfig {
            addr: "127.0.0.1:0".into(),
            ..defaults.http.clone()
        },
        ..defaults
    };
    // Tests run in parallel: the gRPC listener takes any free port too.
    config.grpc.addr = "127.0.0.1:0".into();
    // Uploads every 100 ms, so waits for upload lag 0 are short.
    config.compactor.upload_interval_ms = 100;
    strata_frontend::server::start(config)
        .await
        .expect("start an in-process Strata server")
}

/// GET with the admin's bearer token.
async fn authed_get(ak: &str, sk: &str, url: String) -> reqwest::Result<reqwest::Response> {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(format!("{ak}:{sk}"))
        .send()
        .await
}

/// The bootstrap admin credential the in-process server wrote.
fn admin_credentials(data: &std::path::Path) -> (String, String) {
    let text = std::fs::read_to_string(data.join("admin-credentials")).expect("credentials file");
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .expect("credential line")
            .trim()
            .to_string()
    };
    (value("access_key"), value("secret_key"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publish_smoke_run_produces_a_valid_report() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let running = start_server(data.path()).await;
    let server = format!("http://{}", running.http_addr);
    let (ak, sk) = admin_credentials(data.path());
    let json_path = out.path().join("report.json");
    let md_path = out.path().join("report.md");

    let cli = Cli::try_parse_from([
        "strata-loadtest",
        "publish",
        "--server",
        &server,
        "--access-key",
        &ak,
        "--secret-key",
        &sk,
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
    let report = strata_loadtest::run(cli)
        .await
        .expect("the run succeeds")
        .into_publish()
        .expect("a publish report");
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
    let status = authed_get(&ak, &sk, format!("{server}/v1/status"))
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
    let (ak, sk) = admin_credentials(data.path());
    let cli = Cli::try_parse_from([
        "strata-loadtest",
        "publish",
        "--server",
        &server,
        "--access-key",
        &ak,
        "--secret-key",
        &sk,
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
    let report = strata_loadtest::run(cli)
        .await
        .expect("the run succeeds")
        .into_publish()
        .expect("a publish report");
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
    let (ak, sk) = admin_credentials(data.path());
    let cli = Cli::try_parse_from([
        "strata-loadtest",
        "publish",
        "--server",
        &server,
        "--access-key",
        &ak,
        "--secret-key",
        &sk,
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
    let report = strata_loadtest::run(cli)
        .await
        .expect("the run succeeds")
        .into_publish()
        .expect("a publish report");
    let level = &report.levels[0];
    // 200 msgs/s for 1 s: at most 200 sends are scheduled in the window.
    assert!(level.messages + level.unsent_messages <= 200, "{level:?}");
    assert!(level.messages > 0);
    assert_eq!(level.errors, 0);
    running.shutdown().await.expect("clean shutdown");
}

fn ordered(s: &serde_json::Value) -> bool {
    let v = |k: &str| {
        s[k].as_f64()
            .unwrap_or_else(|| panic!("latency {k} missing"))
    };
    v("p50") > 0.0 && v("p50") <= v("p99") && v("p99") <= v("p999") && v("p999") <= v("max")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catchup_smoke_run_reads_the_whole_backlog() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let running = start_server(data.path()).await;
    let server = format!("http://{}", running.http_addr);
    let (ak, sk) = admin_credentials(data.path());
    let json_path = out.path().join("catchup.json");
    let md_path = out.path().join("catchup.md");
    let cli = Cli::try_parse_from([
        "strata-loadtest",
        "catchup",
        "--server",
        &server,
        "--access-key",
        &ak,
        "--secret-key",
        &sk,
        "--backlog-mib",
        "1",
        "--message-size",
        "1024",
        "--queues",
        "3",
        "--concurrency",
        "4",
        "--rate",
        "200",
        "--duration",
        "1s",
        "--lag-timeout",
        "60s",
        "--quiet",
        "--json-out",
        json_path.to_str().expect("utf-8 path"),
        "--markdown-out",
        md_path.to_str().expect("utf-8 path"),
    ])
    .expect("valid arguments");
    let report = strata_loadtest::run(cli)
        .await
        .expect("the run succeeds")
        .into_catchup()
        .expect("a catchup report");
    // 1 MiB of 1 KiB messages.
    assert_eq!(report.backlog.messages, 1024);
    assert_eq!(report.backlog.errors, 0);
    assert_eq!(report.backlog_end_offsets.iter().sum::<u64>(), 1024);
    for read in [&report.cold_read, &report.warm_read] {
        assert_eq!(read.messages, 1024, "{read:?}");
        assert_eq!(read.expected_messages, 1024);
        assert_eq!(read.body_bytes, 1 << 20);
        assert_eq!(read.errors, 0, "{:?}", read.errors_by_kind);
        assert_eq!(read.unread, 0);
    }

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("JSON written"))
            .expect("the JSON report parses");
    assert_eq!(json["scenario"], "catchup");
    for phase in ["baseline", "with_catchup"] {
        let l = &json[phase];
        assert!(l["messages"].as_u64().expect("messages") > 0, "{phase}");
        assert_eq!(l["errors"], 0, "{phase}: {}", l["errors_by_kind"]);
        assert!(ordered(&l["latency_ms"]), "{phase}: {}", l["latency_ms"]);
    }
    let md = std::fs::read_to_string(&md_path).expect("Markdown written");
    assert!(md.contains("| producer phase | messages |"), "{md}");
    assert!(md.contains("| with catch-up |"), "{md}");
    assert!(md.contains("| cold (with producers) | 1024/1024 |"), "{md}");
    assert!(md.contains("| warm | 1024/1024 |"), "{md}");
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queues_smoke_run_reports_object_traffic_per_level() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let running = start_server(data.path()).await;
    let server = format!("http://{}", running.http_addr);
    let (ak, sk) = admin_credentials(data.path());
    let json_path = out.path().join("queues.json");
    let cli = Cli::try_parse_from([
        "strata-loadtest",
        "queues",
        "--server",
        &server,
        "--access-key",
        &ak,
        "--secret-key",
        &sk,
        "--queues",
        "1,4",
        "--messages",
        "500",
        "--message-size",
        "512",
        "--batch",
        "10",
        "--concurrency",
        "4",
        "--settle",
        "300ms",
        "--lag-timeout",
        "60s",
        "--quiet",
        "--json-out",
        json_path.to_str().expect("utf-8 path"),
    ])
    .expect("valid arguments");
    let report = strata_loadtest::run(cli)
        .await
        .expect("the run succeeds")
        .into_queues()
        .expect("a queues report");
    assert_eq!(report.levels.len(), 2);
    for (level, n) in report.levels.iter().zip([1u32, 4]) {
        assert_eq!(level.queues, n);
        assert_eq!(level.topic, format!("queues-{n}"));
        assert_eq!(level.messages, 500);
        assert_eq!(level.body_bytes, 500 * 512);
        assert_eq!(level.errors, 0, "{:?}", level.errors_by_kind);
        assert!(
            level.tiering.puts > 0 && level.tiering.put_bytes > 0,
            "{level:?}"
        );
        assert!(level.tiering.uploads > 0, "{level:?}");
        assert!(level.write_amplification.expect("write amp") > 0.0);
        assert!(level.puts_per_gib.expect("puts/GiB") > 0.0);
    }
    // Every queue of the 4-queue topic got an equal share (round-robin batches).
    let stats: serde_json::Value = authed_get(&ak, &sk, format!("{server}/v1/topics/queues-4"))
        .await
        .expect("topic")
        .json()
        .await
        .expect("topic JSON");
    let ends: Vec<u64> = stats["queue_stats"]
        .as_array()
        .expect("queue_stats")
        .iter()
        .map(|q| q["end_offset"].as_u64().expect("end_offset"))
        .collect();
    assert_eq!(ends.len(), 4);
    assert_eq!(ends.iter().sum::<u64>(), 500);
    assert!(ends.iter().all(|&e| e % 10 == 0), "{ends:?}");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("JSON written"))
            .expect("the JSON report parses");
    assert_eq!(json["scenario"], "queues");
    assert_eq!(json["levels"].as_array().expect("levels").len(), 2);
    assert!(ordered(&json["levels"][0]["latency_ms"]));
    let md = strata_loadtest::Outcome::Queues(report).markdown();
    assert!(md.contains("| queues | messages | MiB in |"), "{md}");
    assert!(md.contains("\n| 1 | 500 |"), "{md}");
    assert!(md.contains("\n| 4 | 500 |"), "{md}");
    running.shutdown().await.expect("clean shutdown");
}

/// `--deliver-after` publishes delayed messages to a DELAY topic: none is
/// visible yet, and a batch is stored as one WAL record, not one per message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_publish_run_stores_each_batch_once() {
    let data = tempfile::tempdir().expect("tempdir");
    let running = start_server(data.path()).await;
    let server = format!("http://{}", running.http_addr);
    let (ak, sk) = admin_credentials(data.path());
    let cli = Cli::try_parse_from([
        "strata-loadtest",
        "publish",
        "--server",
        &server,
        "--access-key",
        &ak,
        "--secret-key",
        &sk,
        "--topic",
        "later",
        "--queues",
        "2",
        "--concurrency",
        "4",
        "--message-size",
        "128",
        "--batch",
        "8",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--deliver-after",
        "1h",
        "--quiet",
    ])
    .expect("valid arguments");
    let report = strata_loadtest::run(cli)
        .await
        .expect("the run succeeds")
        .into_publish()
        .expect("a publish report");
    let level = &report.levels[0];
    assert!(level.messages > 0);
    assert_eq!(level.errors, 0, "{:?}", level.errors_by_kind);
    assert!(
        level.wal.appends * 4 <= level.messages,
        "{} WAL records for {} delayed messages in batches of 8",
        level.wal.appends,
        level.messages
    );
    let client = strata_loadtest::driver::strata_http::StrataHttp::with_authorization(
        &server,
        std::time::Duration::from_secs(5),
        Some(format!("Bearer {ak}:{sk}")),
    )
    .expect("client");
    let queues = client.queue_stats("later").await.expect("topic stats");
    assert!(
        queues.iter().all(|q| q.end_offset == 0),
        "nothing is delivered an hour early: {queues:?}"
    );
    running.shutdown().await.expect("clean shutdown");
}
