//! The engine assembled: the core (topics, queues, publish, read, groups,
//! the tiered log) and the features built on it, each owning its state and
//! its loop. This file only opens them in order, starts and stops their
//! loops, and routes the public API to whichever part answers it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use strata_common::usage::{Meter, StoredBytes};
use strata_common::{BackgroundRuntime, Clock};
use strata_compactor::{MaintenanceSummary, UploadSummary};
use strata_metadata::{
    Check, GroupSpec, HalfRecord, IndexKind, MessageType, MetaStore, RedbStore, Retention,
    TimedStore,
};
use strata_objects::Objects;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::core::{Core, WalLayer};
use crate::delay::Delay;
use crate::error::{EngineError, Result};
use crate::lookup::{FoundMessages, IndexMaintenance, Lookup};
use crate::pop::{Pop, Popped, ReceiveRequest};
use crate::pull::Pull;
use crate::txn::{DueCheck, Txn};
use crate::types::*;

/// The message engine of one node. Cheap to share: wrap in `Arc`.
#[derive(Debug)]
pub struct Engine {
    core: Arc<Core>,
    pull: Pull,
    pop: Arc<Pop>,
    delay: Arc<Delay>,
    txn: Txn,
    lookup: Arc<Lookup>,
    /// The background loops, awaited by `close` so that nothing holds the
    /// engine (and its metadata store) once it returns.
    loops: Mutex<Vec<JoinHandle<()>>>,
    /// Where the in-process compactor's loops run (see
    /// [`COMPACTION_NICE`]); `None` when a separate process compacts.
    compaction: Option<BackgroundRuntime>,
}

/// Nice levels the compactor's threads run below the server's. Uploads and merges build, compress
/// and write objects in runs of up to a few hundred milliseconds of CPU;
/// on the two request workers such a run holds up whatever is queued on
/// its worker. On their own lowered threads the OS runs request threads
/// first; when producers outpace uploads the WAL fills, and its
/// backpressure slows them until the compactor catches up.
pub const COMPACTION_NICE: i32 = 10;

/// Opening and closing.
impl Engine {
    /// Opens the engine on its embedded metadata store under `data_dir`.
    pub async fn open(config: EngineConfig, clock: Arc<dyn Clock>) -> Result<Arc<Self>> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            EngineError::Internal(format!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let store = RedbStore::open(&config.data_dir.join("meta.redb"))?;
        let store = TimedStore::wrap(store, clock.clone());
        Self::open_with_store(config, clock, store).await
    }

    /// Opens the engine on any metadata store: recovers the core (topics,
    /// queue claims, object ranges, WAL replay), loads the features' state,
    /// then starts the compactor's, the delay's and the index's loops.
    pub async fn open_with_store(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        store: Arc<dyn MetaStore>,
    ) -> Result<Arc<Self>> {
        Self::open_with_wal_layer(config, clock, store, None).await
    }

    /// [`Engine::open_with_store`], with the WAL wrapped by `layer` (a test
    /// wraps it to make appends fail).
    pub async fn open_with_wal_layer(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        store: Arc<dyn MetaStore>,
        layer: Option<WalLayer>,
    ) -> Result<Arc<Self>> {
        let core = Core::open(config, clock, store, layer).await?;
        let compaction = if core.compactor_is_separate() {
            None
        } else {
            let runtime =
                BackgroundRuntime::start("strata-compact", 1, COMPACTION_NICE).map_err(|e| {
                    EngineError::Internal(format!("cannot start the compaction runtime: {e}"))
                })?;
            Some(runtime)
        };
        let engine = Arc::new(Self {
            pull: Pull::new(core.clone()),
            pop: Pop::new(core.clone()),
            delay: Delay::open(core.clone()).await?,
            txn: Txn::new(core.clone()),
            lookup: Lookup::open(core.clone()).await?,
            loops: Mutex::new(Vec::new()),
            compaction,
            core,
        });
        let shutdown = engine.core.shutdown.subscribe();
        let compaction: Vec<JoinHandle<()>> = match &engine.compaction {
            Some(runtime) => engine
                .core
                .compactor
                .spawn(&shutdown, runtime.handle())
                .into(),
            None => vec![engine.core.spawn_follower(shutdown)],
        };
        let loops = [engine.delay.spawn_loop(), engine.lookup.spawn_loop()];
        engine
            .lock_loops()
            .extend(compaction.into_iter().chain(loops));
        Ok(engine)
    }

