//! `EtcdStore`: the [`MetaStore`] on an etcd v3 cluster, for nodes that share
//! their metadata (cluster mode, or a compactor in its own process).
//!
//! Every key lives under a namespace (`<namespace>/`), so clusters and test
//! runs can share one etcd. The trait maps onto etcd like this:
//!
//! * `get`: a linearizable `Range` of one key.
//! * `scan(start, end, limit)`: a linearizable `Range` over
//!   `[ns + start, ns + end)` (an empty `end` is the end of the namespace),
//!   at most `limit` keys, in key order.
//! * `commit`: one `Txn`. Each [`Check`] becomes a compare:
//!   `Absent` is `create_revision == 0`, `Present` is `create_revision > 0`,
//!   `ValueEquals` is `value == v` (which etcd fails for a missing key).
//!   The `Then` branch holds the mutations; etcd refuses two writes of one
//!   key in a txn, so only the last mutation of each key is sent, which is
//!   what applying them in order leaves. The `Else` branch reads every
//!   checked key, so the index of the first failing check is found from
//!   values read atomically with the compares.
//!
//! etcd keeps every superseded value (one revision per write) until it is
//! compacted; left alone, its database grows with every write until it hits
//! its quota and refuses all writes. [`MetaStore::compact_history`]
//! compacts to the revision seen at its previous call, as Kubernetes'
//! API server does: each node calls it every few minutes, so about one
//! interval of history is kept, and compactions by several nodes only
//! ever move the floor up.
//!
//! etcd bounds a txn: at most `--max-txn-ops` compares (and as many writes)
//! and `--max-request-bytes` per request. Strata commits up to a topic's
//! queue count, an index batch or an acknowledgement of up to 1000 receipt
//! handles (two ops each) in one txn, so run etcd with
//! `--max-txn-ops 65536 --max-request-bytes 33554432` (see "Metadata
//! backends" in `docs/architecture.md`); a txn over the limit fails with a
//! [`MetaError::Backend`] that says so, and writes nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, GetOptions, KvClient,
    Txn as EtcdTxn, TxnOp, TxnOpResponse,
};

use crate::address::EtcdAddress;
use crate::store::{
    Check, MetaError, MetaStore, Mutation, Txn, TxnOutcome, prefix_end, range_is_empty,
    validate_key, validate_scan, validate_txn,
};

/// How long one request may take before it fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to an endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Rounds over the members a request makes before it fails.
const ROUNDS: usize = 2;
/// Attempts of one request that may end in a timeout before it fails.
const MAX_TIMEOUTS: usize = 2;

/// A [`MetaStore`] on an etcd v3 cluster.
///
/// It keeps one client per member and sends every request to the member
/// that last answered. A member that does not answer (connection refused
/// or reset, request timed out) is left for the next one. The request
/// itself is retried there if that is safe: any read, and a commit only
/// when it was never sent (the connection was refused), since a commit
/// whose answer was lost may have applied. So a dead member costs one
/// refused connection, and a hung or partitioned one at most one failed
/// commit per request timeout. (A balanced channel over all members kept
/// picking the dead one.)
pub struct EtcdStore {
    /// One client per member, in the order given.
    members: Vec<KvClient>,
    /// Index into `members` of the one requests go to.
    current: AtomicUsize,
    /// `<namespace>/`, prepended to every key.
    prefix: Vec<u8>,
    endpoints: Vec<String>,
    /// The cluster's revision at the previous `compact_history` call.
    seen_revision: std::sync::Mutex<Option<i64>>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .finish()
    }
}

impl EtcdStore {
    /// Connects to the cluster `address` names and checks it answers.
    pub async fn connect(address: &EtcdAddress) -> Result<std::sync::Arc<Self>, MetaError> {
        Self::connect_once(address)
            .await
            .map_err(Refusal::into_error)
    }

