//! Authentication (bearer and MQv2-HMAC-SHA1, clock skew, revocation and
//! rotation) and authorization (what each role may do, and the
//! `x-strata-tenant` header) against a real server.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{Actor, Resp, TestServer, client_with_authorization, fill_path, read_resp};
use serde_json::{Value, json};
use strata_frontend::http::ROUTES;
use strata_tenancy::{DATE_HEADER, SecretKey, format_date_time, sign};

const INVALID_CREDENTIALS: &str = "invalid credentials";

fn now_ms() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(d.as_millis()).expect("ms fit i64")
}

/// The RocketMQ 5 authorization header for `date`.
fn hmac_header(access_key: &str, secret_key: &str, date: &str) -> String {
    let signature = sign(&SecretKey::new(secret_key), date);
    format!(
        "MQv2-HMAC-SHA1 Credential={access_key}, SignedHeaders={DATE_HEADER}, Signature={signature}"
    )
}

/// A response plus its WWW-Authenticate header.
struct Answer {
    resp: Resp,
    www_authenticate: Option<String>,
}

/// Sends GET `path` with exactly the given authorization and date headers.
async fn get_with(
    s: &TestServer,
    path: &str,
    authorization: Option<&str>,
    date: Option<&str>,
) -> Answer {
    let mut req = s.anonymous_http().get(s.url(path));
    if let Some(a) = authorization {
        req = req.header(reqwest::header::AUTHORIZATION, a);
    }
    if let Some(d) = date {
        req = req.header(DATE_HEADER, d);
    }
    let r = req.send().await.expect("request is answered");
    let www_authenticate = r
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Answer {
        resp: read_resp(r).await,
        www_authenticate,
    }
}

fn message(resp: &Resp) -> String {
    resp.json()["error"]["message"]
        .as_str()
        .expect("error message")
        .to_string()
}

/// Asserts 401 UNAUTHENTICATED with a WWW-Authenticate challenge; returns
/// the message.
#[track_caller]
fn expect_unauthenticated(what: &str, a: &Answer) -> String {
    assert_eq!(
        a.resp.status,
        401,
        "{what}: expected 401, got {}",
        a.resp.text()
    );
    a.resp.expect_error(401, "UNAUTHENTICATED");
    let challenge = a
        .www_authenticate
        .as_deref()
        .unwrap_or_else(|| panic!("{what}: 401 without WWW-Authenticate"));
    assert!(
        challenge.contains("Bearer") && challenge.contains("MQv2-HMAC-SHA1"),
        "{what}: challenge {challenge:?}"
    );
    message(&a.resp)
}

