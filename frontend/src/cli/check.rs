//! `strata check`: recovers a stopped node's data directory the way a start
//! would (replays the metadata journal, cuts a torn WAL tail, starts a WAL
//! that ended below its upload checkpoint again there) and says what it
//! found. With `--cut-damage` it also gives up what a start refuses:
//! records after damage that no crash can explain, kept beside the files.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use strata_metadata::{Catalog, MetaError, MetaStore, RedbStore};
use strata_tiering::wal::cut_damaged;
use strata_tiering::{FileWal, WalConfig, WalError};

use super::output::print_json;
use crate::config::{Config, MetadataUrl};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The node's TOML config file (its data_dir, metadata.url, node_id, wal.*).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The data directory to check [default: the config's data_dir].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Give up what a start refuses: the metadata commits or WAL records
    /// after damage that no crash can explain. The cut bytes are kept as
    /// `<file>.damaged*` beside the files. Messages in the cut WAL records
    /// are lost, and their offsets are used again by new messages.
    #[arg(long)]
    pub cut_damage: bool,
}

/// What `strata check` found and did. With `--json` it is printed whether
/// the check passed or not (`ok`); a refusal names its `damage`.
#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    /// A node can start on the directory (after what the check cut).
    pub ok: bool,
    /// Why not, when `ok` is false.
    pub error: Option<String>,
    /// The damage that refuses a start, when that is why.
    pub damage: Option<Damage>,
    pub data_dir: String,
    /// The node whose data directory it is (by its identity file).
    pub node: String,
    /// "embedded", "etcd" or "tikv".
    pub metadata: String,
    /// Metadata journal groups replayed (embedded store).
    pub journal_groups_replayed: u64,
    pub journal_cut: Option<JournalCutReport>,
    /// Every WAL record below this LSN is in object storage.
    pub uploaded_lsn: u64,
    pub wal_segments: usize,
    pub wal_records: u64,
    pub wal_bytes: u64,
    pub wal_end_lsn: u64,
    pub wal_torn_tail_cut_bytes: u64,
    pub wal_restarted_at_lsn: Option<u64>,
    /// Damage in records already in object storage: skipped, nothing lost.
    pub wal_skipped_damage: Vec<Damage>,
    pub wal_cut: Option<WalCutReport>,
}

/// Damage a start refuses: where it is and what is wrong.
#[derive(Debug, Serialize)]
pub struct Damage {
    /// "wal" or "metadata_journal".
    pub store: &'static str,
    pub file: String,
    /// Byte offset in `file`, where known.
    pub offset: Option<u64>,
    pub reason: String,
}

/// What `--cut-damage` gave up of the metadata journal.
#[derive(Debug, Serialize)]
pub struct JournalCutReport {
    /// The last group kept; the commits of later groups are given up.
    pub kept_through_group: u64,
    /// A group found after the damage (proof that it was no torn write).
    pub later_group_found: u64,
    pub cut_bytes: u64,
    pub saved_to: String,
}

/// What `--cut-damage` gave up of the WAL.
#[derive(Debug, Serialize)]
pub struct WalCutReport {
    pub segment: String,
    pub offset: u64,
    /// The damage found there.
    pub reason: String,
    pub cut_bytes: u64,
    pub saved_to: String,
    /// Later segments renamed aside (`*.damaged`), whole.
    pub set_aside: Vec<String>,
}

pub async fn check(args: CheckArgs, json: bool) -> Result<()> {
    let mut report = CheckReport::default();
    if let Some(dir) = &args.data_dir {
        report.data_dir = dir.display().to_string();
    }
    let result = load_and_check(&args, &mut report).await;
    report.ok = result.is_ok();
    if let Err(e) = &result {
        report.error = Some(super::describe(e));
    }
    if json {
        print_json(&report)?;
        // The report holds the error: nothing more is printed for it.
        return result.context(super::Reported);
    }
    if report.ok {
        print_report(&report);
    }
    result
}

async fn load_and_check(args: &CheckArgs, report: &mut CheckReport) -> Result<()> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    report.data_dir = config.data_dir.display().to_string();
    config.validate()?;
    check_into(&config, args.cut_damage, report).await
}

