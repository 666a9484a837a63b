//! The usage ledger: turns a node's in-memory [`Meter`] into durable usage
//! records in the catalog, rolls minutes up into hours, and answers usage
//! queries.
//!
//! # Exactness and what a crash can lose
//!
//! Each flush writes, per (tenant, minute), the absolute counts this process
//! has for that minute, under a key naming the node and this process's
//! random *incarnation*. Rewriting a minute therefore replaces rather than
//! adds, and a restarted process writes under a new key: nothing is ever
//! counted twice. A minute's value becomes final once the meter seals it
//! (the first flush after the minute ends). A graceful shutdown flushes
//! everything; if that last flush fails (the metadata store unreachable),
//! the node keeps what it holds as [`UnflushedUsage`] in its data directory
//! and a later start, or the node adopting that directory, writes it under
//! the same node and incarnation. A crash (SIGKILL, power loss) loses what
//! was counted since the last successful flush: at most one flush interval
//! of the node's usage, never more, and never anything already written.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use strata_common::Clock;
use strata_common::usage::{HOUR_MS, MINUTE_MS, Meter, MinuteUsage, UsageCounts, hour_of};
use strata_metadata::Catalog;

use crate::error::TenancyError;

/// Most buckets one usage query may return.
pub const MAX_USAGE_BUCKETS: i64 = 10_000;

/// One day in milliseconds.
const DAY_MS: i64 = 24 * HOUR_MS;

/// The bucket size of a usage query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Minute,
    Hour,
    Day,
}

impl Granularity {
    pub fn millis(self) -> i64 {
        match self {
            Granularity::Minute => MINUTE_MS,
            Granularity::Hour => HOUR_MS,
            Granularity::Day => DAY_MS,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }

    pub fn parse(s: &str) -> Result<Self, TenancyError> {
        match s {
            "minute" => Ok(Granularity::Minute),
            "hour" => Ok(Granularity::Hour),
            "day" => Ok(Granularity::Day),
            other => Err(TenancyError::InvalidArgument(format!(
                "granularity {other:?} is not one of \"minute\", \"hour\", \"day\""
            ))),
        }
    }

    /// The start of the bucket holding `ms`.
    pub fn floor(self, ms: i64) -> i64 {
        ms.div_euclid(self.millis()) * self.millis()
    }
}

/// Usage of one tenant in one bucket `[start_ms, start_ms + granularity)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageBucket {
    pub start_ms: i64,
    pub counts: UsageCounts,
}

/// What one flush wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushSummary {
    /// (tenant, minute) records written.
    pub records: usize,
    /// Of those, minutes now final.
    pub sealed: usize,
}

/// Usage a process could not write when it stopped: its absolute minute
/// values, written later under the same node and incarnation, so writing
/// them twice (or after part of them was written) changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnflushedUsage {
    pub node: String,
    pub incarnation: String,
    pub records: Vec<MinuteUsage>,
}

/// Sealed minutes taken from the meter by a flush, put back when the flush
/// ends without writing them (failed, or dropped mid-write).
struct Unwritten<'a> {
    meter: &'a Meter,
    sealed: Option<Vec<MinuteUsage>>,
}

impl Drop for Unwritten<'_> {
    fn drop(&mut self) {
        if let Some(sealed) = self.sealed.take() {
            self.meter.restore(sealed);
        }
    }
}

/// Writes this node's usage records and reads everyone's.
#[derive(Debug)]
pub struct UsageLedger {
    catalog: Catalog,
    meter: Arc<Meter>,
    clock: Arc<dyn Clock>,
    node: String,
    incarnation: String,
    flushes: AtomicU64,
    /// One flush at a time, so an older snapshot never overwrites a newer one.
    flush_lock: tokio::sync::Mutex<()>,
}

