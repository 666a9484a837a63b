//! Strata's tiered log: the hot write-ahead log, the message batch format,
//! and [`log`], which serves each queue's reads from the tail cache, the WAL
//! or object storage.
//!
//! Producers' batches are encoded by [`batch`] into WAL payloads and appended
//! to the [`Wal`] ([`FileWal`] on disk), which makes them durable with group commit (many
//! concurrent appends share one fdatasync) before the broker acknowledges
//! them. Once the records are stored in a colder tier,
//! [`log::Tiers::release_below`] deletes whole segments (and the index
//! entries that pointed into them); until then the WAL applies
//! back-pressure instead of growing without bound.
//!
//! After a crash, [`FileWal::open`] replays every valid record in LSN order, cuts
//! a torn tail off the newest segment and refuses to start on any other
//! damage.
//!
//! Byte formats live in pure modules ([`batch`], [`wal::frame`],
//! [`wal::mark`]) with their
//! layouts drawn in the docs; all blocking file I/O of the append path runs
//! on the WAL's own thread.

pub mod batch;
mod hot;
pub mod log;
pub mod wal;

pub use hot::Wal;
pub use wal::{
    FileWal, PendingAppend, RecoveryReport, SegmentInfo, TruncatedTail, WalConfig, WalError,
    WalStats,
};
