//! Startup scan of the WAL directory: replay every valid record, cut a torn
//! tail off the last segment, refuse damage to acknowledged records (see
//! `damage` for how the two are told apart), and start the WAL again at
//! the upload checkpoint when everything it holds is below that.
//!
//! Why the WAL never ends below the checkpoint: the uploader takes every
//! record below it as uploaded, so LSNs reused below it would never be
//! uploaded. A WAL ends there only after damage to uploaded records or a
//! lost volume.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::damage::{Damage, Verdict, judge};
use super::frame::{
    FRAME_HEADER_LEN, FrameResult, SEGMENT_HEADER_LEN, decode_frame, decode_segment_header,
    encode_segment_header,
};
use super::segment::{create_segment, list_segments, sync_dir};
use super::{RecoveryReport, TruncatedTail, WalError};

const HEADER: u64 = SEGMENT_HEADER_LEN as u64;

/// A segment as recovery found it.
#[derive(Debug)]
pub(crate) struct RecoveredSegment {
    pub base_lsn: u64,
    pub end_lsn: u64,
    pub path: PathBuf,
}

/// What recovery needs to know besides the files.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Every record below this LSN is in object storage.
    pub uploaded_lsn: u64,
    /// Most bytes one group commit writes (a larger frame is written alone).
    pub group_max: u64,
}

/// Scans all segments in `dir` in LSN order, calling `visit` for each record.
pub(crate) fn recover<F>(
    dir: &Path,
    bounds: Bounds,
    visit: &mut F,
) -> Result<(Vec<RecoveredSegment>, RecoveryReport), WalError>
where
    F: FnMut(u64, &[u8]) -> Result<(), WalError>,
{
    let files = list_segments(dir)?;
    let wal_end_lsn = match files.last() {
        Some((base, path)) => base + file_len(path)?.saturating_sub(HEADER),
        None => 0,
    };
    let mut report = RecoveryReport {
        segments: files.len(),
        records: 0,
        bytes: 0,
        truncated: None,
        restarted_at: None,
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
            if wal_end_lsn <= bounds.uploaded_lsn {
                break;
            }
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
            _ if wal_end_lsn <= bounds.uploaded_lsn => break,
            Ok(found) => {
                return Err(corrupt(
                    0,
                    format!("header says base LSN {found}, file name says {base_lsn}"),
                ));
            }
            // A crash between creating the newest file and syncing its header.
            Err(e) if is_last && file_len <= HEADER => {
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
        report.bytes += scan.valid_len - HEADER;
        let end_lsn = base_lsn + (scan.valid_len - HEADER);
        if let Some(found) = scan.damage {
            let damage = Damage {
                in_last_segment: is_last,
                at_lsn: end_lsn,
                segment_end_lsn: base_lsn + file_len.saturating_sub(HEADER),
                wal_end_lsn,
                claimed_frame_len: found.claimed_frame_len,
            };
            match judge(&damage, bounds.uploaded_lsn, bounds.group_max) {
                Verdict::TornTail => {
                    let tail = truncate_tail(&path, scan.valid_len, file_len, found.reason)?;
                    report.truncated = Some(tail);
                }
                Verdict::Uploaded => {
                    tracing::warn!(path = %path.display(), offset = scan.valid_len,
                        reason = %found.reason, uploaded_lsn = bounds.uploaded_lsn,
                        "damaged WAL records are all in object storage already");
                    break;
                }
                Verdict::Refuse(why) => {
                    return Err(corrupt(scan.valid_len, format!("{}; {why}", found.reason)));
                }
            }
        }
        segments.push(RecoveredSegment {
            base_lsn,
            end_lsn,
            path,
        });
    }
    let end_lsn = segments.last().map_or(0, |s| s.end_lsn);
    if end_lsn < bounds.uploaded_lsn || segments.len() < report.segments {
        segments = vec![restart_at(dir, bounds.uploaded_lsn, end_lsn)?];
        report.restarted_at = Some(bounds.uploaded_lsn);
    }
    Ok((segments, report))
}

fn file_len(path: &Path) -> Result<u64, WalError> {
    Ok(std::fs::metadata(path).map_err(WalError::io(path))?.len())
}

/// Replaces every segment with an empty one starting at `uploaded_lsn`.
/// Everything they hold is in object storage. The old files go first, so a
/// crash part-way leaves a WAL that still ends below the checkpoint and is
/// started again the same way.
fn restart_at(dir: &Path, uploaded_lsn: u64, end_lsn: u64) -> Result<RecoveredSegment, WalError> {
    let old = list_segments(dir)?;
    for (_, path) in &old {
        std::fs::remove_file(path).map_err(WalError::io(path))?;
    }
    sync_dir(dir)?;
    let (_, path) = create_segment(dir, uploaded_lsn)?;
    tracing::warn!(dir = %dir.display(), end_lsn, uploaded_lsn, removed_segments = old.len(),
        "the WAL ended below its upload checkpoint (damaged or lost, with everything it held \
         already in object storage): new records start at the checkpoint");
    Ok(RecoveredSegment {
        base_lsn: uploaded_lsn,
        end_lsn: uploaded_lsn,
        path,
    })
}

/// Outcome of scanning one segment's records.
struct Scan {
    records: u64,
    /// File offset just past the last valid record.
    valid_len: u64,
    /// Why scanning stopped early, at `valid_len`.
    damage: Option<Found>,
}

/// Damage as the scan saw it.
struct Found {
    reason: String,
    /// Length the frame's header claims, when it looked sane.
    claimed_frame_len: Option<u64>,
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
    let mut offset = HEADER;
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
            FrameResult::Corrupt { reason } => break Some(Found::insane(reason)),
            // Unreachable: a valid frame is longer than its header.
            FrameResult::Complete { .. } => 0,
        };
        if got < FRAME_HEADER_LEN {
            break Some(Found::insane(format!(
                "torn frame header: {got} of {FRAME_HEADER_LEN} bytes"
            )));
        }
        let claimed = Some((got + needed) as u64);
        let found = |reason| {
            Some(Found {
                reason,
                claimed_frame_len: claimed,
            })
        };
        // Check the claimed length against the file before allocating it.
        let remaining = file_len.saturating_sub(offset + got as u64);
        if needed as u64 > remaining {
            break found(format!(
                "torn record: needs {needed} more bytes, file has {remaining}"
            ));
        }
        buf.resize(got + needed, 0);
        let more = read_full(reader, &mut buf[got..]).map_err(ScanError::Io)?;
        if more < needed {
            break found(format!("torn record: read {more} of {needed} bytes"));
        }
        match decode_frame(&buf) {
            FrameResult::Complete { payload, frame_len } => {
                let lsn = base_lsn + (offset - HEADER);
                visit(lsn, &buf[payload]).map_err(ScanError::Visit)?;
                offset += frame_len as u64;
                records += 1;
            }
            FrameResult::Corrupt { reason } => break found(reason),
            FrameResult::Incomplete { needed } => {
                break found(format!("frame still incomplete, needs {needed} bytes"));
            }
        }
    };
    Ok(Scan {
        records,
        valid_len: offset,
        damage,
    })
}

impl Found {
    /// Damage where not even the frame's length could be trusted.
    fn insane(reason: String) -> Found {
        Found {
            reason,
            claimed_frame_len: None,
        }
    }
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
