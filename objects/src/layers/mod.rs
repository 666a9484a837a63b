//! The layers every request passes through, each an [`ObjectStore`] that
//! wraps the next one, stacked by [`stack`]:
//!
//! ```text
//!   Objects          keys under the prefix, errors as ObjectError
//!     └ Retry        retries with exponential backoff and jitter
//!        └ Metered   counts attempts, failures, timeouts and bytes
//!           └ Timeout one deadline per attempt, body included
//!              └ Faults  injected outages, errors and latency (feature `faults`)
//!                 └ backend: S3, a local directory, or memory
//! ```
//!
//! Metered sits under Retry so that it counts every attempt, and over
//! Timeout so that it sees attempts that ran out of time. Faults sit under
//! Timeout, so injected latency trips the deadline exactly like a slow server.
//!
//! Strata uses `put`, `get` (whole, ranged and head), `list` and `delete`;
//! those go through every layer. Multipart uploads, copies and delimited
//! listings are passed straight down.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::{GetResult, GetResultPayload, ObjectStore};
use strata_common::Clock;

use crate::metrics::Metrics;

#[cfg(any(test, feature = "faults"))]
pub mod faults;
pub(crate) mod metered;
pub(crate) mod retry;
pub(crate) mod timeout;

/// How the layers behave: the object store config's retry policy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub timeout: Duration,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// Stacks the layers over `backend` in the order drawn above.
pub(crate) fn stack(
    backend: Arc<dyn ObjectStore>,
    policy: Policy,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    #[cfg(any(test, feature = "faults"))] faults: Arc<crate::Faults>,
) -> Arc<dyn ObjectStore> {
    #[cfg(any(test, feature = "faults"))]
    let backend: Arc<dyn ObjectStore> =
        Arc::new(faults::FaultStore::new(backend, faults, clock.clone()));
    let timed = Arc::new(timeout::TimeoutStore::new(
        backend,
        policy.timeout,
        clock.clone(),
    ));
    let metered = Arc::new(metered::MeteredStore::new(timed, metrics.clone()));
    Arc::new(retry::RetryStore::new(metered, policy, clock, metrics))
}

/// The name a layer gives its own errors (`object_store::Error::Generic`).
pub(crate) const TIMEOUT: &str = "timeout";

/// Reads a get's whole body into memory, so a layer's work (a deadline, a
/// retry, a byte count) covers the body and not just the response head.
/// Strata reads every object whole or by range, so nothing is lost by it.
pub(crate) async fn buffered(mut result: GetResult) -> object_store::Result<(GetResult, usize)> {
    let payload = std::mem::replace(
        &mut result.payload,
        GetResultPayload::Stream(futures::stream::empty().boxed()),
    );
    let body: Bytes = GetResult {
        payload,
        meta: result.meta.clone(),
        range: result.range.clone(),
        attributes: Default::default(),
        extensions: Default::default(),
    }
    .bytes()
    .await?;
    let len = body.len();
    result.payload = GetResultPayload::Stream(futures::stream::once(async { Ok(body) }).boxed());
    Ok((result, len))
}

/// Implements the `ObjectStore` methods Strata does not use by handing them
/// to the next layer unchanged. Spelled as `#[async_trait]` expands them,
/// because the attribute does not see into macros.
macro_rules! pass_through {
    () => {
        fn put_multipart_opts<'a, 'b, 'f>(
            &'a self,
            location: &'b object_store::path::Path,
            opts: object_store::PutMultipartOptions,
        ) -> futures::future::BoxFuture<
            'f,
            object_store::Result<Box<dyn object_store::MultipartUpload>>,
        >
        where
            'a: 'f,
            'b: 'f,
            Self: 'f,
        {
            self.inner.put_multipart_opts(location, opts)
        }

        fn list_with_delimiter<'a, 'b, 'f>(
            &'a self,
            prefix: Option<&'b object_store::path::Path>,
        ) -> futures::future::BoxFuture<'f, object_store::Result<object_store::ListResult>>
        where
            'a: 'f,
            'b: 'f,
            Self: 'f,
        {
            self.inner.list_with_delimiter(prefix)
        }

        fn copy_opts<'a, 'b, 'c, 'f>(
            &'a self,
            from: &'b object_store::path::Path,
            to: &'c object_store::path::Path,
            options: object_store::CopyOptions,
        ) -> futures::future::BoxFuture<'f, object_store::Result<()>>
        where
            'a: 'f,
            'b: 'f,
            'c: 'f,
            Self: 'f,
        {
            self.inner.copy_opts(from, to, options)
        }
    };
}
pub(crate) use pass_through;

/// Names a layer in `Display`, as `object_store`'s own wrappers do.
macro_rules! display_as {
    ($ty:ty, $name:literal) => {
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!($name, "({})"), self.inner)
            }
        }
    };
}
pub(crate) use display_as;