    /// [`EtcdStore::connect`], waiting up to `wait` (on `clock`) while no
    /// member answers, saying so every few seconds: nodes and etcd members
    /// may start in any order. Any other error ends the wait at once.
    pub async fn connect_waiting(
        address: &EtcdAddress,
        wait: Duration,
        clock: &dyn strata_common::Clock,
    ) -> Result<std::sync::Arc<Self>, MetaError> {
        const RETRY_EVERY: Duration = Duration::from_secs(2);
        let started = clock.monotonic();
        let mut waited_before = false;
        loop {
            match Self::connect_once(address).await {
                Ok(store) => {
                    if waited_before {
                        tracing::info!(endpoints = %address.endpoints.join(","), "etcd answers");
                    }
                    return Ok(store);
                }
                Err(Refusal::Unreachable(e)) => {
                    let waited = clock.monotonic().saturating_sub(started);
                    if waited >= wait {
                        return Err(match waited_before {
                            true => MetaError::Backend(format!(
                                "{e} (waited {} s, metadata.connect_wait_ms)",
                                waited.as_secs()
                            )),
                            false => MetaError::Backend(e),
                        });
                    }
                    tracing::warn!(error = %e, waited_s = waited.as_secs(),
                        left_s = (wait - waited).as_secs(), "waiting for etcd");
                    waited_before = true;
                    clock.sleep(RETRY_EVERY.min(wait - waited)).await;
                }
                Err(other) => return Err(other.into_error()),
            }
        }
    }

    async fn connect_once(address: &EtcdAddress) -> Result<std::sync::Arc<Self>, Refusal> {
        let endpoints: Vec<String> = address
            .endpoints
            .iter()
            .map(|e| format!("http://{e}"))
            .collect();
        let options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        let mut members = Vec::with_capacity(endpoints.len());
        for endpoint in &endpoints {
            // Connects lazily: a member that is down now is tried later.
            let client = Client::connect([endpoint], Some(options.clone()))
                .await
                .map_err(|e| Refusal::Other(backend(&address.endpoints, "connect", e)))?;
            members.push(client.kv_client());
        }
        let store = Self {
            members,
            current: AtomicUsize::new(0),
            prefix: format!("{}/", address.namespace).into_bytes(),
            endpoints: address.endpoints.clone(),
            seen_revision: std::sync::Mutex::new(None),
        };
        // A cheap linearizable read on every member in turn: fails now,
        // not at the first request, when none answers.
        let mut last = None;
        for kv in &store.members {
            match kv.clone().get(store.full_key(b"\0probe"), None).await {
                Ok(_) => return Ok(std::sync::Arc::new(store)),
                Err(e) if is_transport(&e) || never_sent(&e) => last = Some(e),
                Err(e) => return Err(Refusal::Other(store.error("read", e))),
            }
        }
        let why = last.map_or_else(|| "no members configured".to_owned(), |e| root_cause(&e));
        Err(Refusal::Unreachable(format!(
            "no etcd member answers at {} ({why})",
            address.endpoints.join(",")
        )))
    }

    fn full_key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.prefix.len() + key.len());
        full.extend_from_slice(&self.prefix);
        full.extend_from_slice(key);
        full
    }

    fn error(&self, what: &str, e: etcd_client::Error) -> MetaError {
        backend(&self.endpoints, what, e)
    }

    /// Runs `request` on the current member, moving on to the next one
    /// while `may_retry` says the failure left nothing applied.
    async fn on_members<T, F, Fut>(
        &self,
        what: &str,
        may_retry: fn(&etcd_client::Error) -> bool,
        request: F,
    ) -> Result<T, MetaError>
    where
        F: Fn(KvClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let n = self.members.len();
        let mut last = None;
        // Members that do not answer in time cost a request timeout each:
        // two at most, so a hung member is passed over while a cluster
        // without quorum (every member timing out) fails the request in
        // two timeouts, not one per member and round.
        let mut timeouts = 0;
        for _ in 0..n * ROUNDS {
            if timeouts >= MAX_TIMEOUTS {
                break;
            }
            let at = self.current.load(Ordering::Relaxed) % n;
            match request(self.members[at].clone()).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    // A member that did not answer (refused, reset, timed
                    // out) is left for the next request, even when this one
                    // may not be retried: a partitioned member would
                    // otherwise fail every commit sent to it.
                    if is_transport(&e) || never_sent(&e) {
                        tracing::debug!(member = at, error = %e, "etcd member unavailable; moving to the next");
                        // Unless another request already moved on.
                        let _ = self.current.compare_exchange(
                            at,
                            (at + 1) % n,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                    }
                    if !may_retry(&e) {
                        return Err(self.error(what, e));
                    }
                    timeouts += usize::from(timed_out(&e));
                    last = Some(e);
                }
            }
        }
        match last {
            Some(e) => Err(self.error(what, e)),
            None => Err(MetaError::Backend("etcd: no members configured".into())),
        }
    }

    async fn range(
        &self,
        key: Vec<u8>,
        options: Option<GetOptions>,
    ) -> Result<etcd_client::GetResponse, MetaError> {
        self.on_members("read", is_transport, |mut kv| {
            let (key, options) = (key.clone(), options.clone());
            async move { kv.get(key, options).await }
        })
        .await
    }
}

