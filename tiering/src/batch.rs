//! Message batch codec: the payload of a WAL record that carries one queue's
//! batch of messages.
//!
//! Pure code, no I/O. The engine encodes a batch before appending it to the
//! WAL; recovery only needs [`decode_header`] (queue, offsets, count) to
//! rebuild its indexes, and readers call [`decode_batch`] for the messages.
//!
//! # Layout (all integers little-endian)
//!
//! ```text
//! header, 42 bytes:
//! +---------+------------+--------------+--------------+-----------+-------------+----------------+-----------+
//! | kind u8 | version u8 | topic_id u64 | queue_id u32 | epoch u64 | base_offset | timestamp_ms   | count u32 |
//! |  (=1)   |   (=1)     |              |              |           |     u64     |      i64       |           |
//! +---------+------------+--------------+--------------+-----------+-------------+----------------+-----------+
//!
//! then `count` messages, each:
//! +----------+-----------------+----------------------+----------------------+
//! | flags u8 | id_len u16 + id | [key_len u16 + key]  | [tag_len u16 + tag]  |
//! +----------+-----------------+----------------------+----------------------+
//!   flags: bit0 = key present, bit1 = tag present, other bits must be 0
//! +----------------+------------------------------------+---------------------+
//! | prop_count u16 | prop_count × property              | body_len u32 + body |
//! +----------------+------------------------------------+---------------------+
//!   property: name_len u16 + name | value_len u32 + value
//! ```
//!
//! Strings are UTF-8 and are validated on decode. Every length is checked
//! against [`strata_common::limits`] on both encode and decode, so the decoder
//! accepts exactly what the encoder can produce. A payload must end exactly
//! after the last message: trailing bytes are an error, because they can only
//! mean corruption or a format mismatch.

use bytes::{BufMut, Bytes, BytesMut};
use strata_common::{Message, QueueKey, limits};

/// Record kind byte of a message batch (the first byte of every WAL payload
/// names its kind, so other record kinds can share the log later).
pub const KIND_MESSAGE_BATCH: u8 = 1;
/// Format version written by this code.
pub const BATCH_VERSION: u8 = 1;
/// Bytes of the fixed batch header.
pub const BATCH_HEADER_LEN: usize = 1 + 1 + 8 + 4 + 8 + 8 + 8 + 4;
/// Longest message id. Ids have no limit in `strata_common::limits`, so the
/// bound is what the `u16` length field can represent.
pub const MAX_ID_LEN: usize = u16::MAX as usize;

/// Smallest possible encoded message: flags, id_len, prop_count, body_len.
/// Used to reject counts that cannot fit in the remaining bytes before
/// allocating anything for them.
const MIN_MESSAGE_LEN: usize = 1 + 2 + 2 + 4;
/// Smallest possible encoded property: name_len + value_len.
const MIN_PROPERTY_LEN: usize = 2 + 4;
const FLAG_KEY: u8 = 0b01;
const FLAG_TAG: u8 = 0b10;

/// The fixed part of a batch: which queue, where its offsets start, how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchHeader {
    pub queue: QueueKey,
    /// Ownership epoch of the writer, so recovery can discard a stale owner's writes.
    pub epoch: u64,
    /// Offset of the first message; message `i` has offset `base_offset + i`.
    pub base_offset: u64,
    pub timestamp_ms: i64,
    pub count: u32,
}

