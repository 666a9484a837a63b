//! PullMessage as a catching-up reader uses it: large pulls (up to
//! `limits.max_read_messages`) answered with responses encoded on the
//! readers' pool, small ones in place, both alike; the consume quotas
//! charged per message and byte pulled.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use common::{Actor, TestServer, b64};
use md5::Digest as _;
use serde_json::{Value, json};
use strata_frontend::grpc::pb::messaging_service_client::MessagingServiceClient;
use strata_frontend::grpc::pb::{self, Code, pull_message_response::Content};
use tonic::transport::Channel;

async fn client(s: &TestServer) -> MessagingServiceClient<Channel> {
    let addr = s.running().grpc_addr;
    MessagingServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("gRPC connect")
}

/// What one pull answered.
#[derive(Debug)]
struct Pull {
    messages: Vec<pb::Message>,
    next: Option<i64>,
    status: pb::Status,
}

/// PullMessage of `topic`/`queue` from `offset`; `batch` 0 leaves the
/// batch size to the server.
async fn pull(
    c: &mut MessagingServiceClient<Channel>,
    actor: &Actor,
    topic: &str,
    queue: i32,
    offset: i64,
    batch: i32,
) -> Pull {
    pull_tagged(c, actor, topic, queue, offset, batch, "*").await
}

/// [`pull`] of the messages whose tag `tags` names (`a || b`, `*`).
async fn pull_tagged(
    c: &mut MessagingServiceClient<Channel>,
    actor: &Actor,
    topic: &str,
    queue: i32,
    offset: i64,
    batch: i32,
    tags: &str,
) -> Pull {
    let resource = |name: &str| {
        Some(pb::Resource {
            resource_namespace: String::new(),
            name: name.into(),
        })
    };
    let mut request = tonic::Request::new(pb::PullMessageRequest {
        group: resource("readers"),
        message_queue: Some(pb::MessageQueue {
            topic: resource(topic),
            id: queue,
            ..Default::default()
        }),
        offset,
        batch_size: batch,
        filter_expression: Some(pb::FilterExpression {
            r#type: pb::FilterType::Tag as i32,
            expression: tags.into(),
        }),
        long_polling_timeout: None,
    });
    let bearer = format!("Bearer {}:{}", actor.access_key, actor.secret_key);
    request
        .metadata_mut()
        .insert("authorization", bearer.parse().unwrap());
    let mut stream = c.pull_message(request).await.unwrap().into_inner();
    let (mut messages, mut next, mut status) = (Vec::new(), None, None);
    while let Some(item) = stream.message().await.unwrap() {
        match item.content {
            Some(Content::Message(m)) => messages.push(m),
            Some(Content::NextOffset(n)) => next = Some(n),
            Some(Content::Status(s)) => status = Some(s),
            None => panic!("a response without content"),
        }
    }
    Pull {
        messages,
        next,
        status: status.expect("the stream ends with a status"),
    }
}

/// The messages metered as delivered to `tenant` since the server started.
async fn delivered(s: &TestServer, tenant: &str) -> u64 {
    let name = format!("strata_tenant_delivered_messages_total{{tenant=\"{tenant}\"}} ");
    s.get("/metrics")
        .await
        .text()
        .lines()
        .find_map(|l| l.strip_prefix(&name)?.trim().parse().ok())
        .unwrap_or(0)
}

fn code(status: &pb::Status) -> Code {
    Code::try_from(status.code).expect("known code")
}

/// `n` bodies of `size` bytes, every other one binary, each unique.
fn bodies(n: u32, size: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let fill = if i % 2 == 0 {
                b'a' + (i % 26) as u8
            } else {
                0xF0
            };
            let mut body = vec![fill; size];
            body[..4].copy_from_slice(&i.to_be_bytes());
            body
        })
        .collect()
}

async fn publish(actor: &Actor, topic: &str, queue: u32, bodies: &[Vec<u8>]) {
    // Ten per request: the WAL's read budget counts whole batches.
    for chunk in bodies.chunks(10) {
        let messages: Vec<Value> = chunk
            .iter()
            .map(|b| json!({"body_base64": b64(b), "queue": queue, "tag": "t"}))
            .collect();
        actor
            .post_json(
                &format!("/v1/topics/{topic}/messages"),
                &json!({ "messages": messages }),
            )
            .await
            .expect(200);
    }
}

