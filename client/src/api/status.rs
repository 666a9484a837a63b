//! `GET /v1/status`: the node's state and counters.

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub struct StatusJson {
    pub node_id: String,
    pub version: String,
    /// Why the node refuses publishes now (what `/readyz` says); null
    /// while it accepts them, absent from servers older than `/readyz`.
    #[serde(default)]
    pub not_ready: Option<String>,
    pub started_ms: i64,
    pub topics: usize,
    pub queues: usize,
    pub retained_messages: u64,
    pub retained_bytes: u64,
    pub wal: WalJson,
    pub tail_cache: CacheJson,
    pub recovery: RecoveryJson,
    pub tiering: TieringJson,
    pub metadata: MetadataJson,
    pub pop: PopJson,
    /// Absent from servers older than the index in object storage.
    #[serde(default)]
    pub message_index: MessageIndexJson,
}

/// The message index since start: entries waiting to be written as a run,
/// and what happened to runs in object storage.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct MessageIndexJson {
    pub pending_entries: u64,
    pub runs_written: u64,
    pub runs_merged: u64,
    pub runs_dropped: u64,
    pub objects_swept: u64,
    /// Why the index task's last pass failed, until one succeeds.
    pub last_error: Option<String>,
}

/// Acknowledgements by message since start, and the metadata commits that
/// made them durable (acknowledgements reaching a queue together share one).
#[derive(Debug, Serialize, Deserialize)]
pub struct PopJson {
    pub acks: u64,
    pub ack_commits: u64,
}

