//! Public value types of the WAL: configuration, reports, statistics and
//! the handle of a pending append.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strata_common::{Clock, LatencySnapshot, SystemClock};
use tokio::sync::oneshot;

use super::WalError;
use super::frame::{FRAME_HEADER_LEN, SEGMENT_HEADER_LEN};

/// How the WAL sizes its files and bounds its waits.
#[derive(Debug, Clone)]
pub struct WalConfig {
    pub dir: PathBuf,
    /// Roll to a new segment when the next frame would make the file larger
    /// than this. A frame larger than a segment gets a segment of its own.
    pub segment_bytes: u64,
    /// Bound on the sum of all segment file sizes; appends wait beyond it.
    pub max_bytes: u64,
    /// Most bytes one write+fdatasync takes at once.
    pub group_commit_max_bytes: usize,
    /// How long an append may wait for room before [`WalError::Full`].
    pub append_timeout: Duration,
    /// Above this share of `max_bytes` appends are paced to the rate the
    /// WAL drains (100: never).
    pub pace_above_percent: u8,
    /// The clock that wait is measured on.
    pub clock: Arc<dyn Clock>,
    /// The upload checkpoint: every record below this LSN is in object
    /// storage. Damage below it loses nothing, and the WAL never ends below
    /// it (the uploader would skip LSNs reused there).
    pub uploaded_lsn: u64,
}

impl WalConfig {
    /// Production-sized defaults for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_bytes: 128 * 1024 * 1024,
            max_bytes: 4 * 1024 * 1024 * 1024,
            group_commit_max_bytes: 4 * 1024 * 1024,
            append_timeout: Duration::from_secs(5),
            pace_above_percent: 75,
            clock: Arc::new(SystemClock),
            uploaded_lsn: 0,
        }
    }

    pub(super) fn validate(&self) -> Result<(), WalError> {
        let min_segment = (SEGMENT_HEADER_LEN + FRAME_HEADER_LEN) as u64 + 1;
        if self.segment_bytes < min_segment {
            return Err(WalError::Config(format!(
                "segment_bytes {} is below the minimum {min_segment}",
                self.segment_bytes
            )));
        }
        if self.segment_bytes > self.max_bytes / 2 {
            return Err(WalError::Config(format!(
                "segment_bytes {} must be at most half of max_bytes {}, or a full \
                 active segment could block appends forever",
                self.segment_bytes, self.max_bytes
            )));
        }
        if self.pace_above_percent > 100 {
            return Err(WalError::Config(format!(
                "pace_above_percent {} must be at most 100",
                self.pace_above_percent
            )));
        }
        if self.group_commit_max_bytes == 0 {
            return Err(WalError::Config(
                "group_commit_max_bytes must be > 0".into(),
            ));
        }
        Ok(())
    }
}

/// What [`FileWal::open`](super::FileWal::open) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    /// Valid records replayed.
    pub records: u64,
    /// LSN bytes (frames) of the valid records.
    pub bytes: u64,
    pub truncated: Option<TruncatedTail>,
    /// Everything the WAL held was below the upload checkpoint and it ended
    /// below it (damaged or lost): it was started again at this LSN.
    pub restarted_at: Option<u64>,
    /// Damage found in records already in object storage: skipped, nothing
    /// lost, but a sign of a failing disk.
    pub skipped_damage: Vec<SkippedDamage>,
}

/// Damaged WAL records below the upload checkpoint that replay skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedDamage {
    pub path: PathBuf,
    /// File offset of the first damaged byte found.
    pub offset: u64,
    pub reason: String,
}

/// A torn or corrupt tail that recovery cut off the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncatedTail {
    pub path: PathBuf,
    /// File length after the cut (header included).
    pub valid_len: u64,
    pub cut_bytes: u64,
    pub reason: String,
}

/// One segment, as listed by [`FileWal::segments`](super::FileWal::segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub base_lsn: u64,
    /// Reserved end (may include records not yet durable in the active segment).
    pub end_lsn: u64,
    pub path: PathBuf,
    /// The I/O thread has moved on to a later file: every record here is
    /// durable and the file never changes again. Only sealed segments can be released.
    pub sealed: bool,
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalStats {
    pub used_bytes: u64,
    pub max_bytes: u64,
    pub segments: usize,
    pub first_lsn: u64,
    /// End of the last reserved record.
    pub end_lsn: u64,
    /// End of the last durable record.
    pub durable_lsn: u64,
    /// Records made durable.
    pub appends: u64,
    /// fdatasync calls for record groups.
    pub syncs: u64,
    pub synced_bytes: u64,
    /// How long each group's write + fdatasync took, since start.
    pub sync_latency: LatencySnapshot,
    pub failed: bool,
    /// What made the WAL fail, once it did.
    pub failure: Option<String>,
    /// Appends that waited for their pace while the WAL filled, and how
    /// long they waited in all.
    pub paced_appends: u64,
    pub pace_wait_ms: u64,
}

/// A reserved, handed-off append.
#[derive(Debug)]
pub struct PendingAppend {
    pub lsn: u64,
    /// Frame length: the LSN bytes the record occupies (`lsn + len` is the next LSN).
    pub len: u64,
    pub(super) done: oneshot::Receiver<Result<u64, WalError>>,
}

impl PendingAppend {
    /// Resolves once the record is on disk (after its group's fdatasync), with its LSN.
    pub async fn durable(self) -> Result<u64, WalError> {
        match self.done.await {
            Ok(result) => result,
            Err(_) => Err(WalError::Failed(
                "WAL I/O thread stopped before the record was durable".into(),
            )),
        }
    }
}
