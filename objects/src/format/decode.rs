//! Reading side of the segment format.
//!
//! Every function here treats its input as hostile: lengths are checked
//! before slicing, allocations are bounded by [`MAX_BLOCK_RAW_BYTES`], and
//! anything inconsistent is reported as [`FormatError::Corrupt`].

use bytes::Bytes;
use strata_common::{BlockRef, QueueKey};

use super::{
    BATCH_HEADER_LEN, BlockMeta, FOOTER_LEN, FORMAT_VERSION, Footer, FormatError, INDEX_ENTRY_LEN,
    MAGIC, MAX_BLOCK_RAW_BYTES,
};

/// Decodes the footer from the last [`FOOTER_LEN`] bytes of `tail` (callers
/// may pass the whole object or just its tail).
pub fn decode_footer(tail: &[u8]) -> Result<Footer, FormatError> {
    let Some(start) = tail.len().checked_sub(FOOTER_LEN) else {
        return Err(FormatError::corrupt(
            "footer",
            format!("{} bytes is shorter than the footer", tail.len()),
        ));
    };
    let f = &tail[start..];
    if f[0..8] != MAGIC {
        return Err(FormatError::corrupt(
            "footer magic",
            format!("found {:02x?}", &f[0..8]),
        ));
    }
    let stored_crc = le_u32(&f[28..32]);
    let actual_crc = crc32c::crc32c(&f[..28]);
    if stored_crc != actual_crc {
        return Err(FormatError::corrupt(
            "footer crc",
            format!("stored {stored_crc:#010x}, computed {actual_crc:#010x}"),
        ));
    }
    let version = le_u32(&f[8..12]);
    if version != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion { version });
    }
    Ok(Footer {
        index_offset: le_u64(&f[12..20]),
        index_len: le_u32(&f[20..24]),
    })
}

/// Decodes and validates the index (count, entries, crc) fetched via
/// [`Footer::index_range`].
///
/// Beyond the checksum, it checks the invariants the builder guarantees
/// (blocks contiguous from byte 0, sorted, non-empty ranges), so a reader can
/// binary-search the result without further checks.
pub fn decode_index(index: &[u8]) -> Result<Vec<BlockMeta>, FormatError> {
    if index.len() < 8 {
        return Err(FormatError::corrupt(
            "index",
            format!("{} bytes is too short", index.len()),
        ));
    }
    let (body, crc_bytes) = index.split_at(index.len() - 4);
    let stored_crc = le_u32(crc_bytes);
    let actual_crc = crc32c::crc32c(body);
    if stored_crc != actual_crc {
        return Err(FormatError::corrupt(
            "index crc",
            format!("stored {stored_crc:#010x}, computed {actual_crc:#010x}"),
        ));
    }
    let count = le_u32(&body[0..4]) as usize;
    let entries = &body[4..];
    if count == 0
        || entries.len() / INDEX_ENTRY_LEN != count
        || entries.len() % INDEX_ENTRY_LEN != 0
    {
        return Err(FormatError::corrupt(
            "index",
            format!("count {count} does not match {} entry bytes", entries.len()),
        ));
    }
    let mut metas: Vec<BlockMeta> = Vec::with_capacity(count);
    let mut next_offset = 0u64;
    for (i, entry) in entries.chunks_exact(INDEX_ENTRY_LEN).enumerate() {
        let meta = decode_entry(entry);
        let bad =
            |detail: String| FormatError::corrupt("index entry", format!("entry {i}: {detail}"));
        if meta.block.base_offset >= meta.block.end_offset {
            return Err(bad(format!(
                "empty offset range {}..{}",
                meta.block.base_offset, meta.block.end_offset
            )));
        }
        if meta.block.min_timestamp_ms > meta.block.max_timestamp_ms {
            return Err(bad("min timestamp after max timestamp".into()));
        }
        if meta.block.len == 0
            || meta.block.raw_len == 0
            || meta.block.raw_len as usize > MAX_BLOCK_RAW_BYTES
        {
            return Err(bad(format!(
                "implausible lengths len={} raw_len={}",
                meta.block.len, meta.block.raw_len
            )));
        }
        if meta.block.offset != next_offset {
            return Err(bad(format!(
                "block at {} but previous block ended at {next_offset}",
                meta.block.offset
            )));
        }
        if let Some(prev) = metas.last() {
            let sorted = meta.queue > prev.queue
                || (meta.queue == prev.queue && meta.block.base_offset >= prev.block.end_offset);
            if !sorted {
                return Err(bad("blocks not sorted by (queue, offset)".into()));
            }
        }
        next_offset += u64::from(meta.block.len);
        metas.push(meta);
    }
    Ok(metas)
}

