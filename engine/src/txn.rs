//! Transactional messages: a producer sends a *half* message, which no
//! consumer sees, then commits it (it enters its topic) or rolls it back
//! (it is discarded). If the producer says nothing, the server asks it —
//! a check-back — first after [`FIRST_CHECK_DELAY`], then with doubling
//! intervals up to [`MAX_CHECK_INTERVAL`]; after [`MAX_CHECKS`] unanswered
//! checks the transaction is rolled back and the half message discarded.
//! (Those are the defaults; `EngineConfig` sets all three.)
//!
//! Half messages are stored (durably) in the tenant's hidden topic
//! [`HALF_TOPIC`]; each open transaction is a catalog record. A commit
//! publishes before it removes the record, so a crash in between can only
//! lead to a second commit after the next check (at-least-once).

use std::sync::Arc;
use std::time::Duration;

use strata_common::StoredMessage;
use strata_metadata::{HalfRecord, MessageType};

use crate::core::Billing;
use crate::core::Core;
use crate::error::{EngineError, Result};
use crate::types::{PublishMessage, Published};

/// Per-tenant hidden topic holding half messages.
pub const HALF_TOPIC: &str = "__sys-half";
pub use crate::types::{FIRST_CHECK_DELAY, MAX_CHECK_INTERVAL, MAX_CHECKS};
const PROP_TARGET_TOPIC: &str = "__mq.txn_topic";
const PROP_TARGET_QUEUE: &str = "__mq.txn_queue";

/// An open transaction whose producer should be asked about it now.
#[derive(Debug, Clone)]
pub struct DueCheck {
    pub record: HalfRecord,
    /// The half message as the producer sent it.
    pub message: StoredMessage,
}

fn strip(props: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let at = props.iter().position(|(k, _)| k == name)?;
    Some(props.remove(at).1)
}

/// Transactions: half messages, commits and rollbacks, check-backs. Its
/// state is all in the catalog.
#[derive(Debug)]
pub(crate) struct Txn {
    core: Arc<Core>,
}

