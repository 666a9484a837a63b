//! The engine bills object-store requests and stored bytes to the tenant
//! whose data caused them, exactly: the per-tenant counts add up to the
//! object store's own request counters.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_common::usage::UsageCounts;
use strata_common::{Message, SystemClock};
use strata_engine::{
    Engine, EngineConfig, MessageType, PublishMessage, ReadLimits, ReadResult, Retention, TagFilter,
};

fn config(dir: &std::path::Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.wal_segment_bytes = 16 * 1024;
    c.wal_max_bytes = 4 << 20;
    c.target_block_bytes = 4 * 1024;
    c.upload_interval = Duration::from_secs(3600);
    c.upload_trigger_bytes = u64::MAX;
    c.retention_interval = Duration::from_secs(3600);
    c.block_cache.disk_dir = None;
    c.merge_min_ranges = 2;
    c.merge_small_range_bytes = 1 << 20;
    c
}

fn message(queue: u32, i: usize) -> PublishMessage {
    let mut rng = fastrand::Rng::with_seed(i as u64);
    PublishMessage {
        queue: Some(queue),
        message: Message {
            id: format!("m{i:05}"),
            body: Bytes::from(
                (0..300)
                    .map(|_| rng.alphanumeric() as u8)
                    .collect::<Vec<u8>>(),
            ),
            ..Message::default()
        },
    }
}

/// Enough 300-byte messages to fill and seal several 16 KiB WAL segments,
/// so an upload releases them and reads must go to object storage.
const N: usize = 200;

fn usage(engine: &Engine, tenant: &str) -> UsageCounts {
    engine
        .meter()
        .totals()
        .get(tenant)
        .cloned()
        .unwrap_or_default()
}

/// An engine in `dir` with tenant a's one-queue topic t.
async fn with_one_queue_topic(dir: &std::path::Path) -> Arc<Engine> {
    let engine = Engine::open(config(dir), Arc::new(SystemClock))
        .await
        .unwrap();
    engine
        .create_topic("a", "t", 1, MessageType::Normal, None)
        .await
        .unwrap();
    engine
}

