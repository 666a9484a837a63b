//! The block cache's disk tier is disposable, and it must never take the
//! space the WAL and the metadata store need: a black-box run filled the
//! data disk with cached blocks from catch-up reads alone, the next publish
//! failed its fdatasync, the node stopped, and every restart failed in the
//! metadata store (no space) until an operator removed the cache by hand.
//!
//! So at start the disk tier is sized to at most half of what its
//! filesystem can give it (free space plus what the cache already holds),
//! or turned off when that is too little, and a data directory whose
//! filesystem is nearly full has its cache emptied before anything else
//! opens.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::server::ServerError;

/// Below this much free space on the data directory's filesystem, the
/// cache's disk tier is emptied at start.
pub const NEARLY_FULL_BYTES: u64 = 256 << 20;

/// What the disk tier may hold, given `configured` bytes, the filesystem's
/// `free` bytes and what the cache directory `held` already: at most half
/// of `free + held`.
pub fn disk_tier_bytes(configured: u64, free: u64, held: u64) -> u64 {
    configured.min(free.saturating_add(held) / 2)
}

/// The cache's disk tier directory, if the configuration has one.
fn cache_dir(config: &Config) -> Option<PathBuf> {
    match config.cache.block_disk_dir.as_str() {
        "" => Some(config.data_dir.join("cache")),
        "none" => None,
        dir => Some(PathBuf::from(dir)),
    }
}

