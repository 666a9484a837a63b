//! The embedded store's journal file: where records go and how the file
//! is kept so that appending one costs one data write and one sync.
//!
//! ```text
//! file := magic "SMJ1" | database id: u64 LE | header crc: u32 LE | record* | zeros or older records
//! ```
//!
//! The id ties the journal to its database: a `meta.redb` restored from a
//! copy, or replaced, beside a journal it did not write is refused instead
//! of having another database's commits replayed into it. The header's
//! crc32c (of magic and id) tells a damaged header from another database's
//! journal; a header crc of 0 is a journal written before it had one, and
//! gets one when opened.
//!
//! Records start right after the header. After a checkpoint they are
//! written from there again, over the records the checkpoint made
//! redundant. The file grows by zeros ahead of the writer and shrinks only
//! when a checkpoint finds it far larger than needed, so a record's sync
//! does not also have to write the file's size.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::store::MetaError;

const MAGIC: &[u8; 4] = b"SMJ1";
/// Bytes before the first record.
pub(crate) const HEADER_LEN: u64 = 16;
/// The file grows by this much at a time.
const GROW_BYTES: u64 = 1 << 20;

fn io(what: &str, path: &Path, e: std::io::Error) -> MetaError {
    MetaError::Backend(format!("{what} {}: {e}", path.display()))
}

/// The header's checksum over its magic and id (never 0: 0 means none).
fn header_crc(magic_and_id: &[u8]) -> u32 {
    crc32c::crc32c(magic_and_id).max(1)
}

/// Why an append failed, and whether any of the record may be on disk.
#[derive(Debug)]
pub(crate) enum AppendError {
    /// Nothing of the record was written (the file could not be grown).
    NotWritten(MetaError),
    /// The write or its sync failed: the record may be on disk, whole.
    Uncertain(MetaError),
}

#[derive(Debug)]
pub(crate) struct JournalFile {
    file: File,
    path: PathBuf,
    /// Where the next record goes.
    write_at: u64,
    /// The file's length: header, records, then zeros or older records.
    file_len: u64,
}

