//! Per-tenant usage counting: what the bill is made of.
//!
//! The [`Meter`] counts in memory, per tenant and per UTC minute. A flusher
//! (in the tenancy crate) periodically takes a [`MeterSnapshot`] and writes
//! each (tenant, minute) as an absolute value under a key that names this
//! process's incarnation, so writing the same minute twice never counts it
//! twice. Once a minute is *sealed* (the flusher has taken it as closed) no
//! event can land in it any more: events that arrive late go to the first
//! open minute. That is what makes the final value of a minute exact.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::Clock;

/// One minute, in milliseconds.
pub const MINUTE_MS: i64 = 60_000;
/// One hour, in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// The start of the UTC minute containing `ms`.
pub fn minute_of(ms: i64) -> i64 {
    ms.div_euclid(MINUTE_MS) * MINUTE_MS
}

/// The start of the UTC hour containing `ms`.
pub fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// A metered quantity other than requests (which are counted per operation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    /// Messages durably stored (acknowledged) by a publish.
    PublishedMessages,
    /// Their [`Message::approx_size`](crate::Message::approx_size).
    PublishedBytes,
    /// Messages handed to a consumer.
    DeliveredMessages,
    /// Their size, as for published bytes.
    DeliveredBytes,
    /// Delivered messages the same consumer group had been given before.
    Redeliveries,
    /// Bytes held in the WAL (hot tier) times seconds.
    HotByteSeconds,
    /// Bytes held in object storage (cold tier) times seconds.
    ColdByteSeconds,
    /// Object-store PUTs of objects holding the tenant's data.
    ObjectPuts,
    /// Object-store GETs made to read the tenant's data.
    ObjectGets,
}

/// Usage of one tenant over some interval. Every field is an exact count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageCounts {
    /// Requests by operation name (bounded set: API routes and RPCs).
    pub requests: BTreeMap<String, u64>,
    pub published_messages: u64,
    pub published_bytes: u64,
    pub delivered_messages: u64,
    pub delivered_bytes: u64,
    pub redeliveries: u64,
    pub hot_byte_seconds: u64,
    pub cold_byte_seconds: u64,
    pub object_puts: u64,
    pub object_gets: u64,
}

impl UsageCounts {
    fn field(&mut self, counter: Counter) -> &mut u64 {
        match counter {
            Counter::PublishedMessages => &mut self.published_messages,
            Counter::PublishedBytes => &mut self.published_bytes,
            Counter::DeliveredMessages => &mut self.delivered_messages,
            Counter::DeliveredBytes => &mut self.delivered_bytes,
            Counter::Redeliveries => &mut self.redeliveries,
            Counter::HotByteSeconds => &mut self.hot_byte_seconds,
            Counter::ColdByteSeconds => &mut self.cold_byte_seconds,
            Counter::ObjectPuts => &mut self.object_puts,
            Counter::ObjectGets => &mut self.object_gets,
        }
    }

    /// Adds `n` to `counter`.
    pub fn add(&mut self, counter: Counter, n: u64) {
        let field = self.field(counter);
        *field = field.saturating_add(n);
    }

    /// Adds one request of operation `op`.
    pub fn add_request(&mut self, op: &str) {
        match self.requests.get_mut(op) {
            Some(n) => *n = n.saturating_add(1),
            None => {
                self.requests.insert(op.to_string(), 1);
            }
        }
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &UsageCounts) {
        for (op, n) in &other.requests {
            let mine = self.requests.entry(op.clone()).or_default();
            *mine = mine.saturating_add(*n);
        }
        for counter in Counter::ALL {
            self.add(counter, other.get(counter));
        }
    }

    /// All requests, whatever the operation.
    pub fn requests_total(&self) -> u64 {
        self.requests.values().fold(0, |a, n| a.saturating_add(*n))
    }

    /// The value of `counter`.
    pub fn get(&self, counter: Counter) -> u64 {
        match counter {
            Counter::PublishedMessages => self.published_messages,
            Counter::PublishedBytes => self.published_bytes,
            Counter::DeliveredMessages => self.delivered_messages,
            Counter::DeliveredBytes => self.delivered_bytes,
            Counter::Redeliveries => self.redeliveries,
            Counter::HotByteSeconds => self.hot_byte_seconds,
            Counter::ColdByteSeconds => self.cold_byte_seconds,
            Counter::ObjectPuts => self.object_puts,
            Counter::ObjectGets => self.object_gets,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == UsageCounts::default()
    }
}

impl Counter {
    /// Every counter, in declaration order.
    pub const ALL: [Counter; 9] = [
        Counter::PublishedMessages,
        Counter::PublishedBytes,
        Counter::DeliveredMessages,
        Counter::DeliveredBytes,
        Counter::Redeliveries,
        Counter::HotByteSeconds,
        Counter::ColdByteSeconds,
        Counter::ObjectPuts,
        Counter::ObjectGets,
    ];