/// Why a batch could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("a batch must hold at least one message")]
    Empty,
    #[error("a batch holds {count} messages, more than the format's {max}")]
    TooManyMessages { count: usize, max: usize },
    #[error("message {index}: {field} is {len} bytes, over the limit of {max}")]
    FieldTooLong {
        index: usize,
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("message {index}: {count} properties, over the limit of {max}")]
    TooManyProperties {
        index: usize,
        count: usize,
        max: usize,
    },
    #[error("payload truncated: {what} at byte {offset} needs {needed} more bytes")]
    Truncated {
        what: &'static str,
        offset: usize,
        needed: usize,
    },
    #[error("record kind {0} is not a message batch")]
    WrongKind(u8),
    #[error("unsupported batch version {0}")]
    UnsupportedVersion(u8),
    #[error("message {index}: unknown flag bits {flags:#04x}")]
    UnknownFlags { index: usize, flags: u8 },
    #[error("message {index}: {field} is not valid UTF-8")]
    InvalidUtf8 { index: usize, field: &'static str },
    #[error("{what} count {count} cannot fit in the {remaining} bytes that follow")]
    CountExceedsPayload {
        what: &'static str,
        count: usize,
        remaining: usize,
    },
    #[error("{0} bytes of trailing garbage after the last message")]
    TrailingBytes(usize),
}

/// The kind byte of a WAL payload, or `None` for an empty payload.
pub fn record_kind(payload: &[u8]) -> Option<u8> {
    payload.first().copied()
}

/// Whether `payload` starts like a record this version writes (its kind
/// and version bytes): the cheap test recovery applies before a checksum
/// when it looks for whole records among damaged bytes.
pub fn starts_like_a_record(payload: &[u8]) -> bool {
    payload.get(..2) == Some(&[KIND_MESSAGE_BATCH, BATCH_VERSION][..])
}

/// Encodes one queue's batch. Refuses an empty batch and any field longer
/// than the protocol limits, so nothing the decoder would reject is written.
pub fn encode_batch(
    queue: QueueKey,
    epoch: u64,
    base_offset: u64,
    timestamp_ms: i64,
    messages: &[Message],
) -> Result<Bytes, BatchError> {
    if messages.is_empty() {
        return Err(BatchError::Empty);
    }
    let count = u32::try_from(messages.len()).map_err(|_| BatchError::TooManyMessages {
        count: messages.len(),
        max: u32::MAX as usize,
    })?;
    let mut size = BATCH_HEADER_LEN;
    for (index, m) in messages.iter().enumerate() {
        size += validate_message(index, m)?;
    }

    let mut out = BytesMut::with_capacity(size);
    out.put_u8(KIND_MESSAGE_BATCH);
    out.put_u8(BATCH_VERSION);
    out.put_u64_le(queue.topic);
    out.put_u32_le(queue.queue);
    out.put_u64_le(epoch);
    out.put_u64_le(base_offset);
    out.put_i64_le(timestamp_ms);
    out.put_u32_le(count);
    for m in messages {
        let flags =
            if m.key.is_some() { FLAG_KEY } else { 0 } | if m.tag.is_some() { FLAG_TAG } else { 0 };
        out.put_u8(flags);
        // The casts below cannot truncate: validate_message checked each length.
        put_str16(&mut out, &m.id);
        if let Some(key) = &m.key {
            put_str16(&mut out, key);
        }
        if let Some(tag) = &m.tag {
            put_str16(&mut out, tag);
        }
        out.put_u16_le(m.properties.len() as u16);
        for (name, value) in &m.properties {
            put_str16(&mut out, name);
            out.put_u32_le(value.len() as u32);
            out.put_slice(value.as_bytes());
        }
        out.put_u32_le(m.body.len() as u32);
        out.put_slice(&m.body);
    }
    debug_assert_eq!(out.len(), size);
    Ok(out.freeze())
}

/// Parses only the fixed header (cheap: recovery calls it for every record).
/// Also checks that `count` messages could fit in the rest of the payload.
pub fn decode_header(payload: &[u8]) -> Result<BatchHeader, BatchError> {
    let mut r = Reader::new(payload);
    read_header(&mut r)
}

