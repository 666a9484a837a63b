//! Redis Streams over RESP2, written for the load tester: XADD to publish
//! (pipelined per batch), XREAD to tail or read from the start. A topic
//! with N queues is N stream keys `<topic>:<queue>`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use super::RequestError;
use super::wire::{self, Parse, Wire};

/// One RESP2 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

/// Parses one RESP2 value from the front of `buf`.
pub fn parse(buf: &[u8]) -> Parse<Resp> {
    parse_at(buf, 0)
}

fn parse_at(buf: &[u8], depth: u32) -> Parse<Resp> {
    if depth > 8 {
        return Parse::Invalid("RESP nested too deeply".into());
    }
    let Some((head, mut used)) = wire::line(buf) else {
        return Parse::Incomplete;
    };
    let Some((&kind, rest)) = head.split_first() else {
        return Parse::Invalid("empty RESP line".into());
    };
    let text = || String::from_utf8_lossy(rest).into_owned();
    let number = || wire::int(rest).ok_or_else(|| format!("bad RESP length {:?}", text()));
    match kind {
        b'+' => Parse::Done(Resp::Simple(text()), used),
        b'-' => Parse::Done(Resp::Error(text()), used),
        b':' => match number() {
            Ok(n) => Parse::Done(Resp::Int(n), used),
            Err(e) => Parse::Invalid(e),
        },
        b'$' => {
            let n = match number() {
                Ok(n) => n,
                Err(e) => return Parse::Invalid(e),
            };
            if n < 0 {
                return Parse::Done(Resp::Bulk(None), used);
            }
            let n = n as usize;
            if n > wire::MAX_FRAME {
                return Parse::Invalid("RESP bulk string too large".into());
            }
            if buf.len() < used + n + 2 {
                return Parse::Incomplete;
            }
            let data = buf[used..used + n].to_vec();
            Parse::Done(Resp::Bulk(Some(data)), used + n + 2)
        }
        b'*' => {
            let n = match number() {
                Ok(n) => n,
                Err(e) => return Parse::Invalid(e),
            };
            if n < 0 {
                return Parse::Done(Resp::Array(None), used);
            }
            let mut items = Vec::with_capacity((n as usize).min(4096));
            for _ in 0..n {
                match parse_at(&buf[used..], depth + 1) {
                    Parse::Done(v, u) => {
                        items.push(v);
                        used += u;
                    }
                    Parse::Incomplete => return Parse::Incomplete,
                    Parse::Invalid(e) => return Parse::Invalid(e),
                }
            }
            Parse::Done(Resp::Array(Some(items)), used)
        }
        other => Parse::Invalid(format!("unknown RESP type byte {other:#x}")),
    }
}

/// Appends one command (an array of bulk strings) to `out`.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// The stream key of one queue.
pub fn key(topic: &str, queue: u32) -> String {
    format!("{topic}:{queue}")
}

/// One Redis connection.
#[derive(Debug)]
pub struct RedisConn {
    wire: Wire,
    timeout: Duration,
}

impl RedisConn {
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, RequestError> {
        Ok(Self {
            wire: Wire::connect(addr, timeout).await?,
            timeout,
        })
    }

