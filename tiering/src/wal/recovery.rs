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
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::damage::{Damage, Verdict, judge};
use super::frame::{
    FRAME_HEADER_LEN, FrameResult, MAX_PAYLOAD_LEN, SEGMENT_HEADER_LEN, decode_frame,
    decode_segment_header, encode_segment_header,
};
use super::segment::{create_segment, list_segments, sync_dir};
use super::{RecoveryReport, SkippedDamage, TruncatedTail, WalError};
use crate::batch::starts_like_a_record;

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
        skipped_damage: Vec::new(),
    };
    let mut segments: Vec<RecoveredSegment> = Vec::with_capacity(files.len());
    'segments: for (i, (base_lsn, path)) in files.into_iter().enumerate() {
        let is_last = i + 1 == report.segments;
        let corrupt = |offset: u64, reason: String| WalError::Corrupt {
            path: path.clone(),
            offset,
            reason,
        };
        // The file cannot be read at all, nor what follows it.
        let unreadable = |reason: String| WalError::Corrupt {
            path: path.clone(),
            offset: 0,
            reason: format!(
                "{reason}; the records from LSN {base_lsn} up to {wal_end_lsn} cannot be \
                 replayed. Restore the volume, or give them up and start: strata check \
                 --data-dir <data-dir> --cut-damage"
            ),
        };
        if let Some(prev) = segments.last()
            && prev.end_lsn != base_lsn
        {
            let gap = format!(
                "segment starts at LSN {base_lsn} but the previous one ends at {}",
                prev.end_lsn
            );
            if wal_end_lsn <= bounds.uploaded_lsn {
                report.skipped_damage.push(SkippedDamage {
                    path: path.clone(),
                    offset: 0,
                    reason: gap,
                });
                break 'segments;
            }
            return Err(unreadable(gap));
        }
        let file = File::open(&path).map_err(WalError::io(&path))?;
        let file_len = file.metadata().map_err(WalError::io(&path))?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        let got = read_full(&mut reader, &mut header).map_err(WalError::io(&path))?;
        match decode_segment_header(&header[..got]) {
            Ok(found) if found == base_lsn => {}
            other if wal_end_lsn <= bounds.uploaded_lsn => {
                let reason = match other {
                    Ok(found) => format!("header says base LSN {found}, file name says {base_lsn}"),
                    Err(e) => e.to_string(),
                };
                report.skipped_damage.push(SkippedDamage {
                    path: path.clone(),
                    offset: 0,
                    reason,
                });
                break 'segments;
            }
            Ok(found) => {
                return Err(unreadable(format!(
                    "header says base LSN {found}, file name says {base_lsn}"
                )));
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
            Err(e) => return Err(unreadable(e.to_string())),
        }

        let segment_end_lsn = base_lsn + (file_len - HEADER);
        let mut from = HEADER;
        let end_lsn = loop {
            let scan = scan_records(&mut reader, file_len, base_lsn, from, visit)
                .map_err(|e| e.into_wal_error(&path))?;
            report.records += scan.records;
            report.bytes += scan.valid_len - from;
            let end_lsn = base_lsn + (scan.valid_len - HEADER);
            let Some(reason) = scan.damage else {
                break end_lsn;
            };
            let uploaded = bounds.uploaded_lsn;
            if end_lsn < uploaded && uploaded < wal_end_lsn {
                // Damaged records in object storage already, and records
                // that are not after them: replay goes on at the checkpoint
                // (a record boundary), or in the next segment.
                tracing::warn!(path = %path.display(), offset = scan.valid_len, reason = %reason,
                    uploaded_lsn = uploaded, "damaged WAL records are in object storage already; \
                    replay goes on at the upload checkpoint");
                report.skipped_damage.push(SkippedDamage {
                    path: path.clone(),
                    offset: scan.valid_len,
                    reason,
                });
                if uploaded >= segment_end_lsn {
                    break segment_end_lsn;
                }
                from = uploaded - base_lsn + HEADER;
                reader
                    .seek(SeekFrom::Start(from))
                    .map_err(WalError::io(&path))?;
                continue;
            }
            let after = file_len - scan.valid_len;
            // A single frame longer than a group may be torn anywhere in
            // itself; no whole record can follow it then.
            let record_after = is_last
                && after > bounds.group_max
                && after <= (FRAME_HEADER_LEN + MAX_PAYLOAD_LEN) as u64
                && record_after(&path, scan.valid_len)?;
            let damage = Damage {
                in_last_segment: is_last,
                at_lsn: end_lsn,
                segment_end_lsn,
                wal_end_lsn,
                record_after,
            };
            match judge(&damage, uploaded, bounds.group_max) {
                Verdict::TornTail => {
                    let tail = truncate_tail(&path, scan.valid_len, file_len, reason)?;
                    report.truncated = Some(tail);
                    break end_lsn;
                }
                Verdict::Uploaded => {
                    tracing::warn!(path = %path.display(), offset = scan.valid_len,
                        reason = %reason, uploaded_lsn = uploaded,
                        "damaged WAL records are all in object storage already");
                    report.skipped_damage.push(SkippedDamage {
                        path: path.clone(),
                        offset: scan.valid_len,
                        reason,
                    });
                    break 'segments;
                }
                Verdict::Refuse(why) => {
                    return Err(corrupt(scan.valid_len, format!("{reason}; {why}")));
                }
            }
        };
        segments.push(RecoveredSegment {
            base_lsn,
            end_lsn,
            path,
        });
    }
    let end_lsn = segments.last().map_or(0, |s| s.end_lsn);
    if end_lsn < bounds.uploaded_lsn || segments.len() < report.segments {
        let files_short = wal_end_lsn < bounds.uploaded_lsn;
        segments = vec![restart_at(dir, bounds.uploaded_lsn, end_lsn, files_short)?];
        report.restarted_at = Some(bounds.uploaded_lsn);
    }
    Ok((segments, report))
}