/// Parses a whole batch. Bodies are copied into fresh [`Bytes`].
pub fn decode_batch(payload: &[u8]) -> Result<(BatchHeader, Vec<Message>), BatchError> {
    let mut r = Reader::new(payload);
    let header = read_header(&mut r)?;
    // read_header bounded count by remaining / MIN_MESSAGE_LEN, so this
    // allocation is at most proportional to the payload size.
    let mut messages = Vec::with_capacity(header.count as usize);
    for index in 0..header.count as usize {
        messages.push(read_message(&mut r, index)?);
    }
    if r.remaining() > 0 {
        return Err(BatchError::TrailingBytes(r.remaining()));
    }
    Ok((header, messages))
}

/// Checks one message against the limits; returns its encoded size.
fn validate_message(index: usize, m: &Message) -> Result<usize, BatchError> {
    let check = |field: &'static str, len: usize, max: usize| {
        if len > max {
            Err(BatchError::FieldTooLong {
                index,
                field,
                len,
                max,
            })
        } else {
            Ok(len)
        }
    };
    let mut size = MIN_MESSAGE_LEN;
    size += check("id", m.id.len(), MAX_ID_LEN)?;
    if let Some(key) = &m.key {
        size += 2 + check("key", key.len(), limits::MAX_KEY_LEN)?;
    }
    if let Some(tag) = &m.tag {
        size += 2 + check("tag", tag.len(), limits::MAX_TAG_LEN)?;
    }
    if m.properties.len() > limits::MAX_STORED_PROPERTIES {
        return Err(BatchError::TooManyProperties {
            index,
            count: m.properties.len(),
            max: limits::MAX_STORED_PROPERTIES,
        });
    }
    for (name, value) in &m.properties {
        size += MIN_PROPERTY_LEN;
        size += check("property name", name.len(), limits::MAX_PROPERTY_NAME_LEN)?;
        size += check(
            "property value",
            value.len(),
            limits::MAX_PROPERTY_VALUE_LEN,
        )?;
    }
    size += check("body", m.body.len(), limits::MAX_BODY_LEN)?;
    Ok(size)
}

fn put_str16(out: &mut BytesMut, s: &str) {
    out.put_u16_le(s.len() as u16);
    out.put_slice(s.as_bytes());
}

fn read_header(r: &mut Reader<'_>) -> Result<BatchHeader, BatchError> {
    let kind = r.u8("kind")?;
    if kind != KIND_MESSAGE_BATCH {
        return Err(BatchError::WrongKind(kind));
    }
    let version = r.u8("version")?;
    if version != BATCH_VERSION {
        return Err(BatchError::UnsupportedVersion(version));
    }
    let topic = r.u64("topic_id")?;
    let queue = r.u32("queue_id")?;
    let epoch = r.u64("epoch")?;
    let base_offset = r.u64("base_offset")?;
    let timestamp_ms = r.i64("timestamp_ms")?;
    let count = r.u32("count")?;
    if count == 0 {
        return Err(BatchError::Empty);
    }
    r.check_count("message", count as usize, MIN_MESSAGE_LEN)?;
    Ok(BatchHeader {
        queue: QueueKey::new(topic, queue),
        epoch,
        base_offset,
        timestamp_ms,
        count,
    })
}

fn read_message(r: &mut Reader<'_>, index: usize) -> Result<Message, BatchError> {
    let flags = r.u8("flags")?;
    if flags & !(FLAG_KEY | FLAG_TAG) != 0 {
        return Err(BatchError::UnknownFlags { index, flags });
    }
    let id = r.str16(index, "id", MAX_ID_LEN)?;
    let key = if flags & FLAG_KEY != 0 {
        Some(r.str16(index, "key", limits::MAX_KEY_LEN)?)
    } else {
        None
    };
    let tag = if flags & FLAG_TAG != 0 {
        Some(r.str16(index, "tag", limits::MAX_TAG_LEN)?)
    } else {
        None
    };
    let prop_count = r.u16("prop_count")? as usize;
    if prop_count > limits::MAX_STORED_PROPERTIES {
        return Err(BatchError::TooManyProperties {
            index,
            count: prop_count,
            max: limits::MAX_STORED_PROPERTIES,
        });
    }
    r.check_count("property", prop_count, MIN_PROPERTY_LEN)?;
    let mut properties = Vec::with_capacity(prop_count);
    for _ in 0..prop_count {
        let name = r.str16(index, "property name", limits::MAX_PROPERTY_NAME_LEN)?;
        let value_len = r.u32("property value length")? as usize;
        let value = r.string(
            index,
            "property value",
            value_len,
            limits::MAX_PROPERTY_VALUE_LEN,
        )?;
        properties.push((name, value));
    }
    let body_len = r.u32("body length")? as usize;
    let body = r.field(index, "body", body_len, limits::MAX_BODY_LEN)?;
    Ok(Message {
        id,
        key,
        tag,
        properties,
        body: Bytes::copy_from_slice(body),
    })
}

