//! The object store's mark: the namespace's store id
//! ([`strata_metadata::StoreMark`]) written into the store as
//! [`MARK_OBJECT`]. Nothing is uploaded, merged or collected until the
//! store is verified: garbage collection deletes whatever its namespace
//! does not reference, so a store that is another namespace's (a shared
//! bucket and prefix) must never be written or swept, and a store that is
//! not the namespace's (a node configured with another bucket) must not
//! receive ranges that the other nodes cannot read. Every object written
//! is checked again before a reference to it is committed
//! ([`Compactor::confirm_store_holds`]): a store swapped under a running
//! node stops its uploads instead of taking data whose WAL copy the
//! commit would release.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use std::path::Path;
use strata_common::Clock;
use strata_metadata::{Catalog, StoreMark};
use strata_objects::{Backend, ObjectError, ObjectStoreConfig, Objects};

use crate::compactor::Compactor;
use crate::error::{CompactorError, Result};

/// The object holding the store's id, under the store's prefix.
pub const MARK_OBJECT: &str = "strata-store-mark";

impl Compactor {
    /// Verifies the object store once (later calls return at once):
    /// [`CompactorError::WrongStore`] if it is not this namespace's,
    /// another error if it could not be read.
    pub async fn verify_store(&self) -> Result<()> {
        if self.store_verified.load(Ordering::Acquire) {
            return Ok(());
        }
        self.recheck_store().await
    }

    /// Verifies the object store again, whatever an earlier check found:
    /// before deleting (garbage collection, index sweeps), since two
    /// namespaces that started at the same moment may both have written
    /// the mark, and only one write remains.
    pub async fn recheck_store(&self) -> Result<()> {
        let checked = verify(
            &self.catalog,
            &self.objects,
            self.clock.as_ref(),
            self.config.private_store,
        )
        .await;
        match &checked {
            Ok(()) => self.store_verified.store(true, Ordering::Release),
            // Swapped under a running node (another volume mounted, a
            // bucket emptied): every later write checks again.
            Err(CompactorError::WrongStore(_)) => {
                self.store_verified.store(false, Ordering::Release)
            }
            Err(_) => {}
        }
        checked
    }

    /// Checks, after writing an object and before committing a reference
    /// to it, that the store it went to is still the namespace's. A
    /// reference into a store that was swapped under the running node
    /// would point at nothing once the right one is back, and the upload's
    /// commit releases the WAL that held the only other copy. One small GET
    /// per object written.
    pub async fn confirm_store_holds(&self, object: &str) -> Result<()> {
        self.recheck_store().await.map_err(|e| match e {
            CompactorError::WrongStore(why) => CompactorError::WrongStore(format!(
                "{why}; {object} was written there and is not committed"
            )),
            other => other,
        })
    }
}

/// Whether `store` can only be this node's, with metadata of its own (not
/// shared): in memory, or a directory inside its data directory (which one
/// process at a time holds locked). Paths are compared as they resolve,
/// so `..` and symbolic links do not pass for inside.
pub fn is_private(store: &ObjectStoreConfig, data_dir: &Path) -> bool {
    match &store.backend {
        Backend::Memory => true,
        Backend::Local { root } => {
            // The store's directory may not exist yet: resolve its parent.
            let resolved = root.canonicalize().or_else(|_| {
                let name = root.file_name().ok_or(std::io::ErrorKind::NotFound)?;
                let parent = root.parent().ok_or(std::io::ErrorKind::NotFound)?;
                parent.canonicalize().map(|p| p.join(name))
            });
            match (resolved, data_dir.canonicalize()) {
                (Ok(root), Ok(dir)) => root.starts_with(dir),
                _ => false,
            }
        }
        Backend::S3 { .. } => false,
    }
}

/// Checks that `objects` is the store of `catalog`'s namespace, marking it
/// if the namespace has no store yet (its first start, or its first since
/// marks exist). A `private` store (see [`is_private`]) whose mark the
/// metadata lost (a metadata journal cut) is recorded again: nothing else
/// can have written it. A store without a mark is never taken for one the
/// namespace marked: an empty directory would pass for it.
pub async fn verify(
    catalog: &Catalog,
    objects: &Objects,
    clock: &dyn Clock,
    private: bool,
) -> Result<()> {
    let stored = match objects.get(MARK_OBJECT).await {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).trim().to_string()),
        Err(ObjectError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let mark = match catalog.store_mark().await? {
        Some(mark) => mark,
        None => {
            if let Some(other) = &stored {
                if !private {
                    return Err(foreign(objects, other, None));
                }
                let adopted = StoreMark {
                    id: other.clone(),
                    marked: true,
                };
                let recorded = catalog.create_store_mark(&adopted).await?;
                if recorded.id != *other {
                    return Err(foreign(objects, other, Some(&recorded.id)));
                }
                tracing::info!(store = %objects.describe(), id = %other, "this node's own object store's mark recorded again");
                return Ok(());
            }
            let id = format!("{:016x}{:016x}", clock.random_u64(), clock.random_u64());
            catalog
                .create_store_mark(&StoreMark { id, marked: false })
                .await?
        }
    };
    match stored {
        Some(id) if id == mark.id => {
            if !mark.marked {
                catalog.set_store_marked(&mark.id).await?;
            }
            Ok(())
        }
        Some(other) => Err(foreign(objects, &other, Some(&mark.id))),
        // Marked before, in a store that holds no mark now: another store
        // (the settings changed, or an empty directory stands in for the
        // old one), even when private. Re-marking it would serve ranges
        // that are not there and let the next uploads land apart.
        None if !mark.marked => {
            objects
                .put(MARK_OBJECT, Bytes::from(mark.id.clone()))
                .await?;
            catalog.set_store_marked(&mark.id).await?;
            tracing::info!(store = %objects.describe(), id = %mark.id, "object store marked as this namespace's");
            Ok(())
        }
        None => Err(CompactorError::WrongStore(format!(
            "object store {} is not this namespace's: it holds no {MARK_OBJECT} object, while \
             the namespace's objects are in the store marked {id}. Start with the object store \
             settings (bucket, prefix, endpoint, or object_store.root) the namespace's objects \
             were written with. If this is that store and only its mark was deleted, write \
             {id} into {MARK_OBJECT} at its root",
            objects.describe(),
            id = mark.id
        ))),
    }
}

fn foreign(objects: &Objects, other: &str, ours: Option<&str>) -> CompactorError {
    let ours = ours.map_or_else(
        || "this namespace has no objects yet".to_string(),
        |id| format!("this namespace's store is marked {id}"),
    );
    CompactorError::WrongStore(format!(
        "object store {} belongs to another Strata namespace (its {MARK_OBJECT} says {other}; \
         {ours}). Namespaces sharing a bucket and prefix would delete each other's objects: \
         give each its own bucket or object_store.prefix",
        objects.describe()
    ))
}
