//! The engine's core: topics and their queues, the publish and read paths,
//! consumer groups' committed offsets, and the tiered log under them.
//! Opening (recovery), topics, status and shutdown live here; the
//! messaging features (`pop`, `delay`, `txn`, `lookup`, `pull`) are built
//! on this module and never the other way round.

pub(crate) mod group_cache;
pub(crate) mod groups;
pub(crate) mod index_feed;
pub(crate) mod publish;
pub(crate) mod queue;
pub(crate) mod read;
pub(crate) mod served;
pub(crate) mod tiered;
pub(crate) mod topic;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use strata_common::usage::{Meter, StoredBytes};
use strata_common::{Clock, QueueKey, TopicId, is_hidden_topic, names};
use strata_metadata::{Catalog, Check, MessageType, MetaStore, NewTopic, Retention, TopicRecord};
use strata_tiering::batch::{KIND_MESSAGE_BATCH, decode_header, record_kind};
use strata_tiering::log::{Tiers, TiersConfig};
use strata_tiering::{FileWal, RecoveryReport, Wal, WalConfig};
use tokio::sync::watch;

use crate::error::{EngineError, Result};
use crate::types::*;
use queue::{BatchRef, IndexEntry, QueueState, TopicActivity};
use topic::{TopicState, Topics};

pub(crate) use publish::Billing;

/// Wraps the WAL the engine opens, after recovery and before any append:
/// tests inject failures this way (see `Engine::open_with_wal_layer`).
pub type WalLayer = Box<dyn FnOnce(Arc<FileWal>) -> Arc<dyn Wal> + Send>;

pub use strata_common::SYSTEM_TOPIC_PREFIX;
/// How long hidden topics keep their messages: twice the longest delay
/// (`delay::MAX_DELAY`), so a scheduled message outlives its wait.
pub const SYSTEM_TOPIC_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(2 * 366 * 24 * 3600);

/// The core of one node's engine. Shared as `Arc<Core>` by the features.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) config: EngineConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) catalog: Catalog,
    /// The hot tier; also in `tiers`, which reads it.
    pub(crate) wal: Arc<dyn Wal>,
    pub(crate) topics: RwLock<Topics>,
    /// `true` once shutdown began: new work is refused, long polls end.
    pub(crate) shutdown: watch::Sender<bool>,
    /// Appends hold it shared; shutdown takes it exclusively to wait for them.
    pub(crate) appends: Arc<tokio::sync::RwLock<()>>,
    /// The tiered log: reads across the tail cache, the WAL and object
    /// storage; WAL release.
    pub(crate) tiers: Arc<Tiers>,
    /// Moves this node's WAL data to object storage (and keeps it in shape).
    pub(crate) compactor: Arc<strata_compactor::Compactor>,
    /// Per-tenant usage counters (the bill).
    pub(crate) meter: Arc<Meter>,
    pub(crate) started_ms: i64,
    pub(crate) recovery: RecoverySummary,
    /// The WAL's compactor lock, held while this node's own compactor runs
    /// (in-process), so a separate `strata compactor` cannot also upload it.
    compaction_lock: std::sync::Mutex<Option<std::fs::File>>,
    /// Set by a server that serves a shared namespace under a lease.
    pub(crate) write_fence: std::sync::OnceLock<Arc<dyn WriteFence>>,
    /// The tenants this node serves (all, or those placed on it).
    pub(crate) served: served::Served,
    /// Held while a hidden system topic is created, so concurrent first
    /// uses wait for the one creation instead of racing it.
    system_topics: tokio::sync::Mutex<()>,
    /// Ids and keys of appended messages for the message index task.
    pub(crate) index_feed: index_feed::IndexFeed,
    /// Group records read recently.
    pub(crate) group_cache: group_cache::GroupCache,
}

