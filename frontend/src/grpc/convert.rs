//! RocketMQ messages ↔ Strata messages.
//!
//! Strata's message has an id, one key, a tag, properties and a body. The
//! RocketMQ system properties Strata keeps beyond those travel as
//! properties with the reserved prefix [`RESERVED_PREFIX`]; producers may
//! not set such properties themselves.

use bytes::Bytes;
use strata_common::{Message, limits};
use strata_engine::{MessageType, PublishMessage};

use crate::grpc::failure::Failure;
use crate::grpc::pb::{self, Code};

/// Prefix of the properties that hold RocketMQ system properties.
pub const RESERVED_PREFIX: &str = strata_common::RESERVED_PROPERTY_PREFIX;
/// All keys, space-separated, when a message has more than one.
pub const PROP_KEYS: &str = strata_common::KEYS_PROPERTY;
/// The FIFO message group.
pub const PROP_GROUP: &str = strata_common::MESSAGE_GROUP_PROPERTY;
/// When the producer created the message (Unix ms).
pub const PROP_BORN_MS: &str = "__mq.born_ms";
/// The producer's host.
pub const PROP_BORN_HOST: &str = "__mq.born_host";

/// Seconds past which a delivery time is a millisecond value sent as
/// seconds: the year 5138. Now in milliseconds is about 1.8e12, and a real
/// delivery time in seconds, at most 366 days ahead, about 1.8e9.
const MILLISECONDS_AS_SECONDS: i64 = 100_000_000_000;

/// A protobuf timestamp in Unix milliseconds, saturating: a far-off
/// time from a client must not wrap into the past.
pub fn timestamp_ms(t: &prost_types::Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(t.nanos / 1_000_000))
}

fn declared_type(index: usize, m: &pb::Message) -> Result<pb::MessageType, Failure> {
    let Some(sys) = m.system_properties.as_ref() else {
        return Ok(pb::MessageType::Unspecified);
    };
    pb::MessageType::try_from(sys.message_type).map_err(|_| {
        Failure::bad_request(format!(
            "message {index}: message type {} is none of NORMAL, FIFO, DELAY and TRANSACTION",
            sys.message_type
        ))
    })
}

/// Checks that `m` may be published to a topic accepting `accepts`. An
/// empty message group is no group, as everywhere else.
fn check_type(index: usize, m: &pb::Message, accepts: MessageType) -> Result<(), Failure> {
    let sys = m.system_properties.as_ref();
    let declared = declared_type(index, m)?;
    let has_group = sys
        .and_then(|s| s.message_group.as_deref())
        .is_some_and(|g| !g.is_empty());
    let has_delivery = sys.and_then(|s| s.delivery_timestamp.as_ref()).is_some();
    let conflict = |why: String| {
        Err(Failure::new(
            Code::MessagePropertyConflictWithType,
            format!("message {index}: {why}"),
        ))
    };
    match accepts {
        MessageType::Normal => {
            if !matches!(
                declared,
                pb::MessageType::Normal | pb::MessageType::Unspecified
            ) {
                return conflict(format!(
                    "the topic accepts NORMAL messages, not {}",
                    declared.as_str_name()
                ));
            }
            if has_group || has_delivery {
                return conflict(
                    "a NORMAL message carries neither a message group nor a delivery time".into(),
                );
            }
            Ok(())
        }
        MessageType::Fifo => {
            if declared != pb::MessageType::Fifo || !has_group {
                return conflict(
                    "the topic accepts FIFO messages, each with a message group".into(),
                );
            }
            if has_delivery {
                return conflict("a FIFO message carries no delivery time".into());
            }
            Ok(())
        }
        MessageType::Delay => {
            if declared != pb::MessageType::Delay || !has_delivery {
                return conflict(
                    "the topic accepts DELAY messages, each with a delivery time".into(),
                );
            }
            if has_group {
                return conflict("a DELAY message carries no message group".into());
            }
            Ok(())
        }
        MessageType::Transaction => {
            if declared != pb::MessageType::Transaction {
                return conflict("the topic accepts TRANSACTION messages".into());
            }
            if has_group || has_delivery {
                return conflict(
                    "a TRANSACTION message carries neither a message group nor a delivery time"
                        .into(),
                );
            }
            Ok(())
        }
    }
}

