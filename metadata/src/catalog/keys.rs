//! Every catalog key is built here, so the layout lives in one place and no
//! other code hand-builds keys. See the [catalog docs](super) for the layout.
//!
//! Numbers are zero-padded decimal (20 digits for a `u64`, 10 for a `u32`)
//! so byte order equals numeric order and prefix scans return records sorted
//! by (topic id, queue).

use strata_common::{QueueKey, TopicId};

use crate::store::MetaError;

/// The topic-id sequence: the last id handed out.
pub const TOPIC_SEQ: &[u8] = b"seq/topic";

/// `guard/service-admins` → the number of changes made so far that could
/// remove active service-admin keys ([`super::AdminKeysGuard`]).
pub const ADMIN_KEYS_GUARD: &[u8] = b"guard/service-admins";

/// `guard/tenant/<name>` → the last topic or group created for the tenant
/// ([`super::TenantFence`]): moved by every creation, checked by deletion.
pub fn tenant_contents_guard(name: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("guard/tenant/{}", segment(name)?).into_bytes())
}

/// `serving-lease` → JSON `ServingLease`: the node serving this namespace.
pub const SERVING_LEASE: &[u8] = b"serving-lease";

/// `store-mark` → JSON `StoreMark`: the id of the object store this
/// namespace's objects live in, also written into that store.
pub const STORE_MARK: &[u8] = b"store-mark";

/// Prefix of every node record (`node/<id>` → JSON `NodeRecord`).
pub const ALL_NODES: &[u8] = b"node/";

/// `node/<id>` → JSON `NodeRecord`: a node of the cluster and its heartbeat.
pub fn node(id: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("node/{}", segment(id)?).into_bytes())
}

/// Prefix of every tenant placement (`placement/<tenant>`).
pub const ALL_PLACEMENTS: &[u8] = b"placement/";

/// `placement/<tenant>` → JSON `TenantPlacement`: the node serving a tenant.
pub fn placement(tenant: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("placement/{}", segment(tenant)?).into_bytes())
}

/// Prefix of every topic record, across all tenants.
pub const ALL_TOPICS: &[u8] = b"topic/";

/// Names are validated elsewhere to `[A-Za-z0-9_-]`; refusing `/` here keeps
/// a bad caller from ever producing a key that aliases another record.
fn segment(s: &str) -> Result<&str, MetaError> {
    if s.contains('/') {
        return Err(MetaError::Invalid(format!(
            "name {s:?} contains '/', which metadata keys use as a separator"
        )));
    }
    Ok(s)
}

/// `topic/<tenant>/<name>` → JSON `TopicRecord`.
pub fn topic(tenant: &str, name: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("topic/{}/{}", segment(tenant)?, segment(name)?).into_bytes())
}

/// `topic/<tenant>/`: prefix of one tenant's topics.
pub fn topic_prefix(tenant: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("topic/{}/", segment(tenant)?).into_bytes())
}

/// `topic-id/<id:020>` → `<tenant>/<name>` (UTF-8): the id index.
pub fn topic_id(id: TopicId) -> Vec<u8> {
    format!("topic-id/{id:020}").into_bytes()
}

/// The value stored at [`topic_id`].
pub fn topic_id_value(tenant: &str, name: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("{}/{}", segment(tenant)?, segment(name)?).into_bytes())
}

/// `group/<tenant>/<name>` → JSON `GroupRecord`.
pub fn group(tenant: &str, name: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("group/{}/{}", segment(tenant)?, segment(name)?).into_bytes())
}

/// `group/<tenant>/`: prefix of one tenant's groups.
pub fn group_prefix(tenant: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("group/{}/", segment(tenant)?).into_bytes())
}

/// `offset/<tenant>/<group>/<topic_id:020>/<queue:010>` → JSON `CommittedOffset`.
pub fn offset(
    tenant: &str,
    group: &str,
    topic_id: TopicId,
    queue: u32,
) -> Result<Vec<u8>, MetaError> {
    let mut key = offset_prefix(tenant, group)?;
    key.extend_from_slice(format!("{topic_id:020}/{queue:010}").as_bytes());
    Ok(key)
}

