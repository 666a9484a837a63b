//! Strata's metadata: the [`MetaStore`] trait (a transactional, ordered
//! key-value store), its backends ([`RedbStore`] embedded on disk,
//! [`EtcdStore`] on an etcd v3 cluster, `TikvStore` on TiKV with the
//! `tikv` feature, [`MemoryStore`] ephemeral), [`TimedStore`] to time any of them, [`HookedStore`] to interpose on
//! commits in tests, a [`conformance`] suite every backend must
//! pass, and the [`Catalog`] of tenants, access keys, topics, groups, offsets and queue owners
//! built on top of any backend.

pub mod address;
pub mod catalog;
pub mod conformance;
pub mod etcd_store;
pub mod fail_fast;
pub mod hooked;
pub mod journal;
mod journal_file;
pub mod memory_store;
pub mod redb_store;
mod redb_writer;
pub mod store;
#[cfg(feature = "tikv")]
pub mod tikv_store;
pub mod timed;

pub use address::{EtcdAddress, TikvAddress};
pub use catalog::{
    AccessKeyRecord, AdminKeysGuard, BlockRef, Catalog, CatalogError, CommittedOffset, CursorReset,
    DeletedTenant, Forget, ForgetRequest, GroupRecord, GroupSpec, GroupStamp, HalfRecord,
    IndexKind, IndexRun, IndexRunRecord, InflightRecord, LOST_OFFSETS_GAP, MessageType, NewTopic,
    NodeRecord, NodeState, OffsetCommit, OwnerRecord, ParseMessageTypeError, Placed, PopChange,
    PopPosition, PopQueueState, RangeRecord, Retention, RetryPolicy, SealedSecretRecord,
    ServingLease, StartPosition, StoreMark, StoredGroup, TenantPlacement, TenantRecord, Timer,
    TopicRecord, UsageRollup,
};
pub use etcd_store::EtcdStore;
pub use fail_fast::FailFastStore;
pub use hooked::{CommitHook, HookedStore};
pub use memory_store::MemoryStore;
pub use redb_store::{Checkpoints, DEFAULT_CACHE_BYTES, JournalCut, RedbStore};
pub use store::{Check, MetaError, MetaStore, Mutation, Txn, TxnOutcome};
#[cfg(feature = "tikv")]
pub use tikv_store::TikvStore;
pub use timed::{MetaTimings, TimedStore};
