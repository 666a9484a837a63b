//! The offline repair an operator runs when recovery refuses damage to
//! acknowledged records and they choose to give those records up
//! (`strata check --cut-damage`). Nothing is deleted: what is cut is kept
//! beside the WAL for forensics.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::WalError;
use super::frame::SEGMENT_HEADER_LEN;
use super::segment::{list_segments, sync_dir};

/// What [`cut_damaged`] set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalCut {
    /// The segment cut at `offset`.
    pub segment: PathBuf,
    pub offset: u64,
    /// Bytes cut from it, kept in `saved_to`.
    pub cut_bytes: u64,
    pub saved_to: PathBuf,
    /// Later segments, renamed to `<name>.damaged` so recovery skips them.
    pub set_aside: Vec<PathBuf>,
}

/// Cuts `segment` (a segment file in `dir`) at file offset `offset`, the
/// damage recovery reported, and sets every later segment aside. The WAL
/// then ends at the damage: the next start replays what is before it.
pub fn cut_damaged(dir: &Path, segment: &Path, offset: u64) -> Result<WalCut, WalError> {
    let segments = list_segments(dir)?;
    let Some(at) = segments.iter().position(|(_, p)| p == segment) else {
        return Err(WalError::Config(format!(
            "{} is not a segment of the WAL in {}",
            segment.display(),
            dir.display()
        )));
    };
    if offset < SEGMENT_HEADER_LEN as u64 {
        // The header is damaged, or the file does not follow the one before
        // it: the whole file goes aside with the later ones.
        let cut_bytes = std::fs::metadata(segment)
            .map_err(WalError::io(segment))?
            .len();
        let mut set_aside = set_aside_from(&segments[at..])?;
        sync_dir(dir)?;
        let saved_to = set_aside.remove(0);
        tracing::warn!(segment = %segment.display(), saved_to = %saved_to.display(),
            set_aside = set_aside.len(), "set a damaged WAL segment aside");
        return Ok(WalCut {
            segment: segment.to_path_buf(),
            offset,
            cut_bytes,
            saved_to,
            set_aside,
        });
    }
    let saved_to = aside(segment, &format!("damaged-at-{offset}"));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(segment)
        .map_err(WalError::io(segment))?;
    let mut rest = Vec::new();
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_to_end(&mut rest))
        .map_err(WalError::io(segment))?;
    std::fs::write(&saved_to, &rest)
        .and_then(|()| File::open(&saved_to)?.sync_all())
        .map_err(WalError::io(&saved_to))?;
    let set_aside = set_aside_from(&segments[at + 1..])?;
    // The copy's entry and the renames are durable before anything is cut.
    sync_dir(dir)?;
    file.set_len(offset)
        .and_then(|()| file.sync_all())
        .map_err(WalError::io(segment))?;
    tracing::warn!(segment = %segment.display(), offset, cut_bytes = rest.len(),
        saved_to = %saved_to.display(), set_aside = set_aside.len(),
        "cut the WAL at its damage");
    Ok(WalCut {
        segment: segment.to_path_buf(),
        offset,
        cut_bytes: rest.len() as u64,
        saved_to,
        set_aside,
    })
}

/// Renames `segments` to `<name>.damaged`, the last first: a crash part-way
/// leaves a WAL whose end is still damaged, which recovery refuses again
/// rather than misreads. Returns the new names, oldest first.
fn set_aside_from(segments: &[(u64, PathBuf)]) -> Result<Vec<PathBuf>, WalError> {
    let mut set_aside = Vec::new();
    for (_, path) in segments.iter().rev() {
        let to = aside(path, "damaged");
        std::fs::rename(path, &to).map_err(WalError::io(path))?;
        set_aside.push(to);
    }
    set_aside.reverse();
    Ok(set_aside)
}

/// `<path>.<suffix>`, which no longer ends in `.wal`, so recovery ignores it.
fn aside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}