/// `offset/<tenant>/<group>/`: prefix of one group's offsets.
pub fn offset_prefix(tenant: &str, group: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("offset/{}/{}/", segment(tenant)?, segment(group)?).into_bytes())
}

/// `owner/<topic_id:020>/<queue:010>` → JSON `OwnerRecord`.
pub fn owner(key: QueueKey) -> Vec<u8> {
    format!("owner/{:020}/{:010}", key.topic, key.queue).into_bytes()
}

/// `owner/<topic_id:020>/`: prefix of one topic's owner records.
pub fn owner_prefix(topic: strata_common::TopicId) -> Vec<u8> {
    format!("owner/{topic:020}/").into_bytes()
}

/// Prefix of every owner record.
pub const ALL_OWNERS: &[u8] = b"owner/";

/// Parses an [`owner`] key back into its queue.
pub fn parse_owner(key: &[u8]) -> Option<QueueKey> {
    let text = std::str::from_utf8(key).ok()?.strip_prefix("owner/")?;
    let (topic, queue) = text.split_once('/')?;
    Some(QueueKey::new(topic.parse().ok()?, queue.parse().ok()?))
}

/// `floor/<topic_id:020>/<queue:010>` → JSON `u64`: the queue's first
/// offset after WAL data below it was released.
pub fn floor(key: QueueKey) -> Vec<u8> {
    format!("floor/{:020}/{:010}", key.topic, key.queue).into_bytes()
}

/// Prefix of every queue floor.
pub const ALL_FLOORS: &[u8] = b"floor/";

/// Parses a [`floor`] key back into its queue.
pub fn parse_floor(key: &[u8]) -> Option<QueueKey> {
    let text = std::str::from_utf8(key).ok()?.strip_prefix("floor/")?;
    let (topic, queue) = text.split_once('/')?;
    Some(QueueKey::new(topic.parse().ok()?, queue.parse().ok()?))
}

/// `resume/<topic_id:020>/<queue:010>`: the offset a queue continues from
/// after its owner was declared lost (see `Catalog::queue_resumes`).
pub fn resume(key: QueueKey) -> Vec<u8> {
    format!("resume/{:020}/{:010}", key.topic, key.queue).into_bytes()
}

/// Prefix of every queue resume point.
pub const ALL_RESUMES: &[u8] = b"resume/";

/// Parses a [`resume`] key back into its queue.
pub fn parse_resume(key: &[u8]) -> Option<QueueKey> {
    let text = std::str::from_utf8(key).ok()?.strip_prefix("resume/")?;
    let (topic, queue) = text.split_once('/')?;
    Some(QueueKey::new(topic.parse().ok()?, queue.parse().ok()?))
}

/// `range/<topic_id:020>/<queue:010>/`: prefix of one queue's ranges.
pub fn range_prefix(queue: QueueKey) -> Vec<u8> {
    format!("range/{:020}/{:010}/", queue.topic, queue.queue).into_bytes()
}

/// `range/<topic_id:020>/<queue:010>/<base_offset:020>` → JSON `RangeRecord`:
/// one queue's blocks in one object.
pub fn range(queue: QueueKey, base_offset: u64) -> Vec<u8> {
    format!(
        "range/{:020}/{:010}/{base_offset:020}",
        queue.topic, queue.queue
    )
    .into_bytes()
}

/// Prefix of every object range, across all queues.
pub const ALL_RANGES: &[u8] = b"range/";

/// `wal-checkpoint/<node>` → JSON `u64`: the WAL position below which the
/// node's data is in object storage (or was never needed).
pub fn wal_checkpoint(node: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("wal-checkpoint/{}", segment(node)?).into_bytes())
}

/// Prefix of every tenant record.
pub const ALL_TENANTS: &[u8] = b"tenant/";

/// `tenant/<name>` → JSON `TenantRecord`.
pub fn tenant(name: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("tenant/{}", segment(name)?).into_bytes())
}

/// Prefix of every deleted tenant's record.
pub const ALL_DELETED_TENANTS: &[u8] = b"tenant-deleted/";

