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
use strata_metadata::{Catalog, NodeState};

use super::output::{bytes, print_json};
use crate::cluster::forget::forget;
use crate::config::Config;

#[derive(Debug, Args)]
pub struct ForgetNodeArgs {
    /// The node id.
    #[arg(value_parser = super::args::node_id)]
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
    /// Whether the namespace's serving lease it held was released.
    serving_lease_freed: bool,
}

pub async fn forget_node(args: ForgetNodeArgs, json: bool) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref(), std::env::vars())?;
    if !config.metadata.parse()?.is_shared() {
        bail!(
            "metadata.url is \"embedded\": that store lives in one node's data directory, \
             and no other node shares it to take over. Give --config the nodes' config file \
             (its metadata.url and serving.lease_ttl_ms are used)"
        );
    }
    let store = crate::server::open_metadata(&config)
        .await
        .context("opening the metadata store")?;
    let catalog = Catalog::new(store);
    let node = &args.node;
    let forgotten = forget(
        &catalog,
        node,
        "strata metadata forget-node",
        SystemClock.now_ms(),
        config.serving.lease_ttl_ms,
        args.lose_unuploaded_messages,
        "Pass --lose-unuploaded-messages to confirm",
    )
    .await?;
    let (record, lease_freed) = forgotten.map_err(|why| anyhow::anyhow!("{}", why.message()))?;
    let lost_bytes = match record.state {
        NodeState::Lost { lost_bytes, .. } => lost_bytes,
        _ => record.upload_lag_bytes,
    };
    if json {
        return print_json(&Forgotten {
            node: node.clone(),
            state: "lost",
            lost_bytes,
            serving_lease_freed: lease_freed,
        });
    }
    let next = if lease_freed {
        "the serving lease it held is released: a standby takes the namespace over"
    } else if config.serving.cluster {
        "its tenants move to the live nodes"
    } else {
        "it held no serving lease"
    };
    println!(
        "node {node} declared lost; what its WAL held and object storage did not was given \
         up with it: {} at its last heartbeat, and whatever it acknowledged after that; {next}",
        bytes(lost_bytes)
    );
    Ok(())
}
