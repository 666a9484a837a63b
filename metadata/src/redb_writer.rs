//! The embedded store's writer thread: group commit through a journal.
//!
//! A redb commit that syncs writes every B-tree page the group touched
//! (leaves, branches, free lists) and waits for them: with the message
//! index and POP state in the tree that was tens of kilobytes and about a
//! millisecond per group, and 100 MB/s of writes under a receive-and-ack
//! load. Here each group is applied in a redb transaction that does not
//! sync, its mutations are appended to the journal as one record and that
//! small append is synced; only then is the transaction committed (made
//! visible) and the group answered. Every [`Checkpoints::groups`] groups
//! or [`Checkpoints::bytes`] of journal, one synced redb commit persists
//! them all and the journal is written again from its start. The file is
//! grown with zeros ahead of the records and never shrunk, so a record's
//! sync writes its data only, not the file's size.
//!
//! The redb table `journal` holds the sequence number of the last group
//! applied, written in the same transaction as the group. After a crash
//! redb opens at its last synced commit, and [`Writer::open`] replays the
//! journal's records after that number, so every acknowledged commit is
//! back before the store answers anything.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};
use tokio::sync::oneshot;

use crate::journal;
use crate::store::{MetaError, Mutation, Txn, TxnOutcome};

/// The one table holding every metadata key.
pub(crate) const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
/// The journal's bookkeeping: [`APPLIED`] → last group applied.
const JOURNAL: TableDefinition<&str, u64> = TableDefinition::new("journal");
const APPLIED: &str = "applied";

/// The journal grows by this much at a time.
const GROW_BYTES: u64 = 1 << 20;

/// Most commits applied in one group.
const MAX_GROUP: usize = 512;

/// A commit waiting for the writer thread, and where its outcome goes.
pub(crate) type Job = (Txn, oneshot::Sender<Result<TxnOutcome, MetaError>>);

/// When the writer syncs the B-tree and starts the journal over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoints {
    /// After this many groups since the last checkpoint.
    pub groups: u64,
    /// After the journal reaches this many bytes.
    pub bytes: u64,
}

impl Default for Checkpoints {
    /// A checkpoint every 4096 groups or 16 MiB: a restart replays at most
    /// that much, and redb keeps pages freed since the last checkpoint.
    fn default() -> Self {
        Checkpoints {
            groups: 4096,
            bytes: 16 << 20,
        }
    }
}

pub(crate) fn backend(err: impl Into<redb::Error>) -> MetaError {
    MetaError::Backend(format!("redb: {}", err.into()))
}

fn io(what: &str, path: &Path, e: std::io::Error) -> MetaError {
    MetaError::Backend(format!("{what} {}: {e}", path.display()))
}

/// Owns the write side of the database: only this thread writes.
pub(crate) struct Writer {
    db: Arc<Database>,
    journal: File,
    journal_path: PathBuf,
    /// Where the next record goes: the journal is rewritten from the start
    /// after each checkpoint, over records that checkpoint made redundant.
    write_at: u64,
    /// The journal file's length. It only grows (by zeros, ahead of the
    /// records), so a record's sync never has to update the file's size.
    file_len: u64,
    /// Groups replayed when the store was opened.
    pub(crate) replayed: u64,
    next_seq: u64,
    groups_since_checkpoint: u64,
    checkpoints: Checkpoints,
}