/// Prefix of the deleted records of every tenant once called `name`.
pub fn deleted_tenant_prefix(name: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("tenant-deleted/{}/", segment(name)?).into_bytes())
}

/// `tenant-deleted/<name>/<created_ms, 20 digits>` → JSON
/// `DeletedTenant`: kept so a deleted tenant's usage can still be billed,
/// apart from a later tenant of the same name.
pub fn deleted_tenant(name: &str, created_ms: i64) -> Result<Vec<u8>, MetaError> {
    Ok(format!(
        "tenant-deleted/{}/{:020}",
        segment(name)?,
        created_ms.max(0)
    )
    .into_bytes())
}

/// Prefix of every access key record, across all tenants.
pub const ALL_ACCESS_KEYS: &[u8] = b"access-key/";

/// `access-key/<access_key>` → JSON `AccessKeyRecord`. Keyed by the access
/// key alone because authentication knows nothing else when it looks it up.
pub fn access_key(access_key: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("access-key/{}", segment(access_key)?).into_bytes())
}

/// `tenant-key/<tenant>/<access_key>` → empty: the index that lists one
/// tenant's keys by prefix without scanning every tenant's.
pub fn tenant_key(tenant: &str, access_key: &str) -> Result<Vec<u8>, MetaError> {
    let mut key = tenant_key_prefix(tenant)?;
    key.extend_from_slice(segment(access_key)?.as_bytes());
    Ok(key)
}

/// `tenant-key/<tenant>/`: prefix of one tenant's key index entries.
pub fn tenant_key_prefix(tenant: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("tenant-key/{}/", segment(tenant)?).into_bytes())
}

/// The access key named by a [`tenant_key`] index key.
pub fn parse_tenant_key(key: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(key).ok()?.strip_prefix("tenant-key/")?;
    let (_tenant, access_key) = text.split_once('/')?;
    Some(access_key)
}

/// Prefix of every plan record.
pub const ALL_PLANS: &[u8] = b"plan/";

/// `plan/<name>` → a JSON value whose shape the tenancy layer defines.
pub fn plan(name: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("plan/{}", segment(name)?).into_bytes())
}

/// The plan name in a [`plan`] key.
pub fn parse_plan(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(key).ok()?.strip_prefix("plan/")
}

/// A key as text for error messages (keys are ASCII in practice).
pub fn display(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// `usage-min/<tenant>/<minute_ms:020>/<node>/<incarnation>` → JSON
/// `UsageCounts`: one process's usage of one tenant in one minute.
pub fn usage_minute(
    tenant: &str,
    minute_ms: i64,
    node: &str,
    incarnation: &str,
) -> Result<Vec<u8>, MetaError> {
    let mut key = usage_minute_prefix(tenant)?;
    key.extend_from_slice(
        format!(
            "{}/{}/{}",
            time(minute_ms)?,
            segment(node)?,
            segment(incarnation)?
        )
        .as_bytes(),
    );
    Ok(key)
}

/// `usage-min/<tenant>/`: prefix of one tenant's minute records.
pub fn usage_minute_prefix(tenant: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("usage-min/{}/", segment(tenant)?).into_bytes())
}

/// `usage-min/<tenant>/<ms:020>`: where a tenant's minutes from `ms` start.
pub fn usage_minute_from(tenant: &str, ms: i64) -> Result<Vec<u8>, MetaError> {
    let mut key = usage_minute_prefix(tenant)?;
    key.extend_from_slice(time(ms)?.as_bytes());
    Ok(key)
}

/// `usage-hour/<tenant>/<hour_ms:020>` → JSON `UsageCounts`: the roll-up of
/// every minute record of that hour.
pub fn usage_hour(tenant: &str, hour_ms: i64) -> Result<Vec<u8>, MetaError> {
    Ok(format!("usage-hour/{}/{}", segment(tenant)?, time(hour_ms)?).into_bytes())
}

/// `usage-hour/<tenant>/`: prefix of one tenant's hour records.
pub fn usage_hour_prefix(tenant: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("usage-hour/{}/", segment(tenant)?).into_bytes())
}

/// Prefix of every roll-up marker.
pub const ALL_USAGE_DIRTY: &[u8] = b"usage-dirty/";

