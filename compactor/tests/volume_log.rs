//! A separate compactor on a node's WAL volume: uploads stop at the durable
//! mark the node published, skip queues the node does not own, continue
//! where the last commit left off, and merge and collect garbage from what
//! the metadata store says, not from the node's memory.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_common::usage::{Counter, Meter};
use strata_common::{Clock, Message, QueueKey, SystemClock};
use strata_compactor::{Compactor, CompactorConfig, TieredLog, VolumeLog};
use strata_metadata::{Catalog, MemoryStore, MessageType, NewTopic, Retention};
use strata_objects::format::decode_block;
use strata_objects::{ObjectStoreConfig, Objects};
use strata_tiering::batch::{decode_header, encode_batch};
use strata_tiering::wal::{WalVolume, write_durable_mark};
use strata_tiering::{FileWal, WalConfig};

fn config() -> CompactorConfig {
    CompactorConfig {
        node_id: "node-a".into(),
        upload_interval: Duration::from_secs(3600),
        upload_trigger_bytes: u64::MAX,
        max_object_bytes: 64 << 20,
        target_block_bytes: 4096,
        maintenance_interval: Duration::from_secs(3600),
        merge_small_range_bytes: 1 << 20,
        merge_min_ranges: 2,
        merge_target_bytes: 8 << 20,
        gc_grace: Duration::ZERO,
        private_store: false,
    }
}

fn spec(queues: u32) -> NewTopic {
    NewTopic {
        queues,
        message_type: MessageType::Normal,
        retention: Retention::Unlimited,
        retention_bytes: None,
    }
}

fn batch(queue: QueueKey, base: u64, n: u32) -> Bytes {
    let messages: Vec<Message> = (0..n)
        .map(|i| Message {
            id: format!("m{queue}-{}", base + u64::from(i)),
            key: None,
            tag: None,
            properties: Vec::new(),
            body: Bytes::from(vec![b'x'; 100]),
        })
        .collect();
    encode_batch(queue, 1, base, 1_000, &messages).unwrap()
}

/// Offsets of every batch in the queue's committed ranges, read back from
/// the objects.
async fn committed_offsets(catalog: &Catalog, objects: &Objects, queue: QueueKey) -> Vec<u64> {
    let mut out = Vec::new();
    let mut all = catalog.all_ranges().await.unwrap();
    for range in all.remove(&queue).unwrap_or_default() {
        for block in &range.blocks {
            let span = block.offset..block.offset + u64::from(block.len);
            let stored = objects.get_range(&range.object, span).await.unwrap();
            for payload in decode_block(block, &stored).unwrap() {
                let h = decode_header(&payload).unwrap();
                out.extend(h.base_offset..h.base_offset + u64::from(h.count));
            }
        }
    }
    out
}

