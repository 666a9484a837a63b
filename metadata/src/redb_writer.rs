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
//! them all and the journal is written again from its start (see
//! [`crate::journal_file`] for how the file is kept).
//!
//! The redb table `journal` holds the sequence number of the last group
//! applied, written in the same transaction as the group. After a crash
//! redb opens at its last synced commit, and [`Writer::open`] replays the
//! journal's records after that number, so every acknowledged commit is
//! back before the store answers anything.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::{Arc, mpsc};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use tokio::sync::oneshot;

use crate::journal;
use crate::journal_file::{AppendError, HEADER_LEN, JournalFile};
use crate::store::{MetaError, Mutation, Txn, TxnOutcome};

/// The one table holding every metadata key.
pub(crate) const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
/// The journal's bookkeeping: [`APPLIED`] → last group applied, [`ID`] →
/// the database's id, also written in its journal's header.
const JOURNAL: TableDefinition<&str, u64> = TableDefinition::new("journal");
const APPLIED: &str = "applied";
const ID: &str = "id";

/// Most commits applied in one group.
const MAX_GROUP: usize = 512;
/// A group stops taking commits once their keys and values reach this.
const MAX_GROUP_BYTES: usize = 64 << 20;

/// A commit waiting for the writer thread, and where its outcome goes.
pub(crate) type Job = (Txn, oneshot::Sender<Result<TxnOutcome, MetaError>>);

/// When the writer syncs the B-tree and starts the journal over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoints {
    /// After this many groups since the last checkpoint.
    pub groups: u64,
    /// After this many bytes of records appended since the last checkpoint.
    pub bytes: u64,
}

impl Default for Checkpoints {
    /// A checkpoint every 4096 groups or 16 MiB: a restart replays at most
    /// that much, and pages that redb frees cannot be reused before the
    /// next checkpoint (so the file grows meanwhile).
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

/// How a group ended, and whether the writer can go on.
enum GroupEnd {
    /// Answered; the writer goes on.
    Answered(Vec<TxnOutcome>),
    /// Answered, but a checkpoint after it failed: redb's state is unknown.
    AnsweredThenStop(Vec<TxnOutcome>, MetaError),
    /// Nothing of the group was written; the writer goes on.
    Failed(MetaError),
    /// The group's record may be on disk while the database lacks it.
    Fatal(MetaError),
}

/// Owns the write side of the database: only this thread writes.
pub(crate) struct Writer {
    db: Arc<Database>,
    journal: JournalFile,
    /// Groups replayed when the store was opened.
    pub(crate) replayed: u64,
    next_seq: u64,
    groups_since_checkpoint: u64,
    checkpoints: Checkpoints,
}

impl Writer {
    /// Opens the journal at `journal_path`, replays what it holds beyond
    /// the database's last applied group and makes that durable.
    pub(crate) fn open(
        db: Arc<Database>,
        journal_path: &Path,
        checkpoints: Checkpoints,
    ) -> Result<Writer, MetaError> {
        let id = database_id(&db)?;
        let (journal, bytes) = JournalFile::open(journal_path, id)?;
        let mut writer = Writer {
            db,
            journal,
            replayed: 0,
            next_seq: 1,
            groups_since_checkpoint: 0,
            checkpoints,
        };
        writer.replay(&bytes, journal_path)?;
        Ok(writer)
    }