async fn check_into(config: &Config, cut: bool, report: &mut CheckReport) -> Result<()> {
    if !config.data_dir.is_dir() {
        bail!("{} is not a directory", config.data_dir.display());
    }
    // Checking a directory no node ran in would create a node's files in it
    // and call it fine: a mistyped path or an unmounted volume.
    let dir = &config.data_dir;
    let ran_here = ["wal", "meta.redb", "identity"]
        .iter()
        .any(|name| dir.join(name).exists());
    if !ran_here {
        bail!(
            "{} holds no Strata data (no wal/, meta.redb or identity): no node has run here. Check the \
             path, and that the node's volume is mounted",
            dir.display()
        );
    }
    let _lock = crate::server::lock_data_dir(config)?;
    let store = open_metadata(config, cut, report).await?;
    let catalog = Catalog::new(store);
    report.node = node_of_dir(&catalog, config).await?;
    report.uploaded_lsn = catalog
        .wal_checkpoint(&report.node)
        .await
        .context("reading the WAL's upload checkpoint")?
        .unwrap_or(0);
    check_wal(config, cut, report).await
}

/// The node whose WAL the directory holds, by the identity the directory
/// keeps: its upload checkpoint decides what of the WAL is in object
/// storage, so another node's would misjudge it.
async fn node_of_dir(catalog: &Catalog, config: &Config) -> Result<String> {
    let identity = std::fs::read_to_string(config.data_dir.join("identity")).unwrap_or_default();
    let identity = identity.trim();
    if identity.is_empty() {
        return Ok(config.node_id.clone());
    }
    let nodes = catalog
        .cluster_nodes()
        .await
        .context("reading the node registry")?;
    if let Some(owner) = nodes.iter().find(|n| n.identity == identity) {
        return Ok(owner.node.clone());
    }
    if let Some(other) = nodes.iter().find(|n| n.node == config.node_id) {
        bail!(
            "{} (identity {identity}) is not the data directory of node {} (identity {}, at {}), \
             and no registered node has it: check it with its own node's config",
            config.data_dir.display(),
            other.node,
            other.identity,
            other.data_dir
        );
    }
    Ok(config.node_id.clone())
}

async fn open_metadata(
    config: &Config,
    cut: bool,
    report: &mut CheckReport,
) -> Result<Arc<dyn MetaStore>> {
    report.metadata = match config.metadata.parse()? {
        MetadataUrl::Embedded => "embedded",
        MetadataUrl::Etcd(_) => "etcd",
        MetadataUrl::Tikv(_) => "tikv",
    }
    .into();
    if report.metadata != "embedded" {
        return Ok(crate::server::open_metadata(config).await?);
    }
    let path = config.data_dir.join("meta.redb");
    let open = || {
        let path = path.clone();
        tokio::task::spawn_blocking(move || RedbStore::open(&path))
    };
    let store = match open().await? {
        Err(MetaError::Damaged { file, reason }) => {
            let damaged = MetaError::Damaged {
                file: file.clone(),
                reason: reason.clone(),
            };
            report.damage = Some(Damage {
                store: "metadata_journal",
                file,
                offset: None,
                reason,
            });
            if !cut {
                return Err(damaged).context("opening the embedded metadata store");
            }
            let journal_cut = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || RedbStore::cut_damaged_journal(&path)).await??
            };
            let Some(c) = journal_cut else {
                return Err(damaged).context("--cut-damage cannot repair this");
            };
            report.journal_cut = Some(JournalCutReport {
                kept_through_group: c.last_group,
                later_group_found: c.later_group,
                cut_bytes: c.cut_bytes,
                saved_to: c.saved_to.display().to_string(),
            });
            let store = open().await??;
            report.damage = None;
            store
        }
        other => other.context("opening the embedded metadata store")?,
    };
    report.journal_groups_replayed = store.replayed_at_open();
    Ok(store)
}