    /// Sends every command, then reads one reply per command. A reply that
    /// is a RESP error becomes `RequestError::Refused`.
    pub async fn pipeline(&mut self, commands: &[Vec<&[u8]>]) -> Result<Vec<Resp>, RequestError> {
        let mut out = Vec::new();
        for c in commands {
            encode(&mut out, c);
        }
        self.wire.queue(&out);
        let work = async {
            self.wire.flush().await?;
            let mut replies = Vec::with_capacity(commands.len());
            for _ in commands {
                replies.push(self.wire.next(parse).await?);
            }
            Ok::<_, RequestError>(replies)
        };
        let replies = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| RequestError::Timeout)??;
        for r in &replies {
            if let Resp::Error(e) = r {
                let code = e.split_whitespace().next().unwrap_or("ERR");
                return Err(RequestError::Refused(format!("redis {code}")));
            }
        }
        Ok(replies)
    }

    /// One command with a timeout of `wait` beyond the usual one (XREAD BLOCK).
    pub async fn command(&mut self, args: &[&[u8]]) -> Result<Resp, RequestError> {
        let mut replies = self.pipeline(&[args.to_vec()]).await?;
        replies
            .pop()
            .ok_or_else(|| RequestError::BadReply("no reply".into()))
    }

    /// XADD of every body to `key`, pipelined; checks each reply is an id.
    pub async fn xadd(&mut self, key: &str, bodies: &[Bytes]) -> Result<(), RequestError> {
        let commands: Vec<Vec<&[u8]>> = bodies
            .iter()
            .map(|b| vec![&b"XADD"[..], key.as_bytes(), b"*", b"b", b.as_ref()])
            .collect();
        for r in self.pipeline(&commands).await? {
            if !matches!(r, Resp::Bulk(Some(_))) {
                return Err(RequestError::BadReply(format!("XADD replied {r:?}")));
            }
        }
        Ok(())
    }

    /// The id of the last entry of `key`, or "0-0" when it is empty or absent.
    pub async fn last_id(&mut self, key: &str) -> Result<String, RequestError> {
        let reply = self
            .command(&[b"XREVRANGE", key.as_bytes(), b"+", b"-", b"COUNT", b"1"])
            .await?;
        let entries = stream_entries(&reply)?;
        Ok(entries
            .last()
            .map_or_else(|| "0-0".to_string(), |(id, _)| id.clone()))
    }

    /// XREAD of up to `count` entries after `after` (blocking up to `block`
    /// when there are none). Returns (id, body) pairs.
    pub async fn xread(
        &mut self,
        key: &str,
        after: &str,
        count: u32,
        block: Duration,
    ) -> Result<Vec<(String, Vec<u8>)>, RequestError> {
        let count = count.to_string();
        let block_ms = block.as_millis().max(1).to_string();
        let reply = self
            .command(&[
                b"XREAD",
                b"COUNT",
                count.as_bytes(),
                b"BLOCK",
                block_ms.as_bytes(),
                b"STREAMS",
                key.as_bytes(),
                after.as_bytes(),
            ])
            .await?;
        match reply {
            Resp::Array(None) | Resp::Bulk(None) => Ok(Vec::new()),
            Resp::Array(Some(streams)) => {
                let mut out = Vec::new();
                for s in &streams {
                    match s {
                        Resp::Array(Some(pair)) if pair.len() == 2 => {
                            out.extend(stream_entries(&pair[1])?);
                        }
                        other => {
                            return Err(RequestError::BadReply(format!("XREAD item {other:?}")));
                        }
                    }
                }
                Ok(out)
            }
            other => Err(RequestError::BadReply(format!("XREAD replied {other:?}"))),
        }
    }
}

/// `[[id, [field, value, ...]], ...]` → (id, value of field "b").
fn stream_entries(reply: &Resp) -> Result<Vec<(String, Vec<u8>)>, RequestError> {
    let bad = |what: &str| RequestError::BadReply(format!("stream entries: {what}"));
    let Resp::Array(Some(entries)) = reply else {
        return Err(bad("not an array"));
    };
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let Resp::Array(Some(parts)) = e else {
            return Err(bad("entry is not an array"));
        };
        let (Some(Resp::Bulk(Some(id))), Some(Resp::Array(Some(fields)))) =
            (parts.first(), parts.get(1))
        else {
            return Err(bad("entry is not [id, fields]"));
        };
        let body = fields
            .chunks(2)
            .find_map(|kv| match kv {
                [Resp::Bulk(Some(k)), Resp::Bulk(Some(v))] if k == b"b" => Some(v.clone()),
                _ => None,
            })
            .ok_or_else(|| bad("no field b"))?;
        out.push((String::from_utf8_lossy(id).into_owned(), body));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values() {
        assert_eq!(parse(b"+OK\r\n"), Parse::Done(Resp::Simple("OK".into()), 5));
        assert_eq!(parse(b":42\r\n"), Parse::Done(Resp::Int(42), 5));
        assert_eq!(parse(b"$-1\r\n"), Parse::Done(Resp::Bulk(None), 5));
        assert_eq!(parse(b"*-1\r\n"), Parse::Done(Resp::Array(None), 5));
        assert_eq!(
            parse(b"$3\r\nabc\r\nxx"),
            Parse::Done(Resp::Bulk(Some(b"abc".to_vec())), 9)
        );
        assert_eq!(parse(b"$3\r\nab"), Parse::Incomplete);
        assert_eq!(parse(b"*2\r\n:1\r\n"), Parse::Incomplete);
        assert!(matches!(parse(b"?x\r\n"), Parse::Invalid(_)));
        assert_eq!(
            parse(b"-ERR no\r\n"),
            Parse::Done(Resp::Error("ERR no".into()), 9)
        );
    }

    #[test]
    fn parses_xread_reply() {
        let raw =
            b"*1\r\n*2\r\n$3\r\nt:0\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nb\r\n$2\r\nhi\r\n\
                    *2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nb\r\n$0\r\n\r\n";
        let Parse::Done(Resp::Array(Some(streams)), used) = parse(raw) else {
            panic!("parse");
        };
        assert_eq!(used, raw.len());
        let Resp::Array(Some(pair)) = &streams[0] else {
            panic!("pair");
        };
        let entries = stream_entries(&pair[1]).expect("entries");
        assert_eq!(
            entries,
            vec![("1-0".into(), b"hi".to_vec()), ("2-0".into(), vec![])]
        );
    }

    #[test]
    fn encodes_commands() {
        let mut out = Vec::new();
        encode(&mut out, &[b"XADD", b"k", b"*"]);
        assert_eq!(out, b"*3\r\n$4\r\nXADD\r\n$1\r\nk\r\n$1\r\n*\r\n");
    }
}
