//! The catalog: tenants, access keys, topics, consumer groups, committed
//! offsets and queue owners, stored as JSON values in any [`MetaStore`].
//!
//! # Key layout
//!
//! Topic, group and tenant names are validated elsewhere to `[A-Za-z0-9_-]`,
//! so `/` is a safe separator. Numbers are zero-padded so byte order is
//! numeric order. All keys are built by [`keys`]; nobody else builds them.
//!
//! | key                                                   | value                      |
//! |-------------------------------------------------------|----------------------------|
//! | `topic/<tenant>/<name>`                               | [`TopicRecord`] (JSON)     |
//! | `topic-id/<id:020>`                                   | `<tenant>/<name>` (UTF-8)  |
//! | `seq/topic`                                           | last topic id handed out   |
//! | `group/<tenant>/<name>`                               | [`GroupRecord`] (JSON)     |
//! | `offset/<tenant>/<group>/<topic_id:020>/<queue:010>`  | [`CommittedOffset`] (JSON) |
//! | `owner/<topic_id:020>/<queue:010>`                    | [`OwnerRecord`] (JSON)     |
//! | `floor/<topic_id:020>/<queue:010>`                    | first offset after a release |
//! | `range/<topic_id:020>/<queue:010>/<base:020>`         | [`RangeRecord`] (JSON)     |
//! | `wal-checkpoint/<node>`                               | uploaded WAL position      |
//! | `serving-lease`                                       | [`ServingLease`] (JSON)    |
//! | `store-mark`                                          | [`StoreMark`] (JSON)       |
//! | `node/<id>`                                           | [`NodeRecord`] (JSON)      |
//! | `placement/<tenant>`                                  | [`TenantPlacement`] (JSON) |
//! | `tenant/<name>`                                       | [`TenantRecord`] (JSON)    |
//! | `tenant-deleted/<name>/<created_ms>`                  | [`DeletedTenant`] (JSON)   |
//! | `access-key/<access_key>`                             | [`AccessKeyRecord`] (JSON) |
//! | `tenant-key/<tenant>/<access_key>`                    | empty (tenant's key index) |
//! | `guard/service-admins`                                | changes that removed admin keys |
//! | `guard/tenant/<name>`                                 | last topic or group created |
//! | `pop-cursor/<tenant>/<group>/<topic_id:020>/<queue:010>` | next offset never handed out |
//! | `pop-floor/<tenant>/<group>/<topic_id:020>/<queue:010>` | where the last reset put the cursor |
//! | `pop-flight/<tenant>/<group>/<topic_id:020>/<queue:010>/<offset:020>` | [`InflightRecord`] (JSON) |
//! | `half/<tenant>/<transaction_id>`                    | `HalfRecord` (JSON)        |
//! | `timer/<deliver_at:020>/<tenant>/<offset:020>`       | the delayed message's id   |
//! | `usage-min/<tenant>/<minute:020>/<node>/<incarnation>` | `UsageCounts` (JSON)     |
//! | `usage-hour/<tenant>/<hour:020>`                      | `UsageCounts` (JSON)       |
//! | `usage-dirty/<hour:020>/<tenant>`                     | flush id (roll-up pending) |
//! | `usage-prune/<hour:020>/<tenant>`                     | empty (minutes prunable)   |
//! | `msg-mark/<topic_id:020>/<queue:010>`                 | first offset not indexed   |
//! | `msg-run/<node>/<run_id:016x>`                        | [`IndexRunRecord`] (JSON)  |
//!
//! Every multi-key change is one [`crate::Txn`] guarded by checks, and a lost
//! race is retried a bounded number of times before [`CatalogError::Conflict`].
//! Deleting a topic leaves its `owner/` keys and other groups' `offset/` keys
//! behind: topic ids are never reused, so they can never be mistaken for a
//! newer topic's.

mod access_keys;
mod floors;
mod groups;
pub mod keys;
mod lookup;
mod nodes;
mod owners;
mod placement;
mod pop;
mod prune_nodes;
mod ranges;
mod records;
mod serving;
mod store_mark;
mod tenant_fence;
mod tenants;
mod timers;
mod topics;
mod txns;
mod usage;

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::{MetaError, MetaStore, prefix_end};

pub use access_keys::{AccessKeyRecord, AdminKeysGuard, SealedSecretRecord};
pub use floors::LOST_OFFSETS_GAP;
pub use groups::{OffsetCommit, StoredGroup};
pub use keys::IndexKind;
pub use lookup::{IndexRun, IndexRunRecord};
pub use nodes::{Forget, ForgetRequest, NodeRecord, NodeState};
pub use placement::{Placed, TenantPlacement};
pub use pop::{CursorReset, InflightRecord, PopChange, PopPosition, PopQueueState};
pub use ranges::{BlockRef, RangeRecord};
pub use records::{
    CommittedOffset, GroupRecord, GroupSpec, GroupStamp, MessageType, NewTopic, OwnerRecord,
    ParseMessageTypeError, Retention, RetryPolicy, StartPosition, TopicRecord,
};
pub use serving::ServingLease;
pub use store_mark::StoreMark;
pub use tenant_fence::TenantFence;
pub use tenants::{DeletedTenant, TenantRecord};
pub use timers::Timer;
pub use txns::HalfRecord;
pub use usage::UsageRollup;