impl JournalFile {
    /// Opens (or creates, for database `id`) the journal at `path`, and
    /// returns it with the bytes after its header. A journal written for
    /// another database is refused.
    pub(crate) fn open(path: &Path, id: u64) -> Result<(JournalFile, Vec<u8>), MetaError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io("opening the metadata journal", path, e))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut bytes)
            .map_err(|e| io("reading the metadata journal", path, e))?;
        let mut journal = JournalFile {
            file,
            path: path.to_path_buf(),
            write_at: HEADER_LEN,
            file_len: bytes.len() as u64,
        };
        if bytes.len() < HEADER_LEN as usize {
            // New, or cut short while being created: nothing was ever
            // journaled in it.
            journal.create(id)?;
            return Ok((journal, Vec::new()));
        }
        let damaged = |reason: String| MetaError::Damaged {
            file: path.display().to_string(),
            reason,
        };
        let found = u64::from_le_bytes(bytes[4..12].try_into().unwrap_or_default());
        let stored_crc = u32::from_le_bytes(bytes[12..16].try_into().unwrap_or_default());
        let crc = header_crc(&bytes[..12]);
        let keep_or_remove = "Restore the data directory from a copy, or remove the journal to keep \
             the database as of its last checkpoint (the commits after it are lost)";
        // Zeros where the id and checksum belong are damage too: no
        // database has id 0.
        if (stored_crc != 0 && stored_crc != crc) || (stored_crc == 0 && found == 0) {
            return Err(damaged(format!(
                "its header fails its checksum (stored {stored_crc:#x}, computed {crc:#x}), so \
                 which database it belongs to is unknown. {keep_or_remove}"
            )));
        }
        if &bytes[..4] != MAGIC {
            return Err(damaged(format!(
                "not a metadata journal: it starts with {:02x?}, not {MAGIC:02x?}. {keep_or_remove}",
                &bytes[..4]
            )));
        }
        if found != id {
            return Err(damaged(format!(
                "this journal belongs to another database (id {found:#x}, the database is {id:#x}): \
                 the database file was replaced or restored without its journal. Restore both files \
                 together, or remove the journal to keep the database as it is"
            )));
        }
        if stored_crc == 0 {
            journal
                .file
                .write_all_at(&crc.to_le_bytes(), 12)
                .and_then(|()| journal.file.sync_data())
                .map_err(|e| io("writing the metadata journal's header", path, e))?;
        }
        let records = bytes.split_off(HEADER_LEN as usize);
        Ok((journal, records))
    }

    fn create(&mut self, id: u64) -> Result<(), MetaError> {
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&id.to_le_bytes());
        let crc = header_crc(&header);
        header.extend_from_slice(&crc.to_le_bytes());
        self.file
            .set_len(0)
            .and_then(|()| self.file.write_all_at(&header, 0))
            .and_then(|()| self.file.sync_all())
            .map_err(|e| io("creating the metadata journal", &self.path, e))?;
        self.file_len = HEADER_LEN;
        if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // The journal's directory entry must survive a crash too.
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io("syncing", dir, e))?;
        }
        Ok(())
    }

    /// Bytes of records written since the last [`JournalFile::restart`].
    pub(crate) fn written(&self) -> u64 {
        self.write_at - HEADER_LEN
    }

    /// Appends `record` and syncs it.
    pub(crate) fn append(&mut self, record: &[u8]) -> Result<(), AppendError> {
        let end = self.write_at + record.len() as u64;
        if end > self.file_len {
            self.grow(end).map_err(AppendError::NotWritten)?;
        }
        self.file
            .write_all_at(record, self.write_at)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| {
                AppendError::Uncertain(io("writing the metadata journal", &self.path, e))
            })?;
        self.write_at = end;
        Ok(())
    }

    /// Extends the file with zeros to a whole [`GROW_BYTES`] past `end`.
    fn grow(&mut self, end: u64) -> Result<(), MetaError> {
        let target = end.next_multiple_of(GROW_BYTES);
        let zeros = vec![0u8; 64 << 10];
        let mut at = self.file_len;
        while at < target {
            let n = (target - at).min(zeros.len() as u64) as usize;
            self.file
                .write_all_at(&zeros[..n], at)
                .map_err(|e| io("growing the metadata journal", &self.path, e))?;
            at += n as u64;
        }
        self.file
            .sync_all()
            .map_err(|e| io("growing the metadata journal", &self.path, e))?;
        self.file_len = target;
        Ok(())
    }

    /// Keeps the first `records` bytes of records and saves the rest to
    /// `aside` (both synced) before cutting it off: what a repair that gives
    /// up a damaged part does.
    pub(crate) fn cut(&mut self, records: u64, aside: &Path) -> Result<u64, MetaError> {
        let at = HEADER_LEN + records;
        let mut rest = Vec::new();
        if self.file_len > at {
            rest.resize((self.file_len - at) as usize, 0);
            self.file
                .read_exact_at(&mut rest, at)
                .map_err(|e| io("reading the metadata journal", &self.path, e))?;
        }
        std::fs::write(aside, &rest)
            .and_then(|()| File::open(aside)?.sync_all())
            .map_err(|e| {
                io(
                    "saving the damaged part of the metadata journal to",
                    aside,
                    e,
                )
            })?;
        if let Some(dir) = aside.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io("syncing", dir, e))?;
        }
        self.file
            .set_len(at)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| io("cutting the metadata journal", &self.path, e))?;
        self.file_len = at;
        Ok(rest.len() as u64)
    }

    /// Writes the next record at the start again: every record in the file
    /// is covered by a synced checkpoint. A file grown far past `keep`
    /// bytes of records (by one huge group) is cut back to it.
    pub(crate) fn restart(&mut self, keep: u64) -> Result<(), MetaError> {
        self.write_at = HEADER_LEN;
        let keep = (HEADER_LEN + keep).next_multiple_of(GROW_BYTES);
        if self.file_len > 2 * keep {
            self.file
                .set_len(keep)
                .and_then(|()| self.file.sync_all())
                .map_err(|e| io("shrinking the metadata journal", &self.path, e))?;
            self.file_len = keep;
        }
        Ok(())
    }
}
