//! Delay (scheduled) messages: accepted now, delivered to their topic at a
//! given time, up to [`MAX_DELAY`] ahead, millisecond precision.
//!
//! A delayed message is published (durably, acknowledged) to the tenant's
//! hidden schedule topic [`SCHEDULE_TOPIC`], and a timer key naming its
//! due time and schedule offset is committed to the catalog before the
//! producer gets its answer. One timer task per node sleeps until the
//! earliest due time (no polling), then publishes the message to its
//! topic and deletes the timer. A crash between those two steps delivers
//! the message twice (same message id) — at-least-once, never lost.
//! Timers are reloaded from the catalog at startup.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use strata_common::{ErrorCode, Message};
use strata_metadata::{MessageType, Timer};
use tokio::sync::Notify;

use crate::core::{Billing, Core};
use crate::error::{EngineError, Result};
use crate::types::{PublishMessage, Published};

/// The farthest a delivery time may be ahead.
pub const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);
/// Per-tenant hidden topic holding delayed messages until they are due.
pub const SCHEDULE_TOPIC: &str = "__sys-schedule";
/// When the message is due (Unix ms); kept on the delivered message.
pub const PROP_DELIVER_AT: &str = "__mq.deliver_at_ms";
const PROP_TARGET_TOPIC: &str = "__mq.target_topic";
const PROP_TARGET_QUEUE: &str = "__mq.target_queue";

/// Due timers fired in one pass.
const FIRE_BATCH: usize = 256;

/// Delayed delivery: the timers pending on this node, earliest first, and
/// the task that fires them.
#[derive(Debug)]
pub(crate) struct Delay {
    core: Arc<Core>,
    pending: std::sync::Mutex<BTreeSet<Timer>>,
    changed: Arc<Notify>,
    /// One firing pass at a time, so no timer fires twice.
    firing: tokio::sync::Mutex<()>,
}

impl Delay {
    /// Loads the timers pending in the catalog.
    pub(crate) async fn open(core: Arc<Core>) -> Result<Arc<Self>> {
        let mut timers = core.catalog.all_timers().await?;
        timers.retain(|t| core.serves(&t.tenant));
        let delay = Arc::new(Self {
            core,
            pending: std::sync::Mutex::new(BTreeSet::new()),
            changed: Arc::new(Notify::new()),
            firing: tokio::sync::Mutex::new(()),
        });
        delay.load(timers);
        Ok(delay)
    }

    /// Takes up the pending timers of a tenant this node now serves.
    pub(crate) async fn load_tenant(&self, tenant: &str) -> Result<()> {
        let mut timers = self.core.catalog.all_timers().await?;
        timers.retain(|t| t.tenant == tenant);
        self.load(timers);
        Ok(())
    }

    /// Forgets the timers of a tenant this node no longer serves (they
    /// stay in the catalog for the node that serves it next).
    pub(crate) fn drop_tenant(&self, tenant: &str) {
        self.lock().retain(|t| t.tenant != tenant);
    }

    /// Deletes every timer of a tenant being deleted: what they named goes
    /// with its hidden schedule. The node serving the tenant holds all of
    /// them (loaded when it took the tenant, added as they are made).
    pub(crate) async fn forget_tenant(&self, tenant: &str) -> Result<()> {
        // Not while a firing pass holds some of them.
        let _one_pass = self.firing.lock().await;
        let timers: Vec<Timer> = self
            .lock()
            .iter()
            .filter(|t| t.tenant == tenant)
            .cloned()
            .collect();
        for chunk in timers.chunks(FIRE_BATCH) {
            self.core.catalog.delete_timers(chunk).await?;
        }
        self.drop_tenant(tenant);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<Timer>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn load(&self, timers: Vec<Timer>) {
        self.lock().extend(timers);
        self.changed.notify_one();
    }

    /// Spawns the task that fires due timers until shutdown.
    pub(crate) fn spawn_loop(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let mut shutdown = self.core.shutdown.subscribe();
        let clock = self.core.clock.clone();
        tokio::spawn(async move {
            loop {
                let Some(delay) = weak.upgrade() else { break };
                let wait = match delay.fire_due_timers().await {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(error = %e, "delayed delivery failed; retrying");
                        Some(Duration::from_secs(1))
                    }
                };
                let changed = delay.changed.clone();
                drop(delay);
                tokio::select! {
                    _ = changed.notified() => {}
                    // Bounded, so a clock that jumps is noticed within a minute.
                    _ = clock.sleep(wait.unwrap_or(Duration::from_secs(60)).min(Duration::from_secs(60))) => {}
                    _ = shutdown.wait_for(|down| *down) => break,
                }
            }
        })
    }
}

