//! Credential revocation across a cluster: a key revoked through one node
//! is refused there at once and on every other node once
//! `auth.key_cache_ttl_ms` has passed, whether the request is served
//! where it arrives or forwarded to the tenant's node.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::time::Duration;

use common::cluster::start_with;
use common::{etcd_test_url, read_credentials};
use serde_json::{Value, json};

const KEY_CACHE_TTL_MS: u64 = 1000;

fn client(access: &str, secret: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {access}:{secret}"))
            .expect("header"),
    );
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .default_headers(headers)
        .build()
        .expect("http client")
}

/// The status of GET `path` through `url`, retried while the tenant is
/// being placed (503).
async fn status_of(client: &reqwest::Client, url: &str, path: &str) -> u16 {
    for _ in 0..100 {
        let status = client
            .get(format!("{url}{path}"))
            .send()
            .await
            .expect("request")
            .status()
            .as_u16();
        if status != 503 {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url}{path} kept answering 503");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_node_is_refused_everywhere_within_the_cache_ttl() {
    let Some(url) = etcd_test_url("revocation") else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let ttl = KEY_CACHE_TTL_MS.to_string();
    let env = [
        ("STRATA_AUTH_ANONYMOUS", "false"),
        ("STRATA_AUTH_KEY_CACHE_TTL_MS", ttl.as_str()),
    ];
    let a = start_with(dirs[0].path(), &url, shared.path(), "node-a", &env);
    let b = start_with(dirs[1].path(), &url, shared.path(), "node-b", &env);
    let (admin_ak, admin_sk) = read_credentials(&dirs[0].path().join("admin-credentials"));
    let admin = client(&admin_ak, &admin_sk);

    let created = admin
        .post(format!("{}/v1/tenants", a.url))
        .json(&json!({ "name": "acme" }))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{:?}", created.text().await);
    let issued: Value = admin
        .post(format!("{}/v1/keys", a.url))
        .json(&json!({ "tenant": "acme", "role": "tenant-admin" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = issued["access_key"].as_str().expect("access_key");
    let secret = issued["secret_key"].as_str().expect("secret_key");
    let tenant = client(access, secret);

    // Each node opens and caches the key: a request it serves itself
    // (whoami) and one for the tenant's topics, forwarded or not.
    for node in [&a, &b] {
        assert_eq!(status_of(&tenant, &node.url, "/v1/whoami").await, 200);
        assert_eq!(status_of(&tenant, &node.url, "/v1/topics").await, 200);
    }

    let revoked = admin
        .delete(format!("{}/v1/keys/{access}", a.url))
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "{:?}", revoked.text().await);
    // Refused at once where it was revoked.
    assert_eq!(status_of(&tenant, &a.url, "/v1/whoami").await, 401);
    // Everywhere else once every cached copy has expired.
    tokio::time::sleep(Duration::from_millis(KEY_CACHE_TTL_MS + 500)).await;
    for node in [&a, &b] {
        assert_eq!(status_of(&tenant, &node.url, "/v1/whoami").await, 401);
        assert_eq!(status_of(&tenant, &node.url, "/v1/topics").await, 401);
    }
    // The admin's own key is untouched.
    assert_eq!(status_of(&admin, &b.url, "/v1/whoami").await, 200);
    b.stop();
    a.stop();
}