impl UsageLedger {
    /// A ledger for `meter` on `node`, with a fresh incarnation id.
    pub fn new(catalog: Catalog, meter: Arc<Meter>, clock: Arc<dyn Clock>, node: &str) -> Self {
        let incarnation = format!("{:016x}", clock.random_u64());
        Self {
            catalog,
            meter,
            clock,
            node: node.to_string(),
            incarnation,
            flushes: AtomicU64::new(0),
            flush_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn meter(&self) -> &Arc<Meter> {
        &self.meter
    }

    /// Writes every minute the meter holds. On failure the sealed minutes go
    /// back into the meter, so the next flush writes them.
    pub async fn flush(&self) -> Result<FlushSummary, TenancyError> {
        let _one = self.flush_lock.lock().await;
        let snapshot = self.meter.snapshot();
        let sealed = snapshot.sealed.len();
        let records: Vec<_> = snapshot
            .sealed
            .iter()
            .chain(&snapshot.open)
            .filter(|m| !m.counts.is_empty())
            .cloned()
            .collect();
        // A flush dropped before its write answered (its task aborted by a
        // stop while the metadata store hung) hands the sealed minutes back
        // too: they had left the meter, and the stop's own flush then lost
        // them. Written twice, absolute values count once.
        let mut unwritten = Unwritten {
            meter: &self.meter,
            sealed: Some(snapshot.sealed),
        };
        if records.is_empty() {
            unwritten.sealed = None;
            return Ok(FlushSummary::default());
        }
        let flush_id = format!(
            "{}-{}",
            self.incarnation,
            self.flushes.fetch_add(1, Ordering::Relaxed)
        );
        match self
            .catalog
            .put_usage_minutes(&self.node, &self.incarnation, &flush_id, &records)
            .await
        {
            Ok(()) => {
                unwritten.sealed = None;
                Ok(FlushSummary {
                    records: records.len(),
                    sealed,
                })
            }
            // `unwritten` hands the sealed minutes back as it drops.
            Err(e) => Err(e.into()),
        }
    }

    /// Everything the meter holds, to keep when the last flush failed.
    pub fn unflushed(&self) -> UnflushedUsage {
        let snapshot = self.meter.snapshot();
        let records = snapshot
            .sealed
            .into_iter()
            .chain(snapshot.open)
            .filter(|m| !m.counts.is_empty())
            .collect();
        UnflushedUsage {
            node: self.node.clone(),
            incarnation: self.incarnation.clone(),
            records,
        }
    }

    /// Writes usage an earlier process could not ([`UsageLedger::unflushed`]).
    pub async fn write_unflushed(&self, left: &UnflushedUsage) -> Result<(), TenancyError> {
        // Marks the hours for a new roll-up, as any flush does.
        let flush_id = format!("{}-written-by-{}", left.incarnation, self.incarnation);
        self.catalog
            .put_usage_minutes(&left.node, &left.incarnation, &flush_id, &left.records)
            .await?;
        Ok(())
    }

    /// Rolls up every hour that ended at least `grace_ms` ago and changed
    /// since its last roll-up, then deletes minute records older than
    /// `minute_retention_ms` in rolled-up hours. Returns hours rolled up.
    pub async fn roll_up(
        &self,
        grace_ms: i64,
        minute_retention_ms: i64,
    ) -> Result<usize, TenancyError> {
        let now = self.clock.now_ms();
        let before = hour_of(now.saturating_sub(grace_ms));
        let mut rolled = 0;
        for pending in self.catalog.pending_usage_rollups(before).await? {
            if self.catalog.roll_up_usage(&pending).await? {
                rolled += 1;
            }
        }
        let cutoff = now.saturating_sub(minute_retention_ms);
        self.catalog.prune_usage_minutes(cutoff).await?;
        Ok(rolled)
    }

    /// Usage of `tenant` in `[start_ms, end_ms)` (start rounded down to the
    /// granularity), one bucket per interval that had any usage, oldest
    /// first.
    pub async fn query(
        &self,
        tenant: &str,
        start_ms: i64,
        end_ms: i64,
        granularity: Granularity,
    ) -> Result<Vec<UsageBucket>, TenancyError> {
        let start = check_range(start_ms, end_ms, granularity)?;
        let by_start = match granularity {
            Granularity::Minute => self.catalog.usage_minutes(tenant, start, end_ms).await?,
            Granularity::Hour => self.hours(tenant, start, end_ms).await?,
            Granularity::Day => {
                let mut days: BTreeMap<i64, UsageCounts> = BTreeMap::new();
                for (hour, counts) in self.hours(tenant, start, end_ms).await? {
                    days.entry(granularity.floor(hour))
                        .or_default()
                        .merge(&counts);
                }
                days
            }
        };
        Ok(by_start
            .into_iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|(start_ms, counts)| UsageBucket { start_ms, counts })
            .collect())
    }

    /// [`query`](Self::query) for the tenant of that name that lived from
    /// `since_ms` (its creation) until `until_ms` (its deletion, if it was
    /// deleted): usage from before its creation minute is an earlier
    /// tenant's of the same name, usage after its deletion minute a later
    /// one's. A bucket holding the creation or the deletion is summed from
    /// the minute records within the tenant's life (pruned ones, older
    /// than `metering.minute_retention`, count as none).
    pub async fn query_since(
        &self,
        tenant: &str,
        since_ms: i64,
        until_ms: Option<i64>,
        start_ms: i64,
        end_ms: i64,
        granularity: Granularity,
    ) -> Result<Vec<UsageBucket>, TenancyError> {
        check_range(start_ms, end_ms, granularity)?;
        let minute = Granularity::Minute;
        let since = minute.floor(since_ms.max(0));
        // The end of the deletion minute, when it cuts the range short.
        let cut = until_ms
            .map(|until| minute.floor(until) + MINUTE_MS)
            .filter(|&cut| cut < end_ms);
        let end = cut.unwrap_or(end_ms);
        if end <= since || end <= start_ms {
            return Ok(Vec::new());
        }
        let mut buckets = self
            .query(tenant, start_ms.max(since), end, granularity)
            .await?;
        let g = granularity.millis();
        let mut edges = Vec::new();
        if granularity.floor(since) < since {
            edges.push(granularity.floor(since));
        }
        if let Some(cut) = cut.filter(|&cut| granularity.floor(cut) < cut) {
            edges.push(granularity.floor(cut));
        }
        edges.dedup();
        for bucket_start in edges {
            let Some(bucket) = buckets.iter_mut().find(|b| b.start_ms == bucket_start) else {
                continue;
            };
            let from = bucket_start.max(since);
            let to = (bucket_start + g).min(cut.unwrap_or(i64::MAX));
            let mut counts = UsageCounts::default();
            for (_, m) in self.catalog.usage_minutes(tenant, from, to).await? {
                counts.merge(&m);
            }
            bucket.counts = counts;
        }
        buckets.retain(|b| !b.counts.is_empty());
        Ok(buckets)
    }

    /// Per-hour usage: the stored roll-up where it is current, otherwise
    /// the sum of the hour's minute records.
    async fn hours(
        &self,
        tenant: &str,
        start: i64,
        end: i64,
    ) -> Result<BTreeMap<i64, UsageCounts>, TenancyError> {
        let pending: Vec<i64> = self
            .catalog
            .pending_usage_rollups(i64::MAX)
            .await?
            .into_iter()
            .filter(|r| r.tenant == tenant)
            .map(|r| r.hour_ms)
            .collect();
        let mut out = self.catalog.usage_hours(tenant, start, end).await?;
        out.retain(|hour, _| !pending.contains(hour));
        let mut from_minutes: BTreeMap<i64, UsageCounts> = BTreeMap::new();
        for (minute, counts) in self.catalog.usage_minutes(tenant, start, end).await? {
            let hour = hour_of(minute);
            if !out.contains_key(&hour) {
                from_minutes.entry(hour).or_default().merge(&counts);
            }
        }
        out.extend(from_minutes);
        Ok(out)
    }
}

/// The start of the first bucket of `[start_ms, end_ms)`, if the range
/// is not empty and holds at most [`MAX_USAGE_BUCKETS`] buckets.
fn check_range(start_ms: i64, end_ms: i64, granularity: Granularity) -> Result<i64, TenancyError> {
    if end_ms <= start_ms {
        return Err(TenancyError::InvalidArgument(format!(
            "end ({end_ms}) must be after start ({start_ms})"
        )));
    }
    let start = granularity.floor(start_ms.max(0));
    let g = granularity.millis();
    let buckets = (end_ms - start + g - 1) / g;
    if buckets > MAX_USAGE_BUCKETS {
        return Err(TenancyError::InvalidArgument(format!(
            "the range holds {buckets} {} buckets; at most {MAX_USAGE_BUCKETS} per query",
            granularity.as_str()
        )));
    }
    Ok(start)
}

#[cfg(test)]
mod tests {
    use strata_common::ManualClock;
    use strata_common::usage::{Counter, StoredBytes};
    use strata_metadata::MemoryStore;