/// Locks the disk tier's directory when it is not under the data directory
/// (whose own lock covers the default), so that two nodes configured with
/// one `cache.block_disk_dir` do not write, size and empty one cache: the
/// second start is refused. The directory itself is locked (`flock` on its
/// descriptor), so nothing is added to what the cache stores there. Held
/// until the returned file is dropped.
pub fn lock_block_disk_dir(config: &Config) -> Result<Option<std::fs::File>, ServerError> {
    let Some(dir) = cache_dir(config) else {
        return Ok(None);
    };
    if dir.starts_with(&config.data_dir) {
        return Ok(None);
    }
    let error = |source: std::io::Error| ServerError::CacheDir {
        dir: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(error)?;
    let handle = std::fs::File::open(&dir).map_err(error)?;
    match handle.try_lock() {
        Ok(()) => Ok(Some(handle)),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServerError::CacheDirLocked {
            dir: dir.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(error(source)),
    }
}

/// Empties the disk tier if the data directory's filesystem is nearly full
/// (and the tier shares it), then sizes the tier to its filesystem. Called
/// at start, before the metadata store opens.
pub fn prepare_block_cache(config: &mut Config) {
    let Some(dir) = cache_dir(config) else {
        return;
    };
    if let Ok(free) = free_bytes(&config.data_dir)
        && free < NEARLY_FULL_BYTES
        && same_filesystem(&config.data_dir, &dir)
        && dir.is_dir()
    {
        match empty_dir(&dir) {
            Ok(freed) => tracing::warn!(
                free_bytes = free,
                freed_bytes = freed,
                cache_dir = %dir.display(),
                "the data directory's disk is nearly full; emptied the block cache's disk tier (cached copies of stored objects) to start"
            ),
            Err(e) => {
                tracing::warn!(error = %e, cache_dir = %dir.display(), "emptying the block cache's disk tier failed")
            }
        }
    }
    let probe = nearest_existing(&dir);
    let Ok(free) = free_bytes(&probe) else {
        return;
    };
    let held = dir_bytes(&dir);
    let configured = config.cache.block_disk_bytes;
    let bytes = disk_tier_bytes(configured, free, held);
    match strata_cache::block::check_disk_bytes(bytes) {
        Ok(()) if bytes == configured => {}
        Ok(()) => {
            tracing::warn!(
                configured_bytes = configured,
                bytes,
                free_bytes = free,
                cache_dir = %dir.display(),
                "cache.block_disk_bytes is more than half of what its filesystem has free; the disk tier holds less"
            );
            config.cache.block_disk_bytes = bytes;
        }
        Err(_) => {
            tracing::warn!(
                configured_bytes = configured,
                free_bytes = free,
                cache_dir = %dir.display(),
                "too little free space for the block cache's disk tier; caching in memory only"
            );
            config.cache.block_disk_dir = "none".into();
        }
    }
}

/// Bytes available to unprivileged writers on `path`'s filesystem.
#[cfg(unix)]
fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` is
    // written by statvfs before it is read (only on success).
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    // Narrower than u64 on some platforms.
    #[allow(clippy::useless_conversion)]
    let (blocks, size) = (u64::from(stat.f_bavail), u64::from(stat.f_frsize));
    Ok(blocks.saturating_mul(size))
}

#[cfg(not(unix))]
fn free_bytes(_path: &Path) -> std::io::Result<u64> {
    Err(std::io::Error::other("free space is known on Unix only"))
}

#[cfg(unix)]
fn same_filesystem(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(nearest_existing(b))) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_filesystem(_a: &Path, _b: &Path) -> bool {
    false
}

/// `path` or its nearest ancestor that exists (the cache directory is
/// created when the cache opens).
fn nearest_existing(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    while !p.exists() {
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent.to_path_buf(),
            _ => return PathBuf::from("."),
        }
    }
    p
}

/// Bytes of the regular files under `dir` (0 if it does not exist).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Removes everything under `dir`, keeping `dir`; returns the bytes freed.
fn empty_dir(dir: &Path) -> std::io::Result<u64> {
    let freed = dir_bytes(dir);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tier_takes_at_most_half_of_what_its_filesystem_can_give() {
        const MIB: u64 = 1 << 20;
        // Plenty of room: as configured.
        assert_eq!(disk_tier_bytes(1024 * MIB, 100_000 * MIB, 0), 1024 * MIB);
        // The black-box run's 32 MiB tier with 17 MiB free: 8.5 MiB, below
        // what a disk tier needs, so memory only.
        let bytes = disk_tier_bytes(32 * MIB, 17 * MIB, 0);
        assert_eq!(bytes, 17 * MIB / 2);
        assert!(strata_cache::block::check_disk_bytes(bytes).is_err());
        // What the cache already holds counts as available to it.
        assert_eq!(disk_tier_bytes(1024 * MIB, 300 * MIB, 500 * MIB), 400 * MIB);
        assert_eq!(disk_tier_bytes(u64::MAX, u64::MAX, u64::MAX), u64::MAX / 2);
    }

    #[test]
    fn a_cache_directory_is_emptied_but_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        std::fs::create_dir_all(cache.join("sub")).unwrap();
        std::fs::write(cache.join("a"), vec![0u8; 1000]).unwrap();
        std::fs::write(cache.join("sub/b"), vec![0u8; 24]).unwrap();
        assert_eq!(dir_bytes(&cache), 1024);
        assert_eq!(empty_dir(&cache).unwrap(), 1024);
        assert!(cache.is_dir());
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);
        assert!(same_filesystem(dir.path(), &cache));
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert_eq!(nearest_existing(&cache.join("x/y")), cache);
    }

    #[test]
    fn a_tier_too_big_for_its_filesystem_is_shrunk_or_turned_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.cache.block_disk_bytes = u64::MAX / 4;
        // Other processes change the free space meanwhile: bound it by
        // readings on both sides of the one the sizing made.
        let before = free_bytes(dir.path()).unwrap();
        prepare_block_cache(&mut config);
        let after = free_bytes(dir.path()).unwrap();
        let (least, most) = (before.min(after), before.max(after));
        if config.cache.block_disk_dir == "none" {
            assert!(least / 2 < 1 << 30, "{before} {after}");
        } else {
            let sized = config.cache.block_disk_bytes;
            assert!(sized <= most / 2, "{sized} of {before} / {after}");
        }
    }
}
