//! WAL byte formats: record frames and segment headers. Pure code, no I/O.
//!
//! # Record frame
//!
//! ```text
//! +------------+---------+---------------------+
//! | crc32c u32 | len u32 | payload (len bytes) |
//! +------------+---------+---------------------+
//!   crc32c = crc32c(len as 4 LE bytes ‖ payload), little-endian
//! ```
//!
//! The checksum covers the length too, so a corrupted length is caught, and a
//! zeroed region (what a crash can leave after a file was extended) never
//! validates: `len == 0` is rejected outright, so an all-zero header is invalid.
//!
//! # Segment header (24 bytes, at offset 0 of every segment file)
//!
//! ```text
//! +-------------------+-------------+--------------+--------------+
//! | magic "STRATAWL"  | version u32 | reserved u32 | base_lsn u64 |
//! |     8 bytes       |    (=1)     |     (=0)     |              |
//! +-------------------+-------------+--------------+--------------+
//! ```
//!
//! `base_lsn` repeats the LSN in the file name, so a renamed or misplaced file
//! is detected rather than replayed at the wrong position.

use std::ops::Range;

use super::WalError;

/// Bytes before the payload of each frame: crc32c + len.
pub const FRAME_HEADER_LEN: usize = 8;
/// Largest payload a frame may carry: a maximal message body plus room for
/// the batch header and the other fields.
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024 * 1024 + 1024 * 1024;
/// Bytes of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 24;
/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"STRATAWL";
/// Segment format version written by this code.
pub const SEGMENT_VERSION: u32 = 1;

/// What [`decode_frame`] found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameResult {
    /// A valid frame: its payload is `buf[payload]`, and the next frame
    /// starts at `buf[frame_len..]`.
    Complete {
        payload: Range<usize>,
        frame_len: usize,
    },
    /// The buffer ends inside a frame whose header looks sane; `needed` more
    /// bytes would complete it. At the end of a file this is a torn write.
    Incomplete { needed: usize },
    /// The bytes cannot be a frame this code wrote.
    Corrupt { reason: String },
}

/// Frame header (crc + len) for `payload`.
pub fn frame_header(payload: &[u8]) -> Result<[u8; FRAME_HEADER_LEN], WalError> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(WalError::TooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD_LEN,
        });
    }
    // Cannot truncate: MAX_PAYLOAD_LEN < u32::MAX.
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), payload);
    let mut header = [0u8; FRAME_HEADER_LEN];
    header[..4].copy_from_slice(&crc.to_le_bytes());
    header[4..].copy_from_slice(&len);
    Ok(header)
}

/// Header followed by payload, as one buffer.
pub fn encode_frame(payload: &[u8]) -> Result<Vec<u8>, WalError> {
    let header = frame_header(payload)?;
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    Ok(out)
}

/// Decodes the frame at the start of `buf` (extra bytes after it are ignored).
pub fn decode_frame(buf: &[u8]) -> FrameResult {
    let Some(header) = buf.first_chunk::<FRAME_HEADER_LEN>() else {
        return FrameResult::Incomplete {
            needed: FRAME_HEADER_LEN - buf.len(),
        };
    };
    let [c0, c1, c2, c3, l0, l1, l2, l3] = *header;
    let stored_crc = u32::from_le_bytes([c0, c1, c2, c3]);
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    if len == 0 {
        return FrameResult::Corrupt {
            reason: "frame length is 0".into(),
        };
    }
    if len > MAX_PAYLOAD_LEN {
        return FrameResult::Corrupt {
            reason: format!("frame length {len} exceeds the maximum {MAX_PAYLOAD_LEN}"),
        };
    }
    let frame_len = FRAME_HEADER_LEN + len;
    let Some(payload) = buf.get(FRAME_HEADER_LEN..frame_len) else {
        return FrameResult::Incomplete {
            needed: frame_len - buf.len(),
        };
    };
    let crc = crc32c::crc32c_append(crc32c::crc32c(&[l0, l1, l2, l3]), payload);
    if crc != stored_crc {
        return FrameResult::Corrupt {
            reason: format!("checksum mismatch: stored {stored_crc:#010x}, computed {crc:#010x}"),
        };
    }
    FrameResult::Complete {
        payload: FRAME_HEADER_LEN..frame_len,
        frame_len,
    }
}

/// Why a segment header is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentHeaderError {
    #[error("segment header is {len} bytes, shorter than {SEGMENT_HEADER_LEN}")]
    Short { len: usize },
    #[error("segment header has the wrong magic")]
    BadMagic,
    #[error("unsupported segment version {0}")]
    UnsupportedVersion(u32),
    #[error("segment header reserved field is {0:#x}, not 0")]
    Reserved(u32),
}

