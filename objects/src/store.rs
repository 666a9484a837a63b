//! [`Objects`]: the one door to object storage.
//!
//! Every Strata read and write of object storage goes through this type, and
//! through the [layers](crate::layers) it stacks over the backend, so that
//! timeouts, retries, metrics and fault injection apply the same way
//! everywhere. Callers see the data, "not found", "rejected", or
//! "unavailable after N attempts".

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use strata_common::Clock;

use crate::config::{ObjectStoreConfig, build_store, describe};
use crate::layers::retry::{GaveUp, RETRY};
use crate::layers::{Policy, stack};
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
    /// The backend under every layer.
    store: Arc<dyn ObjectStore>,
    /// Normalized key prefix (no leading/trailing `/`), may be empty.
    prefix: String,
    description: String,
    metrics: Arc<Metrics>,
    #[cfg(any(test, feature = "faults"))]
    faults: Arc<crate::Faults>,
}

impl Objects {
    /// Connects to the configured backend (a `Local` root is created if
    /// missing). No request is sent; an unreachable S3 endpoint surfaces on
    /// first use as [`ObjectError::Unavailable`]. Timeouts and backoff run
    /// on `clock`.
    pub fn open(config: &ObjectStoreConfig, clock: Arc<dyn Clock>) -> Result<Self, ObjectError> {
        let (store, description) = build_store(config)?;
        Ok(Self::from_parts(store, config, description, clock))
    }

    /// Wraps an existing store (tests, or custom stores) with the config's
    /// prefix and retry policy; the config's backend is used only in
    /// [`Objects::describe`]. An invalid prefix makes every request fail with
    /// [`ObjectError::Rejected`] (use [`Objects::open`] to get it up front).
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        config: &ObjectStoreConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let prefix = config.prefix.trim_matches('/');
        Self::from_parts(store, config, describe(&config.backend, prefix), clock)
    }

    fn from_parts(
        backend: Arc<dyn ObjectStore>,
        config: &ObjectStoreConfig,
        description: String,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let policy = Policy {
            timeout: config.timeout,
            max_attempts: config.max_attempts,
            backoff_base: config.backoff_base,
            backoff_max: config.backoff_max,
        };
        let metrics = Arc::new(Metrics::default());
        #[cfg(any(test, feature = "faults"))]
        let faults = Arc::new(crate::Faults::default());
        let store = stack(
            backend,
            policy,
            clock,
            metrics.clone(),
            #[cfg(any(test, feature = "faults"))]
            faults.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                store,
                prefix: config.prefix.trim_matches('/').to_string(),
                description,
                metrics,
                #[cfg(any(test, feature = "faults"))]
                faults,
            }),
        }
    }

    /// Stores `data` under `key`, replacing any previous object.
    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectError> {
        let path = &self.path(Op::Put, key)?;
        let put = self.inner.store.put(path, PutPayload::from(data));
        self.answer(Op::Put, key, put.await).map(drop)
    }

    /// Stores the concatenation of `parts` under `key` (one object, one
    /// PUT), replacing any previous object, without copying them into one
    /// buffer.
    pub async fn put_parts(&self, key: &str, parts: Vec<Bytes>) -> Result<(), ObjectError> {
        let path = &self.path(Op::Put, key)?;
        let put = self.inner.store.put(path, parts.into_iter().collect());
        self.answer(Op::Put, key, put.await).map(drop)
    }

    /// Reads a whole object.
    pub async fn get(&self, key: &str) -> Result<Bytes, ObjectError> {
        let path = &self.path(Op::Get, key)?;
        let store = &self.inner.store;
        let got = async { store.get(path).await?.bytes().await };
        self.answer(Op::Get, key, got.await)
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
        let got = self.inner.store.get_range(path, range).await;
        self.answer(Op::GetRange, key, got)
    }

    /// Size and modification time of an object, or `None` if it is missing.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, ObjectError> {
        let path = &self.path(Op::Head, key)?;
        match self.answer(Op::Head, key, self.inner.store.head(path).await) {
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
        let listed = self.inner.store.list(dir_path.as_ref());
        let listed = listed.try_collect::<Vec<ObjectMeta>>().await;
        let metas = match self.answer(Op::List, prefix, listed) {
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
        match self.answer(Op::Delete, key, self.inner.store.delete(path).await) {
            Ok(()) | Err(ObjectError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A snapshot of the request counters (see [`crate::metrics`] for the
    /// counting rule: one count per attempt).
    pub fn metrics(&self) -> ObjectMetrics {
        self.inner.metrics.snapshot()
    }

    /// Fault-injection switches, shared by all clones (tests and the
    /// `faults` feature only).
    #[cfg(any(test, feature = "faults"))]
    pub fn faults(&self) -> &crate::Faults {
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

    /// Turns what the layers answered into one of the caller's outcomes.
    fn answer<T>(
        &self,
        op: Op,
        key: &str,
        result: object_store::Result<T>,
    ) -> Result<T, ObjectError> {
        let e = match result {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        Err(match e {
            object_store::Error::NotFound { .. } => ObjectError::NotFound {
                key: key.to_string(),
            },
            object_store::Error::Generic { store, source } if store == RETRY => {
                match source.downcast::<GaveUp>() {
                    Ok(gave_up) => ObjectError::Unavailable {
                        op: op.name(),
                        key: key.to_string(),
                        attempts: gave_up.attempts,
                        reason: with_causes(&gave_up.last),
                    },
                    Err(source) => unavailable(op, key, &with_causes(source.as_ref())),
                }
            }
            e if crate::layers::retry::is_permanent(&e) => rejected(op, key, &with_causes(&e)),
            // The retry layer names its attempts; anything else failed once.
            e => unavailable(op, key, &with_causes(&e)),
        })
    }
}

/// An error's text with the causes it does not already end with: the
/// HTTP client's own says only "error sending request", its causes say
/// why (connection refused, a DNS name that does not resolve).
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

fn unavailable(op: Op, key: &str, reason: &str) -> ObjectError {
    ObjectError::Unavailable {
        op: op.name(),
        key: key.to_string(),
        attempts: 1,
        reason: reason.to_string(),
    }
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

#[cfg(test)]
mod tests {
    use super::with_causes;

    #[test]
    fn an_error_text_names_its_causes_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("error sending request")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        assert_eq!(with_causes(&e), "error sending request: connection refused");
        #[derive(Debug, thiserror::Error)]
        #[error("request failed: connection refused")]
        struct Repeats(#[source] std::io::Error);
        let e = Repeats(std::io::Error::other("connection refused"));
        assert_eq!(with_causes(&e), "request failed: connection refused");
    }
}
