//! [`Objects`]: the one door to object storage.
//!
//! Every Strata read and write of object storage goes through this type so
//! that timeouts, retries, metrics and fault injection are applied the same
//! way everywhere, and callers only see three outcomes: the data, "not
//! found", or "unavailable after N attempts".

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};

use crate::config::{ObjectStoreConfig, build_store, describe};
use crate::faults::{Faults, InjectedFault};
use crate::metrics::{Metrics, ObjectMetrics, Op};

/// What can go wrong talking to the object store.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The object does not exist. Never retried: it is an answer, not a failure.
    #[error("object {key} not found")]
    NotFound { key: String },
    /// Every attempt failed (transport error, timeout, or injected fault).
    #[error("object store {op} of {key} failed after {attempts} attempt(s): {reason}")]
    Unavailable {
        op: &'static str,
        key: String,
        attempts: u32,
        reason: String,
    },
    /// The store refused the request in a way retrying cannot fix (invalid
    /// key, permission denied, unsupported operation). Not retried.
    #[error("object store {op} of {key} rejected: {reason}")]
    Rejected {
        op: &'static str,
        key: String,
        reason: String,
    },
    /// The configuration cannot produce a working store.
    #[error("object store configuration: {0}")]
    Config(String),
}

/// One object as listed or probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The key as callers name it, without the configured prefix.
    pub key: String,
    pub size: u64,
    pub last_modified_ms: i64,
}

/// Handle to the configured object store; cheap to clone, clones share
/// metrics and fault switches.
#[derive(Clone, Debug)]
pub struct Objects {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn ObjectStore>,
    /// Normalized key prefix (no leading/trailing `/`), may be empty.
    prefix: String,
    timeout: Duration,
    max_attempts: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    description: String,
    metrics: Metrics,
    faults: Faults,
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Store(object_store::Error),
    #[error("{0}")]
    Injected(InjectedFault),
    #[error("attempt timed out after {0:?}")]
    Timeout(Duration),
}

impl Objects {
    /// Connects to the configured backend (a `Local` root is created if
    /// missing). No request is sent; an unreachable S3 endpoint surfaces on
    /// first use as [`ObjectError::Unavailable`].
    pub fn open(config: &ObjectStoreConfig) -> Result<Self, ObjectError> {
        let (store, description) = build_store(config)?;
        Ok(Self::from_parts(store, config, description))
    }

    /// Wraps an existing store (tests, or custom stores) with the config's
    /// prefix and retry policy; the config's backend is used only in
    /// [`Objects::describe`]. An invalid prefix makes every request fail with
    /// [`ObjectError::Rejected`] (use [`Objects::open`] to get it up front).
    pub fn with_store(store: Arc<dyn ObjectStore>, config: &ObjectStoreConfig) -> Self {
        let prefix = config.prefix.trim_matches('/');
        Self::from_parts(store, config, describe(&config.backend, prefix))
    }

