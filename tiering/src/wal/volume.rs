//! A WAL directory as another process sees it: a separate compactor reads
//! the records the node made durable, while the node keeps appending and
//! releasing. Blocking file I/O: call from `spawn_blocking`.
//!
//! The node publishes how far it is durable in the [`mark`](super::mark)
//! file; the volume reads no further. Segments are found by listing the
//! directory; the newest one ends where its file does (the node may still be
//! writing it, but never below the mark).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use super::WalError;
use super::frame::{self, FRAME_HEADER_LEN, FrameResult, SEGMENT_HEADER_LEN};
use super::mark::{DURABLE_MARK_FILE, DURABLE_MARK_LEN, decode_mark, encode_mark};
use super::segment::list_segments;
use super::span::SegmentRead;

const HEADER: u64 = SEGMENT_HEADER_LEN as u64;

/// Name of the lock file a compactor holds in the WAL directory.
pub const COMPACTOR_LOCK_FILE: &str = "compactor.lock";

/// Writes the durable mark of the WAL in `dir` (see [`super::mark`]): no
/// fsync, since a lost or stale mark only makes a reader wait.
pub fn write_durable_mark(dir: &Path, lsn: u64) -> Result<(), WalError> {
    let path = dir.join(DURABLE_MARK_FILE);
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .and_then(|f| f.write_all_at(&encode_mark(lsn), 0))
        .map_err(WalError::io(&path))
}

/// Lowers the durable mark of the WAL in `dir` to `end` if it is above it:
/// after recovery cut records (damage given up, or a restart at the
/// checkpoint) a separate compactor must not read where new records go
/// before they are durable.
pub(crate) fn lower_durable_mark(dir: &Path, end: u64) -> Result<(), WalError> {
    let path = dir.join(DURABLE_MARK_FILE);
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(());
    };
    match decode_mark(&bytes) {
        Some(mark) if mark <= end => Ok(()),
        _ => write_durable_mark(dir, end),
    }
}

/// Takes the compactor lock of the WAL in `dir` (held while the returned
/// file is open): whoever compacts a WAL, the node itself or a separate
/// `strata compactor`, holds it, so two never upload the same records.
pub fn lock_compaction(dir: &Path) -> Result<File, WalError> {
    std::fs::create_dir_all(dir).map_err(WalError::io(dir))?;
    let path = dir.join(COMPACTOR_LOCK_FILE);
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(WalError::io(&path))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(WalError::Busy { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(WalError::io(&path)(e)),
    }
}

/// One segment of a volume: the LSNs `base_lsn..end_lsn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSegment {
    pub base_lsn: u64,
    pub end_lsn: u64,
    pub path: PathBuf,
    pub file_bytes: u64,
}

/// A WAL directory opened for reading by its compactor.
#[derive(Debug)]
pub struct WalVolume {
    dir: PathBuf,
    /// Held while the volume is open: one compactor per WAL.
    _lock: File,
    /// The segment last read from, kept open.
    open: Mutex<Option<(u64, Arc<File>)>>,
}