impl Delay {
    /// Publishes `messages` to a DELAY topic for delivery at
    /// `deliver_at_ms` (Unix ms). A time already past delivers at once.
    pub async fn publish_at(
        self: &Arc<Self>,
        tenant: &str,
        topic: &str,
        messages: Vec<PublishMessage>,
        deliver_at_ms: i64,
    ) -> Result<Vec<Published>> {
        let timed = messages.into_iter().map(|m| (m, deliver_at_ms)).collect();
        self.publish_each_at(tenant, topic, timed).await
    }

    /// Publishes a batch to a DELAY topic, each message for delivery at its
    /// own time (Unix ms); results in the order given. The whole batch is
    /// checked first. Messages already due go to the topic in one append;
    /// the others to the schedule in one append, with their timers in one
    /// metadata commit: a batch costs what one message does.
    pub async fn publish_each_at(
        self: &Arc<Self>,
        tenant: &str,
        topic: &str,
        messages: Vec<(PublishMessage, i64)>,
    ) -> Result<Vec<Published>> {
        let t = self.core.topic(tenant, topic)?;
        if t.record.message_type != MessageType::Delay {
            return Err(EngineError::InvalidArgument(format!(
                "topic {topic:?} accepts {} messages, which carry no delivery time",
                t.record.message_type.as_str()
            )));
        }
        crate::core::publish::check_client_fields(messages.iter().map(|(m, _)| m))?;
        let now = self.core.clock.now_ms();
        let latest = now.saturating_add(MAX_DELAY.as_millis() as i64);
        for (m, at) in &messages {
            if *at < 0 {
                return Err(EngineError::InvalidArgument(format!(
                    "delivery time {at} is before 1970 (Unix milliseconds)"
                )));
            }
            if *at > latest {
                return Err(EngineError::InvalidArgument(format!(
                    "delivery time {at} (Unix milliseconds: {}) is more than {} days after the \
                     server's time ({})",
                    readable_ms(*at),
                    MAX_DELAY.as_secs() / 86_400,
                    strata_common::rfc3339::format_ms(now)
                )));
            }
            if let Some(q) = m.queue {
                t.queue(q)?;
            }
        }
        let count = messages.len();
        let (mut due, mut later) = (Vec::new(), Vec::new());
        for (i, (m, at)) in messages.into_iter().enumerate() {
            if at <= now {
                due.push((i, m));
            } else {
                later.push((i, m, at));
            }
        }
        let mut out: Vec<Option<Published>> = (0..count).map(|_| None).collect();
        if !due.is_empty() {
            let (places, batch): (Vec<usize>, Vec<PublishMessage>) = due.into_iter().unzip();
            let published = self
                .core
                .append(tenant, topic, batch, Billing::Bill)
                .await?;
            for (i, p) in places.into_iter().zip(published) {
                out[i] = Some(p);
            }
        }
        if !later.is_empty() {
            self.core
                .ensure_system_topic(tenant, SCHEDULE_TOPIC)
                .await?;
            let mut places = Vec::with_capacity(later.len());
            let mut times = Vec::with_capacity(later.len());
            let scheduled: Vec<PublishMessage> = later
                .into_iter()
                .map(|(i, mut m, at)| {
                    places.push(i);
                    times.push(at);
                    let props = &mut m.message.properties;
                    props.push((PROP_DELIVER_AT.into(), at.to_string()));
                    props.push((PROP_TARGET_TOPIC.into(), topic.to_string()));
                    if let Some(q) = m.queue {
                        props.push((PROP_TARGET_QUEUE.into(), q.to_string()));
                    }
                    PublishMessage {
                        queue: Some(0),
                        message: m.message,
                    }
                })
                .collect();
            let published = self
                .core
                .append(tenant, SCHEDULE_TOPIC, scheduled, Billing::Bill)
                .await?;
            let timers: Vec<Timer> = published
                .iter()
                .zip(&times)
                .map(|(p, &deliver_at_ms)| Timer {
                    deliver_at_ms,
                    tenant: tenant.to_string(),
                    offset: p.offset,
                    message_id: p.message_id.clone(),
                })
                .collect();
            self.core.catalog.put_timers(&timers).await?;
            self.load(timers);
            for ((i, mut p), at) in places.into_iter().zip(published).zip(times) {
                p.deliver_at_ms = Some(at);
                out[i] = Some(p);
            }
        }
        out.into_iter()
            .map(|p| {
                p.ok_or_else(|| EngineError::Internal("a delayed message was not stored".into()))
            })
            .collect()
    }

