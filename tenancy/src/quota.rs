//! Per-tenant quotas: the [`Quotas`] a plan grants, and the [`RateLimiter`]
//! that enforces their rates.
//!
//! Plans are stored in the catalog as JSON [`Quotas`] (see
//! [`Credentials::set_plan`](crate::Credentials::set_plan)); the built-in
//! ones ([`builtin_plan`]) exist without being stored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use strata_common::Clock;

pub use strata_common::Quotas;

/// Built-in plans: `"default"` ([`Quotas::DEFAULT`]) and `"unlimited"`
/// ([`Quotas::UNLIMITED`]); a stored plan of the same name overrides.
pub fn builtin_plan(name: &str) -> Option<Quotas> {
    match name {
        "default" => Some(Quotas::DEFAULT),
        "unlimited" => Some(Quotas::UNLIMITED),
        _ => None,
    }
}

/// The names of the built-in plans, sorted.
pub(crate) const BUILTIN_PLANS: [&str; 2] = ["default", "unlimited"];

/// A rate a [`RateLimiter`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rate {
    Requests,
    PublishMessages,
    PublishBytes,
    ConsumeMessages,
    ConsumeBytes,
}

impl Rate {
    const COUNT: usize = 5;

    /// Every rate, in a fixed order.
    pub const ALL: [Rate; Rate::COUNT] = [
        Rate::Requests,
        Rate::PublishMessages,
        Rate::PublishBytes,
        Rate::ConsumeMessages,
        Rate::ConsumeBytes,
    ];

    /// A metric label: "requests", "publish_messages", ...
    pub fn label(self) -> &'static str {
        match self {
            Rate::Requests => "requests",
            Rate::PublishMessages => "publish_messages",
            Rate::PublishBytes => "publish_bytes",
            Rate::ConsumeMessages => "consume_messages",
            Rate::ConsumeBytes => "consume_bytes",
        }
    }

    /// What is limited, for messages: "requests", "publish messages", ...
    pub fn name(self) -> &'static str {
        match self {
            Rate::Requests => "requests",
            Rate::PublishMessages => "publish messages",
            Rate::PublishBytes => "publish bytes",
            Rate::ConsumeMessages => "consume messages",
            Rate::ConsumeBytes => "consume bytes",
        }
    }

    /// The per-second limit `q` sets on this rate (0 = unlimited).
    pub fn limit(self, q: &Quotas) -> u64 {
        match self {
            Rate::Requests => q.requests_per_sec,
            Rate::PublishMessages => q.publish_messages_per_sec,
            Rate::PublishBytes => q.publish_bytes_per_sec,
            Rate::ConsumeMessages => q.consume_messages_per_sec,
            Rate::ConsumeBytes => q.consume_bytes_per_sec,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A rate limit was hit; the caller may retry after `retry_after_ms`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rate} quota of {limit}/s for tenant {tenant} exceeded; retry after {retry_after_ms} ms")]
pub struct RateExceeded {
    pub tenant: String,
    /// [`Rate::name`].
    pub rate: &'static str,
    pub limit: u64,
    pub retry_after_ms: u64,
}

/// One bucket. Tokens are counted in thousandths so that refilling by
/// `limit` per second is exactly `limit` per millisecond, with no rounding.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// May be negative after [`RateLimiter::charge`].
    milli_tokens: i128,
    last_ms: i64,
}

impl Bucket {
    /// Adds what accrued since the last refill, up to `capacity`. A clock
    /// that went backwards adds nothing.
    fn refill(&mut self, now_ms: i64, limit: u64, capacity: i128) {
        if now_ms > self.last_ms {
            let elapsed = i128::from(now_ms) - i128::from(self.last_ms);
            self.milli_tokens = (self.milli_tokens + elapsed * i128::from(limit)).min(capacity);
            self.last_ms = now_ms;
        } else {
            // The limit may have been lowered since the last call.
            self.milli_tokens = self.milli_tokens.min(capacity);
        }
    }
}

