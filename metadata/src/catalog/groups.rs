//! Consumer groups and their committed offsets.

use strata_common::TopicId;

use super::{Catalog, CatalogError, MAX_ATTEMPTS, encode, keys};
use super::{CommittedOffset, GroupRecord, GroupSpec, GroupStamp, RetryPolicy};
use crate::store::{Check, Txn, TxnOutcome};

/// One queue's position in [`Catalog::commit_offsets`], with the check of
/// the queue's owner ([`Catalog::owner_check`]) that fences the commit.
#[derive(Debug, Clone)]
pub struct OffsetCommit {
    pub queue: u32,
    pub offset: u64,
    pub fence: Check,
}

/// A group's record as read, with a check that holds while the group is
/// the one read. A group's record never changes while it exists (its
/// settings are fixed at creation), so the stored bytes name this
/// incarnation; one created again has another random incarnation.
#[derive(Debug, Clone)]
pub struct StoredGroup {
    pub record: GroupRecord,
    pub fence: Check,
}

impl std::ops::Deref for StoredGroup {
    type Target = GroupRecord;

    fn deref(&self) -> &GroupRecord {
        &self.record
    }
}

impl Catalog {
    /// Creates a group, or returns the existing one unchanged (idempotent, so
    /// consumers may call it on every start). Conditioned on the tenant
    /// ([`super::TenantFence`]): [`CatalogError::TenantNotFound`] if it was
    /// deleted.
    pub async fn create_group(
        &self,
        tenant: &str,
        name: &str,
        stamp: GroupStamp,
    ) -> Result<GroupRecord, CatalogError> {
        self.create_group_with(tenant, name, stamp, GroupSpec::default())
            .await
    }

    /// [`Catalog::create_group`] with a retry policy (kept by an existing
    /// group: a group's policy is set when it is created).
    pub async fn create_group_with(
        &self,
        tenant: &str,
        name: &str,
        stamp: GroupStamp,
        spec: GroupSpec,
    ) -> Result<GroupRecord, CatalogError> {
        let key = keys::group(tenant, name)?;
        let record = GroupRecord {
            tenant: tenant.to_string(),
            name: name.to_string(),
            created_ms: stamp.now_ms,
            incarnation: stamp.incarnation,
            retry: spec.retry,
            start: spec.start,
            fifo: spec.fifo,
        };
        let value = encode(&key, &record)?;
        for _ in 0..MAX_ATTEMPTS {
            if let Some((existing, _)) = self.get_record::<GroupRecord>(&key).await? {
                return Ok(existing);
            }
            let fence = self.tenant_fence(tenant).await?;
            let txn = Txn::new()
                .check(Check::Absent { key: key.clone() })
                .put(key.clone(), value.clone());
            let created = format!("group {name} {:016x}", stamp.incarnation);
            let txn = fence.apply(txn, tenant, &created)?;
            if self.store.commit(txn).await? == TxnOutcome::Committed {
                tracing::info!(tenant, name, "created consumer group");
                return Ok(record);
            }
            // Someone created it first (the next read returns theirs), or
            // the tenant changed (the next fence reads it again).
        }
        Err(CatalogError::Conflict(format!(
            "creating group {tenant}/{name}: it kept changing"
        )))
    }

