//! Server configuration: one typed struct, filled from defaults, then a TOML
//! file, then `STRATA_*` environment variables, then command-line flags.
//!
//! Every key has an environment variable named after its path:
//! `wal.max_bytes` ↔ `STRATA_WAL_MAX_BYTES`. The documented template is
//! `config/strata.example.toml`; a test keeps it equal to the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_cache::{BlockCacheConfig, ColdReaderConfig};
use strata_engine::{CompactorPlacement, EngineConfig, Retention};
use strata_objects::{Backend, ObjectStoreConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {message}")]
    File { path: PathBuf, message: String },
    #[error("environment variable {var}={value:?} is invalid: {message}")]
    Env {
        var: String,
        value: String,
        message: String,
    },
    #[error("configuration is invalid: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Holds the WAL (`wal/`) and the embedded metadata store (`meta.redb`).
    pub data_dir: PathBuf,
    /// This node's name in queue ownership records and object names (see
    /// `strata_common::names::validate_node_id`).
    pub node_id: String,
    pub http: HttpConfig,
    pub grpc: GrpcConfig,
    pub metadata: MetadataSection,
    pub serving: ServingSection,
    pub wal: WalSection,
    pub cache: CacheSection,
    pub object_store: ObjectStoreSection,
    pub compactor: CompactorSection,
    pub limits: LimitsSection,
    pub retention: RetentionSection,
    pub auth: AuthSection,
    pub quotas: QuotasSection,
    pub transactions: TransactionsSection,
    pub metering: MeteringSection,
    pub log: LogSection,
}

/// The serving lease of a shared (etcd) metadata namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServingSection {
    /// How long the lease lasts unless renewed; renewed every fifth of it.
    pub lease_ttl_ms: u64,
    /// Wait for the namespace instead of refusing to start while another
    /// node serves it; take over when that node hands over or dies.
    pub standby: bool,
    /// Cluster mode: every node serves, each the tenants placed on it.
    pub cluster: bool,
    /// Cluster mode: how long the registry keeps the record of a node that
    /// left or was adopted before pruning it; 0 keeps them all.
    pub gone_node_retention_ms: u64,
}

/// Check-backs of unresolved transactions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransactionsSection {
    /// The first check-back comes this long after the half message.
    pub first_check_delay_ms: u64,
    /// Intervals double up to this.
    pub max_check_interval_ms: u64,
    /// Unanswered check-backs before the transaction is rolled back.
    pub max_checks: u32,
}

/// How per-tenant rate quotas are enforced (the quotas themselves are plans
/// in the metadata store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotasSection {
    /// A request over a rate waits up to this long for its tokens instead
    /// of being refused; one that would wait longer is refused with 429
    /// after this long. 0 = refuse at once.
    pub max_delay_ms: u64,
}

/// Per-tenant usage metering (the bill).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeteringSection {
    /// Usage counted since the last flush is what a crash can lose.
    pub flush_interval_ms: u64,
    /// How often stored bytes are sampled for byte-hours and the
    /// stored-bytes quota.
    pub storage_sample_interval_ms: u64,
    /// An hour is rolled up once it ended this long ago.
    pub rollup_grace_ms: u64,
    /// Minute records of rolled-up hours are kept this long.
    pub minute_retention_hours: u64,
    /// Tenants with their own Prometheus series; the rest share
    /// `tenant="_other"`.
    pub metrics_max_tenants: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Requests without credentials act as a service admin. Local
    /// development only.
    pub anonymous: bool,
    pub max_clock_skew_ms: u64,
    /// Encrypts stored secret keys; empty = `<data_dir>/master.key`
    /// (created on first start, mode 0600).
    pub master_key_file: String,
    /// Where the bootstrap admin credential is written on first start;
    /// empty = `<data_dir>/admin-credentials`.
    pub credentials_file: String,
    /// How long an opened access key is trusted before it is read from
    /// the metadata store again: the bound on how long a key revoked (or
    /// a tenant deleted) on another node keeps working on this one.
    pub key_cache_ttl_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub addr: String,
    /// Largest request body accepted, in bytes.
    pub max_request_bytes: usize,
    /// HOST:PORT other nodes of a cluster reach this node's HTTP API at;
    /// empty = the listening address (an unspecified IP becomes 127.0.0.1).
    pub advertise_addr: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// Listen address of the RocketMQ 5 compatible gRPC API.
    pub addr: String,
    /// HOST:PORT that route answers tell clients to connect to; empty =
    /// the listening address (an unspecified IP becomes 127.0.0.1).
    pub advertise_addr: String,
    /// HOST:PORT that route answers name for every queue instead of the
    /// serving node: a load balancer in front of all nodes (any node
    /// forwards an RPC to the tenant's node), for clients that never
    /// refresh routes. Empty = the serving node's `advertise_addr`.
    pub route_addr: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalSection {
    pub segment_bytes: u64,
    pub max_bytes: u64,
    pub group_commit_max_bytes: usize,
    pub append_timeout_ms: u64,
    pub pace_above_percent: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    pub tail_bytes: usize,
    pub block_memory_bytes: usize,
    pub block_disk_bytes: u64,
    /// Directory of the block cache's disk tier; empty = `<data_dir>/cache`,
    /// "none" = memory only. Locked by the node using it.
    pub block_disk_dir: String,
    /// Write budget of the disk tier, bytes/s (0 = unlimited).
    pub block_disk_write_bytes_per_sec: u64,
    /// Async workers of the cold-read runtime, and readers' CPU tasks
    /// (encoding large read replies) run at once.
    pub cold_read_threads: usize,
    /// Object-store reads in flight for cold readers, read-ahead included.
    pub cold_read_concurrency: usize,
    /// Bandwidth budget of cold reads; 0 = unlimited.
    pub cold_read_bytes_per_sec: u64,
}

/// Where the metadata store is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataSection {
    /// "embedded" (redb under the data directory) or
    /// "etcd://host:port[,host:port...][/namespace]".
    pub url: String,
    /// How often this node compacts the metadata store's history (etcd
    /// keeps every superseded value until compacted); 0 leaves it to the
    /// operator (etcd's own `--auto-compaction-*`).
    pub compact_history_interval_ms: u64,
    /// Page cache of the embedded store (bytes); ignored by etcd and TiKV.
    pub cache_bytes: u64,
    /// How long a start waits for an unreachable etcd before it gives up
    /// (nodes and etcd members may start in any order); 0 gives up at once.
    pub connect_wait_ms: u64,
}

