//! Metering exactness: a scripted workload with known counts and sizes for
//! two tenants (redeliveries included) must show up in `GET /v1/usage`
//! exactly, across graceful restarts, in every granularity and in CSV;
//! plus the per-tenant Prometheus series and the stored-bytes quota.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use common::{Actor, TestServer};
use serde_json::{Value, json};
use strata_frontend::Config;

/// Uploads never run during the script, so no object-store request is
/// billed: the counts below are exact.
fn no_uploads(c: &mut Config) {
    c.compactor.upload_interval_ms = 3_600_000;
    c.compactor.upload_trigger_bytes = 1 << 30;
}

async fn restart(s: TestServer) -> TestServer {
    let config = s.config.clone();
    let dir = s.shutdown().await;
    TestServer::start_in(dir, config).await
}

/// Tenant `tenant`'s totals over the last day, as the service admin sees them.
async fn totals(s: &TestServer, tenant: &str, granularity: &str) -> Value {
    let r = s
        .send(
            s.http
                .get(s.url(&format!("/v1/usage?granularity={granularity}")))
                .header("x-strata-tenant", tenant),
        )
        .await
        .expect(200);
    let totals = r["totals"].as_array().expect("totals").clone();
    assert_eq!(totals.len(), 1, "{r}");
    totals[0].clone()
}

fn message(id: &str, body_len: usize, extra: Value) -> Value {
    let mut m = json!({ "id": id, "body": "x".repeat(body_len) });
    if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
        m.extend(extra.clone());
    }
    m
}

async fn read(actor: &Actor, topic: &str, queue: u32, query: &str) -> usize {
    let r = actor
        .get(&format!(
            "/v1/topics/{topic}/queues/{queue}/messages?{query}"
        ))
        .await
        .expect(200);
    r["messages"].as_array().expect("messages").len()
}

