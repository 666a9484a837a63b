//! Golden bytes: a segment object as this code writes it, pinned byte for
//! byte. Objects outlive the binary that wrote them, so a change to the
//! layout (or to what the pinned bytes decode to) must fail here first.
//! The bytes were checked by hand against the layout drawn in `format.rs`.

use strata_common::{BlockRef, QueueKey};
use strata_objects::format::{decode_block, decode_footer, decode_object_index};
use strata_objects::{BlockMeta, FOOTER_LEN, Footer, ObjectBuilder};

fn unhex(fields: &[&str]) -> Vec<u8> {
    let hex: String = fields.concat();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// One queue (topic 7, queue 3), one batch of 2 messages at offset 100
/// whose WAL payload is "abc".
const OBJECT: &[&str] = &[
    // block 0 at 0, 8 bytes: lz4 block format of the raw block
    "70",       // lz4 token: 7 literal bytes, no match
    "03000000", // raw block: batch length 3
    "616263",   // batch payload "abc"
    // index at 8, 72 bytes
    "01000000",         // 1 entry
    "0700000000000000", // topic 7
    "03000000",         // queue 3
    "6400000000000000", // base offset 100
    "6600000000000000", // end offset 102
    "0500000000000000", // min timestamp 5
    "0500000000000000", // max timestamp 5
    "0000000000000000", // block at byte 0
    "08000000",         // stored length 8
    "07000000",         // raw length 7
    "00fc74f1",         // crc32c of the stored block
    "9c4f26c9",         // crc32c of count and entries
    // footer at 80, 32 bytes
    "5354525345473031", // magic "STRSEG01"
    "01000000",         // version 1
    "0800000000000000", // index at byte 8
    "48000000",         // index length 72
    "00000000",         // reserved
    "02d37045",         // crc32c of footer bytes 0..28
];

#[test]
fn a_segment_object_is_the_pinned_bytes_and_decodes_back() {
    let golden = unhex(OBJECT);
    let block = BlockMeta {
        queue: QueueKey::new(7, 3),
        block: BlockRef {
            base_offset: 100,
            end_offset: 102,
            min_timestamp_ms: 5,
            max_timestamp_ms: 5,
            offset: 0,
            len: 8,
            raw_len: 7,
            crc32c: 0xf174_fc00,
        },
    };

    let mut builder = ObjectBuilder::new(1024);
    builder
        .add_batch(QueueKey::new(7, 3), 100, 2, 5, b"abc")
        .expect("add");
    let (object, blocks) = builder.finish().expect("finish");
    assert_eq!(
        object.as_ref(),
        golden.as_slice(),
        "the object layout changed"
    );
    assert_eq!(blocks, vec![block]);

    let footer = decode_footer(&golden[golden.len() - FOOTER_LEN..]).expect("footer");
    assert_eq!(
        footer,
        Footer {
            index_offset: 8,
            index_len: 72
        }
    );
    assert_eq!(decode_object_index(&golden).expect("index"), vec![block]);
    let batches = decode_block(&block.block, &golden[0..8]).expect("block");
    assert_eq!(batches, vec![bytes::Bytes::from_static(b"abc")]);
}
