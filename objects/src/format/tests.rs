//! Property and example tests for the segment format.

use bytes::Bytes;
use proptest::prelude::*;
use strata_common::{BlockRef, QueueKey};

use super::*;

#[derive(Debug, Clone)]
struct Batch {
    queue: QueueKey,
    base: u64,
    count: u32,
    ts: i64,
    payload: Vec<u8>,
}

/// Mix of incompressible and highly compressible payloads, including empty.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        (any::<u8>(), 0..600usize).prop_map(|(b, n)| vec![b; n]),
    ]
}

/// Sorted batches for up to 5 queues, with occasional offset gaps.
fn batches() -> impl Strategy<Value = Vec<Batch>> {
    let per_queue = prop::collection::vec((0u64..3, 1u32..5, -1_000i64..1_000, payload()), 1..8);
    prop::collection::btree_map((0u64..4, 0u32..4), (0u64..1_000_000, per_queue), 1..5).prop_map(
        |queues| {
            let mut out = Vec::new();
            for ((topic, queue), (start, list)) in queues {
                let mut next = start;
                for (gap, count, ts, payload) in list {
                    let base = next + gap;
                    out.push(Batch {
                        queue: QueueKey::new(topic, queue),
                        base,
                        count,
                        ts,
                        payload,
                    });
                    next = base + u64::from(count);
                }
            }
            out
        },
    )
}

fn build(batches: &[Batch], target: usize) -> (Bytes, Vec<BlockMeta>) {
    let mut b = ObjectBuilder::new(target);
    for x in batches {
        b.add_batch(x.queue, x.base, x.count, x.ts, &x.payload)
            .unwrap();
    }
    b.finish().unwrap()
}

fn block_bytes<'a>(object: &'a [u8], meta: &BlockMeta) -> &'a [u8] {
    &object[meta.block.range().start as usize..meta.block.range().end as usize]
}

