//! `TikvStore`: the [`MetaStore`] on TiKV, through `tikv-client`'s
//! transactional API (built with the `tikv` feature: the client brings its
//! own older tonic/prost/hyper, which the default build leaves out).
//!
//! Every key lives under a namespace (`<namespace>/`), as on etcd. The trait
//! maps onto TiKV like this:
//!
//! * `get` and `scan`: a read-only snapshot at a timestamp fresh from PD, so
//!   a read sees every commit acknowledged before it began (linearizable,
//!   like etcd's default reads).
//! * `commit`: one optimistic transaction. Each checked key is read at the
//!   transaction's start timestamp and compared with [`crate::store::Check::holds`]; a
//!   failing check rolls back and reports its index. The checked keys are
//!   then *locked* (`lock_keys`), so they take part in the two-phase commit's
//!   conflict detection even when the transaction does not write them:
//!   without that, snapshot isolation would let a fenced commit (a check on
//!   an owner record, a write elsewhere) succeed after the owner changed.
//!   A write conflict means some key changed since the start timestamp: the
//!   whole commit (reads, compares, writes) runs again, at most
//!   [`CONFLICT_ROUNDS`] times, so a lost race ends as
//!   [`TxnOutcome::CheckFailed`] like on the other backends, not as an error.
//! * Errors: PD or TiKV unreachable, timeouts and region errors that the
//!   client's own retries did not absorb are [`MetaError::Backend`] naming
//!   the PD endpoints and the operation, as on etcd. A commit whose outcome
//!   is undetermined (the commit request's answer was lost) says so: the
//!   caller's retry re-reads its checks, which tells it whether it applied.
//! * History: TiKV keeps old MVCC versions until garbage collection, which
//!   runs below a GC safe point that clients advance through PD. As on
//!   etcd, [`MetaStore::compact_history`] uses the timestamp it took at its
//!   previous call (one interval ago; no Strata transaction lives that
//!   long): it resolves older locks and moves the safe point there. The
//!   safe point is cluster-wide, so run Strata on a TiKV cluster of its own
//!   or set `metadata.compact_history_interval_ms = 0` and leave GC to
//!   whatever already runs it.

use std::time::Duration;

use tikv_client::{
    BoundRange, CheckLevel, Config, Error as TikvError, Key, TimestampExt, TransactionClient,
    TransactionOptions,
};

use crate::address::TikvAddress;
use crate::store::{
    MetaError, MetaStore, Mutation, Txn, TxnOutcome, prefix_end, range_is_empty, validate_key,
    validate_scan, validate_txn,
};

/// How long one request (PD or TiKV) may take before it fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Times a commit is run again after a write conflict before it fails.
pub const CONFLICT_ROUNDS: usize = 8;

/// A [`MetaStore`] on a TiKV cluster.
pub struct TikvStore {
    client: TransactionClient,
    /// `<namespace>/`, prepended to every key.
    prefix: Vec<u8>,
    pd_endpoints: Vec<String>,
    /// The timestamp taken at the previous `compact_history` call.
    seen_timestamp: std::sync::Mutex<Option<tikv_client::Timestamp>>,
}

impl std::fmt::Debug for TikvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TikvStore")
            .field("pd_endpoints", &self.pd_endpoints)
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .finish()
    }
}

impl TikvStore {
    /// Connects through the PD endpoints `address` names and checks the
    /// cluster answers a read.
    pub async fn connect(address: &TikvAddress) -> Result<std::sync::Arc<Self>, MetaError> {
        let config = Config::default().with_timeout(REQUEST_TIMEOUT);
        let client = TransactionClient::new_with_config(address.pd_endpoints.clone(), config)
            .await
            .map_err(|e| backend(&address.pd_endpoints, "connect", e))?;
        let store = Self {
            client,
            prefix: format!("{}/", address.namespace).into_bytes(),
            pd_endpoints: address.pd_endpoints.clone(),
            seen_timestamp: std::sync::Mutex::new(None),
        };
        store.get(b"\0probe").await?;
        Ok(std::sync::Arc::new(store))
    }

    fn full_key(&self, key: &[u8]) -> Key {
        let mut full = Vec::with_capacity(self.prefix.len() + key.len());
        full.extend_from_slice(&self.prefix);
        full.extend_from_slice(key);
        full.into()
    }

    fn error(&self, what: &str, e: TikvError) -> MetaError {
        backend(&self.pd_endpoints, what, e)
    }

    /// A read-only snapshot at a fresh timestamp.
    async fn snapshot(&self) -> Result<tikv_client::Snapshot, MetaError> {
        let ts = self
            .client
            .current_timestamp()
            .await
            .map_err(|e| self.error("get a timestamp", e))?;
        Ok(self.client.snapshot(
            ts,
            TransactionOptions::new_optimistic()
                .read_only()
                .drop_check(CheckLevel::None),
        ))
    }

