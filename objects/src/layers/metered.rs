//! Counts what reaches the store (see [`crate::metrics`] for the rules): one
//! request per attempt, failures apart from "not found", attempts that ran
//! out of time, and the bytes that arrived.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ObjectMeta, ObjectStore, PutOptions, PutPayload, PutResult,
};

use super::{TIMEOUT, buffered, display_as, pass_through};
use crate::metrics::{Metrics, Op};

#[derive(Debug)]
pub(crate) struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

/// Counts a failed attempt; "not found" is an answer, not a failure.
fn count_failure(metrics: &Metrics, e: &object_store::Error) {
    match e {
        object_store::Error::NotFound { .. } => {}
        object_store::Error::Generic { store, .. } if *store == TIMEOUT => {
            metrics.timeout();
            metrics.error();
        }
        _ => metrics.error(),
    }
}

/// Counts the failures among a stream's items as they pass.
fn count_stream<T: Send + 'static>(
    metrics: &Arc<Metrics>,
    items: BoxStream<'static, object_store::Result<T>>,
) -> BoxStream<'static, object_store::Result<T>> {
    let metrics = metrics.clone();
    items
        .inspect(move |item| {
            if let Err(e) = item {
                count_failure(&metrics, e);
            }
        })
        .boxed()
}

display_as!(MeteredStore, "Metered");

#[async_trait::async_trait]
impl ObjectStore for MeteredStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.metrics.attempt(Op::Put);
        let len = payload.content_length() as u64;
        match self.inner.put_opts(location, payload, opts).await {
            Ok(put) => {
                self.metrics.put_bytes(len);
                Ok(put)
            }
            Err(e) => {
                count_failure(&self.metrics, &e);
                Err(e)
            }
        }
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let (op, head) = match (options.head, &options.range) {
            (true, _) => (Op::Head, true),
            (false, Some(_)) => (Op::GetRange, false),
            (false, None) => (Op::Get, false),
        };
        self.metrics.attempt(op);
        let got = async {
            let result = self.inner.get_opts(location, options).await?;
            if head {
                return Ok(result);
            }
            let (result, len) = buffered(result).await?;
            self.metrics.get_bytes(len as u64);
            Ok(result)
        };
        got.await.inspect_err(|e| count_failure(&self.metrics, e))
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let metrics = self.metrics.clone();
        let counted = locations
            .inspect(move |location| {
                if location.is_ok() {
                    metrics.attempt(Op::Delete);
                }
            })
            .boxed();
        count_stream(&self.metrics, self.inner.delete_stream(counted))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.metrics.attempt(Op::List);
        count_stream(&self.metrics, self.inner.list(prefix))
    }

    pass_through!();
}