    use super::*;

    const T0: i64 = 1_000 * HOUR_MS;

    fn ledger(clock: &Arc<ManualClock>, catalog: &Catalog) -> UsageLedger {
        let meter = Arc::new(Meter::new(clock.clone()));
        UsageLedger::new(catalog.clone(), meter, clock.clone(), "node-1")
    }

    async fn total(l: &UsageLedger, tenant: &str, g: Granularity) -> UsageCounts {
        let mut sum = UsageCounts::default();
        for b in l
            .query(tenant, T0 - HOUR_MS, T0 + 100 * HOUR_MS, g)
            .await
            .unwrap()
        {
            sum.merge(&b.counts);
        }
        sum
    }

    /// Commits wait until `hung` is cleared, telling `entered` first.
    #[derive(Debug, Default)]
    struct Hang {
        hung: std::sync::atomic::AtomicBool,
        entered: tokio::sync::Notify,
        released: tokio::sync::Notify,
    }

    #[async_trait::async_trait]
    impl strata_metadata::CommitHook for Hang {
        async fn before_commit(
            &self,
            _: &Arc<dyn strata_metadata::MetaStore>,
            _: &strata_metadata::Txn,
        ) -> Result<(), strata_metadata::MetaError> {
            if self.hung.load(Ordering::SeqCst) {
                self.entered.notify_one();
                self.released.notified().await;
            }
            Ok(())
        }
    }