impl WalVolume {
    /// Opens the WAL in `dir` for reading and takes its compactor lock.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, WalError> {
        let dir = dir.into();
        let lock = lock_compaction(&dir)?;
        Ok(Self {
            dir,
            _lock: lock,
            open: Mutex::new(None),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How far the node made the WAL durable: 0 before it published a mark,
    /// and 0 for a mark that does not decode (a torn write is rewritten
    /// within moments).
    pub fn durable_lsn(&self) -> Result<u64, WalError> {
        let path = self.dir.join(DURABLE_MARK_FILE);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(WalError::io(&path)(e)),
        };
        let mut buf = [0u8; DURABLE_MARK_LEN];
        match file.read_exact_at(&mut buf, 0) {
            Ok(()) => Ok(decode_mark(&buf).unwrap_or(0)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
            Err(e) => Err(WalError::io(&path)(e)),
        }
    }

    /// The segments on disk now, oldest first.
    pub fn segments(&self) -> Result<Vec<VolumeSegment>, WalError> {
        let listed = list_segments(&self.dir)?;
        let mut out: Vec<VolumeSegment> = Vec::with_capacity(listed.len());
        for (i, (base_lsn, path)) in listed.iter().enumerate() {
            let file_bytes = match std::fs::metadata(path) {
                Ok(m) => m.len(),
                // Released between the listing and now.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(WalError::io(path)(e)),
            };
            let end_lsn = match listed.get(i + 1) {
                Some((next, _)) => *next,
                None => base_lsn + file_bytes.saturating_sub(HEADER),
            };
            out.push(VolumeSegment {
                base_lsn: *base_lsn,
                end_lsn,
                path: path.clone(),
                file_bytes,
            });
        }
        Ok(out)
    }

    /// The oldest LSN still on disk (the durable mark when none is).
    pub fn first_lsn(&self) -> Result<u64, WalError> {
        match self.segments()?.first() {
            Some(s) => Ok(s.base_lsn),
            None => self.durable_lsn(),
        }
    }

    /// The payload of the durable record at `lsn`, CRC-checked.
    pub fn read(&self, lsn: u64) -> Result<Bytes, WalError> {
        let s = self.locate(lsn)?;
        read_frame(&s.file, &s.path, s.base_lsn, s.end_lsn, lsn)
    }

    /// The durable records from `from` until `until`, up to `max_bytes`
    /// (see [`read_span`](super::read_span)).
    pub fn read_span(
        &self,
        from: u64,
        until: u64,
        max_bytes: u64,
    ) -> Result<(Vec<(u64, Bytes)>, u64), WalError> {
        super::span::read_span(|lsn| self.locate(lsn), from, until, max_bytes)
    }

    /// The segment holding the durable LSN `lsn`, open for reading up to
    /// the durable mark.
    fn locate(&self, lsn: u64) -> Result<SegmentRead, WalError> {
        let durable_lsn = self.durable_lsn()?;
        let segments = self.segments()?;
        let first_lsn = segments.first().map_or(durable_lsn, |s| s.base_lsn);
        let i = segments.partition_point(|s| s.end_lsn <= lsn);
        let segment = match segments.get(i) {
            Some(s) if lsn >= first_lsn && lsn < durable_lsn => s,
            _ => {
                return Err(WalError::LsnOutOfRange {
                    lsn,
                    first_lsn,
                    durable_lsn,
                });
            }
        };
        Ok(SegmentRead {
            file: self.file(segment)?,
            path: segment.path.clone(),
            base_lsn: segment.base_lsn,
            end_lsn: segment.end_lsn.min(durable_lsn),
        })
    }

    fn file(&self, segment: &VolumeSegment) -> Result<Arc<File>, WalError> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((base, file)) = open.as_ref()
            && *base == segment.base_lsn
        {
            return Ok(file.clone());
        }
        let path = &segment.path;
        let file = File::open(path).map_err(WalError::io(path))?;
        let mut head = [0u8; SEGMENT_HEADER_LEN];
        file.read_exact_at(&mut head, 0)
            .map_err(WalError::io(path))?;
        let corrupt = |reason: String| WalError::Corrupt {
            path: path.clone(),
            offset: 0,
            reason,
        };
        match frame::decode_segment_header(&head) {
            Ok(base) if base == segment.base_lsn => {}
            Ok(base) => return Err(corrupt(format!("header says base LSN {base}"))),
            Err(e) => return Err(corrupt(e.to_string())),
        }
        let file = Arc::new(file);
        *open = Some((segment.base_lsn, file.clone()));
        Ok(file)
    }
}

/// Reads the record at `lsn` from the segment file holding
/// `base_lsn..end_lsn`, verifying its CRC.
pub(crate) fn read_frame(
    file: &File,
    path: &Path,
    base_lsn: u64,
    end_lsn: u64,
    lsn: u64,
) -> Result<Bytes, WalError> {
    let offset = HEADER + (lsn - base_lsn);
    let corrupt = |reason: String| WalError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    let mut head = [0u8; FRAME_HEADER_LEN];
    file.read_exact_at(&mut head, offset)
        .map_err(WalError::io(path))?;
    let needed = match frame::decode_frame(&head) {
        FrameResult::Incomplete { needed } => needed,
        FrameResult::Corrupt { reason } => return Err(corrupt(reason)),
        FrameResult::Complete { .. } => return Err(corrupt("impossible frame".into())),
    };
    if lsn + (FRAME_HEADER_LEN + needed) as u64 > end_lsn {
        return Err(corrupt(format!(
            "record of {needed} bytes runs past the segment end (LSN {end_lsn}); \
             {lsn} is probably not a record boundary"
        )));
    }
    let mut buf = vec![0u8; FRAME_HEADER_LEN + needed];
    file.read_exact_at(&mut buf, offset)
        .map_err(WalError::io(path))?;
    match frame::decode_frame(&buf) {
        FrameResult::Complete { payload, .. } => Ok(Bytes::from(buf).slice(payload)),
        FrameResult::Corrupt { reason } => Err(corrupt(reason)),
        FrameResult::Incomplete { .. } => Err(corrupt("short read".into())),
    }
}