impl Txn {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Ends every open transaction of a tenant being deleted: their half
    /// messages are gone with its hidden half topic.
    pub(crate) async fn forget_tenant(&self, tenant: &str) -> Result<()> {
        for mut record in self.core.catalog.tenant_halves(tenant).await? {
            // A check-back noted meanwhile changes the record: end the new one.
            for _ in 0..3 {
                if self.core.catalog.end_half(&record).await? {
                    break;
                }
                match self
                    .core
                    .catalog
                    .get_half(tenant, &record.transaction_id)
                    .await?
                {
                    Some(now) => record = now,
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// Stores a half message for `topic` (a TRANSACTION topic) and opens a
    /// transaction; returns where the half message is and the transaction id.
    pub async fn publish_half(
        &self,
        tenant: &str,
        topic: &str,
        message: PublishMessage,
    ) -> Result<(Published, String)> {
        self.publish_halves(tenant, topic, vec![message])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| EngineError::Internal("half message not stored".into()))
    }

    /// [`Txn::publish_half`] for a batch: one WAL append for all the half
    /// messages and one metadata commit for all their transactions, so a
    /// batch costs what one message does. In the order given.
    pub async fn publish_halves(
        &self,
        tenant: &str,
        topic: &str,
        mut messages: Vec<PublishMessage>,
    ) -> Result<Vec<(Published, String)>> {
        let t = self.core.topic(tenant, topic)?;
        if t.record.message_type != MessageType::Transaction {
            return Err(EngineError::InvalidArgument(format!(
                "topic {topic:?} accepts {} messages, not transactional ones",
                t.record.message_type.as_str()
            )));
        }
        crate::core::publish::check_client_fields(&messages)?;
        for m in &messages {
            if let Some(q) = m.queue {
                t.queue(q)?;
            }
        }
        self.core.ensure_system_topic(tenant, HALF_TOPIC).await?;
        for message in &mut messages {
            let props = &mut message.message.properties;
            props.push((PROP_TARGET_TOPIC.into(), topic.to_string()));
            if let Some(q) = message.queue {
                props.push((PROP_TARGET_QUEUE.into(), q.to_string()));
            }
            message.queue = Some(0);
        }
        let count = messages.len();
        let published = self
            .core
            .append(tenant, HALF_TOPIC, messages, Billing::Bill)
            .await?;
        if published.len() != count {
            return Err(EngineError::Internal(format!(
                "{count} half messages sent, {} stored",
                published.len()
            )));
        }
        let now = self.core.clock.now_ms();
        let first_check = now + self.core.config.txn_first_check_delay.as_millis() as i64;
        let mut halves = Vec::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        for p in published {
            let transaction_id = format!(
                "{:016x}{:016x}",
                self.core.clock.random_u64(),
                self.core.clock.random_u64()
            );
            halves.push(HalfRecord {
                tenant: tenant.to_string(),
                transaction_id: transaction_id.clone(),
                message_id: p.message_id.clone(),
                topic: topic.to_string(),
                half_offset: p.offset,
                created_ms: now,
                checks: 0,
                next_check_ms: first_check,
            });
            out.push((p, transaction_id));
        }
        self.core.catalog.put_halves(&halves).await?;
        Ok(out)
    }

    /// Commits (the message enters its topic) or rolls back an open
    /// transaction of `topic` (holding `message_id`, when one is given).
    pub async fn end_transaction(
        &self,
        tenant: &str,
        topic: &str,
        transaction_id: &str,
        message_id: Option<&str>,
        commit: bool,
    ) -> Result<()> {
        // Ids this server hands out are hex; anything else names nothing
        // (and must not reach a metadata key).
        let well_formed = (1..=64).contains(&transaction_id.len())
            && transaction_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            return Err(EngineError::InvalidTransaction(format!(
                "{transaction_id:?} is not a transaction id (1-64 of [A-Za-z0-9_-])"
            )));
        }
        let record = self
            .core.catalog
            .get_half(tenant, transaction_id)
            .await?
            .filter(|r| r.topic == topic)
            .ok_or_else(|| {
                EngineError::InvalidTransaction(format!(
                    "no open transaction {transaction_id:?} on topic {topic:?} (ended already, rolled back after unanswered checks, or never opened)"
                ))
            })?;
        if let Some(id) = message_id.filter(|id| *id != record.message_id) {
            return Err(EngineError::InvalidTransaction(format!(
                "transaction {transaction_id:?} holds message {:?}, not {id:?}",
                record.message_id
            )));
        }
        if commit {
            self.deliver_half(&record).await?;
        }
        // A check-back noted meanwhile (a producer often answers the check
        // it was just sent) only moved the record's counters: end the
        // record as it is now. Gone means someone else ended it.
        let mut current = record;
        while !self.core.catalog.end_half(&current).await? {
            current = self
                .core
                .catalog
                .get_half(tenant, transaction_id)
                .await?
                .filter(|r| r.topic == topic && r.half_offset == current.half_offset)
                .ok_or_else(|| {
                    EngineError::InvalidTransaction(format!(
                        "transaction {transaction_id:?} ended concurrently"
                    ))
                })?;
        }
        tracing::debug!(tenant, topic, transaction_id, commit, "transaction ended");
        Ok(())
    }

    async fn deliver_half(&self, record: &HalfRecord) -> Result<()> {
        let Some(stored) = self.half_message(record).await? else {
            return Err(EngineError::InvalidTransaction(format!(
                "the half message of transaction {:?} is no longer stored (its retention passed, or its tenant was deleted)",
                record.transaction_id
            )));
        };
        let mut message = stored.message;
        strip(&mut message.properties, PROP_TARGET_TOPIC);
        let queue = strip(&mut message.properties, PROP_TARGET_QUEUE).and_then(|q| q.parse().ok());
        // Billed when the half message was sent.
        self.core
            .append(
                &record.tenant,
                &record.topic,
                vec![PublishMessage { queue, message }],
                Billing::AlreadyBilled,
            )
            .await?;
        Ok(())
    }

    async fn half_message(&self, record: &HalfRecord) -> Result<Option<StoredMessage>> {
        match self
            .core
            .read_inner(
                &record.tenant,
                HALF_TOPIC,
                0,
                record.half_offset,
                1,
                Duration::ZERO,
            )
            .await
        {
            Ok(r) => Ok(r
                .messages
                .into_iter()
                .next()
                // The id too: a half topic made again holds other
                // transactions' messages at the same offsets.
                .filter(|m| m.offset == record.half_offset && m.message.id == record.message_id)),
            Err(EngineError::TopicNotFound(_) | EngineError::OffsetOutOfRange { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The open transactions of `topic` (which must exist), oldest first:
    /// what a producer without a check-back channel (HTTP) resolves after
    /// it restarts.
    pub async fn open_transactions(&self, tenant: &str, topic: &str) -> Result<Vec<HalfRecord>> {
        self.core.topic(tenant, topic)?;
        let mut open: Vec<HalfRecord> = self
            .core
            .catalog
            .tenant_halves(tenant)
            .await?
            .into_iter()
            .filter(|h| h.topic == topic)
            .collect();
        open.sort_by(|a, b| {
            (a.created_ms, &a.transaction_id).cmp(&(b.created_ms, &b.transaction_id))
        });
        Ok(open)
    }

    /// Open transactions whose producer should be asked now. One whose
    /// last check went unanswered for its whole interval is rolled back
    /// here instead (so the answer to the last check is still taken).
    pub async fn due_transaction_checks(&self) -> Result<Vec<DueCheck>> {
        let now = self.core.clock.now_ms();
        let max_checks = self.core.config.txn_max_checks.max(1);
        let mut out = Vec::new();
        for record in self.core.catalog.all_halves().await? {
            // Another node's tenant (cluster mode): that node asks.
            if record.next_check_ms > now || !self.core.serves(&record.tenant) {
                continue;
            }
            if record.checks >= max_checks {
                if self.core.catalog.end_half(&record).await? {
                    tracing::warn!(
                        tenant = %record.tenant,
                        topic = %record.topic,
                        transaction_id = %record.transaction_id,
                        checks = record.checks,
                        "transaction unresolved after the maximum check-backs; rolled back"
                    );
                }
                continue;
            }
            match self.half_message(&record).await? {
                Some(message) => out.push(DueCheck { record, message }),
                None => {
                    self.core.catalog.end_half(&record).await?;
                }
            }
        }
        Ok(out)
    }

    /// Records that a check-back for `record` was sent (or could not be:
    /// no producer connected) and when the next is due. Returns true when
    /// that was the last one: unanswered until then, the transaction is
    /// rolled back when the next would be due.
    pub async fn note_transaction_check(&self, record: &HalfRecord) -> Result<bool> {
        let max_checks = self.core.config.txn_max_checks.max(1);
        let backoff = self
            .core
            .config
            .txn_first_check_delay
            .saturating_mul(1 << record.checks.min(16))
            .min(self.core.config.txn_max_check_interval);
        let next = HalfRecord {
            checks: record.checks + 1,
            next_check_ms: self.core.clock.now_ms() + backoff.as_millis() as i64,
            ..record.clone()
        };
        self.core.catalog.update_half(record, &next).await?;
        Ok(next.checks >= max_checks)
    }
}