/// How long a start waits for the object store to say whose it is.
const START_VERIFY_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a start's check of the object store (`None`: it did not answer
/// within [`START_VERIFY_LIMIT`]) refuses the start. A store that is not
/// this namespace's, or that refuses this node for good, does; one that
/// cannot be read now (a hung endpoint held the start for the retries'
/// 150 s) is verified before the first upload instead, and the node serves
/// meanwhile.
fn start_refusal(
    verified: Option<std::result::Result<(), strata_compactor::CompactorError>>,
) -> Result<()> {
    match verified {
        Some(Ok(())) => {}
        Some(Err(e @ strata_compactor::CompactorError::WrongStore(_))) => {
            return Err(e.into());
        }
        // Refused for good (credentials, permissions, configuration):
        // waiting would only fill the WAL with data that cannot leave.
        Some(Err(strata_compactor::CompactorError::Objects(
            e @ (strata_objects::ObjectError::Rejected { .. }
            | strata_objects::ObjectError::Config(_)),
        ))) => {
            return Err(EngineError::ObjectStore(format!(
                "{e}; the object store refuses this node's requests, so it does not \
                 start: check the object store's credentials, permissions, bucket and region"
            )));
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "cannot verify the object store now; uploads and garbage collection wait until it is verified");
        }
        None => {
            tracing::warn!(
                seconds = START_VERIFY_LIMIT.as_secs(),
                "the object store did not answer; uploads and garbage collection wait until it is verified"
            );
        }
    }
    Ok(())
}

/// The start's check of the object store ([`start_refusal`]) on its own,
/// for a cluster node to make before it joins the node registry: a node
/// that joined is handed tenants, and one refused afterwards held them up.
pub async fn check_object_store_for_start(
    config: &EngineConfig,
    catalog: &Catalog,
    clock: Arc<dyn Clock>,
) -> Result<()> {
    let objects = strata_objects::Objects::open(&config.object_store, clock.clone())
        .map_err(|e| EngineError::ObjectStore(format!("object store: {e}")))?;
    let verified = strata_common::clock::timeout(
        &*clock,
        START_VERIFY_LIMIT,
        strata_compactor::store_mark::verify(catalog, &objects, clock.as_ref(), false),
    )
    .await;
    start_refusal(verified)
}