/// Bounds-checked cursor: every read either succeeds or returns an error,
/// never panics.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], BatchError> {
        if n > self.remaining() {
            return Err(BatchError::Truncated {
                what,
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], BatchError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, BatchError> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, BatchError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, BatchError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, BatchError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn i64(&mut self, what: &'static str) -> Result<i64, BatchError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    /// Rejects a count whose smallest encoding would not fit in what is left,
    /// so a corrupt count cannot trigger a huge preallocation.
    fn check_count(
        &self,
        what: &'static str,
        count: usize,
        min_each: usize,
    ) -> Result<(), BatchError> {
        if count > self.remaining() / min_each {
            return Err(BatchError::CountExceedsPayload {
                what,
                count,
                remaining: self.remaining(),
            });
        }
        Ok(())
    }

    fn field(
        &mut self,
        index: usize,
        field: &'static str,
        len: usize,
        max: usize,
    ) -> Result<&'a [u8], BatchError> {
        if len > max {
            return Err(BatchError::FieldTooLong {
                index,
                field,
                len,
                max,
            });
        }
        self.take(len, field)
    }

    fn string(
        &mut self,
        index: usize,
        field: &'static str,
        len: usize,
        max: usize,
    ) -> Result<String, BatchError> {
        let raw = self.field(index, field, len, max)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| BatchError::InvalidUtf8 { index, field })
    }

    fn str16(
        &mut self,
        index: usize,
        field: &'static str,
        max: usize,
    ) -> Result<String, BatchError> {
        let len = self.u16(field)? as usize;
        self.string(index, field, len, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message() -> impl Strategy<Value = Message> {
        (
            ".{0,12}",
            proptest::option::of(".{0,12}"),
            proptest::option::of("[a-z]{0,8}"),
            proptest::collection::vec((".{0,8}", ".{0,16}"), 0..4),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(id, key, tag, properties, body)| Message {
                id,
                key,
                tag,
                properties,
                body: Bytes::from(body),
            })
    }

    fn batch() -> impl Strategy<Value = (QueueKey, u64, u64, i64, Vec<Message>)> {
        (
            any::<u64>(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            any::<i64>(),
            proptest::collection::vec(message(), 1..8),
        )
            .prop_map(|(t, q, e, b, ts, m)| (QueueKey::new(t, q), e, b, ts, m))
    }

    proptest! {
        #[test]
        fn round_trip((queue, epoch, base, ts, messages) in batch()) {
            let payload = encode_batch(queue, epoch, base, ts, &messages).unwrap();
            prop_assert_eq!(record_kind(&payload), Some(KIND_MESSAGE_BATCH));
            let expected = BatchHeader { queue, epoch, base_offset: base, timestamp_ms: ts, count: messages.len() as u32 };
            prop_assert_eq!(decode_header(&payload).unwrap(), expected.clone());
            let (header, decoded) = decode_batch(&payload).unwrap();
            prop_assert_eq!(header, expected);
            prop_assert_eq!(decoded, messages);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_header(&bytes);
            let _ = decode_batch(&bytes);
        }

        #[test]
        fn arbitrary_bytes_after_valid_header_never_panic(
            count in any::<u32>(),
            tail in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut bytes = encode_batch(QueueKey::new(1, 2), 3, 4, 5, &[Message::default()]).unwrap().to_vec();
            bytes.truncate(BATCH_HEADER_LEN);
            bytes[BATCH_HEADER_LEN - 4..].copy_from_slice(&count.to_le_bytes());
            bytes.extend_from_slice(&tail);
            let _ = decode_batch(&bytes);
        }

        #[test]
        fn truncation_is_always_an_error((queue, epoch, base, ts, messages) in batch(), cut in any::<prop::sample::Index>()) {
            let payload = encode_batch(queue, epoch, base, ts, &messages).unwrap();
            let cut = cut.index(payload.len());
            prop_assert!(decode_batch(&payload[..cut]).is_err());
        }

        #[test]
        fn trailing_garbage_is_an_error((queue, epoch, base, ts, messages) in batch(), extra in proptest::collection::vec(any::<u8>(), 1..8)) {
            let mut payload = encode_batch(queue, epoch, base, ts, &messages).unwrap().to_vec();
            payload.extend_from_slice(&extra);
            prop_assert_eq!(decode_batch(&payload).unwrap_err(), BatchError::TrailingBytes(extra.len()));
        }
    }

    #[test]
    fn refuses_empty_batch_and_oversized_fields() {
        let q = QueueKey::new(1, 0);
        assert_eq!(encode_batch(q, 0, 0, 0, &[]), Err(BatchError::Empty));
        let long_tag = Message {
            tag: Some("t".repeat(limits::MAX_TAG_LEN + 1)),
            ..Message::default()
        };
        assert!(matches!(
            encode_batch(q, 0, 0, 0, &[Message::default(), long_tag]),
            Err(BatchError::FieldTooLong {
                index: 1,
                field: "tag",
                ..
            })
        ));
        let many_props = Message {
            properties: vec![(String::new(), String::new()); limits::MAX_STORED_PROPERTIES + 1],
            ..Message::default()
        };
        assert!(matches!(
            encode_batch(q, 0, 0, 0, &[many_props]),
            Err(BatchError::TooManyProperties { .. })
        ));
    }

    #[test]
    fn huge_count_is_rejected_without_allocating() {
        let mut bytes = encode_batch(QueueKey::new(1, 2), 0, 0, 0, &[Message::default()])
            .unwrap()
            .to_vec();
        bytes[BATCH_HEADER_LEN - 4..BATCH_HEADER_LEN].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_header(&bytes),
            Err(BatchError::CountExceedsPayload { .. })
        ));
    }

    #[test]
    fn rejects_invalid_utf8_and_unknown_flags() {
        let m = Message {
            id: "ab".into(),
            ..Message::default()
        };
        let good = encode_batch(QueueKey::new(1, 2), 0, 0, 0, &[m])
            .unwrap()
            .to_vec();
        let mut bad_utf8 = good.clone();
        bad_utf8[BATCH_HEADER_LEN + 3] = 0xff; // first byte of the id
        assert!(matches!(
            decode_batch(&bad_utf8),
            Err(BatchError::InvalidUtf8 { field: "id", .. })
        ));
        let mut bad_flags = good;
        bad_flags[BATCH_HEADER_LEN] = 0x80;
        assert!(matches!(
            decode_batch(&bad_flags),
            Err(BatchError::UnknownFlags { .. })
        ));
    }

    #[test]
    fn wrong_kind_and_version() {
        assert_eq!(record_kind(&[]), None);
        let good = encode_batch(QueueKey::new(1, 2), 0, 0, 0, &[Message::default()])
            .unwrap()
            .to_vec();
        let mut k = good.clone();
        k[0] = 9;
        assert_eq!(decode_header(&k), Err(BatchError::WrongKind(9)));
        let mut v = good;
        v[1] = 2;
        assert_eq!(decode_header(&v), Err(BatchError::UnsupportedVersion(2)));
    }
}