impl Writer {
    /// Opens the journal at `journal_path` and replays what it holds
    /// beyond the database's last applied group, then checkpoints.
    pub(crate) fn open(
        db: Arc<Database>,
        journal_path: &Path,
        checkpoints: Checkpoints,
    ) -> Result<Writer, MetaError> {
        let journal = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(journal_path)
            .map_err(|e| io("opening the metadata journal", journal_path, e))?;
        if let Some(dir) = journal_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // The journal's directory entry must survive a crash too.
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io("syncing", dir, e))?;
        }
        let mut writer = Writer {
            db,
            journal,
            journal_path: journal_path.to_path_buf(),
            write_at: 0,
            file_len: 0,
            replayed: 0,
            next_seq: 1,
            groups_since_checkpoint: 0,
            checkpoints,
        };
        writer.replay()?;
        Ok(writer)
    }

    fn replay(&mut self) -> Result<(), MetaError> {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut &self.journal, &mut bytes)
            .map_err(|e| io("reading the metadata journal", &self.journal_path, e))?;
        self.file_len = bytes.len() as u64;
        let decoded = journal::decode(&bytes);
        // Records end at the first one cut short or failing its checksum:
        // the one a crash interrupted (never acknowledged), zeros ahead of
        // the writer, or an older record partly overwritten.
        let mut wtxn = self.db.begin_write().map_err(backend)?;
        let applied = {
            let table = wtxn.open_table(JOURNAL).map_err(backend)?;
            let applied = table.get(APPLIED).map_err(backend)?;
            applied.map_or(0, |v| v.value())
        };
        let mut last = applied;
        let mut replayed = 0usize;
        {
            let mut kv = wtxn.open_table(KV).map_err(backend)?;
            for record in decoded.records.iter().filter(|r| r.seq > applied) {
                if record.seq != last + 1 {
                    return Err(MetaError::Corrupt {
                        key: self.journal_path.display().to_string(),
                        reason: format!(
                            "journal record {} follows group {last}: groups in between are missing",
                            record.seq
                        ),
                    });
                }
                apply(&mut kv, &record.mutations)?;
                last = record.seq;
                replayed += 1;
            }
        }
        set_applied(&mut wtxn, last)?;
        wtxn.commit().map_err(backend)?;
        if replayed > 0 {
            tracing::info!(groups = replayed, last, "replayed the metadata journal");
        }
        self.replayed = replayed as u64;
        self.next_seq = last + 1;
        self.write_at = 0;
        Ok(())
    }

    /// Answers commits until every sender is gone, then checkpoints. An I/O
    /// failure once a group's record may be on disk stops the thread: what
    /// the database holds is then uncertain, and later commits fail.
    pub(crate) fn run(mut self, queue: &mpsc::Receiver<Job>) {
        while let Ok(first) = queue.recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match queue.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            let (txns, replies): (Vec<Txn>, Vec<_>) = group.into_iter().unzip();
            let (result, fatal) = self.commit_group(&txns);
            match result {
                Ok(outcomes) => {
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    let text = e.to_string();
                    for reply in replies {
                        let _ = reply.send(Err(MetaError::Backend(text.clone())));
                    }
                    if fatal {
                        tracing::error!(error = %text, "the metadata writer stops: later commits fail until the server restarts");
                        return;
                    }
                }
            }
        }
        if let Err(e) = self.checkpoint() {
            tracing::warn!(error = %e, "final metadata checkpoint failed; the journal is replayed at the next start");
        }
    }

    /// Applies `txns` in order, a commit whose check fails skipped whole,
    /// and makes the group durable. The flag says whether a failure leaves
    /// the database uncertain (the writer must stop).
    fn commit_group(&mut self, txns: &[Txn]) -> (Result<Vec<TxnOutcome>, MetaError>, bool) {
        let mut wtxn = match self.db.begin_write() {
            Ok(w) => w,
            Err(e) => return (Err(backend(e)), false),
        };
        let outcomes = match evaluate(&mut wtxn, txns) {
            Ok(outcomes) => outcomes,
            // Dropping the transaction discards the group's writes.
            Err(e) => return (Err(e), false),
        };
        if outcomes.iter().all(|o| *o != TxnOutcome::Committed) {
            // Nothing written: dropping the transaction ends it.
            return (Ok(outcomes), false);
        }
        let committed = txns
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| **o == TxnOutcome::Committed)
            .flat_map(|(t, _)| &t.mutations);
        let mut record = Vec::new();
        journal::encode_record(self.next_seq, committed, &mut record);
        let prepared = wtxn
            .set_durability(Durability::None)
            .map_err(backend)
            .and_then(|()| set_applied(&mut wtxn, self.next_seq));
        if let Err(e) = prepared {
            return (Err(e), false);
        }
        // From here the record may be on disk: a failure is fatal.
        let done = self
            .append_journal(&record)
            .and_then(|()| wtxn.commit().map_err(backend));
        if let Err(e) = done {
            return (Err(e), true);
        }
        self.next_seq += 1;
        self.groups_since_checkpoint += 1;
        if self.groups_since_checkpoint >= self.checkpoints.groups
            || self.write_at >= self.checkpoints.bytes
        {
            // The group is durable in the journal already; a failed
            // checkpoint still stops the writer, as redb's state is unknown.
            if let Err(e) = self.checkpoint() {
                tracing::error!(error = %e, "metadata checkpoint failed");
                return (Ok(outcomes), true);
            }
        }
        (Ok(outcomes), false)
    }

    fn append_journal(&mut self, record: &[u8]) -> Result<(), MetaError> {
        let end = self.write_at + record.len() as u64;
        if end > self.file_len {
            self.grow_journal(end)?;
        }
        self.journal
            .write_all_at(record, self.write_at)
            .and_then(|()| self.journal.sync_data())
            .map_err(|e| io("writing the metadata journal", &self.journal_path, e))?;
        self.write_at = end;
        Ok(())
    }

    /// Extends the journal with zeros to a whole [`GROW_BYTES`] past `end`.
    fn grow_journal(&mut self, end: u64) -> Result<(), MetaError> {
        let target = end.next_multiple_of(GROW_BYTES);
        let zeros = vec![0u8; 64 << 10];
        let mut at = self.file_len;
        while at < target {
            let n = (target - at).min(zeros.len() as u64) as usize;
            self.journal
                .write_all_at(&zeros[..n], at)
                .map_err(|e| io("growing the metadata journal", &self.journal_path, e))?;
            at += n as u64;
        }
        self.journal
            .sync_all()
            .map_err(|e| io("growing the metadata journal", &self.journal_path, e))?;
        self.file_len = target;
        Ok(())
    }

    /// Syncs every group applied so far into redb, then empties the journal.
    fn checkpoint(&mut self) -> Result<(), MetaError> {
        if self.groups_since_checkpoint == 0 {
            return Ok(());
        }
        let mut wtxn = self.db.begin_write().map_err(backend)?;
        // A synced commit persists the unsynced ones before it; it writes
        // the applied number again so it is never empty.
        set_applied(&mut wtxn, self.next_seq - 1)?;
        wtxn.commit().map_err(backend)?;
        self.groups_since_checkpoint = 0;
        self.write_at = 0;
        Ok(())
    }
}