impl Core {
    /// Opens the core on a metadata store: loads topics, claims their
    /// queues, loads their object ranges and replays the WAL. The
    /// compactor is built but its loops are not started.
    pub(crate) async fn open(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        store: Arc<dyn MetaStore>,
        wal_layer: Option<WalLayer>,
    ) -> Result<Arc<Self>> {
        let catalog = Catalog::new(store);
        let floors = catalog.queue_floors().await?;
        let mut ranges = catalog.all_ranges().await?;
        let mut topics = Topics::default();
        let served = served::Served::new(config.served_tenants.clone());
        let mut claimed = Vec::new();
        for record in catalog.all_topics().await? {
            if !served.contains(&record.tenant) {
                continue;
            }
            claimed.push(load_topic(&catalog, &config.node_id, record).await?);
        }
        // Read after the claims, which write them for queues of a lost node.
        let resumes = catalog.queue_resumes().await?;
        for topic in claimed {
            for q in &topic.queues {
                let floor = floors.get(&q.key).copied().unwrap_or(0);
                let resume = resumes.get(&q.key).copied().unwrap_or(0);
                let cold = ranges.remove(&q.key).unwrap_or_default();
                q.lock().load_cold(cold, floor, resume);
            }
            topics.insert(Arc::new(topic));
        }
        let checkpoint = catalog.wal_checkpoint(&config.node_id).await?.unwrap_or(0);
        let compaction_lock = match config.compactor {
            CompactorPlacement::InProcess => Some(
                strata_tiering::wal::lock_compaction(&config.data_dir.join("wal"))
                    .map_err(|e| EngineError::Internal(format!("cannot open the WAL: {e}")))?,
            ),
            CompactorPlacement::Separate => None,
        };

        let wal_config = WalConfig {
            dir: config.data_dir.join("wal"),
            segment_bytes: config.wal_segment_bytes,
            max_bytes: config.wal_max_bytes,
            group_commit_max_bytes: config.wal_group_commit_max_bytes,
            append_timeout: config.append_timeout,
            pace_above_percent: config.wal_pace_above_percent,
            clock: clock.clone(),
            uploaded_lsn: checkpoint,
        };
        let by_id = topics.id_map();
        let (wal, report, last_topic_id) = tokio::task::spawn_blocking(move || {
            let mut skipped = 0u64;
            let mut last_topic_id = 0;
            let opened = FileWal::open(wal_config, |lsn, payload| {
                if !replay(&by_id, lsn, payload, &mut last_topic_id) {
                    skipped += 1;
                }
                Ok(())
            });
            if skipped > 0 {
                tracing::info!(
                    skipped,
                    "WAL records of deleted topics or released offsets skipped"
                );
            }
            opened.map(|(wal, report)| (wal, report, last_topic_id))
        })
        .await
        .map_err(|e| EngineError::Internal(format!("WAL recovery task failed: {e}")))??;
        catalog.reserve_topic_ids_through(last_topic_id).await?;
        if let Some(at) = report.restarted_at {
            // The replayed records' segments are gone: they are read from
            // object storage, like released ones.
            for topic in topics.all() {
                for q in &topic.queues {
                    q.lock().release_below(at);
                }
            }
        }
        let wal: Arc<dyn Wal> = match wal_layer {
            Some(layer) => layer(wal),
            None => wal,
        };
        let meter = Arc::new(Meter::new(clock.clone()));
        let tiers_config = TiersConfig {
            object_store: config.object_store.clone(),
            block_cache: config.block_cache.clone(),
            cold_reader: config.cold_reader.clone(),
            tail_cache_bytes: config.tail_cache_bytes,
            max_read_bytes: config.max_read_bytes,
        };
        let tiers = Tiers::open(&tiers_config, wal.clone(), meter.clone(), clock.clone())
            .await
            .map(Arc::new)?;

        for topic in topics.all() {
            for q in &topic.queues {
                let hw = q.lock().high_watermark;
                q.announce(hw);
            }
        }
        let recovery = summarize(&report);
        tracing::info!(
            segments = recovery.segments,
            records = recovery.records,
            bytes = recovery.bytes,
            truncated_bytes = recovery.truncated_bytes,
            "WAL recovered"
        );
        let started_ms = clock.now_ms();
        let compactor_config = strata_compactor::CompactorConfig {
            node_id: config.node_id.clone(),
            upload_interval: config.upload_interval,
            upload_trigger_bytes: config.upload_trigger_bytes,
            max_object_bytes: config.max_object_bytes,
            target_block_bytes: config.target_block_bytes,
            maintenance_interval: config.retention_interval,
            merge_small_range_bytes: config.merge_small_range_bytes,
            merge_min_ranges: config.merge_min_ranges,
            merge_target_bytes: config.merge_target_bytes,
            gc_grace: config.gc_grace,
            private_store: !config.shared_metadata
                && strata_compactor::store_mark::is_private(&config.object_store, &config.data_dir),
        };
        let core = Arc::new_cyclic(|core: &std::sync::Weak<Self>| Self {
            compactor: Arc::new(strata_compactor::Compactor::new(
                core.clone(),
                catalog.clone(),
                tiers.objects().clone(),
                clock.clone(),
                compactor_config,
                checkpoint,
            )),
            config,
            clock: clock.clone(),
            catalog,
            wal,
            topics: RwLock::new(topics),
            shutdown: watch::Sender::new(false),
            appends: Arc::new(tokio::sync::RwLock::new(())),
            tiers,
            meter,
            started_ms,
            recovery,
            compaction_lock: std::sync::Mutex::new(compaction_lock),
            system_topics: tokio::sync::Mutex::new(()),
            index_feed: index_feed::IndexFeed::default(),
            group_cache: group_cache::GroupCache::default(),
            write_fence: std::sync::OnceLock::new(),
            served,
        });
        // A store that is not this namespace's, or that refuses this node
        // for good, refuses the start; one that cannot be read now (or
        // within START_VERIFY_LIMIT: a hung endpoint held the start for the
        // retries' 150 s) is verified before the first upload instead, and
        // the node serves meanwhile.
        let verified = strata_common::clock::timeout(
            &*clock,
            START_VERIFY_LIMIT,
            core.compactor.verify_store(),
        )
        .await;
        start_refusal(verified)?;
        Ok(core)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The clock the engine runs on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// This node's per-tenant usage counters.
    pub fn meter(&self) -> &Arc<Meter> {
        &self.meter
    }

    /// Bytes each tenant stores on this node now: WAL bytes of its queues
    /// not yet uploaded (hot) and bytes of its object ranges (cold), so an
    /// uploaded batch still in the WAL counts once. Tenants storing
    /// nothing are absent.
    pub fn stored_bytes_by_tenant(&self) -> HashMap<String, StoredBytes> {
        let mut out: HashMap<String, StoredBytes> = HashMap::new();
        for topic in self.topics_read().all() {
            for q in &topic.queues {
                let (hot, cold) = {
                    let inner = q.lock();
                    (inner.hot_only_bytes(), inner.cold_bytes)
                };
                if hot + cold > 0 {
                    let entry = out.entry(topic.record.tenant.clone()).or_default();
                    entry.hot += hot;
                    entry.cold += cold;
                }
            }
        }
        out
    }

    /// Refuses to acknowledge writes while the write fence says this node
    /// may no longer own what it writes.
    pub(crate) fn check_write_fence(&self) -> Result<()> {
        match self.write_fence.get().map(|f| f.check()) {
            Some(Err(why)) => Err(EngineError::Refused {
                code: strata_common::ErrorCode::Unavailable,
                message: why,
            }),
            _ => Ok(()),
        }
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if *self.shutdown.borrow() {
            return Err(EngineError::ShuttingDown);
        }
        Ok(())
    }

    pub(crate) fn topics_read(&self) -> std::sync::RwLockReadGuard<'_, Topics> {
        self.topics.read().unwrap_or_else(|p| p.into_inner())
    }