/// Where the node's metadata is, and who serves it.
#[derive(Debug, Serialize, Deserialize)]
pub struct MetadataJson {
    /// "redb" (embedded) or "etcd".
    pub backend: String,
    /// On shared metadata (etcd): the node serving the namespace.
    pub serving_lease: Option<ServingLeaseJson>,
    /// Commits this node made since start (committed or not) and how long
    /// each took, in ms: the upper bound of the histogram bucket holding
    /// the median, the 99th and the 99.9th percentile (capped at 2000);
    /// `null` before the first. Absent from older servers.
    #[serde(default)]
    pub commits: u64,
    #[serde(default)]
    pub commit_p50_ms: Option<f64>,
    #[serde(default)]
    pub commit_p99_ms: Option<f64>,
    #[serde(default)]
    pub commit_p999_ms: Option<f64>,
    /// Commits that wrote nothing because a check did not hold (a lost
    /// race, a fenced owner), and commits that failed with an error.
    #[serde(default)]
    pub checks_failed: u64,
    #[serde(default)]
    pub failed_commits: u64,
    /// Gets and scan pages, their latency the same way, and errors.
    #[serde(default)]
    pub reads: u64,
    #[serde(default)]
    pub read_p50_ms: Option<f64>,
    #[serde(default)]
    pub read_p99_ms: Option<f64>,
    #[serde(default)]
    pub failed_reads: u64,
    /// Calls whose caller stopped waiting before they returned (a pass
    /// abandoned at shutdown, a timeout).
    #[serde(default)]
    pub cancelled: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ServingLeaseJson {
    pub node: String,
    /// Identity of the serving node's data directory.
    pub identity: String,
    /// Where that data directory is (a successor adopts it from there).
    #[serde(default)]
    pub data_dir: String,
    pub expires_ms: i64,
    /// Handed over by a graceful stop: another node may take the namespace.
    pub released: bool,
}

/// Tiered storage: upload progress, object-store traffic, cold reads.
#[derive(Debug, Serialize, Deserialize)]
pub struct TieringJson {
    pub object_store: String,
    /// Where the compactor runs: "in_process" or "separate".
    pub compactor: String,
    pub checkpoint_lsn: u64,
    pub upload_lag_bytes: u64,
    pub upload_lag_ms: i64,
    pub uploads: u64,
    pub uploaded_bytes: u64,
    pub merges: u64,
    pub merged_bytes: u64,
    pub expired_ranges: u64,
    pub gc_deleted_objects: u64,
    /// Upload and maintenance passes that failed since start.
    #[serde(default)]
    pub failed_passes: u64,
    /// The failures of the compactor's loops failing now, until a pass
    /// succeeds: the last message of each and its attempts in a row.
    pub last_error: Option<String>,
    pub object_requests: ObjectRequestsJson,
    pub block_cache: BlockCacheJson,
    pub cold_reads: ColdReadsJson,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ObjectRequestsJson {
    pub puts: u64,
    pub gets: u64,
    pub heads: u64,
    pub lists: u64,
    pub deletes: u64,
    pub put_bytes: u64,
    pub get_bytes: u64,
    pub errors: u64,
    pub retries: u64,
    pub timeouts: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BlockCacheJson {
    pub hits: u64,
    pub disk_hits: u64,
    pub misses: u64,
    pub coalesced: u64,
    /// hits / (hits + misses); 0 before any cold read.
    pub hit_ratio: f64,
    pub memory_bytes: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ColdReadsJson {
    pub fetches: u64,
    pub fetch_errors: u64,
    pub bytes: u64,
    pub throttled_waits: u64,
    pub prefetches: u64,
    /// Readers' CPU work run at low priority (large HTTP read and lookup
    /// replies, large gRPC pulls). Absent from servers older than the field.
    #[serde(default)]
    pub cpu_tasks: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WalJson {
    pub used_bytes: u64,
    pub max_bytes: u64,
    pub fill_ratio: f64,
    pub segments: usize,
    pub appends: u64,
    pub syncs: u64,
    pub synced_bytes: u64,
    /// How long one group's write + fdatasync took since start, in ms: the
    /// upper bound of the histogram bucket holding the median, the 99th and
    /// the 99.9th percentile (capped at 2000); `null` before the first sync.
    #[serde(default)]
    pub sync_p50_ms: Option<f64>,
    #[serde(default)]
    pub sync_p99_ms: Option<f64>,
    #[serde(default)]
    pub sync_p999_ms: Option<f64>,
    pub failed: bool,
    /// Appends that waited for their pace while the WAL was filling (above
    /// `wal.pace_above_percent`), and how long they waited in all.
    #[serde(default)]
    pub paced_appends: u64,
    #[serde(default)]
    pub pace_wait_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CacheJson {
    pub bytes: usize,
    pub capacity_bytes: usize,
    pub hits: u64,
    pub misses: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RecoveryJson {
    pub segments: usize,
    pub records: u64,
    pub bytes: u64,
    pub truncated_path: Option<String>,
    pub truncated_bytes: u64,
    pub truncated_reason: Option<String>,
    /// The WAL ended below the upload checkpoint (damaged or lost with
    /// everything it held already uploaded) and was started again here.
    #[serde(default)]
    pub restarted_at_lsn: Option<u64>,
    /// Damaged WAL records that were in object storage already, so replay
    /// skipped them: nothing lost, but the disk deserves a look.
    #[serde(default)]
    pub skipped_damage: Vec<SkippedDamageJson>,
}

/// One damaged place in the WAL that replay skipped.
#[derive(Debug, Serialize, Deserialize)]
pub struct SkippedDamageJson {
    pub path: String,
    pub offset: u64,
    pub reason: String,
}

/// `GET /v1/cluster`: the nodes sharing this metadata namespace, the queues
/// and tenants each holds, and the serving lease.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClusterJson {
    /// "redb" (embedded, one node) or "etcd".
    pub backend: String,
    /// The answering node's clock, Unix ms (expiries are relative to it).
    pub now_ms: i64,
    /// The node that answered.
    pub answered_by: String,
    /// On shared metadata (etcd): the node serving the namespace.
    pub serving_lease: Option<ServingLeaseJson>,
    pub nodes: Vec<ClusterNodeJson>,
    /// Queues of existing topics.
    pub queues: usize,
    /// Queues whose owner is no registered node.
    pub queues_unregistered_owner: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ClusterNodeJson {
    pub node: String,
    /// "live", "expired" (stopped heartbeating without leaving: its WAL
    /// awaits adoption or a restart), "left", "adopted" or "lost" (declared
    /// lost by an operator, its WAL abandoned: `strata cluster forget`).
    pub state: String,
    /// The node that adopted this one's WAL, when "adopted".
    pub adopted_by: Option<String>,
    /// Who declared the node lost, when "lost".
    #[serde(default)]
    pub lost_by: Option<String>,
    /// When "lost": the bytes its WAL had not uploaded at its last
    /// heartbeat, the acknowledged messages given up with it.
    #[serde(default)]
    pub lost_bytes: Option<u64>,
    pub grpc_addr: String,
    pub http_addr: String,
    pub data_dir: String,
    pub started_ms: i64,
    /// Milliseconds until the heartbeat lease runs out; negative once it has.
    pub expires_in_ms: i64,
    /// Bytes of its WAL not yet in object storage, at its last heartbeat.
    pub upload_lag_bytes: u64,
    /// Queues (of existing topics) this node owns.
    pub queues: usize,
    /// Tenants placed on this node.
    pub tenants: usize,
}

/// `POST /v1/cluster/nodes/{node}/forget`: the operator confirms that the
/// acknowledged messages only the node's WAL holds are given up.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgetNode {
    /// Must be `true`.
    pub lose_unuploaded_messages: bool,
}