/// Decodes the footer and index of a whole object held in memory, and checks
/// that blocks, index and footer tile the object exactly.
pub fn decode_object_index(object: &[u8]) -> Result<Vec<BlockMeta>, FormatError> {
    let footer = decode_footer(object)?;
    let footer_start = (object.len() - FOOTER_LEN) as u64;
    let index = footer.index_range();
    if index.end != footer_start {
        return Err(FormatError::corrupt(
            "footer",
            format!(
                "index {}..{} does not end at the footer ({footer_start})",
                index.start, index.end
            ),
        ));
    }
    // index.start <= index.end == footer_start <= object.len(), so this slice is in bounds.
    let metas = decode_index(&object[index.start as usize..index.end as usize])?;
    let blocks_end = metas.last().map_or(0, |m| m.block.range().end);
    if blocks_end != footer.index_offset {
        return Err(FormatError::corrupt(
            "index",
            format!(
                "blocks end at {blocks_end} but the index starts at {}",
                footer.index_offset
            ),
        ));
    }
    Ok(metas)
}

/// Verifies the checksum, decompresses, and splits a block into its batch
/// payloads, in the order they were added.
pub fn decode_block(block: &BlockRef, stored: &[u8]) -> Result<Vec<Bytes>, FormatError> {
    if stored.len() != block.len as usize {
        return Err(FormatError::corrupt(
            "block length",
            format!("expected {} bytes, got {}", block.len, stored.len()),
        ));
    }
    let actual_crc = crc32c::crc32c(stored);
    if actual_crc != block.crc32c {
        return Err(FormatError::corrupt(
            "block crc",
            format!(
                "block at {}: stored {:#010x}, computed {actual_crc:#010x}",
                block.offset, block.crc32c
            ),
        ));
    }
    let raw_len = block.raw_len as usize;
    if raw_len > MAX_BLOCK_RAW_BYTES {
        return Err(FormatError::corrupt(
            "block raw_len",
            format!("{raw_len} exceeds {MAX_BLOCK_RAW_BYTES}"),
        ));
    }
    let mut raw = vec![0u8; raw_len];
    let written = lz4_flex::block::decompress_into(stored, &mut raw).map_err(|e| {
        FormatError::corrupt(
            "block decompress",
            format!("block at {}: {e}", block.offset),
        )
    })?;
    if written != raw_len {
        return Err(FormatError::corrupt(
            "block raw_len",
            format!("expected {raw_len} bytes, decompressed {written}"),
        ));
    }
    split_batches(Bytes::from(raw))
}

/// Splits a raw block into `len u32 | payload` frames, sharing the buffer.
fn split_batches(raw: Bytes) -> Result<Vec<Bytes>, FormatError> {
    let mut batches = Vec::new();
    let mut pos = 0usize;
    while pos < raw.len() {
        let Some(header) = raw.get(pos..pos + BATCH_HEADER_LEN) else {
            return Err(FormatError::corrupt(
                "block framing",
                format!("{} trailing bytes", raw.len() - pos),
            ));
        };
        let len = le_u32(header) as usize;
        let start = pos + BATCH_HEADER_LEN;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= raw.len())
            .ok_or_else(|| {
                FormatError::corrupt(
                    "block framing",
                    format!("batch of {len} bytes at {start} overruns the block"),
                )
            })?;
        batches.push(raw.slice(start..end));
        pos = end;
    }
    if batches.is_empty() {
        return Err(FormatError::corrupt(
            "block framing",
            "block holds no batches",
        ));
    }
    Ok(batches)
}

fn decode_entry(e: &[u8]) -> BlockMeta {
    BlockMeta {
        queue: QueueKey {
            topic: le_u64(&e[0..8]),
            queue: le_u32(&e[8..12]),
        },
        block: BlockRef {
            base_offset: le_u64(&e[12..20]),
            end_offset: le_u64(&e[20..28]),
            min_timestamp_ms: le_u64(&e[28..36]) as i64,
            max_timestamp_ms: le_u64(&e[36..44]) as i64,
            offset: le_u64(&e[44..52]),
            len: le_u32(&e[52..56]),
            raw_len: le_u32(&e[56..60]),
            crc32c: le_u32(&e[60..64]),
        },
    }
}

/// Callers always pass exactly 4 bytes (fixed offsets in checked slices).
fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// Callers always pass exactly 8 bytes (fixed offsets in checked slices).
fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}