fn check(t: &Value, field: &str, expected: u64) {
    assert_eq!(t[field], json!(expected), "{field} in {t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_records_are_exact_across_restarts() {
    let s = TestServer::start_with(no_uploads).await;
    s.create_tenant("acme").await;
    s.create_tenant("bolt").await;
    let a = s.create_key("acme", "tenant-admin").await;
    let b = s.create_key("bolt", "tenant-admin").await;

    // Metered size = id + key + tag + property names/values + body.
    a.post_json("/v1/topics", &json!({"name": "orders", "queues": 2}))
        .await
        .expect(201);
    let first = [
        message("a-1", 10, json!({"queue": 0, "key": "k1"})), // 3+2+10 = 15
        message("a-2", 20, json!({"queue": 0, "tag": "t"})),  // 3+1+20 = 24
        message("a-3", 30, json!({"queue": 0, "properties": {"p": "vv"}})), // 3+3+30 = 36
    ];
    a.post_json("/v1/topics/orders/messages", &json!({ "messages": first }))
        .await
        .expect(200);
    let second = [
        message("a-4", 100, json!({"queue": 1})), // 103
        message("a-5", 200, json!({"queue": 1})), // 203
    ];
    a.post_json("/v1/topics/orders/messages", &json!({ "messages": second }))
        .await
        .expect(200);
    a.post_json("/v1/groups", &json!({"name": "g"}))
        .await
        .expect(201);
    assert_eq!(read(&a, "orders", 0, "offset=0&limit=2&group=g").await, 2); // 39 bytes
    // The group reads again from 0: a-1 and a-2 are redeliveries.
    assert_eq!(read(&a, "orders", 0, "offset=0&group=g").await, 3); // 75 bytes
    a.put_json("/v1/groups/g/offsets/orders/0", &json!({"offset": 3}))
        .await
        .expect(200);
    // Without a group nothing is a redelivery.
    assert_eq!(read(&a, "orders", 0, "offset=1").await, 2); // 60 bytes
    assert_eq!(read(&a, "orders", 1, "offset=0&group=g").await, 2); // 306 bytes

    b.post_json("/v1/topics", &json!({"name": "orders", "queues": 1}))
        .await
        .expect(201);
    b.post_json(
        "/v1/topics/orders/messages",
        &json!({ "messages": [message("b-1", 7, json!({}))] }),
    )
    .await
    .expect(200);
    assert_eq!(read(&b, "orders", 0, "offset=0").await, 1);
    // A read filtered by tag returns, and bills, only what matches.
    b.post_json(
        "/v1/topics/orders/messages",
        &json!({ "messages": [message("b-2", 7, json!({"tag": "x"}))] }), // 3+1+7 = 11
    )
    .await
    .expect(200);
    assert_eq!(read(&b, "orders", 0, "offset=0&tags=x").await, 1);
    assert_eq!(read(&b, "orders", 0, "offset=0&tags=y%20||%20z").await, 0);

    let s = restart(s).await;
    for granularity in ["minute", "hour", "day"] {
        let t = totals(&s, "acme", granularity).await;
        check(&t, "published_messages", 5);
        check(&t, "published_bytes", 15 + 24 + 36 + 103 + 203);
        check(&t, "delivered_messages", 9);
        check(&t, "delivered_bytes", 39 + 75 + 60 + 306);
        check(&t, "redeliveries", 2);
        check(&t, "requests_total", 9);
        assert_eq!(
            t["requests"],
            json!({"createTopic": 1, "publish": 2, "createGroup": 1, "read": 4, "commitOffset": 1}),
            "{granularity}: {t}"
        );
        check(&t, "object_puts", 0);
        check(&t, "object_gets", 0);
        assert!(t["hot_byte_seconds"].as_u64().unwrap() > 0, "{t}");
        let t = totals(&s, "bolt", granularity).await;
        check(&t, "published_messages", 2);
        check(&t, "published_bytes", 10 + 11);
        check(&t, "delivered_messages", 2);
        check(&t, "delivered_bytes", 10 + 11);
        check(&t, "redeliveries", 0);
        assert_eq!(
            t["requests"],
            json!({"createTopic": 1, "publish": 2, "read": 3})
        );
    }

    // After the restart the group's committed offset (3) is what it was
    // given before: reading from 0 again redelivers all three.
    let a = s.actor(&a.access_key, &a.secret_key, "acme", "tenant-admin");
    assert_eq!(read(&a, "orders", 0, "offset=0&group=g").await, 3); // 75 bytes
    a.post_json(
        "/v1/topics/orders/messages",
        &json!({ "messages": [message("a-6", 5, json!({"queue": 0}))] }),
    )
    .await
    .expect(200);
    assert_eq!(read(&a, "orders", 0, "offset=3&group=g").await, 1); // 8 bytes

    // The per-tenant series count since this process started.
    let metrics = s.get("/metrics").await.text();
    assert!(
        metrics.contains("strata_tenant_published_messages_total{tenant=\"acme\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("strata_tenant_redeliveries_total{tenant=\"acme\"} 3"));

    let s = restart(s).await;
    let t = totals(&s, "acme", "hour").await;
    check(&t, "published_messages", 6);
    check(&t, "published_bytes", 381 + 8);
    check(&t, "delivered_messages", 13);
    check(&t, "delivered_bytes", 480 + 75 + 8);
    check(&t, "redeliveries", 5);
    assert_eq!(
        t["requests"],
        json!({"createTopic": 1, "publish": 3, "createGroup": 1, "read": 6, "commitOffset": 1})
    );

    // CSV for every tenant: one line per bucket, columns by name.
    let csv = s
        .get("/v1/usage?all_tenants=true&granularity=day&format=csv")
        .await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.content_type
            .as_deref()
            .unwrap_or("")
            .starts_with("text/csv")
    );
    let text = csv.text();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let acme: Vec<_> = rows.iter().filter(|r| r[col("tenant")] == "acme").collect();
    assert_eq!(acme.len(), 1, "{text}");
    assert_eq!(acme[0][col("published_bytes")], "389");
    assert_eq!(acme[0][col("requests.read")], "6");
    assert!(rows.iter().any(|r| r[col("tenant")] == "bolt"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_refused_to_keys_that_may_not_see_it() {
    let s = TestServer::start().await;
    s.create_tenant("acme").await;
    let admin = s.create_key("acme", "tenant-admin").await;
    admin.get("/v1/usage").await.expect(200);
    // The range starts where its first bucket does.
    let hourly = admin
        .get("/v1/usage?granularity=hour&start=1000&end=7200000")
        .await
        .expect(200);
    assert_eq!(hourly["start"], "1970-01-01T00:00:00.000Z", "{hourly}");
    let minutes = admin
        .get("/v1/usage?granularity=minute&start=1970-01-01T00:10:30Z&end=1970-01-01T01:00:00Z")
        .await
        .expect(200);
    assert_eq!(minutes["start"], "1970-01-01T00:10:00.000Z", "{minutes}");
    admin
        .get("/v1/usage?all_tenants=true")
        .await
        .expect_error(403, "PERMISSION_DENIED");
    // Every tenant's usage or one's, not both at once.
    s.send(
        s.http
            .get(s.url("/v1/usage?all_tenants=true"))
            .header("x-strata-tenant", "acme"),
    )
    .await
    .expect_error(400, "INVALID_ARGUMENT");
    for role in ["publisher", "consumer"] {
        let k = s.create_key("acme", role).await;
        k.get("/v1/usage")
            .await
            .expect_error(403, "PERMISSION_DENIED");
    }
    for bad in [
        "granularity=week",
        "format=xml",
        "start=yesterday",
        "start=2000&end=1000",
        "granularity=hour&start=1000&end=1000",
        "granularity=minute&start=0&end=86400000000",
    ] {
        admin
            .get(&format!("/v1/usage?{bad}"))
            .await
            .expect_error(400, "INVALID_ARGUMENT");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_bytes_quota_refuses_publishes_once_the_sample_shows_it() {
    let s = TestServer::start_with(|c| c.metering.storage_sample_interval_ms = 50).await;
    s.put_json("/v1/plans/tiny", &json!({ "max_stored_bytes": 100 }))
        .await
        .expect(200);
    s.create_tenant("small").await;
    s.put_json("/v1/tenants/small/plan", &json!({"plan": "tiny"}))
        .await
        .expect(200);
    s.create_tenant("other").await;
    let small = s.create_key("small", "tenant-admin").await;
    let other = s.create_key("other", "tenant-admin").await;
    for actor in [&small, &other] {
        actor
            .post_json("/v1/topics", &json!({"name": "t", "queues": 1}))
            .await
            .expect(201);
    }
    let publish = |actor: &Actor| {
        let actor = actor.clone();
        async move {
            actor
                .post_json(
                    "/v1/topics/t/messages",
                    &json!({"messages": [{"body": "y".repeat(200)}]}),
                )
                .await
        }
    };
    // Until a sample sees the stored bytes the publish is accepted; after
    // that it is refused (polled, not timed).
    publish(&small).await.expect(200);
    let mut refused = None;
    for _ in 0..200 {
        let r = publish(&small).await;
        if r.status == 403 {
            refused = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let refused = refused.expect("the stored-bytes quota never applied");
    refused.expect_error(403, "QUOTA_EXCEEDED");
    assert!(
        refused.text().contains("stored bytes"),
        "{}",
        refused.text()
    );
    // Another tenant is unaffected.
    publish(&other).await.expect(200);
}

/// A tenant created under the name of a deleted one is not billed for what
/// the deleted one used: its usage starts at its creation, alone and in
/// the all-tenants bill, which bills the deleted one apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_tenant_is_not_billed_for_the_deleted_ones_usage() {
    let s = TestServer::start_with(no_uploads).await;
    let config = s.config.clone();
    let dir = s.shutdown().await;
    // A deleted tenant "gamma" published 100 messages an hour ago.
    {
        let store = strata_metadata::RedbStore::open(&dir.path().join("meta.redb")).unwrap();
        let catalog = strata_metadata::Catalog::new(std::sync::Arc::new(store));
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let counts = strata_common::usage::UsageCounts {
            published_messages: 100,
            ..Default::default()
        };
        let old = strata_common::usage::MinuteUsage {
            tenant: "gamma".into(),
            minute_ms: (now_ms - 3_600_000) / 60_000 * 60_000,
            counts,
        };
        catalog
            .put_usage_minutes("old-node", "old-process", "flush-1", &[old])
            .await
            .unwrap();
        catalog
            .create_tenant("gamma", "default", now_ms - 2 * 3_600_000)
            .await
            .unwrap();
        catalog
            .delete_tenant("gamma", now_ms - 1_800_000, None)
            .await
            .unwrap();
    }
    let s = TestServer::start_in(dir, config).await;
    s.create_tenant("gamma").await;
    let gamma = s.create_key("gamma", "tenant-admin").await;
    gamma
        .post_json("/v1/topics", &json!({"name": "t", "queues": 1}))
        .await
        .expect(201);
    gamma
        .post_json(
            "/v1/topics/t/messages",
            &json!({"messages": [{"body": "x"}]}),
        )
        .await
        .expect(200);
    let s = restart(s).await;
    let gamma = s.actor(
        &gamma.access_key,
        &gamma.secret_key,
        "gamma",
        "tenant-admin",
    );
    for granularity in ["minute", "hour", "day"] {
        let own = gamma
            .get(&format!("/v1/usage?granularity={granularity}"))
            .await;
        let own = own.expect(200);
        check(&own["totals"][0], "published_messages", 1);
        check(
            &totals(&s, "gamma", granularity).await,
            "published_messages",
            1,
        );
    }
    let all = s
        .get("/v1/usage?all_tenants=true&granularity=day")
        .await
        .expect(200);
    let gammas: Vec<&Value> = all["totals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["tenant"] == "gamma")
        .collect();
    assert_eq!(gammas.len(), 2, "{all}");
    // The deleted one is billed too, and says so; the new one is apart.
    let (deleted, live): (Vec<&Value>, Vec<&Value>) = gammas
        .into_iter()
        .partition(|t| t.get("tenant_deleted_ms").is_some());
    check(deleted[0], "published_messages", 100);
    check(live[0], "published_messages", 1);
}

/// A tenant deleted and made again at once (most likely within one
/// minute): the bill of all tenants counts each message once, whichever
/// life of the name a shared minute's record is billed to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_and_making_a_tenant_again_at_once_bills_its_usage_once() {
    let s = TestServer::start().await;
    let publish = |actor: Actor, n: usize| async move {
        actor
            .post_json("/v1/topics", &json!({"name": "t", "queues": 1}))
            .await
            .expect(201);
        let batch: Vec<Value> = (0..n).map(|i| json!({"body": format!("m{i}")})).collect();
        actor
            .post_json("/v1/topics/t/messages", &json!({ "messages": batch }))
            .await
            .expect(200);
        actor
    };
    s.create_tenant("delta").await;
    let first = publish(s.create_key("delta", "tenant-admin").await, 3).await;
    first.delete("/v1/topics/t").await.expect(200);
    s.delete("/v1/tenants/delta").await.expect(200);
    s.create_tenant("delta").await;
    publish(s.create_key("delta", "tenant-admin").await, 1).await;
    let s = restart(s).await;
    for granularity in ["minute", "hour", "day"] {
        let all = s
            .get(&format!(
                "/v1/usage?all_tenants=true&granularity={granularity}"
            ))
            .await
            .expect(200);
        let billed: u64 = all["usage"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|row| row["tenant"] == "delta")
            .map(|row| row["published_messages"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(billed, 4, "{granularity}: {all}");
    }
}