    fn topics_write(&self) -> std::sync::RwLockWriteGuard<'_, Topics> {
        self.topics.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A topic of a tenant this node serves.
    pub(crate) fn topic(&self, tenant: &str, name: &str) -> Result<Arc<TopicState>> {
        if !self.serves(tenant) {
            return Err(served::not_served(tenant));
        }
        self.topics_read()
            .get(tenant, name)
            .cloned()
            .ok_or_else(|| match names::validate_topic(name) {
                // No topic can have this name: say why, not just "missing".
                Err(e) => EngineError::InvalidName(e),
                Ok(()) => EngineError::TopicNotFound(name.to_string()),
            })
    }

    /// Wakes every receive waiting on a topic of `tenant`, to look again.
    pub(crate) fn wake_topics_of(&self, tenant: &str) {
        for t in self
            .topics_read()
            .all()
            .filter(|t| t.record.tenant == tenant)
        {
            if let Some(q) = t.queues.first() {
                q.activity().bump();
            }
        }
    }

    /// Why the topic `id` a long poll held is closed: its tenant is no
    /// longer served here, or it was deleted (perhaps made again: another
    /// id), or its tenant was released and served here again meanwhile
    /// (the same id, loaded anew: retrying finds it).
    pub(crate) fn topic_gone(&self, tenant: &str, name: &str, id: TopicId) -> EngineError {
        match self.topic(tenant, name) {
            Err(e) => e,
            Ok(t) if t.record.id == id => EngineError::Refused {
                code: strata_common::ErrorCode::Unavailable,
                message: format!("topic {name} was reloaded on this node meanwhile; retry"),
            },
            Ok(_) => EngineError::TopicNotFound(name.to_string()),
        }
    }

    /// Creates a topic with `queues` queues and claims them for this node.
    pub async fn create_topic(
        &self,
        tenant: &str,
        name: &str,
        queues: u32,
        message_type: MessageType,
        retention: Option<Retention>,
    ) -> Result<TopicInfo> {
        let spec = TopicSpec {
            queues,
            message_type,
            retention,
            retention_bytes: None,
        };
        self.create_topic_with(tenant, name, spec).await
    }

    /// Creates a topic from a full specification. Names starting with
    /// [`SYSTEM_TOPIC_PREFIX`] are the engine's own.
    pub async fn create_topic_with(
        &self,
        tenant: &str,
        name: &str,
        spec: TopicSpec,
    ) -> Result<TopicInfo> {
        if is_hidden_topic(name) {
            return Err(strata_common::names::NameError::Reserved {
                kind: "topic",
                name: name.to_string(),
                prefix: SYSTEM_TOPIC_PREFIX,
            }
            .into());
        }
        // Dead letters keep their source's properties but no delivery time
        // or type of their own: a `<group>-DLQ` that were FIFO, DELAY or
        // TRANSACTION would deliver messages its type does not describe.
        if name.ends_with(strata_common::names::DEAD_LETTER_SUFFIX)
            && spec.message_type != MessageType::Normal
        {
            return Err(EngineError::InvalidArgument(format!(
                "topic {name:?} is named as a consumer group's dead-letter topic (<group>{}), which holds NORMAL messages only, not {}",
                strata_common::names::DEAD_LETTER_SUFFIX,
                spec.message_type
            )));
        }
        let _made_alone = self.topics_being_made().await;
        self.create_topic_unchecked(tenant, name, spec).await
    }

