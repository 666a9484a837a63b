//! [`BlockRef`]: where one compressed block of one queue lies inside a
//! segment object. The object's own index (`strata_objects::format`), the
//! metadata store's range records and the cold read path all name blocks
//! with this one type.

use serde::{Deserialize, Serialize};

/// One compressed block of one queue inside an object: the offsets and
/// times it covers and the bytes that hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRef {
    /// First offset of the first batch in the block.
    pub base_offset: u64,
    /// One past the last offset of the last batch (exclusive).
    pub end_offset: u64,
    pub min_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    /// Byte position of the block in the object.
    pub offset: u64,
    /// Stored (compressed) length.
    pub len: u32,
    /// Uncompressed length.
    pub raw_len: u32,
    /// crc32c of the stored bytes.
    pub crc32c: u32,
}

impl BlockRef {
    /// Byte range of the block in the object, ready for a range request.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.offset..self.offset.saturating_add(u64::from(self.len))
    }
}