    fn from_parts(
        store: Arc<dyn ObjectStore>,
        config: &ObjectStoreConfig,
        description: String,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                prefix: config.prefix.trim_matches('/').to_string(),
                timeout: config.timeout,
                max_attempts: config.max_attempts.max(1),
                backoff_base: config.backoff_base,
                backoff_max: config.backoff_max,
                description,
                metrics: Metrics::default(),
                faults: Faults::default(),
            }),
        }
    }

    /// Stores `data` under `key`, replacing any previous object.
    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectError> {
        let path = &self.path(Op::Put, key)?;
        let store = &self.inner.store;
        let data = &data;
        self.run(Op::Put, key, || async move {
            store.put(path, PutPayload::from(data.clone())).await
        })
        .await?;
        self.inner.metrics.put_bytes(data.len() as u64);
        Ok(())
    }

    /// Reads a whole object.
    pub async fn get(&self, key: &str) -> Result<Bytes, ObjectError> {
        let path = &self.path(Op::Get, key)?;
        let store = &self.inner.store;
        let bytes = self
            .run(Op::Get, key, || async move {
                store.get(path).await?.bytes().await
            })
            .await?;
        self.inner.metrics.get_bytes(bytes.len() as u64);
        Ok(bytes)
    }

    /// Reads `range` of an object. An empty range returns empty bytes without
    /// a request; a range past the end of the object returns what exists
    /// (callers that need exact lengths must check).
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectError> {
        let path = &self.path(Op::GetRange, key)?;
        if range.start > range.end {
            return Err(ObjectError::Rejected {
                op: Op::GetRange.name(),
                key: key.to_string(),
                reason: format!("inverted range {}..{}", range.start, range.end),
            });
        }
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let store = &self.inner.store;
        let range = &range;
        let bytes = self
            .run(Op::GetRange, key, || async move {
                store.get_range(path, range.clone()).await
            })
            .await?;
        self.inner.metrics.get_bytes(bytes.len() as u64);
        Ok(bytes)
    }

    /// Size and modification time of an object, or `None` if it is missing.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, ObjectError> {
        let path = &self.path(Op::Head, key)?;
        let store = &self.inner.store;
        match self
            .run(Op::Head, key, || async move { store.head(path).await })
            .await
        {
            Ok(meta) => Ok(Some(info(key.to_string(), &meta))),
            Err(ObjectError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// All objects whose key starts with `prefix` (a plain string prefix, so
    /// `"seg/0001"` matches `"seg/00012"`), sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, ObjectError> {
        // The store lists whole directories; list the deepest directory that
        // contains the prefix and filter by string below.
        let dir = prefix.rfind('/').map_or("", |i| &prefix[..i]);
        let dir_path = if self.inner.prefix.is_empty() && dir.is_empty() {
            None
        } else {
            Some(self.root_path(Op::List, dir)?)
        };
        let store = &self.inner.store;
        let dir_path = dir_path.as_ref();
        let listed = self.run(Op::List, prefix, || async move {
            store.list(dir_path).try_collect::<Vec<ObjectMeta>>().await
        });
        let metas = match listed.await {
            Ok(metas) => metas,
            // Some stores report a missing directory instead of an empty list.
            Err(ObjectError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let root = if self.inner.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.inner.prefix)
        };
        let mut out: Vec<ObjectInfo> = metas
            .iter()
            .filter_map(|meta| {
                let key = meta.location.as_ref().strip_prefix(root.as_str())?;
                key.starts_with(prefix).then(|| info(key.to_string(), meta))
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Deletes an object; deleting a missing object succeeds, so deletes can
    /// be retried and repeated freely.
    pub async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let path = &self.path(Op::Delete, key)?;
        let store = &self.inner.store;
        match self
            .run(Op::Delete, key, || async move { store.delete(path).await })
            .await
        {
            Ok(()) | Err(ObjectError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A snapshot of the request counters (see [`crate::metrics`] for the
    /// counting rule: one count per attempt).
    pub fn metrics(&self) -> ObjectMetrics {
        self.inner.metrics.snapshot()
    }

    /// Fault-injection switches, shared by all clones.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Where the objects live, e.g. `s3://bucket/prefix (endpoint http://127.0.0.1:18333)`.
    pub fn describe(&self) -> String {
        self.inner.description.clone()
    }

    /// Maps a caller key to a store path under the prefix. Keys must be
    /// non-empty `/`-separated segments that the store keeps verbatim, so a
    /// listed key always equals the key it was written under.
    fn path(&self, op: Op, key: &str) -> Result<Path, ObjectError> {
        if key.is_empty() || key.starts_with('/') || key.ends_with('/') {
            return Err(rejected(
                op,
                key,
                "keys must be non-empty and not start or end with '/'",
            ));
        }
        self.root_path(op, key)
    }

    fn root_path(&self, op: Op, key: &str) -> Result<Path, ObjectError> {
        let full = if self.inner.prefix.is_empty() {
            key.to_string()
        } else if key.is_empty() {
            self.inner.prefix.clone()
        } else {
            format!("{}/{key}", self.inner.prefix)
        };
        match Path::parse(&full) {
            Ok(path) if path.as_ref() == full => Ok(path),
            Ok(_) => Err(rejected(op, key, "key is not in canonical form")),
            Err(e) => Err(rejected(op, key, &e.to_string())),
        }
    }

    /// Runs one logical request: attempts with a per-attempt timeout, retried
    /// with exponential backoff and jitter until success, a non-retryable
    /// answer, or `max_attempts`.
    async fn run<T, F, Fut>(&self, op: Op, key: &str, mut attempt_fn: F) -> Result<T, ObjectError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = object_store::Result<T>>,
    {
        let inner = &self.inner;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            inner.metrics.attempt(op);
            let one = async {
                inner
                    .faults
                    .before_attempt()
                    .await
                    .map_err(Failure::Injected)?;
                attempt_fn().await.map_err(Failure::Store)
            };
            let failure = match tokio::time::timeout(inner.timeout, one).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(failure)) => failure,
                Err(_) => {
                    inner.metrics.timeout();
                    Failure::Timeout(inner.timeout)
                }
            };
            if let Failure::Store(object_store::Error::NotFound { .. }) = failure {
                return Err(ObjectError::NotFound {
                    key: key.to_string(),
                });
            }
            inner.metrics.error();
            if let Failure::Store(e) = &failure
                && is_permanent(e)
            {
                tracing::warn!(op = op.name(), key, error = %e, "object store rejected request");
                return Err(rejected(op, key, &e.to_string()));
            }
            if attempt >= inner.max_attempts {
                tracing::warn!(op = op.name(), key, attempt, error = %failure, "object store request failed; giving up");
                return Err(ObjectError::Unavailable {
                    op: op.name(),
                    key: key.to_string(),
                    attempts: attempt,
                    reason: failure.to_string(),
                });
            }
            let delay = self.backoff(attempt);
            inner.metrics.retry();
            tracing::warn!(
                op = op.name(),
                key,
                attempt,
                max_attempts = inner.max_attempts,
                delay_ms = delay.as_millis() as u64,
                error = %failure,
                "object store request failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// `base * 2^(attempt-1)` capped at `backoff_max`, then "equal jitter"
    /// (50–100 % of that) so many clients retrying together spread out.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        let delay = self
            .inner
            .backoff_base
            .saturating_mul(exp)
            .min(self.inner.backoff_max);
        delay.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// Errors that will not go away by asking again.
fn is_permanent(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    matches!(
        e,
        E::InvalidPath { .. }
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

fn rejected(op: Op, key: &str, reason: &str) -> ObjectError {
    ObjectError::Rejected {
        op: op.name(),
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

fn info(key: String, meta: &ObjectMeta) -> ObjectInfo {
    ObjectInfo {
        key,
        size: meta.size,
        last_modified_ms: meta.last_modified.timestamp_millis(),
    }
}