async fn upload_all(engine: &Engine) {
    while engine.upload_lag_bytes() > 0 {
        engine.upload_once().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_requests_and_storage_are_billed_to_the_owning_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path()), Arc::new(SystemClock))
        .await
        .unwrap();
    // The message index keeps its runs in shape once after a start (its
    // sweep reads the store's mark: a GET no tenant caused). Done now, it
    // is not due again for minutes, so it cannot land among the counted GETs.
    engine.maintain_message_index().await.unwrap();
    for tenant in ["a", "b"] {
        engine
            .create_topic(
                tenant,
                "t",
                1,
                MessageType::Normal,
                Some(Retention::Unlimited),
            )
            .await
            .unwrap();
    }
    // One batch each: blocks hold whole batches, so a's data spans blocks.
    for i in 0..N {
        engine.publish("a", "t", vec![message(0, i)]).await.unwrap();
    }
    engine
        .publish("b", "t", vec![message(0, 9999)])
        .await
        .unwrap();
    assert_eq!(usage(&engine, "a").published_messages, N as u64);
    assert_eq!(usage(&engine, "a").published_bytes, N as u64 * (6 + 300));
    assert_eq!(usage(&engine, "b").published_bytes, 6 + 300);

    // Hot bytes are the tenant's WAL batches; nothing is cold yet.
    let stored = engine.stored_bytes_by_tenant();
    assert!(
        stored["a"].hot > N as u64 * 300 && stored["a"].cold == 0,
        "{stored:?}"
    );
    assert!(stored["b"].hot > 300 && stored["b"].hot < stored["a"].hot);

    // One upload object holds both tenants' data: one PUT billed to each.
    let puts_before = engine.object_store().metrics().puts;
    engine.upload_once().await.unwrap();
    assert_eq!(engine.object_store().metrics().puts - puts_before, 1);
    assert_eq!(usage(&engine, "a").object_puts, 1);
    assert_eq!(usage(&engine, "b").object_puts, 1);
    // Uploaded, the batches are cold only, though their WAL segment (not
    // full yet) still holds them: stored once, billed once.
    let stored = engine.stored_bytes_by_tenant();
    assert!(stored["a"].cold > 0, "{stored:?}");
    assert_eq!((stored["a"].hot, stored["b"].hot), (0, 0), "{stored:?}");
    let queue = engine.describe_topic("a", "t").unwrap().1[0].bytes;
    assert_eq!(
        queue, stored["a"].cold,
        "a queue's bytes count each batch once"
    );

    // A cold read by tenant a: every GET it causes is billed to a alone.
    let gets_before = engine.object_store().metrics().gets;
    let mut offset = 0;
    while offset < N as u64 {
        let r = engine
            .read("a", "t", 0, offset, 1000, Duration::ZERO)
            .await
            .unwrap();
        offset = r.next_offset;
    }
    let gets = engine.object_store().metrics().gets - gets_before;
    assert!(gets >= 2, "{N} x 300 bytes span many 4 KiB blocks: {gets}");
    assert_eq!(usage(&engine, "a").object_gets, gets);
    assert_eq!(usage(&engine, "b").object_gets, 0);
    assert_eq!(usage(&engine, "a").delivered_messages, N as u64);

    // A merge of a's ranges is one more PUT for a (its GETs too).
    // Three more small uploads: the newest range is never merged, and the
    // first, much larger range is not rewritten to grow it by two messages.
    for i in [N, N + 1, N + 2] {
        engine.publish("a", "t", vec![message(0, i)]).await.unwrap();
        upload_all(&engine).await;
    }
    let before = engine.object_store().metrics();
    let (a_before, b_before) = (usage(&engine, "a"), usage(&engine, "b"));
    assert_eq!(engine.merge_small_ranges().await.unwrap(), 1);
    let after = engine.object_store().metrics();
    let (a_after, b_after) = (usage(&engine, "a"), usage(&engine, "b"));
    assert_eq!(after.puts - before.puts, 1);
    assert_eq!(a_after.object_puts - a_before.object_puts, 1);
    // All of the merge's GETs but the store mark's (the service's own check
    // before committing the merged object).
    assert_eq!(
        a_after.object_gets - a_before.object_gets,
        after.gets - before.gets - 1
    );
    assert_eq!(b_after, b_before, "tenant b paid nothing for a's merge");
    engine.close().await.unwrap();
}