    /// A stop aborts the periodic flush while the metadata store hangs; the
    /// minutes it had sealed must still reach the stop's own flush (a
    /// black-box run lost a whole minute of a tenant's usage this way).
    #[tokio::test]
    async fn a_flush_dropped_mid_write_hands_its_minutes_back() {
        let clock = ManualClock::new(T0, 7);
        let store = strata_metadata::HookedStore::new(MemoryStore::new(), Hang::default());
        let catalog = Catalog::new(store.clone());
        let l = Arc::new(ledger(&clock, &catalog));
        l.meter().add("a", Counter::PublishedMessages, 200);
        clock.advance_ms(MINUTE_MS);
        l.meter().add("a", Counter::PublishedMessages, 3);
        store.hook().hung.store(true, Ordering::SeqCst);
        let flushing = tokio::spawn({
            let l = l.clone();
            async move { l.flush().await }
        });
        store.hook().entered.notified().await;
        flushing.abort();
        assert!(flushing.await.unwrap_err().is_cancelled());
        store.hook().hung.store(false, Ordering::SeqCst);
        l.flush().await.unwrap();
        assert_eq!(
            total(&l, "a", Granularity::Minute).await.published_messages,
            203
        );
    }

    #[tokio::test]
    async fn flushes_are_idempotent_and_restarts_add_up() {
        let clock = ManualClock::new(T0, 7);
        let catalog = Catalog::new(MemoryStore::new());
        let first = ledger(&clock, &catalog);
        first.meter().add("a", Counter::PublishedMessages, 5);
        first.flush().await.unwrap();
        first.flush().await.unwrap();
        first.meter().add("a", Counter::PublishedMessages, 1);
        clock.advance_ms(MINUTE_MS);
        let s = first.flush().await.unwrap();
        assert_eq!(
            s,
            FlushSummary {
                records: 1,
                sealed: 1
            }
        );
        first.flush().await.unwrap();
        assert_eq!(
            total(&first, "a", Granularity::Minute)
                .await
                .published_messages,
            6
        );

        // A new process (same node) counts on top, never over.
        let second = ledger(&clock, &catalog);
        second.meter().add("a", Counter::PublishedMessages, 10);
        second.flush().await.unwrap();
        for g in [Granularity::Minute, Granularity::Hour, Granularity::Day] {
            assert_eq!(total(&second, "a", g).await.published_messages, 16, "{g:?}");
        }
        // Unflushed counts of a crashed process are lost, and only those.
        let crashed = ledger(&clock, &catalog);
        crashed.meter().add("a", Counter::PublishedMessages, 100);
        drop(crashed);
        assert_eq!(
            total(&second, "a", Granularity::Hour)
                .await
                .published_messages,
            16
        );
    }

    /// A tenant re-created under a deleted one's name is not billed for
    /// what the deleted one used, in minute, hour and day answers, rolled
    /// up or not.
    #[tokio::test]
    async fn usage_before_a_tenants_creation_is_not_its() {
        let clock = ManualClock::new(T0 + 10 * MINUTE_MS, 7);
        let catalog = Catalog::new(MemoryStore::new());
        let l = ledger(&clock, &catalog);
        l.meter().add("a", Counter::PublishedMessages, 100);
        l.flush().await.unwrap();
        // Deleted, then created again 20 minutes later in the same hour.
        clock.set_ms(T0 + 30 * MINUTE_MS);
        let created = clock.now_ms() + 5;
        clock.advance_ms(MINUTE_MS);
        l.meter().add("a", Counter::PublishedMessages, 3);
        l.flush().await.unwrap();
        let since = async |g: Granularity, start: i64| -> u64 {
            l.query_since(
                "a",
                created,
                None,
                start.max(T0 - HOUR_MS),
                T0 + 5 * HOUR_MS,
                g,
            )
            .await
            .unwrap()
            .iter()
            .map(|b| b.counts.published_messages)
            .sum()
        };
        for g in [Granularity::Minute, Granularity::Hour, Granularity::Day] {
            assert_eq!(since(g, 0).await, 3, "{g:?}");
        }
        // A start after the creation is rounded down as always: to the hour
        // after it, or to its day.
        assert_eq!(since(Granularity::Hour, created + HOUR_MS).await, 0);
        assert_eq!(since(Granularity::Day, created + HOUR_MS).await, 3);
        clock.set_ms(T0 + 3 * HOUR_MS);
        l.roll_up(5 * MINUTE_MS, 7 * 24 * HOUR_MS).await.unwrap();
        assert_eq!(since(Granularity::Hour, 0).await, 3, "rolled up");
        // Without a creation time, the name's whole usage.
        assert_eq!(
            total(&l, "a", Granularity::Hour).await.published_messages,
            103
        );
        // The deleted one: until its deletion minute, rolled up or not.
        for g in [Granularity::Minute, Granularity::Hour, Granularity::Day] {
            let deleted: u64 = l
                .query_since(
                    "a",
                    T0,
                    Some(T0 + 30 * MINUTE_MS - 1),
                    T0 - HOUR_MS,
                    T0 + 5 * HOUR_MS,
                    g,
                )
                .await
                .unwrap()
                .iter()
                .map(|b| b.counts.published_messages)
                .sum();
            assert_eq!(deleted, 100, "{g:?}");
        }
    }

