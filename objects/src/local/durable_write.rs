//! One whole-object put to a local directory: a staging file written in
//! paced chunks, synced, renamed into place, its directory synced.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use object_store::{PutPayload, PutResult};

/// Bytes written between writeback waits. A WAL sync queues behind at most
/// two of them (the chunk being written back and the one just started):
/// about 2.5 ms at this disk's ~200 MiB/s.
pub const PACE_CHUNK: usize = 256 << 10;

/// One step of pacing, for [`SyncRange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writeback {
    /// Start writing the range back; do not wait.
    Start,
    /// Wait until the range is on disk.
    Wait,
}

/// `sync_file_range` on Linux; tests pass one that fails.
pub(crate) type SyncRange = fn(&File, u64, usize, Writeback) -> std::io::Result<()>;

/// Writes objects under `root` durably (see the module docs of `local`).
#[derive(Debug)]
pub(crate) struct DurableWriter {
    root: PathBuf,
    dirs: SyncedDirs,
    sync_range: SyncRange,
}

impl DurableWriter {
    pub(crate) fn new(root: PathBuf, sync_range: SyncRange) -> Self {
        Self {
            root,
            dirs: SyncedDirs::default(),
            sync_range,
        }
    }

    /// Writes `payload` to `path` through a synced staging file, renames it
    /// into place and syncs the directory.
    pub(crate) fn write(&self, path: &FsPath, payload: &PutPayload) -> std::io::Result<PutResult> {
        let parent = path
            .parent()
            .ok_or_else(|| std::io::Error::other(format!("{} has no parent", path.display())))?;
        self.dirs.ensure(&self.root, parent)?;
        let (file, staging) = match create_staging(path) {
            // The store's automatic cleanup removes directories that become
            // empty; one may go between the check and the create.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.dirs.forget(parent);
                self.dirs.ensure(&self.root, parent)?;
                create_staging(path)?
            }
            created => created?,
        };
        let written = write_paced(&file, payload, self.sync_range)
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&staging, path))
            .and_then(|()| sync_dir(parent));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&staging);
            return Err(e);
        }
        let meta = file.metadata()?;
        Ok(PutResult {
            e_tag: Some(etag(&meta)),
            version: None,
            extensions: Default::default(),
        })
    }
}

/// Directories known to exist with every entry from them up to the root
/// synced. Only a fully synced chain enters the set, so a put that failed
/// half-way, or one still syncing beside this one, never lets a later put
/// skip the syncs.
#[derive(Debug, Default)]
struct SyncedDirs {
    known: Mutex<HashSet<PathBuf>>,
}

/// Forgets everything past this many directories (a bound on memory; the
/// cost is one more chain of directory syncs per directory).
const MAX_KNOWN_DIRS: usize = 65_536;

impl SyncedDirs {
    fn ensure(&self, root: &FsPath, dir: &FsPath) -> std::io::Result<()> {
        if self.known().contains(dir) {
            return Ok(());
        }
        std::fs::create_dir_all(dir)?;
        let mut chain = vec![dir.to_path_buf()];
        let mut at = dir;
        while let Some(up) = at.parent() {
            if !up.starts_with(root) {
                break;
            }
            sync_dir(up)?;
            if up == root {
                break;
            }
            chain.push(up.to_path_buf());
            at = up;
        }
        let mut known = self.known();
        if known.len() + chain.len() > MAX_KNOWN_DIRS {
            known.clear();
        }
        known.extend(chain);
        Ok(())
    }

