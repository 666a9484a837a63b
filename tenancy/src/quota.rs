//! Per-tenant quotas: the [`Quotas`] a plan grants, and the [`RateLimiter`]
//! that enforces their rates.
//!
//! Plans are stored in the catalog as JSON [`Quotas`] (see
//! [`Credentials::set_plan`](crate::Credentials::set_plan)); the built-in
//! ones ([`builtin_plan`]) exist without being stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use strata_common::Clock;

/// What a plan allows. 0 means unlimited for every field. Fields missing
/// from stored JSON take their [`Quotas::DEFAULT`] value; unknown fields are
/// refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    pub requests_per_sec: u64,
    pub publish_messages_per_sec: u64,
    pub publish_bytes_per_sec: u64,
    pub consume_messages_per_sec: u64,
    pub consume_bytes_per_sec: u64,
    pub max_topics: u64,
    pub max_queues: u64,
    pub max_groups: u64,
    /// Bytes stored in the WAL and object storage together; checked on
    /// publish against the last storage sample (see `metering`).
    pub max_stored_bytes: u64,
}

impl Quotas {
    /// The `"default"` plan.
    pub const DEFAULT: Quotas = Quotas {
        requests_per_sec: 2000,
        publish_messages_per_sec: 20000,
        publish_bytes_per_sec: 32 << 20,
        consume_messages_per_sec: 40000,
        consume_bytes_per_sec: 64 << 20,
        max_topics: 1000,
        max_queues: 10000,
        max_groups: 1000,
        max_stored_bytes: 100 << 30,
    };

    /// The `"unlimited"` plan: no limits at all.
    pub const UNLIMITED: Quotas = Quotas {
        requests_per_sec: 0,
        publish_messages_per_sec: 0,
        publish_bytes_per_sec: 0,
        consume_messages_per_sec: 0,
        consume_bytes_per_sec: 0,
        max_topics: 0,
        max_queues: 0,
        max_groups: 0,
        max_stored_bytes: 0,
    };
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas::DEFAULT
    }
}

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
#[derive(Debug)]
pub struct RateLimiter {
    clock: Arc<dyn Clock>,
    buckets: Mutex<HashMap<String, [Option<Bucket>; Rate::COUNT]>>,
}

impl RateLimiter {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `f` on the refilled bucket of (`tenant`, `rate`) with its
    /// capacity in milli-tokens.
    fn with_bucket<T>(
        &self,
        tenant: &str,
        rate: Rate,
        limit: u64,
        f: impl FnOnce(&mut Bucket, i128) -> T,
    ) -> T {
        let now_ms = self.clock.now_ms();
        let capacity = i128::from(limit) * 1000;
        // Each update is a single assignment, so a poisoned map is usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let slots = match buckets.get_mut(tenant) {
            Some(slots) => slots,
            None => buckets.entry(tenant.to_string()).or_default(),
        };
        let bucket = slots[rate.index()].get_or_insert(Bucket {
            milli_tokens: capacity,
            last_ms: now_ms,
        });
        bucket.refill(now_ms, limit, capacity);
        f(bucket, capacity)
    }

    /// Takes `amount` tokens or fails without taking any. An amount larger
    /// than the capacity is allowed when the bucket is full (so one oversize
    /// batch can pass), leaving it empty. A limit of 0 always passes.
    pub fn try_take(
        &self,
        tenant: &str,
        rate: Rate,
        quotas: &Quotas,
        amount: u64,
    ) -> Result<(), RateExceeded> {
        let limit = rate.limit(quotas);
        if limit == 0 {
            return Ok(());
        }
        let need = i128::from(amount) * 1000;
        self.with_bucket(tenant, rate, limit, |bucket, capacity| {
            if bucket.milli_tokens >= need {
                bucket.milli_tokens -= need;
                return Ok(());
            }
            if bucket.milli_tokens >= capacity {
                // Oversize, and the bucket is full.
                bucket.milli_tokens = 0;
                return Ok(());
            }
            // Enough for the amount, or a full bucket if it is oversize.
            let missing = need.min(capacity) - bucket.milli_tokens;
            let limit_per_ms = i128::from(limit);
            let wait = (missing + limit_per_ms - 1) / limit_per_ms;
            Err(RateExceeded {
                tenant: tenant.to_string(),
                rate: rate.name(),
                limit,
                retry_after_ms: u64::try_from(wait).unwrap_or(u64::MAX),
            })
        })
    }

    /// Takes `amount` unconditionally (may go negative: later calls wait it
    /// off). For costs known only afterwards (bytes read). A limit of 0
    /// charges nothing.
    pub fn charge(&self, tenant: &str, rate: Rate, quotas: &Quotas, amount: u64) {
        let limit = rate.limit(quotas);
        if limit == 0 {
            return;
        }
        self.with_bucket(tenant, rate, limit, |bucket, _| {
            bucket.milli_tokens -= i128::from(amount) * 1000;
        });
    }
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
    fn oversize_passes_once_when_full() {
        let (l, clock) = limiter();
        let q = quotas(10);
        l.try_take("a", Rate::Requests, &q, 25).unwrap();
        let err = l.try_take("a", Rate::Requests, &q, 25).unwrap_err();
        // An oversize amount waits for a full bucket.
        assert_eq!(err.retry_after_ms, 1000);
        clock.advance_ms(999);
        assert!(l.try_take("a", Rate::Requests, &q, 25).is_err());
        clock.advance_ms(1);
        l.try_take("a", Rate::Requests, &q, 25).unwrap();
        assert!(l.try_take("a", Rate::Requests, &q, 1).is_err());
        // Not when the bucket is only partly full.
        clock.advance_ms(500);
        assert!(l.try_take("a", Rate::Requests, &q, 11).is_err());
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
