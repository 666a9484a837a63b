//! Bad input: every refused request gets its documented status and error
//! code as JSON, the server keeps serving, and nothing visible changes.

mod common;

use common::{TestServer, b64};
use reqwest::header::CONTENT_TYPE;
use serde_json::json;

const MAX_MESSAGE: usize = 1024;
const MAX_REQUEST: usize = 8 * 1024;
const MAX_BATCH: usize = 5;

/// A server with small limits, topic `t` (2 queues, some messages) and
/// group `g` with a committed offset.
async fn server() -> TestServer {
    let s = TestServer::start_with(|c| {
        c.limits.max_message_bytes = MAX_MESSAGE;
        c.http.max_request_bytes = MAX_REQUEST;
        c.limits.max_batch_messages = MAX_BATCH;
    })
    .await;
    s.create_topic("t", 2).await;
    s.publish(
        "t",
        json!([{"body": "a", "queue": 0}, {"body": "b", "queue": 0}, {"body": "c", "queue": 1}]),
    )
    .await;
    s.post_json("/v1/groups", &json!({"name": "g"}))
        .await
        .expect(201);
    s.put_json("/v1/groups/g/offsets/t/0", &json!({"offset": 1}))
        .await
        .expect(200);
    s
}

const PUBLISH: &str = "/v1/topics/t/messages";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_body_is_413_payload_too_large() {
    let s = server().await;
    let big = vec![b'x'; MAX_REQUEST + 1];
    let huge = vec![b'x'; MAX_REQUEST * 4];
    for (ct, body) in [
        ("application/octet-stream", big.clone()),
        ("text/plain", huge.clone()),
    ] {
        s.rejects(
            ct,
            s.http
                .post(s.url(PUBLISH))
                .header(CONTENT_TYPE, ct)
                .body(body),
            413,
            "PAYLOAD_TOO_LARGE",
        )
        .await;
    }
    // The answer says both sizes and the setting, before the body is read.
    let answer = s
        .send(
            s.http
                .post(s.url(PUBLISH))
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(big.clone()),
        )
        .await
        .json();
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    let sizes = format!(
        "request body of {} bytes exceeds the limit of {MAX_REQUEST} bytes (http.max_request_bytes)",
        MAX_REQUEST + 1
    );
    assert_eq!(message, sizes, "{answer}");
    // A JSON publish over the request limit whose messages are each small.
    let many: Vec<_> = (0..MAX_BATCH)
        .map(|_| json!({"body": "y".repeat(MAX_MESSAGE)}))
        .collect();
    let mut payload = serde_json::to_vec(&json!({ "messages": many })).unwrap();
    payload.extend(std::iter::repeat_n(b' ', MAX_REQUEST));
    s.rejects(
        "json publish",
        s.http
            .post(s.url(PUBLISH))
            .header(CONTENT_TYPE, "application/json")
            .body(payload),
        413,
        "PAYLOAD_TOO_LARGE",
    )
    .await;
    // Other JSON endpoints share the request limit.
    let name = "n".repeat(MAX_REQUEST);
    s.rejects(
        "create topic",
        s.http
            .post(s.url("/v1/topics"))
            .json(&json!({"name": name})),
        413,
        "PAYLOAD_TOO_LARGE",
    )
    .await;
    s.rejects(
        "commit offset",
        s.http
            .put(s.url("/v1/groups/g/offsets/t/0"))
            .header(CONTENT_TYPE, "application/json")
            .body(format!("{{\"offset\": 0{}}}", " ".repeat(MAX_REQUEST))),
        413,
        "PAYLOAD_TOO_LARGE",
    )
    .await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_over_the_limit_is_413_message_too_large() {
    let s = server().await;
    let over = vec![0xABu8; MAX_MESSAGE + 1];
    s.rejects(
        "raw",
        s.http
            .post(s.url(PUBLISH))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(over.clone()),
        413,
        "MESSAGE_TOO_LARGE",
    )
    .await;
    s.rejects(
        "json text",
        s.http
            .post(s.url(PUBLISH))
            .json(&json!({"messages": [{"body": "z".repeat(MAX_MESSAGE + 1)}]})),
        413,
        "MESSAGE_TOO_LARGE",
    )
    .await;
    // The limit applies to the decoded body, and one bad message refuses
    // the whole batch, including the good ones before it.
    s.rejects(
        "json base64 in a batch",
        s.http.post(s.url(PUBLISH)).json(&json!({"messages": [
            {"body": "fine", "queue": 0},
            {"body": "fine", "queue": 1},
            {"body_base64": b64(&over), "queue": 0}
        ]})),
        413,
        "MESSAGE_TOO_LARGE",
    )
    .await;
    // Exactly at the limit is accepted.
    let at = s
        .post_raw(
            PUBLISH,
            Some("application/octet-stream"),
            vec![1u8; MAX_MESSAGE],
        )
        .await;
    at.expect(200);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_messages_is_400_batch_too_large() {
    let s = server().await;
    let batch: Vec<_> = (0..=MAX_BATCH)
        .map(|i| json!({"body": format!("m{i}"), "queue": 0}))
        .collect();
    s.rejects(
        "batch",
        s.http
            .post(s.url(PUBLISH))
            .json(&json!({ "messages": batch })),
        400,
        "BATCH_TOO_LARGE",
    )
    .await;
    let at_limit: Vec<_> = (0..MAX_BATCH)
        .map(|i| json!({"body": format!("m{i}")}))
        .collect();
    assert_eq!(s.publish("t", json!(at_limit)).await.len(), MAX_BATCH);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_publish_json_is_400_invalid_json() {
    let s = server().await;
    let cases: &[(&str, &str)] = &[
        ("not json", "this is not json"),
        ("truncated", r#"{"messages": [{"body": "x"}"#),
        ("empty body", ""),
        ("array at top", r#"[{"body": "x"}]"#),
        ("messages not an array", r#"{"messages": {"body": "x"}}"#),
        ("missing messages", r#"{}"#),
        ("body is a number", r#"{"messages": [{"body": 5}]}"#),
        (
            "queue is negative",
            r#"{"messages": [{"body": "x", "queue": -1}]}"#,
        ),
        (
            "queue is a string",
            r#"{"messages": [{"body": "x", "queue": "0"}]}"#,
        ),
        (
            "queue over u32",
            r#"{"messages": [{"body": "x", "queue": 4294967296}]}"#,
        ),
        (
            "property value not a string",
            r#"{"messages": [{"body": "x", "properties": {"a": 1}}]}"#,
        ),
        (
            "unknown top-level field",
            r#"{"messages": [{"body": "x"}], "extra": 1}"#,
        ),
        (
            "unknown message field",
            r#"{"messages": [{"body": "x", "bodyy": "y"}]}"#,
        ),
        ("null", "null"),
        // serde's derived structs would take arrays (fields by position).
        ("request as an array", r#"[[{"body": "x"}]]"#),
        (
            "message as an array",
            r#"{"messages": [["my-id", "text"]]}"#,
        ),
        (
            "second message as an array",
            r#"{"messages": [{"body": "ok"}, [null, "text"]]}"#,
        ),
    ];
    for (what, body) in cases {
        s.rejects(
            what,
            s.http
                .post(s.url(PUBLISH))
                .header(CONTENT_TYPE, "application/json")
                .body(*body),
            400,
            "INVALID_JSON",
        )
        .await;
    }
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_bodies_and_arguments_are_400_invalid_argument() {
    let s = server().await;
    let cases = [
        (
            "both bodies",
            json!({"messages": [{"body": "x", "body_base64": "eA=="}]}),
        ),
        ("no body", json!({"messages": [{"key": "k"}]})),
        (
            "bad base64",
            json!({"messages": [{"body_base64": "not base64!!"}]}),
        ),
        (
            "bad base64 padding",
            json!({"messages": [{"body_base64": "eA="}]}),
        ),
        (
            "bad base64 after a good message",
            json!({"messages": [{"body": "ok"}, {"body_base64": "%%%"}]}),
        ),
        ("empty messages", json!({"messages": []})),
        (
            "tag too long",
            json!({"messages": [{"body": "x", "tag": "t".repeat(256)}]}),
        ),
        (
            "empty property name",
            json!({"messages": [{"body": "x", "properties": {"": "v"}}]}),
        ),
        (
            "id too long",
            json!({"messages": [{"body": "x", "id": "i".repeat(129)}]}),
        ),
        (
            "tag a filter could never select",
            json!({"messages": [{"body": "x", "tag": "a||b"}]}),
        ),
        (
            "tag with a space",
            json!({"messages": [{"body": "x", "tag": "a b"}]}),
        ),
        ("empty tag", json!({"messages": [{"body": "x", "tag": ""}]})),
        (
            "key with a space (gRPC keys are space-separated)",
            json!({"messages": [{"body": "x", "key": "has space"}]}),
        ),
        ("empty key", json!({"messages": [{"body": "x", "key": ""}]})),
        (
            "key with a control character",
            json!({"messages": [{"body": "x", "key": "k\u{0}\n"}]}),
        ),
        (
            "id with a newline",
            json!({"messages": [{"body": "x", "id": "a\nb"}]}),
        ),
        (
            "property name with a control character",
            json!({"messages": [{"body": "x", "properties": {"a\u{1}": "v"}}]}),
        ),
    ];
    for (what, body) in cases {
        s.rejects(
            what,
            s.http.post(s.url(PUBLISH)).json(&body),
            400,
            "INVALID_ARGUMENT",
        )
        .await;
    }
    // Raw-body query parameters are refused on JSON bodies and when unknown.
    s.rejects(
        "query key with json",
        s.http
            .post(s.url(&format!("{PUBLISH}?key=k")))
            .json(&json!({"messages": [{"body": "x"}]})),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    for query in ["queue=abc", "queue=-1", "nope=1"] {
        s.rejects(
            query,
            s.http
                .post(s.url(&format!("{PUBLISH}?{query}")))
                .header(CONTENT_TYPE, "text/plain")
                .body("x"),
            400,
            "INVALID_ARGUMENT",
        )
        .await;
    }
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_names_are_400_invalid_name() {
    let s = server().await;
    let names = [
        String::new(),
        "x".repeat(128),
        "a.b".into(),
        "a/b".into(),
        "a b".into(),
        "tópico".into(),
        "日本".into(),
        "emoji😀".into(),
    ];
    for name in &names {
        s.rejects(
            &format!("topic {name:?}"),
            s.http
                .post(s.url("/v1/topics"))
                .json(&json!({ "name": name })),
            400,
            "INVALID_NAME",
        )
        .await;
        s.rejects(
            &format!("group {name:?}"),
            s.http
                .post(s.url("/v1/groups"))
                .json(&json!({ "name": name })),
            400,
            "INVALID_NAME",
        )
        .await;
    }
    // The service's own topics' prefix is a name no topic can have.
    s.rejects(
        "topic __sys-x",
        s.http
            .post(s.url("/v1/topics"))
            .json(&json!({ "name": "__sys-x" })),
        400,
        "INVALID_NAME",
    )
    .await;
    // A group's dead-letter topic is named after it: never a hidden one.
    s.rejects(
        "group __sys-x",
        s.http
            .post(s.url("/v1/groups"))
            .json(&json!({ "name": "__sys-x" })),
        400,
        "INVALID_NAME",
    )
    .await;
    // A receive names a group no group can have: a bad name, not a
    // missing group (it answered 404 GROUP_NOT_FOUND).
    s.create_topic("named-groups", 1).await;
    for group in ["__sys-x".to_string(), "g".repeat(124)] {
        s.rejects(
            &format!("receive for group {group:?}"),
            s.http
                .post(s.url(&format!("/v1/groups/{group}/receive")))
                .json(&json!({ "topic": "named-groups" })),
            400,
            "INVALID_NAME",
        )
        .await;
    }
    for body in [json!(["arr"]), json!({"name": ["arr"]}), json!({})] {
        s.rejects(
            &format!("group {body}"),
            s.http.post(s.url("/v1/groups")).json(&body),
            400,
            "INVALID_JSON",
        )
        .await;
    }
    // 127 bytes is the longest allowed name.
    s.create_topic(&"x".repeat(127), 1).await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topic_argument_errors() {
    let s = server().await;
    let max = s.config.limits.max_queues_per_topic;
    let invalid_argument = [
        json!({"name": "q0", "queues": 0}),
        json!({"name": "qmax", "queues": max + 1}),
        json!({"name": "qbig", "queues": u32::MAX}),
        json!({"name": "ty", "type": "bogus"}),
        json!({"name": "ty2", "type": ""}),
        json!({"name": "ret", "retention": "forever"}),
        json!({"name": "ret2", "retention": "0s"}),
        json!({"name": "ret3", "retention": ""}),
        // Wrapped around to 9.5 hours in milliseconds before.
        json!({"name": "ret4", "retention": "213503982335days"}),
        json!({"name": "ret5", "retention": "101years"}),
        json!({"name": "ret6", "retention": "999us"}),
    ];
    for body in invalid_argument {
        s.rejects(
            &body.to_string(),
            s.http.post(s.url("/v1/topics")).json(&body),
            400,
            "INVALID_ARGUMENT",
        )
        .await;
    }
    let invalid_json = [
        json!({"name": "neg", "queues": -1}),
        json!({"name": "over", "queues": 4294967296u64}),
        json!({"name": "str", "queues": "2"}),
        json!({"queues": 2}),
        json!({"name": 5}),
        json!({"name": "extra", "partitions": 2}),
        json!(["name"]),
        json!(["arr", 3, "fifo", "unlimited"]),
    ];
    for body in invalid_json {
        s.rejects(
            &body.to_string(),
            s.http.post(s.url("/v1/topics")).json(&body),
            400,
            "INVALID_JSON",
        )
        .await;
    }
    s.rejects(
        "syntax",
        s.http
            .post(s.url("/v1/topics"))
            .header(CONTENT_TYPE, "application/json")
            .body("{\"name\": "),
        400,
        "INVALID_JSON",
    )
    .await;
    // The limit itself is fine.
    let top = s
        .post_json("/v1/topics", &json!({"name": "wide", "queues": max}))
        .await
        .expect(201);
    assert_eq!(top["queues"], max);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_topic_is_409() {
    let s = server().await;
    s.rejects(
        "same name",
        s.http.post(s.url("/v1/topics")).json(&json!({"name": "t"})),
        409,
        "TOPIC_ALREADY_EXISTS",
    )
    .await;
    s.rejects(
        "same name, other settings",
        s.http
            .post(s.url("/v1/topics"))
            .json(&json!({"name": "t", "queues": 7, "type": "fifo"})),
        409,
        "TOPIC_ALREADY_EXISTS",
    )
    .await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topic_is_404_topic_not_found() {
    let s = server().await;
    let get_paths = [
        "/v1/topics/nope",
        "/v1/topics/nope/queues/0",
        "/v1/topics/nope/queues/0/messages",
        "/v1/topics/nope/queues/0/messages?offset=0",
        "/v1/groups/g/offsets/nope/0",
    ];
    for path in get_paths {
        s.rejects(path, s.http.get(s.url(path)), 404, "TOPIC_NOT_FOUND")
            .await;
    }
    s.rejects(
        "delete",
        s.http.delete(s.url("/v1/topics/nope")),
        404,
        "TOPIC_NOT_FOUND",
    )
    .await;
    s.rejects(
        "publish json",
        s.http
            .post(s.url("/v1/topics/nope/messages"))
            .json(&json!({"messages": [{"body": "x"}]})),
        404,
        "TOPIC_NOT_FOUND",
    )
    .await;
    s.rejects(
        "publish raw",
        s.http
            .post(s.url("/v1/topics/nope/messages"))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body("x"),
        404,
        "TOPIC_NOT_FOUND",
    )
    .await;
    s.rejects(
        "commit",
        s.http
            .put(s.url("/v1/groups/g/offsets/nope/0"))
            .json(&json!({"offset": 0})),
        404,
        "TOPIC_NOT_FOUND",
    )
    .await;
    // A name no topic can have is a bad name, as for groups, not a topic
    // that happens to be missing.
    s.rejects(
        "unicode topic",
        s.http.get(s.url("/v1/topics/t%C3%B3pico")),
        400,
        "INVALID_NAME",
    )
    .await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_queue_and_group_are_404() {
    let s = server().await;
    for path in [
        "/v1/topics/t/queues/2",
        "/v1/topics/t/queues/4294967295",
        "/v1/topics/t/queues/2/messages",
        "/v1/topics/t/queues/2/messages?offset=0",
        "/v1/groups/g/offsets/t/2",
    ] {
        s.rejects(path, s.http.get(s.url(path)), 404, "QUEUE_NOT_FOUND")
            .await;
    }
    s.rejects(
        "publish json to queue 2",
        s.http
            .post(s.url(PUBLISH))
            .json(&json!({"messages": [{"body": "ok", "queue": 0}, {"body": "x", "queue": 2}]})),
        404,
        "QUEUE_NOT_FOUND",
    )
    .await;
    s.rejects(
        "publish raw to queue 9",
        s.http
            .post(s.url(&format!("{PUBLISH}?queue=9")))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body("x"),
        404,
        "QUEUE_NOT_FOUND",
    )
    .await;
    s.rejects(
        "commit queue 2",
        s.http
            .put(s.url("/v1/groups/g/offsets/t/2"))
            .json(&json!({"offset": 0})),
        404,
        "QUEUE_NOT_FOUND",
    )
    .await;
    for (what, req) in [
        ("describe", s.http.get(s.url("/v1/groups/nobody"))),
        ("delete", s.http.delete(s.url("/v1/groups/nobody"))),
    ] {
        s.rejects(what, req, 404, "GROUP_NOT_FOUND").await;
    }
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queue_ids_are_400_invalid_argument() {
    let s = server().await;
    for queue in ["abc", "-1", "1.5", "4294967296", "0x1", "%20"] {
        for path in [
            format!("/v1/topics/t/queues/{queue}"),
            format!("/v1/topics/t/queues/{queue}/messages?offset=0"),
            format!("/v1/groups/g/offsets/t/{queue}"),
        ] {
            s.rejects(&path, s.http.get(s.url(&path)), 400, "INVALID_ARGUMENT")
                .await;
        }
        s.rejects(
            &format!("commit queue {queue}"),
            s.http
                .put(s.url(&format!("/v1/groups/g/offsets/t/{queue}")))
                .json(&json!({"offset": 0})),
            400,
            "INVALID_ARGUMENT",
        )
        .await;
    }
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_offsets_and_read_parameters() {
    let s = server().await;
    let read = "/v1/topics/t/queues/0/messages";
    for query in [
        "offset=-1",
        "offset=abc",
        "offset=1.0",
        "offset=18446744073709551616",
        "offset=99999999999999999999999",
        "offset=",
        "limit=-5",
        "limit=x",
        "limit=0",
        "wait_ms=-1",
        "wait_ms=soon",
        "encoding=hex",
        "encoding=BASE64",
        "encoding=",
        "unknown=1",
    ] {
        let path = format!("{read}?{query}");
        s.rejects(&path, s.http.get(s.url(&path)), 400, "INVALID_ARGUMENT")
            .await;
    }
    // Queue 0 holds offsets 0 and 1: its end is 2.
    for offset in ["3", "1000", "18446744073709551615"] {
        let path = format!("{read}?offset={offset}");
        s.rejects(&path, s.http.get(s.url(&path)), 416, "OFFSET_OUT_OF_RANGE")
            .await;
        // Long polls do not change that.
        let path = format!("{read}?offset={offset}&wait_ms=10");
        s.rejects(&path, s.http.get(s.url(&path)), 416, "OFFSET_OUT_OF_RANGE")
            .await;
    }
    let at = "/v1/topics/t/queues/0/offset?timestamp_ms=-5";
    s.rejects(at, s.http.get(s.url(at)), 400, "INVALID_ARGUMENT")
        .await;
    // The end itself is a valid (empty) read.
    let r = s.read("t", 0, "offset=2").await;
    assert_eq!(r["messages"], json!([]));
    assert_eq!(r["end_offset"], 2);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receive_of_no_messages_is_400_and_takes_nothing() {
    let s = server().await;
    s.post_json("/v1/groups", &json!({"name": "early", "start": "earliest"}))
        .await
        .expect(201);
    s.rejects(
        "max_messages 0",
        s.http
            .post(s.url("/v1/groups/early/receive"))
            .json(&json!({"topic": "t", "max_messages": 0})),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    // Nothing was delivered: all three messages are still there to take.
    let r = s
        .post_json(
            "/v1/groups/early/receive",
            &json!({"topic": "t", "max_messages": 10}),
        )
        .await
        .expect(200);
    assert_eq!(r["messages"].as_array().unwrap().len(), 3, "{r}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_offset_errors() {
    let s = server().await;
    let path = "/v1/groups/g/offsets/t/0";
    for offset in [3u64, 1000, u64::MAX] {
        s.rejects(
            &format!("commit {offset}"),
            s.http.put(s.url(path)).json(&json!({ "offset": offset })),
            416,
            "OFFSET_OUT_OF_RANGE",
        )
        .await;
    }
    for body in [
        "{\"offset\": -1}",
        "{\"offset\": \"1\"}",
        "{\"offset\": 18446744073709551616}",
        "{}",
        "{\"offset\": 1, \"extra\": true}",
        "[1]",
        "nope",
    ] {
        s.rejects(
            body,
            s.http
                .put(s.url(path))
                .header(CONTENT_TYPE, "application/json")
                .body(body),
            400,
            "INVALID_JSON",
        )
        .await;
    }
    s.rejects(
        "bad group name",
        s.http
            .put(s.url("/v1/groups/a.b/offsets/t/0"))
            .json(&json!({"offset": 0})),
        400,
        "INVALID_NAME",
    )
    .await;
    s.rejects(
        "commit without content type",
        s.http.put(s.url(path)).body("{\"offset\": 0}"),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_type_is_415() {
    let s = server().await;
    let json_body = r#"{"messages": [{"body": "x"}]}"#;
    for ct in [
        Some("application/xml"),
        Some("text/html"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some(""),
        None,
    ] {
        let mut req = s.http.post(s.url(PUBLISH)).body(json_body);
        if let Some(ct) = ct {
            req = req.header(CONTENT_TYPE, ct);
        }
        s.rejects(
            &format!("publish with {ct:?}"),
            req,
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        )
        .await;
    }
    for ct in [Some("text/plain"), Some("application/xml"), None] {
        let mut req = s.http.post(s.url("/v1/topics")).body(r#"{"name": "new"}"#);
        if let Some(ct) = ct {
            req = req.header(CONTENT_TYPE, ct);
        }
        s.rejects(
            &format!("create topic with {ct:?}"),
            req,
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        )
        .await;
    }
    s.rejects(
        "create group without content type",
        s.http.post(s.url("/v1/groups")).body(r#"{"name": "new"}"#),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_path_is_404_and_wrong_method_is_405() {
    let s = server().await;
    for path in [
        "/",
        "/v1",
        "/v2/topics",
        "/v1/topic",
        "/v1/topics/t/queues",
        "/v1/topics/t/queues/0/messages/extra",
        "/v1/groups/g/offsets",
        "/healthz/x",
    ] {
        s.rejects(path, s.http.get(s.url(path)), 404, "NOT_FOUND")
            .await;
    }
    s.rejects(
        "post to unknown path",
        s.http.post(s.url("/v1/nothing")).json(&json!({})),
        404,
        "NOT_FOUND",
    )
    .await;
    let wrong_methods = [
        (reqwest::Method::PATCH, "/v1/topics"),
        (reqwest::Method::PUT, "/v1/topics"),
        (reqwest::Method::DELETE, "/v1/topics"),
        (reqwest::Method::POST, "/v1/topics/t"),
        (reqwest::Method::PUT, "/v1/topics/t"),
        (reqwest::Method::PUT, "/v1/topics/t/messages"),
        (reqwest::Method::DELETE, "/v1/topics/t/queues/0"),
        (reqwest::Method::POST, "/v1/topics/t/queues/0/messages"),
        (reqwest::Method::DELETE, "/v1/groups"),
        (reqwest::Method::POST, "/v1/groups/g/offsets/t/0"),
        (reqwest::Method::GET, "/v1/groups/g/offsets/t"),
        (reqwest::Method::DELETE, "/v1/groups/g/offsets/t/0"),
        (reqwest::Method::POST, "/healthz"),
        (reqwest::Method::POST, "/metrics"),
        (reqwest::Method::DELETE, "/v1/status"),
        (reqwest::Method::PUT, "/v1/openapi.json"),
    ];
    for (method, path) in wrong_methods {
        s.rejects(
            &format!("{method} {path}"),
            s.http.request(method.clone(), s.url(path)),
            405,
            "METHOD_NOT_ALLOWED",
        )
        .await;
    }
    s.shutdown().await;
}

/// Forgetting a node: a server outside cluster mode has no registry to
/// forget in, and a body that is not the confirmation is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting_a_node_outside_cluster_mode_is_400() {
    let s = server().await;
    let path = "/v1/cluster/nodes/node-x/forget";
    let r = s
        .post_json(path, &json!({"lose_unuploaded_messages": true}))
        .await;
    r.expect_error(400, "INVALID_ARGUMENT");
    assert!(r.text().contains("not in cluster mode"), "{}", r.text());
    s.post_json(path, &json!({"lose": true}))
        .await
        .expect_error(400, "INVALID_JSON");
    s.post_json(path, &json!({}))
        .await
        .expect_error(400, "INVALID_JSON");
    // A node id no node can have is refused as a name.
    s.post_json(
        "/v1/cluster/nodes/bad%20id!/forget",
        &json!({"lose_unuploaded_messages": true}),
    )
    .await
    .expect_error(400, "INVALID_NAME");
    // A key that may not forget nodes hears that, whatever its body.
    s.create_tenant("acme").await;
    let tenant_admin = s.create_key("acme", "tenant-admin").await;
    tenant_admin
        .send(tenant_admin.request("post", path))
        .await
        .expect_error(403, "PERMISSION_DENIED");
    // Nothing changed: this node is still in the registry, live.
    let cluster = s.get("/v1/cluster").await.expect(200);
    assert_eq!(cluster["nodes"][0]["state"], "live", "{cluster}");
}
