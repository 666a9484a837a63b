//! What the engine takes and returns at its API.

use std::path::PathBuf;
use std::time::Duration;

use strata_common::{Message, StoredMessage, TopicId};
use strata_metadata::{MessageType, Retention};

use crate::filter::TagFilter;

/// Default first check-back after a half message is sent without an outcome.
pub const FIRST_CHECK_DELAY: Duration = Duration::from_secs(5);
/// Default longest wait between check-backs.
pub const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(60);
/// Default check-backs before an unresolved transaction is rolled back.
pub const MAX_CHECKS: u32 = 15;

/// Says whether this node may still acknowledge writes: a server serving a
/// shared metadata namespace under a lease installs one
/// ([`Engine::set_write_fence`](crate::Engine::set_write_fence)), so a node
/// paused past its lease never acknowledges what its successor cannot see.
pub trait WriteFence: Send + Sync + std::fmt::Debug {
    /// `Err` with the reason while writes must not be acknowledged.
    fn check(&self) -> Result<(), String>;
}

/// Where the compactor that moves this node's WAL to object storage runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompactorPlacement {
    /// Its loops run on the node's runtime (the default).
    #[default]
    InProcess,
    /// A separate `strata compactor` process works on the node's WAL
    /// volume; the node publishes its durable mark, follows the checkpoint
    /// and ranges the compactor commits, and releases its WAL below it.
    Separate,
}

/// Engine settings; the server config maps onto this.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Holds `wal/` and `meta.redb`.
    pub data_dir: PathBuf,
    /// This node's name in queue ownership records.
    pub node_id: String,
    pub wal_segment_bytes: u64,
    pub wal_max_bytes: u64,
    pub wal_group_commit_max_bytes: usize,
    /// Above this share of `wal_max_bytes` appends are paced to the rate
    /// the WAL drains (100: never).
    pub wal_pace_above_percent: u8,
    /// How long an append waits for WAL room before failing with WAL_FULL.
    pub append_timeout: Duration,
    pub tail_cache_bytes: usize,
    pub max_message_bytes: usize,
    pub max_batch_messages: usize,
    pub max_queues_per_topic: u32,
    pub max_read_messages: usize,
    pub max_read_bytes: usize,
    /// Longest long poll a reader may ask for.
    pub max_wait: Duration,
    /// Retention of topics created without one.
    pub default_retention: Retention,
    /// How often retention, merges and garbage collection run.
    pub retention_interval: Duration,
    /// Where cold data goes.
    pub object_store: strata_objects::ObjectStoreConfig,
    /// Upload at least this often while the WAL holds data not yet uploaded.
    pub upload_interval: Duration,
    /// Upload at once when this many WAL bytes wait.
    pub upload_trigger_bytes: u64,
    /// Largest object one upload writes.
    pub max_object_bytes: u64,
    /// Uncompressed size of one block in an object.
    pub target_block_bytes: usize,
    /// Ranges smaller than this are merged with their neighbours.
    pub merge_small_range_bytes: u64,
    /// A merge needs at least this many adjacent small ranges.
    pub merge_min_ranges: usize,
    /// Size at which a merged object stops growing.
    pub merge_target_bytes: u64,
    /// Unreferenced objects younger than this are left alone.
    pub gc_grace: Duration,
    /// Pending message-index entries that make a run
    /// ([`crate::lookup::FLUSH_ENTRIES`]; smaller in tests).
    pub index_flush_entries: usize,
    /// Where the compactor runs: in this process, or as `strata compactor`.
    pub compactor: CompactorPlacement,
    /// The tenants this node serves at open, in cluster mode (`None`: every
    /// tenant). More are added and removed while it runs
    /// (`Engine::serve_tenant`, `Engine::release_tenant`).
    pub served_tenants: Option<Vec<String>>,
    /// The metadata store is shared with other nodes (etcd, TiKV), so even
    /// an object store inside the data directory may be another
    /// namespace's or not the namespace's (see `strata_compactor::store_mark`).
    pub shared_metadata: bool,
    pub block_cache: strata_cache::BlockCacheConfig,
    pub cold_reader: strata_cache::ColdReaderConfig,
    /// Transaction check-backs: the first after this long, then doubling
    /// up to `txn_max_check_interval`; after `txn_max_checks` unanswered
    /// ones the transaction is rolled back.
    pub txn_first_check_delay: Duration,
    pub txn_max_check_interval: Duration,
    pub txn_max_checks: u32,
}