/// How far the GZIP bodies of one SendMessage may inflate: each to the
/// message limit, all together to the request limit (a request of small
/// bombs must not take gigabytes).
#[derive(Debug, Clone, Copy)]
pub struct InflateBudget {
    pub per_message: usize,
    pub remaining: usize,
}

/// A body as the client encoded it, as Strata stores it: GZIP inflated
/// (the Java SDK compresses bodies over 4 KiB; consumers get them as
/// IDENTITY), within `budget`.
fn decoded_body(
    index: usize,
    body: Vec<u8>,
    encoding: i32,
    budget: &mut InflateBudget,
) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    match pb::Encoding::try_from(encoding) {
        Ok(pb::Encoding::Unspecified | pb::Encoding::Identity) => Ok(body),
        Ok(pb::Encoding::Gzip) => {
            let cap = budget.per_message.min(budget.remaining);
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .take(cap as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| {
                    Failure::new(
                        Code::MessageCorrupted,
                        format!("message {index}: its GZIP body does not inflate: {e}"),
                    )
                })?;
            if out.len() > budget.per_message {
                return Err(Failure::new(
                    Code::MessageBodyTooLarge,
                    format!(
                        "message {index}: its body inflates to more than {} bytes",
                        budget.per_message
                    ),
                ));
            }
            if out.len() > budget.remaining {
                return Err(Failure::new(
                    Code::PayloadTooLarge,
                    format!(
                        "message {index}: the request's bodies inflate past the request size limit"
                    ),
                ));
            }
            budget.remaining -= out.len();
            Ok(out)
        }
        Err(_) => Err(Failure::bad_request(format!(
            "message {index}: body encoding {encoding} is neither IDENTITY nor GZIP"
        ))),
    }
}

