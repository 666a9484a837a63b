//! Startup scan of the WAL directory: replay every valid record, cut a torn
//! tail off the last segment, refuse damage anywhere else.
//!
//! Why only the last segment may be cut: the I/O thread creates segment N+1
//! only after every record of segment N was written and fdatasync'ed, so a
//! crash can tear only the newest file. Damage in an older one is real
//! corruption, and silently dropping acknowledged records would be worse than
//! refusing to start.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::frame::{
    FRAME_HEADER_LEN, FrameResult, SEGMENT_HEADER_LEN, decode_frame, decode_segment_header,
    encode_segment_header,
};
use super::segment::{list_segments, sync_dir};
use super::{RecoveryReport, TruncatedTail, WalError};

/// A segment as recovery found it.
#[derive(Debug)]
pub(crate) struct RecoveredSegment {
    pub base_lsn: u64,
    pub end_lsn: u64,
    pub path: PathBuf,
}

/// Scans all segments in `dir` in LSN order, calling `visit` for each record.
pub(crate) fn recover<F>(
    dir: &Path,
    visit: &mut F,
) -> Result<(Vec<RecoveredSegment>, RecoveryReport), WalError>
where
    F: FnMut(u64, &[u8]) -> Result<(), WalError>,
{
    let files = list_segments(dir)?;
    let mut report = RecoveryReport {
        segments: files.len(),
        records: 0,
        bytes: 0,
        truncated: None,
    };
    let mut segments: Vec<RecoveredSegment> = Vec::with_capacity(files.len());
    for (i, (base_lsn, path)) in files.into_iter().enumerate() {
        let is_last = i + 1 == report.segments;
        let corrupt = |offset: u64, reason: String| WalError::Corrupt {
            path: path.clone(),
            offset,
            reason,
        };
        if let Some(prev) = segments.last()
            && prev.end_lsn != base_lsn
        {
            return Err(corrupt(
                0,
                format!(
                    "segment starts at LSN {base_lsn} but the previous one ends at {}",
                    prev.end_lsn
                ),
            ));
        }
        let file = File::open(&path).map_err(WalError::io(&path))?;
        let file_len = file.metadata().map_err(WalError::io(&path))?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        let got = read_full(&mut reader, &mut header).map_err(WalError::io(&path))?;
        match decode_segment_header(&header[..got]) {
            Ok(found) if found == base_lsn => {}
            Ok(found) => {
                return Err(corrupt(
                    0,
                    format!("header says base LSN {found}, file name says {base_lsn}"),
                ));
            }
            // A crash between creating the newest file and syncing its header.
            Err(e) if is_last && file_len <= SEGMENT_HEADER_LEN as u64 => {
                rewrite_header(dir, &path, base_lsn)?;
                tracing::warn!(path = %path.display(), file_len, reason = %e,
                    "rewrote the header of a WAL segment torn during creation");
                segments.push(RecoveredSegment {
                    base_lsn,
                    end_lsn: base_lsn,
                    path,
                });
                continue;
            }
            Err(e) => return Err(corrupt(0, e.to_string())),
        }

        let scan = scan_records(&mut reader, file_len, base_lsn, visit)
            .map_err(|e| e.into_wal_error(&path))?;
        report.records += scan.records;
        report.bytes += scan.valid_len - SEGMENT_HEADER_LEN as u64;
        if let Some((offset, reason)) = scan.damage {
            if !is_last {
                return Err(corrupt(offset, reason));
            }
            let tail = truncate_tail(&path, offset, file_len, reason)?;
            report.truncated = Some(tail);
        }
        segments.push(RecoveredSegment {
            base_lsn,
            end_lsn: base_lsn + (scan.valid_len - SEGMENT_HEADER_LEN as u64),
            path,
        });
    }
    Ok((segments, report))
}

/// Outcome of scanning one segment's records.
struct Scan {
    records: u64,
    /// File offset just past the last valid record.
    valid_len: u64,
    /// Where and why scanning stopped early.
    damage: Option<(u64, String)>,
}