async fn check_wal(config: &Config, cut: bool, report: &mut CheckReport) -> Result<()> {
    let engine = config.engine_config()?;
    let dir = config.data_dir.join("wal");
    let wal_config = WalConfig {
        dir: dir.clone(),
        segment_bytes: engine.wal_segment_bytes,
        max_bytes: engine.wal_max_bytes,
        group_commit_max_bytes: engine.wal_group_commit_max_bytes,
        append_timeout: engine.append_timeout,
        pace_above_percent: engine.wal_pace_above_percent,
        clock: Arc::new(strata_common::SystemClock),
        uploaded_lsn: report.uploaded_lsn,
    };
    let open = || {
        let c = wal_config.clone();
        tokio::task::spawn_blocking(move || {
            let (wal, recovered) = FileWal::open(c, |_, _| Ok(()))?;
            let end = wal.durable_lsn();
            wal.close()?;
            Ok::<_, WalError>((recovered, end))
        })
    };
    let (recovered, end) = match open().await? {
        Err(WalError::Corrupt {
            path,
            offset,
            reason,
        }) => {
            report.damage = Some(Damage {
                store: "wal",
                file: path.display().to_string(),
                offset: Some(offset),
                reason: reason.clone(),
            });
            if !cut {
                return Err(WalError::Corrupt {
                    path,
                    offset,
                    reason,
                })
                .context("recovering the WAL");
            }
            let c = {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || cut_damaged(&dir, &path, offset)).await??
            };
            report.wal_cut = Some(WalCutReport {
                segment: c.segment.display().to_string(),
                offset,
                // The damage itself, not the advice that led here.
                reason: reason.split(';').next().unwrap_or_default().to_string(),
                cut_bytes: c.cut_bytes,
                saved_to: c.saved_to.display().to_string(),
                set_aside: c
                    .set_aside
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
            });
            let opened = open().await??;
            report.damage = None;
            opened
        }
        other => other.context("recovering the WAL")?,
    };
    report.wal_segments = recovered.segments;
    report.wal_records = recovered.records;
    report.wal_bytes = recovered.bytes;
    report.wal_end_lsn = end;
    report.wal_torn_tail_cut_bytes = recovered.truncated.map_or(0, |t| t.cut_bytes);
    report.wal_restarted_at_lsn = recovered.restarted_at;
    report.wal_skipped_damage = recovered
        .skipped_damage
        .into_iter()
        .map(|d| Damage {
            store: "wal",
            file: d.path.display().to_string(),
            offset: Some(d.offset),
            reason: d.reason,
        })
        .collect();
    Ok(())
}

fn print_report(r: &CheckReport) {
    println!("data directory  {} (node {})", r.data_dir, r.node);
    println!(
        "metadata        {}{}",
        r.metadata,
        if r.metadata == "embedded" {
            format!(", {} journal groups replayed", r.journal_groups_replayed)
        } else {
            String::new()
        }
    );
    if let Some(c) = &r.journal_cut {
        println!(
            "                journal cut: kept groups up to {}, gave up the rest ({} bytes, group {} among them), saved to {}",
            c.kept_through_group, c.cut_bytes, c.later_group_found, c.saved_to
        );
    }
    println!(
        "WAL             {} records ({} bytes) in {} segments, ending at LSN {}; uploaded below LSN {}",
        r.wal_records, r.wal_bytes, r.wal_segments, r.wal_end_lsn, r.uploaded_lsn
    );
    if r.wal_torn_tail_cut_bytes > 0 {
        println!(
            "                cut a torn tail of {} bytes (a write the last crash interrupted)",
            r.wal_torn_tail_cut_bytes
        );
    }
    if let Some(at) = r.wal_restarted_at_lsn {
        println!(
            "                started again at its upload checkpoint, LSN {at}: everything below it is in object storage (if the WAL's files were lost, what they alone held after it is lost; see the log)"
        );
    }
    for d in &r.wal_skipped_damage {
        println!(
            "                skipped damage at offset {} of {} ({}): those records are in object storage already",
            d.offset.unwrap_or(0),
            d.file,
            d.reason
        );
    }
    if let Some(c) = &r.wal_cut {
        println!(
            "                cut {} bytes from {} at offset {} ({}), saved to {}; {} later segments set aside",
            c.cut_bytes,
            c.segment,
            c.offset,
            c.reason,
            c.saved_to,
            c.set_aside.len()
        );
    }
    println!("ok: a node can start on this directory");
}