impl EngineConfig {
    /// Defaults suitable for one machine, rooted at `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir: PathBuf = data_dir.into();
        Self {
            data_dir: data_dir.clone(),
            node_id: "node-1".to_string(),
            wal_segment_bytes: 64 << 20,
            wal_max_bytes: 2 << 30,
            wal_group_commit_max_bytes: 4 << 20,
            wal_pace_above_percent: 75,
            append_timeout: Duration::from_secs(10),
            tail_cache_bytes: 256 << 20,
            max_message_bytes: 4 << 20,
            max_batch_messages: 1000,
            max_queues_per_topic: 256,
            max_read_messages: 1000,
            max_read_bytes: 8 << 20,
            max_wait: Duration::from_secs(30),
            default_retention: Retention::Ms(72 * 3600 * 1000),
            retention_interval: Duration::from_secs(10),
            object_store: strata_objects::ObjectStoreConfig::local(data_dir.join("objects")),
            upload_interval: Duration::from_secs(2),
            upload_trigger_bytes: 64 << 20,
            max_object_bytes: 128 << 20,
            target_block_bytes: 256 << 10,
            merge_small_range_bytes: 512 << 10,
            merge_min_ranges: 8,
            merge_target_bytes: 64 << 20,
            gc_grace: Duration::from_secs(300),
            index_flush_entries: crate::lookup::FLUSH_ENTRIES,
            compactor: CompactorPlacement::InProcess,
            served_tenants: None,
            shared_metadata: false,
            block_cache: strata_cache::BlockCacheConfig {
                memory_bytes: 64 << 20,
                disk_dir: Some(data_dir.join("cache")),
                disk_bytes: 1 << 30,
                disk_write_bytes_per_sec: 32 << 20,
            },
            cold_reader: strata_cache::ColdReaderConfig {
                threads: 1,
                max_concurrent_fetches: 16,
                bandwidth_bytes_per_sec: 0,
            },
            txn_first_check_delay: FIRST_CHECK_DELAY,
            txn_max_check_interval: MAX_CHECK_INTERVAL,
            txn_max_checks: MAX_CHECKS,
        }
    }
}

/// One message to publish, optionally pinned to a queue.
#[derive(Debug, Clone, Default)]
pub struct PublishMessage {
    /// Explicit queue; otherwise the key's hash picks one, or round robin.
    pub queue: Option<u32>,
    pub message: Message,
}

/// Where a published message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub queue: u32,
    pub offset: u64,
    pub message_id: String,
    /// Set for a delayed message that waits for its time: it takes its
    /// place in its topic when delivered, and until then `queue` and
    /// `offset` are where it waits in the hidden schedule (the engine's
    /// own; over gRPC they are reported as RocketMQ reports a scheduled
    /// message's, over HTTP they are left out).
    pub deliver_at_ms: Option<i64>,
}

/// What one read may return ([`crate::Engine::read_within`]).
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits<'a> {
    /// Most messages read (capped by `max_read_messages`), whether the
    /// filter keeps them or not.
    pub max_messages: usize,
    /// Most messages returned (a reader's consume quota); `None`: only
    /// `max_messages` bounds them.
    pub max_returned: Option<usize>,
    /// Most body bytes returned: their total stays within it, or the
    /// read returns just its first message. `None`: only
    /// `max_read_bytes` bounds the read.
    pub max_body_bytes: Option<u64>,
    /// Which messages are kept.
    pub filter: &'a TagFilter,
}

impl ReadLimits<'static> {
    /// Up to `max_messages`, every tag, no bound but the configured ones.
    pub fn messages(max_messages: usize) -> Self {
        Self {
            max_messages,
            max_returned: None,
            max_body_bytes: None,
            filter: &TagFilter::All,
        }
    }
}

/// Messages read from one queue.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub messages: Vec<StoredMessage>,
    /// Offset to ask for next.
    pub next_offset: u64,
    pub first_offset: u64,
    pub high_watermark: u64,
}

#[derive(Debug, Clone)]
pub struct QueueInfo {
    pub queue: u32,
    pub first_offset: u64,
    /// One past the newest readable offset.
    pub end_offset: u64,
    pub messages: u64,
    /// Bytes the queue stores: its object ranges, and the WAL batches not
    /// uploaded yet (each retained batch counted once).
    pub bytes: u64,
    /// Retained batches still in the WAL (uploaded or not).
    pub batches: u64,
    pub oldest_timestamp_ms: Option<i64>,
    pub newest_timestamp_ms: Option<i64>,
    pub owner_node: String,
    pub owner_epoch: u64,
    /// First offset still in the WAL (hot), if any.
    pub wal_first_offset: Option<u64>,
    /// Offsets `[first, end)` held in object storage (cold), if any.
    pub object_first_offset: Option<u64>,
    pub object_end_offset: Option<u64>,
    pub object_bytes: u64,
    pub object_ranges: u64,
    /// Distinct objects holding this queue's cold ranges.
    pub objects: u64,
}

/// What a new topic looks like.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub queues: u32,
    pub message_type: MessageType,
    /// Time retention; the server default when `None`.
    pub retention: Option<Retention>,
    /// Size retention per queue (bytes in object storage and WAL), if any.
    pub retention_bytes: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub id: TopicId,
    pub name: String,
    pub queues: u32,
    pub message_type: MessageType,
    pub retention: Retention,
    pub retention_bytes: Option<u64>,
    pub created_ms: i64,
}

/// Where [`Engine::reset_offsets`](crate::Engine::reset_offsets) moves a
/// group on every queue of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetTarget {
    /// Each queue's first readable offset.
    Earliest,
    /// Each queue's end: only messages published from now on.
    Latest,
    /// The same offset on every queue (none may be past its queue's end;
    /// one below a queue's first offset is accepted, as a single commit's).
    Offset(u64),
    /// Each queue's first message appended at or after this Unix ms time
    /// (its end if none was).
    Time(i64),
}