/// A tenant with a consumer key, a group "readers" and a topic `topic`.
async fn tenant(s: &TestServer, name: &str, topic: &str, queues: u32) -> (Actor, Actor) {
    s.create_tenant(name).await;
    let admin = s.create_key(name, "tenant-admin").await;
    admin
        .post_json("/v1/topics", &json!({"name": topic, "queues": queues}))
        .await
        .expect(201);
    admin
        .post_json("/v1/groups", &json!({"name": "readers"}))
        .await
        .expect(201);
    let consumer = s.create_key(name, "consumer").await;
    (admin, consumer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_small_pulls_answer_alike() {
    let s = TestServer::start().await;
    let (admin, consumer) = tenant(&s, "acme", "big", 3).await;
    // 300 bodies of 1 KiB on queue 2 (the other queues stay empty).
    let sent = bodies(300, 1024);
    publish(&admin, "big", 2, &sent).await;
    let mut c = client(&s).await;
    let cpu_tasks = || s.cold_cpu_tasks();

    // 10 messages (10 KiB) are encoded in place.
    let before = cpu_tasks().await;
    let small = pull(&mut c, &consumer, "big", 2, 0, 10).await;
    assert_eq!(cpu_tasks().await, before, "a small pull left the worker");
    // All 300 (300 KiB) on the readers' pool: past the 32 of old.
    let large = pull(&mut c, &consumer, "big", 2, 0, 1000).await;
    assert_eq!(cpu_tasks().await, before + 1, "a large pull stayed inline");

    assert_eq!(
        (code(&small.status), code(&large.status)),
        (Code::Ok, Code::Ok)
    );
    assert_eq!((small.next, large.next), (Some(10), Some(300)));
    assert_eq!(large.messages.len(), 300);
    assert_eq!(small.messages[..], large.messages[..10]);
    for (i, (m, body)) in large.messages.iter().zip(&sent).enumerate() {
        assert_eq!(&m.body, body, "message {i}");
        let sys = m.system_properties.as_ref().unwrap();
        assert_eq!(sys.queue_offset, Some(i as i64));
        assert_eq!(sys.queue_id, 2);
        assert_eq!(sys.receipt_handle, None, "pulled messages have no handle");
        let digest = sys.body_digest.as_ref().unwrap();
        assert_eq!(digest.r#type, pb::DigestType::Md5 as i32);
        assert_eq!(digest.checksum, hex::encode_upper(md5::Md5::digest(body)));
        assert_eq!(m.topic.as_ref().unwrap().name, "big");
    }

    // Without a batch size a pull answers 32; from the end, none.
    let default = pull(&mut c, &consumer, "big", 2, 100, 0).await;
    assert_eq!(default.messages.len(), 32);
    assert_eq!(default.next, Some(132));
    let end = pull(&mut c, &consumer, "big", 2, 300, 1000).await;
    assert_eq!((end.messages.len(), end.next), (0, Some(300)));
    // A refused pull is one status, whichever the path.
    let missing = pull(&mut c, &consumer, "absent", 0, 0, 1000).await;
    assert!(missing.messages.is_empty() && missing.next.is_none());
    assert_eq!(code(&missing.status), Code::TopicNotFound, "{missing:?}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_are_bounded_by_the_read_limits() {
    let s = TestServer::start_with(|c| {
        c.limits.max_read_messages = 100;
        c.limits.max_read_bytes = 50_000;
    })
    .await;
    let (admin, consumer) = tenant(&s, "acme", "t", 2).await;
    // Queue 0: 300 small messages (the count binds); queue 1: 300 of
    // 1 KiB (the bytes bind).
    publish(&admin, "t", 0, &bodies(300, 100)).await;
    publish(&admin, "t", 1, &bodies(300, 1024)).await;
    let mut c = client(&s).await;
    let by_count = pull(&mut c, &consumer, "t", 0, 0, 1000).await;
    assert_eq!((by_count.messages.len(), by_count.next), (100, Some(100)));
    let by_bytes = pull(&mut c, &consumer, "t", 1, 0, 1000).await;
    let n = by_bytes.messages.len();
    assert!(
        (30..50).contains(&n),
        "{n} messages of 1 KiB in 50,000 bytes"
    );
    assert_eq!(by_bytes.next, Some(n as i64));
    s.shutdown().await;
}

/// The wait a refusal's message names ("... retry after N ms").
fn retry_after_ms(message: &str) -> u64 {
    let after = message.split("retry after ").nth(1).expect("a retry hint");
    after
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .expect("milliseconds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_are_charged_per_message_and_per_byte() {
    let s = TestServer::start_with(|c| c.quotas.max_delay_ms = 0).await;
    s.put_json("/v1/plans/ten", &json!({ "consume_messages_per_sec": 10 }))
        .await
        .expect(200);
    s.put_json(
        "/v1/plans/tenk",
        &json!({ "consume_bytes_per_sec": 10_000 }),
    )
    .await
    .expect(200);
    let mut c = client(&s).await;
    // Each tenant asks for 100 messages of 1 KiB in one call: ten seconds
    // of its message rate, or of its byte rate. A pull returns what the
    // bucket holds, so the tenant is refused for at most about a second
    // afterwards, not ten; over HTTP too: one bucket, whichever the
    // protocol.
    for (tenant, plan, rate) in [
        ("by-count", "ten", "consume messages"),
        ("by-bytes", "tenk", "consume bytes"),
    ] {
        let (admin, consumer) = self::tenant(&s, tenant, "t", 1).await;
        publish(&admin, "t", 0, &bodies(100, 1024)).await;
        s.put_json(
            &format!("/v1/tenants/{tenant}/plan"),
            &json!({ "plan": plan }),
        )
        .await
        .expect(200);
        // A tag that no message carries delivers nothing and costs one
        // message, not a hundred. Nor is it metered: a tenant pays for
        // what it receives. The quota does not shorten its scan.
        let none = pull_tagged(&mut c, &consumer, "t", 0, 0, 1000, "other").await;
        assert_eq!(code(&none.status), Code::Ok, "{tenant}");
        assert_eq!((none.messages.len(), none.next), (0, Some(100)), "{tenant}");
        assert_eq!(delivered(&s, tenant).await, 0, "{tenant}");
        // What the bucket holds: 9 or 10 messages (the tagged pull took
        // one, which may have come back meanwhile), or 9 KiB of the 10,000
        // bytes.
        let first = pull(&mut c, &consumer, "t", 0, 0, 1000).await;
        assert_eq!(code(&first.status), Code::Ok, "{tenant}: {first:?}");
        let expected = if plan == "ten" { 9..=10 } else { 9..=9 };
        assert!(
            expected.contains(&first.messages.len()),
            "{tenant}: {first:?}"
        );
        // Pull on until refused.
        let (mut pulled, mut refusal) = (first.messages.len(), None);
        let mut offset = first.next.expect("a next offset");
        assert_eq!(offset, pulled as i64, "{tenant}");
        for _ in 0..50 {
            let p = pull(&mut c, &consumer, "t", 0, offset, 1000).await;
            if code(&p.status) != Code::Ok {
                refusal = Some(p);
                break;
            }
            assert!(!p.messages.is_empty(), "{tenant}: {p:?}");
            pulled += p.messages.len();
            offset = p.next.expect("a next offset");
            assert_eq!(offset, pulled as i64, "{tenant}");
        }
        assert_eq!(delivered(&s, tenant).await, pulled as u64, "{tenant}");
        let refusal = refusal.expect("refused once the bucket is empty");
        assert_eq!(code(&refusal.status), Code::TooManyRequests, "{tenant}");
        let message = &refusal.status.message;
        assert!(
            message.starts_with("TOO_MANY_REQUESTS: ") && message.contains(rate),
            "{tenant}: {message}"
        );
        assert!(retry_after_ms(message) <= 1000, "{tenant}: {message}");
        assert!(refusal.messages.is_empty(), "{tenant}");
        // Over HTTP the same bucket refuses too. It may have refilled by a
        // message or two since the refusal on a loaded machine, but a
        // bucket of its own would hand out what the first pull got.
        let (mut over_http, mut attempts) = (None, 0);
        while over_http.is_none() && attempts < 20 {
            attempts += 1;
            let r = consumer
                .get("/v1/topics/t/queues/0/messages?offset=0&limit=10")
                .await;
            if r.status == 429 {
                over_http = Some(r);
                continue;
            }
            assert_eq!(r.status, 200, "{tenant}: {}", r.text());
            let got = r.json()["messages"].as_array().map_or(0, Vec::len);
            assert!(got < first.messages.len(), "{tenant}: {}", r.text());
        }
        let over_http = over_http.expect("refused over HTTP as well");
        let error = &over_http.json()["error"];
        assert_eq!(error["code"], json!("TOO_MANY_REQUESTS"), "{tenant}");
        assert!(
            error["message"].as_str().unwrap().contains(rate),
            "{tenant}: {error}"
        );
    }
    s.shutdown().await;
}
