//! NATS JetStream over the NATS text protocol, written for the load
//! tester. A topic with N queues is one stream `<topic>` with subjects
//! `<topic>.<queue>`; a publish waits for the PubAck of every message of the
//! batch; readers are ephemeral pull consumers (ack policy none) filtered
//! to one queue's subject.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::RequestError;
use super::wire::{self, Parse, Wire};

/// One message (or status) received on a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    pub subject: String,
    pub sid: u64,
    pub reply: Option<String>,
    /// The header block of an HMSG (starts with "NATS/1.0").
    pub headers: Option<Vec<u8>>,
    pub payload: Vec<u8>,
}

impl Msg {
    /// The status code of a header-only status message ("NATS/1.0 408 ...").
    pub fn status(&self) -> Option<u16> {
        let h = self.headers.as_ref()?;
        let (first, _) = wire::line(h)?;
        let text = std::str::from_utf8(first).ok()?;
        text.split_whitespace().nth(1)?.parse().ok()
    }

    /// A header value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        let h = std::str::from_utf8(self.headers.as_ref()?).ok()?;
        h.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// A frame from the server.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Msg(Msg),
    Ping,
    Pong,
    Ok,
    Err(String),
    Info,
}

/// Parses one server frame from the front of `buf`.
pub fn parse(buf: &[u8]) -> Parse<Frame> {
    let Some((head, used)) = wire::line(buf) else {
        return Parse::Incomplete;
    };
    let text = String::from_utf8_lossy(head);
    let mut parts = text.split_ascii_whitespace();
    let op = parts.next().unwrap_or("").to_ascii_uppercase();
    let args: Vec<&str> = parts.collect();
    let simple = |f| Parse::Done(f, used);
    match op.as_str() {
        "PING" => simple(Frame::Ping),
        "PONG" => simple(Frame::Pong),
        "+OK" => simple(Frame::Ok),
        "INFO" => simple(Frame::Info),
        "-ERR" => simple(Frame::Err(args.join(" "))),
        "MSG" | "HMSG" => {
            let headers = op == "HMSG";
            let want = if headers { 4 } else { 3 };
            if args.len() != want && args.len() != want + 1 {
                return Parse::Invalid(format!("bad {op} line {text:?}"));
            }
            let reply = (args.len() == want + 1).then(|| args[2].to_string());
            let nums: Vec<Option<i64>> = args[args.len() - if headers { 2 } else { 1 }..]
                .iter()
                .map(|n| wire::int(n.as_bytes()))
                .collect();
            let (hlen, total) = match (headers, nums.as_slice()) {
                (true, [Some(h), Some(t)]) if *h >= 0 && t >= h => (*h as usize, *t as usize),
                (false, [Some(t)]) if *t >= 0 => (0, *t as usize),
                _ => return Parse::Invalid(format!("bad sizes in {text:?}")),
            };
            if total > wire::MAX_FRAME {
                return Parse::Invalid("NATS message too large".into());
            }
            if buf.len() < used + total + 2 {
                return Parse::Incomplete;
            }
            let data = &buf[used..used + total];
            let Ok(sid) = args[1].parse() else {
                return Parse::Invalid(format!("bad sid in {text:?}"));
            };
            Parse::Done(
                Frame::Msg(Msg {
                    subject: args[0].to_string(),
                    sid,
                    reply,
                    headers: headers.then(|| data[..hlen].to_vec()),
                    payload: data[hlen..].to_vec(),
                }),
                used + total + 2,
            )
        }
        _ => Parse::Invalid(format!("unknown NATS frame {text:?}")),
    }
}

#[derive(Debug, Deserialize)]
struct ApiReply {
    #[serde(default)]
    error: Option<ApiError>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    code: u16,
    #[serde(default)]
    description: String,
}

/// Subscription ids: replies to this connection's requests, and pulls.
const SID_REPLY: u64 = 1;
const SID_PULL: u64 = 2;

/// One NATS connection (used by one task at a time).
#[derive(Debug)]
pub struct NatsConn {
    wire: Wire,
    timeout: Duration,
    inbox: String,
    next_reply: u64,
}

