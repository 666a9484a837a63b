//! The OpenAPI document against the code: the same routes as the router,
//! resolvable references, the same error codes as `ErrorCode`, and every
//! documented route served by the live server as documented.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::TestServer;
use serde_json::{Value, json};
use strata_common::ErrorCode;
use strata_frontend::http::ROUTES;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn live_document(s: &TestServer) -> Value {
    let resp = s.get("/v1/openapi.json").await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.content_type
            .as_deref()
            .unwrap_or("")
            .starts_with("application/json"),
        "{:?}",
        resp.content_type
    );
    let doc = resp.json();
    let embedded: Value =
        serde_json::from_str(strata_frontend::http::ops::OPENAPI).expect("embedded document");
    assert_eq!(doc, embedded, "the server serves the embedded document");
    doc
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths object");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        for key in item.as_object().expect("path item").keys() {
            if METHODS.contains(&key.as_str()) {
                assert!(
                    out.insert((key.clone(), path.clone())),
                    "duplicate {key} {path}"
                );
            }
        }
    }
    out
}

fn routes() -> BTreeSet<(String, String)> {
    let set: BTreeSet<_> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(set.len(), ROUTES.len(), "ROUTES has duplicates");
    set
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_lists_exactly_the_routes() {
    let s = TestServer::start().await;
    let doc = live_document(&s).await;
    let version = doc["openapi"].as_str().expect("openapi version string");
    assert!(version.starts_with("3."), "{version}");
    assert!(doc["info"]["title"].is_string());

    let documented = operations(&doc);
    let routed = routes();
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes not documented: {missing:?}; documented but not routed: {extra:?}"
    );

    // Every path parameter is declared, and every declared one is in the path.
    for (method, path) in &documented {
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_string)
            .collect();
        let item = &doc["paths"][path];
        let op = &item[method];
        let declared: BTreeSet<String> = [&item["parameters"], &op["parameters"]]
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().expect("parameter name").to_string())
            .collect();
        assert_eq!(in_path, declared, "path parameters of {method} {path}");
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path} documents no responses"
        );
        assert!(op["operationId"].is_string(), "{method} {path}");
    }
    s.shutdown().await;
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.push(v.as_str().expect("$ref is a string").to_string());
                } else {
                    collect_refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        _ => {}
    }
}

#[test]
fn every_ref_resolves_to_a_schema() {
    let doc: Value = serde_json::from_str(strata_frontend::http::ops::OPENAPI).unwrap();
    let schemas = doc["components"]["schemas"]
        .as_object()
        .expect("components.schemas");
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 10, "suspiciously few $refs: {refs:?}");
    let mut used = BTreeSet::new();
    for r in &refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("$ref {r:?} does not point into components/schemas"));
        assert!(schemas.contains_key(name), "$ref {r:?} does not resolve");
        used.insert(name.to_string());
    }
    let unused: Vec<_> = schemas.keys().filter(|k| !used.contains(*k)).collect();
    assert!(unused.is_empty(), "schemas never referenced: {unused:?}");
}

#[test]
fn error_codes_match_the_error_code_enum() {
    let doc: Value = serde_json::from_str(strata_frontend::http::ops::OPENAPI).unwrap();
    let code = &doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"];
    let documented: Vec<&str> = code["enum"]
        .as_array()
        .expect("Error.error.code.enum")
        .iter()
        .map(|c| c.as_str().expect("code is a string"))
        .collect();
    let documented_set: BTreeSet<&str> = documented.iter().copied().collect();
    assert_eq!(documented_set.len(), documented.len(), "duplicate codes");
    let wire: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(wire.len(), ErrorCode::ALL.len(), "duplicate wire names");
    assert_eq!(
        documented_set, wire,
        "documented codes differ from ErrorCode::ALL"
    );

    for c in ErrorCode::ALL {
        let serialized = serde_json::to_string(&c).unwrap();
        assert_eq!(
            serialized,
            format!("\"{}\"", c.as_str()),
            "serde name of {c:?}"
        );
        let back: ErrorCode = serde_json::from_str(&serialized).unwrap();
        assert_eq!(back, c);
        assert_eq!(c.to_string(), c.as_str());
    }

    // The description maps statuses to codes: "400: A, B; 404: C; ...".
    let description = code["description"].as_str().expect("code description");
    let mut by_status: BTreeMap<&str, u16> = BTreeMap::new();
    for part in description.split(';') {
        let (status, codes) = part.split_once(':').expect("STATUS: CODES");
        let status: u16 = status.trim().parse().expect("status number");
        for c in codes.split(',') {
            assert!(by_status.insert(c.trim(), status).is_none(), "{c} twice");
        }
    }
    for c in ErrorCode::ALL {
        assert_eq!(
            by_status.get(c.as_str()),
            Some(&c.http_status()),
            "documented status of {c}"
        );
    }
    assert_eq!(by_status.len(), ErrorCode::ALL.len());
}