/// Whether a whole record starts anywhere in the segment at `path` after
/// file offset `damage`. At most one frame's length is read. A candidate
/// needs a sane length and a record's first bytes before its checksum is
/// computed, which keeps the byte-by-byte search cheap.
fn record_after(path: &Path, damage: u64) -> Result<bool, WalError> {
    let mut file = File::open(path).map_err(WalError::io(path))?;
    let mut rest = Vec::new();
    file.seek(SeekFrom::Start(damage + 1))
        .and_then(|_| file.read_to_end(&mut rest))
        .map_err(WalError::io(path))?;
    Ok((0..rest.len()).any(|at| {
        let Some(header) = rest.get(at..at + FRAME_HEADER_LEN) else {
            return false;
        };
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let payload = at + FRAME_HEADER_LEN;
        len <= rest.len() - payload
            && starts_like_a_record(&rest[payload..payload + len])
            && matches!(decode_frame(&rest[at..]), FrameResult::Complete { .. })
    }))
}

fn file_len(path: &Path) -> Result<u64, WalError> {
    Ok(std::fs::metadata(path).map_err(WalError::io(path))?.len())
}

/// Replaces every segment with an empty one starting at `uploaded_lsn`.
/// Everything they hold is in object storage, but they are renamed to
/// `<name>.below-checkpoint` rather than deleted: a checkpoint that is not
/// this WAL's (a data directory under another node's id) must not destroy
/// it. The old files go first, so a crash part-way leaves a WAL that still
/// ends below the checkpoint and is started again the same way.
fn restart_at(
    dir: &Path,
    uploaded_lsn: u64,
    end_lsn: u64,
    files_short: bool,
) -> Result<RecoveredSegment, WalError> {
    let old = list_segments(dir)?;
    for (_, path) in &old {
        let mut aside = path.as_os_str().to_owned();
        aside.push(".below-checkpoint");
        std::fs::rename(path, &aside).map_err(WalError::io(path))?;
    }
    sync_dir(dir)?;
    let (_, path) = create_segment(dir, uploaded_lsn)?;
    if files_short {
        tracing::warn!(dir = %dir.display(), end_lsn, uploaded_lsn, set_aside = old.len(),
            "the WAL's files end below its upload checkpoint: they were lost or cut, and \
             records acknowledged after the checkpoint that only they held are lost; new \
             records start at the checkpoint");
    } else {
        tracing::warn!(dir = %dir.display(), end_lsn, uploaded_lsn, set_aside = old.len(),
            "everything the damaged WAL held is in object storage: nothing is lost; new \
             records start at the checkpoint, and the old segments were renamed \
             *.below-checkpoint (they may be deleted)");
    }
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
    damage: Option<String>,
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

/// Streams the frames from file offset `from` (where `reader` is). Reads one record at a time, so
/// memory stays bounded by the largest record, not the segment size.
fn scan_records<F>(
    reader: &mut impl Read,
    file_len: u64,
    base_lsn: u64,
    from: u64,
    visit: &mut F,
) -> Result<Scan, ScanError>
where
    F: FnMut(u64, &[u8]) -> Result<(), WalError>,
{
    let mut offset = from;
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
                let lsn = base_lsn + (offset - HEADER);
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
        damage,
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