/// Token buckets per (tenant, rate), capacity = one second of the limit,
/// refilled continuously from the [`Clock`]. A bucket starts full. The
/// limits come with each call, so a plan change applies at once.
///
/// A request over its rate is throttled rather than refused when its tokens
/// accrue within `max_delay_ms` ([`RateLimiter::acquire`]): it reserves them
/// (the bucket goes negative) and waits, as Kafka delays responses of a
/// client over its quota. A closed-loop client that ignores retry hints is
/// thereby slowed to its rate instead of costing the server a refusal per
/// attempt. A request that would wait longer is refused, and the refusal
/// itself is held for `max_delay_ms`, which bounds how fast one connection
/// can collect refusals.
#[derive(Debug)]
pub struct RateLimiter {
    clock: Arc<dyn Clock>,
    max_delay_ms: u64,
    buckets: Mutex<HashMap<String, [Option<Bucket>; Rate::COUNT]>>,
    delayed: [AtomicU64; Rate::COUNT],
    refused: [AtomicU64; Rate::COUNT],
}

/// How often [`RateLimiter::acquire`] delayed and refused, per rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThrottleCounts {
    pub delayed: u64,
    pub refused: u64,
}

impl RateLimiter {
    /// A limiter that refuses at once whatever the bucket cannot cover now.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_max_delay(clock, 0)
    }

    /// A limiter that throttles requests up to `max_delay_ms` (see the type).
    pub fn with_max_delay(clock: Arc<dyn Clock>, max_delay_ms: u64) -> Self {
        Self {
            clock,
            max_delay_ms,
            buckets: Mutex::new(HashMap::new()),
            delayed: Default::default(),
            refused: Default::default(),
        }
    }

    /// Requests delayed and refused by [`acquire`](Self::acquire) since start.
    pub fn throttle_counts(&self, rate: Rate) -> ThrottleCounts {
        ThrottleCounts {
            delayed: self.delayed[rate.index()].load(Ordering::Relaxed),
            refused: self.refused[rate.index()].load(Ordering::Relaxed),
        }
    }

    /// Takes `amount` tokens, waiting for them when they accrue within the
    /// limiter's maximum delay. Otherwise waits that maximum delay and fails
    /// with the time still to wait as the hint; nothing is taken then.
    pub async fn acquire(
        &self,
        tenant: &str,
        rate: Rate,
        quotas: &Quotas,
        amount: u64,
    ) -> Result<(), RateExceeded> {
        self.acquire_all(tenant, quotas, &[(rate, amount)]).await
    }

    /// [`acquire`](Self::acquire) for several rates at once (a publish costs
    /// messages and bytes): all are taken or none, and one wait covers them.
    pub async fn acquire_all(
        &self,
        tenant: &str,
        quotas: &Quotas,
        wants: &[(Rate, u64)],
    ) -> Result<(), RateExceeded> {
        match self.reserve_all(tenant, quotas, wants, self.max_delay_ms) {
            Ok((0, _)) => Ok(()),
            Ok((wait_ms, rate)) => {
                self.delayed[rate.index()].fetch_add(1, Ordering::Relaxed);
                self.clock
                    .sleep(std::time::Duration::from_millis(wait_ms))
                    .await;
                Ok(())
            }
            Err((mut e, rate)) => {
                self.refused[rate.index()].fetch_add(1, Ordering::Relaxed);
                if self.max_delay_ms > 0 {
                    self.clock
                        .sleep(std::time::Duration::from_millis(self.max_delay_ms))
                        .await;
                    // Strictly more than the delay was needed, so the hint stays >= 1.
                    e.retry_after_ms = e.retry_after_ms.saturating_sub(self.max_delay_ms).max(1);
                }
                Err(e)
            }
        }
    }

    /// Reserves every `(rate, amount)` of `wants` under one lock when each
    /// accrues within `max_wait_ms`, returning the longest wait and its
    /// rate; otherwise reserves nothing and names the rate that waits
    /// longest. An amount larger than a bucket needs a full bucket and
    /// leaves the rest as debt, so the long-run rate stays the limit: a
    /// 1,000-message batch on a 10/s plan passes, then nothing for 99 s.
    #[allow(clippy::result_large_err)]
    fn reserve_all(
        &self,
        tenant: &str,
        quotas: &Quotas,
        wants: &[(Rate, u64)],
        max_wait_ms: u64,
    ) -> Result<(u64, Rate), (RateExceeded, Rate)> {
        let now_ms = self.clock.now_ms();
        // Each update is a single assignment, so a poisoned map is usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let slots = match buckets.get_mut(tenant) {
            Some(slots) => slots,
            None => buckets.entry(tenant.to_string()).or_default(),
        };
        let mut longest = (0u64, Rate::Requests);
        for &(rate, amount) in wants {
            let limit = rate.limit(quotas);
            if limit == 0 {
                continue;
            }
            let capacity = i128::from(limit) * 1000;
            let bucket = refilled(&mut slots[rate.index()], limit, now_ms);
            let need = (i128::from(amount) * 1000).min(capacity);
            let missing = (need - bucket.milli_tokens).max(0);
            let limit_per_ms = i128::from(limit);
            let wait =
                u64::try_from((missing + limit_per_ms - 1) / limit_per_ms).unwrap_or(u64::MAX);
            if wait > max_wait_ms {
                let e = RateExceeded {
                    tenant: tenant.to_string(),
                    rate: rate.name(),
                    limit,
                    retry_after_ms: wait,
                };
                return Err((e, rate));
            }
            if wait >= longest.0 {
                longest = (wait, rate);
            }
        }
        // Every rate fits: take them all.
        for &(rate, amount) in wants {
            let limit = rate.limit(quotas);
            if let Some(bucket) = slots[rate.index()].as_mut().filter(|_| limit > 0) {
                bucket.milli_tokens -= i128::from(amount) * 1000;
            }
        }
        Ok(longest)
    }

    /// Runs `f` on the refilled bucket of (`tenant`, `rate`).
    fn with_bucket<T>(
        &self,
        tenant: &str,
        rate: Rate,
        limit: u64,
        f: impl FnOnce(&mut Bucket) -> T,
    ) -> T {
        let now_ms = self.clock.now_ms();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let slots = match buckets.get_mut(tenant) {
            Some(slots) => slots,
            None => buckets.entry(tenant.to_string()).or_default(),
        };
        f(refilled(&mut slots[rate.index()], limit, now_ms))
    }

    /// Takes `amount` tokens or fails without taking any. An amount larger
    /// than the capacity is allowed when the bucket is full (so one oversize
    /// batch can pass), leaving the rest as debt. A limit of 0 always passes.
    pub fn try_take(
        &self,
        tenant: &str,
        rate: Rate,
        quotas: &Quotas,
        amount: u64,
    ) -> Result<(), RateExceeded> {
        self.reserve(tenant, rate, quotas, amount, 0).map(|_| ())
    }

    /// Like [`try_take`](Self::try_take), but when the tokens accrue within
    /// `max_wait_ms` they are reserved (the bucket goes negative) and the
    /// wait in milliseconds is returned; the caller must wait that long.
    /// An amount larger than the capacity waits for a full bucket and
    /// leaves the rest as debt.
    pub fn reserve(
        &self,
        tenant: &str,
        rate: Rate,
        quotas: &Quotas,
        amount: u64,
        max_wait_ms: u64,
    ) -> Result<u64, RateExceeded> {
        self.reserve_all(tenant, quotas, &[(rate, amount)], max_wait_ms)
            .map(|(wait, _)| wait)
            .map_err(|(e, _)| e)
    }

    /// The whole tokens (`tenant`, `rate`) holds now, 0 while in debt;
    /// `None` when the plan sets no limit. Takes nothing: a request sizes
    /// its work by it, then pays with [`charge`](Self::charge).
    pub fn available(&self, tenant: &str, rate: Rate, quotas: &Quotas) -> Option<u64> {
        let limit = rate.limit(quotas);
        if limit == 0 {
            return None;
        }
        let milli = self.with_bucket(tenant, rate, limit, |bucket| bucket.milli_tokens);
        Some(u64::try_from(milli / 1000).unwrap_or(0))
    }

    /// Takes `amount` unconditionally (may go negative: later calls wait it
    /// off). For costs known only afterwards (bytes read). A limit of 0
    /// charges nothing.
    pub fn charge(&self, tenant: &str, rate: Rate, quotas: &Quotas, amount: u64) {
        let limit = rate.limit(quotas);
        if limit == 0 {
            return;
        }
        self.with_bucket(tenant, rate, limit, |bucket| {
            bucket.milli_tokens -= i128::from(amount) * 1000;
        });
    }
}