    fn lock_loops(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.loops.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Installs the fence every publish checks before it acknowledges (once;
    /// later calls are ignored).
    /// Whether this node serves `tenant` (always, outside cluster mode).
    pub fn serves(&self, tenant: &str) -> bool {
        self.core.serves(tenant)
    }

    /// The tenants this node serves, or `None` when it serves all.
    pub fn served_tenants(&self) -> Option<Vec<String>> {
        self.core.served.list()
    }

    /// Starts serving a tenant placed on this node: claims its queues,
    /// loads its topics from object storage, takes up its timers.
    pub async fn serve_tenant(&self, tenant: &str) -> Result<()> {
        // POP state cached while the tenant was here before is stale: the
        // node that served it meanwhile changed it (a reset may even have
        // moved a cursor back to the value cached here).
        self.pop.forget_tenant(tenant);
        self.core.serve_tenant(tenant).await?;
        let topics = self
            .core
            .topics_read()
            .all()
            .filter(|t| t.record.tenant == tenant)
            .map(|t| t.record.id)
            .collect();
        self.lookup.load_marks(&topics).await?;
        self.delay.load_tenant(tenant).await
    }

    /// Stops serving a tenant: refuses its requests, uploads the WAL so
    /// that everything it acknowledged is in object storage, drops its
    /// topics and timers. Then it may be placed on another node.
    pub async fn release_tenant(&self, tenant: &str) -> Result<()> {
        self.delay.drop_tenant(tenant);
        let released = self.core.release_tenant(tenant).await;
        self.pop.forget_tenant(tenant);
        released
    }

    /// Why the write fence is shut, if it is.
    pub fn write_fence_shut(&self) -> Option<String> {
        self.core.check_write_fence().err().map(|e| e.to_string())
    }

    /// Why this node refuses publishes now, if it does: its WAL failed, it
    /// is shutting down, or its write fence is shut. `None` while it
    /// accepts them (what `/readyz` answers).
    pub fn not_ready(&self) -> Option<String> {
        let wal = self.core.wal.stats();
        if wal.failed {
            let why = wal
                .failure
                .unwrap_or_else(|| "a write or fdatasync failed".into());
            return Some(format!(
                "wal failed ({why}): every publish is refused until this node restarts"
            ));
        }
        if let Err(e) = self.core.check_open() {
            return Some(e.to_string());
        }
        self.write_fence_shut()
    }

    pub fn set_write_fence(&self, fence: Arc<dyn crate::WriteFence>) {
        let _ = self.core.write_fence.set(fence);
    }

    /// A receiver that turns `true` when shutdown begins.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.core.shutdown_signal()
    }

    /// Starts shutting down: new requests are refused with UNAVAILABLE and
    /// long polls return at once; appends already accepted still finish.
    pub fn begin_shutdown(&self) {
        self.core.begin_shutdown();
    }

    /// [`Engine::begin_shutdown`], then waits for the appends already
    /// accepted to finish (their callers may still be answering): after it,
    /// nothing more reaches the WAL, so an upload then takes everything
    /// acknowledged.
    pub async fn drain_appends(&self) {
        self.begin_shutdown();
        self.core.drain_appends().await;
    }

    /// [`Engine::begin_shutdown`], then waits for the loops to end and for
    /// in-flight appends to become durable, and closes the WAL.
    pub async fn close(&self) -> Result<()> {
        self.begin_shutdown();
        // The loops end, abandoning a pass in progress (each is crash-safe):
        // one retrying against an unreachable object store must not hold
        // the close up.
        let loops = std::mem::take(&mut *self.lock_loops());
        for looped in loops {
            if let Err(e) = looped.await
                && e.is_panic()
            {
                tracing::error!(error = %e, "an engine loop panicked");
            }
        }
        // A message-index pass started by a caller finishes too; what it
        // holds pending is written, so a restart need not index it again.
        self.lookup.flush_on_close().await;
        self.core.close().await?;
        tracing::info!("engine closed");
        Ok(())
    }
}

/// The node: configuration, clock, usage, status.
impl Engine {
    pub fn config(&self) -> &EngineConfig {
        self.core.config()
    }

