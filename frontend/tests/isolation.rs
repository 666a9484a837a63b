//! Tenant isolation: for every HTTP endpoint, a request with tenant B's
//! credentials against tenant A's resources is refused and reveals nothing,
//! not even whether the resource exists. The walk iterates
//! `strata_frontend::http::ROUTES`, so a new route without an isolation
//! case fails here until one is written.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use common::{Actor, Resp, TestServer, fill_path};
use serde_json::{Value, json};
use strata_frontend::http::ROUTES;

/// Tenant A with its data, tenant B with keys of every role.
struct World {
    s: TestServer,
    a_tenant: String,
    b_tenant: String,
    a_admin: Actor,
    a_publisher: Actor,
    b_admin: Actor,
    b_publisher: Actor,
    b_consumer: Actor,
}

const A_TOPIC: &str = "orders";
const A_GROUP: &str = "billing";
/// Bodies of A's messages: they must never appear in an answer to B.
const A_BODIES: [&str; 3] = ["a-secret-order-1", "a-secret-order-2", "a-secret-order-3"];

fn random_suffix() -> String {
    format!("{:016x}", fastrand::u64(..))
}

async fn world() -> World {
    let s = TestServer::start().await;
    let suffix = random_suffix();
    let a_tenant = format!("alpha-{suffix}");
    let b_tenant = format!("bravo-{suffix}");
    s.create_tenant(&a_tenant).await;
    s.create_tenant(&b_tenant).await;
    let a_admin = s.create_key(&a_tenant, "tenant-admin").await;
    let b_admin = s.create_key(&b_tenant, "tenant-admin").await;

    a_admin
        .post_json("/v1/topics", &json!({"name": A_TOPIC, "queues": 2}))
        .await
        .expect(201);
    let messages: Vec<Value> = A_BODIES
        .iter()
        .enumerate()
        .map(|(i, b)| json!({"body": b, "queue": u32::from(i == 2), "key": "a-key"}))
        .collect();
    a_admin
        .post_json(
            &format!("/v1/topics/{A_TOPIC}/messages"),
            &json!({ "messages": messages }),
        )
        .await
        .expect(200);
    a_admin
        .post_json("/v1/groups", &json!({"name": A_GROUP}))
        .await
        .expect(201);
    a_admin
        .put_json(
            &format!("/v1/groups/{A_GROUP}/offsets/{A_TOPIC}/0"),
            &json!({"offset": 1}),
        )
        .await
        .expect(200);
    // A's publisher key is created by A's own tenant admin.
    let k = a_admin
        .post_json("/v1/keys", &json!({"role": "publisher"}))
        .await
        .expect(201);
    let a_publisher = s.actor(
        k["access_key"].as_str().unwrap(),
        k["secret_key"].as_str().unwrap(),
        &a_tenant,
        "publisher",
    );
    let b_publisher = s.create_key(&b_tenant, "publisher").await;
    let b_consumer = s.create_key(&b_tenant, "consumer").await;
    World {
        s,
        a_tenant,
        b_tenant,
        a_admin,
        a_publisher,
        b_admin,
        b_publisher,
        b_consumer,
    }
}

impl World {
    /// Strings that identify A's resources or data.
    fn a_secrets(&self) -> Vec<String> {
        let mut v = vec![
            self.a_tenant.clone(),
            self.a_admin.access_key.clone(),
            self.a_admin.secret_key.clone(),
            self.a_publisher.access_key.clone(),
            self.a_publisher.secret_key.clone(),
        ];
        v.extend(A_BODIES.iter().map(|b| b.to_string()));
        v
    }

