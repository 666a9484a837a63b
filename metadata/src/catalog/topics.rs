//! Topic operations: creation with a never-reused id, lookup, listing, deletion.

use strata_common::TopicId;

use super::{Catalog, CatalogError, MAX_ATTEMPTS, decode, encode, keys};
use super::{NewTopic, TopicRecord};
use crate::store::{Check, MetaError, Txn, TxnOutcome};

impl Catalog {
    /// Creates a topic, allocating its id from the `seq/topic` sequence
    /// (first id 1) in the same transaction, so an id is handed out exactly
    /// once even across deletions and concurrent creators. Retries when
    /// another creator advanced the sequence first. Conditioned on the
    /// tenant ([`super::TenantFence`]): [`CatalogError::TenantNotFound`] if it
    /// was deleted.
    pub async fn create_topic(
        &self,
        tenant: &str,
        name: &str,
        topic: NewTopic,
        now_ms: i64,
    ) -> Result<TopicRecord, CatalogError> {
        let key = keys::topic(tenant, name)?;
        let exists = || CatalogError::TopicAlreadyExists {
            tenant: tenant.to_string(),
            name: name.to_string(),
        };
        for _ in 0..MAX_ATTEMPTS {
            if self.store.get(&key).await?.is_some() {
                return Err(exists());
            }
            let fence = self.tenant_fence(tenant).await?;
            let seq_raw = self.store.get(keys::TOPIC_SEQ).await?;
            let last: TopicId = match &seq_raw {
                Some(raw) => decode(keys::TOPIC_SEQ, raw)?,
                None => 0,
            };
            let id = last.checked_add(1).ok_or_else(|| MetaError::Corrupt {
                key: keys::display(keys::TOPIC_SEQ),
                reason: "topic id sequence exhausted".into(),
            })?;
            let seq_check = match seq_raw {
                Some(value) => Check::ValueEquals {
                    key: keys::TOPIC_SEQ.to_vec(),
                    value,
                },
                None => Check::Absent {
                    key: keys::TOPIC_SEQ.to_vec(),
                },
            };
            let record = TopicRecord {
                id,
                tenant: tenant.to_string(),
                name: name.to_string(),
                queues: topic.queues,
                message_type: topic.message_type,
                retention: topic.retention,
                retention_bytes: topic.retention_bytes,
                created_ms: now_ms,
            };
            let txn = Txn::new()
                .check(Check::Absent { key: key.clone() })
                .check(seq_check)
                .put(keys::TOPIC_SEQ, encode(keys::TOPIC_SEQ, &id)?)
                .put(key.clone(), encode(&key, &record)?)
                .put(keys::topic_id(id), keys::topic_id_value(tenant, name)?);
            let txn = fence.apply(txn, tenant, &format!("topic {id}"))?;
            match self.store.commit(txn).await? {
                TxnOutcome::Committed => {
                    tracing::info!(tenant, name, id, queues = topic.queues, "created topic");
                    return Ok(record);
                }
                TxnOutcome::CheckFailed { index: 0 } => return Err(exists()),
                // The sequence or the tenant changed: read both again.
                TxnOutcome::CheckFailed { .. } => continue,
            }
        }
        Err(CatalogError::Conflict(format!(
            "creating topic {tenant}/{name}: topic id sequence kept changing"
        )))
    }

    /// Moves the topic id sequence to at least `id`, so no topic created
    /// later gets an id up to it; true if it moved. The WAL may hold
    /// records of topics the metadata lost (a damaged journal given up, an
    /// older copy restored): a new topic with such an id would take them
    /// over, another tenant's messages among them.
    pub async fn reserve_topic_ids_through(&self, id: TopicId) -> Result<bool, CatalogError> {
        for _ in 0..MAX_ATTEMPTS {
            let seq_raw = self.store.get(keys::TOPIC_SEQ).await?;
            let last: TopicId = match &seq_raw {
                Some(raw) => decode(keys::TOPIC_SEQ, raw)?,
                None => 0,
            };
            if last >= id {
                return Ok(false);
            }
            let check = match seq_raw {
                Some(value) => Check::ValueEquals {
                    key: keys::TOPIC_SEQ.to_vec(),
                    value,
                },
                None => Check::Absent {
                    key: keys::TOPIC_SEQ.to_vec(),
                },
            };
            let txn = Txn::new()
                .check(check)
                .put(keys::TOPIC_SEQ, encode(keys::TOPIC_SEQ, &id)?);
            if let TxnOutcome::Committed = self.store.commit(txn).await? {
                tracing::warn!(
                    from = last,
                    to = id,
                    "moved the topic id sequence past ids \
                    the WAL holds records of but the metadata does not know"
                );
                return Ok(true);
            }
        }
        Err(CatalogError::Conflict(
            "moving the topic id sequence: it kept changing".into(),
        ))
    }

    /// The topic named `tenant/name`, if it exists.
    pub async fn get_topic(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<TopicRecord>, CatalogError> {
        let key = keys::topic(tenant, name)?;
        Ok(self.get_record(&key).await?.map(|(record, _)| record))
    }

    /// One tenant's topics, sorted by name.
    pub async fn list_topics(&self, tenant: &str) -> Result<Vec<TopicRecord>, CatalogError> {
        Ok(self.scan_records(&keys::topic_prefix(tenant)?).await?)
    }

    /// Every tenant's topics, sorted by (tenant, name).
    pub async fn all_topics(&self) -> Result<Vec<TopicRecord>, CatalogError> {
        Ok(self.scan_records(keys::ALL_TOPICS).await?)
    }

    /// The topic with id `id`, if it still exists.
    pub async fn topic_by_id(&self, id: TopicId) -> Result<Option<TopicRecord>, CatalogError> {
        let index_key = keys::topic_id(id);
        let Some(raw) = self.store.get(&index_key).await? else {
            return Ok(None);
        };
        let corrupt = |reason: &str| MetaError::Corrupt {
            key: keys::display(&index_key),
            reason: reason.to_string(),
        };
        let text = std::str::from_utf8(&raw).map_err(|_| corrupt("not UTF-8"))?;
        let (tenant, name) = text
            .split_once('/')
            .ok_or_else(|| corrupt("expected <tenant>/<name>"))?;
        // The index and the record change in one txn, but check the id anyway
        // so a stale index can never return a different topic.
        Ok(self
            .get_topic(tenant, name)
            .await?
            .filter(|record| record.id == id))
    }

    /// Deletes a topic and its id index entry, returning the deleted record.
    /// The id stays consumed: the sequence never goes back.
    pub async fn delete_topic(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<TopicRecord, CatalogError> {
        let key = keys::topic(tenant, name)?;
        for _ in 0..MAX_ATTEMPTS {
            let Some((record, raw)) = self.get_record::<TopicRecord>(&key).await? else {
                return Err(CatalogError::TopicNotFound {
                    tenant: tenant.to_string(),
                    name: name.to_string(),
                });
            };
            let txn = Txn::new()
                .check(Check::ValueEquals {
                    key: key.clone(),
                    value: raw,
                })
                .delete(key.clone())
                .delete(keys::topic_id(record.id));
            if self.store.commit(txn).await? == TxnOutcome::Committed {
                tracing::info!(tenant, name, id = record.id, "deleted topic");
                return Ok(record);
            }
        }
        Err(CatalogError::Conflict(format!(
            "deleting topic {tenant}/{name}: it kept changing"
        )))
    }
}