/// `usage-dirty/<hour_ms:020>/<tenant>` → a flush id: the hour's minute
/// records changed since its roll-up was last written.
pub fn usage_dirty(hour_ms: i64, tenant: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("usage-dirty/{}/{}", time(hour_ms)?, segment(tenant)?).into_bytes())
}

/// Prefix of every pruning marker.
pub const ALL_USAGE_PRUNE: &[u8] = b"usage-prune/";

/// `usage-prune/<hour_ms:020>/<tenant>` → empty: the hour is rolled up and
/// its minute records can go once they are older than the retention.
pub fn usage_prune(hour_ms: i64, tenant: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("usage-prune/{}/{}", time(hour_ms)?, segment(tenant)?).into_bytes())
}

/// `pop-cursor/<tenant>/<group>/<topic_id:020>/<queue:010>` → decimal
/// offset: messages below it were handed to the group at least once.
pub fn pop_cursor(tenant: &str, group: &str, queue: QueueKey) -> Result<Vec<u8>, MetaError> {
    Ok(format!(
        "pop-cursor/{}/{}/{:020}/{:010}",
        segment(tenant)?,
        segment(group)?,
        queue.topic,
        queue.queue
    )
    .into_bytes())
}

/// `pop-flight/<tenant>/<group>/<topic_id:020>/<queue:010>/`: prefix of a
/// queue's in-flight (received, not yet acknowledged) messages.
pub fn pop_flight_prefix(tenant: &str, group: &str, queue: QueueKey) -> Result<Vec<u8>, MetaError> {
    Ok(format!(
        "pop-flight/{}/{}/{:020}/{:010}/",
        segment(tenant)?,
        segment(group)?,
        queue.topic,
        queue.queue
    )
    .into_bytes())
}

/// `pop-flight/.../<offset:020>` → JSON `InflightRecord`.
pub fn pop_flight(
    tenant: &str,
    group: &str,
    queue: QueueKey,
    offset: u64,
) -> Result<Vec<u8>, MetaError> {
    let mut key = pop_flight_prefix(tenant, group, queue)?;
    key.extend_from_slice(format!("{offset:020}").as_bytes());
    Ok(key)
}

/// `pop-floor/<tenant>/<group>/<topic_id:020>/<queue:010>` → decimal
/// offset where the group's last reset put its cursor: in-flight records
/// below it (or at or past the cursor) are from before that reset.
pub fn pop_floor(tenant: &str, group: &str, queue: QueueKey) -> Result<Vec<u8>, MetaError> {
    Ok(format!(
        "pop-floor/{}/{}/{:020}/{:010}",
        segment(tenant)?,
        segment(group)?,
        queue.topic,
        queue.queue
    )
    .into_bytes())
}

/// Prefixes of everything POP keeps for one group: cursors, floors,
/// in-flight.
pub fn pop_group_prefixes(tenant: &str, group: &str) -> Result<[Vec<u8>; 3], MetaError> {
    Ok([
        format!("pop-cursor/{}/{}/", segment(tenant)?, segment(group)?).into_bytes(),
        format!("pop-floor/{}/{}/", segment(tenant)?, segment(group)?).into_bytes(),
        format!("pop-flight/{}/{}/", segment(tenant)?, segment(group)?).into_bytes(),
    ])
}

/// Prefix of every delay timer.
/// Prefix of every message-index mark.
pub const ALL_INDEX_MARKS: &[u8] = b"msg-mark/";

/// `msg-mark/<topic_id:020>/<queue:010>` → JSON `u64`: the first offset of
/// the queue the message index does not cover yet.
pub fn index_mark(queue: QueueKey) -> Vec<u8> {
    format!("msg-mark/{:020}/{:010}", queue.topic, queue.queue).into_bytes()
}

/// Parses an [`index_mark`] key back into its queue.
pub fn parse_index_mark(key: &[u8]) -> Option<QueueKey> {
    let text = std::str::from_utf8(key).ok()?.strip_prefix("msg-mark/")?;
    let (topic, queue) = text.split_once('/')?;
    Some(QueueKey::new(topic.parse().ok()?, queue.parse().ok()?))
}