    /// One attempt at `txn`: `Ok(None)` when TiKV reported a write conflict.
    async fn try_commit(&self, txn: &Txn) -> Result<Option<TxnOutcome>, MetaError> {
        // Dropped unfinished (a cancelled request): TiKV cleans up the
        // locks of an uncommitted transaction; nothing to panic about.
        let options = TransactionOptions::new_optimistic().drop_check(CheckLevel::Warn);
        let mut t = self
            .client
            .begin_with_options(options)
            .await
            .map_err(|e| self.error("begin a transaction", e))?;
        for (index, check) in txn.checks.iter().enumerate() {
            let current = match t.get(self.full_key(check.key())).await {
                Ok(v) => v,
                Err(e) => {
                    let _ = t.rollback().await;
                    return Err(self.error("read a checked key", e));
                }
            };
            if !check.holds(current.as_deref()) {
                let _ = t.rollback().await;
                return Ok(Some(TxnOutcome::CheckFailed { index }));
            }
        }
        let checked: Vec<Key> = txn.checks.iter().map(|c| self.full_key(c.key())).collect();
        let staged = async {
            t.lock_keys(checked).await?;
            for m in &txn.mutations {
                match m {
                    Mutation::Put { key, value } => {
                        t.put(self.full_key(key), value.clone()).await?
                    }
                    Mutation::Delete { key } => t.delete(self.full_key(key)).await?,
                }
            }
            Ok::<_, TikvError>(())
        }
        .await;
        if let Err(e) = staged {
            let _ = t.rollback().await;
            return Err(self.error("stage a transaction", e));
        }
        match t.commit().await {
            Ok(_) => Ok(Some(TxnOutcome::Committed)),
            Err(e) if is_write_conflict(&e) => Ok(None),
            Err(TikvError::UndeterminedError(e)) => Err(MetaError::Backend(format!(
                "TiKV (PD {}): the commit's outcome is unknown (its answer was lost: {e}); \
                 it may have applied",
                self.pd_endpoints.join(",")
            ))),
            Err(e) => {
                let _ = t.rollback().await;
                Err(self.error("commit", e))
            }
        }
    }
}

fn backend(pd: &[String], what: &str, e: TikvError) -> MetaError {
    MetaError::Backend(format!("TiKV (PD {}): {what} failed: {e}", pd.join(",")))
}

/// A commit refused because a key it reads or writes changed since its
/// start timestamp (TiKV's `WriteConflict`), possibly among several keys'
/// errors.
fn is_write_conflict(e: &TikvError) -> bool {
    match e {
        TikvError::KeyError(k) => k.conflict.is_some() || k.already_exist.is_some(),
        TikvError::MultipleKeyErrors(v) | TikvError::ExtractedErrors(v) => {
            v.iter().any(is_write_conflict)
        }
        _ => false,
    }
}

#[async_trait::async_trait]
impl MetaStore for TikvStore {
    fn backend_name(&self) -> &'static str {
        "tikv"
    }

    async fn compact_history(&self) -> Result<Option<i64>, MetaError> {
        let now = self
            .client
            .current_timestamp()
            .await
            .map_err(|e| self.error("get a timestamp", e))?;
        let previous = {
            let mut seen = self
                .seen_timestamp
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            seen.replace(now)
        };
        let Some(safe_point) = previous else {
            return Ok(None);
        };
        let version = i64::try_from(safe_point.version()).unwrap_or(i64::MAX);
        self.client
            .gc(safe_point)
            .await
            .map_err(|e| self.error("garbage-collect old versions", e))?;
        Ok(Some(version))
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MetaError> {
        validate_key(key)?;
        let mut snapshot = self.snapshot().await?;
        snapshot
            .get(self.full_key(key))
            .await
            .map_err(|e| self.error("get", e))
    }

    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, MetaError> {
        validate_scan(limit)?;
        if range_is_empty(start, end) {
            return Ok(Vec::new());
        }
        let range_end: Key = if end.is_empty() {
            prefix_end(&self.prefix).into()
        } else {
            self.full_key(end)
        };
        let range: BoundRange = (self.full_key(start)..range_end).into();
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let mut snapshot = self.snapshot().await?;
        let pairs = snapshot
            .scan(range, limit)
            .await
            .map_err(|e| self.error("scan", e))?;
        let cut = self.prefix.len();
        Ok(pairs
            .map(|kv| {
                let key: Vec<u8> = kv.0.into();
                (key[cut..].to_vec(), kv.1)
            })
            .collect())
    }

    async fn commit(&self, txn: Txn) -> Result<TxnOutcome, MetaError> {
        validate_txn(&txn)?;
        for _ in 0..CONFLICT_ROUNDS {
            if let Some(outcome) = self.try_commit(&txn).await? {
                return Ok(outcome);
            }
        }
        Err(MetaError::Backend(format!(
            "TiKV (PD {}): the commit met a write conflict {CONFLICT_ROUNDS} times in a row",
            self.pd_endpoints.join(",")
        )))
    }
}
