//! Per-tenant quotas: plans, rate limits with retry hints, count limits,
//! and a tenant at its limit not affecting another tenant.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

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

/// A server whose quotas wait up to `max_delay_ms`, and a tenant allowed
/// 20 published messages/s with a one-queue topic `t`.
async fn twenty_per_second(max_delay_ms: u64) -> (TestServer, common::Actor) {
    let s = TestServer::start_with(|c| c.quotas.max_delay_ms = max_delay_ms).await;
    s.put_json(
        "/v1/plans/twenty",
        &json!({ "publish_messages_per_sec": 20 }),
    )
    .await
    .expect(200);
    let a = tenant_on_plan(&s, "bursty", "twenty").await;
    a.post_json("/v1/topics", &json!({ "name": "t", "queues": 1 }))
        .await
        .expect(201);
    (s, a)
}

/// Publishes `n` one-message batches at once as `actor`; returns how many
/// were accepted and the refusals.
async fn concurrent_publishes(actor: &common::Actor, n: usize) -> (usize, Vec<common::Resp>) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let actor = actor.clone();
        tasks.spawn(async move {
            actor
                .post_json(
                    "/v1/topics/t/messages",
                    &json!({ "messages": [{ "body": "x" }] }),
                )
                .await
        });
    }
    let (mut accepted, mut refused) = (0, Vec::new());
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap();
        match r.status {
            200 => accepted += 1,
            _ => refused.push(r),
        }
    }
    (accepted, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_rate_is_delayed_up_to_the_maximum_then_refused() {
    // 20 messages/s is one token per 50 ms; requests may wait up to 500 ms.
    let (s, a) = twenty_per_second(500).await;
    // The first second's worth passes at once and empties the bucket.
    let (accepted, refused) = concurrent_publishes(&a, 20).await;
    assert_eq!((accepted, refused.len()), (20, 0));
    // Of 40 more, those whose tokens accrue within 500 ms (10, or a few
    // more as time passes while they arrive) are delayed and accepted; the rest are refused
    // after the 500 ms hold, each with a hint for what is still missing.
    let started = std::time::Instant::now();
    let (accepted, refused) = concurrent_publishes(&a, 40).await;
    assert!((10..=25).contains(&accepted), "{accepted} accepted");
    assert_eq!(accepted + refused.len(), 40);
    assert!(started.elapsed() >= std::time::Duration::from_millis(500));
    for r in &refused {
        assert_eq!(r.status, 429, "{}", r.text());
        let body = r.json();
        assert_eq!(body["error"]["code"], "TOO_MANY_REQUESTS");
        assert!(body["error"]["retry_after_ms"].as_u64().unwrap() >= 1);
    }
    // Exactly the accepted messages were stored.
    let end = a.get("/v1/topics/t/queues/0").await.expect(200)["end_offset"]
        .as_u64()
        .unwrap();
    assert_eq!(end, 20 + accepted as u64);
    // Operators see both outcomes in the metrics. (A token that accrued
    // before the burst lets one publish through without a delay.)
    let metrics = s.get("/metrics").await.text();
    let value = |name: &str| -> usize {
        let prefix = format!("{name}{{rate=\"publish_messages\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
    };
    let delayed = value("strata_quota_delayed_requests_total");
    assert!(
        (accepted - 2..=accepted).contains(&delayed),
        "{delayed} delayed of {accepted}"
    );
    assert_eq!(value("strata_quota_refused_requests_total"), refused.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_maximum_delay_a_burst_over_the_rate_is_refused_at_once() {
    let (_s, a) = twenty_per_second(0).await;
    let (accepted, refused) = concurrent_publishes(&a, 30).await;
    // A token accrues every 50 ms, so a slow machine may admit a few more.
    assert!((20..=26).contains(&accepted), "{accepted} accepted");
    assert!(refused.iter().all(|r| r.status == 429));
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
        .expect(200);
    a.post_json("/v1/groups", &json!({ "name": "g2" }))
        .await
        .expect_error(403, "QUOTA_EXCEEDED");
    // Committing an offset makes a group too: within the quota as well.
    a.put_json("/v1/groups/g2/offsets/one/0", &json!({ "offset": 0 }))
        .await
        .expect_error(403, "QUOTA_EXCEEDED");
    a.put_json("/v1/groups/g1/offsets/one/0", &json!({ "offset": 0 }))
        .await
        .expect(200);
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
    // A plan that does not exist is named as such, and nothing is made.
    s.post_json("/v1/tenants", &json!({ "name": "x", "plan": "nope" }))
        .await
        .expect_error(404, "PLAN_NOT_FOUND");
    s.get("/v1/tenants/x")
        .await
        .expect_error(404, "TENANT_NOT_FOUND");
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
        .expect_error(404, "PLAN_NOT_FOUND");
    // A bad field changes nothing, and no plan is made.
    s.get("/v1/plans/bad")
        .await
        .expect_error(404, "PLAN_NOT_FOUND");
    s.put_json("/v1/plans/bad", &json!([1, 2]))
        .await
        .expect_error(400, "INVALID_JSON");
}

/// A PUT changes the fields it gives and keeps the others: setting
/// `max_topics` on `unlimited` leaves its rates unlimited (it used to fill
/// them in from the default plan), and a new plan starts from `default`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_put_changes_only_the_fields_it_gives() {
    let s = TestServer::start().await;
    let unlimited = s
        .put_json("/v1/plans/unlimited", &json!({ "max_topics": 5 }))
        .await
        .expect(200);
    let read = s.get("/v1/plans/unlimited").await.expect(200);
    for plan in [&unlimited, &read] {
        assert_eq!(plan["quotas"]["max_topics"], 5, "{plan}");
        assert_eq!(plan["quotas"]["requests_per_sec"], 0, "{plan}");
        assert_eq!(plan["quotas"]["publish_messages_per_sec"], 0, "{plan}");
    }
    let default = s.get("/v1/plans/default").await.expect(200);
    let new = s
        .put_json("/v1/plans/fresh", &json!({ "requests_per_sec": 7 }))
        .await
        .expect(200);
    assert_eq!(new["quotas"]["requests_per_sec"], 7);
    assert_eq!(new["quotas"]["max_topics"], default["quotas"]["max_topics"]);
    let again = s
        .put_json("/v1/plans/fresh", &json!({ "max_groups": 3 }))
        .await
        .expect(200);
    assert_eq!(
        (
            &again["quotas"]["requests_per_sec"],
            &again["quotas"]["max_groups"]
        ),
        (&json!(7), &json!(3))
    );
    // A bad field changes nothing.
    s.put_json("/v1/plans/fresh", &json!({ "max_groups": 1, "nope": 1 }))
        .await
        .expect_error(400, "INVALID_JSON");
    let kept = s.get("/v1/plans/fresh").await.expect(200);
    assert_eq!(kept["quotas"], again["quotas"]);
}

/// A request that delivers messages (a read, a receive) returns at most
/// what the tenant's consume buckets hold, whatever it asks for, so asking
/// for much leaves no long debt: the refusal that follows asks for a wait
/// under a second, not the seven seconds forty messages would have cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_take_what_the_consume_buckets_hold() {
    let s = TestServer::start_with(|c| c.quotas.max_delay_ms = 0).await;
    let five = json!({ "consume_messages_per_sec": 5 });
    s.put_json("/v1/plans/five", &five).await.expect(200);
    let five_k = json!({ "consume_bytes_per_sec": 5000 });
    s.put_json("/v1/plans/five-k", &five_k).await.expect(200);
    for plan in ["five", "five-k"] {
        for op in ["read", "receive"] {
            // Published on an unlimited plan, then the plan changes.
            let tenant = format!("{plan}-{op}");
            let a = tenant_on_plan(&s, &tenant, "unlimited").await;
            a.post_json("/v1/topics", &json!({ "name": "t", "queues": 2 }))
                .await
                .expect(201);
            let group = json!({ "name": "g", "start": "earliest" });
            a.post_json("/v1/groups", &group).await.expect(201);
            let messages: Vec<_> = (0..40)
                .map(|i| json!({ "body": format!("{i:0>1000}"), "queue": i % 2 }))
                .collect();
            a.post_json("/v1/topics/t/messages", &json!({ "messages": messages }))
                .await
                .expect(200);
            s.put_json(
                &format!("/v1/tenants/{tenant}/plan"),
                &json!({ "plan": plan }),
            )
            .await
            .expect(200);
            let mut offset = 0;
            let mut deliver = async || match op {
                "read" => {
                    let path = format!("/v1/topics/t/queues/0/messages?offset={offset}");
                    let r = a.get(&format!("{path}&limit=100")).await;
                    if r.status == 200 {
                        offset = r.json()["next_offset"].as_u64().unwrap();
                    }
                    r
                }
                _ => {
                    let ask = json!({ "topic": "t", "max_messages": 32 });
                    a.post_json("/v1/groups/g/receive", &ask).await
                }
            };
            // A full bucket: five messages, or 5,000 bytes of them.
            let first = deliver().await;
            assert_eq!(first.status, 200, "{tenant}: {}", first.text());
            let n = first.json()["messages"].as_array().expect("messages").len();
            assert_eq!(n, 5, "{tenant}");
            let mut refusal = None;
            for _ in 0..50 {
                let r = deliver().await;
                if r.status == 429 {
                    refusal = Some(r);
                    break;
                }
                let n = r.json()["messages"].as_array().expect("messages").len();
                assert!(n >= 1, "{tenant}: {}", r.text());
            }
            let error = refusal.expect("refused once the bucket is empty").json();
            assert_eq!(error["error"]["code"], "TOO_MANY_REQUESTS", "{tenant}");
            let wait = error["error"]["retry_after_ms"].as_u64().unwrap();
            assert!(wait <= 1000, "{tenant}: {error}");
        }
    }
}