enum ScanError {
    Io(std::io::Error),
    Visit(WalError),
}

impl ScanError {
    fn into_wal_error(self, path: &Path) -> WalError {
        match self {
            ScanError::Io(e) => WalError::io(path)(e),
            ScanError::Visit(e) => e,
        }
    }
}

/// Streams the frames after the header. Reads one record at a time, so
/// memory stays bounded by the largest record, not the segment size.
fn scan_records<F>(
    reader: &mut impl Read,
    file_len: u64,
    base_lsn: u64,
    visit: &mut F,
) -> Result<Scan, ScanError>
where
    F: FnMut(u64, &[u8]) -> Result<(), WalError>,
{
    let mut offset = SEGMENT_HEADER_LEN as u64;
    let mut records = 0;
    let mut buf = Vec::new();
    let damage = loop {
        buf.clear();
        buf.resize(FRAME_HEADER_LEN, 0);
        let got = read_full(reader, &mut buf).map_err(ScanError::Io)?;
        if got == 0 {
            break None;
        }
        buf.truncate(got);
        let needed = match decode_frame(&buf) {
            FrameResult::Incomplete { needed } => needed,
            FrameResult::Corrupt { reason } => break Some(reason),
            // Unreachable: a valid frame is longer than its header.
            FrameResult::Complete { .. } => 0,
        };
        if got < FRAME_HEADER_LEN {
            break Some(format!(
                "torn frame header: {got} of {FRAME_HEADER_LEN} bytes"
            ));
        }
        // Check the claimed length against the file before allocating it.
        let remaining = file_len.saturating_sub(offset + got as u64);
        if needed as u64 > remaining {
            break Some(format!(
                "torn record: needs {needed} more bytes, file has {remaining}"
            ));
        }
        buf.resize(got + needed, 0);
        let more = read_full(reader, &mut buf[got..]).map_err(ScanError::Io)?;
        if more < needed {
            break Some(format!("torn record: read {more} of {needed} bytes"));
        }
        match decode_frame(&buf) {
            FrameResult::Complete { payload, frame_len } => {
                let lsn = base_lsn + (offset - SEGMENT_HEADER_LEN as u64);
                visit(lsn, &buf[payload]).map_err(ScanError::Visit)?;
                offset += frame_len as u64;
                records += 1;
            }
            FrameResult::Corrupt { reason } => break Some(reason),
            FrameResult::Incomplete { needed } => {
                break Some(format!("frame still incomplete, needs {needed} bytes"));
            }
        }
    };
    Ok(Scan {
        records,
        valid_len: offset,
        damage: damage.map(|reason| (offset, reason)),
    })
}

/// Cuts the last segment back to its last valid record and makes the cut durable.
fn truncate_tail(
    path: &Path,
    valid_len: u64,
    file_len: u64,
    reason: String,
) -> Result<TruncatedTail, WalError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(WalError::io(path))?;
    file.set_len(valid_len)
        .and_then(|()| file.sync_all())
        .map_err(WalError::io(path))?;
    let cut_bytes = file_len - valid_len;
    tracing::warn!(path = %path.display(), valid_len, cut_bytes, reason = %reason,
        "truncated a torn or corrupt tail of the last WAL segment");
    Ok(TruncatedTail {
        path: path.to_path_buf(),
        valid_len,
        cut_bytes,
        reason,
    })
}

/// Rewrites the header of a segment whose creation was torn. Keeping the
/// file (rather than deleting it) keeps LSNs monotonic even when every older
/// segment was already released.
fn rewrite_header(dir: &Path, path: &Path, base_lsn: u64) -> Result<(), WalError> {
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(WalError::io(path))?;
    file.write_all(&encode_segment_header(base_lsn))
        .and_then(|()| file.sync_all())
        .map_err(WalError::io(path))?;
    sync_dir(dir)
}

/// Like `read_exact`, but reports how many bytes it got before EOF.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
