//! Usage records (the bill): per-minute records written by each process,
//! hourly roll-ups, and the markers that say a roll-up is out of date.
//!
//! A minute record holds absolute values for one (tenant, minute, node,
//! process incarnation), so rewriting it is idempotent and two processes
//! never overwrite each other. Every write of a minute record also writes
//! the hour's `usage-dirty/` marker with a fresh flush id; a roll-up sums
//! the hour's minute records and removes the marker only if it still holds
//! the id it read, so a concurrent late write re-triggers the roll-up
//! instead of being lost.

use std::collections::{BTreeMap, BTreeSet};

use strata_common::usage::{HOUR_MS, MinuteUsage, UsageCounts, hour_of};

use super::{Catalog, CatalogError, decode, encode, keys};
use crate::store::{Check, MetaError, Txn, TxnOutcome};

/// Minute records per transaction when flushing.
const FLUSH_TXN_RECORDS: usize = 256;

/// An hour whose roll-up must be (re)computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRollup {
    pub hour_ms: i64,
    pub tenant: String,
    /// The marker's value when it was read.
    pub flush_id: String,
}

/// The minute (milliseconds) at the start of a minute key's suffix.
fn minute_in_key(prefix_len: usize, key: &[u8]) -> Result<i64, MetaError> {
    key.get(prefix_len..prefix_len + 20)
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| MetaError::Corrupt {
            key: keys::display(key),
            reason: "usage key has no 20-digit time".into(),
        })
}

impl Catalog {
    /// Writes `records` as the absolute usage of this `node` and process
    /// `incarnation`, and marks their hours for roll-up with `flush_id`.
    pub async fn put_usage_minutes(
        &self,
        node: &str,
        incarnation: &str,
        flush_id: &str,
        records: &[MinuteUsage],
    ) -> Result<(), CatalogError> {
        for chunk in records.chunks(FLUSH_TXN_RECORDS) {
            let mut txn = Txn::new();
            let mut hours = BTreeSet::new();
            for r in chunk {
                let key = keys::usage_minute(&r.tenant, r.minute_ms, node, incarnation)?;
                txn = txn.put(key.clone(), encode(&key, &r.counts)?);
                hours.insert((hour_of(r.minute_ms), r.tenant.as_str()));
            }
            for (hour, tenant) in hours {
                txn = txn.put(keys::usage_dirty(hour, tenant)?, flush_id.as_bytes());
            }
            self.store.commit(txn).await?;
        }
        Ok(())
    }

