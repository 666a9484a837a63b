//! The storage boundary: a transactional, ordered key-value store.
//!
//! Everything Strata keeps as metadata (topics, groups, offsets, queue
//! owners) goes through [`MetaStore`]. The trait is deliberately small so that
//! it maps unchanged onto the distributed backends we intend to add:
//!
//! * **TiKV optimistic transactions**: `commit` begins a transaction, reads
//!   every checked key, compares, applies the mutations and commits. A write
//!   conflict detected by TiKV surfaces as [`MetaError::Backend`] (or is
//!   retried inside the backend); callers already handle lost races through
//!   [`TxnOutcome::CheckFailed`] and retries.
//! * **etcd `Txn(compare).Then(ops)`**: [`Check::Absent`] is
//!   `create_revision(key) == 0`, [`Check::Present`] is
//!   `create_revision(key) > 0`, [`Check::ValueEquals`] is `value(key) == v`,
//!   and the mutations become the `Then` put/delete ops. The index of the
//!   first failed check is recovered by evaluating the compares one by one on
//!   the `Else` branch's range reads.
//!
//! Rules every backend follows (the [`crate::conformance`] suite checks them):
//! empty keys are [`MetaError::Invalid`]; a scan `limit` of 0 is
//! [`MetaError::Invalid`]; an empty scan `end` means "no upper bound" (the
//! TiKV convention); mutations in one [`Txn`] apply in order, so a later put
//! of the same key wins; if any check fails nothing is written.

use std::sync::Arc;

/// Errors from a [`MetaStore`].
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The backend failed (I/O, lost connection, write conflict, ...).
    #[error("metadata backend error: {0}")]
    Backend(String),
    /// A stored value could not be decoded.
    #[error("metadata value at key {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    /// A file of the store (the embedded store's journal) is damaged or
    /// belongs to something else.
    #[error("metadata file {file} is damaged: {reason}")]
    Damaged { file: String, reason: String },
    /// The request itself is malformed (empty key, zero limit, ...).
    #[error("invalid metadata request: {0}")]
    Invalid(String),
}

/// A condition evaluated atomically with a transaction's mutations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The key exists and holds exactly `value`.
    ValueEquals { key: Vec<u8>, value: Vec<u8> },
    /// The key does not exist.
    Absent { key: Vec<u8> },
    /// The key exists (with any value).
    Present { key: Vec<u8> },
}

impl Check {
    /// The key this check reads.
    pub fn key(&self) -> &[u8] {
        match self {
            Check::ValueEquals { key, .. } | Check::Absent { key } | Check::Present { key } => key,
        }
    }

    /// Whether the check holds given the key's current value. Shared by all
    /// backends so the semantics cannot drift between them.
    pub fn holds(&self, current: Option<&[u8]>) -> bool {
        match self {
            Check::ValueEquals { value, .. } => current == Some(value.as_slice()),
            Check::Absent { .. } => current.is_none(),
            Check::Present { .. } => current.is_some(),
        }
    }
}

/// A write applied by a committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
}

impl Mutation {
    /// The key this mutation writes.
    pub fn key(&self) -> &[u8] {
        match self {
            Mutation::Put { key, .. } | Mutation::Delete { key } => key,
        }
    }
}

/// Checks plus mutations, committed atomically by [`MetaStore::commit`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub checks: Vec<Check>,
    pub mutations: Vec<Mutation>,
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check.
    pub fn check(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }

    /// Adds a put.
    pub fn put(mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        self.mutations.push(Mutation::Put {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Adds a delete.
    pub fn delete(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.mutations.push(Mutation::Delete { key: key.into() });
        self
    }
}

/// What [`MetaStore::commit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnOutcome {
    /// All checks held and every mutation was applied.
    Committed,
    /// The check at `index` (the first failing one) did not hold; nothing was written.
    CheckFailed { index: usize },
}

/// A transactional, ordered key-value store holding Strata's metadata.
///
/// See the [module docs](self) for why it has this shape and the rules all
/// backends follow.
#[async_trait::async_trait]
pub trait MetaStore: Send + Sync + std::fmt::Debug + 'static {
    /// A short name for logs and metrics ("redb", "memory", ...).
    fn backend_name(&self) -> &'static str;

    /// The value at `key`, if any.
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MetaError>;

    /// Keys in [start, end) ascending, at most `limit` pairs (limit 0 is an Invalid error).
    ///
    /// An empty `end` means no upper bound; `start >= end` yields nothing.
    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, MetaError>;

    /// All checks and mutations atomically: if any check fails nothing is written.
    ///
    /// An `Err` does not always mean nothing was written: a backend that
    /// lost its connection (etcd, TiKV) or failed after making the commit
    /// durable (the embedded store's journal) may still apply it. Callers
    /// that must know read the state again.
    async fn commit(&self, txn: Txn) -> Result<TxnOutcome, MetaError>;

    /// Drops the backend's history of superseded values, if it keeps one
    /// that grows with every write (etcd's MVCC revisions). Called every
    /// few minutes by each node; returns the revision compacted to, if
    /// any. Strata reads only current values, so it needs none of that
    /// history. Backends without such history do nothing.
    async fn compact_history(&self) -> Result<Option<i64>, MetaError> {
        Ok(None)
    }

    /// What this store counted of its calls, if it counts them (a
    /// [`crate::TimedStore`] does; the backends themselves do not).
    fn timings(&self) -> Option<crate::MetaTimings> {
        None
    }
}