    /// The field name in [`UsageCounts`] (and in JSON and CSV output).
    pub fn name(self) -> &'static str {
        match self {
            Counter::PublishedMessages => "published_messages",
            Counter::PublishedBytes => "published_bytes",
            Counter::DeliveredMessages => "delivered_messages",
            Counter::DeliveredBytes => "delivered_bytes",
            Counter::Redeliveries => "redeliveries",
            Counter::HotByteSeconds => "hot_byte_seconds",
            Counter::ColdByteSeconds => "cold_byte_seconds",
            Counter::ObjectPuts => "object_puts",
            Counter::ObjectGets => "object_gets",
        }
    }
}

/// Bytes a tenant keeps stored right now, per tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredBytes {
    pub hot: u64,
    pub cold: u64,
}

impl StoredBytes {
    pub fn total(&self) -> u64 {
        self.hot.saturating_add(self.cold)
    }
}

/// One tenant's usage in one minute, as taken by [`Meter::snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteUsage {
    pub tenant: String,
    pub minute_ms: i64,
    pub counts: UsageCounts,
}

/// What a flush writes: sealed minutes (final values, now removed from the
/// meter) and the open minute (a copy; it keeps counting).
#[derive(Debug, Clone, Default)]
pub struct MeterSnapshot {
    pub sealed: Vec<MinuteUsage>,
    pub open: Vec<MinuteUsage>,
}

#[derive(Debug, Default)]
struct MeterState {
    /// Minutes before this one are sealed: nothing more is counted in them.
    sealed_before_ms: i64,
    /// tenant → minute → counts, not yet sealed and written.
    pending: HashMap<String, BTreeMap<i64, UsageCounts>>,
    /// tenant → counts since this process started (for Prometheus).
    totals: HashMap<String, UsageCounts>,
    /// tenant → bytes stored at the last sample (for the stored-bytes quota).
    stored: HashMap<String, StoredBytes>,
}

/// In-memory per-tenant usage counters of one node. Cheap to share.
#[derive(Debug)]
pub struct Meter {
    clock: Arc<dyn Clock>,
    state: Mutex<MeterState>,
}