#[derive(Debug, Clone)]
pub struct GroupOffset {
    pub topic: String,
    pub queue: u32,
    pub offset: u64,
    /// Messages between the committed offset and the queue's end.
    pub lag: u64,
    /// When the offset was committed; 0 on a queue of the topic the group
    /// never committed on, whose `offset` is where the group starts.
    pub updated_ms: i64,
}

/// Where a group receives by message (POP, what the RocketMQ SDKs'
/// consumers do) on one queue of a topic it receives from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupReceiving {
    pub topic: String,
    pub queue: u32,
    /// The first offset never delivered to the group; `None` where it has
    /// not received yet (it starts where the group's `start` says).
    pub cursor: Option<u64>,
    /// Delivered, not yet acknowledged.
    pub in_flight: u64,
    /// Not delivered yet: from the cursor (or the start) to the end.
    pub ready: u64,
}

#[derive(Debug, Clone)]
pub struct GroupInfo {
    pub name: String,
    pub created_ms: i64,
    pub retry: strata_metadata::RetryPolicy,
    /// Where consumption by message starts on a queue the group never read.
    pub start: strata_metadata::StartPosition,
    /// Whether FIFO topics are consumed in order.
    pub fifo: bool,
    pub offsets: Vec<GroupOffset>,
    /// Every queue of every topic the group receives from by message
    /// (described groups only).
    pub receiving: Vec<GroupReceiving>,
}

impl GroupInfo {
    pub(crate) fn new(record: strata_metadata::GroupRecord, offsets: Vec<GroupOffset>) -> Self {
        Self {
            name: record.name,
            created_ms: record.created_ms,
            retry: record.retry,
            start: record.start,
            fifo: record.fifo,
            offsets,
            receiving: Vec::new(),
        }
    }
}

/// What was found and cut when the WAL was replayed at startup.
#[derive(Debug, Clone, Default)]
pub struct RecoverySummary {
    pub segments: usize,
    pub records: u64,
    pub bytes: u64,
    pub truncated_path: Option<PathBuf>,
    pub truncated_bytes: u64,
    pub truncated_reason: Option<String>,
    /// The WAL ended below the upload checkpoint and was started again there.
    pub restarted_at: Option<u64>,
    /// Damaged records already in object storage, skipped: (file, offset, reason).
    pub skipped_damage: Vec<(PathBuf, u64, String)>,
}

#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub node_id: String,
    pub started_ms: i64,
    pub topics: usize,
    pub queues: usize,
    pub retained_messages: u64,
    pub retained_bytes: u64,
    pub wal: strata_tiering::WalStats,
    pub tail_cache: strata_cache::TailCacheStats,
    pub recovery: RecoverySummary,
    pub tiering: TieringStatus,
    pub pop: PopStats,
    pub message_index: IndexStats,
    /// The metadata store's calls, timed, if the store is a
    /// [`strata_metadata::TimedStore`] (`strata serve` and [`crate::Engine::open`]
    /// wrap theirs; a store passed to `open_with_store` may not be).
    pub metadata: Option<strata_metadata::MetaTimings>,
}

/// The message index since start (`crate::lookup`): entries waiting for a
/// run, and what happened to runs in object storage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexStats {
    pub pending_entries: u64,
    pub runs_written: u64,
    pub runs_merged: u64,
    pub runs_dropped: u64,
    pub objects_swept: u64,
    /// Why the last pass failed, until one succeeds.
    pub last_error: Option<String>,
}

/// Acknowledgements by message (POP) since start: how many handles were
/// acknowledged and in how many metadata commits (acknowledgements that
/// reach a queue together share one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PopStats {
    pub acks: u64,
    pub ack_commits: u64,
}

/// The node's tiered storage: upload progress, object traffic, cold reads.
#[derive(Debug, Clone, Default)]
pub struct TieringStatus {
    pub object_store: String,
    /// Where the compactor runs: "in_process" or "separate" (its counters
    /// are then the separate process's, and read 0 here).
    pub compactor: &'static str,
    /// WAL position below which everything is in object storage.
    pub checkpoint_lsn: u64,
    /// Durable WAL bytes not yet uploaded.
    pub upload_lag_bytes: u64,
    /// Age of the oldest durable batch not yet uploaded.
    pub upload_lag_ms: i64,
    pub uploads: u64,
    pub uploaded_bytes: u64,
    pub merges: u64,
    pub merged_bytes: u64,
    pub expired_ranges: u64,
    pub gc_deleted_objects: u64,
    /// Upload and maintenance passes that failed since start.
    pub failed_passes: u64,
    /// The failures of the loops failing now (see `Compactor::last_error`).
    pub last_error: Option<String>,
    pub objects: strata_objects::ObjectMetrics,
    pub block_cache: strata_cache::BlockCacheStats,
    pub cold_reader: strata_cache::ColdReaderStats,
}