async fn whoami(a: &Actor) -> Value {
    a.get("/v1/whoami").await.expect(200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_are_401_on_every_private_route() {
    let s = TestServer::start().await;
    let a = get_with(&s, "/v1/topics", None, None).await;
    let m = expect_unauthenticated("no header", &a);
    assert!(m.contains("missing credentials"), "{m}");
    // An empty header is the same as none.
    let a = get_with(&s, "/v1/topics", Some(""), None).await;
    expect_unauthenticated("empty header", &a);

    // Every route but the two public ones refuses an anonymous caller,
    // before looking at the path parameters or the body.
    let anonymous = s.anonymous_http();
    for (method, template) in ROUTES {
        let path = fill_path(
            template,
            &[
                ("topic", "t"),
                ("queue", "0"),
                ("group", "g"),
                ("tenant", "x"),
                ("access_key", "STRAX"),
                ("transaction_id", "0123456789abcdef0123456789abcdef"),
                ("plan", "default"),
                ("node", "node-x"),
            ],
        );
        let m = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let resp = s
            .send(
                anonymous
                    .request(m, s.url(&path))
                    .json(&json!({"name": "x"})),
            )
            .await;
        if ["/healthz", "/readyz", "/v1/openapi.json"].contains(template) {
            assert_eq!(resp.status, 200, "{method} {path}: {}", resp.text());
        } else {
            assert_eq!(resp.status, 401, "{method} {path}: {}", resp.text());
            resp.expect_error(401, "UNAUTHENTICATED");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_authorization_headers_are_401() {
    let s = TestServer::start().await;
    let date = format_date_time(now_ms());
    let good_sig = sign(&SecretKey::new(s.secret_key.as_str()), &date);
    let ak = s.access_key.clone();
    let cases = [
        ("unknown scheme", "Basic dXNlcjpwYXNz".to_string()),
        ("scheme only", "Bearer".to_string()),
        ("bearer without colon", format!("Bearer {ak}")),
        ("bearer empty secret", format!("Bearer {ak}:")),
        ("bearer empty key", "Bearer :topsecret".to_string()),
        (
            "hmac without Signature",
            format!("MQv2-HMAC-SHA1 Credential={ak}, SignedHeaders={DATE_HEADER}"),
        ),
        (
            "hmac without Credential",
            format!("MQv2-HMAC-SHA1 SignedHeaders={DATE_HEADER}, Signature={good_sig}"),
        ),
        (
            "hmac bad hex",
            format!(
                "MQv2-HMAC-SHA1 Credential={ak}, SignedHeaders={DATE_HEADER}, Signature=zz{}",
                &good_sig[2..]
            ),
        ),
        (
            "hmac empty signature",
            format!("MQv2-HMAC-SHA1 Credential={ak}, SignedHeaders={DATE_HEADER}, Signature="),
        ),
        (
            "hmac duplicate Credential",
            format!(
                "MQv2-HMAC-SHA1 Credential={ak}, Credential={ak}, SignedHeaders={DATE_HEADER}, Signature={good_sig}"
            ),
        ),
        (
            "hmac duplicate Signature",
            format!(
                "MQv2-HMAC-SHA1 Credential={ak}, SignedHeaders={DATE_HEADER}, Signature={good_sig}, Signature={good_sig}"
            ),
        ),
        (
            "hmac unknown parameter",
            format!(
                "MQv2-HMAC-SHA1 Credential={ak}, Region=x, SignedHeaders={DATE_HEADER}, Signature={good_sig}"
            ),
        ),
        (
            "hmac other signed headers",
            format!("MQv2-HMAC-SHA1 Credential={ak}, SignedHeaders=host, Signature={good_sig}"),
        ),
    ];
    for (what, header) in &cases {
        let a = get_with(&s, "/v1/whoami", Some(header), Some(&date)).await;
        let m = expect_unauthenticated(what, &a);
        assert!(!m.contains("topsecret"), "{what}: secret echoed: {m}");
        assert!(!m.contains(&s.secret_key), "{what}: secret echoed: {m}");
    }
    // The same well-formed header is accepted, so the cases above failed
    // for their defect alone.
    let header = format!(
        "MQv2-HMAC-SHA1 Credential={ak}, SignedHeaders={DATE_HEADER}, Signature={good_sig}"
    );
    let a = get_with(&s, "/v1/whoami", Some(&header), Some(&date)).await;
    assert_eq!(a.resp.status, 200, "{}", a.resp.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_and_wrong_secret_are_indistinguishable() {
    let s = TestServer::start().await;
    s.create_tenant("acme").await;
    let key = s.create_key("acme", "publisher").await;
    let date = format_date_time(now_ms());
    let unknown = "STRANOSUCHKEY0000000";

    let cases = [
        (
            "bearer unknown key",
            format!("Bearer {unknown}:{}", key.secret_key),
            None,
        ),
        (
            "bearer wrong secret",
            format!("Bearer {}:{}x", key.access_key, key.secret_key),
            None,
        ),
        (
            "bearer admin key with another key's secret",
            format!("Bearer {}:{}", s.access_key, key.secret_key),
            None,
        ),
        (
            "hmac unknown key",
            hmac_header(unknown, &key.secret_key, &date),
            Some(date.clone()),
        ),
        (
            "hmac signed with the wrong secret",
            hmac_header(&key.access_key, "not-the-secret", &date),
            Some(date.clone()),
        ),
        (
            "hmac signature over another date",
            format!(
                "MQv2-HMAC-SHA1 Credential={}, SignedHeaders={DATE_HEADER}, Signature={}",
                key.access_key,
                sign(
                    &SecretKey::new(key.secret_key.as_str()),
                    &format_date_time(now_ms() - 1000 * 60)
                )
            ),
            Some(date.clone()),
        ),
    ];
    for (what, header, date) in &cases {
        let a = get_with(&s, "/v1/whoami", Some(header), date.as_deref()).await;
        let m = expect_unauthenticated(what, &a);
        assert_eq!(m, INVALID_CREDENTIALS, "{what}: message reveals more");
        assert!(
            !m.contains(&key.access_key) && !m.contains(unknown),
            "{what}: {m}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_with_a_correct_signature_is_accepted() {
    let s = TestServer::start().await;
    s.create_tenant("acme").await;
    let key = s.create_key("acme", "consumer").await;
    for (what, date) in [
        ("now", format_date_time(now_ms())),
        ("10 minutes old", format_date_time(now_ms() - 10 * 60_000)),
        ("10 minutes ahead", format_date_time(now_ms() + 10 * 60_000)),
    ] {
        let header = hmac_header(&key.access_key, &key.secret_key, &date);
        let a = get_with(&s, "/v1/whoami", Some(&header), Some(&date)).await;
        let v = a.resp.expect(200);
        assert_eq!(v["access_key"], json!(key.access_key), "{what}: {v}");
        assert_eq!(v["tenant"], "acme", "{what}");
        assert_eq!(v["role"], "consumer", "{what}");

        // Uppercase hex is the same signature.
        let upper = {
            let sig = sign(&SecretKey::new(key.secret_key.as_str()), &date).to_ascii_uppercase();
            format!(
                "MQv2-HMAC-SHA1 Credential={}, SignedHeaders={DATE_HEADER}, Signature={sig}",
                key.access_key
            )
        };
        let a = get_with(&s, "/v1/whoami", Some(&upper), Some(&date)).await;
        assert_eq!(a.resp.expect(200)["tenant"], "acme", "{what} uppercase");
    }
    // A credential scope after the key, lowercase scheme and no spaces are
    // accepted too (RocketMQ clients vary).
    let date = format_date_time(now_ms());
    let sig = sign(&SecretKey::new(key.secret_key.as_str()), &date);
    let compact = format!(
        "mqv2-hmac-sha1 Credential={}/scope,SignedHeaders=X-MQ-Date-Time,Signature={sig}",
        key.access_key
    );
    let a = get_with(&s, "/v1/whoami", Some(&compact), Some(&date)).await;
    assert_eq!(a.resp.expect(200)["role"], "consumer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_outside_the_clock_skew_or_without_a_date_is_401() {
    let s = TestServer::start().await;
    let (ak, sk) = (s.access_key.clone(), s.secret_key.clone());
    for (what, offset_ms) in [
        ("20 minutes old", -20 * 60_000),
        ("20 minutes ahead", 20 * 60_000),
    ] {
        let date = format_date_time(now_ms() + offset_ms);
        let a = get_with(
            &s,
            "/v1/whoami",
            Some(&hmac_header(&ak, &sk, &date)),
            Some(&date),
        )
        .await;
        let m = expect_unauthenticated(what, &a);
        assert!(m.contains("server time"), "{what}: {m}");
    }
    // No date header: the signature covers nothing.
    let date = format_date_time(now_ms());
    let header = hmac_header(&ak, &sk, &date);
    let a = get_with(&s, "/v1/whoami", Some(&header), None).await;
    let m = expect_unauthenticated("no date header", &a);
    assert!(m.contains(DATE_HEADER), "{m}");
    // A date that does not parse.
    let a = get_with(
        &s,
        "/v1/whoami",
        Some(&hmac_header(&ak, &sk, "yesterday")),
        Some("yesterday"),
    )
    .await;
    expect_unauthenticated("unparsable date", &a);
    // A valid signature over one date sent with another.
    let other = format_date_time(now_ms() - 5_000);
    let a = get_with(&s, "/v1/whoami", Some(&header), Some(&other)).await;
    assert_eq!(
        expect_unauthenticated("date swapped", &a),
        INVALID_CREDENTIALS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_key_is_refused_at_once() {
    let s = TestServer::start().await;
    s.create_tenant("acme").await;
    let key = s.create_key("acme", "publisher").await;
    assert_eq!(whoami(&key).await["role"], "publisher");
    let date = format_date_time(now_ms());
    let hmac = hmac_header(&key.access_key, &key.secret_key, &date);
    assert_eq!(
        get_with(&s, "/v1/whoami", Some(&hmac), Some(&date))
            .await
            .resp
            .status,
        200
    );

    let revoked = s
        .delete(&format!("/v1/keys/{}", key.access_key))
        .await
        .expect(200);
    assert_eq!(revoked["access_key"], json!(key.access_key));
    assert!(revoked["revoked_ms"].as_i64().is_some(), "{revoked}");
    assert!(!revoked.to_string().contains(&key.secret_key), "{revoked}");

    let r = key.get("/v1/whoami").await;
    r.expect_error(401, "UNAUTHENTICATED");
    let r = key.get("/v1/topics").await;
    r.expect_error(401, "UNAUTHENTICATED");
    let a = get_with(&s, "/v1/whoami", Some(&hmac), Some(&date)).await;
    expect_unauthenticated("hmac after revoke", &a);
    // Revoking again is idempotent; rotating a revoked key is refused.
    s.delete(&format!("/v1/keys/{}", key.access_key))
        .await
        .expect(200);
    let r = s
        .post_json(&format!("/v1/keys/{}/rotate", key.access_key), &json!({}))
        .await;
    r.expect_error(409, "CONFLICT");
    key.get("/v1/whoami")
        .await
        .expect_error(401, "UNAUTHENTICATED");
    // The key is still listed, as revoked.
    let keys = s.get("/v1/keys?tenant=acme").await.expect(200);
    let listed = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["access_key"] == json!(key.access_key))
        .expect("revoked key listed")
        .clone();
    assert!(listed["revoked_ms"].as_i64().is_some(), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_key_switches_secrets_at_once() {
    let s = TestServer::start().await;
    s.create_tenant("acme").await;
    let old = s.create_key("acme", "consumer").await;
    assert_eq!(whoami(&old).await["tenant"], "acme");

    let issued = s
        .post_json(&format!("/v1/keys/{}/rotate", old.access_key), &json!({}))
        .await
        .expect(200);
    assert_eq!(issued["access_key"], json!(old.access_key));
    assert_eq!(issued["tenant"], "acme");
    assert_eq!(issued["role"], "consumer");
    let new_secret = issued["secret_key"].as_str().expect("secret").to_string();
    assert_ne!(new_secret, old.secret_key);

    let new = s.actor(&old.access_key, &new_secret, "acme", "consumer");
    let v = whoami(&new).await;
    assert_eq!(
        (v["tenant"].as_str(), v["role"].as_str()),
        (Some("acme"), Some("consumer"))
    );
    let r = old.get("/v1/whoami").await;
    r.expect_error(401, "UNAUTHENTICATED");
    assert_eq!(message(&r), INVALID_CREDENTIALS);

    // HMAC follows the rotation as well.
    let date = format_date_time(now_ms());
    let a = get_with(
        &s,
        "/v1/whoami",
        Some(&hmac_header(&old.access_key, &new_secret, &date)),
        Some(&date),
    )
    .await;
    assert_eq!(a.resp.status, 200, "{}", a.resp.text());
    let a = get_with(
        &s,
        "/v1/whoami",
        Some(&hmac_header(&old.access_key, &old.secret_key, &date)),
        Some(&date),
    )
    .await;
    assert_eq!(
        expect_unauthenticated("old secret, hmac", &a),
        INVALID_CREDENTIALS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_openapi_need_no_credentials() {
    let s = TestServer::start().await;
    let anon = s.anonymous_http();
    let r = s.send(anon.get(s.url("/healthz"))).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    let r = s.send(anon.get(s.url("/v1/openapi.json"))).await;
    assert_eq!(r.status, 200);
    assert!(r.json()["paths"].is_object());
    // Bad credentials do not spoil public routes either.
    let garbage = client_with_authorization("Bearer nope:nope");
    assert_eq!(s.send(garbage.get(s.url("/healthz"))).await.status, 200);
    assert_eq!(
        s.send(garbage.get(s.url("/v1/openapi.json"))).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_reports_tenant_and_role_of_every_kind_of_key() {
    let s = TestServer::start().await;
    let admin = s.get("/v1/whoami").await.expect(200);
    assert_eq!(admin["access_key"], json!(s.access_key));
    assert_eq!(admin["tenant"], "default");
    assert_eq!(admin["role"], "admin");
    assert_eq!(admin["acting_tenant"], "default");
    s.create_tenant("acme").await;
    let acting = s
        .send(
            s.http
                .get(s.url("/v1/whoami"))
                .header("x-strata-tenant", "acme"),
        )
        .await
        .expect(200);
    assert_eq!(acting["tenant"], "default");
    assert_eq!(acting["acting_tenant"], "acme");

    for role in ["admin", "tenant-admin", "publisher", "consumer"] {
        let key = s.create_key("acme", role).await;
        let v = whoami(&key).await;
        assert_eq!(v["access_key"], json!(key.access_key), "{role}");
        assert_eq!(v["tenant"], "acme", "{role}");
        assert_eq!(v["role"], json!(role));
        assert_eq!(v["acting_tenant"], "acme", "{role}");
        assert!(
            !v.to_string().contains(&key.secret_key),
            "{role}: secret in whoami"
        );
    }
}

/// Keys of each role in tenant "acme", with a topic "orders" (2 queues)
/// holding a few messages.
struct Acme {
    s: TestServer,
    tenant_admin: Actor,
    publisher: Actor,
    consumer: Actor,
}

async fn acme() -> Acme {
    let s = TestServer::start().await;
    s.create_tenant("acme").await;
    let tenant_admin = s.create_key("acme", "tenant-admin").await;
    let publisher = s.create_key("acme", "publisher").await;
    let consumer = s.create_key("acme", "consumer").await;
    tenant_admin
        .post_json("/v1/topics", &json!({"name": "orders", "queues": 2}))
        .await
        .expect(201);
    let msgs = json!({"messages": [{"body": "a", "queue": 0}, {"body": "b", "queue": 0}]});
    tenant_admin
        .post_json("/v1/topics/orders/messages", &msgs)
        .await
        .expect(200);
    Acme {
        s,
        tenant_admin,
        publisher,
        consumer,
    }
}

#[track_caller]
fn denied(what: &str, r: &Resp) {
    assert_eq!(r.status, 403, "{what}: {}", r.text());
    r.expect_error(403, "PERMISSION_DENIED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_may_publish_and_describe_only() {
    let Acme {
        s, publisher: p, ..
    } = acme().await;
    let sent = p
        .post_json(
            "/v1/topics/orders/messages",
            &json!({"messages": [{"body": "x", "queue": 1}]}),
        )
        .await
        .expect(200);
    assert_eq!(sent["messages"][0]["queue"], 1);
    let raw = p
        .send(
            p.request("post", "/v1/topics/orders/messages?queue=1")
                .header("content-type", "text/plain")
                .body("raw"),
        )
        .await
        .expect(200);
    assert_eq!(raw["messages"][0]["offset"], 1);
    let topic = p.get("/v1/topics/orders").await.expect(200);
    assert_eq!(topic["queue_stats"][1]["end_offset"], 2);
    p.get("/v1/topics").await.expect(200);
    p.get("/v1/topics/orders/queues/0").await.expect(200);
    p.get("/v1/topics/orders/queues/0/offset?timestamp_ms=0")
        .await
        .expect(200);

    denied("read", &p.get("/v1/topics/orders/queues/0/messages").await);
    denied(
        "commit",
        &p.put_json("/v1/groups/g/offsets/orders/0", &json!({"offset": 1}))
            .await,
    );
    denied("get offset", &p.get("/v1/groups/g/offsets/orders/0").await);
    denied("list groups", &p.get("/v1/groups").await);
    denied(
        "create group",
        &p.post_json("/v1/groups", &json!({"name": "g"})).await,
    );
    denied(
        "create topic",
        &p.post_json("/v1/topics", &json!({"name": "new"})).await,
    );
    denied("delete topic", &p.delete("/v1/topics/orders").await);
    denied(
        "create key",
        &p.post_json("/v1/keys", &json!({"role": "publisher"})).await,
    );
    denied("list keys", &p.get("/v1/keys").await);
    denied(
        "rotate own key",
        &p.post_json(&format!("/v1/keys/{}/rotate", p.access_key), &json!({}))
            .await,
    );
    denied("status", &p.get("/v1/status").await);
    denied("cluster", &p.get("/v1/cluster").await);
    denied("metrics", &p.get("/metrics").await);
    denied("list tenants", &p.get("/v1/tenants").await);
    // Nothing was created on the way.
    let topics = s.get("/v1/topics").await.expect(200);
    assert_eq!(
        topics["topics"].as_array().unwrap().len(),
        0,
        "admin's default tenant"
    );
    let acme = s
        .send(
            s.http
                .get(s.url("/v1/topics"))
                .header("x-strata-tenant", "acme"),
        )
        .await
        .expect(200);
    assert_eq!(acme["topics"].as_array().unwrap().len(), 1, "{acme}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_may_read_commit_and_describe_only() {
    let Acme {
        s: _server,
        consumer: c,
        ..
    } = acme().await;
    let read = c
        .get("/v1/topics/orders/queues/0/messages?offset=0")
        .await
        .expect(200);
    assert_eq!(read["messages"].as_array().unwrap().len(), 2, "{read}");
    assert_eq!(read["messages"][0]["body"], "a");
    let g = c
        .post_json("/v1/groups", &json!({"name": "billing"}))
        .await
        .expect(201);
    assert_eq!(g["name"], "billing");
    let committed = c
        .put_json("/v1/groups/billing/offsets/orders/0", &json!({"offset": 1}))
        .await
        .expect(200);
    assert_eq!(committed["offset"], 1);
    let got = c
        .get("/v1/groups/billing/offsets/orders/0")
        .await
        .expect(200);
    assert_eq!(got["offset"], 1);
    let described = c.get("/v1/groups/billing").await.expect(200);
    assert_eq!(described["offsets"][0]["lag"], 1, "{described}");
    c.get("/v1/groups").await.expect(200);
    c.get("/v1/topics").await.expect(200);
    c.get("/v1/topics/orders").await.expect(200);
    c.get("/v1/topics/orders/queues/1").await.expect(200);

    denied(
        "publish",
        &c.post_json(
            "/v1/topics/orders/messages",
            &json!({"messages": [{"body": "x"}]}),
        )
        .await,
    );
    denied(
        "publish raw",
        &c.send(
            c.request("post", "/v1/topics/orders/messages")
                .header("content-type", "text/plain")
                .body("x"),
        )
        .await,
    );
    denied(
        "create topic",
        &c.post_json("/v1/topics", &json!({"name": "new"})).await,
    );
    denied("delete topic", &c.delete("/v1/topics/orders").await);
    denied("delete group", &c.delete("/v1/groups/billing").await);
    denied(
        "create key",
        &c.post_json("/v1/keys", &json!({"role": "consumer"})).await,
    );
    denied("status", &c.get("/v1/status").await);
    denied("cluster", &c.get("/v1/cluster").await);
    denied("metrics", &c.get("/metrics").await);
    // The topic and its data are untouched.
    let topic = c.get("/v1/topics/orders").await.expect(200);
    assert_eq!(topic["queue_stats"][0]["end_offset"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_admin_manages_its_own_tenant_only() {
    let Acme {
        s,
        tenant_admin: ta,
        publisher,
        ..
    } = acme().await;
    s.create_tenant("other").await;
    let foreign = s.create_key("other", "publisher").await;
    // A service admin key in acme, which acme's tenant-admin may not
    // manage (rotate, revoke) and so does not see either.
    let admin_in_acme = s.create_key("acme", "admin").await;

    let t = ta
        .post_json("/v1/topics", &json!({"name": "scratch", "queues": 3}))
        .await
        .expect(201);
    assert_eq!(t["queues"], 3);
    ta.delete("/v1/topics/scratch").await.expect(200);
    ta.get("/v1/topics/scratch")
        .await
        .expect_error(404, "TOPIC_NOT_FOUND");

    let mut mine = vec![ta.access_key.clone(), publisher.access_key.clone()];
    for role in ["publisher", "consumer", "tenant-admin"] {
        let k = ta
            .post_json("/v1/keys", &json!({"role": role}))
            .await
            .expect(201);
        assert_eq!(k["tenant"], "acme", "{k}");
        assert_eq!(k["role"], json!(role));
        let key = s.actor(
            k["access_key"].as_str().unwrap(),
            k["secret_key"].as_str().unwrap(),
            "acme",
            role,
        );
        assert_eq!(whoami(&key).await["tenant"], "acme");
        mine.push(key.access_key.clone());
        // Naming its own tenant explicitly is the same.
        let k = ta
            .post_json("/v1/keys", &json!({"role": role, "tenant": "acme"}))
            .await
            .expect(201);
        mine.push(k["access_key"].as_str().unwrap().to_string());
    }
    denied(
        "admin key",
        &ta.post_json("/v1/keys", &json!({"role": "admin"})).await,
    );
    ta.post_json("/v1/keys", &json!({"role": "publisher", "tenant": "other"}))
        .await
        .expect_error(404, "TENANT_NOT_FOUND");

    let listed = ta.get("/v1/keys").await.expect(200);
    let keys = listed["keys"].as_array().unwrap();
    for k in keys {
        assert_eq!(k["tenant"], "acme", "{listed}");
        assert!(k.get("secret_key").is_none(), "secret listed: {k}");
    }
    for ak in &mine {
        assert!(
            listed.to_string().contains(ak.as_str()),
            "{ak} missing from {listed}"
        );
    }
    let text = listed.to_string();
    assert!(
        !text.contains(&foreign.access_key),
        "other tenant's key listed"
    );
    assert!(!text.contains(&s.access_key), "service admin key listed");
    assert!(
        !text.contains(&admin_in_acme.access_key),
        "admin key in its tenant listed: {listed}"
    );
    ta.delete(&format!("/v1/keys/{}", admin_in_acme.access_key))
        .await
        .expect_error(404, "KEY_NOT_FOUND");
    s.get("/v1/keys?tenant=nowhere")
        .await
        .expect_error(404, "TENANT_NOT_FOUND");
    let all = s.get("/v1/keys?tenant=acme").await.expect(200).to_string();
    assert!(all.contains(&admin_in_acme.access_key), "{all}");
    ta.get("/v1/keys?tenant=acme").await.expect(200);
    ta.get("/v1/keys?tenant=other")
        .await
        .expect_error(404, "TENANT_NOT_FOUND");
    // Its own tenant record is visible; others are not.
    assert_eq!(ta.get("/v1/tenants/acme").await.expect(200)["name"], "acme");
    ta.get("/v1/tenants/other")
        .await
        .expect_error(404, "TENANT_NOT_FOUND");

    denied("list tenants", &ta.get("/v1/tenants").await);
    denied(
        "create tenant",
        &ta.post_json("/v1/tenants", &json!({"name": "mine"})).await,
    );
    denied("delete tenant", &ta.delete("/v1/tenants/acme").await);
    denied("status", &ta.get("/v1/status").await);
    denied("cluster", &ta.get("/v1/cluster").await);
    denied("metrics", &ta.get("/metrics").await);
    s.get("/v1/tenants/mine")
        .await
        .expect_error(404, "TENANT_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_service_admin_may_act_on_another_tenant() {
    let Acme {
        s,
        tenant_admin: ta,
        publisher,
        ..
    } = acme().await;
    s.create_tenant("other").await;
    for (who, actor) in [("tenant-admin", &ta), ("publisher", &publisher)] {
        for path in ["/v1/topics", "/v1/whoami", "/v1/keys", "/v1/topics/orders"] {
            let r = actor
                .send(
                    actor
                        .request("get", path)
                        .header("x-strata-tenant", "other"),
                )
                .await;
            denied(&format!("{who} GET {path} as other"), &r);
            assert!(message(&r).contains("x-strata-tenant"), "{}", r.text());
        }
        let r = actor
            .send(
                actor
                    .request("post", "/v1/topics")
                    .header("x-strata-tenant", "other")
                    .json(&json!({"name": "intruder"})),
            )
            .await;
        denied(&format!("{who} create topic in other"), &r);
        // Naming its own tenant in the header is allowed.
        let r = actor
            .send(
                actor
                    .request("get", "/v1/topics")
                    .header("x-strata-tenant", "acme"),
            )
            .await;
        assert_eq!(r.expect(200)["topics"][0]["name"], "orders");
    }
    let other_topics = s
        .send(
            s.http
                .get(s.url("/v1/topics"))
                .header("x-strata-tenant", "other"),
        )
        .await
        .expect(200);
    assert_eq!(other_topics["topics"], json!([]));

    // The service admin creates a topic in acme; acme's keys see it.
    let created = s
        .send(
            s.http
                .post(s.url("/v1/topics"))
                .header("x-strata-tenant", "acme")
                .json(&json!({"name": "from-admin", "queues": 2})),
        )
        .await
        .expect(201);
    assert_eq!(created["name"], "from-admin");
    let described = ta.get("/v1/topics/from-admin").await.expect(200);
    assert_eq!(described["queues"], 2);
    let names: Vec<_> = ta.get("/v1/topics").await.expect(200)["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["from-admin", "orders"]);
    // Not in the admin's own tenant.
    s.get("/v1/topics/from-admin")
        .await
        .expect_error(404, "TOPIC_NOT_FOUND");
    // And the admin lists acme's keys when acting on acme.
    let keys = s
        .send(
            s.http
                .get(s.url("/v1/keys"))
                .header("x-strata-tenant", "acme"),
        )
        .await
        .expect(200);
    for k in keys["keys"].as_array().unwrap() {
        assert_eq!(k["tenant"], "acme", "{keys}");
    }
    assert!(keys.to_string().contains(&ta.access_key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cannot_act_on_a_missing_or_invalid_tenant() {
    let s = TestServer::start().await;
    let as_tenant =
        |tenant: &str, req: reqwest::RequestBuilder| req.header("x-strata-tenant", tenant);
    for (tenant, status, code) in [
        ("ghost", 404, "TENANT_NOT_FOUND"),
        ("", 400, "INVALID_NAME"),
        ("a/b", 400, "INVALID_NAME"),
    ] {
        let what = format!("x-strata-tenant {tenant:?}");
        let create = as_tenant(
            tenant,
            s.http
                .post(s.url("/v1/topics"))
                .json(&json!({"name": "orphan"})),
        );
        s.send(create).await.expect_error(status, code);
        let group = as_tenant(
            tenant,
            s.http
                .post(s.url("/v1/groups"))
                .json(&json!({"name": "orphan"})),
        );
        s.send(group).await.expect_error(status, code);
        let list = s
            .send(as_tenant(tenant, s.http.get(s.url("/v1/topics"))))
            .await;
        assert_eq!(list.status, status, "{what}: {}", list.text());
        list.expect_error(status, code);
    }
    // Once the tenant exists, the same request works.
    s.create_tenant("ghost").await;
    let create = as_tenant(
        "ghost",
        s.http
            .post(s.url("/v1/topics"))
            .json(&json!({"name": "orphan"})),
    );
    s.send(create).await.expect(201);
    // A tenant admin naming a missing tenant is refused as for any other
    // tenant: the header is no oracle for which tenants exist.
    let ta = s.create_key("ghost", "tenant-admin").await;
    for tenant in ["nowhere", "default"] {
        let r = ta
            .send(
                ta.request("get", "/v1/topics")
                    .header("x-strata-tenant", tenant),
            )
            .await;
        denied(tenant, &r);
    }
}
