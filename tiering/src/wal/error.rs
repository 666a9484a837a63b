//! Errors of the write-ahead log.

use std::path::PathBuf;

/// Everything that can go wrong opening, appending to or reading the WAL.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// Back-pressure gave up: the append found no room, or no turn while
    /// others were paced or waited for room, within the append timeout.
    #[error(
        "the write-ahead log found no room for {waited_ms} ms ({used_bytes} of {max_bytes} \
         bytes used; appends are paced while it fills and wait once it is full): its space \
         is freed as its records are uploaded to object storage, so uploads are behind or \
         failing (see strata status); retry later"
    )]
    Full {
        waited_ms: u64,
        used_bytes: u64,
        max_bytes: u64,
    },
    /// An earlier write or fdatasync failed. After a failed fsync the page
    /// cache state is unknown, so retrying could report data durable that is
    /// not: the WAL refuses every further append until it is reopened.
    #[error("WAL failed earlier and refuses appends: {0}")]
    Failed(String),
    #[error("WAL is closed")]
    Closed,
    #[error("WAL I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Damage that cannot be a torn tail (anywhere but the end of the last
    /// segment): opening refuses rather than silently dropping records.
    #[error("corrupt WAL segment {path} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("WAL record of {len} bytes exceeds the largest allowed, {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// A zero-length frame would be indistinguishable from zeroed disk.
    #[error("WAL records must not be empty")]
    EmptyRecord,
    /// Another compactor holds the volume's lock.
    #[error(
        "another compactor is working on this WAL: {path} is locked; one compactor \
         per WAL volume (a node compacts its own WAL unless compactor.mode = \"separate\")"
    )]
    Busy { path: PathBuf },
    #[error("invalid WAL config: {0}")]
    Config(String),
    /// The LSN was released already or is not durable yet.
    #[error("LSN {lsn} is outside the readable range {first_lsn}..{durable_lsn}")]
    LsnOutOfRange {
        lsn: u64,
        first_lsn: u64,
        durable_lsn: u64,
    },
}

impl WalError {
    /// Adapter for `map_err` that attaches the path an I/O error concerns.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> WalError {
        let path = path.into();
        move |source| WalError::Io { path, source }
    }
}