proptest! {
    /// Buffers reused from block to block change nothing: each block is
    /// stored exactly as it compresses alone.
    #[test]
    fn reused_buffers_store_each_block_as_it_compresses_alone(batches in batches(), target in 1usize..2048) {
        let (object, metas) = build(&batches, target);
        for meta in &metas {
            let stored = block_bytes(&object, meta);
            let raw = lz4_flex::block::decompress(stored, meta.block.raw_len as usize).unwrap();
            let alone = lz4_flex::block::compress(&raw);
            prop_assert_eq!(stored, alone.as_slice());
        }
    }

    #[test]
    fn round_trip(batches in batches(), target in 1usize..2048) {
        let (object, built) = build(&batches, target);
        let metas = decode_object_index(&object).unwrap();
        prop_assert_eq!(&metas, &built);

        let mut rest = batches.as_slice();
        for (i, meta) in metas.iter().enumerate() {
            let payloads = decode_block(&meta.block, block_bytes(&object, meta)).unwrap();
            prop_assert!(!payloads.is_empty() && payloads.len() <= rest.len());
            let (mine, tail) = rest.split_at(payloads.len());
            for (got, want) in payloads.iter().zip(mine) {
                prop_assert_eq!(got.as_ref(), want.payload.as_slice());
                prop_assert_eq!(want.queue, meta.queue);
            }
            prop_assert_eq!(meta.block.base_offset, mine[0].base);
            let last = &mine[mine.len() - 1];
            prop_assert_eq!(meta.block.end_offset, last.base + u64::from(last.count));
            prop_assert_eq!(meta.block.min_timestamp_ms, mine.iter().map(|b| b.ts).min().unwrap());
            prop_assert_eq!(meta.block.max_timestamp_ms, mine.iter().map(|b| b.ts).max().unwrap());
            // Size rule: over target only for a lone batch, and a block only
            // ends early when the queue changes or the next batch would not fit.
            let raw = meta.block.raw_len as usize;
            prop_assert!(raw <= target || mine.len() == 1);
            if let (Some(next), Some(_)) = (tail.first(), metas.get(i + 1)) {
                prop_assert!(next.queue != meta.queue || raw + 4 + next.payload.len() > target);
            }
            rest = tail;
        }
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn single_byte_flip_is_detected(
        batches in batches(), target in 1usize..2048, pos in any::<prop::sample::Index>(), mask in 1u8..=255,
    ) {
        let (object, built) = build(&batches, target);
        let mut bad = object.to_vec();
        let pos = pos.index(bad.len());
        bad[pos] ^= mask;
        let Ok(metas) = decode_object_index(&bad) else { return Ok(()) };
        // The index survived, so the flip must be inside a block.
        prop_assert_eq!(&metas, &built);
        for meta in &metas {
            let result = decode_block(&meta.block, block_bytes(&bad, meta));
            if meta.block.range().contains(&(pos as u64)) {
                prop_assert!(matches!(result, Err(FormatError::Corrupt { .. })), "flip at {} not detected", pos);
            } else {
                let want = decode_block(&meta.block, block_bytes(&object, meta)).unwrap();
                prop_assert_eq!(result.unwrap(), want);
            }
        }
    }

    #[test]
    fn truncation_is_detected(batches in batches(), target in 1usize..2048, cut in any::<prop::sample::Index>()) {
        let (object, _) = build(&batches, target);
        let cut = cut.index(object.len());
        prop_assert!(decode_object_index(&object[..cut]).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), raw_len in any::<u32>()) {
        let _ = decode_object_index(&bytes);
        let _ = decode_index(&bytes);
        let block = BlockRef {
            base_offset: 0, end_offset: 1, min_timestamp_ms: 0, max_timestamp_ms: 0,
            offset: 0, len: bytes.len() as u32, raw_len, crc32c: crc32c::crc32c(&bytes),
        };
        let _ = decode_block(&block, &bytes);
    }
}

fn q(topic: u64) -> QueueKey {
    QueueKey::new(topic, 0)
}

/// Builds a block whose checksum is right but whose content is `raw`.
fn forged_block(raw: &[u8], raw_len: u32) -> (BlockRef, Vec<u8>) {
    let stored = lz4_flex::block::compress(raw);
    let meta = BlockRef {
        base_offset: 0,
        end_offset: 1,
        min_timestamp_ms: 0,
        max_timestamp_ms: 0,
        offset: 0,
        len: stored.len() as u32,
        raw_len,
        crc32c: crc32c::crc32c(&stored),
    };
    (meta, stored)
}

fn corrupt_what(err: FormatError) -> &'static str {
    match err {
        FormatError::Corrupt { what, .. } => what,
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn out_of_order_and_overlap_are_rejected() {
    let mut b = ObjectBuilder::new(1024);
    b.add_batch(q(2), 10, 5, 0, b"x").unwrap();
    assert!(matches!(
        b.add_batch(q(2), 14, 1, 0, b"y"),
        Err(FormatError::OutOfOrder { .. })
    ));
    assert!(matches!(
        b.add_batch(q(1), 100, 1, 0, b"y"),
        Err(FormatError::OutOfOrder { .. })
    ));
    b.add_batch(q(2), 15, 1, 0, b"z").unwrap();
    b.add_batch(q(3), 0, 1, 0, b"w").unwrap();
}

#[test]
fn invalid_batches_are_rejected() {
    let mut b = ObjectBuilder::new(1024);
    assert!(matches!(
        b.add_batch(q(1), 0, 0, 0, b""),
        Err(FormatError::InvalidBatch { .. })
    ));
    assert!(matches!(
        b.add_batch(q(1), u64::MAX, 1, 0, b""),
        Err(FormatError::InvalidBatch { .. })
    ));
    assert!(b.is_empty());
}

#[test]
fn empty_builder_is_an_error() {
    assert!(matches!(
        ObjectBuilder::new(1024).finish(),
        Err(FormatError::Empty)
    ));
}

#[test]
fn oversized_batch_gets_its_own_block() {
    let mut b = ObjectBuilder::new(100);
    b.add_batch(q(1), 0, 1, 0, &[1; 10]).unwrap();
    b.add_batch(q(1), 1, 1, 0, &[2; 500]).unwrap();
    b.add_batch(q(1), 2, 1, 0, &[3; 10]).unwrap();
    assert_eq!(b.raw_bytes(), 3 * 4 + 520);
    let (_, metas) = b.finish().unwrap();
    let ranges: Vec<_> = metas
        .iter()
        .map(|m| (m.block.base_offset, m.block.end_offset, m.block.raw_len))
        .collect();
    assert_eq!(ranges, vec![(0, 1, 14), (1, 2, 504), (2, 3, 14)]);
}

#[test]
fn wrong_magic_bad_crcs_and_version() {
    let mut b = ObjectBuilder::new(1024);
    b.add_batch(q(1), 0, 1, 0, b"hello").unwrap();
    let (object, _) = b.finish().unwrap();
    let n = object.len();

    let mut bad = object.to_vec();
    bad[n - FOOTER_LEN] = b'X';
    assert_eq!(
        corrupt_what(decode_object_index(&bad).unwrap_err()),
        "footer magic"
    );

    let mut bad = object.to_vec();
    bad[n - 6] ^= 1; // reserved field, covered only by the footer crc
    assert_eq!(
        corrupt_what(decode_object_index(&bad).unwrap_err()),
        "footer crc"
    );

    let mut bad = object.to_vec();
    bad[n - FOOTER_LEN - 1] ^= 1; // last byte of the index crc
    assert_eq!(
        corrupt_what(decode_object_index(&bad).unwrap_err()),
        "index crc"
    );

    // A well-formed footer with an unknown version.
    let mut bad = object.to_vec();
    let f = n - FOOTER_LEN;
    bad[f + 8..f + 12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32c::crc32c(&bad[f..f + 28]);
    bad[f + 28..f + 32].copy_from_slice(&crc.to_le_bytes());
    assert!(matches!(
        decode_object_index(&bad),
        Err(FormatError::UnsupportedVersion { version: 2 })
    ));
}

#[test]
fn forged_blocks_are_corrupt() {
    let mut framed = 3u32.to_le_bytes().to_vec();
    framed.extend_from_slice(b"abc");

    // Trailing garbage after the last frame.
    let mut trailing = framed.clone();
    trailing.extend_from_slice(&[0, 0]);
    let (meta, stored) = forged_block(&trailing, trailing.len() as u32);
    assert_eq!(
        corrupt_what(decode_block(&meta, &stored).unwrap_err()),
        "block framing"
    );

    // raw_len larger than the real content.
    let (meta, stored) = forged_block(&framed, framed.len() as u32 + 10);
    assert_eq!(
        corrupt_what(decode_block(&meta, &stored).unwrap_err()),
        "block raw_len"
    );

    // raw_len smaller than the real content: decompression cannot fit.
    let (meta, stored) = forged_block(&framed, 2);
    assert_eq!(
        corrupt_what(decode_block(&meta, &stored).unwrap_err()),
        "block decompress"
    );

    // A huge raw_len is refused before allocating.
    let (meta, stored) = forged_block(&framed, u32::MAX);
    assert_eq!(
        corrupt_what(decode_block(&meta, &stored).unwrap_err()),
        "block raw_len"
    );

    // Not lz4 at all, with a matching crc.
    let junk = [0xffu8; 16];
    let meta = BlockRef {
        len: 16,
        crc32c: crc32c::crc32c(&junk),
        ..meta
    };
    let meta = BlockRef {
        raw_len: 64,
        ..meta
    };
    assert_eq!(
        corrupt_what(decode_block(&meta, &junk).unwrap_err()),
        "block decompress"
    );

    // Frame length overrunning the block.
    let overrun = 100u32.to_le_bytes();
    let (meta, stored) = forged_block(&overrun, 4);
    assert_eq!(
        corrupt_what(decode_block(&meta, &stored).unwrap_err()),
        "block framing"
    );

    // Wrong stored length.
    let (meta, stored) = forged_block(&framed, framed.len() as u32);
    assert_eq!(
        corrupt_what(decode_block(&meta, &stored[1..]).unwrap_err()),
        "block length"
    );
    assert_eq!(
        decode_block(&meta, &stored).unwrap(),
        vec![Bytes::from_static(b"abc")]
    );
}

/// Batches of up to `max_len` bytes of noise (incompressible, so the
/// object is about as large as its payloads), over a few queues.
fn large_batches(max_len: usize) -> impl Strategy<Value = Vec<Batch>> {
    prop::collection::vec(
        (0u32..3, prop::collection::vec(any::<u8>(), 1..max_len)),
        1..24,
    )
    .prop_map(|mut picked| {
        picked.sort_by_key(|(queue, _)| *queue);
        let mut next = 0;
        let mut previous = None;
        picked
            .into_iter()
            .map(|(queue, payload)| {
                if previous != Some(queue) {
                    next = 0;
                    previous = Some(queue);
                }
                let base = next;
                next += 3;
                Batch {
                    queue: QueueKey { topic: 9, queue },
                    base,
                    count: 3,
                    ts: 1,
                    payload,
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// An object built in parts is exactly the one-buffer object, cut
    /// into chunks no larger than the largest chunk (a block larger than
    /// that gets a chunk of its own size).
    #[test]
    fn parts_concatenate_to_the_object(batches in large_batches(600 << 10), target in (64usize << 10)..(512 << 10)) {
        let (whole, metas) = build(&batches, target);
        let mut b = ObjectBuilder::new(target);
        for x in &batches {
            b.add_batch(x.queue, x.base, x.count, x.ts, &x.payload).unwrap();
        }
        let (parts, part_metas) = b.finish_parts().unwrap();
        prop_assert_eq!(&part_metas, &metas);
        let largest_block = metas.iter().map(|m| m.block.len as usize).max().unwrap_or(0);
        let limit = (4usize << 20).max(largest_block);
        prop_assert!(parts.iter().all(|p| !p.is_empty() && p.len() <= limit));
        if whole.len() > 64 << 10 {
            prop_assert!(parts.len() > 1, "{} bytes in one part", whole.len());
        }
        prop_assert_eq!(parts.concat(), whole.to_vec());
    }
}

/// Incompressible bytes, the same every run.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A block larger than the largest chunk (4 MiB) gets a part of its own
/// size, between parts of the blocks around it, and the parts still make
/// exactly the one-buffer object.
#[test]
fn a_block_over_the_chunk_cap_gets_a_part_of_its_own() {
    let batch = |queue: u32, payload: Vec<u8>| Batch {
        queue: QueueKey { topic: 9, queue },
        base: 0,
        count: 1,
        ts: 1,
        payload,
    };
    let batches = [
        batch(0, noise(3 << 20, 1)),
        batch(1, noise(5 << 20, 2)),
        batch(2, noise(100 << 10, 3)),
    ];
    let (whole, metas) = build(&batches, 8 << 20);
    let largest = metas.iter().map(|m| m.block.len as usize).max().unwrap();
    assert!(largest > 5 << 20, "the block compressed: {largest} bytes");
    let mut b = ObjectBuilder::new(8 << 20);
    for x in &batches {
        b.add_batch(x.queue, x.base, x.count, x.ts, &x.payload)
            .unwrap();
    }
    let (parts, part_metas) = b.finish_parts().unwrap();
    assert_eq!(part_metas, metas);
    assert!(
        parts.iter().any(|p| p.len() >= largest),
        "{:?}",
        parts.iter().map(|p| p.len()).collect::<Vec<_>>()
    );
    assert!(
        parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= largest.max(4 << 20))
    );
    assert_eq!(parts.concat(), whole.to_vec());
}
