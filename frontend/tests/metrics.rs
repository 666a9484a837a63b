//! `/metrics`: every family is documented in `docs/operations.md` with its
//! type, counters are counters, and the compactor's and the object store's
//! work and failures show, so an operator can alert on them.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::TestServer;
use serde_json::json;

/// `# TYPE` lines of an OpenMetrics text: family name → type.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let (name, kind) = l.split_once(' ')?;
            Some((name.to_string(), kind.trim().to_string()))
        })
        .collect()
}

/// Rows `| \`strata_x\` | type | ... |` of the metrics table in the docs.
fn documented() -> BTreeMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operations.md");
    let doc = std::fs::read_to_string(path).expect("docs/operations.md");
    doc.lines()
        .filter_map(|l| {
            let mut cells = l.split('|').map(str::trim).skip(1);
            let name = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            let kind = cells.next()?;
            name.starts_with("strata_")
                .then(|| (name.to_string(), kind.to_string()))
        })
        .collect()
}

/// The value of the sample `name` (exact, labels included).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

async fn metrics(s: &TestServer) -> String {
    let m = s.get("/metrics").await;
    assert_eq!(m.status, 200, "{}", m.text());
    m.text()
}

/// Scrapes until `done` holds, for at most a minute.
#[allow(clippy::disallowed_methods)]
async fn scrape_until(s: &TestServer, what: &str, done: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    for _ in 0..600 {
        text = metrics(s).await;
        if done(&text) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} never showed in:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_is_documented_with_its_type() {
    let s = TestServer::start().await;
    s.create_topic("t", 2).await;
    s.publish("t", json!([{"body": "a"}])).await;
    let text = metrics(&s).await;
    let exported: BTreeMap<String, String> = families(&text)
        .into_iter()
        // Per-tenant families are described in docs/metering.md.
        .filter(|(name, _)| !name.starts_with("strata_tenant_"))
        .collect();
    assert!(exported.len() > 40, "{text}");
    let docs = documented();
    for (name, kind) in &exported {
        assert_eq!(
            docs.get(name),
            Some(kind),
            "{name} ({kind}) is not in docs/operations.md with that type"
        );
    }
    for name in docs.keys() {
        assert!(
            exported.contains_key(name),
            "docs/operations.md lists {name}, which /metrics does not export"
        );
    }
    // Counts since start are counters, with the `_total` suffix.
    for counter in ["strata_wal_syncs", "strata_pop_acks", "strata_uploads"] {
        assert_eq!(exported[counter], "counter");
        assert!(
            sample(&text, &format!("{counter}_total")).is_some(),
            "{counter}_total: {text}"
        );
    }
    assert!(sample(&text, "strata_wal_appends_total").unwrap_or(0.0) >= 1.0);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_count_up_and_the_lag_drains() {
    let s = TestServer::start_with(|c| c.compactor.upload_interval_ms = 50).await;
    s.create_topic("t", 4).await;
    let batch: Vec<_> = (0..50).map(|i| json!({"body": format!("m{i}")})).collect();
    s.publish("t", json!(batch)).await;
    let text = scrape_until(&s, "an upload", |t| {
        sample(t, "strata_uploads_total").unwrap_or(0.0) >= 1.0
            && sample(t, "strata_upload_lag_bytes") == Some(0.0)
    })
    .await;
    assert!(sample(&text, "strata_uploaded_bytes_total").unwrap_or(0.0) > 0.0);
    assert!(
        sample(&text, "strata_object_requests_total{operation=\"put\"}").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert!(sample(&text, "strata_object_put_bytes_total").unwrap_or(0.0) > 0.0);
    assert_eq!(sample(&text, "strata_compactor_failing"), Some(0.0));
    assert_eq!(
        sample(&text, "strata_object_request_errors_total"),
        Some(0.0)
    );
    s.shutdown().await;
}

/// A store that fails every write (its root replaced by a file after the
/// start) shows as errors, retries and a failing compactor, and the lag
/// stays; nothing acknowledged is lost meanwhile (the WAL holds it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_object_store_shows_as_errors_and_a_failing_compactor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("store");
    let mut config = common::config(dir.path());
    config.object_store.root = root.display().to_string();
    config.object_store.max_attempts = 2;
    config.compactor.upload_interval_ms = 50;
    let s = TestServer::start_in(dir, config).await;
    s.create_topic("t", 1).await;
    std::fs::remove_dir_all(&root).expect("remove the store");
    std::fs::write(&root, b"not a directory").expect("a file in its place");
    s.publish("t", json!([{"body": "kept"}])).await;
    let text = scrape_until(&s, "failing uploads", |t| {
        sample(t, "strata_compactor_failing") == Some(1.0)
            && sample(t, "strata_compactor_failed_passes_total").unwrap_or(0.0) >= 1.0
    })
    .await;
    assert!(
        sample(&text, "strata_object_request_errors_total").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, "strata_object_request_retries_total").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert!(sample(&text, "strata_upload_lag_bytes").unwrap_or(0.0) > 0.0);
    let read = s.read("t", 0, "offset=0").await;
    assert_eq!(read["messages"][0]["body"], "kept", "{read}");
    s.shutdown().await;
}

/// Methods a client makes up are counted under `other`: a label per
/// invented method let anyone, without credentials, add series without end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_methods_add_no_series() {
    let s = TestServer::start().await;
    let http = s.anonymous_http();
    for i in 0..20 {
        let method = reqwest::Method::from_bytes(format!("X{i:05}").as_bytes()).unwrap();
        for path in ["/healthz", "/v1/topics"] {
            http.request(method.clone(), s.url(path))
                .send()
                .await
                .unwrap();
        }
    }
    let text = metrics(&s).await;
    assert!(!text.contains("X0000"), "{text}");
    let others: Vec<_> = text
        .lines()
        .filter(|l| l.starts_with("strata_http_requests_total{") && l.contains("method=\"other\""))
        .collect();
    let counted: f64 = others
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(counted, 40.0, "{others:?}");
    assert!(others.len() <= 4, "{others:?}");
}
