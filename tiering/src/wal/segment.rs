//! Segment files on disk: naming, listing, creating. Blocking I/O; called
//! from `FileWal::open` and from the WAL's I/O thread only.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::WalError;
use super::frame::encode_segment_header;

/// `<dir>/<base_lsn as 20-digit zero-padded decimal>.wal`: zero padding makes
/// lexical order equal LSN order, so `ls` shows segments oldest first.
pub(crate) fn segment_path(dir: &Path, base_lsn: u64) -> PathBuf {
    dir.join(format!("{base_lsn:020}.wal"))
}

/// The base LSN encoded in a segment file name, or `None` for other files.
fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Every segment file in `dir`, oldest first. Other files are ignored.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(WalError::io(dir))? {
        let entry = entry.map_err(WalError::io(dir))?;
        let name = entry.file_name();
        if let Some(base) = name.to_str().and_then(parse_segment_name) {
            out.push((base, entry.path()));
        }
    }
    out.sort_unstable_by_key(|(base, _)| *base);
    Ok(out)
}

/// Creates (or resets) the segment file for `base_lsn` holding only its
/// header, makes it durable and makes its directory entry durable, and
/// returns it open for writing. A crash part-way leaves an empty or short
/// file, which recovery rewrites.
pub(crate) fn create_segment(dir: &Path, base_lsn: u64) -> Result<(File, PathBuf), WalError> {
    let path = segment_path(dir, base_lsn);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(WalError::io(&path))?;
    file.write_all(&encode_segment_header(base_lsn))
        .and_then(|()| file.sync_data())
        .map_err(WalError::io(&path))?;
    sync_dir(dir)?;
    Ok((file, path))
}

/// Where the group commit size of the WAL's last writer is kept: how much
/// a crash of that writer could tear, whatever the next start's config.
const GROUP_MAX_FILE: &str = "group-commit-max";

/// The group commit size the WAL's last writer recorded, if any.
pub(crate) fn recorded_group_max(dir: &Path) -> Option<u64> {
    std::fs::read_to_string(dir.join(GROUP_MAX_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Records `group_max` as the size this writer commits groups at, before
/// it writes any (a rename, so a crash leaves the old value or the new).
pub(crate) fn record_group_max(dir: &Path, group_max: u64) -> Result<(), WalError> {
    if recorded_group_max(dir) == Some(group_max) {
        return Ok(());
    }
    let temp = dir.join(format!("{GROUP_MAX_FILE}.tmp"));
    std::fs::write(&temp, format!("{group_max}\n"))
        .and_then(|()| File::open(&temp)?.sync_all())
        .and_then(|()| std::fs::rename(&temp, dir.join(GROUP_MAX_FILE)))
        .map_err(WalError::io(&temp))?;
    sync_dir(dir)
}

/// fsync of a directory, so created or removed entries survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(WalError::io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort() {
        let p = segment_path(Path::new("/x"), 42);
        assert_eq!(p, Path::new("/x/00000000000000000042.wal"));
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse_segment_name(name), Some(42));
        assert_eq!(parse_segment_name("42.wal"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.wal"), None);
        assert_eq!(parse_segment_name("00000000000000000042.tmp"), None);
        assert_eq!(
            parse_segment_name(&format!("{:020}.wal", u64::MAX)),
            Some(u64::MAX)
        );
    }
}
