//! Which object store to talk to and how patiently.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::client::SpawnedReqwestConnector;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

use crate::local::DurableLocal;
use crate::store::ObjectError;

/// The storage service behind [`crate::Objects`].
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    /// Process-local and lost on exit: tests and single-process demos only.
    Memory,
    /// A directory on the local filesystem (created if missing).
    Local { root: PathBuf },
    /// Amazon S3 or an S3-compatible server. With `endpoint` set, requests are
    /// path-style (`endpoint/bucket/key`), which is what MinIO/SeaweedFS need.
    /// Credentials left as `None` come from the usual AWS environment chain
    /// (`AmazonS3Builder::from_env`).
    S3 {
        bucket: String,
        endpoint: Option<String>,
        region: Option<String>,
        allow_http: bool,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
    },
}

/// How to reach the object store and how hard to try.
///
/// There is deliberately no `Default`: an in-memory store silently loses
/// data, so a server must name its backend. Use [`ObjectStoreConfig::local`],
/// [`ObjectStoreConfig::memory`] or [`ObjectStoreConfig::new`].
#[derive(Debug, Clone)]
pub struct ObjectStoreConfig {
    pub backend: Backend,
    /// Key prefix for everything this process stores; may be empty. Lets
    /// several clusters or test runs share one bucket.
    pub prefix: String,
    /// Limit on each attempt (not the whole call).
    pub timeout: Duration,
    /// Attempts per call, including the first; at least 1 is always made.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each retry.
    pub backoff_base: Duration,
    /// Cap on the delay between retries.
    pub backoff_max: Duration,
}

impl ObjectStoreConfig {
    /// A config with production timeouts: 30 s per attempt, 5 attempts,
    /// backoff from 100 ms up to 5 s.
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            prefix: String::new(),
            timeout: Duration::from_secs(30),
            max_attempts: 5,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }

    /// A local-directory store rooted at `root`.
    pub fn local(root: impl Into<PathBuf>) -> Self {
        Self::new(Backend::Local { root: root.into() })
    }

    /// An in-memory store (tests).
    pub fn memory() -> Self {
        Self::new(Backend::Memory)
    }

    /// The same config with a key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

/// Builds the underlying store and a human-readable description of it.
pub(crate) fn build_store(
    config: &ObjectStoreConfig,
) -> Result<(Arc<dyn ObjectStore>, String), ObjectError> {
    let prefix = normalize_prefix(&config.prefix)?;
    match &config.backend {
        Backend::Memory => Ok((
            Arc::new(InMemory::new()),
            describe(&config.backend, &prefix),
        )),
        Backend::Local { root } => {
            std::fs::create_dir_all(root).map_err(|e| {
                ObjectError::Config(format!("cannot create {}: {e}", root.display()))
            })?;
            let root = std::fs::canonicalize(root).map_err(|e| {
                ObjectError::Config(format!("cannot resolve {}: {e}", root.display()))
            })?;
            remove_staging_files(&root);
            let store = LocalFileSystem::new_with_prefix(&root)
                .map_err(|e| {
                    ObjectError::Config(format!("local store at {}: {e}", root.display()))
                })?
                .with_automatic_cleanup(true)
                // What `DurableLocal` passes down must be durable too (the
                // crate does not sync by default).
                .with_fsync(true);
            let store = DurableLocal::new(store, root.clone());
            let description = describe(&Backend::Local { root }, &prefix);
            Ok((Arc::new(store), description))
        }
        Backend::S3 {
            bucket,
            endpoint,
            region,
            allow_http,
            access_key_id,
            secret_access_key,
        } => {
            // Retries belong to our wrapper, which counts and logs them; the
            // client's own retries would hide requests from the metrics.
            let retry = RetryConfig {
                max_retries: 0,
                ..RetryConfig::default()
            };
            // Client options first: `with_allow_http` writes into them, and
            // `with_client_options` would replace that setting.
            let mut builder = AmazonS3Builder::from_env()
                .with_client_options(ClientOptions::new().with_timeout(config.timeout))
                .with_allow_http(*allow_http)
                .with_bucket_name(bucket)
                .with_retry(retry);
            if let Some(endpoint) = endpoint {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_virtual_hosted_style_request(false);
            }
            if let Some(region) = region {
                builder = builder.with_region(region);
            }
            if let Some(key) = access_key_id {
                builder = builder.with_access_key_id(key);
            }
            if let Some(secret) = secret_access_key {
                builder = builder.with_secret_access_key(secret);
            }
            // Connections live on the runtime that opens the store (the
            // server's), not on whichever runtime makes a request: one the
            // niced compaction runtime opened would otherwise be driven by
            // its single thread when a reader reuses it, and die with it.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                builder = builder.with_http_connector(SpawnedReqwestConnector::new(runtime));
            }
            let store = builder
                .build()
                .map_err(|e| ObjectError::Config(format!("s3 bucket {bucket}: {e}")))?;
            Ok((Arc::new(store), describe(&config.backend, &prefix)))
        }
    }
}