/// Lets helpers taking `&S where S: MetaStore` accept an `&Arc<dyn MetaStore>` directly.
#[async_trait::async_trait]
impl<T: MetaStore + ?Sized> MetaStore for Arc<T> {
    fn backend_name(&self) -> &'static str {
        (**self).backend_name()
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MetaError> {
        (**self).get(key).await
    }

    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, MetaError> {
        (**self).scan(start, end, limit).await
    }

    async fn commit(&self, txn: Txn) -> Result<TxnOutcome, MetaError> {
        (**self).commit(txn).await
    }

    async fn compact_history(&self) -> Result<Option<i64>, MetaError> {
        (**self).compact_history().await
    }

    fn timings(&self) -> Option<crate::MetaTimings> {
        (**self).timings()
    }
}

/// Writes one key unconditionally.
pub async fn put<S: MetaStore + ?Sized>(
    store: &S,
    key: impl Into<Vec<u8>>,
    value: impl Into<Vec<u8>>,
) -> Result<(), MetaError> {
    store.commit(Txn::new().put(key, value)).await.map(|_| ())
}

/// Deletes one key unconditionally (deleting a missing key is not an error).
pub async fn delete<S: MetaStore + ?Sized>(
    store: &S,
    key: impl Into<Vec<u8>>,
) -> Result<(), MetaError> {
    store.commit(Txn::new().delete(key)).await.map(|_| ())
}

/// Keys starting with `prefix`, ascending, at most `limit` pairs.
pub async fn scan_prefix<S: MetaStore + ?Sized>(
    store: &S,
    prefix: &[u8],
    limit: usize,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>, MetaError> {
    store.scan(prefix, &prefix_end(prefix), limit).await
}

/// The smallest key greater than every key starting with `prefix`, or an
/// empty vector (no upper bound) when there is none, i.e. when the prefix is
/// empty or all 0xFF bytes. Trailing 0xFF bytes cannot be incremented, so
/// they are dropped and the byte before them is incremented instead.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}

/// Rejects an empty key. Public so that every backend validates identically.
pub fn validate_key(key: &[u8]) -> Result<(), MetaError> {
    if key.is_empty() {
        return Err(MetaError::Invalid("empty key".into()));
    }
    Ok(())
}

/// Rejects a zero scan limit.
pub fn validate_scan(limit: usize) -> Result<(), MetaError> {
    if limit == 0 {
        return Err(MetaError::Invalid("scan limit must be at least 1".into()));
    }
    Ok(())
}

/// Rejects a transaction with an empty key in any check or mutation.
pub fn validate_txn(txn: &Txn) -> Result<(), MetaError> {
    txn.checks
        .iter()
        .map(Check::key)
        .chain(txn.mutations.iter().map(Mutation::key))
        .try_for_each(validate_key)
}

/// Whether a scan's `[start, end)` range (empty `end` = unbounded) is empty.
/// Backends short-circuit on it because ordered maps panic on inverted ranges.
pub fn range_is_empty(start: &[u8], end: &[u8]) -> bool {
    !end.is_empty() && start >= end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_edge_cases() {
        assert_eq!(prefix_end(b""), b"");
        assert_eq!(prefix_end(b"ab"), b"ac");
        assert_eq!(prefix_end(&[1, 0xFF]), [2]);
        assert_eq!(prefix_end(&[0xFF, 0xFF]), b"");
        assert_eq!(prefix_end(&[0, 0xFE, 0xFF]), [0, 0xFF]);
        assert_eq!(prefix_end(&[0x00]), [0x01]);
    }

    #[test]
    fn checks_hold() {
        let eq = Check::ValueEquals {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        };
        assert!(eq.holds(Some(b"v")));
        assert!(!eq.holds(Some(b"w")));
        assert!(!eq.holds(None));
        assert!(Check::Absent { key: b"k".to_vec() }.holds(None));
        assert!(!Check::Present { key: b"k".to_vec() }.holds(None));
    }

    #[test]
    fn txn_validation() {
        assert!(validate_txn(&Txn::new().put("a", "b")).is_ok());
        assert!(validate_txn(&Txn::new().put("", "b")).is_err());
        assert!(validate_txn(&Txn::new().check(Check::Absent { key: vec![] })).is_err());
        assert!(range_is_empty(b"b", b"a"));
        assert!(range_is_empty(b"a", b"a"));
        assert!(!range_is_empty(b"a", b""));
    }
}