/// Runs each commit's checks and, if they hold, its mutations, inside
/// `wtxn` (so a commit sees the ones before it in the group).
fn evaluate(wtxn: &mut WriteTransaction, txns: &[Txn]) -> Result<Vec<TxnOutcome>, MetaError> {
    let mut table = wtxn.open_table(KV).map_err(backend)?;
    let mut outcomes = Vec::with_capacity(txns.len());
    'txns: for txn in txns {
        for (index, check) in txn.checks.iter().enumerate() {
            let current = table.get(check.key()).map_err(backend)?;
            if !check.holds(current.as_ref().map(|v| v.value())) {
                outcomes.push(TxnOutcome::CheckFailed { index });
                continue 'txns;
            }
        }
        apply(&mut table, &txn.mutations)?;
        outcomes.push(TxnOutcome::Committed);
    }
    Ok(outcomes)
}

fn apply(table: &mut redb::Table<&[u8], &[u8]>, mutations: &[Mutation]) -> Result<(), MetaError> {
    for mutation in mutations {
        match mutation {
            Mutation::Put { key, value } => {
                table
                    .insert(key.as_slice(), value.as_slice())
                    .map_err(backend)?;
            }
            Mutation::Delete { key } => {
                table.remove(key.as_slice()).map_err(backend)?;
            }
        }
    }
    Ok(())
}

fn set_applied(wtxn: &mut WriteTransaction, seq: u64) -> Result<(), MetaError> {
    let mut table = wtxn.open_table(JOURNAL).map_err(backend)?;
    table.insert(APPLIED, seq).map_err(backend)?;
    Ok(())
}
