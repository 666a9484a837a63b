//! Reading a span of records: what an upload takes from the WAL.
//!
//! An upload reads everything from its checkpoint to the durable end, up to
//! tens of MiB. Read one record at a time that was two `pread`s per message
//! (its header, then the whole frame) and, on a WAL volume read by a
//! separate compactor, a directory listing and a mark read per message. A
//! span is read instead in chunks of up to [`SPAN_CHUNK`] within a segment,
//! each chunk cut into its frames (checksums verified) and every record
//! handed out as a slice of its chunk. A frame longer than a chunk is read
//! whole on its own.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use super::WalError;
use super::frame::{FrameResult, SEGMENT_HEADER_LEN, decode_frame};

/// Bytes read at once from a segment.
pub const SPAN_CHUNK: u64 = 1 << 20;

/// The segment holding an LSN, open for reading, as far as it may be read.
#[derive(Debug, Clone)]
pub struct SegmentRead {
    pub file: Arc<File>,
    pub path: PathBuf,
    pub base_lsn: u64,
    /// Where reading must stop in this segment: its end, or the durable
    /// end in the segment still being written.
    pub end_lsn: u64,
}

impl SegmentRead {
    /// `len` bytes of the segment from `lsn`.
    fn read(&self, lsn: u64, len: u64) -> Result<Bytes, WalError> {
        let mut buf = vec![0u8; len as usize];
        let offset = SEGMENT_HEADER_LEN as u64 + (lsn - self.base_lsn);
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(WalError::io(&self.path))?;
        Ok(Bytes::from(buf))
    }

    fn corrupt(&self, lsn: u64, reason: String) -> WalError {
        WalError::Corrupt {
            path: self.path.clone(),
            offset: SEGMENT_HEADER_LEN as u64 + (lsn - self.base_lsn),
            reason,
        }
    }
}

/// Records from `from` until `until`, with `locate` giving the segment of
/// an LSN, stopping before the record that would pass `max_bytes` (at least
/// one is read): each with its position, and the position after the last
/// one read. `from` and `until` must both be record boundaries (uploads read
/// up to the durable LSN, which always is one). Blocking file I/O.
pub fn read_span(
    locate: impl Fn(u64) -> Result<SegmentRead, WalError>,
    from: u64,
    until: u64,
    max_bytes: u64,
) -> Result<(Vec<(u64, Bytes)>, u64), WalError> {
    let mut span = Span {
        records: Vec::new(),
        next: from,
        bytes: 0,
        max_bytes,
    };
    while span.next < until {
        let segment = locate(span.next)?;
        let end = segment.end_lsn.min(until);
        let chunk = segment.read(span.next, (end - span.next).min(SPAN_CHUNK))?;
        let mut at = 0usize;
        while at < chunk.len() {
            let lsn = span.next;
            match decode_frame(&chunk[at..]) {
                FrameResult::Complete { payload, frame_len } => {
                    let record = chunk.slice(at + payload.start..at + payload.end);
                    if !span.take(record, frame_len) {
                        return Ok(span.done());
                    }
                    at += frame_len;
                }
                // The rest starts the next chunk.
                FrameResult::Incomplete { .. } if at > 0 => break,
                // A frame longer than a chunk, or one past where reading stops.
                FrameResult::Incomplete { needed } => {
                    let frame_len = chunk.len() as u64 + needed as u64;
                    if lsn + frame_len > end {
                        return Err(segment.corrupt(
                            lsn,
                            format!(
                                "record of {frame_len} bytes runs past LSN {end}; \
                                 the start {lsn} or the end {end} is not a record boundary"
                            ),
                        ));
                    }
                    let whole = segment.read(lsn, frame_len)?;
                    let FrameResult::Complete { payload, frame_len } = decode_frame(&whole) else {
                        return Err(segment.corrupt(lsn, "frame changed while read".into()));
                    };
                    if !span.take(whole.slice(payload), frame_len) {
                        return Ok(span.done());
                    }
                    break;
                }
                FrameResult::Corrupt { reason } => return Err(segment.corrupt(lsn, reason)),
            }
        }
    }
    Ok(span.done())
}

/// The records read so far.
struct Span {
    records: Vec<(u64, Bytes)>,
    next: u64,
    bytes: u64,
    max_bytes: u64,
}

impl Span {
    /// Takes the record at `next` unless it would pass the byte limit.
    fn take(&mut self, payload: Bytes, frame_len: usize) -> bool {
        let frame_len = frame_len as u64;
        if !self.records.is_empty() && self.bytes + frame_len > self.max_bytes {
            return false;
        }
        self.records.push((self.next, payload));
        self.bytes += frame_len;
        self.next += frame_len;
        true
    }

