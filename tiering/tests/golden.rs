//! Golden bytes: the WAL formats written by this code, pinned byte for byte.
//!
//! WAL files outlive the binary that wrote them: a node restarted on a newer
//! build must replay them. These tests fail when an encoding changes, and
//! when the bytes an older build wrote stop decoding to the same values.
//! The bytes were checked by hand against the layouts drawn in
//! `batch.rs` and `wal/frame.rs`; each line below is one field.

use bytes::Bytes;
use strata_common::{Message, QueueKey};
use strata_tiering::batch::{BatchHeader, decode_batch, decode_header, encode_batch};
use strata_tiering::wal::frame::{
    FrameResult, decode_frame, decode_segment_header, encode_frame, encode_segment_header,
};

fn unhex(fields: &[&str]) -> Vec<u8> {
    let hex: String = fields.concat();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

const BATCH: &[&str] = &[
    "01",               // kind: message batch
    "01",               // version
    "0700000000000000", // topic id 7
    "03000000",         // queue 3
    "0200000000000000", // owner epoch 2
    "6400000000000000", // base offset 100
    "0068e5cf8b010000", // timestamp 1_700_000_000_000 ms
    "02000000",         // 2 messages
    // message 1
    "01",       // flags: key present
    "0200",     // id length 2
    "6d31",     // "m1"
    "0100",     // key length 1
    "6b",       // "k"
    "0100",     // 1 property
    "0100",     // name length 1
    "61",       // "a"
    "01000000", // value length 1
    "62",       // "b"
    "02000000", // body length 2
    "6869",     // "hi"
    // message 2
    "02",       // flags: tag present
    "0000",     // empty id
    "0100",     // tag length 1
    "74",       // "t"
    "0000",     // no properties
    "00000000", // empty body
];

fn batch_messages() -> Vec<Message> {
    vec![
        Message {
            id: "m1".into(),
            key: Some("k".into()),
            tag: None,
            properties: vec![("a".into(), "b".into())],
            body: Bytes::from_static(b"hi"),
        },
        Message {
            id: String::new(),
            key: None,
            tag: Some("t".into()),
            properties: vec![],
            body: Bytes::new(),
        },
    ]
}

#[test]
fn a_message_batch_encodes_to_the_pinned_bytes_and_back() {
    let golden = unhex(BATCH);
    let encoded = encode_batch(
        QueueKey::new(7, 3),
        2,
        100,
        1_700_000_000_000,
        &batch_messages(),
    )
    .expect("encode");
    assert_eq!(
        encoded.as_ref(),
        golden.as_slice(),
        "the batch encoding changed"
    );
    let header = BatchHeader {
        queue: QueueKey::new(7, 3),
        epoch: 2,
        base_offset: 100,
        timestamp_ms: 1_700_000_000_000,
        count: 2,
    };
    assert_eq!(decode_header(&golden).expect("header"), header);
    assert_eq!(
        decode_batch(&golden).expect("batch"),
        (header, batch_messages())
    );
}

#[test]
fn a_frame_and_a_segment_header_are_the_pinned_bytes() {
    // crc32c is Castagnoli: pin the polynomial with its standard check value.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    let frame = unhex(&[
        "a1b1174e",   // crc32c of the length and payload, little-endian
        "05000000",   // payload length 5
        "68656c6c6f", // "hello"
    ]);
    assert_eq!(
        crc32c::crc32c(&unhex(&["05000000", "68656c6c6f"])),
        0x4e17_b1a1
    );
    assert_eq!(encode_frame(b"hello").expect("frame"), frame);
    assert_eq!(
        decode_frame(&frame),
        FrameResult::Complete {
            payload: 8..13,
            frame_len: 13
        }
    );

    let segment = unhex(&[
        "535452415441574c", // magic "STRATAWL"
        "01000000",         // version 1
        "00000000",         // reserved
        "0010000000000000", // base LSN 4096
    ]);
    assert_eq!(encode_segment_header(4096).as_slice(), segment.as_slice());
    assert_eq!(decode_segment_header(&segment), Ok(4096));
}