/// What a message is looked up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    Id,
    Key,
}

pub const ALL_INDEX_RUNS: &[u8] = b"msg-run/";

/// `msg-run/<node>/<run_id:016x>` → JSON `IndexRunRecord`: one run of the
/// message index in object storage, written by that node.
pub fn index_run(node: &str, run: u64) -> Result<Vec<u8>, MetaError> {
    Ok(format!("msg-run/{}/{run:016x}", segment(node)?).into_bytes())
}

/// Parses an [`index_run`] key back into its node and run id.
pub fn parse_index_run(key: &[u8]) -> Option<(String, u64)> {
    let text = std::str::from_utf8(key).ok()?.strip_prefix("msg-run/")?;
    let (node, run) = text.rsplit_once('/')?;
    Some((node.to_string(), u64::from_str_radix(run, 16).ok()?))
}

/// Where one topic's index marks live, for dropping a deleted topic's.
pub fn topic_index_marks(topic: TopicId) -> Vec<u8> {
    format!("msg-mark/{topic:020}/").into_bytes()
}

/// Prefixes of the index as it was kept before it moved to object storage
/// (a key per message and per id or key), dropped on upgrade.
pub const LEGACY_INDEX_PREFIXES: [&[u8]; 3] = [b"msg-pos/", b"msg-id/", b"msg-key/"];

pub const ALL_TIMERS: &[u8] = b"timer/";

/// `timer/<deliver_at_ms:020>/<tenant>/<schedule_offset:020>` → the
/// message's id (empty in timers written before it was kept): a delayed
/// message in the tenant's schedule topic, due at that time.
pub fn timer(deliver_at_ms: i64, tenant: &str, offset: u64) -> Result<Vec<u8>, MetaError> {
    Ok(format!(
        "timer/{}/{}/{offset:020}",
        time(deliver_at_ms)?,
        segment(tenant)?
    )
    .into_bytes())
}

/// Prefix of every open transaction.
pub const ALL_HALVES: &[u8] = b"half/";

/// `half/<tenant>/<transaction_id>` → JSON `HalfRecord`.
pub fn half(tenant: &str, transaction_id: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("half/{}/{}", segment(tenant)?, segment(transaction_id)?).into_bytes())
}

/// `half/<tenant>/`: one tenant's open transactions.
pub fn half_prefix(tenant: &str) -> Result<Vec<u8>, MetaError> {
    Ok(format!("half/{}/", segment(tenant)?).into_bytes())
}

/// Usage times are non-negative epoch milliseconds, 20 digits.
fn time(ms: i64) -> Result<String, MetaError> {
    if ms < 0 {
        return Err(MetaError::Invalid(format!(
            "usage time {ms} is before the Unix epoch"
        )));
    }
    Ok(format!("{ms:020}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(topic("t", "a").unwrap(), b"topic/t/a");
        assert_eq!(topic_id(7), b"topic-id/00000000000000000007");
        assert_eq!(
            offset("t", "g", 3, 2).unwrap(),
            b"offset/t/g/00000000000000000003/0000000002"
        );
        assert_eq!(
            owner(QueueKey::new(u64::MAX, u32::MAX)),
            b"owner/18446744073709551615/4294967295"
        );
        assert_eq!(
            parse_floor(&floor(QueueKey::new(9, 3))),
            Some(QueueKey::new(9, 3))
        );
        assert!(topic("t/x", "a").is_err());
        assert!(group("t", "a/b").is_err());
        assert_eq!(tenant("acme").unwrap(), b"tenant/acme");
        assert_eq!(access_key("STRAX").unwrap(), b"access-key/STRAX");
        let index = tenant_key("acme", "STRAX").unwrap();
        assert_eq!(index, b"tenant-key/acme/STRAX");
        assert_eq!(parse_tenant_key(&index), Some("STRAX"));
        assert!(access_key("a/b").is_err());
        assert!(tenant_key("a/b", "k").is_err());
        assert_eq!(plan("pro").unwrap(), b"plan/pro");
        assert_eq!(parse_plan(&plan("pro").unwrap()), Some("pro"));
        assert!(plan("a/b").is_err());
    }
}