/// How many times a read-check-write loop retries after losing a race.
const MAX_ATTEMPTS: usize = 16;

/// Page size for scans that must return every matching key.
const SCAN_PAGE: usize = 1000;

/// Errors from [`Catalog`] operations.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("topic {tenant}/{name} already exists")]
    TopicAlreadyExists { tenant: String, name: String },
    #[error("topic {tenant}/{name} not found")]
    TopicNotFound { tenant: String, name: String },
    #[error("consumer group {tenant}/{name} not found")]
    GroupNotFound { tenant: String, name: String },
    #[error("tenant {name} already exists")]
    TenantAlreadyExists { name: String },
    #[error("tenant {name} not found")]
    TenantNotFound { name: String },
    #[error("tenant {name} is not empty: {reason}")]
    TenantNotEmpty { name: String, reason: String },
    #[error("access key {access_key} not found")]
    KeyNotFound { access_key: String },
    /// A newly generated access key collided with an existing one.
    #[error("access key {access_key} already exists")]
    AccessKeyAlreadyExists { access_key: String },
    /// Another node serves this metadata namespace, or last did and did not
    /// hand it over (see [`ServingLease`]).
    #[error("{0}")]
    NamespaceServed(String),
    /// A node id already belongs to another data directory (see
    /// [`NodeRecord`]).
    #[error("{0}")]
    NodeIdTaken(String),
    /// A node declared lost tried to join again (see [`NodeRecord`]).
    #[error("{0}")]
    NodeForgotten(String),
    /// A conditional write kept losing races to concurrent writers; retry later.
    #[error("metadata conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Tenants, access keys, topics, groups, offsets and queue owners on top of any [`MetaStore`].
/// Cheap to clone: clones share the store.
#[derive(Debug, Clone)]
pub struct Catalog {
    store: Arc<dyn MetaStore>,
}

impl Catalog {
    /// A catalog over `store`.
    pub fn new(store: Arc<dyn MetaStore>) -> Self {
        Self { store }
    }

    /// The underlying store, e.g. to add catalog checks to one's own commits.
    pub fn store(&self) -> &Arc<dyn MetaStore> {
        &self.store
    }

    /// Every pair under `prefix`, fetched page by page. Pages are separate
    /// reads, so the result is not one snapshot; catalog listings accept that.
    async fn scan_all(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, MetaError> {
        self.scan_between(prefix, &prefix_end(prefix)).await
    }

    /// Every pair with `start <= key < end`, page by page (an empty `end`
    /// means no upper bound).
    async fn scan_between(
        &self,
        start: &[u8],
        end: &[u8],
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, MetaError> {
        let mut start = start.to_vec();
        let mut out = Vec::new();
        loop {
            let page = self.store.scan(&start, end, SCAN_PAGE).await?;
            let full = page.len() == SCAN_PAGE;
            if let Some((last, _)) = page.last() {
                // The smallest key after `last`.
                start = last.clone();
                start.push(0);
            }
            out.extend(page);
            if !full {
                return Ok(out);
            }
        }
    }

    /// Every record under `prefix`, decoded.
    async fn scan_records<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<T>, MetaError> {
        self.scan_all(prefix)
            .await?
            .iter()
            .map(|(k, v)| decode(k, v))
            .collect()
    }

    /// The record at `key`, decoded, along with its raw bytes (for checks).
    async fn get_record<T: DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<(T, Vec<u8>)>, MetaError> {
        match self.store.get(key).await? {
            Some(raw) => Ok(Some((decode(key, &raw)?, raw))),
            None => Ok(None),
        }
    }
}

/// Decodes a JSON value; a bad value is [`MetaError::Corrupt`] naming the key.
fn decode<T: DeserializeOwned>(key: &[u8], raw: &[u8]) -> Result<T, MetaError> {
    serde_json::from_slice(raw).map_err(|e| MetaError::Corrupt {
        key: keys::display(key),
        reason: e.to_string(),
    })
}

/// Encodes a record as JSON. Plain derived structs cannot fail to encode, but
/// the error is still reported rather than unwrapped.
fn encode<T: Serialize>(key: &[u8], value: &T) -> Result<Vec<u8>, MetaError> {
    serde_json::to_vec(value).map_err(|e| {
        MetaError::Invalid(format!(
            "cannot encode value for {}: {e}",
            keys::display(key)
        ))
    })
}