/// Trims surrounding slashes and rejects prefixes that are not valid keys
/// (empty segments, `.` or `..`, control characters).
pub fn normalize_prefix(prefix: &str) -> Result<String, ObjectError> {
    let trimmed = prefix.trim_matches('/');
    if !trimmed.is_empty() {
        let parsed = object_store::path::Path::parse(trimmed)
            .map_err(|e| ObjectError::Config(format!("invalid key prefix {prefix:?}: {e}")))?;
        if parsed.as_ref() != trimmed {
            return Err(ObjectError::Config(format!(
                "invalid key prefix {prefix:?}"
            )));
        }
    }
    Ok(trimmed.to_string())
}

/// E.g. `s3://bucket/prefix (endpoint http://127.0.0.1:18333)` or
/// `file:///var/lib/strata/prefix`; for logs and status pages.
pub(crate) fn describe(backend: &Backend, prefix: &str) -> String {
    let join = |base: String| {
        if prefix.is_empty() {
            base
        } else {
            format!("{}/{prefix}", base.trim_end_matches('/'))
        }
    };
    match backend {
        Backend::Memory => format!("memory://{prefix}"),
        Backend::Local { root } => {
            let root = root.display().to_string();
            let sep = if root.starts_with('/') { "" } else { "/" };
            join(format!("file://{sep}{root}"))
        }
        Backend::S3 {
            bucket, endpoint, ..
        } => {
            let base = join(format!("s3://{bucket}"));
            match endpoint {
                Some(endpoint) => format!("{base} (endpoint {endpoint})"),
                None => base,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uploads replace WAL segments that are deleted once the upload commits,
    /// so a local store must sync what it writes: without it, an object
    /// still in the page cache at a power loss is lost with its segments.
    #[test]
    fn local_store_syncs_its_writes() {
        let dir = tempfile::tempdir().unwrap();
        let config = ObjectStoreConfig::new(Backend::Local {
            root: dir.path().to_path_buf(),
        });
        let (store, _) = build_store(&config).unwrap();
        let shown = format!("{store:?}");
        assert!(shown.starts_with("DurableLocal"), "{shown}");
        assert!(shown.contains("fsync: true"), "{shown}");
    }

    #[test]
    fn descriptions_name_backend_and_prefix() {
        let s3 = |endpoint: Option<&str>| Backend::S3 {
            bucket: "b".into(),
            endpoint: endpoint.map(String::from),
            region: None,
            allow_http: true,
            access_key_id: None,
            secret_access_key: None,
        };
        assert_eq!(describe(&s3(None), "p/q"), "s3://b/p/q");
        assert_eq!(
            describe(&s3(Some("http://127.0.0.1:18333")), ""),
            "s3://b (endpoint http://127.0.0.1:18333)"
        );
        assert_eq!(
            describe(
                &Backend::Local {
                    root: "/var/strata".into()
                },
                "p"
            ),
            "file:///var/strata/p"
        );
        assert_eq!(describe(&Backend::Memory, ""), "memory://");
    }

    #[test]
    fn prefixes_are_trimmed_and_validated() {
        assert_eq!(normalize_prefix("/a/b/").unwrap(), "a/b");
        assert_eq!(normalize_prefix("").unwrap(), "");
        assert!(matches!(
            normalize_prefix("a//b"),
            Err(ObjectError::Config(_))
        ));
    }

    #[test]
    fn defaults_match_the_documented_policy() {
        let c = ObjectStoreConfig::local("/tmp/x");
        assert_eq!(
            c.backend,
            Backend::Local {
                root: "/tmp/x".into()
            }
        );
        assert_eq!(
            (c.timeout, c.max_attempts, c.backoff_base, c.backoff_max),
            (
                Duration::from_secs(30),
                5,
                Duration::from_millis(100),
                Duration::from_secs(5)
            )
        );
    }
}

/// Deletes the staging files a local PUT leaves behind when the process dies
/// mid-write: object_store writes `<key>#<n>` and renames it into place, and
/// its listings skip such names, so garbage collection would never see them.
/// Called when the store is opened, before this process starts any PUT (the
/// data directory lock keeps other processes out).
pub(crate) fn remove_staging_files(root: &std::path::Path) -> usize {
    let mut removed = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let is_staging = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.rsplit_once('#'))
                .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if is_staging && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, root = %root.display(), "removed staging files of interrupted uploads");
    }
    removed
}

#[cfg(test)]
mod staging_tests {
    use super::*;

    #[test]
    fn only_interrupted_upload_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("seg/node-1");
        std::fs::create_dir_all(&nested).unwrap();
        for name in ["a.seg", "a.seg#1", "b.seg#23", "c#x", "d#"] {
            std::fs::write(nested.join(name), b"x").unwrap();
        }
        assert_eq!(remove_staging_files(dir.path()), 2);
        let mut left: Vec<_> = std::fs::read_dir(&nested)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["a.seg", "c#x", "d#"]);
    }
}
