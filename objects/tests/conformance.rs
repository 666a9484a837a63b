//! Runs the shared conformance suite against every backend.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_common::{BackgroundRuntime, Clock, SystemClock};
use strata_objects::{Backend, ObjectStoreConfig, Objects, conformance};

/// The real clock, for tests that do not drive time.
fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[tokio::test]
async fn memory_backend_conforms() {
    let objects = Objects::open(&ObjectStoreConfig::memory(), clock()).unwrap();
    conformance::run_all(&objects).await;
}

#[tokio::test]
async fn memory_backend_with_prefix_conforms() {
    let objects = Objects::open(
        &ObjectStoreConfig::memory().with_prefix("cluster-a/objects"),
        clock(),
    )
    .unwrap();
    conformance::run_all(&objects).await;
}

#[tokio::test]
async fn local_backend_conforms() {
    let dir = tempfile::tempdir().unwrap();
    // A root that does not exist yet: open must create it.
    let objects = Objects::open(
        &ObjectStoreConfig::local(dir.path().join("store")).with_prefix("strata"),
        clock(),
    )
    .unwrap();
    assert!(
        objects.describe().starts_with("file:///"),
        "{}",
        objects.describe()
    );
    assert!(
        objects.describe().ends_with("/store/strata"),
        "{}",
        objects.describe()
    );

    conformance::run_all(&objects).await;
}

/// The SeaweedFS bucket the test command starts, under `prefix`; `None`
/// (and a note why) when the tests run without it.
fn s3_config(prefix: &str) -> Option<(ObjectStoreConfig, String)> {
    let Ok(endpoint) = std::env::var("STRATA_TEST_S3_ENDPOINT") else {
        eprintln!("SKIPPED: STRATA_TEST_S3_ENDPOINT not set (scripts/test.sh starts SeaweedFS)");
        return None;
    };
    let var = |name: &str| {
        std::env::var(name)
            .unwrap_or_else(|_| panic!("{name} must be set with STRATA_TEST_S3_ENDPOINT"))
    };
    let mut config = ObjectStoreConfig::new(Backend::S3 {
        bucket: var("STRATA_TEST_S3_BUCKET"),
        endpoint: Some(endpoint.clone()),
        region: Some(var("STRATA_TEST_S3_REGION")),
        allow_http: true,
        access_key_id: Some(var("STRATA_TEST_S3_ACCESS_KEY")),
        secret_access_key: Some(var("STRATA_TEST_S3_SECRET_KEY")),
    })
    .with_prefix(prefix);
    config.timeout = Duration::from_secs(20);
    config.max_attempts = 3;
    let described = format!(
        "s3://{}/{prefix} (endpoint {endpoint})",
        var("STRATA_TEST_S3_BUCKET")
    );
    Some((config, described))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_backend_conforms() {
    let Some((config, described)) = s3_config("strata-objects-tests") else {
        return;
    };
    let objects = Objects::open(&config, clock()).unwrap();
    assert_eq!(objects.describe(), described);
    conformance::run_all(&objects).await;
    let m = objects.metrics();
    assert_eq!(
        m.errors, 0,
        "a healthy local server should need no retries: {m:?}"
    );
}

/// A secret the server does not accept is refused for good, not an outage
/// to wait out: a node started with it must say so instead of serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_wrong_credentials_are_rejected_not_unavailable() {
    let Some((mut config, _)) = s3_config("strata-objects-credentials") else {
        return;
    };
    if let Backend::S3 {
        secret_access_key, ..
    } = &mut config.backend
    {
        *secret_access_key = Some("not-the-secret".into());
    }
    let objects = Objects::open(&config, clock()).unwrap();
    let err = objects.get("strata-store-mark").await.unwrap_err();
    assert!(
        matches!(err, strata_objects::ObjectError::Rejected { .. }),
        "{err:?}"
    );
    assert_eq!(objects.metrics().retries, 0, "{:?}", objects.metrics());
}

/// The compactor and the cold reader call the store from low-priority
/// runtimes of one thread. A connection one of them opened must not be
/// driven by that thread when the server's runtime reuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_connections_are_driven_by_the_runtime_that_opened_the_store() {
    let Some((config, _)) = s3_config("strata-objects-runtime") else {
        return;
    };
    let objects = Objects::open(&config, clock()).unwrap();
    let other = BackgroundRuntime::start("strata-test-other", 1, 0).unwrap();
    let put = objects.clone();
    other
        .handle()
        .spawn(async move { put.put("k", Bytes::from_static(b"v")).await })
        .await
        .unwrap()
        .unwrap();
    // Hold the other runtime's only thread until the get below is done.
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let held = other.handle().spawn(async move {
        let _ = started_tx.send(());
        done_rx.recv_timeout(Duration::from_secs(15)).is_ok()
    });
    started_rx.await.unwrap();
    assert_eq!(objects.get("k").await.unwrap(), Bytes::from_static(b"v"));
    let _ = done_tx.send(());
    assert!(
        held.await.unwrap(),
        "the get waited for the other runtime's held thread"
    );
    objects.delete("k").await.unwrap();
}
