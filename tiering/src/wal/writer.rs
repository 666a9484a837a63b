//! The WAL's I/O thread: the only code that writes segment files.
//!
//! Runs on a dedicated `std::thread` because write + fdatasync block for
//! milliseconds and must never stall async workers. It receives ops in
//! reservation order and performs group commit: block for the first op,
//! drain whatever else is already queued (up to `group_commit_max_bytes`),
//! one write of the concatenated frames, one `sync_data`, then complete every
//! waiter of the group in order. Many concurrent submitters thus share one
//! fdatasync.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};

use bytes::Bytes;
use strata_common::{Clock, LatencyHistogram};
use tokio::sync::oneshot;

use super::WalError;
use super::frame::{FRAME_HEADER_LEN, SEGMENT_HEADER_LEN};
use super::segment::{create_segment, record_group_max};

/// Work for the I/O thread, in reservation order.
pub(crate) enum Op {
    Append(AppendOp),
    /// Start segment `base_lsn`: every later append goes there.
    Roll {
        base_lsn: u64,
    },
}

pub(crate) struct AppendOp {
    pub lsn: u64,
    pub header: [u8; FRAME_HEADER_LEN],
    pub payload: Bytes,
    pub done: oneshot::Sender<Result<u64, WalError>>,
}

impl AppendOp {
    fn frame_len(&self) -> usize {
        FRAME_HEADER_LEN + self.payload.len()
    }
}

/// What the I/O thread publishes to the rest of the WAL.
#[derive(Debug)]
pub(crate) struct IoStatus {
    /// End of the last record made durable.
    pub durable_lsn: AtomicU64,
    /// Base LSN of the segment file the thread currently writes. Every older
    /// segment is complete and synced, so only those may be deleted.
    pub active_base: AtomicU64,
    pub appends: AtomicU64,
    pub syncs: AtomicU64,
    pub synced_bytes: AtomicU64,
    /// How long each group's write + fdatasync took.
    pub sync_latency: LatencyHistogram,
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
}

impl IoStatus {
    pub(crate) fn new(durable_lsn: u64, active_base: u64) -> Self {
        Self {
            durable_lsn: AtomicU64::new(durable_lsn),
            active_base: AtomicU64::new(active_base),
            appends: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            synced_bytes: AtomicU64::new(0),
            sync_latency: LatencyHistogram::new(),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
        }
    }

    pub(crate) fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The first failure's description, if any.
    pub(crate) fn failure(&self) -> Option<String> {
        if !self.is_failed() {
            return None;
        }
        let msg = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        Some(msg.clone().unwrap_or_else(|| "WAL failed".to_owned()))
    }

    /// Records the first failure; later ones keep the original cause.
    pub(crate) fn fail(&self, msg: String) {
        let mut slot = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(msg);
        }
        self.failed.store(true, Ordering::Release);
    }
}

pub(crate) struct Writer {
    pub dir: PathBuf,
    pub file: File,
    pub path: PathBuf,
    /// File offset where the next frame goes.
    pub pos: u64,
    pub group_max: usize,
    /// `group_max` is not yet recorded for recovery (see
    /// `segment::record_group_max`): it is, before the first group.
    pub unrecorded: bool,
    pub status: std::sync::Arc<IoStatus>,
    /// Times each write + fdatasync.
    pub clock: std::sync::Arc<dyn Clock>,
}

impl Writer {
    /// The thread body: runs until every sender is dropped and the queue is empty.
    pub(crate) fn run(mut self, rx: mpsc::Receiver<Op>) {
        let mut buf = Vec::new();
        let mut carry: Option<Op> = None;
        loop {
            let op = match carry.take() {
                Some(op) => op,
                None => match rx.recv() {
                    Ok(op) => op,
                    Err(mpsc::RecvError) => break,
                },
            };
            let first = match op {
                Op::Roll { base_lsn } => {
                    self.roll(base_lsn);
                    continue;
                }
                Op::Append(first) => first,
            };
            let mut bytes = first.frame_len();
            let mut group = vec![first];
            while bytes < self.group_max {
                match rx.try_recv() {
                    Ok(Op::Append(op)) if bytes + op.frame_len() <= self.group_max => {
                        bytes += op.frame_len();
                        group.push(op);
                    }
                    // A roll or an append that would overflow the group starts the next round.
                    Ok(other) => {
                        carry = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit(group, &mut buf);
            // Do not pin the memory of one huge record forever.
            if buf.capacity() > self.group_max.max(1 << 20) * 2 {
                buf = Vec::new();
            }
        }
        tracing::debug!(path = %self.path.display(), "WAL I/O thread stopped");
    }

    fn commit(&mut self, group: Vec<AppendOp>, buf: &mut Vec<u8>) {
        if let Some(msg) = self.status.failure() {
            complete_failed(group, &msg);
            return;
        }
        if self.unrecorded {
            if let Err(e) = record_group_max(&self.dir, self.group_max as u64) {
                let msg = format!("recording the group commit size failed: {e}");
                tracing::error!(error = %e, "WAL cannot record its group commit size; refusing all appends");
                self.status.fail(msg.clone());
                complete_failed(group, &msg);
                return;
            }
            self.unrecorded = false;
        }
        buf.clear();
        for op in &group {
            buf.extend_from_slice(&op.header);
            buf.extend_from_slice(&op.payload);
        }
        let started = self.clock.monotonic();
        let result = self
            .file
            .write_all_at(buf, self.pos)
            .and_then(|()| self.file.sync_data());
        let took = self.clock.monotonic().saturating_sub(started);
        if let Err(e) = result {
            // Never retry: after a failed fsync the kernel may have dropped
            // the dirty pages, so a later "successful" fsync would lie.
            let msg = format!("write+fdatasync of {} failed: {e}", self.path.display());
            tracing::error!(path = %self.path.display(), error = %e, records = group.len(),
                "WAL write failed; refusing all further appends");
            self.status.fail(msg.clone());
            complete_failed(group, &msg);
            return;
        }
        self.pos += buf.len() as u64;
        let end = group.last().map_or(0, |op| op.lsn + op.frame_len() as u64);
        let s = &self.status;
        s.durable_lsn.fetch_max(end, Ordering::AcqRel);
        s.syncs.fetch_add(1, Ordering::Relaxed);
        s.sync_latency.record(took);
        s.appends.fetch_add(group.len() as u64, Ordering::Relaxed);
        s.synced_bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        for op in group {
            // A dropped receiver only means the submitter stopped waiting.
            let _ = op.done.send(Ok(op.lsn));
        }
    }

    /// Switches to a new segment. The old file needs no extra sync: every
    /// group was already fdatasync'ed when it was written.
    fn roll(&mut self, base_lsn: u64) {
        if self.status.is_failed() {
            return;
        }
        match create_segment(&self.dir, base_lsn) {
            Ok((file, path)) => {
                tracing::debug!(old = %self.path.display(), new = %path.display(), base_lsn,
                    "WAL rolled to a new segment");
                self.file = file;
                self.path = path;
                self.pos = SEGMENT_HEADER_LEN as u64;
                self.status.active_base.store(base_lsn, Ordering::Release);
            }
            Err(e) => {
                tracing::error!(base_lsn, error = %e, "creating WAL segment failed; refusing all further appends");
                self.status
                    .fail(format!("creating segment at LSN {base_lsn} failed: {e}"));
            }
        }
    }
}

fn complete_failed(group: Vec<AppendOp>, msg: &str) {
    for op in group {
        let _ = op.done.send(Err(WalError::Failed(msg.to_owned())));
    }
}