/// The bucket in `slot` (full when new), refilled up to `now_ms`.
fn refilled(slot: &mut Option<Bucket>, limit: u64, now_ms: i64) -> &mut Bucket {
    let capacity = i128::from(limit) * 1000;
    let bucket = slot.get_or_insert(Bucket {
        milli_tokens: capacity,
        last_ms: now_ms,
    });
    bucket.refill(now_ms, limit, capacity);
    bucket
}

#[cfg(test)]
mod tests {
    use strata_common::ManualClock;

    use super::*;

    fn quotas(requests_per_sec: u64) -> Quotas {
        Quotas {
            requests_per_sec,
            ..Quotas::UNLIMITED
        }
    }

    fn limiter() -> (RateLimiter, Arc<ManualClock>) {
        let clock = ManualClock::new(1_000_000, 1);
        (RateLimiter::new(clock.clone()), clock)
    }

    #[test]
    fn plans_and_names() {
        assert_eq!(Quotas::default(), Quotas::DEFAULT);
        assert_eq!(builtin_plan("default"), Some(Quotas::DEFAULT));
        assert_eq!(builtin_plan("unlimited"), Some(Quotas::UNLIMITED));
        assert_eq!(builtin_plan("pro"), None);
        for name in BUILTIN_PLANS {
            assert!(builtin_plan(name).is_some());
        }
        assert_eq!(Rate::PublishBytes.name(), "publish bytes");
        assert_eq!(Rate::ConsumeBytes.limit(&Quotas::DEFAULT), 64 << 20);
        // Missing fields default; unknown ones are refused.
        let q: Quotas = serde_json::from_str(r#"{"max_topics":5}"#).unwrap();
        assert_eq!(
            q,
            Quotas {
                max_topics: 5,
                ..Quotas::DEFAULT
            }
        );
        assert!(serde_json::from_str::<Quotas>(r#"{"max_topic":5}"#).is_err());
        let json = serde_json::to_string(&Quotas::DEFAULT).unwrap();
        assert_eq!(
            serde_json::from_str::<Quotas>(&json).unwrap(),
            Quotas::DEFAULT
        );
    }

    #[test]
    fn available_shows_the_level_without_taking() {
        let (l, clock) = limiter();
        let q = Quotas {
            consume_bytes_per_sec: 1000,
            ..Quotas::UNLIMITED
        };
        assert_eq!(l.available("a", Rate::ConsumeBytes, &q), Some(1000));
        assert_eq!(l.available("a", Rate::ConsumeBytes, &q), Some(1000));
        assert_eq!(l.available("a", Rate::ConsumeMessages, &q), None);
        l.charge("a", Rate::ConsumeBytes, &q, 1500);
        assert_eq!(l.available("a", Rate::ConsumeBytes, &q), Some(0));
        clock.advance_ms(750);
        assert_eq!(l.available("a", Rate::ConsumeBytes, &q), Some(250));
        assert_eq!(l.available("b", Rate::ConsumeBytes, &q), Some(1000));
    }

    #[test]
    fn burst_then_refuse_with_an_exact_hint_then_refill() {
        let (l, clock) = limiter();
        let q = quotas(10);
        for _ in 0..10 {
            l.try_take("a", Rate::Requests, &q, 1).unwrap();
        }
        let err = l.try_take("a", Rate::Requests, &q, 1).unwrap_err();
        assert_eq!(
            err,
            RateExceeded {
                tenant: "a".into(),
                rate: "requests",
                limit: 10,
                retry_after_ms: 100,
            }
        );
        assert_eq!(
            err.to_string(),
            "requests quota of 10/s for tenant a exceeded; retry after 100 ms"
        );
        // Just short of the hint is still too early; the hint itself is enough.
        clock.advance_ms(99);
        assert_eq!(
            l.try_take("a", Rate::Requests, &q, 1)
                .unwrap_err()
                .retry_after_ms,
            1
        );
        clock.advance_ms(1);
        l.try_take("a", Rate::Requests, &q, 1).unwrap();
        assert!(l.try_take("a", Rate::Requests, &q, 1).is_err());
        // A long idle refills only up to one second's worth.
        clock.advance_ms(60_000);
        l.try_take("a", Rate::Requests, &q, 10).unwrap();
        assert!(l.try_take("a", Rate::Requests, &q, 1).is_err());
        // A failed take takes nothing.
        clock.advance_ms(500);
        assert_eq!(
            l.try_take("a", Rate::Requests, &q, 6)
                .unwrap_err()
                .retry_after_ms,
            100
        );
        l.try_take("a", Rate::Requests, &q, 5).unwrap();
    }

    #[test]
    fn tenants_and_rates_are_independent() {
        let (l, _clock) = limiter();
        let q = Quotas {
            publish_messages_per_sec: 3,
            ..quotas(3)
        };
        l.try_take("a", Rate::Requests, &q, 3).unwrap();
        assert!(l.try_take("a", Rate::Requests, &q, 1).is_err());
        l.try_take("b", Rate::Requests, &q, 3).unwrap();
        l.try_take("a", Rate::PublishMessages, &q, 3).unwrap();
        let err = l.try_take("a", Rate::PublishMessages, &q, 1).unwrap_err();
        assert_eq!((err.rate, err.limit), ("publish messages", 3));
    }

    #[test]
    fn oversize_passes_when_full_and_leaves_debt() {
        let (l, clock) = limiter();
        let q = quotas(10);
        l.try_take("a", Rate::Requests, &q, 25).unwrap();
        // 25 from a bucket of 10 leaves a debt of 15: 1.5 s to pay off,
        // then 1 s to fill up for the next oversize amount.
        let err = l.try_take("a", Rate::Requests, &q, 25).unwrap_err();
        assert_eq!(err.retry_after_ms, 2500);
        clock.advance_ms(2499);
        assert!(l.try_take("a", Rate::Requests, &q, 25).is_err());
        clock.advance_ms(1);
        l.try_take("a", Rate::Requests, &q, 25).unwrap();
        assert!(l.try_take("a", Rate::Requests, &q, 1).is_err());
        // Not when the bucket is only partly full.
        clock.advance_ms(2000);
        assert!(l.try_take("a", Rate::Requests, &q, 11).is_err());
    }

    /// Oversize batches sent as fast as allowed keep to the rate: 1,000
    /// messages per request on a 10/s plan pass once per 100 s.
    #[test]
    fn oversize_batches_keep_to_the_rate_in_the_long_run() {
        let (l, clock) = limiter();
        let q = quotas(10);
        let start = strata_common::Clock::now_ms(clock.as_ref());
        let mut taken = 0u64;
        for _ in 0..1000 {
            match l.try_take("a", Rate::Requests, &q, 1000) {
                Ok(()) => taken += 1000,
                Err(e) => clock.advance_ms(e.retry_after_ms as i64),
            }
        }
        let elapsed_s = (strata_common::Clock::now_ms(clock.as_ref()) - start) as u64 / 1000;
        assert!(elapsed_s > 0);
        // The first batch rode on the full bucket; the rest paid for theirs.
        assert!(taken <= 10 * elapsed_s + 1000, "{taken} in {elapsed_s} s");
    }

    #[test]
    fn reservations_queue_up_to_the_maximum_wait() {
        let (l, clock) = limiter();
        let q = quotas(10);
        l.try_take("a", Rate::Requests, &q, 10).unwrap();
        // Each reservation waits 100 ms longer than the one before.
        assert_eq!(l.reserve("a", Rate::Requests, &q, 1, 250), Ok(100));
        assert_eq!(l.reserve("a", Rate::Requests, &q, 1, 250), Ok(200));
        // The third would wait 300 ms: refused, with the queue in its hint,
        // and it reserves nothing.
        let err = l.reserve("a", Rate::Requests, &q, 1, 250).unwrap_err();
        assert_eq!(err.retry_after_ms, 300);
        assert_eq!(l.reserve("a", Rate::Requests, &q, 1, 300), Ok(300));
        // Time pays the debt of 3 tokens off: after 300 ms the bucket is at 0.
        clock.advance_ms(300);
        assert_eq!(
            l.reserve("a", Rate::Requests, &q, 1, 0)
                .unwrap_err()
                .retry_after_ms,
            100
        );
        // An oversize amount waits for a full bucket, and takes all of it.
        assert_eq!(l.reserve("a", Rate::Requests, &q, 50, 1000), Ok(1000));
        clock.advance_ms(1000);
        let err = l.reserve("a", Rate::Requests, &q, 1, 0).unwrap_err();
        assert_eq!(err.retry_after_ms, 4100, "a debt of 40, then one token");
        assert_eq!(
            l.reserve("b", Rate::Requests, &Quotas::UNLIMITED, 50, 0),
            Ok(0)
        );
    }

    #[tokio::test]
    async fn several_rates_are_taken_together_or_not_at_all() {
        let (l, _clock) = limiter();
        let q = Quotas {
            publish_messages_per_sec: 10,
            publish_bytes_per_sec: 100,
            ..Quotas::UNLIMITED
        };
        let publish = |messages, bytes| {
            [
                (Rate::PublishMessages, messages),
                (Rate::PublishBytes, bytes),
            ]
        };
        l.acquire_all("a", &q, &publish(10, 50)).await.unwrap();
        // Bytes would fit, messages do not: refused, and no byte is spent.
        let err = l.acquire_all("a", &q, &publish(1, 50)).await.unwrap_err();
        assert_eq!(err.rate, "publish messages");
        assert_eq!(l.reserve("a", Rate::PublishBytes, &q, 50, 0), Ok(0));
        assert_eq!(
            l.throttle_counts(Rate::PublishMessages),
            ThrottleCounts {
                delayed: 0,
                refused: 1
            }
        );
    }

    /// Whether `future` is still waiting after the runtime had every chance
    /// to run it (the clock is manual, so only the test moves time).
    async fn pending<F: std::future::Future + Unpin>(future: &mut F) -> bool {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::pin::Pin::new(&mut *future).poll(cx).is_pending())
        })
        .await
    }

