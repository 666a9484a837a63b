//! The segment object format: many queues' WAL batches packed into one object.
//!
//! Pure bytes in, bytes out — no I/O — so every rule here can be tested
//! exhaustively with property tests, and so the reader can fetch exactly the
//! pieces it needs (footer, then index, then one block) with range requests.
//!
//! # Layout
//!
//! ```text
//! 0                                                  index_offset   len-32   len
//! ┌──────────────┬──────────────┬─────┬──────────────┬───────────────┬────────┐
//! │   block 0    │   block 1    │ ... │  block n-1   │     index     │ footer │
//! └──────────────┴──────────────┴─────┴──────────────┴───────────────┴────────┘
//!
//! block (stored)   = lz4 block-format compression of the raw block
//! raw block        = batch*            (whole batches of ONE queue, sorted)
//! batch            = len u32 LE | payload [len bytes]
//!
//! index            = count u32 LE | entry * count | crc32c u32 LE
//!                    (the crc covers count and all entries)
//! entry (64 bytes, all little-endian):
//!   0  topic        u64     queue.topic
//!   8  queue        u32     queue.queue
//!  12  base_offset  u64     first offset in the block
//!  20  end_offset   u64     one past the last offset in the block
//!  28  min_ts       i64     smallest batch timestamp (ms)
//!  36  max_ts       i64     largest batch timestamp (ms)
//!  44  offset       u64     byte position of the block in the object
//!  52  len          u32     stored (compressed) length
//!  56  raw_len      u32     uncompressed length
//!  60  crc32c       u32     crc32c of the stored bytes
//!
//! footer (32 bytes):
//!   0  magic        [u8; 8] b"STRSEG01"
//!   8  version      u32     FORMAT_VERSION
//!  12  index_offset u64
//!  20  index_len    u32     bytes of index including its crc
//!  24  reserved     u32     zero
//!  28  crc32c       u32     crc32c of footer bytes 0..28
//! ```
//!
//! Every byte of an object is covered by exactly one checksum (a block's, the
//! index's or the footer's), so a single flipped byte is always detected
//! rather than silently returning different data.
//!
//! Blocks never split a batch: a reader that wants offset N fetches one block
//! and gets the whole WAL batch that contains N. Blocks never mix queues, so a
//! reader of one queue never decompresses another queue's data.

mod builder;
mod decode;
#[cfg(test)]
mod tests;

pub use builder::ObjectBuilder;
pub use decode::{decode_block, decode_footer, decode_index, decode_object_index};
use strata_common::{BlockRef, QueueKey};

/// Magic at the start of the footer; the trailing digits name the layout family.
pub const MAGIC: [u8; 8] = *b"STRSEG01";
/// Version written in the footer; readers reject versions they do not know.
pub const FORMAT_VERSION: u32 = 1;
/// Length of the fixed-size footer at the end of every object.
pub const FOOTER_LEN: usize = 32;
/// Length of one index entry.
pub const INDEX_ENTRY_LEN: usize = 64;
/// Upper bound on a block's uncompressed size. Readers trust no length larger
/// than this, so a corrupt `raw_len` cannot make them allocate gigabytes.
pub const MAX_BLOCK_RAW_BYTES: usize = 64 * 1024 * 1024;
/// Per-batch framing overhead inside a raw block (the `len u32`).
pub const BATCH_HEADER_LEN: usize = 4;

/// One entry of an object's index: a block and the queue whose batches it
/// holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockMeta {
    pub queue: QueueKey,
    pub block: BlockRef,
}

/// The decoded footer: where to find the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    pub index_offset: u64,
    pub index_len: u32,
}

impl Footer {
    /// Byte range of the index in the object, ready for a range request.
    pub fn index_range(&self) -> std::ops::Range<u64> {
        self.index_offset..self.index_offset.saturating_add(u64::from(self.index_len))
    }
}

/// Why building or decoding a segment object failed.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Batches must arrive sorted by (queue, base_offset) without overlap, so
    /// that blocks can be binary-searched by offset.
    #[error(
        "batch {queue} @{base_offset} out of order: previous batch was {previous_queue} ending at {previous_end}"
    )]
    OutOfOrder {
        queue: QueueKey,
        base_offset: u64,
        previous_queue: QueueKey,
        previous_end: u64,
    },
    /// A batch that cannot be represented (zero messages, offset overflow).
    #[error("invalid batch for {queue} @{base_offset}: {reason}")]
    InvalidBatch {
        queue: QueueKey,
        base_offset: u64,
        reason: &'static str,
    },
    /// A batch too big for any block a reader would accept.
    #[error("batch of {len} bytes exceeds the block limit of {max} bytes")]
    BatchTooLarge { len: usize, max: usize },
    /// An object must hold at least one batch.
    #[error("segment object has no batches")]
    Empty,
    /// The bytes do not form a valid object; never returned for valid input.
    #[error("corrupt segment object ({what}): {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// The footer is intact but names a layout this build does not know.
    #[error("unsupported segment format version {version} (this build reads {FORMAT_VERSION})")]
    UnsupportedVersion { version: u32 },
}

impl FormatError {
    pub(crate) fn corrupt(what: &'static str, detail: impl Into<String>) -> Self {
        FormatError::Corrupt {
            what,
            detail: detail.into(),
        }
    }
}