    /// What A itself observes: topics with their queue offsets, groups with
    /// their committed offsets, and its keys. Background tiering may move
    /// data between tiers, so only fields a tenant's request can change are
    /// kept.
    async fn a_state(&self) -> Value {
        let a = &self.a_admin;
        let mut topics = Vec::new();
        for t in a.get("/v1/topics").await.expect(200)["topics"]
            .as_array()
            .unwrap()
        {
            let name = t["name"].as_str().unwrap();
            let d = a.get(&format!("/v1/topics/{name}")).await.expect(200);
            let queues: Vec<Value> = d["queue_stats"]
                .as_array()
                .unwrap()
                .iter()
                .map(|q| {
                    json!([
                        q["queue"],
                        q["first_offset"],
                        q["end_offset"],
                        q["messages"]
                    ])
                })
                .collect();
            topics.push(json!({"name": name, "id": d["id"], "queues": queues}));
        }
        let mut groups = Vec::new();
        for g in a.get("/v1/groups").await.expect(200)["groups"]
            .as_array()
            .unwrap()
        {
            let name = g["name"].as_str().unwrap();
            groups.push(a.get(&format!("/v1/groups/{name}")).await.expect(200));
        }
        let keys = a.get("/v1/keys").await.expect(200);
        let messages = a
            .get(&format!("/v1/topics/{A_TOPIC}/queues/0/messages?offset=0"))
            .await
            .expect(200);
        json!({"topics": topics, "groups": groups, "keys": keys, "queue0": messages["messages"]})
    }
}

/// How a route is checked.
enum Case {
    /// Anyone may call it; B gets what an anonymous caller gets.
    Public,
    /// Lists or describes the caller itself: 2xx (or a refusal for roles
    /// without the permission) and nothing of A's in it.
    Own,
    /// Names a resource: B's answer for A's resource must be exactly its
    /// answer for a name that exists nowhere.
    Resource,
    /// Creates a resource named in the body: names are per tenant, so B
    /// creates its own; checked separately, after the walk.
    CreatesOwn,
}

/// The isolation case of every route. A route missing here fails the test.
fn case(method: &str, path: &str) -> Case {
    match (method, path) {
        ("get", "/healthz") | ("get", "/readyz") | ("get", "/v1/openapi.json") => Case::Public,
        ("get", "/v1/topics") | ("get", "/v1/groups") | ("get", "/v1/keys") => Case::Own,
        ("get", "/v1/whoami") => Case::Own,
        // A tenant's own usage; all_tenants is refused (tests/metering.rs).
        ("get", "/v1/usage") => Case::Own,
        // Service-wide: refused to every tenant key, whatever it names.
        ("get", "/metrics") | ("get", "/v1/status") | ("get", "/v1/tenants") => Case::Resource,
        ("get", "/v1/cluster") => Case::Resource,
        ("post", "/v1/cluster/nodes/{node}/forget") => Case::Resource,
        ("post", "/v1/tenants") | ("get", "/v1/tenants/{tenant}") => Case::Resource,
        ("delete", "/v1/tenants/{tenant}") => Case::Resource,
        ("post", "/v1/keys") => Case::Resource,
        ("delete", "/v1/keys/{access_key}") | ("post", "/v1/keys/{access_key}/rotate") => {
            Case::Resource
        }
        ("get", "/v1/topics/{topic}") | ("delete", "/v1/topics/{topic}") => Case::Resource,
        ("post", "/v1/topics/{topic}/messages") => Case::Resource,
        ("get", "/v1/topics/{topic}/messages") => Case::Resource,
        ("get", "/v1/topics/{topic}/transactions")
        | ("post", "/v1/topics/{topic}/transactions")
        | ("post", "/v1/topics/{topic}/transactions/{transaction_id}/commit")
        | ("post", "/v1/topics/{topic}/transactions/{transaction_id}/rollback") => Case::Resource,
        ("get", "/v1/topics/{topic}/queues/{queue}") => Case::Resource,
        ("get", "/v1/topics/{topic}/queues/{queue}/messages") => Case::Resource,
        ("get", "/v1/topics/{topic}/queues/{queue}/offset") => Case::Resource,
        ("get", "/v1/groups/{group}") | ("delete", "/v1/groups/{group}") => Case::Resource,
        ("get", "/v1/groups/{group}/offsets/{topic}/{queue}") => Case::Resource,
        ("put", "/v1/groups/{group}/offsets/{topic}/{queue}") => Case::Resource,
        ("put", "/v1/groups/{group}/offsets/{topic}") => Case::Resource,
        ("post", "/v1/groups/{group}/receive") | ("post", "/v1/groups/{group}/ack") => {
            Case::Resource
        }
        ("post", "/v1/groups/{group}/invisible") => Case::Resource,
        ("put", "/v1/tenants/{tenant}/plan") => Case::Resource,
        // Plans are service-wide: refused to every tenant key.
        ("get", "/v1/plans") | ("get", "/v1/plans/{plan}") | ("put", "/v1/plans/{plan}") => {
            Case::Resource
        }
        ("post", "/v1/topics") | ("post", "/v1/groups") => Case::CreatesOwn,
        _ => panic!(
            "route {method} {path} has no tenant isolation case: add one to tests/isolation.rs"
        ),
    }
}

