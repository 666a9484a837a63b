//! One deadline per attempt, measured on the [`Clock`]; the body of a get is
//! read inside it.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ObjectMeta, ObjectStore, PutOptions, PutPayload, PutResult,
};
use strata_common::{Clock, clock};

use super::{TIMEOUT, buffered, display_as, pass_through};

#[derive(Debug)]
pub(crate) struct TimeoutStore {
    inner: Arc<dyn ObjectStore>,
    limit: Duration,
    clock: Arc<dyn Clock>,
}

/// The error of an attempt that ran out of time.
#[derive(Debug, thiserror::Error)]
#[error("attempt timed out after {0:?}")]
pub(crate) struct TimedOut(pub Duration);

impl TimeoutStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, limit: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner,
            limit,
            clock,
        }
    }

    fn timed_out(limit: Duration) -> object_store::Error {
        object_store::Error::Generic {
            store: TIMEOUT,
            source: Box::new(TimedOut(limit)),
        }
    }

    /// Runs `attempt` to its end or to the deadline.
    async fn bounded<T>(
        clock: &dyn Clock,
        limit: Duration,
        attempt: impl Future<Output = object_store::Result<T>>,
    ) -> object_store::Result<T> {
        clock::timeout(clock, limit, attempt)
            .await
            .unwrap_or_else(|| Err(Self::timed_out(limit)))
    }

    /// A stream whose items are all gathered within one deadline.
    fn bounded_stream<T: Send + 'static>(
        &self,
        items: BoxStream<'static, object_store::Result<T>>,
    ) -> BoxStream<'static, object_store::Result<T>> {
        let (clock, limit) = (self.clock.clone(), self.limit);
        stream::once(async move {
            let all = clock::timeout(clock.as_ref(), limit, items.collect::<Vec<_>>()).await;
            stream::iter(all.unwrap_or_else(|| vec![Err(Self::timed_out(limit))]))
        })
        .flatten()
        .boxed()
    }
}

display_as!(TimeoutStore, "Timeout");

#[async_trait::async_trait]
impl ObjectStore for TimeoutStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let put = self.inner.put_opts(location, payload, opts);
        Self::bounded(self.clock.as_ref(), self.limit, put).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let head = options.head;
        let get = async {
            let result = self.inner.get_opts(location, options).await?;
            if head {
                return Ok(result);
            }
            buffered(result).await.map(|(result, _)| result)
        };
        Self::bounded(self.clock.as_ref(), self.limit, get).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.bounded_stream(self.inner.delete_stream(locations))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.bounded_stream(self.inner.list(prefix).into_stream().boxed())
    }

    pass_through!();
}