    #[tokio::test]
    async fn acquire_waits_for_reserved_tokens_and_holds_refusals() {
        let clock = ManualClock::new(1_000_000, 1);
        let l = RateLimiter::with_max_delay(clock.clone(), 40);
        // 100/s: one token per 10 ms, 100 to start with.
        let q = quotas(100);
        l.acquire("a", Rate::Requests, &q, 100).await.unwrap();
        let mut take_two = Box::pin(l.acquire("a", Rate::Requests, &q, 2));
        assert!(pending(&mut take_two).await, "two tokens are 20 ms away");
        clock.advance_ms(19);
        assert!(pending(&mut take_two).await, "not before 20 ms");
        clock.advance_ms(1);
        take_two.await.unwrap();
        // 10 more tokens are 100 ms away: refused after the 40 ms hold, with
        // the 60 ms that remain as the hint.
        let mut take_ten = Box::pin(l.acquire("a", Rate::Requests, &q, 10));
        assert!(pending(&mut take_ten).await, "held before the refusal");
        clock.advance_ms(40);
        let err = take_ten.await.unwrap_err();
        assert_eq!(err.retry_after_ms, 60, "{err}");
        assert_eq!(
            l.throttle_counts(Rate::Requests),
            ThrottleCounts {
                delayed: 1,
                refused: 1
            }
        );
        assert_eq!(
            l.throttle_counts(Rate::PublishBytes),
            ThrottleCounts::default()
        );
        // An immediate limiter never sleeps.
        let now = RateLimiter::new(clock);
        now.acquire("a", Rate::Requests, &q, 100).await.unwrap();
        assert!(now.acquire("a", Rate::Requests, &q, 1).await.is_err());
    }

    #[test]
    fn charged_debt_delays_the_next_take() {
        let (l, clock) = limiter();
        let q = quotas(10);
        // Full (10) minus 30 leaves a debt of 20: 2 s to get back to 0,
        // plus 100 ms for one token.
        l.charge("a", Rate::Requests, &q, 30);
        let err = l.try_take("a", Rate::Requests, &q, 1).unwrap_err();
        assert_eq!(err.retry_after_ms, 2100);
        clock.advance_ms(2099);
        assert!(l.try_take("a", Rate::Requests, &q, 1).is_err());
        clock.advance_ms(1);
        l.try_take("a", Rate::Requests, &q, 1).unwrap();
    }

    #[test]
    fn unlimited_never_fails() {
        let (l, _clock) = limiter();
        for rate in [
            Rate::Requests,
            Rate::PublishMessages,
            Rate::PublishBytes,
            Rate::ConsumeMessages,
            Rate::ConsumeBytes,
        ] {
            l.charge("a", rate, &Quotas::UNLIMITED, u64::MAX);
            for _ in 0..100 {
                l.try_take("a", rate, &Quotas::UNLIMITED, u64::MAX).unwrap();
            }
        }
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<RateLimiter>();
    }
}
