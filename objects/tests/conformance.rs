//! Runs the shared conformance suite against every backend.

use std::sync::Arc;
use std::time::Duration;

use strata_common::{Clock, SystemClock};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_backend_conforms() {
    let Ok(endpoint) = std::env::var("STRATA_TEST_S3_ENDPOINT") else {
        eprintln!("SKIPPED: STRATA_TEST_S3_ENDPOINT not set (scripts/test.sh starts SeaweedFS)");
        return;
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
    .with_prefix("strata-objects-tests");
    config.timeout = Duration::from_secs(20);
    config.max_attempts = 3;
    let objects = Objects::open(&config, clock()).unwrap();
    assert_eq!(
        objects.describe(),
        format!(
            "s3://{}/strata-objects-tests (endpoint {endpoint})",
            var("STRATA_TEST_S3_BUCKET")
        )
    );
    conformance::run_all(&objects).await;
    let m = objects.metrics();
    assert_eq!(
        m.errors, 0,
        "a healthy local server should need no retries: {m:?}"
    );
}