/// The names a request is about: A's, or ones that exist nowhere.
#[derive(Clone)]
struct Names {
    topic: String,
    group: String,
    tenant: String,
    access_key: String,
}

impl Names {
    fn pairs(&self) -> Vec<(&str, &str)> {
        vec![
            ("topic", self.topic.as_str()),
            ("queue", "0"),
            ("group", self.group.as_str()),
            ("tenant", self.tenant.as_str()),
            ("access_key", self.access_key.as_str()),
            ("transaction_id", "0123456789abcdef0123456789abcdef"),
            ("plan", "default"),
            ("node", "node-x"),
        ]
    }
}

/// The request for `method path` about `names`: the path filled in, plus
/// the query and body the route needs to get past argument checks.
fn request(actor: &Actor, method: &str, template: &str, names: &Names) -> reqwest::RequestBuilder {
    let mut path = fill_path(template, &names.pairs());
    let body = match (method, template) {
        ("post", "/v1/topics/{topic}/messages") => {
            Some(json!({"messages": [{"body": "from-b", "queue": 0}]}))
        }
        ("post", "/v1/topics/{topic}/transactions") => Some(json!({"body": "from-b"})),
        ("put", "/v1/groups/{group}/offsets/{topic}/{queue}") => Some(json!({"offset": 1})),
        ("put", "/v1/groups/{group}/offsets/{topic}") => Some(json!({"to": "earliest"})),
        ("post", "/v1/tenants") => Some(json!({"name": names.tenant})),
        ("post", "/v1/keys") => Some(json!({"role": "publisher", "tenant": names.tenant})),
        ("post", "/v1/topics") => Some(json!({"name": names.topic, "queues": 1})),
        ("post", "/v1/groups") => Some(json!({"name": names.group})),
        ("put", "/v1/tenants/{tenant}/plan") => Some(json!({"plan": "unlimited"})),
        ("post", "/v1/groups/{group}/receive") => Some(json!({"topic": names.topic, "queue": 0})),
        ("post", "/v1/groups/{group}/ack") => {
            Some(json!({"topic": names.topic, "receipt_handles": ["1-0-0-1"]}))
        }
        ("post", "/v1/groups/{group}/invisible") => {
            Some(json!({"topic": names.topic, "receipt_handle": "1-0-0-1", "invisible_ms": 5000}))
        }
        ("post", "/v1/cluster/nodes/{node}/forget") => {
            Some(json!({"lose_unuploaded_messages": true}))
        }
        ("post", _) | ("put", _) => Some(json!({})),
        _ => None,
    };
    match template {
        "/v1/topics/{topic}/queues/{queue}/offset" => path.push_str("?timestamp_ms=0"),
        "/v1/topics/{topic}/queues/{queue}/messages" => path.push_str("?wait_ms=0"),
        "/v1/topics/{topic}/messages" if method == "get" => path.push_str("?key=k"),
        _ => {}
    }
    let req = actor.request(method, &path);
    match body {
        Some(b) => req.json(&b),
        None => req,
    }
}

