//! The hand-over mark a cluster node's data directory keeps: how far its
//! WAL was in object storage when the node last left the cluster gracefully
//! or had its WAL adopted (both upload the whole WAL first).
//!
//! The registry prunes a record gone for long together with its
//! `wal-checkpoint/<node>` (`Catalog::prune_gone_nodes`). Should the
//! directory start again after that, its WAL still holds records below that
//! position; without the mark the node would take them for unuploaded and
//! upload them a second time. The mark is written, durably, before the
//! record is marked left or adopted, so every prunable record has one.
//!
//! File `<data_dir>/handed-over`, JSON:
//! `{"node": "<id>", "identity": "<directory identity>", "wal_checkpoint": <lsn>}`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const FILE: &str = "handed-over";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Mark {
    node: String,
    identity: String,
    wal_checkpoint: u64,
}

/// Writes the mark of `node` (directory `identity`) in `data_dir`, durably:
/// a temporary file synced, renamed over the old one, the directory synced.
pub async fn write(
    data_dir: PathBuf,
    node: &str,
    identity: &str,
    wal_checkpoint: u64,
) -> Result<(), String> {
    let mark = Mark {
        node: node.to_string(),
        identity: identity.to_string(),
        wal_checkpoint,
    };
    let bytes = serde_json::to_vec(&mark).map_err(|e| e.to_string())?;
    let path = data_dir.join(FILE);
    tokio::task::spawn_blocking(move || {
        let tmp = data_dir.join(format!("{FILE}.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, data_dir.join(FILE))?;
        std::fs::File::open(&data_dir)?.sync_all()
    })
    .await
    .map_err(|e| format!("writing {}: {e}", path.display()))?
    .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// The WAL checkpoint the mark in `data_dir` gives for `node` on directory
/// `identity`; `None` without a mark, or with one another node or
/// directory wrote (a copied directory). A mark that cannot be read is an
/// error: joining without it could upload the WAL twice.
pub async fn read(data_dir: PathBuf, node: &str, identity: &str) -> Result<Option<u64>, String> {
    let path = data_dir.join(FILE);
    let shown = path.display().to_string();
    let read = tokio::task::spawn_blocking(move || std::fs::read(path))
        .await
        .map_err(|e| format!("reading {shown}: {e}"))?;
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {shown}: {e}")),
    };
    let mark: Mark = serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "{shown} is damaged ({e}); it says how far this directory's WAL was uploaded \
             when its node last left the cluster. Remove it only if this node's registry \
             record still exists (strata cluster status lists it)"
        )
    })?;
    if mark.node != node || mark.identity != identity {
        tracing::warn!(file = %shown, mark_node = %mark.node, "a hand-over mark of another node or directory; ignored");
        return Ok(None);
    }
    Ok(Some(mark.wal_checkpoint))
}

/// Where the mark of `data_dir` is (for messages).
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_mark_is_read_back_only_by_its_own_node_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().to_path_buf();
        assert_eq!(read(at.clone(), "n1", "id-1").await.unwrap(), None);
        write(at.clone(), "n1", "id-1", 4096).await.unwrap();
        assert_eq!(read(at.clone(), "n1", "id-1").await.unwrap(), Some(4096));
        write(at.clone(), "n1", "id-1", 8192).await.unwrap();
        assert_eq!(read(at.clone(), "n1", "id-1").await.unwrap(), Some(8192));
        assert_eq!(read(at.clone(), "n2", "id-1").await.unwrap(), None);
        assert_eq!(read(at.clone(), "n1", "id-2").await.unwrap(), None);
        std::fs::write(path(&at), b"{\"node\":").unwrap();
        let e = read(at, "n1", "id-1").await.unwrap_err();
        assert!(e.contains("damaged"), "{e}");
    }
}
