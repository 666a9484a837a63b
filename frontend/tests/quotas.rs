//! Per-tenant quotas: plans, rate limits with retry hints, count limits,
//! and a tenant at its limit not affecting another tenant.

mod common;

use common::TestServer;
use serde_json::json;

async fn tenant_on_plan(s: &TestServer, tenant: &str, plan: &str) -> common::Actor {
    s.create_tenant(tenant).await;
    s.put_json(
        &format!("/v1/tenants/{tenant}/plan"),
        &json!({ "plan": plan }),
    )
    .await
    .expect(200);
    s.create_key(tenant, "tenant-admin").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_its_publish_rate_a_tenant_gets_429_while_another_keeps_going() {
    let s = TestServer::start().await;
    // One publish per second: the second publish in a burst must wait.
    s.put_json(
        "/v1/plans/trickle",
        &json!({ "publish_messages_per_sec": 1 }),
    )
    .await
    .expect(200);
    let a = tenant_on_plan(&s, "noisy", "trickle").await;
    let b = tenant_on_plan(&s, "quiet", "default").await;
    for actor in [&a, &b] {
        actor
            .post_json("/v1/topics", &json!({ "name": "t", "queues": 1 }))
            .await
            .expect(201);
    }
    let publish = json!({ "messages": [{ "body": "x" }] });
    let mut limited = None;
    for _ in 0..10 {
        let r = a.post_json("/v1/topics/t/messages", &publish).await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        // The other tenant is not slowed or refused meanwhile.
        b.post_json("/v1/topics/t/messages", &publish)
            .await
            .expect(200);
    }
    let r = limited.expect("the noisy tenant hit its publish rate");
    let body = r.json();
    assert_eq!(body["error"]["code"], "TOO_MANY_REQUESTS");
    assert!(body["error"]["retry_after_ms"].as_u64().unwrap() > 0);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("publish messages")
    );
    for _ in 0..5 {
        b.post_json("/v1/topics/t/messages", &publish)
            .await
            .expect(200);
    }
    // Nothing of the refused publish was stored.
    let end = a.get("/v1/topics/t/queues/0").await.expect(200)["end_offset"]
        .as_u64()
        .unwrap();
    assert!(end >= 1);
    let retry = a.post_json("/v1/topics/t/messages", &publish).await;
    if retry.status == 429 {
        let again = a.get("/v1/topics/t/queues/0").await.expect(200)["end_offset"]
            .as_u64()
            .unwrap();
        assert_eq!(again, end, "a refused publish stores nothing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_after_header_comes_with_429() {
    let s = TestServer::start().await;
    s.put_json("/v1/plans/one-rps", &json!({ "requests_per_sec": 1 }))
        .await
        .expect(200);
    let a = tenant_on_plan(&s, "slow", "one-rps").await;
    let mut saw = false;
    for _ in 0..5 {
        let r = a.send(a.request("GET", "/v1/topics")).await;
        if r.status == 429 {
            saw = true;
            break;
        }
    }
    assert!(saw, "a burst over 1 request/s is refused");
    let raw = a.request("GET", "/v1/topics").send().await.unwrap();
    if raw.status().as_u16() == 429 {
        let secs: u64 = raw.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(secs >= 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_quotas_refuse_topics_queues_and_groups_beyond_the_plan() {
    let s = TestServer::start().await;
    s.put_json(
        "/v1/plans/small",
        &json!({ "max_topics": 2, "max_queues": 5, "max_groups": 1 }),
    )
    .await
    .expect(200);
    let a = tenant_on_plan(&s, "small-co", "small").await;
    a.post_json("/v1/topics", &json!({ "name": "one", "queues": 4 }))
        .await
        .expect(201);
    a.post_json("/v1/topics", &json!({ "name": "two", "queues": 2 }))
        .await
        .expect_error(403, "QUOTA_EXCEEDED");
    a.post_json("/v1/topics", &json!({ "name": "two", "queues": 1 }))
        .await
        .expect(201);
    a.post_json("/v1/topics", &json!({ "name": "three", "queues": 1 }))
        .await
        .expect_error(403, "QUOTA_EXCEEDED");
    a.post_json("/v1/groups", &json!({ "name": "g1" }))
        .await
        .expect(201);
    a.post_json("/v1/groups", &json!({ "name": "g1" }))
        .await
        .expect(201);
    a.post_json("/v1/groups", &json!({ "name": "g2" }))
        .await
        .expect_error(403, "QUOTA_EXCEEDED");
    // The service admin is not limited.
    s.post_json("/v1/topics", &json!({ "name": "many", "queues": 50 }))
        .await
        .expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_are_listed_validated_and_assignable_by_admins_only() {
    let s = TestServer::start().await;
    let plans = s.get("/v1/plans").await.expect(200);
    let names: Vec<&str> = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"default") && names.contains(&"unlimited"),
        "{names:?}"
    );
    s.post_json("/v1/tenants", &json!({ "name": "x", "plan": "nope" }))
        .await
        .expect_error(400, "INVALID_ARGUMENT");
    s.put_json("/v1/plans/bad", &json!({ "requests_per_sec": -1 }))
        .await
        .expect_error(400, "INVALID_JSON");
    s.put_json("/v1/plans/bad", &json!({ "unknown_field": 1 }))
        .await
        .expect_error(400, "INVALID_JSON");
    let t = tenant_on_plan(&s, "acme", "unlimited").await;
    t.put_json("/v1/plans/mine", &json!({ "requests_per_sec": 0 }))
        .await
        .expect_error(403, "PERMISSION_DENIED");
    t.put_json("/v1/tenants/acme/plan", &json!({ "plan": "unlimited" }))
        .await
        .expect_error(403, "PERMISSION_DENIED");
    s.put_json("/v1/tenants/acme/plan", &json!({ "plan": "missing" }))
        .await
        .expect_error(400, "INVALID_ARGUMENT");
}
