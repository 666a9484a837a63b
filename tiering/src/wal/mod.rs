//! The hot write-ahead log: segment files, group commit, recovery.
//!
//! # Positions
//!
//! An LSN is a logical byte position across all segments, not counting
//! segment headers. A segment file `<dir>/<base_lsn:020>.wal` holds the LSNs
//! `base_lsn..end_lsn`; the next segment's base is this one's end. A record's
//! LSN is `base_lsn + (file offset − 24)`, and the record after it starts at
//! `lsn + frame length` (8-byte frame header + payload).
//!
//! # Write path
//!
//! [`FileWal::submit`] reserves the LSN under one lock and hands the frame to the
//! I/O thread (see `writer`), so reservation order is write order is
//! completion order. [`PendingAppend::durable`] resolves after the group
//! containing the record was fdatasync'ed.
//!
//! # Space
//!
//! `used_bytes` is the sum of all segment file sizes, headers included, as
//! reserved (so it counts records not yet written). An append that would push
//! it over `max_bytes` waits until [`FileWal::release_before`] deletes old
//! segments, or fails with [`WalError::Full`] after `append_timeout`.
//! Before that, above `pace_above_percent` of `max_bytes`, appends are
//! paced to the rate the WAL drains (see `pace`), so producers see an even
//! delay rather than stalls each time an upload frees room. A paced append
//! holds the submit turn while it waits, so those behind it wait too: that
//! queue is what spreads the delay.
//! To guarantee that releasing everything releasable always makes room,
//! `open` requires `segment_bytes <= max_bytes / 2`, and one record may use at
//! most half of `max_bytes` (see [`FileWal::max_record_len`]).

mod damage;
mod error;
pub mod frame;
pub mod mark;
mod pace;
mod recovery;
mod repair;
mod segment;
mod span;
mod types;
mod volume;
mod writer;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::sync::{Notify, oneshot};

pub use error::WalError;
use frame::{FRAME_HEADER_LEN, MAX_PAYLOAD_LEN, SEGMENT_HEADER_LEN};
pub use repair::{WalCut, cut_damaged};
pub use span::{SPAN_CHUNK, SegmentRead, read_span};
pub use types::{
    PendingAppend, RecoveryReport, SegmentInfo, SkippedDamage, TruncatedTail, WalConfig, WalStats,
};
pub use volume::{
    COMPACTOR_LOCK_FILE, VolumeSegment, WalVolume, lock_compaction, write_durable_mark,
};
use writer::{AppendOp, IoStatus, Op, Writer};

const HEADER: u64 = SEGMENT_HEADER_LEN as u64;

#[derive(Debug)]
struct Segment {
    base_lsn: u64,
    end_lsn: u64,
    path: PathBuf,
    /// Read handle, opened on first read.
    reader: Option<Arc<File>>,
}

impl Segment {
    fn file_len(&self) -> u64 {
        HEADER + (self.end_lsn - self.base_lsn)
    }
}

#[derive(Debug)]
struct State {
    /// Oldest first; never empty: the last one is the active segment.
    segments: VecDeque<Segment>,
    used_bytes: u64,
    /// `None` once closed.
    sender: Option<mpsc::Sender<Op>>,
    pacer: pace::Pacer,
    /// Appends that waited for their pace, and how long in all.
    paced_appends: u64,
    pace_wait: std::time::Duration,
}

/// The write-ahead log. `Send + Sync`; share it via `Arc`.
#[derive(Debug)]
pub struct FileWal {
    config: WalConfig,
    state: Mutex<State>,
    io: Arc<IoStatus>,
    /// Woken when space is freed or the WAL closes.
    space: Notify,
    /// Serialises submitters so a waiting one keeps its place in line.
    submit_turn: tokio::sync::Mutex<()>,
    /// Serialises release_before so two callers never delete the same file.
    release_turn: Mutex<()>,
    io_thread: Mutex<Option<JoinHandle<()>>>,
}