    /// Usage of `tenant` per minute in `[start_ms, end_ms)`, summed over
    /// nodes and incarnations. Minutes without usage are absent.
    pub async fn usage_minutes(
        &self,
        tenant: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<BTreeMap<i64, UsageCounts>, CatalogError> {
        let prefix_len = keys::usage_minute_prefix(tenant)?.len();
        let start = keys::usage_minute_from(tenant, start_ms.max(0))?;
        let end = keys::usage_minute_from(tenant, end_ms.max(0))?;
        let mut out: BTreeMap<i64, UsageCounts> = BTreeMap::new();
        for (key, value) in self.scan_between(&start, &end).await? {
            let minute = minute_in_key(prefix_len, &key)?;
            let counts: UsageCounts = decode(&key, &value)?;
            out.entry(minute).or_default().merge(&counts);
        }
        Ok(out)
    }

    /// Stored hour roll-ups of `tenant` in `[start_ms, end_ms)`.
    pub async fn usage_hours(
        &self,
        tenant: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<BTreeMap<i64, UsageCounts>, CatalogError> {
        let prefix_len = keys::usage_hour_prefix(tenant)?.len();
        let start = keys::usage_hour(tenant, hour_of(start_ms.max(0)))?;
        let end = keys::usage_hour(tenant, end_ms.max(0))?;
        let mut out = BTreeMap::new();
        for (key, value) in self.scan_between(&start, &end).await? {
            let hour = minute_in_key(prefix_len, &key)?;
            if hour >= start_ms {
                out.insert(hour, decode(&key, &value)?);
            }
        }
        Ok(out)
    }

    /// Hours before `before_ms` whose roll-up is missing or out of date.
    pub async fn pending_usage_rollups(
        &self,
        before_ms: i64,
    ) -> Result<Vec<UsageRollup>, CatalogError> {
        let prefix = keys::ALL_USAGE_DIRTY;
        let end = keys::usage_dirty(before_ms.max(0), "")?;
        let mut out = Vec::new();
        for (key, value) in self.scan_between(prefix, &end).await? {
            let hour_ms = minute_in_key(prefix.len(), &key)?;
            let tenant = key
                .get(prefix.len() + 21..)
                .and_then(|t| std::str::from_utf8(t).ok())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| MetaError::Corrupt {
                    key: keys::display(&key),
                    reason: "usage marker names no tenant".into(),
                })?;
            out.push(UsageRollup {
                hour_ms,
                tenant: tenant.to_string(),
                flush_id: String::from_utf8_lossy(&value).into_owned(),
            });
        }
        Ok(out)
    }

    /// Tenants with a roll-up still pending for some hour.
    pub async fn tenants_with_pending_usage(&self) -> Result<BTreeSet<String>, CatalogError> {
        Ok(self
            .pending_usage_rollups(i64::MAX)
            .await?
            .into_iter()
            .map(|r| r.tenant)
            .collect())
    }

    /// Recomputes the hour roll-up named by `rollup` from its minute
    /// records. Returns `false` (nothing written) if the marker changed
    /// since it was read: a newer write will be rolled up next time.
    pub async fn roll_up_usage(&self, rollup: &UsageRollup) -> Result<bool, CatalogError> {
        let hour = rollup.hour_ms;
        let minutes = self
            .usage_minutes(&rollup.tenant, hour, hour + HOUR_MS)
            .await?;
        let mut total = UsageCounts::default();
        for counts in minutes.values() {
            total.merge(counts);
        }
        let key = keys::usage_hour(&rollup.tenant, hour)?;
        let marker = keys::usage_dirty(hour, &rollup.tenant)?;
        let txn = Txn::new()
            .check(Check::ValueEquals {
                key: marker.clone(),
                value: rollup.flush_id.as_bytes().to_vec(),
            })
            .put(key.clone(), encode(&key, &total)?)
            .put(keys::usage_prune(hour, &rollup.tenant)?, Vec::new())
            .delete(marker);
        Ok(matches!(
            self.store.commit(txn).await?,
            TxnOutcome::Committed
        ))
    }

    /// Deletes the minute records of rolled-up hours that ended before
    /// `before_ms` (hours with a pending roll-up keep theirs). Returns how
    /// many records were deleted.
    pub async fn prune_usage_minutes(&self, before_ms: i64) -> Result<usize, CatalogError> {
        let prefix = keys::ALL_USAGE_PRUNE;
        // Hours H with H + 1h <= before_ms, i.e. H < hour_of(before_ms) - 1h + 1.
        let last = hour_of(before_ms.max(0)) - HOUR_MS;
        if last < 0 {
            return Ok(0);
        }
        let end = keys::usage_prune(last + 1, "")?;
        let mut deleted = 0;
        for (marker, _) in self.scan_between(prefix, &end).await? {
            let hour = minute_in_key(prefix.len(), &marker)?;
            let Some(tenant) = marker
                .get(prefix.len() + 21..)
                .and_then(|t| std::str::from_utf8(t).ok())
            else {
                continue;
            };
            let start = keys::usage_minute_from(tenant, hour)?;
            let stop = keys::usage_minute_from(tenant, hour + HOUR_MS)?;
            let minutes = self.scan_between(&start, &stop).await?;
            let mut txn = Txn::new()
                .check(Check::Absent {
                    key: keys::usage_dirty(hour, tenant)?,
                })
                .delete(marker.clone());
            let n = minutes.len();
            for (key, _) in minutes {
                txn = txn.delete(key);
            }
            if let TxnOutcome::Committed = self.store.commit(txn).await? {
                deleted += n;
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use strata_common::usage::{Counter, MINUTE_MS};

    use super::*;
    use crate::MemoryStore;

    fn minute(tenant: &str, minute_ms: i64, published: u64) -> MinuteUsage {
        let mut counts = UsageCounts::default();
        counts.add(Counter::PublishedMessages, published);
        counts.add_request("publish");
        MinuteUsage {
            tenant: tenant.into(),
            minute_ms,
            counts,
        }
    }

    const H: i64 = 100 * HOUR_MS;

    #[tokio::test]
    async fn minutes_sum_across_processes_and_rewrites_are_idempotent() {
        let catalog = Catalog::new(MemoryStore::new());
        let a = minute("a", H, 5);
        catalog
            .put_usage_minutes("n1", "i1", "f1", std::slice::from_ref(&a))
            .await
            .unwrap();
        // The same record again (a retried flush) changes nothing.
        catalog
            .put_usage_minutes("n1", "i1", "f2", std::slice::from_ref(&a))
            .await
            .unwrap();
        // Another incarnation (after a restart) adds its own.
        catalog
            .put_usage_minutes("n1", "i2", "f3", &[minute("a", H, 2)])
            .await
            .unwrap();
        catalog
            .put_usage_minutes("n1", "i2", "f3", &[minute("b", H, 9)])
            .await
            .unwrap();
        let got = catalog.usage_minutes("a", H, H + MINUTE_MS).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[&H].published_messages, 7);
        assert_eq!(got[&H].requests["publish"], 2);
        assert!(
            catalog
                .usage_minutes("a", H + MINUTE_MS, H + HOUR_MS)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn rollups_are_recomputed_after_late_writes() {
        let catalog = Catalog::new(MemoryStore::new());
        catalog
            .put_usage_minutes(
                "n1",
                "i1",
                "f1",
                &[minute("a", H, 1), minute("a", H + 59 * MINUTE_MS, 2)],
            )
            .await
            .unwrap();
        let pending = catalog.pending_usage_rollups(H + HOUR_MS).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert!(catalog.pending_usage_rollups(H).await.unwrap().is_empty());
        // A write between reading the marker and rolling up wins: the
        // roll-up is refused and stays pending.
        catalog
            .put_usage_minutes("n2", "i9", "f2", &[minute("a", H, 4)])
            .await
            .unwrap();
        assert!(!catalog.roll_up_usage(&pending[0]).await.unwrap());
        let pending = catalog.pending_usage_rollups(H + HOUR_MS).await.unwrap();
        assert_eq!(pending[0].flush_id, "f2");
        assert!(catalog.roll_up_usage(&pending[0]).await.unwrap());
        let hours = catalog.usage_hours("a", H, H + HOUR_MS).await.unwrap();
        assert_eq!(hours[&H].published_messages, 7);
        assert!(
            catalog
                .pending_usage_rollups(i64::MAX)
                .await
                .unwrap()
                .is_empty()
        );

        // Pruning removes rolled-up minutes only.
        catalog
            .put_usage_minutes("n1", "i1", "f3", &[minute("a", H + HOUR_MS, 1)])
            .await
            .unwrap();
        let deleted = catalog.prune_usage_minutes(H + HOUR_MS - 1).await.unwrap();
        assert_eq!(deleted, 0, "the hour has not ended before the cutoff");
        let deleted = catalog.prune_usage_minutes(H + 3 * HOUR_MS).await.unwrap();
        assert_eq!(deleted, 3);
        assert!(
            catalog
                .usage_minutes("a", H, H + HOUR_MS)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            catalog
                .usage_minutes("a", H + HOUR_MS, H + 2 * HOUR_MS)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn negative_times_are_refused() {
        let catalog = Catalog::new(MemoryStore::new());
        let err = catalog
            .put_usage_minutes("n", "i", "f", &[minute("a", -MINUTE_MS, 1)])
            .await;
        assert!(err.is_err());
    }
}
