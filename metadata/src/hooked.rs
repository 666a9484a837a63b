//! [`HookedStore`]: any store with a [`CommitHook`] run before each commit,
//! which may fail it or change the store first. Tests use it to make a
//! commit meet another change at the one moment that matters, or to cut
//! the store off (an unreachable etcd). Reads pass straight through unless
//! the hook's [`CommitHook::before_read`] holds them up.

use std::sync::Arc;

use async_trait::async_trait;

use crate::store::{MetaError, MetaStore, Txn, TxnOutcome};

/// Runs before each commit of a [`HookedStore`], with the store underneath.
#[async_trait]
pub trait CommitHook: Send + Sync + std::fmt::Debug + 'static {
    /// An error fails the commit with it, unapplied.
    async fn before_commit(&self, inner: &Arc<dyn MetaStore>, txn: &Txn) -> Result<(), MetaError>;

    /// Runs before each read; an error fails it. Reads pass by default.
    async fn before_read(&self) -> Result<(), MetaError> {
        Ok(())
    }
}

/// `inner` with `hook` run before each commit.
#[derive(Debug)]
pub struct HookedStore<H> {
    inner: Arc<dyn MetaStore>,
    hook: H,
}

impl<H: CommitHook> HookedStore<H> {
    pub fn new(inner: Arc<dyn MetaStore>, hook: H) -> Arc<Self> {
        Arc::new(Self { inner, hook })
    }

    pub fn hook(&self) -> &H {
        &self.hook
    }
}

#[async_trait]
impl<H: CommitHook> MetaStore for HookedStore<H> {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MetaError> {
        self.hook.before_read().await?;
        self.inner.get(key).await
    }

    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, MetaError> {
        self.hook.before_read().await?;
        self.inner.scan(start, end, limit).await
    }

    async fn commit(&self, txn: Txn) -> Result<TxnOutcome, MetaError> {
        self.hook.before_commit(&self.inner, &txn).await?;
        self.inner.commit(txn).await
    }
}