    fn done(self) -> (Vec<(u64, Bytes)>, u64) {
        (self.records, self.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::frame::{FRAME_HEADER_LEN, encode_frame, encode_segment_header};

    /// A segment file at `base_lsn` holding `payloads`, and its end LSN.
    fn segment(dir: &std::path::Path, base_lsn: u64, payloads: &[Vec<u8>]) -> SegmentRead {
        let path = dir.join(format!("{base_lsn:020}.wal"));
        let mut bytes = encode_segment_header(base_lsn).to_vec();
        for p in payloads {
            bytes.extend(encode_frame(p).unwrap());
        }
        std::fs::write(&path, &bytes).unwrap();
        SegmentRead {
            file: Arc::new(File::open(&path).unwrap()),
            end_lsn: base_lsn + (bytes.len() - SEGMENT_HEADER_LEN) as u64,
            path,
            base_lsn,
        }
    }

    fn payloads(sizes: &[usize]) -> Vec<Vec<u8>> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|j| (i * 31 + j) as u8).collect())
            .collect()
    }

    fn locate_in(segments: Vec<SegmentRead>) -> impl Fn(u64) -> Result<SegmentRead, WalError> {
        move |lsn| {
            segments
                .iter()
                .find(|s| (s.base_lsn..s.end_lsn).contains(&lsn))
                .cloned()
                .ok_or(WalError::LsnOutOfRange {
                    lsn,
                    first_lsn: 0,
                    durable_lsn: 0,
                })
        }
    }

    #[test]
    fn records_across_chunks_and_segments_come_back_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let chunk = SPAN_CHUNK as usize;
        // Small records, records straddling chunk ends, one larger than a chunk.
        let first = payloads(&[100, chunk - 50, 3000, 2 * chunk + 7, 1, 500]);
        let second = payloads(&[chunk / 2, chunk / 2, 42]);
        let a = segment(dir.path(), 0, &first);
        let b = segment(dir.path(), a.end_lsn, &second);
        let end = b.end_lsn;
        let (records, next) = read_span(locate_in(vec![a, b]), 0, end, u64::MAX).unwrap();
        assert_eq!(next, end);
        let expected: Vec<&Vec<u8>> = first.iter().chain(&second).collect();
        assert_eq!(records.len(), expected.len());
        let mut lsn = 0;
        for ((at, got), want) in records.iter().zip(expected) {
            assert_eq!(*at, lsn);
            assert_eq!(got.as_ref(), want.as_slice());
            lsn += (FRAME_HEADER_LEN + want.len()) as u64;
        }
    }

    #[test]
    fn a_span_stops_before_the_record_that_passes_the_byte_limit() {
        let dir = tempfile::tempdir().unwrap();
        let s = segment(dir.path(), 0, &payloads(&[10, 10, 10]));
        let end = s.end_lsn;
        let frame = (FRAME_HEADER_LEN + 10) as u64;
        let locate = locate_in(vec![s]);
        let (records, next) = read_span(&locate, 0, end, 2 * frame + 1).unwrap();
        assert_eq!((records.len(), next), (2, 2 * frame));
        // At least one record, even over the limit.
        let (records, next) = read_span(&locate, frame, end, 1).unwrap();
        assert_eq!((records.len(), next), (1, 2 * frame));
        // Nothing to read.
        let (records, next) = read_span(&locate, end, end, u64::MAX).unwrap();
        assert_eq!((records.len(), next), (0, end));
    }

    #[test]
    fn damage_and_a_start_inside_a_record_are_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let s = segment(dir.path(), 0, &payloads(&[64, 64]));
        let end = s.end_lsn;
        let path = s.path.clone();
        let locate = locate_in(vec![s]);
        let err = read_span(&locate, 3, end, u64::MAX).unwrap_err();
        assert!(matches!(err, WalError::Corrupt { .. }), "{err}");
        // Flip a byte of the second record's payload.
        let mut bytes = std::fs::read(&path).unwrap();
        let at = SEGMENT_HEADER_LEN + 2 * FRAME_HEADER_LEN + 64 + 5;
        bytes[at] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        match read_span(&locate, 0, end, u64::MAX) {
            Err(WalError::Corrupt { offset, .. }) => {
                assert_eq!(offset, (SEGMENT_HEADER_LEN + FRAME_HEADER_LEN + 64) as u64);
            }
            other => panic!("expected corruption, got {other:?}"),
        }
    }
}