impl Meter {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            state: Mutex::new(MeterState::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, MeterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `f` to the counts of `tenant` in the current open minute and
    /// to its running totals.
    fn update(&self, tenant: &str, f: impl Fn(&mut UsageCounts)) {
        let now = minute_of(self.clock.now_ms());
        let mut state = self.state();
        let minute = now.max(state.sealed_before_ms);
        let minutes = match state.pending.get_mut(tenant) {
            Some(m) => m,
            None => state.pending.entry(tenant.to_string()).or_default(),
        };
        f(minutes.entry(minute).or_default());
        let totals = match state.totals.get_mut(tenant) {
            Some(t) => t,
            None => state.totals.entry(tenant.to_string()).or_default(),
        };
        f(totals);
    }

    /// Counts `n` of `counter` for `tenant`. Zero is a no-op.
    pub fn add(&self, tenant: &str, counter: Counter, n: u64) {
        if n > 0 {
            self.update(tenant, |c| c.add(counter, n));
        }
    }

    /// Counts one request of operation `op` for `tenant`.
    pub fn add_request(&self, tenant: &str, op: &str) {
        self.update(tenant, |c| c.add_request(op));
    }

    /// Records a stored-bytes sample for every tenant that has data, and
    /// charges `elapsed_ms` of storage at those sizes. Tenants missing from
    /// `sample` store nothing.
    pub fn sample_storage(&self, sample: HashMap<String, StoredBytes>, elapsed_ms: u64) {
        for (tenant, bytes) in &sample {
            let seconds = |b: u64| (u128::from(b) * u128::from(elapsed_ms) / 1000) as u64;
            let (hot, cold) = (seconds(bytes.hot), seconds(bytes.cold));
            self.update(tenant, |c| {
                c.add(Counter::HotByteSeconds, hot);
                c.add(Counter::ColdByteSeconds, cold);
            });
        }
        self.state().stored = sample;
    }

    /// Bytes `tenant` stored at the last sample.
    pub fn stored_bytes(&self, tenant: &str) -> StoredBytes {
        self.state().stored.get(tenant).copied().unwrap_or_default()
    }

    /// Counts since this process started, per tenant.
    pub fn totals(&self) -> HashMap<String, UsageCounts> {
        self.state().totals.clone()
    }

    /// Seals every minute before the current one and returns them (removed
    /// from the meter) with a copy of the open minute. If writing them
    /// fails, hand the sealed part back with [`Meter::restore`].
    pub fn snapshot(&self) -> MeterSnapshot {
        let now = minute_of(self.clock.now_ms());
        let mut state = self.state();
        state.sealed_before_ms = state.sealed_before_ms.max(now);
        let sealed_before = state.sealed_before_ms;
        let mut snapshot = MeterSnapshot::default();
        state.pending.retain(|tenant, minutes| {
            let open = minutes.split_off(&sealed_before);
            for (minute_ms, counts) in std::mem::replace(minutes, open) {
                snapshot.sealed.push(MinuteUsage {
                    tenant: tenant.clone(),
                    minute_ms,
                    counts,
                });
            }
            for (minute_ms, counts) in minutes.iter() {
                snapshot.open.push(MinuteUsage {
                    tenant: tenant.clone(),
                    minute_ms: *minute_ms,
                    counts: counts.clone(),
                });
            }
            !minutes.is_empty()
        });
        snapshot
    }

    /// Puts sealed minutes whose write failed back, so the next snapshot
    /// returns them again. Nothing can have been added to a sealed minute
    /// meanwhile, so the values stay exact.
    pub fn restore(&self, sealed: Vec<MinuteUsage>) {
        let mut state = self.state();
        for m in sealed {
            state
                .pending
                .entry(m.tenant)
                .or_default()
                .entry(m.minute_ms)
                .or_default()
                .merge(&m.counts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    fn meter() -> (Arc<ManualClock>, Meter) {
        let clock = ManualClock::new(10 * MINUTE_MS + 5, 1);
        (clock.clone(), Meter::new(clock))
    }

    #[test]
    fn counts_per_tenant_and_minute() {
        let (clock, meter) = meter();
        meter.add("a", Counter::PublishedMessages, 3);
        meter.add("a", Counter::PublishedBytes, 300);
        meter.add_request("a", "publish");
        meter.add_request("a", "publish");
        meter.add("b", Counter::DeliveredMessages, 1);
        clock.advance_ms(MINUTE_MS);
        meter.add("a", Counter::PublishedMessages, 1);

        let snap = meter.snapshot();
        assert_eq!(snap.sealed.len(), 2, "{snap:?}");
        let a = snap.sealed.iter().find(|m| m.tenant == "a").unwrap();
        assert_eq!(a.minute_ms, 10 * MINUTE_MS);
        assert_eq!(a.counts.published_messages, 3);
        assert_eq!(a.counts.published_bytes, 300);
        assert_eq!(a.counts.requests["publish"], 2);
        assert_eq!(snap.open.len(), 1);
        assert_eq!(snap.open[0].counts.published_messages, 1);
        assert_eq!(meter.totals()["a"].published_messages, 4);
        // Sealed minutes are gone; the open one is still there.
        let again = meter.snapshot();
        assert!(again.sealed.is_empty());
        assert_eq!(again.open.len(), 1);
    }

    #[test]
    fn late_events_never_reopen_a_sealed_minute() {
        let (clock, meter) = meter();
        clock.advance_ms(MINUTE_MS);
        meter.snapshot();
        // The clock goes backwards (another source of time, a slow thread):
        // the event still lands in the first open minute.
        clock.set_ms(10 * MINUTE_MS + 1);
        meter.add("a", Counter::Redeliveries, 1);
        let snap = meter.snapshot();
        assert_eq!(snap.open[0].minute_ms, 11 * MINUTE_MS);
    }

    #[test]
    fn restore_gives_back_exact_values() {
        let (clock, meter) = meter();
        meter.add("a", Counter::ObjectGets, 2);
        clock.advance_ms(MINUTE_MS);
        let snap = meter.snapshot();
        meter.restore(snap.sealed.clone());
        let again = meter.snapshot();
        assert_eq!(again.sealed, snap.sealed);
    }

    #[test]
    fn storage_samples_charge_byte_seconds() {
        let (_clock, meter) = meter();
        let sample = HashMap::from([("a".to_string(), StoredBytes { hot: 1000, cold: 3 })]);
        meter.sample_storage(sample, 2500);
        let snap = meter.snapshot();
        assert_eq!(snap.open[0].counts.hot_byte_seconds, 2500);
        assert_eq!(snap.open[0].counts.cold_byte_seconds, 7);
        assert_eq!(meter.stored_bytes("a").total(), 1003);
        assert_eq!(meter.stored_bytes("b").total(), 0);
    }

    #[test]
    fn merge_adds_everything() {
        let mut a = UsageCounts::default();
        a.add_request("x");
        a.add(Counter::ObjectPuts, 2);
        let mut b = a.clone();
        b.merge(&a);
        assert_eq!(b.requests["x"], 2);
        assert_eq!(b.object_puts, 4);
        assert_eq!(b.requests_total(), 2);
        for c in Counter::ALL {
            let mut one = UsageCounts::default();
            one.add(c, 1);
            assert_eq!(one.get(c), 1, "{}", c.name());
        }
    }
}
