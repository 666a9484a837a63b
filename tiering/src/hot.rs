//! The hot tier as the engine and the compactor use it: the [`Wal`] trait.
//!
//! [`FileWal`](crate::FileWal) is the implementation (segment files, group
//! commit, recovery). The trait is the seam where another hot log can stand
//! in, and where tests wrap the real one to inject failures; opening and
//! recovery stay with each implementation, since what a log replays at
//! start is its own business.

use bytes::Bytes;

use crate::wal::{PendingAppend, SegmentInfo, WalError, WalStats};

/// An append-only log of records addressed by LSN, durable on
/// [`PendingAppend::durable`], released from the front in whole segments.
#[async_trait::async_trait]
pub trait Wal: Send + Sync + std::fmt::Debug + 'static {
    /// Reserves consecutive LSNs for `payloads` and queues them for
    /// writing, all or none; waits while the log has no room for all of
    /// them (back-pressure), until `deadline` (monotonic time on the log's
    /// clock). Records become durable in submission order.
    async fn submit_all(
        &self,
        payloads: Vec<Bytes>,
        deadline: std::time::Duration,
    ) -> Result<Vec<PendingAppend>, WalError>;

    /// The payload of the record at `lsn` (blocking file I/O: call it off
    /// the async workers).
    fn read(&self, lsn: u64) -> Result<Bytes, WalError>;

    /// The records from `from` until `until` (both record boundaries;
    /// `until` no further than the durable end, which the caller reads),
    /// stopping before the one that would pass `max_bytes` (at least one
    /// is read), each with its LSN, and the LSN after the last one read.
    /// Blocking file I/O, like `read`.
    fn read_span(
        &self,
        from: u64,
        until: u64,
        max_bytes: u64,
    ) -> Result<(Vec<(u64, Bytes)>, u64), WalError>;

    /// Deletes every whole segment below `lsn`; returns the bytes freed.
    fn release_before(&self, lsn: u64) -> Result<u64, WalError>;

    /// The segments held now, oldest first.
    fn segments(&self) -> Vec<SegmentInfo>;

    fn stats(&self) -> WalStats;

    /// Everything below this LSN is durable.
    fn durable_lsn(&self) -> u64;

    /// The largest payload one record may hold.
    fn max_record_len(&self) -> usize;

    /// Waits for queued records to become durable and stops writing.
    fn close(&self) -> Result<(), WalError>;
}

#[async_trait::async_trait]
impl Wal for crate::FileWal {
    async fn submit_all(
        &self,
        payloads: Vec<Bytes>,
        deadline: std::time::Duration,
    ) -> Result<Vec<PendingAppend>, WalError> {
        crate::FileWal::submit_all(self, payloads, deadline).await
    }

    fn read(&self, lsn: u64) -> Result<Bytes, WalError> {
        crate::FileWal::read(self, lsn)
    }

    fn read_span(
        &self,
        from: u64,
        until: u64,
        max_bytes: u64,
    ) -> Result<(Vec<(u64, Bytes)>, u64), WalError> {
        crate::FileWal::read_span(self, from, until, max_bytes)
    }

    fn release_before(&self, lsn: u64) -> Result<u64, WalError> {
        crate::FileWal::release_before(self, lsn)
    }

    fn segments(&self) -> Vec<SegmentInfo> {
        crate::FileWal::segments(self)
    }

    fn stats(&self) -> WalStats {
        crate::FileWal::stats(self)
    }

    fn durable_lsn(&self) -> u64 {
        crate::FileWal::durable_lsn(self)
    }

    fn max_record_len(&self) -> usize {
        crate::FileWal::max_record_len(self)
    }

    fn close(&self) -> Result<(), WalError> {
        crate::FileWal::close(self)
    }
}