    /// [`Core::create_topic_with`] for the engine's own topics.
    pub(crate) async fn create_topic_unchecked(
        &self,
        tenant: &str,
        name: &str,
        spec: TopicSpec,
    ) -> Result<TopicInfo> {
        self.check_open()?;
        if !self.serves(tenant) {
            return Err(served::not_served(tenant));
        }
        names::validate_topic(name)?;
        let max = self.config.max_queues_per_topic;
        let queues = spec.queues;
        if queues == 0 || queues > max {
            return Err(EngineError::InvalidArgument(format!(
                "queues must be between 1 and {max}, got {queues}"
            )));
        }
        if spec.retention_bytes == Some(0) {
            return Err(EngineError::InvalidArgument(
                "retention_bytes must be greater than zero".into(),
            ));
        }
        let retention = spec.retention.unwrap_or(self.config.default_retention);
        let record = self
            .catalog
            .create_topic(
                tenant,
                name,
                NewTopic {
                    queues,
                    message_type: spec.message_type,
                    retention,
                    retention_bytes: spec.retention_bytes,
                },
                self.clock.now_ms(),
            )
            .await?;
        let topic = Arc::new(load_topic(&self.catalog, &self.config.node_id, record).await?);
        self.topics_write().insert(topic.clone());
        tracing::info!(tenant, topic = name, queues, "topic created");
        Ok(topic_info(&topic.record))
    }

    /// Creates one of the engine's hidden per-tenant topics if missing:
    /// one queue, kept [`SYSTEM_TOPIC_RETENTION`].
    pub(crate) async fn ensure_system_topic(&self, tenant: &str, name: &str) -> Result<()> {
        let spec = TopicSpec {
            queues: 1,
            message_type: MessageType::Normal,
            retention: Some(Retention::Ms(SYSTEM_TOPIC_RETENTION.as_millis() as u64)),
            retention_bytes: None,
        };
        self.ensure_topic(tenant, name, spec).await
    }