/// A request body the route accepts, for the routes that take one.
fn body_for(method: &str, path: &str) -> Option<Value> {
    match (method, path) {
        ("post", "/v1/topics") => Some(json!({"name": "walk-created", "queues": 2})),
        ("post", "/v1/topics/{topic}/messages") => Some(json!({"messages": [{"body": "x"}]})),
        ("post", "/v1/topics/{topic}/transactions") => Some(json!({"body": "x"})),
        ("post", "/v1/groups") => Some(json!({"name": "walkers"})),
        ("put", "/v1/groups/{group}/offsets/{topic}/{queue}") => Some(json!({"offset": 1})),
        ("put", "/v1/groups/{group}/offsets/{topic}") => Some(json!({"to": "earliest"})),
        ("post", "/v1/tenants") => Some(json!({"name": "walk-created-tenant"})),
        ("post", "/v1/keys") => Some(json!({"role": "consumer"})),
        ("put", "/v1/plans/{plan}") => Some(json!({"max_topics": 10})),
        ("put", "/v1/tenants/{tenant}/plan") => Some(json!({"plan": "default"})),
        ("post", "/v1/groups/{group}/receive") => Some(json!({"topic": "walk", "queue": 0})),
        ("post", "/v1/groups/{group}/ack") => {
            Some(json!({"topic": "walk", "receipt_handles": ["1-0-0-1"]}))
        }
        ("post", "/v1/groups/{group}/invisible") => {
            Some(json!({"topic": "walk", "receipt_handle": "1-0-0-1", "invisible_ms": 5000}))
        }
        ("post", "/v1/cluster/nodes/{node}/forget") => {
            Some(json!({"lose_unuploaded_messages": true}))
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_served_as_documented() {
    let s = TestServer::start().await;
    let doc = live_document(&s).await;
    s.create_topic("walk", 1).await;
    s.publish("walk", json!([{"body": "first"}])).await;
    s.post_json("/v1/groups", &json!({"name": "walkers"}))
        .await
        .expect(201);
    s.post_json("/v1/tenants", &json!({"name": "walk-tenant"}))
        .await
        .expect(201);
    let key = s
        .post_json(
            "/v1/keys",
            &json!({"role": "publisher", "tenant": "walk-tenant"}),
        )
        .await
        .expect(201);
    let access_key = key["access_key"].as_str().unwrap().to_string();
    s.put_json("/v1/plans/walk-plan-default", &json!({}))
        .await
        .expect(200);

    // Transaction routes act on a TRANSACTION topic with two open transactions.
    s.post_json(
        "/v1/topics",
        &json!({"name": "walk-txn", "queues": 1, "type": "transaction"}),
    )
    .await
    .expect(201);
    let mut open = Vec::new();
    for _ in 0..2 {
        let began = s
            .post_json("/v1/topics/walk-txn/transactions", &json!({"body": "x"}))
            .await
            .expect(201);
        open.push(began["transaction_id"].as_str().unwrap().to_string());
    }

    let mut handle = String::new();
    // Deletes last, so every other route finds its topic and group.
    let mut ordered: Vec<_> = ROUTES.to_vec();
    // Deleting a tenant deletes its keys: tenants go very last.
    ordered.sort_by_key(|(m, p)| (*m == "delete", p.starts_with("/v1/tenants/")));
    for (method, template) in ordered {
        let topic = if template.contains("/transactions") {
            "walk-txn"
        } else {
            "walk"
        };
        let transaction = if template.ends_with("/commit") {
            &open[0]
        } else {
            &open[1]
        };
        let mut path = template
            .replace("{topic}", topic)
            .replace("{group}", "walkers")
            .replace("{queue}", "0")
            .replace("{tenant}", "walk-tenant")
            .replace("{access_key}", &access_key)
            .replace("{plan}", "walk-plan-default")
            .replace("{node}", "walk-node")
            .replace("{transaction_id}", transaction);
        // Required query parameters, as the document declares them.
        if template.ends_with("/offset") {
            path.push_str("?timestamp_ms=0");
        }
        if (method, template) == ("get", "/v1/topics/{topic}/messages") {
            path.push_str("?key=k");
        }
        let m = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let mut req = s.http.request(m, s.url(&path));
        if let Some(mut body) = body_for(method, template) {
            // Consumption routes act on the delivery the receive handed out.
            if body.get("receipt_handle").is_some() {
                body["receipt_handle"] = json!(handle);
            }
            if body.get("receipt_handles").is_some() {
                body["receipt_handles"] = json!([handle]);
            }
            req = req.json(&body);
        }
        let resp = s.send(req).await;
        if resp.status == 200 && template.ends_with("/receive") {
            handle = resp.json()["messages"][0]["receipt_handle"]
                .as_str()
                .expect("the walk's receive gets the published message")
                .to_string();
        }
        if resp.status == 200 && template.ends_with("/invisible") {
            handle = resp.json()["receipt_handle"].as_str().unwrap().to_string();
        }
        let code = serde_json::from_slice::<Value>(&resp.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string));
        assert!(
            resp.status != 405 && !(resp.status == 404 && code.as_deref() == Some("NOT_FOUND")),
            "{method} {path} is not routed: {} {}",
            resp.status,
            resp.text()
        );
        if template == "/v1/cluster/nodes/{node}/forget" {
            // Only cluster mode has nodes to forget; one node says so.
            assert_eq!(code.as_deref(), Some("INVALID_ARGUMENT"), "{}", resp.text());
        } else {
            assert!(
                (200..300).contains(&resp.status),
                "{method} {path} with a valid request failed: {} {}",
                resp.status,
                resp.text()
            );
        }
        // The status and content type are the documented ones.
        let documented = &doc["paths"][template][method]["responses"][resp.status.to_string()];
        assert!(
            documented.is_object(),
            "{method} {template} answered {}, which it does not document",
            resp.status
        );
        match documented["content"].as_object() {
            Some(content) => {
                let media = resp
                    .content_type
                    .as_deref()
                    .unwrap_or("")
                    .split(';')
                    .next()
                    .unwrap()
                    .trim()
                    .to_string();
                assert!(
                    content.contains_key(&media),
                    "{method} {template}: content type {media:?} is not among {:?}",
                    content.keys().collect::<Vec<_>>()
                );
                if media == "application/json" {
                    resp.json();
                }
            }
            None => assert!(
                resp.body.is_empty(),
                "{method} {template}: undocumented body {}",
                resp.text()
            ),
        }
    }
    s.shutdown().await;
}
