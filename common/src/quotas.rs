//! [`Quotas`]: what a tenant's plan allows. Stored in the catalog as JSON,
//! sent and read over the HTTP API, enforced by tenancy's rate limiter.

use serde::{Deserialize, Serialize};

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

impl Quotas {
    /// Why `tenant` may not publish more, if it stores more than
    /// `max_stored_bytes`. `stored` is asked only when there is a limit.
    pub fn over_stored_bytes(&self, tenant: &str, stored: impl FnOnce() -> u64) -> Option<String> {
        if self.max_stored_bytes == 0 {
            return None;
        }
        let stored = stored();
        (stored > self.max_stored_bytes).then(|| {
            format!(
                "tenant {tenant} stores {stored} bytes, more than its plan's {} stored bytes; delete topics or wait for retention, or move to a larger plan",
                self.max_stored_bytes
            )
        })
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas::DEFAULT
    }
}