/// Why a connection attempt failed.
enum Refusal {
    /// No member answered: worth waiting for.
    Unreachable(String),
    Other(MetaError),
}

impl Refusal {
    fn into_error(self) -> MetaError {
        match self {
            Refusal::Unreachable(e) => MetaError::Backend(e),
            Refusal::Other(e) => e,
        }
    }
}

/// The innermost error's text ("Connection refused (os error 111)"), with
/// the outermost when they differ: what an operator can act on, without
/// tonic's wrappers.
fn root_cause(e: &etcd_client::Error) -> String {
    let outer = match e {
        etcd_client::Error::GRpcStatus(s) => s.message().to_owned(),
        other => other.to_string(),
    };
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    let inner = inner.to_string();
    if inner == outer || outer.contains(&inner) {
        outer
    } else {
        format!("{outer}: {inner}")
    }
}

fn backend(endpoints: &[String], what: &str, e: etcd_client::Error) -> MetaError {
    let text = e.to_string();
    let hint = if text.contains("too many operations in txn request") {
        " (the etcd members need a larger --max-txn-ops)"
    } else if text.contains("request is too large") || text.contains("message length too large") {
        " (the etcd members need a larger --max-request-bytes)"
    } else {
        ""
    };
    MetaError::Backend(format!("etcd {} {what}: {text}{hint}", endpoints.join(",")))
}

/// Whether a request was never sent: its member refused the connection.
fn never_sent(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) => true,
        etcd_client::Error::GRpcStatus(s) => {
            s.code() == tonic::Code::Unavailable && s.message().contains("connect error")
        }
        _ => false,
    }
}

/// Whether a request ran out of its time (rather than being refused).
fn timed_out(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => match s.code() {
            tonic::Code::DeadlineExceeded => true,
            tonic::Code::Cancelled => s.message().contains("Timeout"),
            // etcd's own answer when it has no leader to order the request.
            tonic::Code::Unavailable => s.message().contains("timed out"),
            _ => false,
        },
        _ => false,
    }
}

/// Whether a request failed before etcd could answer it.
fn is_transport(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(s) => match s.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => true,
            // How tonic reports a connection reset mid-request, and its own
            // request timeout.
            tonic::Code::Unknown => s.message().contains("transport error"),
            tonic::Code::Cancelled => s.message().contains("Timeout"),
            _ => false,
        },
        _ => false,
    }
}

/// The last mutation of each key, in first-appearance order: what applying
/// all of them in order leaves, as etcd takes it (one write per key).
fn last_write_per_key(mutations: Vec<Mutation>) -> Vec<Mutation> {
    let mut at: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut out: Vec<Mutation> = Vec::with_capacity(mutations.len());
    for m in mutations {
        match at.get(m.key()) {
            Some(&i) => out[i] = m,
            None => {
                at.insert(m.key().to_vec(), out.len());
                out.push(m);
            }
        }
    }
    out
}

