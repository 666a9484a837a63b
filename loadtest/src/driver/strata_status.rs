//! The parts of Strata's `GET /v1/status` the reports use: WAL and
//! tiered-storage counters (cumulative since the server started, except
//! the lag gauges).

use serde::{Deserialize, Serialize};

/// The parts of `GET /v1/status` the reports use.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ServerStatus {
    #[serde(default)]
    pub node_id: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub retained_messages: u64,
    pub wal: WalStatus,
    /// Absent on servers without tiered storage.
    #[serde(default)]
    pub tiering: TieringStatus,
}

/// The tiered-storage counters of `GET /v1/status` (cumulative since start,
/// except the lag gauges).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct TieringStatus {
    pub checkpoint_lsn: u64,
    pub upload_lag_bytes: u64,
    pub upload_lag_ms: i64,
    pub uploads: u64,
    pub uploaded_bytes: u64,
    pub merges: u64,
    pub merged_bytes: u64,
    pub last_error: Option<String>,
    pub object_requests: ObjectRequests,
    pub block_cache: BlockCache,
    pub cold_reads: ColdReads,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ObjectRequests {
    pub puts: u64,
    pub gets: u64,
    pub lists: u64,
    pub deletes: u64,
    pub put_bytes: u64,
    pub get_bytes: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct BlockCache {
    pub hits: u64,
    pub disk_hits: u64,
    pub misses: u64,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ColdReads {
    pub fetches: u64,
    pub fetch_errors: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
pub struct WalStatus {
    /// WAL records appended (one per request and queue).
    pub appends: u64,
    /// fdatasync calls.
    pub syncs: u64,
    #[serde(default)]
    pub synced_bytes: u64,
}
