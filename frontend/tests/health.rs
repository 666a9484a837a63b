//! `/healthz` is a liveness check a supervisor can act on: once the WAL
//! failed (a write or fdatasync refused, as on a full disk) every publish
//! is refused until the node restarts, so the check fails too, and
//! `/metrics` says why (`strata_wal_failed`). `/readyz` and the status's
//! `not_ready` say it as well (a shut write fence is in `etcd_metadata.rs`).

mod common;

use common::TestServer;
use serde_json::json;

/// Files of this process may not grow past `bytes` from now on: a write
/// past it fails (EFBIG), as a write to a full disk fails. nextest runs
/// each test in a process of its own.
fn limit_file_size(bytes: u64) {
    // SAFETY: plain libc calls with valid arguments; the process ignores
    // SIGXFSZ so that the refused write returns an error instead.
    let ok = unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: libc::RLIM_INFINITY,
        };
        libc::setrlimit(libc::RLIMIT_FSIZE, &limit)
    };
    assert_eq!(ok, 0, "setrlimit failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_wal_fails_the_health_check() {
    let s = TestServer::start().await;
    s.create_topic("t", 1).await;
    assert_eq!(probe(&s, "/healthz").await, (200, "ok\n".to_string()));
    assert_eq!(probe(&s, "/readyz").await, (200, "ready\n".to_string()));
    assert!(s.get("/v1/status").await.json()["not_ready"].is_null());

    limit_file_size(2 << 20);
    let body = common::b64(&vec![7u8; 512 * 1024]);
    let mut refused = None;
    for _ in 0..16 {
        let r = s
            .post_json(
                "/v1/topics/t/messages",
                &json!({"messages": [{"body": body}]}),
            )
            .await;
        if r.status != 200 {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("a WAL write past the limit is refused");
    refused.expect_error(503, "UNAVAILABLE");

    let (status, text) = probe(&s, "/healthz").await;
    assert_eq!(status, 503);
    assert!(text.contains("wal failed"), "{text}");
    let (status, text) = probe(&s, "/readyz").await;
    assert_eq!(status, 503);
    assert!(text.starts_with("not ready: wal failed"), "{text}");
    let not_ready = s.get("/v1/status").await.json()["not_ready"].clone();
    assert!(
        not_ready.as_str().is_some_and(|w| w.contains("wal failed")),
        "{not_ready}"
    );
    let metrics = s.get("/metrics").await.text();
    assert!(metrics.contains("strata_wal_failed 1"), "{metrics}");
}

/// A public probe's status and text, asked without credentials.
async fn probe(s: &TestServer, path: &str) -> (u16, String) {
    let r = s.anonymous_http().get(s.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}