    /// Creates a topic the engine writes to if it is missing (a hidden
    /// topic, a group's dead-letter topic), and returns once it takes
    /// appends.
    pub(crate) async fn ensure_topic(
        &self,
        tenant: &str,
        name: &str,
        spec: TopicSpec,
    ) -> Result<()> {
        if self.topic(tenant, name).is_ok() {
            return Ok(());
        }
        // A concurrent caller may have committed the topic without having
        // loaded it yet: "already exists" would then be answered before
        // the topic can take appends (concurrent first dead letters of a
        // group failed their receives with TOPIC_NOT_FOUND for <group>-DLQ).
        let _creating = self.system_topics.lock().await;
        if self.topic(tenant, name).is_ok() {
            return Ok(());
        }
        match self.create_topic_unchecked(tenant, name, spec).await {
            Ok(_) | Err(EngineError::TopicAlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub fn list_topics(&self, tenant: &str) -> Vec<TopicInfo> {
        let mut list: Vec<TopicInfo> = self
            .topics_read()
            .all()
            .filter(|t| t.record.tenant == tenant)
            .filter(|t| !is_hidden_topic(&t.record.name))
            .map(|t| topic_info(&t.record))
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// A topic's settings, without per-queue statistics (cheap: for
    /// request paths that only need its type and queue count).
    pub fn topic_info(&self, tenant: &str, name: &str) -> Result<TopicInfo> {
        Ok(topic_info(&self.topic(tenant, name)?.record))
    }

    pub fn describe_topic(&self, tenant: &str, name: &str) -> Result<(TopicInfo, Vec<QueueInfo>)> {
        let topic = self.topic(tenant, name)?;
        let queues = topic.queues.iter().map(|q| queue_info(q)).collect();
        Ok((topic_info(&topic.record), queues))
    }

    pub fn queue_info(&self, tenant: &str, topic: &str, queue: u32) -> Result<QueueInfo> {
        let topic = self.topic(tenant, topic)?;
        Ok(queue_info(topic.queue(queue)?))
    }

    /// Deletes a topic. Its WAL data is skipped on replay and released by
    /// retention; its committed offsets stop being listed.
    pub async fn delete_topic(&self, tenant: &str, name: &str) -> Result<TopicInfo> {
        self.check_open()?;
        if !self.serves(tenant) {
            return Err(served::not_served(tenant));
        }
        let record = self.catalog.delete_topic(tenant, name).await?;
        if let Some(topic) = self.topics_write().remove(tenant, name) {
            for q in &topic.queues {
                self.tiers.tail().remove_queue(q.key);
            }
        }
        tracing::info!(tenant, topic = name, "topic deleted");
        Ok(topic_info(&record))
    }

    /// Held while hidden topics are made (`ensure_system_topic`), while a
    /// caller's topic is made, and across a tenant's hidden-topic cleanup
    /// ([`crate::Engine::delete_hidden_topics`]), so that no topic (and so
    /// no delayed message or transaction) appears while that cleanup runs.
    pub(crate) async fn topics_being_made(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.system_topics.lock().await
    }

    /// The names of the tenant's hidden topics when it has no other topic
    /// and no group left; `None` while it has, or when another node serves
    /// it. Call under [`Core::topics_being_made`].
    pub(crate) async fn hidden_topics_of_emptied(
        &self,
        tenant: &str,
    ) -> Result<Option<Vec<String>>> {
        if !self.serves(tenant)
            || !self.list_topics(tenant).is_empty()
            || !self.catalog.list_groups(tenant).await?.is_empty()
        {
            return Ok(None);
        }
        Ok(Some(
            self.catalog
                .list_topics(tenant)
                .await?
                .into_iter()
                .filter(|t| is_hidden_topic(&t.name))
                .map(|t| t.name)
                .collect(),
        ))
    }

    /// A metadata check that holds only while this node still owns `key` at
    /// the epoch it claimed: add it to a metadata transaction to fence it.
    pub fn owner_check(&self, tenant: &str, topic: &str, queue: u32) -> Result<Check> {
        let topic = self.topic(tenant, topic)?;
        let q = topic.queue(queue)?;
        Ok(self.catalog.owner_check(q.key, &q.owner))
    }

    pub fn status(&self) -> NodeStatus {
        let topics = self.topics_read();
        let (mut queues, mut messages, mut bytes) = (0usize, 0u64, 0u64);
        for t in topics.all() {
            for q in &t.queues {
                let inner = q.lock();
                queues += 1;
                messages += inner.readable_from(inner.first_offset);
                bytes += inner.hot_only_bytes() + inner.cold_bytes;
            }
        }
        NodeStatus {
            node_id: self.config.node_id.clone(),
            started_ms: self.started_ms,
            topics: topics.all().count(),
            queues,
            retained_messages: messages,
            retained_bytes: bytes,
            wal: self.wal.stats(),
            tail_cache: self.tiers.tail().stats(),
            recovery: self.recovery.clone(),
            tiering: self.tiering_status(),
            pop: PopStats::default(),
            message_index: Default::default(),
            metadata: self.catalog.store().timings(),
        }
    }

    /// A receiver that turns `true` when shutdown begins.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Starts shutting down: new requests are refused with UNAVAILABLE and
    /// long polls return at once; appends already accepted still finish.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Waits for the appends in flight (shutdown must have begun, so no
    /// new one starts).
    pub(crate) async fn drain_appends(&self) {
        drop(self.appends.write().await);
    }

    /// Waits for in-flight appends to become durable and closes the WAL.
    /// Shutdown must have begun and the loops that use the core ended.
    pub(crate) async fn close(&self) -> Result<()> {
        let _all_appends_done = self.appends.write().await;
        let wal = self.wal.clone();
        tokio::task::spawn_blocking(move || wal.close())
            .await
            .map_err(|e| EngineError::Internal(format!("WAL close task failed: {e}")))??;
        self.compaction_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        Ok(())
    }
}

/// Builds a topic's live state, claiming all its queues for this node in one
/// metadata transaction.
async fn load_topic(catalog: &Catalog, node: &str, record: TopicRecord) -> Result<TopicState> {
    let owners = catalog
        .claim_topic_queues(record.id, record.queues, node)
        .await?;
    let tenant: Arc<str> = Arc::from(record.tenant.as_str());
    let activity = Arc::new(TopicActivity::new());
    let queues = owners
        .into_iter()
        .zip(0..)
        .map(|(owner, q)| {
            Arc::new(QueueState::new(
                QueueKey::new(record.id, q),
                tenant.clone(),
                owner,
                activity.clone(),
            ))
        })
        .collect();
    Ok(TopicState::new(record, queues))
}

/// Applies one replayed WAL record; false when it was skipped. Raises
/// `last_topic_id` to the record's topic, known or not.
fn replay(
    topics: &HashMap<TopicId, Arc<TopicState>>,
    lsn: u64,
    payload: &[u8],
    last_topic_id: &mut TopicId,
) -> bool {
    if record_kind(payload) != Some(KIND_MESSAGE_BATCH) {
        tracing::warn!(lsn, "unknown WAL record kind skipped");
        return false;
    }
    let header = match decode_header(payload) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(lsn, error = %e, "undecodable WAL batch skipped");
            return false;
        }
    };
    *last_topic_id = (*last_topic_id).max(header.queue.topic);
    let Some(queue) = topics
        .get(&header.queue.topic)
        .and_then(|t| t.queues.get(header.queue.queue as usize))
    else {
        return false;
    };
    let entry = IndexEntry {
        base_offset: header.base_offset,
        count: header.count,
        bytes: payload.len() as u64,
        at: BatchRef {
            lsn,
            timestamp_ms: header.timestamp_ms,
        },
    };
    let accepted = queue.lock().recover(entry, header.timestamp_ms);
    if !accepted && header.base_offset >= queue.lock().next_offset {
        tracing::error!(lsn, queue = %header.queue, base = header.base_offset, "WAL batch out of sequence skipped");
    }
    accepted
}

fn summarize(report: &RecoveryReport) -> RecoverySummary {
    RecoverySummary {
        segments: report.segments,
        records: report.records,
        bytes: report.bytes,
        truncated_path: report.truncated.as_ref().map(|t| t.path.clone()),
        truncated_bytes: report.truncated.as_ref().map_or(0, |t| t.cut_bytes),
        truncated_reason: report.truncated.as_ref().map(|t| t.reason.clone()),
        restarted_at: report.restarted_at,
        skipped_damage: report
            .skipped_damage
            .iter()
            .map(|d| (d.path.clone(), d.offset, d.reason.clone()))
            .collect(),
    }
}

pub(crate) fn topic_info(record: &TopicRecord) -> TopicInfo {
    TopicInfo {
        id: record.id,
        name: record.name.clone(),
        queues: record.queues,
        message_type: record.message_type,
        retention: record.retention,
        retention_bytes: record.retention_bytes,
        created_ms: record.created_ms,
    }
}

pub(crate) fn queue_info(q: &QueueState) -> QueueInfo {
    let inner = q.lock();
    QueueInfo {
        queue: q.key.queue,
        first_offset: inner.first_offset,
        end_offset: inner.high_watermark,
        messages: inner.readable_from(inner.first_offset),
        bytes: inner.hot_only_bytes() + inner.cold_bytes,
        // WAL batches below the first offset are expired, only not yet
        // released with their segment.
        batches: inner.batches_from(inner.first_offset) as u64,
        oldest_timestamp_ms: inner.cold.front().map(|r| r.min_timestamp_ms).or_else(|| {
            inner
                .entries_from(inner.first_offset)
                .next()
                .map(|e| e.at.timestamp_ms)
        }),
        newest_timestamp_ms: inner.index.back().map(|e| e.at.timestamp_ms),
        owner_node: q.owner.node.clone(),
        owner_epoch: q.owner.epoch,
        wal_first_offset: inner.hot_first(),
        object_first_offset: inner.cold.front().map(|r| r.base_offset),
        object_end_offset: inner.cold_end(),
        object_bytes: inner.cold_bytes,
        object_ranges: inner.cold.len() as u64,
        objects: inner
            .cold
            .iter()
            .map(|r| r.object.as_str())
            .collect::<std::collections::HashSet<_>>()
            .len() as u64,
    }
}