    /// Delivers every due delayed message; returns how long until the next
    /// one is due (`None` when none is pending).
    pub async fn fire_due_timers(self: &Arc<Self>) -> Result<Option<Duration>> {
        let _one_pass = self.firing.lock().await;
        loop {
            let now = self.core.clock.now_ms();
            // Everything due fires together: the publishes share WAL group
            // commits and the timer keys go in one transaction.
            let (due, next) = {
                let pending = self.lock();
                let due: Vec<Timer> = pending
                    .iter()
                    .take_while(|t| t.deliver_at_ms <= now)
                    .take(FIRE_BATCH)
                    .cloned()
                    .collect();
                (due, pending.first().map(|t| t.deliver_at_ms))
            };
            if due.is_empty() {
                return Ok(next.map(|at| Duration::from_millis(at.saturating_sub(now) as u64)));
            }
            // The schedule reads run concurrently. Deliveries are grouped
            // per (tenant, topic), one publish per group in due order, so
            // messages due together arrive in the order they were sent;
            // groups go out concurrently and share WAL group commits.
            let prepared =
                futures::future::join_all(due.iter().map(|t| self.prepare_delivery(t))).await;
            let mut done = Vec::new();
            let mut groups: Vec<(String, Vec<(Timer, PublishMessage)>)> = Vec::new();
            let mut group_of: HashMap<(String, String), usize> = HashMap::new();
            for (t, p) in due.into_iter().zip(prepared) {
                match p {
                    Ok(Some((topic, m))) => {
                        let at = *group_of
                            .entry((t.tenant.clone(), topic.clone()))
                            .or_insert_with(|| {
                                groups.push((topic, Vec::new()));
                                groups.len() - 1
                            });
                        groups[at].1.push((t, m));
                    }
                    // Nothing left to deliver: the timer is done.
                    Ok(None) => done.push(t),
                    Err(e) => {
                        tracing::warn!(tenant = %t.tenant, offset = t.offset, error = %e, "delayed delivery failed; will retry");
                    }
                }
            }
            let delivered = futures::future::join_all(
                groups
                    .into_iter()
                    .map(|(topic, run)| async move { self.deliver(&topic, run).await }),
            )
            .await;
            done.extend(delivered.into_iter().flatten());
            if done.is_empty() {
                return Err(EngineError::Internal(
                    "no due delayed message could be delivered".into(),
                ));
            }
            self.core.catalog.delete_timers(&done).await?;
            let mut pending = self.lock();
            for t in &done {
                pending.remove(t);
            }
        }
    }