    /// The group `tenant/name`, if it exists.
    pub async fn get_group(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<GroupRecord>, CatalogError> {
        let key = keys::group(tenant, name)?;
        Ok(self.get_record(&key).await?.map(|(record, _)| record))
    }

    /// The group's record with the check that it is still this group:
    /// not deleted, nor deleted and created again under the same name.
    pub async fn get_group_stored(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<StoredGroup>, CatalogError> {
        let key = keys::group(tenant, name)?;
        Ok(self
            .get_record(&key)
            .await?
            .map(|(record, raw)| StoredGroup {
                record,
                fence: Check::ValueEquals { key, value: raw },
            }))
    }

    /// One tenant's groups, sorted by name.
    pub async fn list_groups(&self, tenant: &str) -> Result<Vec<GroupRecord>, CatalogError> {
        Ok(self.scan_records(&keys::group_prefix(tenant)?).await?)
    }

    /// Deletes a group and all its committed offsets, returning the record.
    ///
    /// The offsets are listed before the delete commits, so an offset
    /// committed in between would survive it; a second pass removes such
    /// leftovers as long as the group is still absent (an offset commit after
    /// the delete re-creates the group, and then its offsets belong to it).
    pub async fn delete_group(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<GroupRecord, CatalogError> {
        let key = keys::group(tenant, name)?;
        let offsets = keys::offset_prefix(tenant, name)?;
        for _ in 0..MAX_ATTEMPTS {
            let Some((record, raw)) = self.get_record::<GroupRecord>(&key).await? else {
                return Err(CatalogError::GroupNotFound {
                    tenant: tenant.to_string(),
                    name: name.to_string(),
                });
            };
            let mut txn = Txn::new()
                .check(Check::ValueEquals {
                    key: key.clone(),
                    value: raw,
                })
                .delete(key.clone());
            for (offset_key, _) in self.scan_all(&offsets).await? {
                txn = txn.delete(offset_key);
            }
            if self.store.commit(txn).await? == TxnOutcome::Committed {
                self.remove_orphan_offsets(&key, &offsets).await?;
                tracing::info!(tenant, name, "deleted consumer group");
                return Ok(record);
            }
        }
        Err(CatalogError::Conflict(format!(
            "deleting group {tenant}/{name}: it kept changing"
        )))
    }

    /// Deletes offsets under `offsets` if the group at `group_key` is absent.
    async fn remove_orphan_offsets(
        &self,
        group_key: &[u8],
        offsets: &[u8],
    ) -> Result<(), CatalogError> {
        let leftovers = self.scan_all(offsets).await?;
        if leftovers.is_empty() {
            return Ok(());
        }
        let mut txn = Txn::new().check(Check::Absent {
            key: group_key.to_vec(),
        });
        for (offset_key, _) in leftovers {
            txn = txn.delete(offset_key);
        }
        // CheckFailed means the group was re-created: its offsets are live.
        self.store.commit(txn).await?;
        Ok(())
    }

    /// Records a group's position in one queue, creating the group in the
    /// same transaction if it does not exist yet. `fence` is the queue
    /// owner's check ([`Catalog::owner_check`]): `Ok(false)` when it failed
    /// (the queue was claimed by another node since) and nothing was written.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_offset(
        &self,
        tenant: &str,
        group: &str,
        topic_id: TopicId,
        queue: u32,
        offset: u64,
        stamp: GroupStamp,
        fence: Check,
    ) -> Result<bool, CatalogError> {
        let one = [OffsetCommit {
            queue,
            offset,
            fence,
        }];
        self.commit_offsets(tenant, group, topic_id, &one, stamp)
            .await
    }

    /// Records a group's positions in several queues of one topic at once
    /// (all or none), creating the group in the same transaction if it does
    /// not exist yet. `Ok(false)` when a queue owner's check failed and
    /// nothing was written.
    pub async fn commit_offsets(
        &self,
        tenant: &str,
        group: &str,
        topic_id: TopicId,
        commits: &[OffsetCommit],
        stamp: GroupStamp,
    ) -> Result<bool, CatalogError> {
        let now_ms = stamp.now_ms;
        let group_key = keys::group(tenant, group)?;
        let mut puts = Vec::with_capacity(commits.len());
        for c in commits {
            puts.push(offset_put(tenant, group, topic_id, c, now_ms)?);
        }
        for _ in 0..MAX_ATTEMPTS {
            let exists = self.store.get(&group_key).await?.is_some();
            let mut txn = if exists {
                Txn::new().check(Check::Present {
                    key: group_key.clone(),
                })
            } else {
                let record = GroupRecord {
                    tenant: tenant.to_string(),
                    name: group.to_string(),
                    created_ms: now_ms,
                    incarnation: stamp.incarnation,
                    retry: RetryPolicy::DEFAULT,
                    start: GroupSpec::default().start,
                    fifo: GroupSpec::default().fifo,
                };
                Txn::new()
                    .check(Check::Absent {
                        key: group_key.clone(),
                    })
                    .put(group_key.clone(), encode(&group_key, &record)?)
            };
            for c in commits {
                txn = txn.check(c.fence.clone());
            }
            for (key, value) in &puts {
                txn = txn.put(key.clone(), value.clone());
            }
            match self.store.commit(txn).await? {
                TxnOutcome::Committed => return Ok(true),
                // The group's check is the first; the owners' follow.
                TxnOutcome::CheckFailed { index: 0 } => {}
                TxnOutcome::CheckFailed { .. } => return Ok(false),
            }
        }
        Err(CatalogError::Conflict(format!(
            "committing offsets for group {tenant}/{group}: the group kept changing"
        )))
    }

    /// The group's committed position in one queue, if any.
    pub async fn get_offset(
        &self,
        tenant: &str,
        group: &str,
        topic_id: TopicId,
        queue: u32,
    ) -> Result<Option<CommittedOffset>, CatalogError> {
        let key = keys::offset(tenant, group, topic_id, queue)?;
        Ok(self.get_record(&key).await?.map(|(record, _)| record))
    }

    /// All of a group's committed offsets, sorted by (topic id, queue).
    pub async fn list_offsets(
        &self,
        tenant: &str,
        group: &str,
    ) -> Result<Vec<CommittedOffset>, CatalogError> {
        Ok(self
            .scan_records(&keys::offset_prefix(tenant, group)?)
            .await?)
    }
}

/// The key and value that record `commit` as the group's offset.
pub(super) fn offset_put(
    tenant: &str,
    group: &str,
    topic_id: TopicId,
    commit: &OffsetCommit,
    now_ms: i64,
) -> Result<(Vec<u8>, Vec<u8>), CatalogError> {
    let key = keys::offset(tenant, group, topic_id, commit.queue)?;
    let value = encode(
        &key,
        &CommittedOffset {
            topic_id,
            queue: commit.queue,
            offset: commit.offset,
            updated_ms: now_ms,
        },
    )?;
    Ok((key, value))
}
