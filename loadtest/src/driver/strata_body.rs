//! The JSON body of a Strata publish request, built once and reused: the
//! `publish` scenario encodes its bodies up front so that encoding is not
//! part of what it measures.

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde::Serialize;

#[derive(Debug, Serialize)]
struct PublishBody<'a> {
    messages: Vec<PublishMessage<'a>>,
}

#[derive(Debug, Serialize)]
struct PublishMessage<'a> {
    // First: [`route_to_queue`] finds messages by it.
    body_base64: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    deliver_at_ms: Option<i64>,
}

/// The JSON body of a publish request carrying `payloads` as base64, each
/// due at `deliver_at_ms` (Unix ms) if given.
pub fn encode_publish_body(payloads: &[Vec<u8>], deliver_at_ms: Option<i64>) -> Result<Bytes> {
    let encoded: Vec<String> = payloads.iter().map(|p| B64.encode(p)).collect();
    let body = PublishBody {
        messages: encoded
            .iter()
            .map(|b| PublishMessage {
                body_base64: b,
                deliver_at_ms,
            })
            .collect(),
    };
    Ok(Bytes::from(
        serde_json::to_vec(&body).context("cannot encode a publish body")?,
    ))
}

/// `body` (from [`encode_publish_body`]) with every message routed to `queue`.
/// Base64 text holds no `{` or `"`, so the only matches are message objects.
pub fn route_to_queue(body: &[u8], queue: u32) -> Bytes {
    const KEY: &[u8] = br#"{"body_base64":"#;
    let insert = format!(r#"{{"queue":{queue},"body_base64":"#);
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut rest = body;
    while let Some(at) = rest.windows(KEY.len()).position(|w| w == KEY) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(insert.as_bytes());
        rest = &rest[at + KEY.len()..];
    }
    out.extend_from_slice(rest);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_body_round_trips() {
        let body = encode_publish_body(&[vec![0, 1, 2], vec![255]], None).expect("encode");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["messages"][0]["body_base64"], "AAEC");
        assert_eq!(v["messages"][1]["body_base64"], "/w==");
        assert!(v["messages"][0].get("deliver_at_ms").is_none());
    }

    #[test]
    fn delayed_bodies_carry_their_time_and_still_route() {
        let body =
            encode_publish_body(&[vec![1], vec![2]], Some(1_800_000_000_000)).expect("encode");
        let routed = route_to_queue(&body, 3);
        let v: serde_json::Value = serde_json::from_slice(&routed).expect("json");
        for m in v["messages"].as_array().expect("messages") {
            assert_eq!(m["deliver_at_ms"], 1_800_000_000_000_i64);
            assert_eq!(m["queue"], 3);
        }
    }

    #[test]
    fn routing_to_a_queue() {
        let body = encode_publish_body(&[vec![0, 1, 2], vec![255]], None).expect("encode");
        let routed = route_to_queue(&body, 7);
        let v: serde_json::Value = serde_json::from_slice(&routed).expect("json");
        assert_eq!(v["messages"][0]["queue"], 7);
        assert_eq!(v["messages"][0]["body_base64"], "AAEC");
        assert_eq!(v["messages"][1]["queue"], 7);
        assert_eq!(v["messages"][1]["body_base64"], "/w==");
    }
}
