//! The RocketMQ 5 gRPC API of a running node, driven with a generated
//! client: routes, sends, Telemetry settings, authentication, tenant
//! isolation on every RPC, and malformed requests (refused, nothing changed).

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use common::{Actor, TestServer};
use serde_json::json;
use strata_frontend::grpc::pb::messaging_service_client::MessagingServiceClient;
use strata_frontend::grpc::pb::{self, Code};
use strata_tenancy::{SecretKey, format_date_time, sign};
use tonic::transport::Channel;

/// How a request is signed.
#[derive(Clone)]
enum Auth {
    None,
    /// MQv2-HMAC-SHA1 over x-mq-date-time at `skew_ms` from now.
    Hmac {
        ak: String,
        sk: String,
        skew_ms: i64,
        upper: bool,
    },
    Raw(&'static str),
}

fn hmac(actor: &Actor) -> Auth {
    Auth::Hmac {
        ak: actor.access_key.clone(),
        sk: actor.secret_key.clone(),
        skew_ms: 0,
        upper: false,
    }
}

fn request<T>(auth: &Auth, namespace: Option<&str>, body: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(body);
    let md = r.metadata_mut();
    match auth {
        Auth::None => {}
        Auth::Raw(v) => {
            md.insert("authorization", v.parse().unwrap());
        }
        Auth::Hmac {
            ak,
            sk,
            skew_ms,
            upper,
        } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            let date = format_date_time(now + skew_ms);
            let mut signature = sign(&SecretKey::new(sk.clone()), &date);
            if *upper {
                signature = signature.to_uppercase();
            }
            md.insert("x-mq-date-time", date.parse().unwrap());
            md.insert(
                "authorization",
                format!(
                    "MQv2-HMAC-SHA1 Credential={ak}, SignedHeaders=x-mq-date-time, Signature={signature}"
                )
                .parse()
                .unwrap(),
            );
        }
    }
    if let Some(ns) = namespace {
        md.insert("x-mq-namespace", ns.parse().unwrap());
    }
    r
}

async fn client(s: &TestServer) -> MessagingServiceClient<Channel> {
    let addr = s.running().grpc_addr;
    MessagingServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("gRPC connect")
}

fn resource(name: &str) -> Option<pb::Resource> {
    Some(pb::Resource {
        resource_namespace: String::new(),
        name: name.into(),
    })
}

fn message(topic: &str, body: &[u8], queue: i32) -> pb::Message {
    pb::Message {
        topic: resource(topic),
        user_properties: [("color".to_string(), "red".to_string())].into(),
        system_properties: Some(pb::SystemProperties {
            tag: Some("TagA".into()),
            keys: vec!["order-1".into()],
            message_id: format!("MSG{:016X}", fastrand::u64(..)),
            message_type: pb::MessageType::Normal as i32,
            queue_id: queue,
            ..Default::default()
        }),
        body: body.to_vec(),
    }
}

fn code(status: &Option<pb::Status>) -> Code {
    Code::try_from(status.as_ref().expect("status").code).expect("known code")
}

/// ChangeInvisibleDuration of one delivery, without a namespace header.
async fn change_invisible(
    c: &mut MessagingServiceClient<Channel>,
    auth: &Auth,
    group: &str,
    handle: String,
    invisible: std::time::Duration,
) -> pb::ChangeInvisibleDurationResponse {
    c.change_invisible_duration(request(
        auth,
        None,
        pb::ChangeInvisibleDurationRequest {
            group: resource(group),
            topic: resource("orders"),
            receipt_handle: handle,
            invisible_duration: Some(prost_types::Duration {
                seconds: invisible.as_secs() as i64,
                nanos: invisible.subsec_nanos() as i32,
            }),
            ..Default::default()
        },
    ))
    .await
    .unwrap()
    .into_inner()
}

/// SendMessage without a namespace header.
async fn send(
    c: &mut MessagingServiceClient<Channel>,
    auth: &Auth,
    messages: Vec<pb::Message>,
) -> pb::SendMessageResponse {
    c.send_message(request(auth, None, pb::SendMessageRequest { messages }))
        .await
        .unwrap()
        .into_inner()
}

struct World {
    s: TestServer,
    a_admin: Actor,
    a_publisher: Actor,
    b_publisher: Actor,
    b_consumer: Actor,
}

async fn world() -> World {
    let s = TestServer::start().await;
    s.create_tenant("acme").await;
    s.create_tenant("bolt").await;
    let a_admin = s.create_key("acme", "tenant-admin").await;
    a_admin
        .post_json("/v1/topics", &json!({"name": "orders", "queues": 4}))
        .await
        .expect(201);
    let a_publisher = s.create_key("acme", "publisher").await;
    let b_publisher = s.create_key("bolt", "publisher").await;
    let b_consumer = s.create_key("bolt", "consumer").await;
    World {
        s,
        a_admin,
        a_publisher,
        b_publisher,
        b_consumer,
    }
}