/// A read filtered by tag returns only the messages it matches and meters
/// only those, its next offset past everything it read; reads on behalf of
/// a group count only what they return as redeliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_reads_meter_only_what_they_return() {
    let dir = tempfile::tempdir().unwrap();
    let engine = with_one_queue_topic(dir.path()).await;
    engine.create_group("a", "g").await.unwrap();
    // Tags x, y and none in turn: offsets 0, 3, 6, ... carry x.
    let batch = (0..30)
        .map(|i| {
            let mut m = message(0, i);
            m.message.tag = [Some("x"), Some("y"), None][i % 3].map(str::to_string);
            m
        })
        .collect();
    engine.publish("a", "t", batch).await.unwrap();
    let x = TagFilter::parse("x || absent").unwrap();
    let y = TagFilter::parse("y").unwrap();
    let (wait, offsets) = (Duration::ZERO, |r: &ReadResult| {
        r.messages.iter().map(|m| m.offset).collect::<Vec<_>>()
    });

    let before = usage(&engine, "a");
    let within = |max_messages, filter| ReadLimits {
        max_messages,
        max_returned: None,
        max_body_bytes: None,
        filter,
    };
    let r = engine
        .read_within("a", "t", 0, 0, wait, within(12, &x))
        .await
        .unwrap();
    assert_eq!(offsets(&r), [0, 3, 6, 9]);
    assert_eq!(r.next_offset, 12);
    let after = usage(&engine, "a");
    assert_eq!(after.delivered_messages - before.delivered_messages, 4);
    // Metered size: id (6) + tag (1) + body (300).
    assert_eq!(after.delivered_bytes - before.delivered_bytes, 4 * 307);

    // Nothing matches: nothing returned or metered, and the reader moves on.
    let none = TagFilter::parse("z").unwrap();
    let r = engine
        .read_within("a", "t", 0, 0, wait, within(100, &none))
        .await
        .unwrap();
    assert!(r.messages.is_empty());
    assert_eq!(r.next_offset, 30);
    assert_eq!(usage(&engine, "a").delivered_messages, 4);

    // The group is given the ten y messages, then given them again: ten
    // redeliveries, not thirty.
    for round in 1..=2 {
        let r = engine
            .read_for_group("a", "g", "t", 0, 0, wait, within(100, &y))
            .await
            .unwrap();
        assert_eq!(offsets(&r), (1..30).step_by(3).collect::<Vec<_>>());
        let u = usage(&engine, "a");
        assert_eq!(u.delivered_messages, 4 + 10 * round);
        assert_eq!(u.redeliveries, 10 * (round - 1));
    }

    // A reader's quota cuts what is returned, not how far it scans: the
    // next offset follows the last message returned.
    let quota = |max_returned, max_body_bytes, filter| ReadLimits {
        max_messages: 30,
        max_returned,
        max_body_bytes,
        filter,
    };
    let r = engine
        .read_within("a", "t", 0, 0, wait, quota(Some(2), None, &x))
        .await
        .unwrap();
    assert_eq!((offsets(&r), r.next_offset), (vec![0, 3], 4));
    let r = engine
        .read_within("a", "t", 0, 2, wait, quota(None, Some(650), &y))
        .await
        .unwrap();
    assert_eq!((offsets(&r), r.next_offset), (vec![4, 7], 8));
    let r = engine
        .read_within("a", "t", 0, 2, wait, quota(Some(5), Some(0), &y))
        .await
        .unwrap();
    assert_eq!((offsets(&r), r.next_offset), (vec![4], 5));
    let r = engine
        .read_within("a", "t", 0, 28, wait, quota(Some(1), Some(0), &none))
        .await
        .unwrap();
    assert_eq!((offsets(&r), r.next_offset), (vec![], 30));
    assert_eq!(usage(&engine, "a").delivered_messages, 4 + 20 + 2 + 2 + 1);

    // Unfiltered, everything is returned and metered.
    let r = engine.read("a", "t", 0, 0, 100, wait).await.unwrap();
    assert_eq!(r.messages.len(), 30);
    assert_eq!(usage(&engine, "a").delivered_messages, 4 + 20 + 5 + 30);
    engine.close().await.unwrap();
}

/// A message is billed the same published and delivered: its id, keys,
/// tag, message group, the producer's properties and its body, not the
/// system properties (`__mq.*`) the service keeps beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_and_delivered_bytes_leave_out_system_properties() {
    let dir = tempfile::tempdir().unwrap();
    let engine = with_one_queue_topic(dir.path()).await;
    let mut m = message(0, 7);
    m.message.key = Some("kbb".into());
    m.message.properties = vec![
        ("color".into(), "blue".into()),
        (
            strata_common::message::KEYS_PROPERTY.into(),
            "kbb ka".into(),
        ),
        ("__mq.born_ms".into(), "1796641151144".into()),
        ("__mq.born_host".into(), "192.0.2.2".into()),
    ];
    engine.publish("a", "t", vec![m]).await.unwrap();
    // id (6) + keys (3 + 2) + "color" + "blue" (9) + body (300).
    let billed = 6 + 5 + 9 + 300;
    assert_eq!(usage(&engine, "a").published_bytes, billed);
    let r = engine
        .read("a", "t", 0, 0, 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(r.messages.len(), 1);
    assert_eq!(usage(&engine, "a").delivered_bytes, billed);
    engine.close().await.unwrap();
}