impl NatsConn {
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, RequestError> {
        let mut wire = Wire::connect(addr, timeout).await?;
        let inbox = format!("_INBOX.{:016x}", fastrand::u64(..));
        let hello = format!(
            "CONNECT {}\r\nSUB {inbox}.r.* {SID_REPLY}\r\nSUB {inbox}.p {SID_PULL}\r\nPING\r\n",
            json!({"verbose": false, "pedantic": false, "headers": true, "no_responders": true,
                   "protocol": 1, "lang": "rust", "version": "strata-loadtest"})
        );
        wire.queue(hello.as_bytes());
        let mut conn = Self {
            wire,
            timeout,
            inbox,
            next_reply: 0,
        };
        let handshake = async {
            conn.wire.flush().await?;
            loop {
                match conn.wire.next(parse).await? {
                    Frame::Pong => return Ok(()),
                    Frame::Err(e) => return Err(RequestError::Refused(format!("nats {e}"))),
                    _ => {}
                }
            }
        };
        tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| RequestError::Timeout)??;
        Ok(conn)
    }

    /// The next message for us, answering PINGs on the way.
    async fn next_msg(&mut self) -> Result<Msg, RequestError> {
        loop {
            match self.wire.next(parse).await? {
                Frame::Msg(m) => return Ok(m),
                Frame::Ping => {
                    self.wire.queue(b"PONG\r\n");
                    self.wire.flush().await?;
                }
                Frame::Err(e) => return Err(RequestError::Refused(format!("nats {e}"))),
                Frame::Pong | Frame::Ok | Frame::Info => {}
            }
        }
    }

    fn queue_pub(&mut self, subject: &str, reply: &str, payload: &[u8]) {
        let head = format!("PUB {subject} {reply} {}\r\n", payload.len());
        self.wire.queue(head.as_bytes());
        self.wire.queue(payload);
        self.wire.queue(b"\r\n");
    }

    /// A JetStream API request; returns the reply JSON, or its error.
    pub async fn api(
        &mut self,
        subject: &str,
        body: &serde_json::Value,
    ) -> Result<String, RequestError> {
        let id = self.next_reply;
        self.next_reply += 1;
        let reply = format!("{}.r.{id}", self.inbox);
        let payload = body.to_string();
        self.queue_pub(subject, &reply, payload.as_bytes());
        let timeout = self.timeout;
        let work = async {
            self.wire.flush().await?;
            loop {
                let m = self.next_msg().await?;
                if m.subject == reply {
                    return Ok(m);
                }
            }
        };
        let m = tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| RequestError::Timeout)??;
        if m.status() == Some(503) {
            return Err(RequestError::Refused(
                "nats no responders (JetStream off?)".into(),
            ));
        }
        let text = String::from_utf8_lossy(&m.payload).into_owned();
        let parsed: ApiReply = serde_json::from_str(&text)
            .map_err(|e| RequestError::BadReply(format!("JetStream API reply: {e}")))?;
        if let Some(e) = parsed.error {
            return Err(RequestError::Refused(format!(
                "nats {} {}",
                e.code, e.description
            )));
        }
        Ok(text)
    }

    /// Creates the stream of a topic (file storage, no limits); an existing
    /// identical stream is fine.
    pub async fn create_stream(&mut self, topic: &str) -> Result<(), RequestError> {
        let config = json!({
            "name": topic, "subjects": [format!("{topic}.*")], "storage": "file",
            "retention": "limits", "discard": "old", "num_replicas": 1,
            "max_msgs": -1, "max_bytes": -1, "max_age": 0,
        });
        self.api(&format!("$JS.API.STREAM.CREATE.{topic}"), &config)
            .await
            .map(|_| ())
    }

    /// Publishes every body to `subject` and waits for all PubAcks.
    pub async fn publish(&mut self, subject: &str, bodies: &[Bytes]) -> Result<(), RequestError> {
        let first = self.next_reply;
        for b in bodies {
            let reply = format!("{}.r.{}", self.inbox, self.next_reply);
            self.next_reply += 1;
            self.queue_pub(subject, &reply, b);
        }
        let prefix = format!("{}.r.", self.inbox);
        let timeout = self.timeout;
        let work = async {
            self.wire.flush().await?;
            let mut acked = 0;
            while acked < bodies.len() {
                let m = self.next_msg().await?;
                let Some(id) = m.subject.strip_prefix(&prefix) else {
                    continue;
                };
                // Only replies of this batch count (a late ack of an older
                // request cannot arrive: a timeout drops the connection).
                if !id.parse::<u64>().is_ok_and(|id| id >= first) {
                    continue;
                }
                if let Some(status) = m.status() {
                    return Err(RequestError::Refused(format!("nats {status}")));
                }
                let ack: ApiReply = serde_json::from_slice(&m.payload)
                    .map_err(|e| RequestError::BadReply(format!("PubAck: {e}")))?;
                if let Some(e) = ack.error {
                    return Err(RequestError::Refused(format!("nats {}", e.code)));
                }
                acked += 1;
            }
            Ok(())
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| RequestError::Timeout)?
    }

    /// Creates an ephemeral pull consumer on one queue's subject, from the
    /// first message (`from_start`) or from the next one published.
    pub async fn create_consumer(
        &mut self,
        topic: &str,
        queue: u32,
        from_start: bool,
    ) -> Result<String, RequestError> {
        let body = json!({
            "stream_name": topic,
            "config": {
                "ack_policy": "none",
                "deliver_policy": if from_start { "all" } else { "new" },
                "filter_subject": format!("{topic}.{queue}"),
                "replay_policy": "instant",
                "inactive_threshold": 60_000_000_000u64,
            }
        });
        let text = self
            .api(&format!("$JS.API.CONSUMER.CREATE.{topic}"), &body)
            .await?;
        let reply: ApiReply = serde_json::from_str(&text)
            .map_err(|e| RequestError::BadReply(format!("consumer create: {e}")))?;
        reply
            .name
            .ok_or_else(|| RequestError::BadReply("consumer create: no name".into()))
    }

    /// Asks the consumer for up to `batch` messages, delivered to our pull
    /// inbox as they arrive, for at most `expires`.
    pub async fn pull(
        &mut self,
        topic: &str,
        consumer: &str,
        batch: u32,
        expires: Duration,
    ) -> Result<(), RequestError> {
        let subject = format!("$JS.API.CONSUMER.MSG.NEXT.{topic}.{consumer}");
        let reply = format!("{}.p", self.inbox);
        let body = json!({"batch": batch, "expires": expires.as_nanos() as u64}).to_string();
        self.queue_pub(&subject, &reply, body.as_bytes());
        self.wire.flush().await
    }

    /// The next message or status on the pull inbox, waiting at most `wait`
    /// (`Ok(None)` when nothing came).
    pub async fn next_pulled(&mut self, wait: Duration) -> Result<Option<Msg>, RequestError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let m = match tokio::time::timeout_at(deadline, self.next_msg()).await {
                Err(_) => return Ok(None),
                Ok(m) => m?,
            };
            if m.sid == SID_PULL {
                return Ok(Some(m));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_frames() {
        assert_eq!(parse(b"PING\r\n"), Parse::Done(Frame::Ping, 6));
        assert_eq!(parse(b"+OK\r\n"), Parse::Done(Frame::Ok, 5));
        assert_eq!(parse(b"MSG a 1 3\r\nab"), Parse::Incomplete);
        let Parse::Done(Frame::Msg(m), used) = parse(b"MSG a.b 2 r.1 3\r\nabc\r\nX") else {
            panic!("msg");
        };
        assert_eq!(used, 22);
        assert_eq!(m.subject, "a.b");
        assert_eq!(m.sid, 2);
        assert_eq!(m.reply.as_deref(), Some("r.1"));
        assert_eq!(m.payload, b"abc");
        let raw = b"HMSG i 2 58 58\r\nNATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 7\r\n\r\n\r\n";
        let Parse::Done(Frame::Msg(m), _) = parse(raw) else {
            panic!("hmsg");
        };
        assert_eq!(m.status(), Some(408));
        assert_eq!(m.header("nats-pending-messages").as_deref(), Some("7"));
        assert!(m.payload.is_empty());
        assert!(matches!(parse(b"HMSG i 2 9 3\r\n"), Parse::Invalid(_)));
        assert!(matches!(parse(b"WAT\r\n"), Parse::Invalid(_)));
    }
}