async fn queue_ends(a: &Actor) -> Vec<u64> {
    let d = a.get("/v1/topics/orders").await.expect(200);
    d["queue_stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["end_offset"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_and_send_with_hmac_then_read_over_http() {
    let w = world().await;
    let mut c = client(&w.s).await;
    let auth = hmac(&w.a_publisher);
    let route = c
        .query_route(request(
            &auth,
            None,
            pb::QueryRouteRequest {
                topic: resource("orders"),
                endpoints: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&route.status), Code::Ok);
    assert_eq!(route.message_queues.len(), 4);
    let q = &route.message_queues[2];
    assert_eq!(q.id, 2);
    assert_eq!(q.permission, pb::Permission::ReadWrite as i32);
    assert_eq!(q.accept_message_types, [pb::MessageType::Normal as i32]);
    let endpoints = q.broker.as_ref().unwrap().endpoints.as_ref().unwrap();
    assert_eq!(endpoints.scheme, pb::AddressScheme::IPv4 as i32);
    assert_eq!(
        endpoints.addresses[0].port,
        i32::from(w.s.running().grpc_addr.port())
    );

    let messages = vec![
        message("orders", b"first", 2),
        message("orders", b"second", 2),
    ];
    let ids: Vec<String> = messages
        .iter()
        .map(|m| m.system_properties.as_ref().unwrap().message_id.clone())
        .collect();
    let sent = c
        .send_message(request(
            &auth,
            Some("acme"),
            pb::SendMessageRequest { messages },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&sent.status), Code::Ok, "{sent:?}");
    let offsets: Vec<i64> = sent.entries.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, [0, 1]);
    assert_eq!(sent.entries[0].message_id, ids[0]);

    let read = w
        .a_admin
        .get("/v1/topics/orders/queues/2/messages?offset=0")
        .await
        .expect(200);
    let got = &read["messages"];
    assert_eq!(got[0]["body"], "first");
    assert_eq!(got[1]["body"], "second");
    assert_eq!(got[0]["id"], json!(ids[0]));
    assert_eq!(got[0]["key"], "order-1");
    assert_eq!(got[0]["tag"], "TagA");
    assert_eq!(got[0]["properties"]["color"], "red");

    // A GZIP body, as the Java SDK sends bodies over 4 KiB, is stored
    // inflated: an HTTP reader and a RocketMQ consumer (told IDENTITY) get
    // the producer's bytes.
    let text = "compressed by the producer ".repeat(400);
    let mut zipped = message(
        "orders",
        &{
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(text.as_bytes()).unwrap();
            e.finish().unwrap()
        },
        2,
    );
    zipped.system_properties.as_mut().unwrap().body_encoding = pb::Encoding::Gzip as i32;
    let sent = c
        .send_message(request(
            &auth,
            None,
            pb::SendMessageRequest {
                messages: vec![zipped],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&sent.status), Code::Ok, "{sent:?}");
    let read = w
        .a_admin
        .get("/v1/topics/orders/queues/2/messages?offset=2")
        .await
        .expect(200);
    assert_eq!(read["messages"][0]["body"], json!(text));

    // Uppercase hex signatures (the Node.js SDK) and bearer tokens work too.
    let upper = Auth::Hmac {
        ak: w.a_publisher.access_key.clone(),
        sk: w.a_publisher.secret_key.clone(),
        skew_ms: 0,
        upper: true,
    };
    let r = c
        .heartbeat(request(&upper, None, pb::HeartbeatRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::Ok);
    let usage = w.s.running().engine.meter().totals();
    assert_eq!(usage["acme"].requests["SendMessage"], 2);
    assert_eq!(usage["acme"].requests["QueryRoute"], 1);
    assert_eq!(usage["acme"].published_messages, 3);
}

/// The Settings a producer of topic "orders" sends on its Telemetry stream.
fn orders_producer_settings() -> pb::TelemetryCommand {
    let settings = pb::Settings {
        client_type: Some(pb::ClientType::Producer as i32),
        pub_sub: Some(pb::settings::PubSub::Publishing(pb::Publishing {
            topics: vec![resource("orders").unwrap()],
            ..Default::default()
        })),
        ..Default::default()
    };
    pb::TelemetryCommand {
        status: None,
        command: Some(pb::telemetry_command::Command::Settings(settings)),
    }
}

/// The answer to a stream's first Settings comes again a little later: the
/// Node.js SDK waits for it only after fetching all its topics' routes, and
/// a producer of four topics never finished starting when it came sooner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_sends_the_first_settings_answer_again() {
    let w = world().await;
    let mut c = client(&w.s).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(orders_producer_settings()).await.unwrap();
    let outbound = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut replies = c
        .telemetry(request(&hmac(&w.a_publisher), None, outbound))
        .await
        .unwrap()
        .into_inner();
    let first = replies.message().await.unwrap().expect("a settings reply");
    let again = tokio::time::timeout(std::time::Duration::from_secs(30), replies.message())
        .await
        .expect("the answer comes again")
        .unwrap()
        .expect("the stream is open");
    assert_eq!(again, first);
    assert!(matches!(
        again.command,
        Some(pb::telemetry_command::Command::Settings(_))
    ));
    // Settings changed since: their answer at once, and only it again
    // (the first answer would undo the change on the client).
    let mut changed = orders_producer_settings();
    if let Some(pb::telemetry_command::Command::Settings(s)) = &mut changed.command
        && let Some(pb::settings::PubSub::Publishing(p)) = &mut s.pub_sub
    {
        p.topics.push(resource("payments").unwrap());
    }
    tx.send(changed).await.unwrap();
    let latest = replies.message().await.unwrap().expect("the new answer");
    assert_ne!(latest, first);
    let later = tokio::time::timeout(std::time::Duration::from_secs(30), replies.message())
        .await
        .expect("the answer comes again")
        .unwrap()
        .expect("the stream is open");
    assert_eq!(later, latest);
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_answers_settings_at_once() {
    let w = world().await;
    let mut c = client(&w.s).await;
    let outbound = tokio_stream::iter(vec![orders_producer_settings()]);
    let mut replies = c
        .telemetry(request(&hmac(&w.a_publisher), None, outbound))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().expect("a settings reply");
    assert_eq!(code(&reply.status), Code::Ok);
    let Some(pb::telemetry_command::Command::Settings(s)) = reply.command else {
        panic!("settings expected: {reply:?}");
    };
    let Some(pb::settings::PubSub::Publishing(p)) = s.pub_sub else {
        panic!("publishing expected");
    };
    assert_eq!(p.max_body_size, 1 << 20);
    assert!(matches!(
        s.backoff_policy.unwrap().strategy,
        Some(pb::retry_policy::Strategy::ExponentialBackoff(_))
    ));
    // The client has ended its side (as a producer's shutdown does): the
    // server forgets the producer, so check-backs go to one still there,
    // and ends its side too (an SDK whose reply stream stays open fails
    // when the connection drops later). It used to stay open for good.
    let end = tokio::time::timeout(std::time::Duration::from_secs(30), replies.message())
        .await
        .expect("the reply stream ends after the client's");
    assert!(matches!(end, Ok(None)), "{end:?}");

    // Without credentials the stream is refused outright.
    let refused = c
        .telemetry(request(&Auth::None, None, tokio_stream::iter(vec![])))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}

/// A gRPC tester's findings: a name that cannot exist answered not-found,
/// and the topics and group a client declared over Telemetry were not
/// checked against its namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn illegal_names_and_foreign_settings_are_refused() {
    let w = world().await;
    let mut c = client(&w.s).await;
    let publisher = hmac(&w.a_publisher);
    let route = c
        .query_route(request(
            &publisher,
            None,
            pb::QueryRouteRequest {
                topic: resource("no such/topic"),
                endpoints: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&route.status), Code::IllegalTopic, "{route:?}");
    let sent = c
        .send_message(request(
            &publisher,
            None,
            pb::SendMessageRequest {
                messages: vec![message("bad%topic", b"x", 0)],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&sent.status), Code::IllegalTopic, "{sent:?}");

    let consumer = hmac(&w.s.create_key("acme", "consumer").await);
    let assigned = c
        .query_assignment(request(
            &consumer,
            None,
            pb::QueryAssignmentRequest {
                topic: resource("orders"),
                group: resource("bad group"),
                endpoints: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&assigned.status), Code::IllegalConsumerGroup);
    // Too long for a group (its dead-letter topic's name would be too long
    // for a topic), and reserved: illegal, not missing; a heartbeat too.
    for group in ["g".repeat(124), "__sys-k".to_string()] {
        let beat = c
            .heartbeat(request(
                &consumer,
                None,
                pb::HeartbeatRequest {
                    group: resource(&group),
                    client_type: pb::ClientType::SimpleConsumer as i32,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(code(&beat.status), Code::IllegalConsumerGroup, "{group}");
    }

    // Settings naming another tenant's topic: refused, and not registered.
    let foreign = pb::Settings {
        client_type: Some(pb::ClientType::Producer as i32),
        pub_sub: Some(pb::settings::PubSub::Publishing(pb::Publishing {
            topics: vec![pb::Resource {
                resource_namespace: "bolt".into(),
                name: "orders".into(),
            }],
            ..Default::default()
        })),
        ..Default::default()
    };
    let outbound = tokio_stream::iter(vec![pb::TelemetryCommand {
        status: None,
        command: Some(pb::telemetry_command::Command::Settings(foreign)),
    }]);
    let mut replies = c
        .telemetry(request(&publisher, None, outbound))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().expect("a reply");
    assert_eq!(code(&reply.status), Code::Forbidden, "{reply:?}");
    assert!(reply.command.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_refused_with_unauthorized() {
    let w = world().await;
    let mut c = client(&w.s).await;
    let p = &w.a_publisher;
    let wrong_secret = Auth::Hmac {
        ak: p.access_key.clone(),
        sk: "not-the-secret".into(),
        skew_ms: 0,
        upper: false,
    };
    let unknown = Auth::Hmac {
        ak: "STRAUNKNOWNKEY000".into(),
        sk: p.secret_key.clone(),
        skew_ms: 0,
        upper: false,
    };
    let expired = Auth::Hmac {
        ak: p.access_key.clone(),
        sk: p.secret_key.clone(),
        skew_ms: -3_600_000,
        upper: false,
    };
    let revoked = w.s.create_key("acme", "publisher").await;
    w.s.delete(&format!("/v1/keys/{}", revoked.access_key))
        .await
        .expect(200);
    for (what, auth) in [
        ("missing", Auth::None),
        ("malformed", Auth::Raw("MQv2-HMAC-SHA1 garbage")),
        ("bad signature", wrong_secret),
        ("unknown key", unknown),
        ("expired date-time", expired),
        ("revoked key", hmac(&revoked)),
    ] {
        let r = c
            .query_route(request(
                &auth,
                None,
                pb::QueryRouteRequest {
                    topic: resource("orders"),
                    endpoints: None,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(code(&r.status), Code::Unauthorized, "{what}: {r:?}");
        assert!(r.message_queues.is_empty());
    }
}

/// Tenant B's keys against tenant A's topic get what a topic that exists
/// nowhere gets, on every RPC; A's data is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_b_learns_nothing_about_tenant_a_over_grpc() {
    let w = world().await;
    let mut c = client(&w.s).await;
    let before = queue_ends(&w.a_admin).await;
    for actor in [&w.b_publisher, &w.b_consumer] {
        let auth = hmac(actor);
        for topic in ["orders", "no-such-topic"] {
            // The answers name the topic asked for; otherwise they must match.
            let named = |v: Vec<(&'static str, i32, String)>, name: &str| -> Vec<_> {
                v.into_iter()
                    .map(|(rpc, code, text)| (rpc, code, text.replace(name, "<topic>")))
                    .collect()
            };
            let answers = named(every_rpc(&mut c, &auth, None, topic).await, topic);
            let nowhere = named(
                every_rpc(&mut c, &auth, None, "no-such-topic").await,
                "no-such-topic",
            );
            assert_eq!(answers, nowhere, "{} on {topic}", actor.role);
            for (rpc, code, text) in &answers {
                assert!(!text.contains("acme"), "{rpc} revealed tenant A: {text}");
                assert_ne!(
                    *code,
                    Code::Ok as i32,
                    "{rpc} succeeded on another tenant's topic"
                );
            }
        }
        // Naming A's namespace is refused outright.
        let answers = every_rpc(&mut c, &auth, Some("acme"), "orders").await;
        for (rpc, code, _) in answers {
            assert_eq!(code, Code::Forbidden as i32, "{rpc} with namespace acme");
        }
    }
    assert_eq!(queue_ends(&w.a_admin).await, before, "tenant A changed");
}

/// (rpc, body code, body message) for each RPC of the service.
async fn every_rpc(
    c: &mut MessagingServiceClient<Channel>,
    auth: &Auth,
    ns: Option<&str>,
    topic: &str,
) -> Vec<(&'static str, i32, String)> {
    let st = |s: Option<pb::Status>| {
        let s = s.unwrap_or_default();
        (s.code, s.message)
    };
    let group = resource("g");
    let queue = Some(pb::MessageQueue {
        topic: resource(topic),
        id: 0,
        ..Default::default()
    });
    let mut out = Vec::new();
    let r = c
        .query_route(request(
            auth,
            ns,
            pb::QueryRouteRequest {
                topic: resource(topic),
                endpoints: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (code, msg) = st(r.status);
    out.push(("QueryRoute", code, format!("{msg} {:?}", r.message_queues)));
    let r = c
        .send_message(request(
            auth,
            ns,
            pb::SendMessageRequest {
                messages: vec![message(topic, b"b-was-here", 0)],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (code, msg) = st(r.status);
    out.push(("SendMessage", code, format!("{msg} {:?}", r.entries)));
    let r = c
        .query_assignment(request(
            auth,
            ns,
            pb::QueryAssignmentRequest {
                topic: resource(topic),
                group: group.clone(),
                endpoints: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (code, msg) = st(r.status);
    out.push(("QueryAssignment", code, msg));
    let mut s = c
        .receive_message(request(
            auth,
            ns,
            pb::ReceiveMessageRequest {
                group: group.clone(),
                message_queue: queue.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let first = s.message().await.unwrap().and_then(|m| m.content);
    let (code, msg) = match first {
        Some(pb::receive_message_response::Content::Status(s)) => (s.code, s.message),
        other => (0, format!("{other:?}")),
    };
    out.push(("ReceiveMessage", code, msg));
    let r = c
        .ack_message(request(
            auth,
            ns,
            pb::AckMessageRequest {
                group: group.clone(),
                topic: resource(topic),
                entries: vec![pb::AckMessageEntry {
                    message_id: "m".into(),
                    receipt_handle: "h".into(),
                    lite_topic: None,
                }],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (code, msg) = st(r.status);
    out.push(("AckMessage", code, msg));
    let r = c
        .change_invisible_duration(request(
            auth,
            ns,
            pb::ChangeInvisibleDurationRequest {
                group: group.clone(),
                topic: resource(topic),
                receipt_handle: "h".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (code, msg) = st(r.status);
    out.push(("ChangeInvisibleDuration", code, msg));
    let r = c
        .forward_message_to_dead_letter_queue(request(
            auth,
            ns,
            pb::ForwardMessageToDeadLetterQueueRequest {
                group: group.clone(),
                topic: resource(topic),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (code, msg) = st(r.status);
    out.push(("ForwardMessageToDeadLetterQueue", code, msg));
    let r = c
        .end_transaction(request(
            auth,
            ns,
            pb::EndTransactionRequest {
                topic: resource(topic),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (code, msg) = st(r.status);
    out.push(("EndTransaction", code, msg));
    let mut s = c
        .pull_message(request(
            auth,
            ns,
            pb::PullMessageRequest {
                group: group.clone(),
                message_queue: queue.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let first = s.message().await.unwrap().and_then(|m| m.content);
    let (code, msg) = match first {
        Some(pb::pull_message_response::Content::Status(s)) => (s.code, s.message),
        other => (0, format!("{other:?}")),
    };
    out.push(("PullMessage", code, msg));
    let r = c
        .update_offset(request(
            auth,
            ns,
            pb::UpdateOffsetRequest {
                group: group.clone(),
                message_queue: queue.clone(),
                offset: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (code, msg) = st(r.status);
    out.push(("UpdateOffset", code, msg));
    let r = c
        .get_offset(request(
            auth,
            ns,
            pb::GetOffsetRequest {
                group: group.clone(),
                message_queue: queue.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (code, msg) = st(r.status);
    out.push(("GetOffset", code, msg));
    let r = c
        .query_offset(request(
            auth,
            ns,
            pb::QueryOffsetRequest {
                message_queue: queue.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (code, msg) = st(r.status);
    out.push(("QueryOffset", code, msg));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sends_are_refused_and_change_nothing() {
    let w = world().await;
    let mut c = client(&w.s).await;
    let auth = hmac(&w.a_publisher);
    let before = queue_ends(&w.a_admin).await;
    let mut fifo = message("orders", b"x", 0);
    if let Some(s) = fifo.system_properties.as_mut() {
        s.message_type = pb::MessageType::Fifo as i32;
        s.message_group = Some("g".into());
    }
    let mut reserved = message("orders", b"x", 0);
    reserved
        .user_properties
        .insert("__mq.group".into(), "x".into());
    let mut no_topic = message("orders", b"x", 0);
    no_topic.topic = None;
    let mut foreign = message("orders", b"y", 0);
    if let Some(t) = foreign.topic.as_mut() {
        t.resource_namespace = "beta".into();
    }
    let mut piped = message("orders", b"x", 0);
    if let Some(s) = piped.system_properties.as_mut() {
        s.tag = Some("a||b".into());
    }
    let with_sys = |edit: &dyn Fn(&mut pb::SystemProperties)| {
        let mut m = message("orders", b"x", 0);
        if let Some(s) = m.system_properties.as_mut() {
            edit(s);
        }
        m
    };
    let long_key = with_sys(&|s| s.keys = vec!["k".repeat(1025)]);
    let second_key_bad = with_sys(&|s| s.keys = vec!["ok".into(), "a\tb".into()]);
    let spaced_tag = with_sys(&|s| s.tag = Some("a b".into()));
    let bad_id = with_sys(&|s| s.message_id = "id\n".into());
    let mut control_property = message("orders", b"x", 0);
    control_property
        .user_properties
        .insert("p\u{1}".into(), "v".into());
    let cases: Vec<(&str, Vec<pb::Message>, Code)> = vec![
        ("no messages", vec![], Code::BadRequest),
        ("key too long", vec![long_key], Code::IllegalMessageKey),
        (
            "second key bad",
            vec![second_key_bad],
            Code::IllegalMessageKey,
        ),
        (
            "tag with a space",
            vec![spaced_tag],
            Code::IllegalMessageTag,
        ),
        ("id with a newline", vec![bad_id], Code::IllegalMessageId),
        (
            "property name with a control character",
            vec![control_property],
            Code::IllegalMessagePropertyKey,
        ),
        ("no topic", vec![no_topic], Code::BadRequest),
        (
            "body over the limit",
            vec![message("orders", &vec![b'z'; (1 << 20) + 1], 0)],
            Code::MessageBodyTooLarge,
        ),
        (
            "wrong type",
            vec![fifo],
            Code::MessagePropertyConflictWithType,
        ),
        (
            "reserved property",
            vec![reserved],
            Code::IllegalMessagePropertyKey,
        ),
        ("tag holding |", vec![piped], Code::IllegalMessageTag),
        (
            "a later message in another namespace",
            vec![message("orders", b"x", 0), foreign],
            Code::Forbidden,
        ),
        (
            "two topics",
            vec![message("orders", b"x", 0), message("other", b"y", 0)],
            Code::IllegalTopic,
        ),
        (
            "unknown topic",
            vec![message("nope", b"x", 0)],
            Code::TopicNotFound,
        ),
    ];
    for (what, messages, expected) in cases {
        let r = c
            .send_message(request(&auth, None, pb::SendMessageRequest { messages }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(code(&r.status), expected, "{what}: {r:?}");
        assert!(r.entries.is_empty(), "{what}");
    }
    // A consumer key may not send.
    let consumer = w.s.create_key("acme", "consumer").await;
    let r = send(&mut c, &hmac(&consumer), vec![message("orders", b"x", 0)]).await;
    assert_eq!(code(&r.status), Code::Forbidden);
    assert_eq!(queue_ends(&w.a_admin).await, before);

    // Transactions: a topic is required, and only open transactions end.
    let r = c
        .end_transaction(request(&auth, None, pb::EndTransactionRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::BadRequest);
    let r = c
        .end_transaction(request(
            &auth,
            None,
            pb::EndTransactionRequest {
                topic: resource("orders"),
                transaction_id: "no-such-transaction".into(),
                resolution: pb::TransactionResolution::Commit as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    // "orders" takes no transactions: said so, not a bad id.
    assert_eq!(code(&r.status), Code::MessagePropertyConflictWithType);
    w.a_admin
        .post_json(
            "/v1/topics",
            &json!({"name": "payments", "queues": 1, "type": "transaction"}),
        )
        .await
        .expect(201);
    let r = c
        .end_transaction(request(
            &auth,
            None,
            pb::EndTransactionRequest {
                topic: resource("payments"),
                transaction_id: "no-such-transaction".into(),
                resolution: pb::TransactionResolution::Commit as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::InvalidTransactionId);
    let r = c
        .query_offset(request(&auth, None, pb::QueryOffsetRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        code(&r.status),
        Code::Forbidden,
        "a publisher key may not consume"
    );
    let r = c
        .query_offset(request(
            &hmac(&consumer),
            None,
            pb::QueryOffsetRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&r.status), Code::BadRequest, "no message queue named");
}

fn receive_request(group: &str, topic: &str, queue: i32, batch: i32) -> pb::ReceiveMessageRequest {
    pb::ReceiveMessageRequest {
        group: resource(group),
        message_queue: Some(pb::MessageQueue {
            topic: resource(topic),
            id: queue,
            ..Default::default()
        }),
        filter_expression: Some(pb::FilterExpression {
            r#type: pb::FilterType::Tag as i32,
            expression: "*".into(),
        }),
        batch_size: batch,
        invisible_duration: Some(prost_types::Duration {
            seconds: 30,
            nanos: 0,
        }),
        auto_renew: false,
        long_polling_timeout: Some(prost_types::Duration {
            seconds: 1,
            nanos: 0,
        }),
        attempt_id: None,
    }
}

/// (messages, closing status code) of one receive.
async fn receive(
    c: &mut MessagingServiceClient<Channel>,
    auth: &Auth,
    r: pb::ReceiveMessageRequest,
) -> (Vec<pb::Message>, i32) {
    let mut stream = c
        .receive_message(request(auth, None, r))
        .await
        .unwrap()
        .into_inner();
    let mut messages = Vec::new();
    let mut status = None;
    while let Some(item) = stream.message().await.unwrap() {
        match item.content {
            Some(pb::receive_message_response::Content::Message(m)) => messages.push(m),
            Some(pb::receive_message_response::Content::Status(s)) => status = Some(s.code),
            _ => {}
        }
    }
    (messages, status.expect("a closing status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_ack_and_change_invisible_duration_over_grpc() {
    let w = world().await;
    w.a_admin
        .post_json("/v1/groups", &json!({"name": "billing"}))
        .await
        .expect(201);
    let mut c = client(&w.s).await;
    let messages = vec![
        message("orders", b"one", 1),
        message("orders", b"two", 1),
        message("orders", b"three", 1),
    ];
    let sent = send(&mut c, &hmac(&w.a_publisher), messages).await;
    assert_eq!(code(&sent.status), Code::Ok);
    let consumer = w.s.create_key("acme", "consumer").await;
    let auth = hmac(&consumer);

    let (got, status) = receive(&mut c, &auth, receive_request("billing", "orders", 1, 2)).await;
    assert_eq!(status, Code::Ok as i32);
    assert_eq!(got.len(), 2);
    let sys = got[0].system_properties.clone().unwrap();
    assert_eq!(got[0].body, b"one");
    assert_eq!(sys.delivery_attempt, Some(1));
    assert_eq!(sys.queue_offset, Some(0));
    assert_eq!(sys.tag.as_deref(), Some("TagA"));
    assert_eq!(sys.keys, ["order-1"]);
    let digest = sys.body_digest.unwrap();
    assert_eq!(
        digest.checksum, "F97C5D29941BFB1B2FDAB0874906AB82",
        "MD5 of `one`, uppercase"
    );
    assert_eq!(got[0].user_properties["color"], "red");
    let handle = |m: &pb::Message| {
        m.system_properties
            .as_ref()
            .unwrap()
            .receipt_handle
            .clone()
            .unwrap()
    };

    let ack = c
        .ack_message(request(
            &auth,
            None,
            pb::AckMessageRequest {
                group: resource("billing"),
                topic: resource("orders"),
                entries: vec![
                    pb::AckMessageEntry {
                        message_id: "m0".into(),
                        receipt_handle: handle(&got[0]),
                        lite_topic: None,
                    },
                    pb::AckMessageEntry {
                        message_id: "bad".into(),
                        receipt_handle: "not-a-handle".into(),
                        lite_topic: None,
                    },
                ],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&ack.status), Code::MultipleResults);
    assert_eq!(code(&ack.entries[0].status), Code::Ok);
    assert_eq!(code(&ack.entries[1].status), Code::InvalidReceiptHandle);
    // More entries than one acknowledgement may carry: refused whole.
    let entry = pb::AckMessageEntry {
        message_id: "m1".into(),
        receipt_handle: handle(&got[1]),
        lite_topic: None,
    };
    let too_many = c
        .ack_message(request(
            &auth,
            None,
            pb::AckMessageRequest {
                group: resource("billing"),
                topic: resource("orders"),
                entries: vec![entry; strata_engine::pop::MAX_ACK_BATCH + 1],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&too_many.status), Code::BadRequest);
    // One handle refused: the status is its own reason, which is all an
    // SDK acking one message per call shows.
    let alone = c
        .ack_message(request(
            &auth,
            None,
            pb::AckMessageRequest {
                group: resource("billing"),
                topic: resource("orders"),
                entries: vec![pb::AckMessageEntry {
                    message_id: "m0".into(),
                    receipt_handle: handle(&got[0]),
                    lite_topic: None,
                }],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&alone.status), Code::InvalidReceiptHandle);
    let message = &alone.status.as_ref().unwrap().message;
    assert!(message.contains("not in flight"), "{message}");

    let changed = change_invisible(
        &mut c,
        &auth,
        "billing",
        handle(&got[1]),
        std::time::Duration::from_secs(60),
    )
    .await;
    assert_eq!(code(&changed.status), Code::Ok);
    assert_ne!(changed.receipt_handle, handle(&got[1]));

    // The third message, then nothing (MESSAGE_NOT_FOUND after the long poll).
    let (rest, _) = receive(&mut c, &auth, receive_request("billing", "orders", 1, 32)).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].body, b"three");
    let (none, status) = receive(&mut c, &auth, receive_request("billing", "orders", 1, 32)).await;
    assert!(none.is_empty());
    assert_eq!(status, Code::MessageNotFound as i32);

    // Refusals: unknown group, bad invisible time, publisher role.
    let (_, status) = receive(&mut c, &auth, receive_request("nope", "orders", 1, 1)).await;
    assert_eq!(status, Code::ConsumerGroupNotFound as i32);
    let mut bad = receive_request("billing", "orders", 1, 1);
    bad.invisible_duration = Some(prost_types::Duration {
        seconds: 0,
        nanos: 1,
    });
    let (_, status) = receive(&mut c, &auth, bad).await;
    assert_eq!(status, Code::IllegalInvisibleTime as i32);
    let (_, status) = receive(
        &mut c,
        &hmac(&w.a_publisher),
        receive_request("billing", "orders", 1, 1),
    )
    .await;
    assert_eq!(status, Code::Forbidden as i32);

    // QueryAssignment: a receive spans the topic, so a push consumer needs
    // one receive loop for a plain topic; a FIFO topic consumed in order
    // gets one per queue, as RocketMQ's proxy answers.
    w.a_admin
        .post_json(
            "/v1/topics",
            &json!({"name": "steps", "queues": 3, "type": "fifo"}),
        )
        .await
        .expect(201);
    for (topic, queues) in [("orders", 1), ("steps", 3)] {
        let assigned = c
            .query_assignment(request(
                &auth,
                None,
                pb::QueryAssignmentRequest {
                    topic: resource(topic),
                    group: resource("billing"),
                    endpoints: None,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(code(&assigned.status), Code::Ok);
        assert_eq!(assigned.assignments.len(), queues, "{topic}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_and_offsets_over_grpc() {
    let w = world().await;
    w.a_admin
        .post_json("/v1/groups", &json!({"name": "puller"}))
        .await
        .expect(201);
    let mut c = client(&w.s).await;
    let messages = (0..5)
        .map(|i| message("orders", format!("p{i}").as_bytes(), 3))
        .collect();
    send(&mut c, &hmac(&w.a_publisher), messages).await;
    let consumer = w.s.create_key("acme", "consumer").await;
    let auth = hmac(&consumer);
    let mq = Some(pb::MessageQueue {
        topic: resource("orders"),
        id: 3,
        ..Default::default()
    });
    let mut stream = c
        .pull_message(request(
            &auth,
            None,
            pb::PullMessageRequest {
                group: resource("puller"),
                message_queue: mq.clone(),
                offset: 1,
                batch_size: 3,
                filter_expression: None,
                long_polling_timeout: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (mut bodies, mut next, mut status) = (Vec::new(), None, None);
    while let Some(item) = stream.message().await.unwrap() {
        match item.content {
            Some(pb::pull_message_response::Content::Message(m)) => bodies.push(m.body),
            Some(pb::pull_message_response::Content::NextOffset(n)) => next = Some(n),
            Some(pb::pull_message_response::Content::Status(s)) => status = Some(s.code),
            None => {}
        }
    }
    assert_eq!(bodies, [b"p1".to_vec(), b"p2".to_vec(), b"p3".to_vec()]);
    assert_eq!((next, status), (Some(4), Some(Code::Ok as i32)));

    let got = c
        .get_offset(request(
            &auth,
            None,
            pb::GetOffsetRequest {
                group: resource("puller"),
                message_queue: mq.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&got.status), Code::OffsetNotFound);
    let updated = c
        .update_offset(request(
            &auth,
            None,
            pb::UpdateOffsetRequest {
                group: resource("puller"),
                message_queue: mq.clone(),
                offset: 4,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&updated.status), Code::Ok);
    let got = c
        .get_offset(request(
            &auth,
            None,
            pb::GetOffsetRequest {
                group: resource("puller"),
                message_queue: mq.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((code(&got.status), got.offset), (Code::Ok, 4));
    let beyond = c
        .update_offset(request(
            &auth,
            None,
            pb::UpdateOffsetRequest {
                group: resource("puller"),
                message_queue: mq.clone(),
                offset: 99,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&beyond.status), Code::BadRequest);
    for (policy, expected) in [
        (pb::QueryOffsetPolicy::Beginning, 0),
        (pb::QueryOffsetPolicy::End, 5),
    ] {
        let q = c
            .query_offset(request(
                &auth,
                None,
                pb::QueryOffsetRequest {
                    message_queue: mq.clone(),
                    query_offset_policy: policy as i32,
                    timestamp: None,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (code(&q.status), q.offset),
            (Code::Ok, expected),
            "{policy:?}"
        );
    }
    let q = c
        .query_offset(request(
            &auth,
            None,
            pb::QueryOffsetRequest {
                message_queue: mq.clone(),
                query_offset_policy: pb::QueryOffsetPolicy::Timestamp as i32,
                timestamp: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: 0,
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((code(&q.status), q.offset), (Code::Ok, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_spans_the_topic_and_a_terminating_client_gets_its_long_poll_back() {
    let w = world().await;
    w.a_admin
        .post_json("/v1/groups", &json!({"name": "spread"}))
        .await
        .expect(201);
    let mut c = client(&w.s).await;
    let consumer = w.s.create_key("acme", "consumer").await;
    let auth = hmac(&consumer);
    // Sent to queue 3; received through a request that names queue 0, as
    // the official SDKs do when they rotate over the route.
    let sent = send(
        &mut c,
        &hmac(&w.a_publisher),
        vec![message("orders", b"far", 3)],
    )
    .await;
    assert_eq!(code(&sent.status), Code::Ok);
    let (got, status) = receive(&mut c, &auth, receive_request("spread", "orders", 0, 8)).await;
    assert_eq!(status, Code::Ok as i32);
    assert_eq!(got.len(), 1);
    let sys = got[0].system_properties.clone().unwrap();
    assert_eq!(sys.queue_id, 3, "the message's own queue is reported");

    // A push consumer's nack: the Node.js SDK sends its retry backoff of
    // "1" second as 1 ms. Accepted; the message comes straight back.
    let changed = change_invisible(
        &mut c,
        &auth,
        "spread",
        sys.receipt_handle.clone().unwrap(),
        std::time::Duration::from_millis(1),
    )
    .await;
    assert_eq!(code(&changed.status), Code::Ok);
    let (again, _) = receive(&mut c, &auth, receive_request("spread", "orders", 2, 8)).await;
    assert_eq!(again.len(), 1, "redelivered at once");
    let again_sys = again[0].system_properties.clone().unwrap();
    assert_eq!(again_sys.delivery_attempt, Some(2));

    // A long poll of a client that then announces its termination ends at
    // once, with nothing received.
    let mut long = receive_request("spread", "orders", 1, 8);
    long.long_polling_timeout = Some(prost_types::Duration {
        seconds: 20,
        nanos: 0,
    });
    fn with_client<T>(auth: &Auth, r: T) -> tonic::Request<T> {
        let mut r = request(auth, None, r);
        r.metadata_mut()
            .insert("x-mq-client-id", "node@1@test".parse().unwrap());
        r
    }
    let mut waiting_client = c.clone();
    let waiting_auth = auth.clone();
    let started = std::time::Instant::now();
    let waiting = tokio::spawn(async move {
        let mut stream = waiting_client
            .receive_message(with_client(&waiting_auth, long))
            .await
            .unwrap()
            .into_inner();
        let mut n = 0;
        while let Some(item) = stream.message().await.unwrap() {
            if let Some(pb::receive_message_response::Content::Message(_)) = item.content {
                n += 1;
            }
        }
        (n, started.elapsed())
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Another tenant's client of the same id cannot end it.
    let other = c
        .notify_client_termination(with_client(
            &hmac(&w.b_consumer),
            pb::NotifyClientTerminationRequest { group: None },
        ))
        .await;
    assert!(other.is_ok());
    // Nor by naming this tenant's group from its own namespace.
    let foreign = c
        .notify_client_termination(with_client(
            &hmac(&w.b_consumer),
            pb::NotifyClientTerminationRequest {
                group: Some(pb::Resource {
                    resource_namespace: "acme".into(),
                    name: "spread".into(),
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&foreign.status), Code::Forbidden);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "still waiting after the other tenant's call"
    );
    let done = c
        .notify_client_termination(with_client(
            &auth,
            pb::NotifyClientTerminationRequest {
                group: resource("spread"),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&done.status), Code::Ok);
    let (n, took) = waiting.await.unwrap();
    assert_eq!(n, 0);
    assert!(
        took < std::time::Duration::from_secs(10),
        "ended by the termination: {took:?}"
    );

    // A client that cancels its long poll (here: its deadline passes) does
    // not leave a receive behind to take the next message.
    let mut cancelled = request(&auth, None, {
        let mut r = receive_request("spread", "orders", 1, 8);
        r.long_polling_timeout = Some(prost_types::Duration {
            seconds: 20,
            nanos: 0,
        });
        r
    });
    cancelled.set_timeout(std::time::Duration::from_millis(300));
    let gone = c.receive_message(cancelled).await;
    if let Ok(stream) = gone {
        let mut stream = stream.into_inner();
        while let Ok(Some(_)) = stream.message().await {}
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    send(
        &mut c,
        &hmac(&w.a_publisher),
        vec![message("orders", b"after", 2)],
    )
    .await;
    let (next, _) = receive(&mut c, &auth, receive_request("spread", "orders", 0, 8)).await;
    let bodies: Vec<&[u8]> = next.iter().map(|m| m.body.as_slice()).collect();
    assert_eq!(
        bodies,
        [b"after".as_slice()],
        "not taken by the cancelled call"
    );
}

/// Both adapters run one pipeline: the same refusal carries the same code
/// name and message over HTTP and gRPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_refuses_alike_over_http_and_grpc() {
    let w = world().await;
    let mut c = client(&w.s).await;
    // A namespace (gRPC) or x-strata-tenant (HTTP) naming another tenant.
    let http = w
        .b_publisher
        .send(
            w.b_publisher
                .request("get", "/v1/topics")
                .header("x-strata-tenant", "acme"),
        )
        .await;
    http.expect_error(403, "PERMISSION_DENIED");
    let http_message = http.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    let grpc = c
        .send_message(request(
            &hmac(&w.b_publisher),
            Some("acme"),
            pb::SendMessageRequest {
                messages: vec![message("orders", b"x", 0)],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&grpc.status), Code::Forbidden);
    let grpc_message = grpc.status.unwrap().message;
    assert!(
        grpc_message.starts_with("PERMISSION_DENIED: "),
        "{grpc_message}"
    );
    let tail = |m: &str| m.split_once("names ").map(|(_, t)| t.to_string());
    assert_eq!(
        tail(&grpc_message),
        tail(&http_message),
        "{grpc_message} / {http_message}"
    );

    // A publish rate of one message per second: HTTP takes the token, then
    // gRPC is refused with the same code name, and the reverse.
    w.s.put_json(
        "/v1/plans/trickle",
        &json!({ "publish_messages_per_sec": 1 }),
    )
    .await
    .expect(200);
    w.s.put_json("/v1/tenants/acme/plan", &json!({ "plan": "trickle" }))
        .await
        .expect(200);
    let publish = json!({ "messages": [{ "body": "x" }] });
    let mut refusals = (None, None);
    for _ in 0..10 {
        let over_http = w
            .a_publisher
            .post_json("/v1/topics/orders/messages", &publish)
            .await;
        if over_http.status == 429 {
            refusals.0 = Some(over_http.json()["error"]["code"].clone());
        }
        let over_grpc = send(
            &mut c,
            &hmac(&w.a_publisher),
            vec![message("orders", b"x", 0)],
        )
        .await;
        if code(&over_grpc.status) == Code::TooManyRequests {
            refusals.1 = Some(over_grpc.status.unwrap().message);
        }
        if refusals.0.is_some() && refusals.1.is_some() {
            break;
        }
    }
    assert_eq!(refusals.0, Some(json!("TOO_MANY_REQUESTS")));
    let grpc_refusal = refusals.1.expect("gRPC met the same publish rate");
    assert!(
        grpc_refusal.starts_with("TOO_MANY_REQUESTS: "),
        "{grpc_refusal}"
    );
}

/// A receive's answer that the transport drops before taking its messages
/// (the client cancelled after the receive committed them) hands them back
/// to the group at once; they stayed invisible for their whole invisible
/// time, up to 12 hours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_a_receive_never_sent_go_back_to_the_group_at_once() {
    use strata_engine::{PublishMessage, ReceiveRequest, TagFilter};
    use strata_frontend::grpc::unsent::ReceiveStream;
    use tokio_stream::StreamExt;
    let w = world().await;
    let engine = w.s.running().engine.clone();
    engine.create_group("acme", "unsent").await.unwrap();
    let messages = ["taken", "left"]
        .into_iter()
        .map(|body| PublishMessage {
            queue: Some(1),
            message: strata_common::Message {
                body: bytes::Bytes::from(body),
                ..Default::default()
            },
        })
        .collect();
    engine.publish("acme", "orders", messages).await.unwrap();
    let filter = TagFilter::All;
    let receive = || {
        engine.receive(ReceiveRequest {
            tenant: "acme",
            group: "unsent",
            topic: "orders",
            queue: None,
            max_messages: 10,
            invisible: std::time::Duration::from_secs(3600),
            wait: std::time::Duration::ZERO,
            filter: &filter,
            max_body_bytes: None,
        })
    };
    let popped = receive().await.unwrap();
    assert_eq!(popped.len(), 2);
    let items = popped
        .iter()
        .map(|p| pb::ReceiveMessageResponse {
            content: Some(pb::receive_message_response::Content::Message(
                pb::Message {
                    topic: resource("orders"),
                    system_properties: Some(pb::SystemProperties {
                        receipt_handle: Some(p.handle.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )),
        })
        .collect();
    let mut answer = ReceiveStream::new(items, engine.clone(), "acme", "unsent");
    // The transport takes the first message, then the client is gone.
    assert!(answer.next().await.is_some());
    drop(answer);
    let mut again = Vec::new();
    for _ in 0..200 {
        again = receive().await.unwrap();
        if !again.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let bodies: Vec<_> = again.iter().map(|p| &p.message.message.body[..]).collect();
    assert_eq!(bodies, [b"left"], "only the unsent message comes back");
    assert_eq!(again[0].attempt, 2);
}