#[async_trait::async_trait]
impl MetaStore for EtcdStore {
    fn backend_name(&self) -> &'static str {
        "etcd"
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MetaError> {
        validate_key(key)?;
        let r = self.range(self.full_key(key), None).await?;
        Ok(r.kvs().first().map(|kv| kv.value().to_vec()))
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
        let range_end = if end.is_empty() {
            prefix_end(&self.prefix)
        } else {
            self.full_key(end)
        };
        let options = GetOptions::new()
            .with_range(range_end)
            .with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        let r = self.range(self.full_key(start), Some(options)).await?;
        let cut = self.prefix.len();
        Ok(r.kvs()
            .iter()
            .map(|kv| (kv.key()[cut..].to_vec(), kv.value().to_vec()))
            .collect())
    }

    async fn compact_history(&self) -> Result<Option<i64>, MetaError> {
        // The current revision comes with any read.
        let now = self
            .range(self.full_key(b"\0probe"), None)
            .await?
            .header()
            .map(|h| h.revision());
        let previous = {
            let mut seen = self.seen_revision.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *seen, now)
        };
        let Some(revision) = previous else {
            return Ok(None);
        };
        let compacted = self
            .on_members("compact", is_transport, |mut kv| async move {
                kv.compact(revision, Some(CompactionOptions::new())).await
            })
            .await;
        match compacted {
            Ok(_) => Ok(Some(revision)),
            // Another node compacted past it already.
            Err(MetaError::Backend(m)) if m.contains("compacted") => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn commit(&self, txn: Txn) -> Result<TxnOutcome, MetaError> {
        validate_txn(&txn)?;
        let compares: Vec<Compare> = txn
            .checks
            .iter()
            .map(|c| match c {
                Check::Absent { key } => {
                    Compare::create_revision(self.full_key(key), CompareOp::Equal, 0)
                }
                Check::Present { key } => {
                    Compare::create_revision(self.full_key(key), CompareOp::Greater, 0)
                }
                Check::ValueEquals { key, value } => {
                    Compare::value(self.full_key(key), CompareOp::Equal, value.clone())
                }
            })
            .collect();
        let writes: Vec<TxnOp> = last_write_per_key(txn.mutations)
            .into_iter()
            .map(|m| match m {
                Mutation::Put { key, value } => TxnOp::put(self.full_key(&key), value, None),
                Mutation::Delete { key } => TxnOp::delete(self.full_key(&key), None),
            })
            .collect();
        let mut read_keys: Vec<&[u8]> = txn.checks.iter().map(Check::key).collect();
        read_keys.sort_unstable();
        read_keys.dedup();
        let reads: Vec<TxnOp> = read_keys
            .iter()
            .map(|k| TxnOp::get(self.full_key(k), None))
            .collect();
        let request = EtcdTxn::new()
            .when(compares)
            .and_then(writes)
            .or_else(reads);
        let r = self
            .on_members("commit", never_sent, |mut kv| {
                let request = request.clone();
                async move { kv.txn(request).await }
            })
            .await?;
        if r.succeeded() {
            return Ok(TxnOutcome::Committed);
        }
        // The compares failed: find the first check that fails on the
        // values read in the same revision.
        let mut current: HashMap<&[u8], Option<Vec<u8>>> = HashMap::new();
        for (key, op) in read_keys.iter().zip(r.op_responses()) {
            let TxnOpResponse::Get(got) = op else {
                return Err(MetaError::Backend(
                    "etcd answered a failed txn with something other than the reads".into(),
                ));
            };
            current.insert(key, got.kvs().first().map(|kv| kv.value().to_vec()));
        }
        let failed = txn
            .checks
            .iter()
            .position(|c| !c.holds(current.get(c.key()).and_then(|v| v.as_deref())));
        match failed {
            Some(index) => Ok(TxnOutcome::CheckFailed { index }),
            None => Err(MetaError::Backend(
                "etcd refused a txn whose checks all hold on the values it read".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_write_of_a_key_is_sent() {
        let put = |k: &str, v: &str| Mutation::Put {
            key: k.into(),
            value: v.into(),
        };
        let del = |k: &str| Mutation::Delete { key: k.into() };
        let out = last_write_per_key(vec![put("a", "1"), put("b", "1"), del("a"), put("b", "2")]);
        assert_eq!(out, vec![del("a"), put("b", "2")]);
    }
}
