//! Request and byte counters for the object store wrapper.
//!
//! Counting rule: every *attempt* counts as one request of its kind, including
//! attempts that fail, time out, or are failed by fault injection (which
//! stands in for a request the network lost). So `puts` is the number of PUT
//! requests sent, not the number of `put` calls; `retries` tells the two
//! apart. Byte counters only count data that actually arrived: `put_bytes`
//! is the payload of acknowledged puts, `get_bytes` the bytes returned by
//! successful gets and range gets.

use std::sync::atomic::{AtomicU64, Ordering};

/// A point-in-time snapshot of the counters; see the module docs for what
/// each one counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectMetrics {
    pub puts: u64,
    /// GET requests, whole-object and ranged.
    pub gets: u64,
    pub heads: u64,
    pub lists: u64,
    pub deletes: u64,
    pub put_bytes: u64,
    pub get_bytes: u64,
    /// Failed attempts of any kind except "not found" (which is an answer,
    /// not a failure).
    pub errors: u64,
    /// Attempts after the first for the same call.
    pub retries: u64,
    /// Attempts abandoned by the per-attempt timeout (also counted in `errors`).
    pub timeouts: u64,
}

/// The kinds of request the wrapper sends; each maps to one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Put,
    Get,
    GetRange,
    Head,
    List,
    Delete,
}

impl Op {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::GetRange => "get_range",
            Op::Head => "head",
            Op::List => "list",
            Op::Delete => "delete",
        }
    }
}

/// Live counters, shared by all clones of one `Objects`.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    puts: AtomicU64,
    gets: AtomicU64,
    heads: AtomicU64,
    lists: AtomicU64,
    deletes: AtomicU64,
    put_bytes: AtomicU64,
    get_bytes: AtomicU64,
    errors: AtomicU64,
    retries: AtomicU64,
    timeouts: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Metrics {
    pub(crate) fn attempt(&self, op: Op) {
        let counter = match op {
            Op::Put => &self.puts,
            Op::Get | Op::GetRange => &self.gets,
            Op::Head => &self.heads,
            Op::List => &self.lists,
            Op::Delete => &self.deletes,
        };
        bump(counter, 1);
    }

    pub(crate) fn put_bytes(&self, n: u64) {
        bump(&self.put_bytes, n);
    }

    pub(crate) fn get_bytes(&self, n: u64) {
        bump(&self.get_bytes, n);
    }

    pub(crate) fn error(&self) {
        bump(&self.errors, 1);
    }

    pub(crate) fn retry(&self) {
        bump(&self.retries, 1);
    }

    pub(crate) fn timeout(&self) {
        bump(&self.timeouts, 1);
    }

    pub(crate) fn snapshot(&self) -> ObjectMetrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ObjectMetrics {
            puts: get(&self.puts),
            gets: get(&self.gets),
            heads: get(&self.heads),
            lists: get(&self.lists),
            deletes: get(&self.deletes),
            put_bytes: get(&self.put_bytes),
            get_bytes: get(&self.get_bytes),
            errors: get(&self.errors),
            retries: get(&self.retries),
            timeouts: get(&self.timeouts),
        }
    }
}