/// A RocketMQ message as a Strata publish, checked against the topic's
/// message type and its queue count, with its delivery time (Unix ms) if
/// it is a DELAY message. Its `queue_id` is kept only when
/// `client_picks_queues` (see [`client_picks_queues`]).
pub fn to_publish(
    index: usize,
    m: pb::Message,
    accepts: MessageType,
    queues: u32,
    client_picks_queues: bool,
    budget: &mut InflateBudget,
) -> Result<(PublishMessage, Option<i64>), Failure> {
    check_type(index, &m, accepts)?;
    // RocketMQ's proxy refuses these; the engine would refuse the
    // properties too, with the generic code. An empty body is BAD_REQUEST,
    // not MESSAGE_BODY_EMPTY (41302): the Rust SDK 5.0.0 panics on that
    // code (see `failure.rs`).
    if m.body.is_empty() {
        return Err(Failure::new(
            Code::BadRequest,
            format!("message {index}: the body is empty"),
        ));
    }
    if m.user_properties.len() > limits::MAX_PROPERTIES {
        return Err(Failure::new(
            Code::MessagePropertiesTooLarge,
            format!(
                "message {index}: has {} properties, more than {}",
                m.user_properties.len(),
                limits::MAX_PROPERTIES
            ),
        ));
    }
    if let Some((name, _)) = m
        .user_properties
        .iter()
        .find(|(_, value)| value.len() > limits::MAX_PROPERTY_VALUE_LEN)
    {
        return Err(Failure::new(
            Code::MessagePropertiesTooLarge,
            format!(
                "message {index}: property {name:?} is longer than {} bytes",
                limits::MAX_PROPERTY_VALUE_LEN
            ),
        ));
    }
    let mut sys = m.system_properties.unwrap_or_default();
    let body = decoded_body(index, m.body, sys.body_encoding, budget)?;
    // Some SDKs (Node.js) send empty strings among the keys; they name
    // nothing a lookup could find.
    sys.keys.retain(|k| !k.is_empty());
    if let Some(t) = &sys.delivery_timestamp
        && t.seconds > MILLISECONDS_AS_SECONDS
    {
        return Err(Failure::bad_request(format!(
            "message {index}: delivery_timestamp.seconds {} is a time in milliseconds: the \
             protobuf Timestamp counts seconds (the Python SDK 5.1.2 sends \
             Message.delivery_timestamp as given: set it in seconds)",
            t.seconds
        )));
    }
    let deliver_at = sys.delivery_timestamp.as_ref().map(timestamp_ms);
    let mut properties: Vec<(String, String)> = Vec::with_capacity(m.user_properties.len() + 3);
    for (name, value) in m.user_properties {
        if name.starts_with(RESERVED_PREFIX) {
            return Err(Failure::new(
                Code::IllegalMessagePropertyKey,
                format!(
                    "message {index}: property names starting with {RESERVED_PREFIX:?} are reserved"
                ),
            ));
        }
        if let Some(problem) = limits::property_name_problem(&name) {
            return Err(Failure::new(
                Code::IllegalMessagePropertyKey,
                format!("message {index}: {problem}"),
            ));
        }
        properties.push((name, value));
    }
    properties.sort();
    if let Some(problem) = sys
        .message_group
        .as_deref()
        .filter(|g| !g.is_empty())
        .and_then(limits::message_group_problem)
    {
        return Err(Failure::new(
            Code::IllegalMessageGroup,
            format!("message {index}: {problem}"),
        ));
    }
    if sys.keys.len() > 1 {
        let joined = sys.keys.join(" ");
        if joined.len() > limits::MAX_PROPERTY_VALUE_LEN {
            return Err(Failure::new(
                Code::IllegalMessageKey,
                format!(
                    "message {index}: its keys, joined with spaces, are longer than {} bytes",
                    limits::MAX_PROPERTY_VALUE_LEN
                ),
            ));
        }
        properties.push((PROP_KEYS.into(), joined));
    }
    let grouped = sys.message_group.as_ref().is_some_and(|g| !g.is_empty());
    if let Some(group) = sys.message_group.filter(|g| !g.is_empty()) {
        properties.push((PROP_GROUP.into(), group));
    }
    if let Some(born) = sys.born_timestamp {
        let ms = timestamp_ms(&born);
        properties.push((PROP_BORN_MS.into(), ms.to_string()));
    }
    if !sys.born_host.is_empty() {
        properties.push((PROP_BORN_HOST.into(), sys.born_host));
    }
    // Each field with its own code, as RocketMQ's proxy answers; the
    // engine would refuse them too, with the generic one.
    let field_problem = |code: Code, problem: Option<String>| match problem {
        Some(problem) => Err(Failure::new(code, format!("message {index}: {problem}"))),
        None => Ok(()),
    };
    if let Some(tag) = sys.tag.as_deref().filter(|t| !t.is_empty()) {
        field_problem(Code::IllegalMessageTag, limits::tag_problem(tag))?;
    }
    for key in &sys.keys {
        field_problem(Code::IllegalMessageKey, limits::key_problem(key))?;
    }
    if !sys.message_id.is_empty() {
        field_problem(Code::IllegalMessageId, limits::id_problem(&sys.message_id))?;
        if sys.message_id.len() > limits::MAX_MESSAGE_ID_LEN {
            field_problem(
                Code::IllegalMessageId,
                Some(format!(
                    "message id is longer than {} bytes",
                    limits::MAX_MESSAGE_ID_LEN
                )),
            )?;
        }
    }
    // A message group's queue is the server's to choose, from the group
    // alone (as RocketMQ's proxy does): producers that pick queues their
    // own way, or not at all, would otherwise split a group across queues
    // and its order with it.
    let queue = u32::try_from(sys.queue_id)
        .ok()
        .filter(|q| *q < queues && !grouped && client_picks_queues);
    let publish = PublishMessage {
        queue,
        message: Message {
            id: sys.message_id,
            key: sys.keys.into_iter().next(),
            tag: sys.tag.filter(|t| !t.is_empty()),
            properties,
            body: Bytes::from(body),
        },
    };
    Ok((publish, deliver_at))
}

