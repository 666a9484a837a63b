//! `strata metadata forget-node`: declares a node lost straight on the
//! metadata store. In standby mode only the serving node answers HTTP, so
//! when its data directory is destroyed nobody is left to take `strata
//! cluster forget`; the standby waits (rather than lose what only that WAL
//! held) until an operator runs this with the nodes' configuration.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use strata_common::{Clock, SystemClock};
use strata_metadata::{Catalog, Forget, NodeState};

use super::output::{bytes, print_json};
use crate::cluster::forget::{not_yet, still_live, unconfirmed};
use crate::config::Config;

#[derive(Debug, Args)]
pub struct ForgetNodeArgs {
    /// The node id.
    pub node: String,
    /// Confirms giving up the messages only the node's WAL holds.
    #[arg(long)]
    pub lose_unuploaded_messages: bool,
    /// The nodes' TOML config file (metadata.url, serving.lease_ttl_ms);
    /// STRATA_* variables apply over it, as for `strata serve`.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// What was done, for `--json`.
#[derive(Debug, Serialize)]
struct Forgotten {
    node: String,
    state: &'static str,
    /// Bytes its WAL had not uploaded at its last heartbeat: given up.
    lost_bytes: u64,
    /// Whether it held the namespace's serving lease, now free.
    serving_lease_freed: bool,
}

pub async fn forget_node(args: ForgetNodeArgs, json: bool) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref(), std::env::vars())?;
    if !config.metadata.parse()?.is_shared() {
        bail!(
            "metadata.url is \"embedded\": that store lives in one node's data directory, \
             and no other node shares it to take over. Give --config (or \
             STRATA_METADATA_URL) the etcd:// or tikv:// URL the nodes use"
        );
    }
    let store = crate::server::open_metadata(&config)
        .await
        .context("opening the metadata store")?;
    let catalog = Catalog::new(store);
    let node = &args.node;
    let now_ms = SystemClock.now_ms();
    let Some(held) = catalog.cluster_node(node).await? else {
        bail!("no node {node:?} is registered in this metadata namespace");
    };
    let lease = catalog.serving_lease().await?;
    if let Some(why) = not_yet(&held, lease.as_ref(), now_ms, config.serving.lease_ttl_ms) {
        bail!("{why}");
    }
    let holds_lease = lease
        .as_ref()
        .is_some_and(|l| l.node == *node && l.identity == held.identity && !l.released);
    if !args.lose_unuploaded_messages && !matches!(held.state, NodeState::Lost { .. }) {
        bail!(unconfirmed(
            &held,
            "Pass --lose-unuploaded-messages to confirm"
        ));
    }
    let lost = match catalog
        .forget_node(node, "strata metadata forget-node", now_ms)
        .await?
    {
        Forget::Forgotten(record) => record,
        Forget::StillLive(record) => bail!(still_live(&record, now_ms)),
        Forget::AlreadyGone(record) => {
            let how = match record.state {
                NodeState::Adopted { by, .. } => format!("was adopted by {by}"),
                _ => "left".to_string(),
            };
            bail!("node {node:?} {how}: nothing of it is only in its WAL")
        }
        Forget::Unknown => bail!("no node {node:?} is registered in this metadata namespace"),
    };
    let lost_bytes = match lost.state {
        NodeState::Lost { lost_bytes, .. } => lost_bytes,
        _ => held.upload_lag_bytes,
    };
    if json {
        return print_json(&Forgotten {
            node: node.clone(),
            state: "lost",
            lost_bytes,
            serving_lease_freed: holds_lease,
        });
    }
    let next = if holds_lease {
        "its serving lease is free: a standby takes the namespace over"
    } else if config.serving.cluster {
        "its tenants move to the live nodes"
    } else {
        "it held no serving lease"
    };
    println!(
        "node {node} declared lost; at least {} of acknowledged messages not in object \
         storage (its last reported upload lag) were given up with it; {next}",
        bytes(lost_bytes)
    );
    Ok(())
}