    #[tokio::test]
    async fn rollups_answer_hour_queries_and_late_writes_are_rolled_again() {
        let clock = ManualClock::new(T0 + 30 * MINUTE_MS, 7);
        let catalog = Catalog::new(MemoryStore::new());
        let l = ledger(&clock, &catalog);
        l.meter().add("a", Counter::ObjectGets, 3);
        l.meter().add("b", Counter::ObjectGets, 4);
        l.flush().await.unwrap();
        clock.set_ms(T0 + 2 * HOUR_MS);
        assert_eq!(l.roll_up(5 * MINUTE_MS, 7 * 24 * HOUR_MS).await.unwrap(), 2);
        let hours = catalog
            .usage_hours("a", 0, T0 + 10 * HOUR_MS)
            .await
            .unwrap();
        assert_eq!(hours[&T0].object_gets, 3);
        // A late write to the rolled-up hour (a node that was cut off).
        let late = UsageLedger::new(
            catalog.clone(),
            Arc::new(Meter::new(ManualClock::new(T0, 1))),
            clock.clone(),
            "node-2",
        );
        late.meter().add("a", Counter::ObjectGets, 1);
        late.flush().await.unwrap();
        // Until rolled up again, queries sum the minutes instead.
        assert_eq!(total(&l, "a", Granularity::Hour).await.object_gets, 4);
        assert_eq!(l.roll_up(5 * MINUTE_MS, 7 * 24 * HOUR_MS).await.unwrap(), 1);
        assert_eq!(total(&l, "a", Granularity::Hour).await.object_gets, 4);
        assert_eq!(total(&l, "b", Granularity::Day).await.object_gets, 4);
        // After the retention the minutes go; hours stay.
        clock.set_ms(T0 + 30 * HOUR_MS);
        l.roll_up(5 * MINUTE_MS, HOUR_MS).await.unwrap();
        assert!(
            l.query("a", T0, T0 + 40 * HOUR_MS, Granularity::Minute)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(total(&l, "a", Granularity::Hour).await.object_gets, 4);
    }

    #[tokio::test]
    async fn stored_byte_seconds_are_exact() {
        let clock = ManualClock::new(T0, 7);
        let catalog = Catalog::new(MemoryStore::new());
        let l = ledger(&clock, &catalog);
        let sample = |hot, cold| {
            std::collections::HashMap::from([("a".to_string(), StoredBytes { hot, cold })])
        };
        l.meter().sample_storage(sample(1000, 0), 10_000);
        l.meter().sample_storage(sample(500, 2000), 5_000);
        l.flush().await.unwrap();
        let t = total(&l, "a", Granularity::Hour).await;
        assert_eq!(t.hot_byte_seconds, 1000 * 10 + 500 * 5);
        assert_eq!(t.cold_byte_seconds, 2000 * 5);
    }

    #[tokio::test]
    async fn bad_queries_are_refused() {
        let clock = ManualClock::new(T0, 7);
        let l = ledger(&clock, &Catalog::new(MemoryStore::new()));
        assert!(l.query("a", T0, T0, Granularity::Hour).await.is_err());
        let too_many = l.query(
            "a",
            0,
            MINUTE_MS * (MAX_USAGE_BUCKETS + 1),
            Granularity::Minute,
        );
        assert!(too_many.await.is_err());
        assert!(Granularity::parse("week").is_err());
        assert_eq!(Granularity::parse("day").unwrap(), Granularity::Day);
    }
}