    /// The clock the engine runs on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        self.core.clock()
    }

    /// This node's per-tenant usage counters.
    pub fn meter(&self) -> &Arc<Meter> {
        self.core.meter()
    }

    /// Bytes each tenant stores on this node now: WAL bytes of its queues
    /// (hot) and bytes of its object ranges (cold). Tenants storing nothing
    /// are absent.
    pub fn stored_bytes_by_tenant(&self) -> HashMap<String, StoredBytes> {
        self.core.stored_bytes_by_tenant()
    }

    /// Whether a WAL write or fdatasync failed: every publish is refused
    /// from then on, until the node restarts and its WAL recovers.
    pub fn wal_failed(&self) -> bool {
        self.core.wal.stats().failed
    }

    /// What made the WAL fail, once it did (see [`Engine::wal_failed`]).
    pub fn wal_failure(&self) -> Option<String> {
        self.core.wal.stats().failure
    }

    pub fn status(&self) -> NodeStatus {
        NodeStatus {
            pop: self.pop.stats(),
            message_index: self.lookup.stats(),
            ..self.core.status()
        }
    }

    /// A metadata check that holds only while this node still owns the
    /// queue at the epoch it claimed: add it to a metadata transaction to
    /// fence it.
    pub fn owner_check(&self, tenant: &str, topic: &str, queue: u32) -> Result<Check> {
        self.core.owner_check(tenant, topic, queue)
    }
}

/// Refuses the engine's own topics (`__sys-*`: the schedule of delayed
/// messages, transactions' half messages) wherever a caller names a topic:
/// what they hold is addressed by offset from timers and transaction
/// records, so reading, writing or deleting them from outside would lose or
/// misdeliver messages. They are not listed, so they are not found either.
fn user_topic(name: &str) -> Result<()> {
    if strata_common::is_hidden_topic(name) {
        return Err(EngineError::TopicNotFound(name.to_string()));
    }
    Ok(())
}

/// Topics.
impl Engine {
    /// Creates a topic with `queues` queues and claims them for this node.
    pub async fn create_topic(
        &self,
        tenant: &str,
        name: &str,
        queues: u32,
        message_type: MessageType,
        retention: Option<Retention>,
    ) -> Result<TopicInfo> {
        self.core
            .create_topic(tenant, name, queues, message_type, retention)
            .await
    }

    /// Creates a topic from a full specification. Names starting with
    /// [`SYSTEM_TOPIC_PREFIX`](crate::SYSTEM_TOPIC_PREFIX) are the engine's own.
    pub async fn create_topic_with(
        &self,
        tenant: &str,
        name: &str,
        spec: TopicSpec,
    ) -> Result<TopicInfo> {
        self.core.create_topic_with(tenant, name, spec).await
    }

    /// The tenant's topics by name, hidden ones left out.
    pub fn list_topics(&self, tenant: &str) -> Vec<TopicInfo> {
        self.core.list_topics(tenant)
    }

    /// A topic's settings, without per-queue statistics (cheap: for
    /// request paths that only need its type and queue count).
    pub fn topic_info(&self, tenant: &str, name: &str) -> Result<TopicInfo> {
        user_topic(name)?;
        self.core.topic_info(tenant, name)
    }

    pub fn describe_topic(&self, tenant: &str, name: &str) -> Result<(TopicInfo, Vec<QueueInfo>)> {
        user_topic(name)?;
        self.core.describe_topic(tenant, name)
    }

    pub fn queue_info(&self, tenant: &str, topic: &str, queue: u32) -> Result<QueueInfo> {
        user_topic(topic)?;
        self.core.queue_info(tenant, topic, queue)
    }

    /// Deletes a topic. Its WAL data is skipped on replay and released by
    /// retention; its committed offsets stop being listed.
    pub async fn delete_topic(&self, tenant: &str, name: &str) -> Result<TopicInfo> {
        user_topic(name)?;
        // Not while a topic is made: a delete between a create's commit and
        // its loading found nothing loaded to drop, and the create then
        // loaded a topic the catalog no longer had (listed, counted against
        // quotas, never deletable).
        let _alone = self.core.topics_being_made().await;
        self.core.delete_topic(tenant, name).await
    }