/// The metadata store [`MetadataSection::url`] names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataUrl {
    Embedded,
    Etcd(strata_metadata::EtcdAddress),
    /// TiKV through its PD endpoints; served only by a build with the
    /// `tikv` feature.
    Tikv(strata_metadata::TikvAddress),
}

impl MetadataUrl {
    /// Shared between nodes (etcd, TiKV) rather than embedded in one.
    pub fn is_shared(&self) -> bool {
        !matches!(self, MetadataUrl::Embedded)
    }
}

impl MetadataSection {
    pub fn parse(&self) -> Result<MetadataUrl, ConfigError> {
        let url = self.url.trim();
        if url == "embedded" {
            return Ok(MetadataUrl::Embedded);
        }
        if url.starts_with("etcd://") {
            return strata_metadata::EtcdAddress::parse(url)
                .map(MetadataUrl::Etcd)
                .map_err(|e| ConfigError::Invalid(format!("metadata.url: {e}")));
        }
        if url.starts_with("tikv://") {
            return strata_metadata::TikvAddress::parse(url)
                .map(MetadataUrl::Tikv)
                .map_err(|e| ConfigError::Invalid(format!("metadata.url: {e}")));
        }
        Err(ConfigError::Invalid(format!(
            "metadata.url must be \"embedded\", etcd://host:port[,host:port...][/namespace] or \
             tikv://pd-host:port[,pd-host:port...][/namespace], got {url:?}"
        )))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectStoreSection {
    /// "local" (a directory) or "s3" (any S3-compatible endpoint).
    pub kind: String,
    /// local: the directory; empty = `<data_dir>/objects`.
    pub root: String,
    /// s3: bucket, key prefix, endpoint URL (empty = AWS), region (empty =
    /// from the AWS environment). Credentials come from the usual AWS
    /// environment/config chain.
    pub bucket: String,
    pub prefix: String,
    pub endpoint: String,
    pub region: String,
    pub allow_http: bool,
    pub timeout_ms: u64,
    pub max_attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactorSection {
    /// "in_process" (the node runs it) or "separate" (`strata compactor`).
    pub mode: String,
    pub upload_interval_ms: u64,
    pub upload_trigger_bytes: u64,
    pub max_object_bytes: u64,
    pub block_bytes: usize,
    pub merge_small_range_bytes: u64,
    pub merge_min_ranges: usize,
    pub merge_target_bytes: u64,
    pub gc_grace_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub max_message_bytes: usize,
    pub max_batch_messages: usize,
    pub max_queues_per_topic: u32,
    pub max_read_messages: usize,
    pub max_read_bytes: usize,
    pub max_wait_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSection {
    /// Retention of topics created without one: a duration ("72h") or "unlimited".
    pub default: String,
    pub check_interval_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// A `tracing` filter, e.g. "info" or "strata_engine=debug,info".
    pub level: String,
    /// "text" or "json".
    pub format: String,
}

impl Default for Config {
    fn default() -> Self {
        let engine = EngineConfig::new("./strata-data");
        Self {
            data_dir: engine.data_dir.clone(),
            node_id: engine.node_id.clone(),
            http: HttpConfig {
                addr: "127.0.0.1:8080".into(),
                max_request_bytes: 16 << 20,
                advertise_addr: String::new(),
            },
            grpc: GrpcConfig {
                addr: "127.0.0.1:8081".into(),
                advertise_addr: String::new(),
                route_addr: String::new(),
            },
            metadata: MetadataSection {
                url: "embedded".into(),
                compact_history_interval_ms: 5 * 60 * 1000,
                cache_bytes: strata_metadata::DEFAULT_CACHE_BYTES as u64,
                connect_wait_ms: 60_000,
            },
            serving: ServingSection {
                lease_ttl_ms: 15_000,
                standby: false,
                cluster: false,
                gone_node_retention_ms: 24 * 60 * 60 * 1000,
            },
            wal: WalSection {
                segment_bytes: engine.wal_segment_bytes,
                max_bytes: engine.wal_max_bytes,
                group_commit_max_bytes: engine.wal_group_commit_max_bytes,
                append_timeout_ms: engine.append_timeout.as_millis() as u64,
                pace_above_percent: engine.wal_pace_above_percent,
            },
            cache: CacheSection {
                tail_bytes: engine.tail_cache_bytes,
                block_memory_bytes: engine.block_cache.memory_bytes,
                block_disk_bytes: engine.block_cache.disk_bytes,
                block_disk_dir: String::new(),
                block_disk_write_bytes_per_sec: engine.block_cache.disk_write_bytes_per_sec,
                cold_read_threads: engine.cold_reader.threads,
                cold_read_concurrency: engine.cold_reader.max_concurrent_fetches,
                cold_read_bytes_per_sec: engine.cold_reader.bandwidth_bytes_per_sec,
            },
            object_store: ObjectStoreSection {
                kind: "local".into(),
                root: String::new(),
                bucket: String::new(),
                prefix: String::new(),
                endpoint: String::new(),
                region: String::new(),
                allow_http: false,
                timeout_ms: engine.object_store.timeout.as_millis() as u64,
                max_attempts: engine.object_store.max_attempts,
            },
            compactor: CompactorSection {
                mode: "in_process".into(),
                upload_interval_ms: engine.upload_interval.as_millis() as u64,
                upload_trigger_bytes: engine.upload_trigger_bytes,
                max_object_bytes: engine.max_object_bytes,
                block_bytes: engine.target_block_bytes,
                merge_small_range_bytes: engine.merge_small_range_bytes,
                merge_min_ranges: engine.merge_min_ranges,
                merge_target_bytes: engine.merge_target_bytes,
                gc_grace_ms: engine.gc_grace.as_millis() as u64,
            },
            limits: LimitsSection {
                max_message_bytes: engine.max_message_bytes,
                max_batch_messages: engine.max_batch_messages,
                max_queues_per_topic: engine.max_queues_per_topic,
                max_read_messages: engine.max_read_messages,
                max_read_bytes: engine.max_read_bytes,
                max_wait_ms: engine.max_wait.as_millis() as u64,
            },
            retention: RetentionSection {
                default: "72h".into(),
                check_interval_ms: engine.retention_interval.as_millis() as u64,
            },
            auth: AuthSection {
                anonymous: false,
                max_clock_skew_ms: 15 * 60 * 1000,
                master_key_file: String::new(),
                credentials_file: String::new(),
                key_cache_ttl_ms: 10_000,
            },
            quotas: QuotasSection { max_delay_ms: 100 },
            transactions: TransactionsSection {
                first_check_delay_ms: 5_000,
                max_check_interval_ms: 60_000,
                max_checks: 15,
            },
            metering: MeteringSection {
                flush_interval_ms: 10_000,
                storage_sample_interval_ms: 10_000,
                rollup_grace_ms: 5 * 60 * 1000,
                minute_retention_hours: 7 * 24,
                metrics_max_tenants: 100,
            },
            log: LogSection {
                level: "info".into(),
                format: "text".into(),
            },
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Config::default().http
    }
}
impl Default for GrpcConfig {
    fn default() -> Self {
        Config::default().grpc
    }
}
impl Default for MetadataSection {
    fn default() -> Self {
        Config::default().metadata
    }
}
impl Default for WalSection {
    fn default() -> Self {
        Config::default().wal
    }
}
impl Default for CacheSection {
    fn default() -> Self {
        Config::default().cache
    }
}
impl Default for ObjectStoreSection {
    fn default() -> Self {
        Config::default().object_store
    }
}
impl Default for ServingSection {
    fn default() -> Self {
        Config::default().serving
    }
}

impl Default for CompactorSection {
    fn default() -> Self {
        Config::default().compactor
    }
}
impl Default for LimitsSection {
    fn default() -> Self {
        Config::default().limits
    }
}
impl Default for RetentionSection {
    fn default() -> Self {
        Config::default().retention
    }
}
impl Default for AuthSection {
    fn default() -> Self {
        Config::default().auth
    }
}
impl Default for TransactionsSection {
    fn default() -> Self {
        Config::default().transactions
    }
}
impl Default for QuotasSection {
    fn default() -> Self {
        Config::default().quotas
    }
}
impl Default for MeteringSection {
    fn default() -> Self {
        Config::default().metering
    }
}
impl Default for LogSection {
    fn default() -> Self {
        Config::default().log
    }
}

/// Splits an advertised `HOST:PORT` (IPv6 hosts in brackets).
pub fn advertised(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// The longest retention given as a duration: 100 years of 365.25 days
/// (how humantime counts "100years"). Longer is "unlimited" in effect, and
/// far longer wrapped around in milliseconds.
pub const MAX_RETENTION_MS: u64 = 100 * 31_557_600 * 1000;

/// The largest memory cache a config may ask for.
const MAX_CACHE_BYTES: u64 = 1 << 40;

/// Why `level` is not a log filter, if it is not: comma-separated
/// directives, each a level (`info`) or `target=level`
/// (`strata_engine=debug`). A bare word that is no level would filter
/// for a target of that name and silence everything else, so a typo
/// (`infoo`) is refused rather than taken for one.
pub fn log_level_problem(level: &str) -> Option<String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    for directive in level.split(',').map(str::trim) {
        let bare_word = !directive.contains(['=', ':', '[']);
        if bare_word && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Some(format!(
                "log.level {level:?}: {directive:?} is not a level ({}); \
                 to set a target's level write target=level",
                LEVELS.join(", ")
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(level)
        .err()
        .map(|e| format!("log.level {level:?} is not a log filter: {e}"))
}

/// Parses "unlimited" or a human duration ("72h", "7days", "30m") from
/// 1 ms to [`MAX_RETENTION_MS`].
pub fn parse_retention(text: &str) -> Result<Retention, String> {
    if text.eq_ignore_ascii_case("unlimited") {
        return Ok(Retention::Unlimited);
    }
    let d = humantime::parse_duration(text).map_err(|e| {
        format!("retention {text:?} is neither \"unlimited\" nor a duration like \"72h\": {e}")
    })?;
    if d.is_zero() {
        return Err("retention must be longer than zero".into());
    }
    if d < Duration::from_millis(1) {
        return Err(format!(
            "retention {text:?} is shorter than the 1 ms it is counted in"
        ));
    }
    match u64::try_from(d.as_millis()) {
        Ok(ms) if ms <= MAX_RETENTION_MS => Ok(Retention::Ms(ms)),
        _ => Err(format!(
            "retention {text:?} is longer than 100 years: use \"unlimited\""
        )),
    }
}

/// Formats a retention the way [`parse_retention`] reads it.
pub fn format_retention(r: &Retention) -> String {
    match r {
        Retention::Unlimited => "unlimited".into(),
        Retention::Ms(ms) => humantime::format_duration(Duration::from_millis(*ms)).to_string(),
    }
}

impl Config {
    /// Defaults, then `file` (if given), then `STRATA_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut value = toml::Value::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let from_file: Config = toml::from_str(&text).map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            value = toml::Value::try_from(from_file)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        let env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("STRATA_"))
            .collect();
        apply_env(&mut value, "", &env)?;
        let config: Config = value
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// The `STRATA_*` variables in `env` that set no config key and are
    /// none of the CLI's own (credentials, server, tenant): a typo such as
    /// `STRATA_WAL_MAXBYTES` would otherwise change nothing, silently,
    /// while an unknown key in a config file is refused. Variables of test
    /// and service scripts (`STRATA_TEST_*`, `STRATA_SERVICES_*`) pass.
    pub fn unknown_env(env: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
        const CLI: [&str; 5] = [
            "STRATA_ACCESS_KEY",
            "STRATA_SECRET_KEY",
            "STRATA_CREDENTIALS_FILE",
            "STRATA_SERVER",
            "STRATA_TENANT",
        ];
        const SCRIPTS: [&str; 3] = ["STRATA_TEST_", "STRATA_SERVICES_", "STRATA_CI_"];
        let known: std::collections::HashSet<String> =
            Self::key_paths().iter().map(|p| Self::env_var(p)).collect();
        let mut unknown: Vec<String> = env
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("STRATA_"))
            .filter(|k| !known.contains(k) && !CLI.contains(&k.as_str()))
            .filter(|k| !SCRIPTS.iter().any(|p| k.starts_with(p)))
            .collect();
        unknown.sort();
        unknown
    }

    /// Every key path, e.g. `wal.max_bytes`, in template order.
    pub fn key_paths() -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(value) = toml::Value::try_from(Config::default()) {
            collect_paths(&value, "", &mut out);
        }
        out
    }

    /// The environment variable that sets a key path.
    pub fn env_var(path: &str) -> String {
        format!("STRATA_{}", path.replace('.', "_").to_ascii_uppercase())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.http.addr.parse::<SocketAddr>().is_err() {
            return bad(format!(
                "http.addr {:?} is not IP:PORT (an IP address to listen on and a port, e.g. 127.0.0.1:8080)",
                self.http.addr
            ));
        }
        let m = &self.metering;
        if m.flush_interval_ms == 0 || m.storage_sample_interval_ms == 0 {
            return bad(
                "metering.flush_interval_ms and metering.storage_sample_interval_ms must be at least 1"
                    .into(),
            );
        }
        if let Err(e) = strata_objects::normalize_prefix(&self.object_store.prefix) {
            return bad(format!("object_store.prefix: {e}"));
        }
        if self.grpc.addr.parse::<SocketAddr>().is_err() {
            return bad(format!(
                "grpc.addr {:?} is not IP:PORT (an IP address to listen on and a port, e.g. 127.0.0.1:8081)",
                self.grpc.addr
            ));
        }
        if let (Ok(http), Ok(grpc)) = (
            self.http.addr.parse::<SocketAddr>(),
            self.grpc.addr.parse::<SocketAddr>(),
        ) && http.port() != 0
            && http.port() == grpc.port()
            && (http.ip() == grpc.ip() || http.ip().is_unspecified() || grpc.ip().is_unspecified())
        {
            return bad(format!(
                "http.addr {:?} and grpc.addr {:?} use the same port; give each its own",
                self.http.addr, self.grpc.addr
            ));
        }
        if !self.http.advertise_addr.is_empty() && advertised(&self.http.advertise_addr).is_none() {
            return bad(format!(
                "http.advertise_addr {:?} is not HOST:PORT",
                self.http.advertise_addr
            ));
        }
        if !self.grpc.route_addr.is_empty() && advertised(&self.grpc.route_addr).is_none() {
            return bad(format!(
                "grpc.route_addr {:?} is not HOST:PORT",
                self.grpc.route_addr
            ));
        }
        if !self.grpc.advertise_addr.is_empty() && advertised(&self.grpc.advertise_addr).is_none() {
            return bad(format!(
                "grpc.advertise_addr {:?} is not HOST:PORT",
                self.grpc.advertise_addr
            ));
        }
        // Zero (or near it) passed before, then panicked on every read
        // (max_read_messages), refused every publish, or spun idle loops.
        let l = &self.limits;
        let c = &self.cache;
        for (key, value, least) in [
            ("limits.max_message_bytes", l.max_message_bytes as u64, 1),
            ("limits.max_batch_messages", l.max_batch_messages as u64, 1),
            (
                "limits.max_queues_per_topic",
                u64::from(l.max_queues_per_topic),
                1,
            ),
            ("limits.max_read_messages", l.max_read_messages as u64, 1),
            ("limits.max_read_bytes", l.max_read_bytes as u64, 1),
            ("limits.max_wait_ms", l.max_wait_ms, 1),
            // A tighter window refuses clients whose clocks drift by
            // ordinary amounts.
            ("auth.max_clock_skew_ms", self.auth.max_clock_skew_ms, 1000),
            (
                "retention.check_interval_ms",
                self.retention.check_interval_ms,
                10,
            ),
            (
                "compactor.upload_interval_ms",
                self.compactor.upload_interval_ms,
                10,
            ),
            ("cache.block_memory_bytes", c.block_memory_bytes as u64, 1),
            ("cache.cold_read_threads", c.cold_read_threads as u64, 1),
            (
                "wal.group_commit_max_bytes",
                self.wal.group_commit_max_bytes as u64,
                1,
            ),
            ("wal.append_timeout_ms", self.wal.append_timeout_ms, 1),
            ("object_store.timeout_ms", self.object_store.timeout_ms, 1),
            (
                "object_store.max_attempts",
                u64::from(self.object_store.max_attempts),
                1,
            ),
            (
                "compactor.upload_trigger_bytes",
                self.compactor.upload_trigger_bytes,
                1,
            ),
            (
                "compactor.merge_target_bytes",
                self.compactor.merge_target_bytes,
                1,
            ),
            (
                "compactor.merge_min_ranges",
                self.compactor.merge_min_ranges as u64,
                2,
            ),
            (
                "transactions.max_check_interval_ms",
                self.transactions.max_check_interval_ms,
                1,
            ),
            (
                "metering.minute_retention_hours",
                self.metering.minute_retention_hours,
                1,
            ),
            (
                "cache.cold_read_concurrency",
                c.cold_read_concurrency as u64,
                1,
            ),
        ] {
            if value < least {
                return bad(format!("{key} must be at least {least} (got {value})"));
            }
        }
        // Caches beyond any machine's memory were taken, and failed later
        // (or never) without naming the key.
        for (key, value) in [
            ("cache.tail_bytes", c.tail_bytes as u64),
            ("cache.block_memory_bytes", c.block_memory_bytes as u64),
        ] {
            if value > MAX_CACHE_BYTES {
                return bad(format!(
                    "{key} must be at most {MAX_CACHE_BYTES} (1 TiB; got {value})"
                ));
            }
        }
        if c.block_disk_dir != "none"
            && let Err(e) = strata_cache::block::check_disk_bytes(c.block_disk_bytes)
        {
            return bad(format!(
                "cache.block_disk_bytes {e}; or set cache.block_disk_dir = \"none\" for a memory-only cache"
            ));
        }
        if self.metadata.cache_bytes < 1 << 20 || self.metadata.cache_bytes > 1 << 40 {
            return bad(format!(
                "metadata.cache_bytes must be between 1 MiB and 1 TiB (got {})",
                self.metadata.cache_bytes
            ));
        }
        if self.wal.segment_bytes < 4096 || self.wal.max_bytes < 2 * self.wal.segment_bytes {
            return bad(format!(
                "wal.segment_bytes must be >= 4096 and wal.max_bytes at least twice it (got {} and {})",
                self.wal.segment_bytes, self.wal.max_bytes
            ));
        }
        if self.wal.pace_above_percent > 100 {
            return bad(format!(
                "wal.pace_above_percent must be between 0 and 100 (got {})",
                self.wal.pace_above_percent
            ));
        }
        if self.limits.max_message_bytes as u64 > self.wal.segment_bytes {
            return bad("limits.max_message_bytes must not exceed wal.segment_bytes".into());
        }
        if self.http.max_request_bytes < self.limits.max_message_bytes {
            return bad("http.max_request_bytes must be at least limits.max_message_bytes".into());
        }
        if self.http.max_request_bytes as u64 > self.wal.max_bytes / 4 {
            return bad(format!(
                "http.max_request_bytes ({}) must be at most a quarter of wal.max_bytes ({}): \
                 a publish goes into the WAL at once, and may take at most half of it \
                 (a quarter leaves room for its encoding), or it could never be accepted",
                self.http.max_request_bytes, self.wal.max_bytes
            ));
        }
        if let Err(e) = strata_common::names::validate_node_id(&self.node_id) {
            return bad(format!("node_id: {e}"));
        }
        let t = &self.transactions;
        if t.first_check_delay_ms == 0 || t.max_checks == 0 {
            return bad(
                "transactions.first_check_delay_ms and transactions.max_checks must be at least 1"
                    .into(),
            );
        }
        if let Some(problem) = log_level_problem(&self.log.level) {
            return bad(problem);
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return bad(format!(
                "log.format must be \"text\" or \"json\", got {:?}",
                self.log.format
            ));
        }
        parse_retention(&self.retention.default)
            .map_err(|e| ConfigError::Invalid(format!("retention.default: {e}")))?;
        self.metadata.parse()?;
        match self.object_store.kind.as_str() {
            "local" => {}
            "s3" if self.object_store.bucket.is_empty() => {
                return bad(
                    "object_store.bucket is required when object_store.kind = \"s3\"".into(),
                );
            }
            "s3" => check_s3_store(&self.object_store)?,
            other => {
                return bad(format!(
                    "object_store.kind must be \"local\" or \"s3\", got {other:?}"
                ));
            }
        }
        if self.compactor.block_bytes == 0 || self.compactor.max_object_bytes == 0 {
            return bad("compactor.block_bytes and compactor.max_object_bytes must be > 0".into());
        }
        if self.serving.lease_ttl_ms < 1_000 {
            return bad(format!(
                "serving.lease_ttl_ms must be at least 1000, got {}",
                self.serving.lease_ttl_ms
            ));
        }
        if self.serving.cluster && self.compactor.gc_grace_ms < 3 * self.serving.lease_ttl_ms {
            // Another node's objects are spared for a grace after it left or
            // was adopted, so that a commit it had on its way when adopted
            // finds its object: the grace must outlast the claims of its
            // queues by the others (about one heartbeat lease).
            return bad(format!(
                "compactor.gc_grace_ms must be at least three serving.lease_ttl_ms in a \
                 cluster (serving.cluster = true): got {} with a lease of {} ms",
                self.compactor.gc_grace_ms, self.serving.lease_ttl_ms
            ));
        }
        let retention = self.serving.gone_node_retention_ms;
        if self.serving.cluster && retention != 0 && retention < self.compactor.gc_grace_ms {
            // A gone node's objects are spared, and its index runs taken
            // over, by its record for that grace.
            return bad(format!(
                "serving.gone_node_retention_ms must be 0 (keep every record) or at least                  compactor.gc_grace_ms ({} ms): got {retention}",
                self.compactor.gc_grace_ms
            ));
        }
        if self.serving.cluster && !self.metadata.parse()?.is_shared() {
            return bad(
                "serving.cluster = true needs a metadata store the nodes share: set \
                 metadata.url to etcd://... or tikv://..."
                    .into(),
            );
        }
        if self.compactor_placement()? == CompactorPlacement::Separate
            && !self.metadata.parse()?.is_shared()
        {
            return bad(
                "compactor.mode = \"separate\" needs a metadata store two processes can share: \
                 set metadata.url to etcd://... or tikv://... (the embedded store is opened by one process at a time)"
                    .into(),
            );
        }
        Ok(())
    }

    fn object_store_config(&self) -> ObjectStoreConfig {
        let o = &self.object_store;
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let backend = if o.kind == "s3" {
            Backend::S3 {
                bucket: o.bucket.clone(),
                endpoint: non_empty(&o.endpoint),
                region: non_empty(&o.region),
                allow_http: o.allow_http,
                access_key_id: None,
                secret_access_key: None,
            }
        } else {
            let root = if o.root.is_empty() {
                self.data_dir.join("objects")
            } else {
                PathBuf::from(&o.root)
            };
            Backend::Local { root }
        };
        let defaults = ObjectStoreConfig::memory();
        ObjectStoreConfig {
            backend,
            prefix: o.prefix.clone(),
            timeout: Duration::from_millis(o.timeout_ms.max(1)),
            max_attempts: o.max_attempts.max(1),
            ..defaults
        }
    }

    /// The master key file, resolved against the data directory.
    pub fn master_key_path(&self) -> PathBuf {
        match self.auth.master_key_file.as_str() {
            "" => self.data_dir.join("master.key"),
            path => PathBuf::from(path),
        }
    }

    /// The bootstrap admin credential file, resolved against the data directory.
    pub fn credentials_path(&self) -> PathBuf {
        match self.auth.credentials_file.as_str() {
            "" => self.data_dir.join("admin-credentials"),
            path => PathBuf::from(path),
        }
    }

    /// Where the compactor runs, from `compactor.mode`.
    pub fn compactor_placement(&self) -> Result<CompactorPlacement, ConfigError> {
        match self.compactor.mode.as_str() {
            "in_process" => Ok(CompactorPlacement::InProcess),
            "separate" => Ok(CompactorPlacement::Separate),
            other => Err(ConfigError::Invalid(format!(
                "compactor.mode must be \"in_process\" or \"separate\", got {other:?}"
            ))),
        }
    }

    pub fn engine_config(&self) -> Result<EngineConfig, ConfigError> {
        Ok(EngineConfig {
            data_dir: self.data_dir.clone(),
            node_id: self.node_id.clone(),
            wal_segment_bytes: self.wal.segment_bytes,
            wal_max_bytes: self.wal.max_bytes,
            wal_group_commit_max_bytes: self.wal.group_commit_max_bytes,
            wal_pace_above_percent: self.wal.pace_above_percent,
            append_timeout: Duration::from_millis(self.wal.append_timeout_ms),
            tail_cache_bytes: self.cache.tail_bytes,
            max_message_bytes: self.limits.max_message_bytes,
            max_batch_messages: self.limits.max_batch_messages,
            max_queues_per_topic: self.limits.max_queues_per_topic,
            max_read_messages: self.limits.max_read_messages,
            max_read_bytes: self.limits.max_read_bytes,
            max_wait: Duration::from_millis(self.limits.max_wait_ms),
            default_retention: parse_retention(&self.retention.default)
                .map_err(ConfigError::Invalid)?,
            retention_interval: Duration::from_millis(self.retention.check_interval_ms.max(1)),
            object_store: self.object_store_config(),
            upload_interval: Duration::from_millis(self.compactor.upload_interval_ms.max(1)),
            upload_trigger_bytes: self.compactor.upload_trigger_bytes,
            max_object_bytes: self.compactor.max_object_bytes,
            target_block_bytes: self.compactor.block_bytes,
            merge_small_range_bytes: self.compactor.merge_small_range_bytes,
            merge_min_ranges: self.compactor.merge_min_ranges,
            merge_target_bytes: self.compactor.merge_target_bytes,
            gc_grace: Duration::from_millis(self.compactor.gc_grace_ms),
            index_flush_entries: strata_engine::lookup::FLUSH_ENTRIES,
            compactor: self.compactor_placement()?,
            served_tenants: None,
            shared_metadata: self.metadata.parse()?.is_shared(),
            block_cache: BlockCacheConfig {
                memory_bytes: self.cache.block_memory_bytes,
                disk_dir: match self.cache.block_disk_dir.as_str() {
                    "" => Some(self.data_dir.join("cache")),
                    "none" => None,
                    dir => Some(PathBuf::from(dir)),
                },
                disk_bytes: self.cache.block_disk_bytes,
                disk_write_bytes_per_sec: self.cache.block_disk_write_bytes_per_sec,
            },
            cold_reader: ColdReaderConfig {
                threads: self.cache.cold_read_threads.max(1),
                max_concurrent_fetches: self.cache.cold_read_concurrency.max(1),
                bandwidth_bytes_per_sec: self.cache.cold_read_bytes_per_sec,
            },
            txn_first_check_delay: Duration::from_millis(self.transactions.first_check_delay_ms),
            txn_max_check_interval: Duration::from_millis(
                self.transactions
                    .max_check_interval_ms
                    .max(self.transactions.first_check_delay_ms),
            ),
            txn_max_checks: self.transactions.max_checks,
        })
    }
}

fn collect_paths(value: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    if let toml::Value::Table(table) = value {
        for (k, v) in table {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if v.is_table() {
                collect_paths(v, &path, out);
            } else {
                out.push(path);
            }
        }
    }
}

fn apply_env(
    value: &mut toml::Value,
    prefix: &str,
    env: &[(String, String)],
) -> Result<(), ConfigError> {
    let toml::Value::Table(table) = value else {
        return Ok(());
    };
    for (k, v) in table.iter_mut() {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if v.is_table() {
            apply_env(v, &path, env)?;
            continue;
        }
        let var = Config::env_var(&path);
        let Some((_, raw)) = env.iter().find(|(name, _)| *name == var) else {
            continue;
        };
        let err = |message: String| ConfigError::Env {
            var: var.clone(),
            value: raw.clone(),
            message,
        };
        *v = match v {
            toml::Value::Integer(_) => toml::Value::Integer(
                raw.trim()
                    .parse()
                    .map_err(|e| err(format!("expected a whole number: {e}")))?,
            ),
            toml::Value::Boolean(_) => toml::Value::Boolean(
                raw.trim()
                    .parse()
                    .map_err(|e| err(format!("expected true or false: {e}")))?,
            ),
            _ => toml::Value::String(raw.clone()),
        };
    }
    Ok(())
}

/// What an S3 store's settings must be for any request to work: a bucket
/// name S3 accepts, and an endpoint that is an `http(s)://` URL (`http`
/// only with `allow_http`). Refused at start, naming the key: the client
/// otherwise fails on every request, or panics on an endpoint it cannot
/// parse.
fn check_s3_store(o: &ObjectStoreSection) -> Result<(), ConfigError> {
    let bad = |why: String| Err(ConfigError::Invalid(why));
    let bucket = o.bucket.as_str();
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&bucket.len())
        || !bucket.chars().all(allowed)
        || !edge(bucket.chars().next())
        || !edge(bucket.chars().last())
    {
        return bad(format!(
            "object_store.bucket {bucket:?} is not an S3 bucket name: 3-63 lower-case letters, \
             digits, '.' or '-', starting and ending with a letter or digit"
        ));
    }
    if o.endpoint.is_empty() {
        return Ok(());
    }
    let url = match reqwest::Url::parse(&o.endpoint) {
        Ok(url) if url.has_host() => url,
        Ok(_) | Err(_) => {
            return bad(format!(
                "object_store.endpoint {:?} is not a URL such as http://127.0.0.1:8333 or \
                 https://s3.example.com",
                o.endpoint
            ));
        }
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if o.allow_http => Ok(()),
        "http" => bad(format!(
            "object_store.endpoint {:?} is plain HTTP: set object_store.allow_http = true to \
             allow it (local and test stores), or use https://",
            o.endpoint
        )),
        other => bad(format!(
            "object_store.endpoint {:?} has scheme {other:?}: it must be http:// or https://",
            o.endpoint
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../config/strata.example.toml");

    #[test]
    fn template_parses_to_the_defaults() {
        let parsed: Config = toml::from_str(TEMPLATE).expect("template parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn template_documents_every_key_and_its_env_var() {
        for path in Config::key_paths() {
            let leaf = path.rsplit('.').next().unwrap_or(&path);
            assert!(
                TEMPLATE
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("{leaf} ="))),
                "template lacks key {path}"
            );
            assert!(
                TEMPLATE.contains(&Config::env_var(&path)),
                "template does not name {}",
                Config::env_var(&path)
            );
        }
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "node_id = \"from-file\"\n[wal]\nmax_bytes = 16777216\nsegment_bytes = 4194304\n",
        )
        .unwrap();
        let env = vec![
            ("STRATA_WAL_MAX_BYTES".to_string(), "67108864".to_string()),
            ("STRATA_HTTP_ADDR".to_string(), "127.0.0.1:0".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let c = Config::load(Some(&file), env).unwrap();
        assert_eq!(c.node_id, "from-file");
        assert_eq!(c.wal.segment_bytes, 4 << 20);
        assert_eq!(c.wal.max_bytes, 64 << 20, "env beats file");
        assert_eq!(c.http.addr, "127.0.0.1:0");
    }

    #[test]
    fn bad_values_name_the_culprit() {
        let env = vec![("STRATA_WAL_MAX_BYTES".to_string(), "lots".to_string())];
        let e = Config::load(None, env).unwrap_err().to_string();
        assert!(e.contains("STRATA_WAL_MAX_BYTES"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[wal]\nmax_byte = 1\n").unwrap();
        let e = Config::load(Some(&file), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_byte"), "{e}");

        let env = vec![("STRATA_RETENTION_DEFAULT".to_string(), "soon".to_string())];
        assert!(Config::load(None, env).is_err());
    }

    #[test]
    fn wal_pacing_starts_at_a_percentage_of_the_wal() {
        let mut c = Config::default();
        assert_eq!(c.wal.pace_above_percent, 75);
        for good in [0, 50, 100] {
            c.wal.pace_above_percent = good;
            c.validate().unwrap();
            assert_eq!(c.engine_config().unwrap().wal_pace_above_percent, good);
        }
        c.wal.pace_above_percent = 101;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("wal.pace_above_percent"), "{e}");
        let env = vec![(
            "STRATA_WAL_PACE_ABOVE_PERCENT".to_string(),
            "90".to_string(),
        )];
        assert_eq!(Config::load(None, env).unwrap().wal.pace_above_percent, 90);
    }

    #[test]
    fn an_s3_store_needs_a_bucket_name_and_endpoint_s3_accepts() {
        let mut c = Config::default();
        c.object_store.kind = "s3".into();
        c.object_store.bucket = "strata-test".into();
        c.validate().unwrap();
        for (bucket, endpoint, allow_http, key) in [
            ("tb", "", false, "object_store.bucket"),
            ("Upper", "", false, "object_store.bucket"),
            ("-dash", "", false, "object_store.bucket"),
            ("ok-bucket", "not a url", true, "object_store.endpoint"),
            ("ok-bucket", "ftp://127.0.0.1:21", true, "scheme"),
            ("ok-bucket", "http://127.0.0.1:8333", false, "allow_http"),
        ] {
            c.object_store.bucket = bucket.into();
            c.object_store.endpoint = endpoint.into();
            c.object_store.allow_http = allow_http;
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{bucket} {endpoint}: {e}");
        }
        for (endpoint, allow_http) in [
            ("http://127.0.0.1:8333", true),
            ("https://s3.example.com", false),
        ] {
            c.object_store.bucket = "ok-bucket".into();
            c.object_store.endpoint = endpoint.into();
            c.object_store.allow_http = allow_http;
            c.validate().unwrap();
        }
    }

    #[test]
    fn node_ids_are_short_names_without_separators() {
        let mut c = Config::default();
        for good in ["node-1", "ip-10-0-0-1.ec2.internal", "N_2", &"a".repeat(64)] {
            c.node_id = good.to_string();
            c.validate().unwrap();
        }
        for bad in [
            "",
            "a/b",
            "node 1",
            "nöde",
            ".",
            "..",
            "-n",
            &"a".repeat(65),
        ] {
            c.node_id = bad.to_string();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("node_id"), "{e}");
        }
    }

    #[test]
    fn a_cluster_keeps_objects_of_nodes_gone_for_several_leases() {
        let mut c = Config::default();
        c.metadata.url = "etcd://127.0.0.1:2379".into();
        c.serving.cluster = true;
        c.serving.lease_ttl_ms = 10_000;
        c.compactor.gc_grace_ms = 29_999;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("compactor.gc_grace_ms"), "{e}");
        c.compactor.gc_grace_ms = 30_000;
        c.validate().unwrap();
        // A gone node's record outlasts that grace, unless kept for good.
        c.serving.gone_node_retention_ms = 29_999;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("serving.gone_node_retention_ms"), "{e}");
        c.serving.gone_node_retention_ms = 0;
        c.validate().unwrap();
        c.serving.gone_node_retention_ms = 30_000;
        c.validate().unwrap();
        // One node alone may turn the grace off.
        c.serving.cluster = false;
        c.compactor.gc_grace_ms = 0;
        c.validate().unwrap();
    }

    #[test]
    fn zero_limits_intervals_and_caches_are_refused_by_name() {
        type Set = fn(&mut Config);
        let cases: [(&str, Set); 26] = [
            ("limits.max_message_bytes", |c| {
                c.limits.max_message_bytes = 0
            }),
            ("limits.max_batch_messages", |c| {
                c.limits.max_batch_messages = 0
            }),
            ("limits.max_queues_per_topic", |c| {
                c.limits.max_queues_per_topic = 0
            }),
            ("limits.max_read_messages", |c| {
                c.limits.max_read_messages = 0
            }),
            ("limits.max_read_bytes", |c| c.limits.max_read_bytes = 0),
            ("limits.max_wait_ms", |c| c.limits.max_wait_ms = 0),
            ("auth.max_clock_skew_ms", |c| c.auth.max_clock_skew_ms = 999),
            ("retention.default", |c| {
                c.retention.default = "forever".into()
            }),
            ("retention.check_interval_ms", |c| {
                c.retention.check_interval_ms = 0
            }),
            ("compactor.upload_interval_ms", |c| {
                c.compactor.upload_interval_ms = 9
            }),
            ("cache.block_memory_bytes", |c| {
                c.cache.block_memory_bytes = 0
            }),
            ("cache.cold_read_threads", |c| c.cache.cold_read_threads = 0),
            ("cache.cold_read_concurrency", |c| {
                c.cache.cold_read_concurrency = 0
            }),
            ("cache.block_disk_bytes", |c| {
                c.cache.block_disk_bytes = 1 << 20
            }),
            ("wal.group_commit_max_bytes", |c| {
                c.wal.group_commit_max_bytes = 0
            }),
            ("wal.append_timeout_ms", |c| c.wal.append_timeout_ms = 0),
            ("object_store.timeout_ms", |c| c.object_store.timeout_ms = 0),
            ("object_store.max_attempts", |c| {
                c.object_store.max_attempts = 0
            }),
            ("compactor.upload_trigger_bytes", |c| {
                c.compactor.upload_trigger_bytes = 0
            }),
            ("compactor.merge_target_bytes", |c| {
                c.compactor.merge_target_bytes = 0
            }),
            ("compactor.merge_min_ranges", |c| {
                c.compactor.merge_min_ranges = 1
            }),
            ("transactions.max_check_interval_ms", |c| {
                c.transactions.max_check_interval_ms = 0
            }),
            ("metering.minute_retention_hours", |c| {
                c.metering.minute_retention_hours = 0
            }),
            ("cache.tail_bytes", |c| c.cache.tail_bytes = usize::MAX / 2),
            ("object_store.prefix", |c| {
                c.object_store.prefix = "../../escape".into()
            }),
            ("cache.block_memory_bytes", |c| {
                c.cache.block_memory_bytes = usize::MAX / 2
            }),
        ];
        for (key, set) in cases {
            let mut c = Config::default();
            set(&mut c);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
        // A memory-only cache needs no disk size.
        let mut c = Config::default();
        c.cache.block_disk_bytes = 0;
        c.cache.block_disk_dir = "none".into();
        c.validate().unwrap();
    }

    #[test]
    fn unknown_strata_variables_are_named() {
        let env = |names: &[&str]| -> Vec<(String, String)> {
            names
                .iter()
                .map(|n| (n.to_string(), "1".to_string()))
                .collect()
        };
        let unknown = Config::unknown_env(env(&[
            "STRATA_WAL_MAXBYTES",
            "STRATA_WAL_MAX_BYTES",
            "STRATA_ACCESS_KEY",
            "STRATA_TEST_S3_ENDPOINT",
            "STRATA_CONFIG",
            "PATH",
        ]));
        assert_eq!(unknown, ["STRATA_CONFIG", "STRATA_WAL_MAXBYTES"]);
        let every_key: Vec<String> = Config::key_paths()
            .iter()
            .map(|p| Config::env_var(p))
            .collect();
        assert!(Config::unknown_env(every_key.into_iter().map(|k| (k, String::new()))).is_empty());
    }

    #[test]
    fn listen_addresses_are_ip_and_port_and_apart() {
        let mut c = Config::default();
        c.http.addr = "localhost:8080".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("http.addr") && e.contains("IP:PORT"), "{e}");
        for (http, grpc, refused) in [
            ("127.0.0.1:9000", "127.0.0.1:9000", true),
            ("0.0.0.0:9000", "127.0.0.1:9000", true),
            ("127.0.0.1:9000", "127.0.0.2:9000", false),
            ("127.0.0.1:9000", "127.0.0.1:9001", false),
            ("127.0.0.1:0", "127.0.0.1:0", false),
        ] {
            c.http.addr = http.into();
            c.grpc.addr = grpc.into();
            let result = c.validate();
            assert_eq!(result.is_err(), refused, "{http} {grpc}: {result:?}");
            if let Err(e) = result {
                assert!(e.to_string().contains("same port"), "{e}");
            }
        }
    }

    #[test]
    fn the_metadata_cache_is_bounded_both_ways() {
        let mut c = Config::default();
        assert_eq!(c.metadata.cache_bytes, 64 << 20);
        for bad in [0, (1 << 20) - 1, (1 << 40) + 1] {
            c.metadata.cache_bytes = bad;
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("metadata.cache_bytes"), "{e}");
        }
        c.metadata.cache_bytes = 1 << 20;
        c.validate().unwrap();
    }

    /// A black-box tester's case: an 8 MiB WAL took 16 MiB requests, and a
    /// publish larger than half the WAL got a 503 forever.
    #[test]
    fn a_request_must_fit_the_wal_at_once() {
        let mut c = Config::default();
        c.wal.segment_bytes = 4 << 20;
        c.wal.max_bytes = 8 << 20;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("at most a quarter of wal.max_bytes"), "{e}");
        c.http.max_request_bytes = 2 << 20;
        c.limits.max_message_bytes = 1 << 20;
        c.validate().unwrap();
    }

    #[test]
    fn a_separate_compactor_needs_etcd_and_a_known_mode() {
        let mut c = Config::default();
        assert_eq!(
            c.engine_config().unwrap().compactor,
            CompactorPlacement::InProcess
        );
        c.compactor.mode = "separate".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("metadata.url"), "{e}");
        c.metadata.url = "etcd://127.0.0.1:2379/ns".into();
        c.validate().unwrap();
        assert_eq!(
            c.engine_config().unwrap().compactor,
            CompactorPlacement::Separate
        );
        c.compactor.mode = "elsewhere".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("compactor.mode") && e.contains("elsewhere"),
            "{e}"
        );
    }

    #[test]
    fn retention_round_trips() {
        for text in ["unlimited", "72h", "30m", "7days"] {
            let r = parse_retention(text).unwrap();
            assert_eq!(parse_retention(&format_retention(&r)).unwrap(), r);
        }
        assert!(parse_retention("0s").is_err());
        for ok in ["info", "WARN", "strata_engine=debug,info", "off"] {
            assert_eq!(log_level_problem(ok), None, "{ok}");
        }
        for bad in ["infoo", "verbose", "info,loud", "strata=notalevel"] {
            assert!(log_level_problem(bad).is_some(), "{bad}");
        }
        for (text, why) in [
            ("1ns", "shorter than the 1 ms"),
            ("999us", "shorter than the 1 ms"),
            ("101years", "longer than 100 years"),
            ("213503982335days", "longer than 100 years"),
            ("999999999999days", "longer than 100 years"),
        ] {
            let e = parse_retention(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
        assert_eq!(
            parse_retention("100years").unwrap(),
            Retention::Ms(MAX_RETENTION_MS)
        );
        assert!(parse_retention("forever").is_err());
    }
}