    /// Applies the records numbered after the last applied group, in one
    /// synced commit. Records end at the first one cut short or failing
    /// its checksum: the one a crash interrupted (never acknowledged),
    /// zeros ahead of the writer, or an older record partly overwritten.
    fn replay(&mut self, bytes: &[u8], journal_path: &Path) -> Result<(), MetaError> {
        let decoded = journal::decode(bytes);
        let wtxn = self.db.begin_write().map_err(backend)?;
        let applied = {
            let table = wtxn.open_table(JOURNAL).map_err(backend)?;
            let applied = table.get(APPLIED).map_err(backend)?;
            applied.map_or(0, |v| v.value())
        };
        let mut last = applied;
        let mut replayed = 0;
        {
            let mut kv = wtxn.open_table(KV).map_err(backend)?;
            for record in decoded.records.iter().filter(|r| r.seq > applied) {
                if record.seq != last + 1 {
                    return Err(MetaError::Damaged {
                        file: journal_path.display().to_string(),
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
        if let Some((at, later)) = journal::later_record(bytes, decoded.valid_len, last) {
            return Err(MetaError::Damaged {
                file: journal_path.display().to_string(),
                reason: format!(
                    "the record after group {last} (byte {}) is damaged, yet group {later} \
                     follows at byte {}: appends are synced one after another, so this is no \
                     torn write, and replaying up to the damage only would drop acknowledged \
                     commits. Restore the data directory, or give up the commits from group {} \
                     on and start: strata check --data-dir <data-dir> --cut-damage",
                    HEADER_LEN + decoded.valid_len as u64,
                    HEADER_LEN + at as u64,
                    last + 1
                ),
            });
        }
        set_applied(&wtxn, last)?;
        wtxn.commit().map_err(backend)?;
        if replayed > 0 {
            tracing::info!(groups = replayed, last, "replayed the metadata journal");
        }
        self.replayed = replayed;
        self.next_seq = last + 1;
        self.journal.restart(self.checkpoints.bytes)
    }

    /// Answers commits until every sender is gone, then checkpoints. A
    /// failure that leaves the database uncertain stops the thread, and
    /// later commits fail until the store is opened again.
    pub(crate) fn run(mut self, queue: &mpsc::Receiver<Job>) {
        while let Ok(first) = queue.recv() {
            let mut bytes = txn_bytes(&first.0);
            let mut group = vec![first];
            while group.len() < MAX_GROUP && bytes < MAX_GROUP_BYTES {
                match queue.try_recv() {
                    Ok(job) => {
                        bytes += txn_bytes(&job.0);
                        group.push(job);
                    }
                    Err(_) => break,
                }
            }
            let (txns, replies): (Vec<Txn>, Vec<_>) = group.into_iter().unzip();
            let (outcomes, stop) = match self.commit_group(&txns) {
                GroupEnd::Answered(outcomes) => (Ok(outcomes), None),
                GroupEnd::AnsweredThenStop(outcomes, e) => (Ok(outcomes), Some(e)),
                GroupEnd::Failed(e) => (Err(e), None),
                GroupEnd::Fatal(e) => {
                    let text = e.to_string();
                    (Err(e), Some(MetaError::Backend(text)))
                }
            };
            match outcomes {
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
                }
            }
            if let Some(e) = stop {
                tracing::error!(error = %e, "the metadata writer stops: later commits fail until the store is opened again");
                return;
            }
        }
        if let Err(e) = self.checkpoint() {
            tracing::warn!(error = %e, "final metadata checkpoint failed; the journal is replayed at the next start");
        }
    }

    /// Applies `txns` in order, a commit whose check fails skipped whole,
    /// and makes the group durable.
    fn commit_group(&mut self, txns: &[Txn]) -> GroupEnd {
        let mut wtxn = match self.db.begin_write() {
            Ok(w) => w,
            Err(e) => return GroupEnd::Failed(backend(e)),
        };
        // On any early return, dropping the transaction discards its writes.
        let outcomes = match evaluate(&wtxn, txns) {
            Ok(outcomes) => outcomes,
            Err(e) => return GroupEnd::Failed(e),
        };
        if outcomes.iter().all(|o| *o != TxnOutcome::Committed) {
            return GroupEnd::Answered(outcomes);
        }
        let committed = txns
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| **o == TxnOutcome::Committed)
            .flat_map(|(t, _)| &t.mutations);
        let mut record = Vec::new();
        if let Err(e) = journal::encode_record(self.next_seq, committed, &mut record) {
            return GroupEnd::Failed(MetaError::Invalid(e.to_string()));
        }
        let prepared = wtxn
            .set_durability(Durability::None)
            .map_err(backend)
            .and_then(|()| set_applied(&wtxn, self.next_seq));
        if let Err(e) = prepared {
            return GroupEnd::Failed(e);
        }
        match self.journal.append(&record) {
            Ok(()) => {}
            Err(AppendError::NotWritten(e)) => return GroupEnd::Failed(e),
            Err(AppendError::Uncertain(e)) => return GroupEnd::Fatal(e),
        }
        // The record is durable: a restart replays it even if this fails.
        if let Err(e) = wtxn.commit() {
            return GroupEnd::Fatal(backend(e));
        }
        self.next_seq += 1;
        self.groups_since_checkpoint += 1;
        let due = self.groups_since_checkpoint >= self.checkpoints.groups
            || self.journal.written() >= self.checkpoints.bytes;
        if due && let Err(e) = self.checkpoint() {
            return GroupEnd::AnsweredThenStop(outcomes, e);
        }
        GroupEnd::Answered(outcomes)
    }

    /// Syncs every group applied so far into redb, then writes the journal
    /// from its start again (the records there stay until overwritten).
    fn checkpoint(&mut self) -> Result<(), MetaError> {
        if self.groups_since_checkpoint == 0 {
            return Ok(());
        }
        let wtxn = self.db.begin_write().map_err(backend)?;
        // A synced commit persists the unsynced ones before it; it writes
        // the applied number again so it is never empty.
        set_applied(&wtxn, self.next_seq - 1)?;
        wtxn.commit().map_err(backend)?;
        self.groups_since_checkpoint = 0;
        self.journal.restart(self.checkpoints.bytes)
    }
}

/// What [`cut_damaged_journal`] gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalCut {
    /// The last group kept.
    pub last_group: u64,
    /// The group found after the damage.
    pub later_group: u64,
    /// Bytes cut off, saved to `saved_to`.
    pub cut_bytes: u64,
    pub saved_to: std::path::PathBuf,
}

/// Cuts a journal that replay refuses as damaged (see
/// [`journal::later_record`]) back to its records before the damage,
/// saving the rest beside it. `None` when replay would not refuse it.
pub(crate) fn cut_damaged_journal(
    db: &Database,
    journal_path: &Path,
) -> Result<Option<JournalCut>, MetaError> {
    let id = database_id(db)?;
    let applied = {
        let rtxn = db.begin_read().map_err(backend)?;
        match rtxn.open_table(JOURNAL) {
            Ok(table) => table
                .get(APPLIED)
                .map_err(backend)?
                .map_or(0, |v| v.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(backend(e)),
        }
    };
    let (mut journal, bytes) = JournalFile::open(journal_path, id)?;
    let decoded = journal::decode(&bytes);
    let last = decoded
        .records
        .iter()
        .filter(|r| r.seq > applied)
        .map(|r| r.seq)
        .max()
        .unwrap_or(applied);
    let Some((_, later_group)) = journal::later_record(&bytes, decoded.valid_len, last) else {
        return Ok(None);
    };
    // A name no earlier cut used.
    let saved_to = (0..)
        .map(|n| {
            let mut name = journal_path.as_os_str().to_owned();
            name.push(if n == 0 {
                ".damaged".into()
            } else {
                format!(".damaged.{n}")
            });
            std::path::PathBuf::from(name)
        })
        .find(|p| !p.exists())
        .unwrap_or_else(|| journal_path.with_extension("damaged"));
    let cut_bytes = journal.cut(decoded.valid_len as u64, &saved_to)?;
    tracing::warn!(path = %journal_path.display(), last_group = last, later_group, cut_bytes,
        saved_to = %saved_to.display(), "cut the metadata journal at its damage");
    Ok(Some(JournalCut {
        last_group: last,
        later_group,
        cut_bytes,
        saved_to,
    }))
}

/// The database's id, created (durably) on first use.
fn database_id(db: &Database) -> Result<u64, MetaError> {
    let wtxn = db.begin_write().map_err(backend)?;
    let id = {
        let mut table = wtxn.open_table(JOURNAL).map_err(backend)?;
        let stored = table.get(ID).map_err(backend)?.map(|v| v.value());
        match stored {
            Some(id) => id,
            None => {
                let id = RandomState::new().hash_one(std::process::id());
                table.insert(ID, id).map_err(backend)?;
                id
            }
        }
    };
    wtxn.commit().map_err(backend)?;
    Ok(id)
}

/// Bytes of keys and values a commit writes.
fn txn_bytes(txn: &Txn) -> usize {
    txn.mutations
        .iter()
        .map(|m| match m {
            Mutation::Put { key, value } => key.len() + value.len(),
            Mutation::Delete { key } => key.len(),
        })
        .sum()
}

/// Runs each commit's checks and, if they hold, its mutations, inside
/// `wtxn` (so a commit sees the ones before it in the group).
fn evaluate(wtxn: &WriteTransaction, txns: &[Txn]) -> Result<Vec<TxnOutcome>, MetaError> {
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

fn set_applied(wtxn: &WriteTransaction, seq: u64) -> Result<(), MetaError> {
    let mut table = wtxn.open_table(JOURNAL).map_err(backend)?;
    table.insert(APPLIED, seq).map_err(backend)?;
    Ok(())
}