fn compactor_on(
    dir: &std::path::Path,
    catalog: &Catalog,
    objects: &Objects,
    meter: Arc<Meter>,
) -> (Arc<dyn TieredLog>, Compactor) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let log: Arc<dyn TieredLog> = Arc::new(VolumeLog::new(
        "node-a",
        WalVolume::open(dir).unwrap(),
        catalog.clone(),
        meter,
        1 << 20,
    ));
    let compactor = Compactor::new(
        Arc::downgrade(&log),
        catalog.clone(),
        objects.clone(),
        clock,
        config(),
        0,
    );
    (log, compactor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_up_to_the_mark_for_owned_queues_then_merges_from_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let catalog = Catalog::new(MemoryStore::new());
    let ours = catalog
        .create_topic("acme", "ours", spec(2), 0)
        .await
        .unwrap();
    let theirs = catalog
        .create_topic("acme", "theirs", spec(1), 0)
        .await
        .unwrap();
    let (q0, q1, other) = (
        QueueKey::new(ours.id, 0),
        QueueKey::new(ours.id, 1),
        QueueKey::new(theirs.id, 0),
    );
    for q in [q0, q1] {
        catalog.claim_queue(q, "node-a").await.unwrap();
    }
    catalog.claim_queue(other, "node-b").await.unwrap();

    let mut wal_config = WalConfig::new(dir.path());
    wal_config.segment_bytes = 2048;
    wal_config.max_bytes = 1 << 20;
    let (wal, _) = FileWal::open(wal_config, |_, _| Ok(())).unwrap();
    let mut lsns = Vec::new();
    for i in 0..6u64 {
        for q in [q0, q1, other] {
            let pending = wal.submit(batch(q, i * 3, 3)).await.unwrap();
            lsns.push(pending.durable().await.unwrap());
        }
    }

    let objects = Objects::open(&ObjectStoreConfig::memory(), clock.clone()).unwrap();
    let meter = Arc::new(Meter::new(clock.clone()));
    let (log, compactor) = compactor_on(dir.path(), &catalog, &objects, meter.clone());

    // No mark published yet: nothing to upload, whatever the files hold.
    assert_eq!(compactor.upload_once().await.unwrap().batches, 0);

    // The mark covers the first two rounds (6 records).
    write_durable_mark(dir.path(), lsns[6]).unwrap();
    let first = compactor.upload_once().await.unwrap();
    assert_eq!((first.batches, first.queues), (4, 2), "{first:?}");
    assert_eq!(first.checkpoint, lsns[6]);
    assert_eq!(
        catalog.wal_checkpoint("node-a").await.unwrap(),
        Some(lsns[6])
    );
    let six: Vec<u64> = (0..6).collect();
    assert_eq!(committed_offsets(&catalog, &objects, q0).await, six);
    assert!(
        committed_offsets(&catalog, &objects, other)
            .await
            .is_empty()
    );

    // The rest, in two more objects of the same size that continue the first.
    write_durable_mark(dir.path(), lsns[12]).unwrap();
    assert_eq!(compactor.upload_once().await.unwrap().batches, 4);
    write_durable_mark(dir.path(), wal.durable_lsn()).unwrap();
    assert_eq!(compactor.upload_once().await.unwrap().batches, 4);
    assert_eq!(compactor.checkpoint(), wal.durable_lsn());
    let all: Vec<u64> = (0..18).collect();
    for q in [q0, q1] {
        assert_eq!(committed_offsets(&catalog, &objects, q).await, all);
    }
    assert_eq!(compactor.lag_bytes(), 0);
    // The node, not the compactor, deletes WAL segments.
    assert!(wal.segments().len() > 1);
    assert_eq!(log.release_wal(u64::MAX).await.unwrap(), 0);

    // Maintenance sees three ranges per queue in the metadata store, merges
    // the two older ones (the newest may still grow), and the first two
    // upload objects become garbage.
    let pass = compactor.maintain().await.unwrap();
    assert_eq!(pass.merges, 2, "{pass:?}");
    assert_eq!(pass.deleted_objects, 2, "{pass:?}");
    assert_eq!(catalog.all_ranges().await.unwrap()[&q0].len(), 2);
    for q in [q0, q1] {
        assert_eq!(committed_offsets(&catalog, &objects, q).await, all);
    }
    // Three uploads and one merged object for both queues, billed to the tenant.
    let snapshot = meter.snapshot();
    let puts: u64 = snapshot
        .open
        .iter()
        .chain(&snapshot.sealed)
        .filter(|m| m.tenant == "acme")
        .map(|m| m.counts.get(Counter::ObjectPuts))
        .sum();
    assert_eq!(puts, 4);
    wal.close().unwrap();
}

#[tokio::test]
async fn a_queue_taken_over_by_another_node_is_left_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let catalog = Catalog::new(MemoryStore::new());
    let topic = catalog.create_topic("acme", "t", spec(1), 0).await.unwrap();
    let q = QueueKey::new(topic.id, 0);
    catalog.claim_queue(q, "node-a").await.unwrap();
    let (wal, _) = FileWal::open(WalConfig::new(dir.path()), |_, _| Ok(())).unwrap();
    let pending = wal.submit(batch(q, 0, 2)).await.unwrap();
    pending.durable().await.unwrap();
    write_durable_mark(dir.path(), wal.durable_lsn()).unwrap();
    catalog.claim_queue(q, "node-b").await.unwrap();

    let objects = Objects::open(&ObjectStoreConfig::memory(), clock.clone()).unwrap();
    let meter = Arc::new(Meter::new(clock));
    let (_log, compactor) = compactor_on(dir.path(), &catalog, &objects, meter);
    let summary = compactor.upload_once().await.unwrap();
    assert_eq!(summary.batches, 0);
    assert!(catalog.all_ranges().await.unwrap().is_empty());
    wal.close().unwrap();
}
