//! Retries a failed attempt with exponential backoff and jitter, sleeping on
//! the [`Clock`], until it succeeds, gets an answer retrying cannot change
//! ("not found", a refusal), or runs out of attempts. Giving up yields a
//! [`GaveUp`] error naming the attempts and the last failure.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ObjectMeta, ObjectStore, ObjectStoreExt, PutOptions, PutPayload,
    PutResult,
};
use strata_common::Clock;

use super::{Policy, buffered, display_as, pass_through};
use crate::metrics::Metrics;

/// The name [`GaveUp`] errors carry (`object_store::Error::Generic::store`).
pub(crate) const RETRY: &str = "retry";

/// Every attempt failed; `last` is the final failure.
#[derive(Debug, thiserror::Error)]
#[error("{last}")]
pub(crate) struct GaveUp {
    pub attempts: u32,
    pub last: object_store::Error,
}

#[derive(Debug)]
pub(crate) struct RetryStore {
    inner: Arc<dyn ObjectStore>,
    policy: Policy,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

/// Errors that will not go away by asking again.
pub(crate) fn is_permanent(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    matches!(
        e,
        E::NotFound { .. }
            | E::InvalidPath { .. }
            | E::NotSupported { .. }
            | E::NotImplemented { .. }
            | E::AlreadyExists { .. }
            | E::Precondition { .. }
            | E::NotModified { .. }
            | E::PermissionDenied { .. }
            | E::Unauthenticated { .. }
            | E::UnknownConfigurationKey { .. }
    )
}

impl RetryStore {
    pub(crate) fn new(
        inner: Arc<dyn ObjectStore>,
        policy: Policy,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inner,
            policy: Policy {
                max_attempts: policy.max_attempts.max(1),
                ..policy
            },
            clock,
            metrics,
        }
    }

    /// `base * 2^(attempt-1)` capped at `backoff_max`, then "equal jitter"
    /// (50–100 % of that) so many clients retrying together spread out.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        let delay = self
            .policy
            .backoff_base
            .saturating_mul(exp)
            .min(self.policy.backoff_max);
        let jitter = (self.clock.random_u64() >> 11) as f64 / (1u64 << 53) as f64;
        delay.mul_f64(0.5 + jitter * 0.5)
    }

    /// Runs `attempt` until it succeeds, fails for good, or runs out of tries.
    async fn retried<T, F, Fut>(
        &self,
        op: &str,
        what: &str,
        mut attempt: F,
    ) -> object_store::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = object_store::Result<T>>,
    {
        let max_attempts = self.policy.max_attempts;
        let mut tries = 0u32;
        loop {
            tries += 1;
            let failure = match attempt().await {
                Ok(value) => return Ok(value),
                Err(e) if matches!(e, object_store::Error::NotFound { .. }) => return Err(e),
                Err(e) if is_permanent(&e) => {
                    tracing::warn!(op, key = what, error = %e, "object store rejected request");
                    return Err(e);
                }
                Err(e) => e,
            };
            if tries >= max_attempts {
                tracing::warn!(op, key = what, attempt = tries, error = %failure, "object store request failed; giving up");
                return Err(object_store::Error::Generic {
                    store: RETRY,
                    source: Box::new(GaveUp {
                        attempts: tries,
                        last: failure,
                    }),
                });
            }
            let delay = self.backoff(tries);
            self.metrics.retry();
            // The first failure of a call is worth a warning; its further
            // retries are counted (strata_object_request_retries) and only
            // logged at debug, so a store that is down logs a few lines per
            // call, not one per attempt.
            if tries == 1 {
                tracing::warn!(
                    op,
                    key = what,
                    max_attempts,
                    delay_ms = delay.as_millis() as u64,
                    error = %failure,
                    "object store request failed; retrying"
                );
            } else {
                tracing::debug!(
                    op,
                    key = what,
                    attempt = tries,
                    max_attempts,
                    delay_ms = delay.as_millis() as u64,
                    error = %failure,
                    "object store request failed again; retrying"
                );
            }
            self.clock.sleep(delay).await;
        }
    }
}

display_as!(RetryStore, "Retry");

#[async_trait::async_trait]
impl ObjectStore for RetryStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.retried("put", location.as_ref(), || {
            self.inner.put_opts(location, payload.clone(), opts.clone())
        })
        .await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let op = match (options.head, &options.range) {
            (true, _) => "head",
            (false, Some(_)) => "get_range",
            (false, None) => "get",
        };
        self.retried(op, location.as_ref(), || async {
            let result = self.inner.get_opts(location, options.clone()).await?;
            if options.head {
                return Ok(result);
            }
            // A body that breaks off half-way is retried like any failure.
            buffered(result).await.map(|(result, _)| result)
        })
        .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let this = self.shallow();
        locations
            .then(move |location| {
                let this = this.clone();
                async move {
                    let location = location?;
                    let deleted =
                        this.retried("delete", location.as_ref(), || this.inner.delete(&location));
                    deleted.await.map(|()| location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let (this, prefix) = (self.shallow(), prefix.cloned());
        stream::once(async move {
            let what = prefix.as_ref().map_or("", |p| p.as_ref()).to_string();
            let listed = this
                .retried("list", &what, || {
                    this.inner.list(prefix.as_ref()).try_collect::<Vec<_>>()
                })
                .await;
            match listed {
                Ok(metas) => stream::iter(metas.into_iter().map(Ok)).boxed(),
                Err(e) => stream::iter([Err(e)]).boxed(),
            }
        })
        .flatten()
        .boxed()
    }

    pass_through!();
}

impl RetryStore {
    /// A copy sharing the same store, clock and counters, for streams that
    /// outlive the call that made them.
    fn shallow(&self) -> Arc<Self> {
        Arc::new(Self {
            inner: self.inner.clone(),
            policy: self.policy,
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
        })
    }
}