    /// Deletes the tenant's hidden topics (pending delayed messages and
    /// open transactions of topics already deleted), its timers and its
    /// transaction records, when it has no topic and no group left: the
    /// step before deleting the tenant, on the node that serves it. How
    /// many topics were deleted, or `None` (nothing done) while the tenant
    /// still has topics or groups, or is served by another node. No topic
    /// can be made meanwhile, so no delayed message or transaction is
    /// accepted and then dropped by it.
    pub async fn delete_hidden_topics(&self, tenant: &str) -> Result<Option<usize>> {
        let _no_new_topics = self.core.topics_being_made().await;
        let Some(hidden) = self.core.hidden_topics_of_emptied(tenant).await? else {
            return Ok(None);
        };
        // What names the hidden topics goes first: a failure half-way
        // leaves topics that a retry deletes, never a timer or transaction
        // whose message is gone.
        self.delay.forget_tenant(tenant).await?;
        self.txn.forget_tenant(tenant).await?;
        for name in &hidden {
            match self.core.delete_topic(tenant, name).await {
                Ok(_) | Err(EngineError::TopicNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(hidden.len()))
    }
}

/// Publishing: plain, delayed ([`crate::delay`]), transactional ([`crate::txn`]).
impl Engine {
    /// Publishes messages and returns once all of them are durable.
    ///
    /// Messages for one queue keep their order and form one WAL record. A
    /// batch spanning queues is not atomic: on error some queues may have
    /// stored their part (retrying gives at-least-once delivery). DELAY
    /// topics take their messages through [`Engine::publish_at`],
    /// TRANSACTION topics through [`Engine::publish_half`].
    pub async fn publish(
        &self,
        tenant: &str,
        topic: &str,
        messages: Vec<PublishMessage>,
    ) -> Result<Vec<Published>> {
        user_topic(topic)?;
        self.core.publish(tenant, topic, messages).await
    }

    /// Publishes `messages` to a DELAY topic for delivery at
    /// `deliver_at_ms` (Unix ms). A time already past delivers at once.
    pub async fn publish_at(
        &self,
        tenant: &str,
        topic: &str,
        messages: Vec<PublishMessage>,
        deliver_at_ms: i64,
    ) -> Result<Vec<Published>> {
        user_topic(topic)?;
        self.delay
            .publish_at(tenant, topic, messages, deliver_at_ms)
            .await
    }

    /// Publishes a batch to a DELAY topic, each message at its own delivery
    /// time (Unix ms; a time already past delivers at once); one WAL append
    /// and one metadata commit for the whole batch. In the order given.
    pub async fn publish_each_at(
        &self,
        tenant: &str,
        topic: &str,
        messages: Vec<(PublishMessage, i64)>,
    ) -> Result<Vec<Published>> {
        user_topic(topic)?;
        self.delay.publish_each_at(tenant, topic, messages).await
    }

    /// Delivers every due delayed message; returns how long until the next
    /// one is due (`None` when none is pending).
    pub async fn fire_due_timers(&self) -> Result<Option<Duration>> {
        self.delay.fire_due_timers().await
    }

    /// Stores a half message for `topic` (a TRANSACTION topic) and opens a
    /// transaction; returns where the half message is and the transaction id.
    pub async fn publish_half(
        &self,
        tenant: &str,
        topic: &str,
        message: PublishMessage,
    ) -> Result<(Published, String)> {
        user_topic(topic)?;
        self.txn.publish_half(tenant, topic, message).await
    }

    /// [`Engine::publish_half`] for a batch: one WAL append and one
    /// metadata commit for all of it; results in the order given.
    pub async fn publish_halves(
        &self,
        tenant: &str,
        topic: &str,
        messages: Vec<PublishMessage>,
    ) -> Result<Vec<(Published, String)>> {
        user_topic(topic)?;
        self.txn.publish_halves(tenant, topic, messages).await
    }

    /// Commits (the message enters its topic) or rolls back a transaction.
    pub async fn end_transaction(
        &self,
        tenant: &str,
        topic: &str,
        transaction_id: &str,
        commit: bool,
    ) -> Result<()> {
        user_topic(topic)?;
        self.txn
            .end_transaction(tenant, topic, transaction_id, None, commit)
            .await
    }

    /// [`Engine::end_transaction`] of a transaction that must hold the
    /// message `message_id` (RocketMQ's EndTransaction names both).
    pub async fn end_transaction_of(
        &self,
        tenant: &str,
        topic: &str,
        transaction_id: &str,
        message_id: &str,
        commit: bool,
    ) -> Result<()> {
        user_topic(topic)?;
        self.txn
            .end_transaction(tenant, topic, transaction_id, Some(message_id), commit)
            .await
    }

    /// The open transactions of `topic` (which must exist), oldest first.
    pub async fn open_transactions(&self, tenant: &str, topic: &str) -> Result<Vec<HalfRecord>> {
        user_topic(topic)?;
        self.txn.open_transactions(tenant, topic).await
    }

    /// Open transactions whose producer should be asked about them now;
    /// those asked too often are rolled back instead.
    pub async fn due_transaction_checks(&self) -> Result<Vec<DueCheck>> {
        self.txn.due_transaction_checks().await
    }

    /// Records that a producer was asked about `record`; `true` when that
    /// was the last check before the transaction is rolled back.
    pub async fn note_transaction_check(&self, record: &HalfRecord) -> Result<bool> {
        self.txn.note_transaction_check(record).await
    }
}

/// Reading by offset, and finding messages by id or key ([`crate::lookup`]).
impl Engine {
    /// Reads up to `max_messages` from `offset`. When `offset` is the end of
    /// the queue, waits up to `wait` (capped by config) for new messages.
    pub async fn read(
        &self,
        tenant: &str,
        topic: &str,
        queue: u32,
        offset: u64,
        max_messages: usize,
        wait: Duration,
    ) -> Result<ReadResult> {
        user_topic(topic)?;
        let limits = ReadLimits::messages(max_messages);
        self.core
            .read(tenant, topic, queue, offset, wait, limits)
            .await
    }

    /// [`Engine::read`] within `limits`: their filter keeps what it
    /// matches (only that is returned and metered, and `next_offset` is
    /// past everything read); their bounds on what is returned (a
    /// reader's quota) cut it, and `next_offset` then follows the last
    /// message returned.
    pub async fn read_within(
        &self,
        tenant: &str,
        topic: &str,
        queue: u32,
        offset: u64,
        wait: Duration,
        limits: ReadLimits<'_>,
    ) -> Result<ReadResult> {
        user_topic(topic)?;
        self.core
            .read(tenant, topic, queue, offset, wait, limits)
            .await
    }

    /// [`Engine::read_within`] on behalf of consumer `group` (which must
    /// exist): messages the group was given before are counted as
    /// redeliveries.
    #[allow(clippy::too_many_arguments)]
    pub async fn read_for_group(
        &self,
        tenant: &str,
        group: &str,
        topic: &str,
        queue: u32,
        offset: u64,
        wait: Duration,
        limits: ReadLimits<'_>,
    ) -> Result<ReadResult> {
        user_topic(topic)?;
        self.pull
            .read_for_group(tenant, group, topic, queue, offset, wait, limits)
            .await
    }

    /// The first offset whose message was appended at or after
    /// `timestamp_ms` (the end of the queue if none was).
    pub async fn offset_for_time(
        &self,
        tenant: &str,
        topic: &str,
        queue: u32,
        timestamp_ms: i64,
    ) -> Result<u64> {
        user_topic(topic)?;
        self.core
            .offset_for_time(tenant, topic, queue, timestamp_ms)
            .await
    }

    /// Up to `limit` messages of `topic` whose id (or key) is `value`, in
    /// (queue, offset) order, and whether more match; counted as delivered.
    pub async fn find_messages(
        &self,
        tenant: &str,
        topic: &str,
        kind: IndexKind,
        value: &str,
        limit: usize,
    ) -> Result<FoundMessages> {
        user_topic(topic)?;
        // A key or id no message can have is a mistake, not "none found".
        let problem = match kind {
            IndexKind::Key => strata_common::limits::key_problem(value),
            IndexKind::Id => strata_common::limits::id_problem(value),
        };
        if let Some(problem) = problem {
            return Err(EngineError::InvalidArgument(problem));
        }
        self.lookup
            .find_messages(tenant, topic, kind, value, limit)
            .await
    }

    /// One pass of the index task; returns how many messages it indexed.
    /// They are pending until [`Engine::flush_message_index`] (or the task,
    /// when a run is due) writes them to object storage.
    pub async fn index_pending(&self) -> Result<usize> {
        self.lookup.index_pending().await
    }

    /// Writes the pending index entries as one run; returns how many.
    pub async fn flush_message_index(&self) -> Result<usize> {
        self.lookup.flush_now().await
    }

    /// Drops, merges and sweeps this node's index runs (the task does this
    /// after each run it writes, and every ten minutes).
    pub async fn maintain_message_index(&self) -> Result<IndexMaintenance> {
        self.lookup.maintain_now().await
    }
}

/// Consumer groups and their committed offsets.
impl Engine {
    /// Creates a group with the defaults of [`GroupSpec`] (idempotent).
    pub async fn create_group(&self, tenant: &str, name: &str) -> Result<GroupInfo> {
        self.create_group_with(tenant, name, GroupSpec::default())
            .await
    }

    /// Creates a group as `spec` says; an existing group is returned
    /// unchanged (its settings were fixed when it was created).
    pub async fn create_group_with(
        &self,
        tenant: &str,
        name: &str,
        spec: GroupSpec,
    ) -> Result<GroupInfo> {
        Ok(self.create_group_reporting(tenant, name, spec).await?.0)
    }

    /// [`Engine::create_group_with`], and whether this call created the
    /// group (false: it existed, or a concurrent call created it first).
    pub async fn create_group_reporting(
        &self,
        tenant: &str,
        name: &str,
        spec: GroupSpec,
    ) -> Result<(GroupInfo, bool)> {
        strata_common::names::validate_group(name)?;
        // What a deletion cut short left of a group of this name (its POP
        // state) must not become the new group's.
        if self.core.catalog.get_group(tenant, name).await?.is_none() {
            self.pop.forget_group(tenant, name).await?;
        }
        self.core.create_group_with(tenant, name, spec).await
    }

    /// The group's settings (without offsets), or [`EngineError::GroupNotFound`].
    pub async fn group(&self, tenant: &str, name: &str) -> Result<GroupInfo> {
        self.core.group(tenant, name).await
    }

    /// Ok if the group exists, else [`EngineError::GroupNotFound`].
    pub async fn require_group(&self, tenant: &str, name: &str) -> Result<()> {
        self.core.require_group(tenant, name).await
    }

    pub async fn list_groups(&self, tenant: &str) -> Result<Vec<GroupInfo>> {
        self.core.list_groups(tenant).await
    }

    /// A group with its committed offsets and lag per queue.
    pub async fn describe_group(&self, tenant: &str, name: &str) -> Result<GroupInfo> {
        self.core.describe_group(tenant, name).await
    }

    /// Deletes a group: its record and offsets, its POP state, and what
    /// this node remembers handing it.
    pub async fn delete_group(&self, tenant: &str, name: &str) -> Result<()> {
        let deleted = self.core.delete_group(tenant, name).await;
        // After the record, so no POP commit (fenced on it) lands after;
        // and also when the record was already gone, so that a deletion
        // cut short (the metadata store failing half-way) can be finished.
        if matches!(deleted, Ok(()) | Err(EngineError::GroupNotFound(_))) {
            self.pop.forget_group(tenant, name).await?;
            self.pull.forget_group(tenant, name);
        }
        if deleted.is_ok() {
            // Receives waiting for the group find it gone and end.
            self.core.wake_topics_of(tenant);
        }
        deleted
    }

    /// Commits `offset` (the next offset to consume) for a group on one
    /// queue, creating the group if needed.
    pub async fn commit_offset(
        &self,
        tenant: &str,
        group: &str,
        topic: &str,
        queue: u32,
        offset: u64,
    ) -> Result<()> {
        user_topic(topic)?;
        self.core
            .commit_offset(tenant, group, topic, queue, offset)
            .await
    }

    /// Moves a group on every queue of `topic` to `to`: its committed
    /// offsets and where it receives by message (its POP cursors), all
    /// queues in one metadata transaction (creating the group if needed).
    /// Messages in flight to the group are dropped (their receipt handles
    /// stop working). Returns each queue's new offset.
    pub async fn reset_offsets(
        &self,
        tenant: &str,
        group: &str,
        topic: &str,
        to: OffsetTarget,
    ) -> Result<Vec<(u32, u64)>> {
        user_topic(topic)?;
        self.pop.reset(tenant, group, topic, to).await
    }

    /// A group's committed offset on one queue, if any.
    pub async fn committed_offset(
        &self,
        tenant: &str,
        group: &str,
        topic: &str,
        queue: u32,
    ) -> Result<Option<u64>> {
        user_topic(topic)?;
        self.core
            .committed_offset(tenant, group, topic, queue)
            .await
    }
}

/// Consumption by message ([`crate::pop`]).
impl Engine {
    /// Receives up to `max_messages` for a consumer group from the topic's
    /// queues (or the one queue asked for), invisible to the group for
    /// `r.invisible` unless acknowledged; waits up to `r.wait` when nothing
    /// is deliverable.
    pub async fn receive(&self, r: ReceiveRequest<'_>) -> Result<Vec<Popped>> {
        user_topic(r.topic)?;
        self.pop.receive(r).await
    }

    /// Acknowledges one delivery; a malformed, superseded or expired
    /// handle is refused.
    pub async fn ack(&self, tenant: &str, group: &str, topic: &str, handle: &str) -> Result<()> {
        user_topic(topic)?;
        self.pop.ack(tenant, group, topic, handle).await
    }

    /// Acknowledges several deliveries of one topic, one commit per queue;
    /// each handle gets its own outcome (see [`Engine::ack`]).
    pub async fn ack_many(
        &self,
        tenant: &str,
        group: &str,
        topic: &str,
        handles: &[String],
    ) -> Result<Vec<Result<()>>> {
        user_topic(topic)?;
        self.pop.ack_many(tenant, group, topic, handles).await
    }

    /// Moves one delivered message to the group's dead-letter topic now.
    pub async fn forward_to_dead_letter(
        &self,
        tenant: &str,
        group: &str,
        topic: &str,
        handle: &str,
    ) -> Result<()> {
        user_topic(topic)?;
        self.pop
            .forward_to_dead_letter(tenant, group, topic, handle)
            .await
    }

    /// Makes one delivery invisible for `invisible` from now (zero: visible
    /// again at once); returns the new receipt handle.
    pub async fn change_invisible(
        &self,
        tenant: &str,
        group: &str,
        topic: &str,
        handle: &str,
        invisible: Duration,
    ) -> Result<String> {
        user_topic(topic)?;
        self.pop
            .change_invisible(tenant, group, topic, handle, invisible)
            .await
    }
}

/// Tiered storage: the object store, the cold-read runtime, the compactor.
impl Engine {
    /// The object store wrapper: its metrics, and its fault switches in tests.
    pub fn object_store(&self) -> &Objects {
        self.core.object_store()
    }

    /// Runs CPU work for readers (protocol adapters encoding a large read
    /// reply) at low priority: on the cold-read runtime's blocking pool, at
    /// most `cache.cold_read_threads` pieces at once, so consumers neither
    /// hold the async workers nor outweigh them with many lowered threads.
    pub async fn for_readers<F, T>(&self, work: F) -> Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.core.for_readers(work).await
    }

    /// The node's WAL checkpoint: everything below is in object storage.
    pub fn wal_checkpoint(&self) -> u64 {
        self.core.wal_checkpoint()
    }

    /// Durable WAL bytes not yet in object storage.
    pub fn upload_lag_bytes(&self) -> u64 {
        self.core.upload_lag_bytes()
    }

    /// Uploads durable WAL data from the checkpoint on as one object.
    pub async fn upload_once(&self) -> Result<UploadSummary> {
        self.core.upload_once().await
    }

    /// One pass of retention, merging and garbage collection.
    pub async fn maintain(&self) -> Result<MaintenanceSummary> {
        self.core.maintain().await
    }

    /// Expires the ranges retention no longer keeps; returns how many went.
    pub async fn enforce_retention(&self) -> Result<u64> {
        self.core.enforce_retention().await
    }

    /// Rewrites runs of small adjacent ranges, many queues per object;
    /// returns how many queues had a run merged.
    pub async fn merge_small_ranges(&self) -> Result<u64> {
        self.core.merge_small_ranges().await
    }

    /// Deletes objects no committed range references.
    pub async fn collect_garbage(&self) -> Result<u64> {
        self.core.collect_garbage().await
    }
}
