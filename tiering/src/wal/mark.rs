//! The durable mark: how far a WAL is durable, told to another process
//! (a separate compactor) through a small file beside the segments. Pure
//! code, no I/O.
//!
//! # Layout (16 bytes, at offset 0 of `<wal dir>/durable-lsn`)
//!
//! ```text
//! +----------------+--------------------+
//! | durable_lsn u64 | !durable_lsn u64  |
//! +----------------+--------------------+
//!   both little-endian; the second is the bitwise complement of the first
//! ```
//!
//! The file is rewritten in place and never fsynced: the node writes a value
//! only after the WAL made it durable, so whatever a reader (or a power
//! loss) sees is at most the truth. The complement catches a torn or zeroed
//! write, which reads as "no mark" rather than as a wrong position.

/// Name of the mark file in the WAL directory.
pub const DURABLE_MARK_FILE: &str = "durable-lsn";
/// Bytes of the mark.
pub const DURABLE_MARK_LEN: usize = 16;

/// The mark for `lsn`.
pub fn encode_mark(lsn: u64) -> [u8; DURABLE_MARK_LEN] {
    let mut out = [0u8; DURABLE_MARK_LEN];
    out[..8].copy_from_slice(&lsn.to_le_bytes());
    out[8..].copy_from_slice(&(!lsn).to_le_bytes());
    out
}

/// The LSN a mark holds, or `None` for a torn, zeroed or short one.
pub fn decode_mark(buf: &[u8]) -> Option<u64> {
    let lsn = u64::from_le_bytes(*buf.first_chunk::<8>()?);
    let check = u64::from_le_bytes(*buf.get(8..16)?.first_chunk::<8>()?);
    (check == !lsn).then_some(lsn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_bytes() {
        assert_eq!(
            encode_mark(0x0102),
            [
                2, 1, 0, 0, 0, 0, 0, 0, 0xfd, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
            ]
        );
    }

    #[test]
    fn zeroed_short_and_torn_marks_are_refused() {
        assert_eq!(decode_mark(&[0u8; 16]), None);
        assert_eq!(decode_mark(&encode_mark(7)[..15]), None);
        let mut torn = encode_mark(7);
        torn[..8].copy_from_slice(&encode_mark(8)[..8]);
        assert_eq!(decode_mark(&torn), None);
    }

    proptest! {
        #[test]
        fn round_trips(lsn: u64) {
            prop_assert_eq!(decode_mark(&encode_mark(lsn)), Some(lsn));
        }

        #[test]
        fn one_flipped_bit_is_caught(lsn: u64, bit in 0usize..128) {
            let mut buf = encode_mark(lsn);
            buf[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(decode_mark(&buf), None);
        }
    }
}