    fn forget(&self, dir: &FsPath) {
        self.known().remove(dir);
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashSet<PathBuf>> {
        // The set is a cache of facts about the disk; a panic elsewhere
        // cannot make it wrong.
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A new, empty staging file beside `path`.
fn create_staging(path: &FsPath) -> std::io::Result<(File, PathBuf)> {
    for n in 0u32.. {
        let mut name = path.as_os_str().to_owned();
        name.push(format!("#{n}"));
        let staging = PathBuf::from(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&staging)
        {
            Ok(file) => return Ok((file, staging)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free staging name"))
}

/// Writes the payload in [`PACE_CHUNK`]s, each chunk's writeback started as
/// it is written and the previous chunk's awaited before the next write.
/// Where the filesystem cannot pace, the final sync does all the work.
fn write_paced(
    mut file: &File,
    payload: &PutPayload,
    sync_range: SyncRange,
) -> std::io::Result<()> {
    let mut pacing = true;
    let mut offset = 0u64;
    let mut previous: Option<(u64, usize)> = None;
    for part in payload.iter() {
        for chunk in part.chunks(PACE_CHUNK) {
            file.write_all(chunk)?;
            if pacing {
                let paced =
                    sync_range(file, offset, chunk.len(), Writeback::Start).and_then(|()| {
                        previous.map_or(Ok(()), |(at, len)| {
                            sync_range(file, at, len, Writeback::Wait)
                        })
                    });
                if let Err(e) = paced {
                    if !pacing_unsupported(&e) {
                        return Err(e);
                    }
                    log_pacing_off(&e);
                    pacing = false;
                }
            }
            previous = Some((offset, chunk.len()));
            offset += chunk.len() as u64;
        }
    }
    Ok(())
}

/// Errors that say the call is not available here (some filesystems,
/// sandboxes, old kernels), not that the data failed to reach the disk.
/// Anything else, an I/O error above all, fails the put: once reported by
/// `sync_file_range`, the error would not be reported again by the fsync.
fn pacing_unsupported(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::Unsupported
        || matches!(
            e.raw_os_error(),
            Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::ESPIPE)
        )
}

fn log_pacing_off(e: &std::io::Error) {
    static LOGGED: AtomicBool = AtomicBool::new(false);
    if !LOGGED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            error = %e,
            "sync_file_range is not available: local object writes are synced in one go, \
             and WAL syncs may wait behind them"
        );
    }
}

fn sync_dir(dir: &FsPath) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The crate's e-tag scheme (inode, modification time, size), so a put's
/// e-tag matches what a later head or get of the object reports.
fn etag(meta: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0u64;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("\"{inode:x}-{mtime:x}-{:x}\"", meta.len())
}

/// Linux `sync_file_range`.
#[cfg(target_os = "linux")]
pub(crate) fn sync_file_range(
    file: &File,
    offset: u64,
    len: usize,
    step: Writeback,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let flags = match step {
        Writeback::Start => libc::SYNC_FILE_RANGE_WRITE,
        Writeback::Wait => {
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER
        }
    };
    // SAFETY: a plain syscall on an open descriptor; no memory is passed.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset as i64, len as i64, flags) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Elsewhere there is no pacing; the final sync does all the work.
#[cfg(not(target_os = "linux"))]
pub(crate) fn sync_file_range(_: &File, _: u64, _: usize, _: Writeback) -> std::io::Result<()> {
    Err(std::io::Error::from(ErrorKind::Unsupported))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> (PutPayload, Vec<u8>) {
        let whole: Vec<u8> = (0..PACE_CHUNK * 3 + 17).map(|i| (i % 251) as u8).collect();
        (PutPayload::from(whole.clone()), whole)
    }

    fn einval(_: &File, _: u64, _: usize, _: Writeback) -> std::io::Result<()> {
        Err(std::io::Error::from_raw_os_error(libc::EINVAL))
    }

    fn eio_on_wait(_: &File, _: u64, _: usize, step: Writeback) -> std::io::Result<()> {
        match step {
            Writeback::Start => Ok(()),
            Writeback::Wait => Err(std::io::Error::from_raw_os_error(libc::EIO)),
        }
    }

    #[test]
    fn a_filesystem_that_cannot_pace_still_gets_the_whole_object() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let writer = DurableWriter::new(root.clone(), einval);
        let (payload, whole) = payload();
        writer.write(&root.join("a/b.seg"), &payload).unwrap();
        assert_eq!(std::fs::read(root.join("a/b.seg")).unwrap(), whole);
    }

    #[test]
    fn an_io_error_while_pacing_fails_the_put_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let writer = DurableWriter::new(root.clone(), eio_on_wait);
        let (payload, _) = payload();
        let err = writer.write(&root.join("a/b.seg"), &payload).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        assert_eq!(std::fs::read_dir(root.join("a")).unwrap().count(), 0);
    }

    #[test]
    fn a_directory_removed_after_it_was_synced_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let writer = DurableWriter::new(root.clone(), sync_file_range);
        let path = root.join("seg/node-1/a.seg");
        writer
            .write(&path, &PutPayload::from(b"one".to_vec()))
            .unwrap();
        // What the store's cleanup does to a directory left empty.
        std::fs::remove_dir_all(root.join("seg")).unwrap();
        writer
            .write(&path, &PutPayload::from(b"two".to_vec()))
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
    }

    #[test]
    fn only_unavailability_turns_pacing_off() {
        for errno in [libc::EINVAL, libc::ENOSYS, libc::EOPNOTSUPP, libc::ESPIPE] {
            assert!(pacing_unsupported(&std::io::Error::from_raw_os_error(
                errno
            )));
        }
        for errno in [libc::EIO, libc::ENOSPC, libc::EBADF] {
            assert!(!pacing_unsupported(&std::io::Error::from_raw_os_error(
                errno
            )));
        }
    }
}