fn error_parts(r: &Resp) -> (String, String) {
    let v = r.json();
    (
        v["error"]["code"].as_str().unwrap_or_default().to_string(),
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// `text` with every name of `from` replaced by the matching one of `to`.
fn rename(text: &str, from: &Names, to: &Names) -> String {
    let mut out = text.to_string();
    for (f, t) in from.pairs().into_iter().zip(to.pairs()) {
        out = out.replace(f.1, t.1);
    }
    out
}

/// Walks every route as `actor` (a key of tenant B) against A's names and
/// checks each answer; returns the routes left for [`Case::CreatesOwn`].
async fn walk(w: &World, actor: &Actor) -> Vec<(&'static str, &'static str)> {
    let a_names = Names {
        topic: A_TOPIC.into(),
        group: A_GROUP.into(),
        tenant: w.a_tenant.clone(),
        access_key: w.a_publisher.access_key.clone(),
    };
    let suffix = random_suffix();
    let nowhere = Names {
        topic: format!("nowhere-topic-{suffix}"),
        group: format!("nowhere-group-{suffix}"),
        tenant: format!("nowhere-tenant-{suffix}"),
        access_key: format!("STRANOWHERE{}", suffix.to_ascii_uppercase()),
    };
    let secrets = w.a_secrets();
    let mut deferred = Vec::new();
    for &(method, template) in ROUTES {
        let what = format!("{} {method} {template}", actor.role);
        let case = case(method, template);
        if matches!(case, Case::CreatesOwn) {
            deferred.push((method, template));
            continue;
        }
        let got = actor.send(request(actor, method, template, &a_names)).await;
        // Whatever the route, nothing of A's comes back, except names the
        // request itself carried.
        let echoed = |s: &String| {
            let path = fill_path(template, &a_names.pairs());
            path.contains(s.as_str())
                || (method == "post"
                    && matches!(template, "/v1/tenants" | "/v1/keys")
                    && *s == w.a_tenant)
        };
        for secret in secrets.iter().filter(|s| !echoed(s)) {
            assert!(
                !got.text().contains(secret.as_str()),
                "{what}: the answer reveals {secret:?}: {}",
                got.text()
            );
        }
        match case {
            Case::Public => {
                let anonymous = w.s.send(w.s.anonymous_http().get(w.s.url(template))).await;
                assert_eq!(got.status, 200, "{what}: {}", got.text());
                assert_eq!(got.body, anonymous.body, "{what}: differs from anonymous");
            }
            Case::Own => {
                if got.status == 403 {
                    got.expect_error(403, "PERMISSION_DENIED");
                    assert_ne!(actor.role, "tenant-admin", "{what}: {}", got.text());
                } else {
                    let v = got.expect(200);
                    for forbidden in [A_TOPIC, A_GROUP] {
                        assert!(
                            !v.to_string().contains(forbidden),
                            "{what}: lists A's {forbidden:?}: {v}"
                        );
                    }
                    if let Some(keys) = v.get("keys") {
                        for k in keys.as_array().unwrap() {
                            assert_eq!(k["tenant"], json!(w.b_tenant), "{what}: {v}");
                        }
                    }
                    if template == "/v1/whoami" {
                        assert_eq!(v["tenant"], json!(w.b_tenant), "{what}: {v}");
                        assert_eq!(v["acting_tenant"], json!(w.b_tenant), "{what}: {v}");
                    }
                }
            }
            Case::Resource => {
                assert!(
                    !(200..300).contains(&got.status),
                    "{what}: B's key succeeded on A's resource: {} {}",
                    got.status,
                    got.text()
                );
                let baseline = actor.send(request(actor, method, template, &nowhere)).await;
                assert_eq!(
                    got.status,
                    baseline.status,
                    "{what}: A's resource answers differently from a missing one: {} vs {}",
                    got.text(),
                    baseline.text()
                );
                // Both are documented error bodies with the same code.
                let (code, message) = error_parts(&got);
                got.expect_error(got.status, &code);
                let (base_code, base_message) = error_parts(&baseline);
                assert_eq!(
                    code,
                    base_code,
                    "{what}: {} vs {}",
                    got.text(),
                    baseline.text()
                );
                assert!(
                    matches!(
                        code.as_str(),
                        "TOPIC_NOT_FOUND"
                            | "GROUP_NOT_FOUND"
                            | "KEY_NOT_FOUND"
                            | "TENANT_NOT_FOUND"
                            | "PERMISSION_DENIED"
                    ),
                    "{what}: unexpected code {code}: {}",
                    got.text()
                );
                assert_eq!(
                    rename(&message, &a_names, &nowhere),
                    base_message,
                    "{what}: messages differ beyond the name asked for"
                );
                let names_a_tenant = fill_path(template, &a_names.pairs()).contains(&w.a_tenant)
                    || (method == "post" && matches!(template, "/v1/tenants" | "/v1/keys"));
                if !names_a_tenant {
                    assert!(
                        !message.contains(&w.a_tenant),
                        "{what}: message names tenant A: {message}"
                    );
                }
            }
            Case::CreatesOwn => unreachable!(),
        }
    }
    deferred
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_b_learns_nothing_about_tenant_a_on_any_route() {
    let w = world().await;
    let before = w.a_state().await;
    assert_eq!(before["topics"][0]["queues"][0][2], 2, "{before}");
    assert_eq!(before["groups"][0]["offsets"][0]["offset"], 1, "{before}");

    for actor in [&w.b_publisher, &w.b_consumer, &w.b_admin] {
        let deferred = walk(&w, actor).await;
        assert_eq!(deferred, [("post", "/v1/topics"), ("post", "/v1/groups")]);
    }
    assert_eq!(w.a_state().await, before, "B's requests changed A's state");

    // Names are per tenant: B creates its own "orders" and "billing".
    let created = w
        .b_admin
        .post_json("/v1/topics", &json!({"name": A_TOPIC, "queues": 1}))
        .await
        .expect(201);
    assert_eq!(created["queues"], 1, "B's topic, not A's: {created}");
    assert_ne!(created["id"], before["topics"][0]["id"]);
    let b_topic = w
        .b_admin
        .get(&format!("/v1/topics/{A_TOPIC}"))
        .await
        .expect(200);
    assert_eq!(b_topic["queue_stats"].as_array().unwrap().len(), 1);
    assert_eq!(b_topic["queue_stats"][0]["end_offset"], 0, "{b_topic}");
    let sent = w
        .b_publisher
        .post_json(
            &format!("/v1/topics/{A_TOPIC}/messages"),
            &json!({"messages": [{"body": "b1"}, {"body": "b2"}, {"body": "b3"}]}),
        )
        .await
        .expect(200);
    assert_eq!(
        sent["messages"][0]["offset"], 0,
        "B's queue starts empty: {sent}"
    );
    let group = w
        .b_consumer
        .post_json("/v1/groups", &json!({"name": A_GROUP}))
        .await
        .expect(201);
    assert_eq!(group["name"], A_GROUP);
    let b_group = w
        .b_consumer
        .get(&format!("/v1/groups/{A_GROUP}"))
        .await
        .expect(200);
    assert_eq!(b_group["offsets"], json!([]), "A's offsets leak: {b_group}");
    let read = w
        .b_consumer
        .get(&format!("/v1/topics/{A_TOPIC}/queues/0/messages?offset=0"))
        .await
        .expect(200);
    let bodies: Vec<_> = read["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(bodies, ["b1", "b2", "b3"]);
    let offset = w
        .b_consumer
        .get(&format!("/v1/groups/{A_GROUP}/offsets/{A_TOPIC}/0"))
        .await
        .expect(200);
    assert_eq!(
        offset["offset"],
        Value::Null,
        "A's commit visible to B: {offset}"
    );
    w.b_consumer
        .put_json(
            &format!("/v1/groups/{A_GROUP}/offsets/{A_TOPIC}/0"),
            &json!({"offset": 3}),
        )
        .await
        .expect(200);
    // B deleting its own topic and group leaves A's alone.
    let deleted = w.b_admin.delete(&format!("/v1/groups/{A_GROUP}")).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    w.b_admin
        .delete(&format!("/v1/topics/{A_TOPIC}"))
        .await
        .expect(200);

    assert_eq!(w.a_state().await, before, "B's own resources changed A's");
    // A's keys still work.
    let who = w.a_publisher.get("/v1/whoami").await.expect(200);
    assert_eq!(who["tenant"], json!(w.a_tenant));
    w.a_publisher
        .get(&format!("/v1/topics/{A_TOPIC}"))
        .await
        .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_header_naming_another_tenant_is_refused_on_every_route() {
    let w = world().await;
    let before = w.a_state().await;
    let a_names = Names {
        topic: A_TOPIC.into(),
        group: A_GROUP.into(),
        tenant: w.a_tenant.clone(),
        access_key: w.a_publisher.access_key.clone(),
    };
    for actor in [&w.b_admin, &w.b_publisher, &w.b_consumer] {
        for &(method, template) in ROUTES {
            let what = format!("{} {method} {template} as A", actor.role);
            let mut answers = Vec::new();
            for tenant in [w.a_tenant.as_str(), "nowhere-at-all"] {
                let r = actor
                    .send(
                        request(actor, method, template, &a_names)
                            .header("x-strata-tenant", tenant),
                    )
                    .await;
                answers.push(r);
            }
            if matches!(case(method, template), Case::Public) {
                assert_eq!(answers[0].status, 200, "{what}");
                continue;
            }
            answers[0].expect_error(403, "PERMISSION_DENIED");
            assert_eq!(
                answers[0].body, answers[1].body,
                "{what}: an existing tenant answers differently"
            );
        }
    }
    assert_eq!(w.a_state().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_b_cannot_rotate_or_revoke_tenant_a_keys() {
    let w = world().await;
    let nowhere = format!("STRANOWHERE{}", random_suffix().to_ascii_uppercase());
    let a_keys = [w.a_publisher.clone(), w.a_admin.clone()];
    for target in &a_keys {
        for (method, path) in [
            ("post", format!("/v1/keys/{}/rotate", target.access_key)),
            ("delete", format!("/v1/keys/{}", target.access_key)),
        ] {
            let missing = path.replace(&target.access_key, &nowhere);
            // B's tenant admin may manage keys, but A's look like no key.
            let r = w.b_admin.send(w.b_admin.request(method, &path)).await;
            r.expect_error(404, "KEY_NOT_FOUND");
            let base = w.b_admin.send(w.b_admin.request(method, &missing)).await;
            base.expect_error(404, "KEY_NOT_FOUND");
            assert_eq!(
                r.text().replace(&target.access_key, &nowhere),
                base.text(),
                "{method} {path}"
            );
            // B's publisher may not manage keys at all: refused before any
            // lookup, the same for every key.
            for actor in [&w.b_publisher, &w.b_consumer] {
                let r = actor.send(actor.request(method, &path)).await;
                r.expect_error(403, "PERMISSION_DENIED");
                let base = actor.send(actor.request(method, &missing)).await;
                assert_eq!(r.body, base.body, "{} {method} {path}", actor.role);
            }
        }
        // The key still authenticates with its original secret.
        let who = target.get("/v1/whoami").await.expect(200);
        assert_eq!(who["tenant"], json!(w.a_tenant));
        assert_eq!(who["access_key"], json!(target.access_key));
    }
    // Listing with a filter on A is no way around it.
    let r = w
        .b_admin
        .get(&format!("/v1/keys?tenant={}", w.a_tenant))
        .await;
    r.expect_error(404, "TENANT_NOT_FOUND");
    let base = w.b_admin.get("/v1/keys?tenant=nowhere-at-all").await;
    assert_eq!(r.text().replace(&w.a_tenant, "nowhere-at-all"), base.text());
    // A's keys are unchanged (same updated_ms, none revoked).
    let keys = w.a_admin.get("/v1/keys").await.expect(200);
    for k in keys["keys"].as_array().unwrap() {
        assert_eq!(k["created_ms"], k["updated_ms"], "{k}");
        assert!(k.get("revoked_ms").is_none(), "{k}");
    }
    // B's tenant admin cannot mint keys in A either.
    let r = w
        .b_admin
        .post_json(
            "/v1/keys",
            &json!({"role": "tenant-admin", "tenant": w.a_tenant}),
        )
        .await;
    r.expect_error(404, "TENANT_NOT_FOUND");
    let after = w.a_admin.get("/v1/keys").await.expect(200);
    assert_eq!(after, keys);
}