/// Whether a SendMessage's `queue_id` is the client's choice. RocketMQ's
/// proxy ignores the field and picks the queue itself; the Java, C#, C++
/// and Rust SDKs fill it with the queue they chose from the route. The
/// Python and Go SDKs never set it, and the Node.js SDK (language "HTTP")
/// keeps only the route's queues whose id is 0, so their 0 would put every
/// message of a many-queue topic on queue 0. For them the server picks, as
/// for an HTTP publish without a queue.
pub fn client_picks_queues(metadata: &tonic::metadata::MetadataMap) -> bool {
    let language = metadata
        .get("x-mq-language")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    !matches!(
        language.to_ascii_uppercase().as_str(),
        "PYTHON" | "GO" | "GOLANG" | "HTTP"
    )
}

/// The protocol's name for a topic's message type.
pub fn message_type(t: MessageType) -> pb::MessageType {
    match t {
        MessageType::Normal => pb::MessageType::Normal,
        MessageType::Fifo => pb::MessageType::Fifo,
        MessageType::Delay => pb::MessageType::Delay,
        MessageType::Transaction => pb::MessageType::Transaction,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(t: pb::MessageType, group: Option<&str>) -> pb::Message {
        pb::Message {
            topic: None,
            user_properties: [("b".to_string(), "2".to_string()), ("a".into(), "1".into())]
                .into_iter()
                .collect(),
            system_properties: Some(pb::SystemProperties {
                tag: Some("TagA".into()),
                keys: vec!["k1".into(), "k2".into()],
                message_id: "01ABC".into(),
                message_type: t as i32,
                message_group: group.map(str::to_string),
                queue_id: 1,
                born_host: "host-1".into(),
                ..Default::default()
            }),
            body: b"hello".to_vec(),
        }
    }

    fn budget() -> InflateBudget {
        InflateBudget {
            per_message: 1 << 20,
            remaining: 1 << 24,
        }
    }

    fn publish(m: pb::Message, t: MessageType, queues: u32) -> Result<PublishMessage, Failure> {
        to_publish(0, m, t, queues, true, &mut budget()).map(|(p, _)| p)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_bodies_are_stored_inflated_within_the_budget() {
        let gzipped = |data: &[u8]| {
            let mut m = msg(pb::MessageType::Normal, None);
            m.body = gzip(data);
            if let Some(s) = m.system_properties.as_mut() {
                s.body_encoding = pb::Encoding::Gzip as i32;
            }
            m
        };
        let p = publish(gzipped(b"hello, gzip"), MessageType::Normal, 4).unwrap();
        assert_eq!(&p.message.body[..], b"hello, gzip");

        // Each body to the message limit, all of them to the request's.
        let mut b = InflateBudget {
            per_message: 1000,
            remaining: 1500,
        };
        let mut send = |m| to_publish(0, m, MessageType::Normal, 4, true, &mut b);
        let e = send(gzipped(&[7; 1001])).unwrap_err();
        assert_eq!(e.code, Code::MessageBodyTooLarge);
        send(gzipped(&[7; 1000])).unwrap();
        let e = send(gzipped(&[7; 501])).unwrap_err();
        assert_eq!(e.code, Code::PayloadTooLarge);
        send(gzipped(&[7; 500])).unwrap();

        let mut bad = gzipped(b"x");
        bad.body = b"not gzip at all".to_vec();
        let e = publish(bad, MessageType::Normal, 4).unwrap_err();
        assert_eq!(e.code, Code::MessageCorrupted);
        let mut unknown = msg(pb::MessageType::Normal, None);
        if let Some(s) = unknown.system_properties.as_mut() {
            s.body_encoding = 9;
        }
        let e = publish(unknown, MessageType::Normal, 4).unwrap_err();
        assert_eq!(e.code, Code::BadRequest);
    }

    #[test]
    fn normal_messages_keep_what_strata_stores() {
        let (p, at) = to_publish(
            0,
            msg(pb::MessageType::Normal, None),
            MessageType::Normal,
            4,
            true,
            &mut budget(),
        )
        .unwrap();
        assert_eq!(at, None);
        assert_eq!(p.queue, Some(1));
        assert_eq!(p.message.id, "01ABC");
        assert_eq!(p.message.key.as_deref(), Some("k1"));
        assert_eq!(p.message.tag.as_deref(), Some("TagA"));
        assert_eq!(&p.message.body[..], b"hello");
        let props: Vec<_> = p
            .message
            .properties
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(props, ["a", "b", PROP_KEYS, PROP_BORN_HOST]);
        // A queue the topic does not have falls back to Strata's routing.
        let p = publish(msg(pb::MessageType::Normal, None), MessageType::Normal, 1).unwrap();
        assert_eq!(p.queue, None);
    }

    #[test]
    fn types_must_match_the_topic() {
        let conflict = Code::MessagePropertyConflictWithType;
        let e = publish(
            msg(pb::MessageType::Fifo, Some("g")),
            MessageType::Normal,
            4,
        );
        assert_eq!(e.unwrap_err().code, conflict);
        let e = publish(msg(pb::MessageType::Fifo, None), MessageType::Fifo, 4);
        assert_eq!(e.unwrap_err().code, conflict);
        let p = publish(msg(pb::MessageType::Fifo, Some("g")), MessageType::Fifo, 4).unwrap();
        assert!(
            p.message
                .properties
                .contains(&(PROP_GROUP.into(), "g".into()))
        );
        // The group picks the queue, not the producer's queue id.
        assert_eq!(p.queue, None);
        let e = publish(msg(pb::MessageType::Delay, None), MessageType::Delay, 4);
        assert_eq!(
            e.unwrap_err().code,
            conflict,
            "a DELAY message needs a delivery time"
        );
        let mut delayed = msg(pb::MessageType::Delay, None);
        if let Some(s) = delayed.system_properties.as_mut() {
            s.delivery_timestamp = Some(prost_types::Timestamp {
                seconds: 5,
                nanos: 2_000_000,
            });
        }
        let (_, at) = to_publish(0, delayed, MessageType::Delay, 4, true, &mut budget()).unwrap();
        assert_eq!(at, Some(5002));
        // Milliseconds in the seconds field (the Python SDK 5.1.2) are
        // refused saying so; the year 5138 is the first such time.
        for (seconds, refused) in [
            (1_796_678_253_599, true),
            (MILLISECONDS_AS_SECONDS + 1, true),
            (MILLISECONDS_AS_SECONDS, false),
            (1_796_678_253, false),
        ] {
            let mut delayed = msg(pb::MessageType::Delay, None);
            if let Some(s) = delayed.system_properties.as_mut() {
                s.delivery_timestamp = Some(prost_types::Timestamp { seconds, nanos: 0 });
            }
            let e = to_publish(0, delayed, MessageType::Delay, 4, true, &mut budget()).err();
            assert_eq!(e.is_some(), refused, "{seconds}: {e:?}");
            if let Some(e) = e {
                assert_eq!(e.code, Code::BadRequest);
                assert!(e.message.contains("in milliseconds"), "{}", e.message);
            }
        }
        publish(
            msg(pb::MessageType::Transaction, None),
            MessageType::Transaction,
            4,
        )
        .unwrap();
        let e = publish(
            msg(pb::MessageType::Normal, None),
            MessageType::Transaction,
            4,
        );
        assert_eq!(e.unwrap_err().code, conflict);
    }

    #[test]
    fn empty_bodies_and_large_properties_get_their_own_codes() {
        let mut m = msg(pb::MessageType::Normal, None);
        m.body.clear();
        let e = publish(m, MessageType::Normal, 4).unwrap_err();
        assert_eq!(e.code, Code::BadRequest);
        assert!(e.message.contains("empty"), "{}", e.message);

        let mut m = msg(pb::MessageType::Normal, None);
        m.user_properties = (0..limits::MAX_PROPERTIES)
            .map(|i| (format!("p{i}"), "v".to_string()))
            .collect();
        publish(m.clone(), MessageType::Normal, 4).unwrap();
        m.user_properties.insert("one-more".into(), "v".into());
        let e = publish(m, MessageType::Normal, 4).unwrap_err();
        assert_eq!(e.code, Code::MessagePropertiesTooLarge);

        let mut m = msg(pb::MessageType::Normal, None);
        let longest = "v".repeat(limits::MAX_PROPERTY_VALUE_LEN);
        m.user_properties.insert("long".into(), longest.clone());
        publish(m.clone(), MessageType::Normal, 4).unwrap();
        m.user_properties.insert("long".into(), longest + "v");
        let e = publish(m, MessageType::Normal, 4).unwrap_err();
        assert_eq!(e.code, Code::MessagePropertiesTooLarge);
    }

    #[test]
    fn each_field_gets_its_own_code() {
        // An empty message group is no group.
        let e = publish(msg(pb::MessageType::Fifo, Some("")), MessageType::Fifo, 4).unwrap_err();
        assert_eq!(e.code, Code::MessagePropertyConflictWithType);
        publish(
            msg(pb::MessageType::Normal, Some("")),
            MessageType::Normal,
            4,
        )
        .unwrap();
        // A type no client can mean.
        let mut m = msg(pb::MessageType::Normal, None);
        if let Some(s) = m.system_properties.as_mut() {
            s.message_type = 99;
        }
        assert_eq!(
            publish(m, MessageType::Normal, 4).unwrap_err().code,
            Code::BadRequest
        );
        // Keys that together outgrow the property that holds them.
        let mut m = msg(pb::MessageType::Normal, None);
        if let Some(s) = m.system_properties.as_mut() {
            s.keys = (0..10_000).map(|i| format!("k{i}")).collect();
        }
        let e = publish(m, MessageType::Normal, 4).unwrap_err();
        assert_eq!(e.code, Code::IllegalMessageKey);
        assert!(!e.message.contains("__mq"), "{}", e.message);
        // Ids to 128 bytes.
        let mut m = msg(pb::MessageType::Normal, None);
        if let Some(s) = m.system_properties.as_mut() {
            s.message_id = "i".repeat(limits::MAX_MESSAGE_ID_LEN);
        }
        publish(m.clone(), MessageType::Normal, 4).unwrap();
        if let Some(s) = m.system_properties.as_mut() {
            s.message_id.push('i');
        }
        assert_eq!(
            publish(m, MessageType::Normal, 4).unwrap_err().code,
            Code::IllegalMessageId
        );
    }

    #[test]
    fn empty_keys_are_dropped() {
        let mut m = msg(pb::MessageType::Normal, None);
        if let Some(s) = m.system_properties.as_mut() {
            s.keys = vec!["".into(), "k1".into(), "".into(), "k2".into()];
        }
        let p = publish(m, MessageType::Normal, 4).unwrap();
        assert_eq!(p.message.key.as_deref(), Some("k1"));
        assert!(
            p.message
                .properties
                .contains(&(PROP_KEYS.into(), "k1 k2".into()))
        );
        let mut m = msg(pb::MessageType::Normal, None);
        if let Some(s) = m.system_properties.as_mut() {
            s.keys = vec!["".into(), "k1".into()];
        }
        let p = publish(m, MessageType::Normal, 4).unwrap();
        assert_eq!(p.message.key.as_deref(), Some("k1"));
        assert!(p.message.properties.iter().all(|(k, _)| k != PROP_KEYS));
    }

    #[test]
    fn reserved_property_names_are_refused() {
        let mut m = msg(pb::MessageType::Normal, None);
        m.user_properties.insert("__mq.group".into(), "x".into());
        let e = publish(m, MessageType::Normal, 4).unwrap_err();
        assert_eq!(e.code, Code::IllegalMessagePropertyKey);
    }
}