    /// The message one due timer delivers and its topic; `None` when there
    /// is nothing to deliver any more (logged).
    async fn prepare_delivery(
        self: &Arc<Self>,
        timer: &Timer,
    ) -> Result<Option<(String, PublishMessage)>> {
        let read = match self
            .core
            .read_inner(
                &timer.tenant,
                SCHEDULE_TOPIC,
                0,
                timer.offset,
                1,
                Duration::ZERO,
            )
            .await
        {
            Ok(r) => r
                .messages
                .into_iter()
                .next()
                .filter(|m| m.offset == timer.offset)
                // A schedule topic made again (its tenant deleted and made
                // again) holds other messages at the same offsets.
                .filter(|m| timer.message_id.is_empty() || m.message.id == timer.message_id),
            Err(EngineError::TopicNotFound(_) | EngineError::OffsetOutOfRange { .. }) => None,
            Err(e) => return Err(e),
        };
        let Some(stored) = read else {
            tracing::warn!(tenant = %timer.tenant, offset = timer.offset, "delayed message no longer in the schedule topic; dropped");
            return Ok(None);
        };
        let mut message: Message = stored.message;
        let take = |props: &mut Vec<(String, String)>, name: &str| {
            let at = props.iter().position(|(k, _)| k == name)?;
            Some(props.remove(at).1)
        };
        let Some(topic) = take(&mut message.properties, PROP_TARGET_TOPIC) else {
            tracing::warn!(tenant = %timer.tenant, offset = timer.offset, "schedule entry names no topic; dropped");
            return Ok(None);
        };
        let queue = take(&mut message.properties, PROP_TARGET_QUEUE).and_then(|q| q.parse().ok());
        Ok(Some((topic, PublishMessage { queue, message })))
    }

    /// Publishes `run` (one tenant's due messages for `topic`, in due order)
    /// and returns the timers that are done. When the batch fails, each
    /// message is tried alone, so one bad message holds up no other.
    async fn deliver(
        self: &Arc<Self>,
        topic: &str,
        run: Vec<(Timer, PublishMessage)>,
    ) -> Vec<Timer> {
        let Some(tenant) = run.first().map(|(t, _)| t.tenant.clone()) else {
            return Vec::new();
        };
        let cap = self.core.config.max_batch_messages.max(1);
        if run.len() > cap {
            let mut done = Vec::new();
            let mut rest = run;
            while !rest.is_empty() {
                let tail = rest.split_off(rest.len().min(cap));
                done.extend(Box::pin(self.deliver(topic, rest)).await);
                rest = tail;
            }
            return done;
        }
        let (timers, messages): (Vec<Timer>, Vec<PublishMessage>) = run.into_iter().unzip();
        if timers.len() > 1 {
            // Billed when it was accepted, not again when it is delivered.
            match self
                .core
                .append(&tenant, topic, messages.clone(), Billing::AlreadyBilled)
                .await
            {
                Ok(_) => return timers,
                Err(EngineError::TopicNotFound(_)) => {
                    tracing::warn!(tenant, topic, "delayed messages' topic is gone; dropped");
                    return timers;
                }
                // The node cannot write now (its fence is shut, the WAL is
                // full or failing): one at a time would fail the same way,
                // or store copies of what the batch may have stored.
                Err(e) if matches!(e.code(), ErrorCode::Unavailable | ErrorCode::WalFull) => {
                    tracing::warn!(tenant, topic, error = %e, "delayed delivery failed; will retry");
                    return Vec::new();
                }
                Err(_) => {}
            }
        }
        let mut done = Vec::new();
        for (timer, message) in timers.into_iter().zip(messages) {
            match self
                .core
                .append(&tenant, topic, vec![message], Billing::AlreadyBilled)
                .await
            {
                Ok(_) => done.push(timer),
                Err(EngineError::TopicNotFound(_) | EngineError::QueueNotFound { .. }) => {
                    tracing::warn!(
                        tenant,
                        topic,
                        "delayed message's topic or queue is gone; dropped"
                    );
                    done.push(timer);
                }
                Err(e) => {
                    tracing::warn!(tenant, topic, offset = timer.offset, error = %e, "delayed delivery failed; will retry");
                }
            }
        }
        done
    }
}

/// `ms` as an RFC 3339 time, or past the last year one can show: a time in
/// microseconds, or seconds scaled twice, is far beyond it.
fn readable_ms(ms: i64) -> String {
    // 9999-12-31T23:59:59.999Z
    const LAST: i64 = 253_402_300_799_999;
    match ms {
        ..=LAST => strata_common::rfc3339::format_ms(ms),
        _ => "after the year 9999".into(),
    }
}