/// The 24-byte header of a segment starting at `base_lsn`.
pub fn encode_segment_header(base_lsn: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut out = [0u8; SEGMENT_HEADER_LEN];
    out[..8].copy_from_slice(&SEGMENT_MAGIC);
    out[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    // bytes 12..16: reserved, zero
    out[16..].copy_from_slice(&base_lsn.to_le_bytes());
    out
}

/// Parses a segment header and returns its `base_lsn`.
pub fn decode_segment_header(buf: &[u8]) -> Result<u64, SegmentHeaderError> {
    let Some(header) = buf.first_chunk::<SEGMENT_HEADER_LEN>() else {
        return Err(SegmentHeaderError::Short { len: buf.len() });
    };
    let (magic, rest) = header.split_at(8);
    if magic != SEGMENT_MAGIC {
        return Err(SegmentHeaderError::BadMagic);
    }
    let mut word = [0u8; 4];
    word.copy_from_slice(&rest[..4]);
    let version = u32::from_le_bytes(word);
    if version != SEGMENT_VERSION {
        return Err(SegmentHeaderError::UnsupportedVersion(version));
    }
    word.copy_from_slice(&rest[4..8]);
    let reserved = u32::from_le_bytes(word);
    if reserved != 0 {
        return Err(SegmentHeaderError::Reserved(reserved));
    }
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&rest[8..16]);
    Ok(u64::from_le_bytes(lsn))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn zeroed_region_never_validates() {
        assert!(matches!(
            decode_frame(&[0u8; 8]),
            FrameResult::Corrupt { .. }
        ));
        assert!(matches!(
            decode_frame(&[0u8; 64]),
            FrameResult::Corrupt { .. }
        ));
        assert_eq!(
            decode_frame(&[0u8; 3]),
            FrameResult::Incomplete { needed: 5 }
        );
    }

    #[test]
    fn empty_and_oversized_payloads() {
        // An empty payload encodes (len 0) but can never decode: callers
        // must not append empty records; the WAL refuses them up front.
        let frame = encode_frame(&[]).unwrap();
        assert!(matches!(decode_frame(&frame), FrameResult::Corrupt { .. }));
        let mut header = [0u8; 8];
        header[4..].copy_from_slice(&(MAX_PAYLOAD_LEN as u32 + 1).to_le_bytes());
        assert!(matches!(decode_frame(&header), FrameResult::Corrupt { .. }));
    }

    #[test]
    fn segment_header_errors() {
        assert_eq!(
            decode_segment_header(&[0u8; 10]),
            Err(SegmentHeaderError::Short { len: 10 })
        );
        assert_eq!(
            decode_segment_header(&[0u8; 24]),
            Err(SegmentHeaderError::BadMagic)
        );
        let mut h = encode_segment_header(5);
        h[8] = 2;
        assert_eq!(
            decode_segment_header(&h),
            Err(SegmentHeaderError::UnsupportedVersion(2))
        );
        let mut h = encode_segment_header(5);
        h[12] = 1;
        assert_eq!(
            decode_segment_header(&h),
            Err(SegmentHeaderError::Reserved(1))
        );
    }

    proptest! {
        #[test]
        fn frame_round_trip(payload in proptest::collection::vec(any::<u8>(), 1..512), extra in proptest::collection::vec(any::<u8>(), 0..16)) {
            let mut buf = encode_frame(&payload).unwrap();
            let len = buf.len();
            buf.extend_from_slice(&extra);
            match decode_frame(&buf) {
                FrameResult::Complete { payload: range, frame_len } => {
                    prop_assert_eq!(frame_len, len);
                    prop_assert_eq!(&buf[range], &payload[..]);
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
            for cut in 0..len {
                let is_incomplete = matches!(decode_frame(&buf[..cut]), FrameResult::Incomplete { .. });
                prop_assert!(is_incomplete, "cut at {}", cut);
            }
        }

        #[test]
        fn any_single_byte_flip_is_caught(
            payload in proptest::collection::vec(any::<u8>(), 1..256),
            at in any::<prop::sample::Index>(),
            xor in 1u8..=255,
        ) {
            let mut buf = encode_frame(&payload).unwrap();
            let at = at.index(buf.len());
            buf[at] ^= xor;
            let caught = matches!(decode_frame(&buf), FrameResult::Corrupt { .. } | FrameResult::Incomplete { .. });
            prop_assert!(caught, "flip at {} not caught", at);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_frame(&bytes);
            let _ = decode_segment_header(&bytes);
        }

        #[test]
        fn segment_header_round_trip(base in any::<u64>()) {
            prop_assert_eq!(decode_segment_header(&encode_segment_header(base)), Ok(base));
        }
    }
}
