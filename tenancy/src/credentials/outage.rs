//! Serving from the caches while the metadata store does not answer (see
//! the [parent docs](super)).

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use strata_common::Clock;

/// How long the refresh of an expired entry that may still be used waits
/// for the metadata store.
pub const REFRESH_WAIT: Duration = Duration::from_secs(1);

/// How long after it was last read from the metadata store an entry may
/// still be used while the store does not answer.
pub const STALE_LIMIT_MS: i64 = 300_000;

/// After a refresh found the store unavailable, how long entries that may
/// still be used are used without asking it again.
pub const OUTAGE_BACKOFF_MS: i64 = 2_000;

/// What a refresh of a usable stale entry came to.
pub(super) enum Refreshed<T, E> {
    /// The store answered (with the entry, or an error to return).
    Answered(Result<T, E>),
    /// The store did not answer in time, or said it is unavailable: use
    /// the stale entry.
    Unavailable,
}

/// Until when the metadata store counts as unavailable.
#[derive(Debug, Default)]
pub(super) struct Outage {
    until_ms: AtomicI64,
}

impl Outage {
    /// Whether a refresh failed less than [`OUTAGE_BACKOFF_MS`] ago.
    pub fn ongoing(&self, now_ms: i64) -> bool {
        now_ms < self.until_ms.load(Ordering::Acquire)
    }

    /// Runs `refresh`, bounded by [`REFRESH_WAIT`]; `unavailable` says
    /// which of its errors mean the store did not answer. Either way of not
    /// answering starts a backoff.
    pub async fn refresh<T, E>(
        &self,
        clock: &dyn Clock,
        refresh: impl Future<Output = Result<T, E>>,
        unavailable: impl Fn(&E) -> bool,
    ) -> Refreshed<T, E> {
        let answer = strata_common::clock::timeout(clock, REFRESH_WAIT, refresh).await;
        match answer {
            Some(Err(e)) if unavailable(&e) => {}
            Some(answered) => return Refreshed::Answered(answered),
            None => {}
        }
        let until = clock.now_ms().saturating_add(OUTAGE_BACKOFF_MS);
        if self.until_ms.swap(until, Ordering::AcqRel) <= clock.now_ms() {
            tracing::warn!(
                "the metadata store did not answer a credential or plan read in time; \
                 using what this node read from it in the last {} s",
                STALE_LIMIT_MS / 1000
            );
        }
        Refreshed::Unavailable
    }
}