/// What one reservation attempt came to.
enum Reserve {
    /// Reserved and handed to the I/O thread.
    Sent(Vec<PendingAppend>),
    /// No room: wait for a release.
    Full,
    /// Wait this long for the append's paced slot, then try again.
    Pace(std::time::Duration),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FileWal {
    /// Creates the dir if missing, replays every valid record through
    /// `visit(lsn, payload)` in LSN order, cuts a torn tail off the last
    /// segment, refuses damage to acknowledged records, then starts the I/O
    /// thread. When the WAL ended below `config.uploaded_lsn`, its segments
    /// are replaced by an empty one there (`report.restarted_at`): records
    /// already visited then live only in object storage.
    /// Blocking: call at startup or from `spawn_blocking`.
    pub fn open<F>(
        config: WalConfig,
        mut visit: F,
    ) -> Result<(Arc<FileWal>, RecoveryReport), WalError>
    where
        F: FnMut(u64, &[u8]) -> Result<(), WalError>,
    {
        config.validate()?;
        let started = config.clock.monotonic();
        std::fs::create_dir_all(&config.dir).map_err(WalError::io(&config.dir))?;
        let bounds = recovery::Bounds {
            uploaded_lsn: config.uploaded_lsn,
            // What the last writer, the one that may have crashed,
            // committed at: neither a larger nor a smaller size now may
            // judge its tail.
            group_max: segment::recorded_group_max(&config.dir)
                .unwrap_or(config.group_commit_max_bytes as u64),
        };
        let (recovered, report) = recovery::recover(&config.dir, bounds, &mut visit)?;
        let end = recovered.last().map_or(0, |s| s.end_lsn);
        volume::lower_durable_mark(&config.dir, end)?;
        let mut segments: VecDeque<Segment> = recovered
            .into_iter()
            .map(|s| Segment {
                base_lsn: s.base_lsn,
                end_lsn: s.end_lsn,
                path: s.path,
                reader: None,
            })
            .collect();
        if segments.is_empty() {
            let (_, path) = segment::create_segment(&config.dir, 0)?;
            segments.push_back(Segment {
                base_lsn: 0,
                end_lsn: 0,
                path,
                reader: None,
            });
        }
        // A last segment that is full, or a log over half its room (a
        // restart with a smaller wal.max_bytes or wal.segment_bytes), is
        // sealed now: only sealed segments are released, and no append
        // might fit to roll it while the log is over its room.
        let used: u64 = segments.iter().map(Segment::file_len).sum();
        if let Some(last) = segments.back()
            && last.end_lsn > last.base_lsn
            && (last.file_len() >= config.segment_bytes || used > config.max_bytes / 2)
        {
            let base_lsn = last.end_lsn;
            let (_, path) = segment::create_segment(&config.dir, base_lsn)?;
            tracing::info!(
                base_lsn,
                used_bytes = used,
                max_bytes = config.max_bytes,
                "WAL sealed its last segment at start: it was full, or the log over half its room"
            );
            segments.push_back(Segment {
                base_lsn,
                end_lsn: base_lsn,
                path,
                reader: None,
            });
        }
        let Some(active) = segments.back() else {
            return Err(WalError::Failed("no active segment".into()));
        };
        let file = OpenOptions::new()
            .write(true)
            .open(&active.path)
            .map_err(WalError::io(&active.path))?;
        let io = Arc::new(IoStatus::new(active.end_lsn, active.base_lsn));
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            dir: config.dir.clone(),
            file,
            path: active.path.clone(),
            pos: active.file_len(),
            group_max: config.group_commit_max_bytes,
            unrecorded: true,
            status: io.clone(),
            clock: config.clock.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("strata-wal-io".into())
            .spawn(move || writer.run(rx))
            .map_err(WalError::io(&config.dir))?;
        let used_bytes = segments.iter().map(Segment::file_len).sum();
        let pacer = pace::Pacer::new(
            (u128::from(config.max_bytes) * u128::from(config.pace_above_percent.min(100)) / 100)
                as u64,
            config.max_bytes,
        );
        tracing::info!(dir = %config.dir.display(), segments = segments.len(),
            records = report.records, bytes = report.bytes,
            first_lsn = segments.front().map_or(0, |s| s.base_lsn), end_lsn = active.end_lsn,
            truncated = report.truncated.is_some(), restarted_at = report.restarted_at, elapsed_ms = config.clock.monotonic().saturating_sub(started).as_millis() as u64,
            "WAL opened");
        let wal = FileWal {
            config,
            state: Mutex::new(State {
                segments,
                used_bytes,
                sender: Some(tx),
                pacer,
                paced_appends: 0,
                pace_wait: std::time::Duration::ZERO,
            }),
            io,
            space: Notify::new(),
            submit_turn: tokio::sync::Mutex::new(()),
            release_turn: Mutex::new(()),
            io_thread: Mutex::new(Some(handle)),
        };
        Ok((Arc::new(wal), report))
    }

    /// Largest payload [`submit`](Self::submit) accepts: the frame limit, and
    /// at most half of `max_bytes` so a record always fits once everything
    /// releasable was released.
    pub fn max_record_len(&self) -> usize {
        let half = (self.config.max_bytes / 2).saturating_sub(HEADER + FRAME_HEADER_LEN as u64);
        usize::try_from(half).map_or(MAX_PAYLOAD_LEN, |h| h.min(MAX_PAYLOAD_LEN))
    }

    /// Waits (up to `append_timeout`) for room, reserves the LSN and hands the
    /// frame to the I/O thread. Returns right after the handoff; await
    /// [`PendingAppend::durable`] for durability. Cancel-safe: dropping the
    /// future before it returns reserves nothing.
    pub async fn submit(&self, payload: Bytes) -> Result<PendingAppend, WalError> {
        let deadline = self.config.clock.monotonic() + self.config.append_timeout;
        let mut pending = self.submit_all(vec![payload], deadline).await?;
        pending
            .pop()
            .ok_or_else(|| WalError::Failed("no record was reserved".into()))
    }

    /// [`submit`](Self::submit) for several records, all or none: waits
    /// until there is room for all of them (until `deadline`, on the
    /// config's clock's monotonic time), then reserves them as consecutive
    /// records. A publish to several queues is thus written whole or
    /// refused with nothing written. Together they may take at most half of
    /// `max_bytes`, like one record.
    pub async fn submit_all(
        &self,
        payloads: Vec<Bytes>,
        deadline: std::time::Duration,
    ) -> Result<Vec<PendingAppend>, WalError> {
        let max = self.max_record_len();
        let mut frames = Vec::with_capacity(payloads.len());
        // Frames, and a segment header each in case each rolls.
        let mut worst = 0u64;
        for payload in payloads {
            if payload.is_empty() {
                return Err(WalError::EmptyRecord);
            }
            if payload.len() > max {
                return Err(WalError::TooLarge {
                    len: payload.len(),
                    max,
                });
            }
            worst += HEADER + (FRAME_HEADER_LEN + payload.len()) as u64;
            frames.push((frame::frame_header(&payload)?, payload));
        }
        if frames.is_empty() {
            return Ok(Vec::new());
        }
        if worst > self.config.max_bytes / 2 {
            return Err(WalError::TooLarge {
                len: usize::try_from(worst).unwrap_or(usize::MAX),
                max,
            });
        }
        let clock = self.config.clock.as_ref();
        // The deadline is the append timeout from when the caller started
        // waiting (a publish queued behind others counts its wait there).
        let started = deadline.saturating_sub(self.config.append_timeout);
        let left = || deadline.saturating_sub(clock.monotonic());
        // Queueing behind a submitter that waits for space counts as waiting too.
        let turn = strata_common::clock::timeout(clock, left(), self.submit_turn.lock()).await;
        let mut timed_out = turn.is_none();
        // Paced once at most: holding the turn while paced makes everyone
        // behind wait too, which is the pacing. A cancelled wait leaves its
        // slot taken.
        let mut paced = false;
        loop {
            if !timed_out {
                let pace_limit = (!paced).then(left);
                match self.try_reserve(&frames, pace_limit)? {
                    Reserve::Sent(pending) => return Ok(pending),
                    Reserve::Pace(wait) => {
                        paced = true;
                        clock.sleep(wait).await;
                        continue;
                    }
                    Reserve::Full => {}
                }
                timed_out = strata_common::clock::timeout(clock, left(), self.space.notified())
                    .await
                    .is_none();
            }
            if timed_out {
                if let Some(msg) = self.io.failure() {
                    return Err(WalError::Failed(msg));
                }
                let used_bytes = lock(&self.state).used_bytes;
                let waited_ms = clock.monotonic().saturating_sub(started).as_millis() as u64;
                tracing::warn!(
                    waited_ms,
                    used_bytes,
                    max_bytes = self.config.max_bytes,
                    records = frames.len(),
                    "WAL append gave up waiting for space"
                );
                return Err(WalError::Full {
                    waited_ms,
                    used_bytes,
                    max_bytes: self.config.max_bytes,
                });
            }
        }
    }

    /// Reserves and sends the frames if they all fit now; [`Reserve::Full`]
    /// if they must wait for room. With a `pace_limit`, appends above the
    /// pacing start are first given their slot: [`Reserve::Pace`] says how
    /// long to wait for it (at most the limit; under a millisecond they go
    /// at once, since timers tick in milliseconds and the schedule keeps
    /// the debt).
    fn try_reserve(
        &self,
        frames: &[([u8; FRAME_HEADER_LEN], Bytes)],
        pace_limit: Option<std::time::Duration>,
    ) -> Result<Reserve, WalError> {
        if let Some(msg) = self.io.failure() {
            return Err(WalError::Failed(msg));
        }
        let mut st = lock(&self.state);
        let st = &mut *st;
        let Some(sender) = st.sender.as_ref() else {
            return Err(WalError::Closed);
        };
        let Some(active) = st.segments.back() else {
            return Err(WalError::Failed("no active segment".into()));
        };
        // Where each frame goes: a frame that would make a non-empty
        // segment larger than `segment_bytes` starts a new one.
        let (mut base, mut end) = (active.base_lsn, active.end_lsn);
        let mut plan = Vec::with_capacity(frames.len());
        let mut needed = 0;
        for (_, payload) in frames {
            let frame_len = (FRAME_HEADER_LEN + payload.len()) as u64;
            let roll = end > base && HEADER + (end - base) + frame_len > self.config.segment_bytes;
            if roll {
                base = end;
                needed += HEADER;
            }
            plan.push((end, frame_len, roll));
            end += frame_len;
            needed += frame_len;
        }
        if let Some(limit) = pace_limit
            && st.pacer.paces(st.used_bytes)
        {
            let now = self.config.clock.monotonic();
            let wait = st.pacer.admit(now, st.used_bytes, needed).min(limit);
            if wait >= std::time::Duration::from_millis(1) {
                st.paced_appends += 1;
                st.pace_wait += wait;
                return Ok(Reserve::Pace(wait));
            }
        }
        if st.used_bytes + needed > self.config.max_bytes {
            return Ok(Reserve::Full);
        }
        let mut pending = Vec::with_capacity(frames.len());
        for ((header, payload), (lsn, frame_len, roll)) in frames.iter().zip(plan) {
            let (done_tx, done_rx) = oneshot::channel();
            let append = Op::Append(AppendOp {
                lsn,
                header: *header,
                payload: payload.clone(),
                done: done_tx,
            });
            let sent = if roll {
                sender
                    .send(Op::Roll { base_lsn: lsn })
                    .and_then(|()| sender.send(append))
            } else {
                sender.send(append)
            };
            if sent.is_err() {
                // Nothing more is written: the thread that writes is gone.
                let msg = "WAL I/O thread is gone".to_owned();
                self.io.fail(msg.clone());
                return Err(WalError::Failed(msg));
            }
            if roll {
                st.segments.push_back(Segment {
                    base_lsn: lsn,
                    end_lsn: lsn,
                    path: segment::segment_path(&self.config.dir, lsn),
                    reader: None,
                });
            }
            if let Some(active) = st.segments.back_mut() {
                active.end_lsn += frame_len;
            }
            pending.push(PendingAppend {
                lsn,
                len: frame_len,
                done: done_rx,
            });
        }
        st.used_bytes += needed;
        Ok(Reserve::Sent(pending))
    }

    /// Reads back the payload of the durable record at `lsn`, verifying its
    /// CRC. Blocking pread: call from `spawn_blocking`.
    pub fn read(&self, lsn: u64) -> Result<Bytes, WalError> {
        let s = self.locate(lsn)?;
        volume::read_frame(&s.file, &s.path, s.base_lsn, s.end_lsn, lsn)
    }

    /// The durable records from `from` until `until`, up to `max_bytes`
    /// (see [`crate::wal::read_span`]). Blocking: call from `spawn_blocking`.
    pub fn read_span(
        &self,
        from: u64,
        until: u64,
        max_bytes: u64,
    ) -> Result<(Vec<(u64, Bytes)>, u64), WalError> {
        span::read_span(|lsn| self.locate(lsn), from, until, max_bytes)
    }

    /// The segment holding the durable LSN `lsn`, open for reading up to
    /// the durable end.
    fn locate(&self, lsn: u64) -> Result<SegmentRead, WalError> {
        let durable_lsn = self.io.durable_lsn.load(Ordering::Acquire);
        let (base_lsn, end_lsn, path, cached) = {
            let st = lock(&self.state);
            let first_lsn = st.segments.front().map_or(0, |s| s.base_lsn);
            let idx = st.segments.partition_point(|s| s.end_lsn <= lsn);
            match st.segments.get(idx) {
                Some(s) if lsn >= first_lsn && lsn < durable_lsn => {
                    (s.base_lsn, s.end_lsn, s.path.clone(), s.reader.clone())
                }
                _ => {
                    return Err(WalError::LsnOutOfRange {
                        lsn,
                        first_lsn,
                        durable_lsn,
                    });
                }
            }
        };
        let file = match cached {
            Some(file) => file,
            None => {
                let file = match File::open(&path) {
                    Ok(file) => Arc::new(file),
                    // Released between the lookup and the open.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(WalError::LsnOutOfRange {
                            lsn,
                            first_lsn: self.stats().first_lsn,
                            durable_lsn,
                        });
                    }
                    Err(e) => return Err(WalError::io(&path)(e)),
                };
                let mut st = lock(&self.state);
                if let Some(s) = st.segments.iter_mut().find(|s| s.base_lsn == base_lsn) {
                    s.reader.get_or_insert_with(|| file.clone());
                }
                file
            }
        };
        Ok(SegmentRead {
            file,
            path,
            base_lsn,
            end_lsn: end_lsn.min(durable_lsn),
        })
    }

    /// Deletes sealed segments whose `end_lsn <= lsn`, oldest first (never
    /// the active one), wakes a waiting appender, and returns the bytes freed.
    /// Blocking (unlink + directory fsync): call from `spawn_blocking`.
    pub fn release_before(&self, lsn: u64) -> Result<u64, WalError> {
        let _turn = lock(&self.release_turn);
        let active_base = self.io.active_base.load(Ordering::Acquire);
        let victims: Vec<(u64, PathBuf)> = {
            let st = lock(&self.state);
            st.segments
                .iter()
                .take(st.segments.len().saturating_sub(1))
                .take_while(|s| s.end_lsn <= lsn && s.end_lsn <= active_base)
                .map(|s| (s.base_lsn, s.path.clone()))
                .collect()
        };
        let mut freed = 0;
        let mut result = Ok(());
        for (base_lsn, path) in victims {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    result = Err(WalError::Io { path, source: e });
                    break;
                }
            }
            let mut st = lock(&self.state);
            // Only this function pops, under release_turn, so the front is ours.
            if st.segments.front().is_some_and(|s| s.base_lsn == base_lsn)
                && let Some(s) = st.segments.pop_front()
            {
                st.used_bytes -= s.file_len();
                freed += s.file_len();
            }
        }
        if freed > 0 {
            let now = self.config.clock.monotonic();
            lock(&self.state).pacer.released(now, freed);
            if let Err(e) = segment::sync_dir(&self.config.dir) {
                // The deletions happened; at worst a crash resurrects an old
                // segment, which recovery replays harmlessly.
                tracing::warn!(error = %e, "fsync of the WAL directory after release failed");
            }
            self.space.notify_one();
            tracing::info!(lsn, freed, "released WAL segments");
        }
        result.map(|()| freed)
    }

    /// Every segment, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let active_base = self.io.active_base.load(Ordering::Acquire);
        let st = lock(&self.state);
        let last = st.segments.len().saturating_sub(1);
        st.segments
            .iter()
            .enumerate()
            .map(|(i, s)| SegmentInfo {
                base_lsn: s.base_lsn,
                end_lsn: s.end_lsn,
                path: s.path.clone(),
                sealed: i < last && s.end_lsn <= active_base,
            })
            .collect()
    }

    pub fn stats(&self) -> WalStats {
        let st = lock(&self.state);
        WalStats {
            used_bytes: st.used_bytes,
            max_bytes: self.config.max_bytes,
            segments: st.segments.len(),
            first_lsn: st.segments.front().map_or(0, |s| s.base_lsn),
            end_lsn: st.segments.back().map_or(0, |s| s.end_lsn),
            durable_lsn: self.io.durable_lsn.load(Ordering::Acquire),
            appends: self.io.appends.load(Ordering::Relaxed),
            syncs: self.io.syncs.load(Ordering::Relaxed),
            synced_bytes: self.io.synced_bytes.load(Ordering::Relaxed),
            sync_latency: self.io.sync_latency.snapshot(),
            failed: self.io.is_failed(),
            failure: self.io.failure(),
            paced_appends: st.paced_appends,
            pace_wait_ms: st.pace_wait.as_millis() as u64,
        }
    }

    /// End of the last durable record.
    pub fn durable_lsn(&self) -> u64 {
        self.io.durable_lsn.load(Ordering::Acquire)
    }

    /// Stops accepting appends, lets the I/O thread make everything already
    /// submitted durable, and joins it. Blocking. Idempotent. Returns
    /// [`WalError::Failed`] if the WAL had failed.
    pub fn close(&self) -> Result<(), WalError> {
        let was_open = self.shutdown();
        if was_open {
            tracing::info!(dir = %self.config.dir.display(), durable_lsn = self.durable_lsn(), "WAL closed");
        }
        match self.io.failure() {
            Some(msg) => Err(WalError::Failed(msg)),
            None => Ok(()),
        }
    }

    /// Drops the sender (the I/O thread drains the queue and exits) and joins.
    fn shutdown(&self) -> bool {
        let sender = lock(&self.state).sender.take();
        let was_open = sender.is_some();
        drop(sender);
        // A submitter waiting for space must see Closed now.
        self.space.notify_one();
        if let Some(handle) = lock(&self.io_thread).take()
            && handle.join().is_err()
        {
            self.io.fail("WAL I/O thread panicked".into());
        }
        was_open
    }
}

impl Drop for FileWal {
    /// Ensures everything submitted reaches the disk before the files can be reopened.
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn wal_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<super::FileWal>();
        assert_send_sync::<super::PendingAppend>();
    }
}
