//! Catalog behaviour, run against both in-crate backends.

use std::collections::HashSet;
use std::sync::Arc;

use strata_common::QueueKey;
use strata_metadata::catalog::keys;
use strata_metadata::{
    AccessKeyRecord, Catalog, CatalogError, MemoryStore, MessageType, MetaError, MetaStore,
    NewTopic, RedbStore, Retention, SealedSecretRecord, Txn, TxnOutcome,
};
use tempfile::TempDir;

/// Each backend, with the temp dir kept alive for the test's duration.
/// A group created at `now_ms`, its incarnation made from the time.
fn stamp(now_ms: i64) -> strata_metadata::GroupStamp {
    strata_metadata::GroupStamp {
        now_ms,
        incarnation: now_ms as u64 * 7 + 1,
    }
}

fn backends() -> Vec<(Arc<dyn MetaStore>, Option<TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbStore::open(&dir.path().join("meta.redb")).unwrap();
    vec![(redb, Some(dir)), (MemoryStore::new(), None)]
}

/// The check of a fresh claim of queue `queue` of topic `topic` by "n".
async fn owned(catalog: &Catalog, topic: u64, queue: u32) -> strata_metadata::store::Check {
    let key = QueueKey::new(topic, queue);
    let owner = catalog.claim_queue(key, "n").await.unwrap();
    catalog.owner_check(key, &owner)
}

async fn create(catalog: &Catalog, tenant: &str, name: &str) -> Result<u64, CatalogError> {
    catalog
        .create_topic(
            tenant,
            name,
            NewTopic {
                queues: 4,
                message_type: MessageType::Normal,
                retention: Retention::Unlimited,
                retention_bytes: None,
            },
            1000,
        )
        .await
        .map(|t| t.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn topic_lifecycle() {
    for (store, _dir) in backends() {
        let catalog = Catalog::new(store);
        let t = catalog
            .create_topic(
                "acme",
                "orders",
                NewTopic {
                    queues: 8,
                    message_type: MessageType::Fifo,
                    retention: Retention::Ms(60_000),
                    retention_bytes: Some(1 << 20),
                },
                42,
            )
            .await
            .unwrap();
        assert_eq!(t.id, 1);
        assert_eq!(
            (t.queues, t.message_type, t.retention),
            (8, MessageType::Fifo, Retention::Ms(60_000))
        );
        assert_eq!(t.created_ms, 42);
        assert_eq!(
            catalog.get_topic("acme", "orders").await.unwrap(),
            Some(t.clone())
        );
        assert_eq!(catalog.get_topic("acme", "nope").await.unwrap(), None);
        assert_eq!(catalog.topic_by_id(1).await.unwrap(), Some(t.clone()));
        assert_eq!(catalog.topic_by_id(99).await.unwrap(), None);

        create(&catalog, "acme", "alpha").await.unwrap();
        create(&catalog, "acme-2", "zeta").await.unwrap();
        let names: Vec<_> = catalog
            .list_topics("acme")
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["alpha", "orders"]);
        assert_eq!(catalog.all_topics().await.unwrap().len(), 3);

        let err = create(&catalog, "acme", "orders").await.unwrap_err();
        assert!(
            matches!(err, CatalogError::TopicAlreadyExists { .. }),
            "{err}"
        );

        let deleted = catalog.delete_topic("acme", "orders").await.unwrap();
        assert_eq!(deleted, t);
        assert_eq!(catalog.get_topic("acme", "orders").await.unwrap(), None);
        assert_eq!(catalog.topic_by_id(1).await.unwrap(), None);
        let err = catalog.delete_topic("acme", "orders").await.unwrap_err();
        assert!(matches!(err, CatalogError::TopicNotFound { .. }), "{err}");

        // Ids are never reused, even for the same name after deletion.
        let again = create(&catalog, "acme", "orders").await.unwrap();
        assert_eq!(again, 4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_get_distinct_ids() {
    for (store, _dir) in backends() {
        let catalog = Catalog::new(store);
        let mut handles = Vec::new();
        for i in 0..10 {
            let catalog = catalog.clone();
            handles.push(tokio::spawn(async move {
                create(&catalog, "t", &format!("topic-{i}")).await
            }));
        }
        let mut ids = HashSet::new();
        for h in handles {
            ids.insert(h.await.unwrap().unwrap());
        }
        assert_eq!(ids, (1..=10).collect::<HashSet<u64>>());
        assert_eq!(catalog.list_topics("t").await.unwrap().len(), 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn groups_and_offsets() {
    for (store, _dir) in backends() {
        let catalog = Catalog::new(store);
        let g = catalog
            .create_group("acme", "billing", stamp(5))
            .await
            .unwrap();
        assert_eq!(g.created_ms, 5);
        // Idempotent: the original record comes back.
        assert_eq!(
            catalog
                .create_group("acme", "billing", stamp(9))
                .await
                .unwrap(),
            g
        );
        catalog
            .create_group("acme", "audit", stamp(6))
            .await
            .unwrap();
        let names: Vec<_> = catalog
            .list_groups("acme")
            .await
            .unwrap()
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert_eq!(names, ["audit", "billing"]);

        catalog
            .commit_offset(
                "acme",
                "billing",
                2,
                1,
                10,
                stamp(100),
                owned(&catalog, 2, 1).await,
            )
            .await
            .unwrap();
        catalog
            .commit_offset(
                "acme",
                "billing",
                1,
                3,
                7,
                stamp(101),
                owned(&catalog, 1, 3).await,
            )
            .await
            .unwrap();
        catalog
            .commit_offset(
                "acme",
                "billing",
                2,
                0,
                4,
                stamp(102),
                owned(&catalog, 2, 0).await,
            )
            .await
            .unwrap();
        catalog
            .commit_offset(
                "acme",
                "billing",
                2,
                1,
                11,
                stamp(103),
                owned(&catalog, 2, 1).await,
            )
            .await
            .unwrap();
        let got = catalog
            .get_offset("acme", "billing", 2, 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((got.offset, got.updated_ms), (11, 103));
        assert_eq!(
            catalog.get_offset("acme", "billing", 9, 9).await.unwrap(),
            None
        );
        let order: Vec<_> = catalog
            .list_offsets("acme", "billing")
            .await
            .unwrap()
            .into_iter()
            .map(|o| (o.topic_id, o.queue, o.offset))
            .collect();
        assert_eq!(order, [(1, 3, 7), (2, 0, 4), (2, 1, 11)]);

        // Committing an offset creates a missing group in the same txn.
        catalog
            .commit_offset(
                "acme",
                "fresh",
                1,
                0,
                1,
                stamp(200),
                owned(&catalog, 1, 0).await,
            )
            .await
            .unwrap();
        let fresh = catalog.get_group("acme", "fresh").await.unwrap().unwrap();
        assert_eq!(fresh.created_ms, 200);

        let deleted = catalog.delete_group("acme", "billing").await.unwrap();
        assert_eq!(deleted, g);
        assert_eq!(catalog.get_group("acme", "billing").await.unwrap(), None);
        assert!(
            catalog
                .list_offsets("acme", "billing")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            catalog.list_offsets("acme", "fresh").await.unwrap().len(),
            1
        );
        let err = catalog.delete_group("acme", "billing").await.unwrap_err();
        assert!(matches!(err, CatalogError::GroupNotFound { .. }), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_claims_fence_older_owners() {
    for (store, _dir) in backends() {
        let catalog = Catalog::new(store);
        let q = QueueKey::new(7, 3);
        assert_eq!(catalog.owner(q).await.unwrap(), None);
        let first = catalog.claim_queue(q, "node-a").await.unwrap();
        assert_eq!(first.epoch, 1);
        let fenced = Txn::new()
            .check(catalog.owner_check(q, &first))
            .put(b"fenced/by/owner".to_vec(), b"x".to_vec());
        assert_eq!(
            catalog.store().commit(fenced.clone()).await.unwrap(),
            TxnOutcome::Committed
        );

        let second = catalog.claim_queue(q, "node-b").await.unwrap();
        let third = catalog.claim_queue(q, "node-a").await.unwrap();
        assert_eq!((second.epoch, third.epoch), (2, 3));
        assert_eq!(catalog.owner(q).await.unwrap(), Some(third.clone()));
        let other = catalog
            .claim_queue(QueueKey::new(12, 0), "node-b")
            .await
            .unwrap();
        let all = catalog.all_owners().await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all.get(&q), Some(&third));
        assert_eq!(all.get(&QueueKey::new(12, 0)), Some(&other));
        assert_eq!(
            catalog.store().commit(fenced).await.unwrap(),
            TxnOutcome::CheckFailed { index: 0 }
        );
        // An offset commit by the superseded owner writes nothing, whether
        // the group exists or its commit would create it.
        for group in ["g", "g"] {
            let stale = catalog
                .commit_offset(
                    "acme",
                    group,
                    7,
                    3,
                    5,
                    stamp(1),
                    catalog.owner_check(q, &first),
                )
                .await
                .unwrap();
            assert!(!stale, "a superseded owner committed an offset");
            assert_eq!(catalog.get_offset("acme", group, 7, 3).await.unwrap(), None);
            catalog.create_group("acme", group, stamp(2)).await.unwrap();
        }
        assert!(
            catalog
                .commit_offset(
                    "acme",
                    "g",
                    7,
                    3,
                    5,
                    stamp(3),
                    catalog.owner_check(q, &third)
                )
                .await
                .unwrap()
        );
        // Several queues at once: one stale owner check and none is written.
        let q9 = QueueKey::new(7, 9);
        let fresh9 = catalog.claim_queue(q9, "node-a").await.unwrap();
        let both = |stale: bool| {
            vec![
                strata_metadata::OffsetCommit {
                    queue: 9,
                    offset: 9,
                    fence: catalog.owner_check(q9, &fresh9),
                },
                strata_metadata::OffsetCommit {
                    queue: 3,
                    offset: 9,
                    fence: catalog.owner_check(q, if stale { &first } else { &third }),
                },
            ]
        };
        assert!(
            !catalog
                .commit_offsets("acme", "g", 7, &both(true), stamp(4))
                .await
                .unwrap()
        );
        assert_eq!(catalog.get_offset("acme", "g", 7, 9).await.unwrap(), None);
        let kept = catalog.get_offset("acme", "g", 7, 3).await.unwrap();
        assert_eq!(kept.map(|o| o.offset), Some(5));
        assert!(
            catalog
                .commit_offsets("acme", "g", 7, &both(false), stamp(5))
                .await
                .unwrap()
        );
        for queue in [3, 9] {
            let got = catalog.get_offset("acme", "g", 7, queue).await.unwrap();
            assert_eq!(got.map(|o| o.offset), Some(9), "queue {queue}");
        }
        let current = Txn::new().check(catalog.owner_check(q, &third));
        assert_eq!(
            catalog.store().commit(current).await.unwrap(),
            TxnOutcome::Committed
        );
        // Other queues are independent.
        assert_eq!(
            catalog
                .claim_queue(QueueKey::new(7, 4), "n")
                .await
                .unwrap()
                .epoch,
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_get_distinct_epochs() {
    for (store, _dir) in backends() {
        let catalog = Catalog::new(store);
        let q = QueueKey::new(1, 0);
        let mut handles = Vec::new();
        for i in 0..6 {
            let catalog = catalog.clone();
            handles.push(tokio::spawn(async move {
                catalog.claim_queue(q, &format!("node-{i}")).await
            }));
        }
        let mut epochs = Vec::new();
        for h in handles {
            epochs.push(h.await.unwrap().unwrap().epoch);
        }
        epochs.sort_unstable();
        assert_eq!(epochs, [1, 2, 3, 4, 5, 6]);
    }
}

#[tokio::test]
async fn corrupt_values_name_their_key() {
    let store = MemoryStore::new();
    strata_metadata::store::put(&store, b"topic/acme/bad".to_vec(), b"{not json".to_vec())
        .await
        .unwrap();
    let catalog = Catalog::new(store);
    match catalog.get_topic("acme", "bad").await {
        Err(CatalogError::Meta(MetaError::Corrupt { key, .. })) => {
            assert_eq!(key, "topic/acme/bad")
        }
        other => panic!("want Corrupt, got {other:?}"),
    }
    let err = catalog.get_topic("ac/me", "x").await.unwrap_err();
    assert!(
        matches!(err, CatalogError::Meta(MetaError::Invalid(_))),
        "{err}"
    );
}

#[tokio::test]
async fn queue_floors_round_trip() {
    for (store, _dir) in backends() {
        let catalog = Catalog::new(store);
        assert!(catalog.queue_floors().await.unwrap().is_empty());
        let a = strata_common::QueueKey::new(1, 0);
        let b = strata_common::QueueKey::new(12, 7);
        catalog.set_queue_floors(&[(a, 5), (b, 9)]).await.unwrap();
        catalog.set_queue_floors(&[(a, 8)]).await.unwrap();
        let floors = catalog.queue_floors().await.unwrap();
        assert_eq!(floors.len(), 2);
        assert_eq!(floors[&a], 8);
        assert_eq!(floors[&b], 9);
    }
}

fn range(queue: QueueKey, base: u64, end: u64, object: &str) -> strata_metadata::RangeRecord {
    strata_metadata::RangeRecord {
        queue,
        base_offset: base,
        end_offset: end,
        object: object.into(),
        blocks: vec![strata_metadata::BlockRef {
            base_offset: base,
            end_offset: end,
            min_timestamp_ms: 1,
            max_timestamp_ms: 2,
            offset: 0,
            len: 10,
            raw_len: 20,
            crc32c: 7,
        }],
        min_timestamp_ms: 1,
        max_timestamp_ms: 2,
        stored_bytes: 10,
    }
}

#[tokio::test]
async fn uploads_merges_and_expiry_of_ranges() {
    for (store, _dir) in backends() {
        let catalog = Catalog::new(store);
        let q = QueueKey::new(3, 1);
        let owner = catalog.claim_queue(q, "n1").await.unwrap();
        let fence = catalog.owner_check(q, &owner);
        let a = range(q, 0, 10, "seg/a");
        let b = range(q, 10, 25, "seg/b");
        assert!(
            catalog
                .commit_upload("n1", 100, std::slice::from_ref(&a), vec![fence.clone()])
                .await
                .unwrap()
        );
        assert!(
            catalog
                .commit_upload("n1", 200, std::slice::from_ref(&b), vec![fence.clone()])
                .await
                .unwrap()
        );
        assert_eq!(catalog.wal_checkpoint("n1").await.unwrap(), Some(200));
        assert_eq!(
            catalog.all_ranges().await.unwrap()[&q],
            vec![a.clone(), b.clone()]
        );
        assert_eq!(
            catalog.queue_ranges(q).await.unwrap(),
            vec![a.clone(), b.clone()]
        );
        let neighbour = QueueKey::new(q.topic, q.queue + 10);
        assert!(catalog.queue_ranges(neighbour).await.unwrap().is_empty());

        let merged = range(q, 0, 25, "merged/ab");
        assert!(
            catalog
                .replace_ranges(&[a.clone(), b.clone()], &merged, fence.clone())
                .await
                .unwrap()
        );
        // A second merge of the same (now gone) ranges is refused.
        assert!(
            !catalog
                .replace_ranges(std::slice::from_ref(&a), &merged, fence.clone())
                .await
                .unwrap()
        );
        assert_eq!(
            catalog.all_ranges().await.unwrap()[&q],
            vec![merged.clone()]
        );

        // A zombie owner's upload is fenced off and writes nothing.
        catalog.claim_queue(q, "n2").await.unwrap();
        let c = range(q, 25, 30, "seg/c");
        assert!(
            !catalog
                .commit_upload("n1", 300, &[c], vec![fence])
                .await
                .unwrap()
        );
        assert_eq!(catalog.wal_checkpoint("n1").await.unwrap(), Some(200));

        assert!(
            catalog
                .expire_ranges(std::slice::from_ref(&merged), &[(q, 25)])
                .await
                .unwrap()
        );
        assert!(catalog.all_ranges().await.unwrap().is_empty());
        assert_eq!(catalog.queue_floors().await.unwrap()[&q], 25);
        assert!(!catalog.expire_ranges(&[merged], &[(q, 30)]).await.unwrap());
    }
}

fn key_record(access_key: &str, tenant: &str) -> AccessKeyRecord {
    AccessKeyRecord {
        access_key: access_key.into(),
        tenant: tenant.into(),
        role: "publisher".into(),
        sealed_secret: SealedSecretRecord {
            nonce_hex: "00".repeat(12),
            ciphertext_hex: "ab".repeat(56),
        },
        description: format!("{access_key} of {tenant}"),
        created_ms: 10,
        updated_ms: 10,
        revoked_ms: None,
    }
}

#[tokio::test]
async fn tenant_lifecycle() {
    for (store, _dir) in backends() {
        let catalog = Catalog::new(store);
        let t = catalog.create_tenant("zeta", "pro", 5).await.unwrap();
        assert_eq!(
            (t.name.as_str(), t.plan.as_str(), t.created_ms),
            ("zeta", "pro", 5)
        );
        catalog.create_tenant("acme", "free", 6).await.unwrap();
        assert!(matches!(
            catalog.create_tenant("acme", "pro", 7).await,
            Err(CatalogError::TenantAlreadyExists { name }) if name == "acme"
        ));
        assert_eq!(catalog.get_tenant("zeta").await.unwrap(), Some(t));
        assert_eq!(catalog.get_tenant("nope").await.unwrap(), None);
        let names: Vec<_> = catalog
            .list_tenants()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["acme", "zeta"]);
        assert!(catalog.create_tenant("a/b", "free", 1).await.is_err());

        // Topics and groups block deletion until they are gone.
        create(&catalog, "acme", "orders").await.unwrap();
        catalog
            .create_group("acme", "billing", stamp(1))
            .await
            .unwrap();
        let err = catalog.delete_tenant("acme", 7, None).await.unwrap_err();
        assert!(
            matches!(&err, CatalogError::TenantNotEmpty { name, reason }
                if name == "acme" && reason.contains("1 topic") && reason.contains("1 consumer group")),
            "{err}"
        );
        catalog.delete_topic("acme", "orders").await.unwrap();
        assert!(matches!(
            catalog.delete_tenant("acme", 7, None).await,
            Err(CatalogError::TenantNotEmpty { .. })
        ));
        catalog.delete_group("acme", "billing").await.unwrap();

        catalog
            .create_access_key(&key_record("K1", "acme"))
            .await
            .unwrap();
        catalog
            .create_access_key(&key_record("K2", "acme"))
            .await
            .unwrap();
        catalog
            .create_access_key(&key_record("K3", "zeta"))
            .await
            .unwrap();
        assert!(catalog.list_deleted_tenants().await.unwrap().is_empty());
        let deleted = catalog.delete_tenant("acme", 7, None).await.unwrap();
        assert_eq!(deleted.name, "acme");
        assert_eq!(catalog.get_tenant("acme").await.unwrap(), None);
        // Kept for billing: when it lived, apart from a later "acme".
        assert_eq!(
            catalog.list_deleted_tenants().await.unwrap(),
            [strata_metadata::DeletedTenant {
                name: "acme".into(),
                plan: "free".into(),
                created_ms: 6,
                deleted_ms: 7,
            }]
        );
        assert_eq!(catalog.get_access_key("K1").await.unwrap(), None);
        assert_eq!(catalog.get_access_key("K2").await.unwrap(), None);
        assert!(
            catalog
                .list_access_keys(Some("acme"))
                .await
                .unwrap()
                .is_empty()
        );
        // The index entries went with the records, and the other tenant's key stayed.
        let index = catalog
            .store()
            .scan(b"tenant-key/", b"tenant-key0", 100)
            .await
            .unwrap();
        assert_eq!(index.len(), 1);
        assert_eq!(keys::parse_tenant_key(&index[0].0), Some("K3"));
        assert!(matches!(
            catalog.delete_tenant("acme", 7, None).await,
            Err(CatalogError::TenantNotFound { name }) if name == "acme"
        ));
    }
}

#[tokio::test]
async fn access_key_lifecycle() {
    for (store, _dir) in backends() {
        let catalog = Catalog::new(store);
        assert!(matches!(
            catalog.create_access_key(&key_record("K1", "acme")).await,
            Err(CatalogError::TenantNotFound { name }) if name == "acme"
        ));
        assert_eq!(catalog.get_access_key("K1").await.unwrap(), None);
        catalog.create_tenant("acme", "free", 1).await.unwrap();
        catalog.create_tenant("acme-2", "free", 1).await.unwrap();

        let k1 = key_record("K1", "acme");
        catalog.create_access_key(&k1).await.unwrap();
        assert!(matches!(
            catalog.create_access_key(&key_record("K1", "acme-2")).await,
            Err(CatalogError::AccessKeyAlreadyExists { access_key }) if access_key == "K1"
        ));
        catalog
            .create_access_key(&key_record("K0", "acme-2"))
            .await
            .unwrap();
        catalog
            .create_access_key(&key_record("K2", "acme"))
            .await
            .unwrap();
        assert_eq!(
            catalog.get_access_key("K1").await.unwrap(),
            Some(k1.clone())
        );

        let listed = |tenant: Option<&'static str>| {
            let catalog = catalog.clone();
            async move {
                catalog
                    .list_access_keys(tenant)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|k| k.access_key)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(listed(Some("acme")).await, ["K1", "K2"]);
        assert_eq!(listed(Some("acme-2")).await, ["K0"]);
        assert!(listed(Some("nope")).await.is_empty());
        assert_eq!(listed(None).await, ["K0", "K1", "K2"]);

        // A conditional update succeeds once; the stale `old` then loses.
        let mut revoked = k1.clone();
        revoked.revoked_ms = Some(20);
        revoked.updated_ms = 20;
        catalog
            .update_access_key(&k1, &revoked, None)
            .await
            .unwrap();
        assert_eq!(
            catalog.get_access_key("K1").await.unwrap(),
            Some(revoked.clone())
        );
        let mut other = k1.clone();
        other.description = "late writer".into();
        assert!(matches!(
            catalog.update_access_key(&k1, &other, None).await,
            Err(CatalogError::Conflict(_))
        ));
        assert_eq!(
            catalog.get_access_key("K1").await.unwrap(),
            Some(revoked.clone())
        );

        // Keys and tenants are immutable; missing keys are named.
        let mut moved = revoked.clone();
        moved.tenant = "acme-2".into();
        assert!(
            catalog
                .update_access_key(&revoked, &moved, None)
                .await
                .is_err()
        );
        let ghost = key_record("K9", "acme");
        assert!(matches!(
            catalog.update_access_key(&ghost, &ghost, None).await,
            Err(CatalogError::KeyNotFound { access_key }) if access_key == "K9"
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_access_key_updates_have_one_winner() {
    for (store, _dir) in backends() {
        let catalog = Catalog::new(store);
        catalog.create_tenant("acme", "free", 1).await.unwrap();
        let old = key_record("K1", "acme");
        catalog.create_access_key(&old).await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let catalog = catalog.clone();
                let old = old.clone();
                tokio::spawn(async move {
                    let mut new = old.clone();
                    new.description = format!("writer {i}");
                    catalog.update_access_key(&old, &new, None).await
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => winners += 1,
                Err(CatalogError::Conflict(_)) => {}
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(winners, 1);
    }
}

#[tokio::test]
async fn claiming_a_topics_queues_at_once_bumps_every_epoch_and_fences() {
    for (store, _dir) in backends() {
        let catalog = Catalog::new(store);
        let first = catalog.claim_topic_queues(7, 3, "n1").await.unwrap();
        assert!(first.iter().all(|o| o.epoch == 1 && o.node == "n1"));
        let stale = catalog.owner_check(QueueKey::new(7, 2), &first[2]);
        // A single-queue claim in between is respected by the batch claim.
        catalog
            .claim_queue(QueueKey::new(7, 1), "n3")
            .await
            .unwrap();
        let second = catalog.claim_topic_queues(7, 3, "n2").await.unwrap();
        let epochs: Vec<u64> = second.iter().map(|o| o.epoch).collect();
        assert_eq!(epochs, [2, 3, 2]);
        assert_eq!(
            catalog.owner(QueueKey::new(7, 1)).await.unwrap(),
            Some(second[1].clone())
        );
        let outcome = catalog
            .store()
            .commit(Txn::new().check(stale).put(b"x".to_vec(), b"y".to_vec()))
            .await
            .unwrap();
        assert_eq!(outcome, TxnOutcome::CheckFailed { index: 0 });
    }
}

#[tokio::test]
async fn plans_and_tenant_plans() {
    for (store, _dir) in backends() {
        let catalog = Catalog::new(store);
        assert_eq!(catalog.get_plan("pro").await.unwrap(), None);
        assert!(catalog.list_plans().await.unwrap().is_empty());
        let pro = serde_json::json!({"requests_per_sec": 10});
        let free = serde_json::json!({"requests_per_sec": 1});
        catalog.put_plan("pro", &pro).await.unwrap();
        catalog.put_plan("free", &free).await.unwrap();
        assert_eq!(catalog.get_plan("pro").await.unwrap(), Some(pro.clone()));
        // Unconditional: a second put replaces.
        let pro2 = serde_json::json!({"requests_per_sec": 20});
        catalog.put_plan("pro", &pro2).await.unwrap();
        assert_eq!(catalog.get_plan("pro").await.unwrap(), Some(pro2.clone()));
        assert_eq!(
            catalog.list_plans().await.unwrap(),
            [("free".to_string(), free), ("pro".to_string(), pro2)]
        );
        assert!(catalog.put_plan("a/b", &pro).await.is_err());
        assert_eq!(
            catalog
                .store()
                .get(&keys::plan("pro").unwrap())
                .await
                .unwrap(),
            Some(br#"{"requests_per_sec":20}"#.to_vec())
        );

        // A corrupt plan names its key.
        let txn = Txn::new().put(keys::plan("bad").unwrap(), b"{nope".to_vec());
        catalog.store().commit(txn).await.unwrap();
        let err = catalog.get_plan("bad").await.unwrap_err().to_string();
        assert!(err.contains("plan/bad"), "{err}");

        catalog.create_tenant("acme", "free", 5).await.unwrap();
        let t = catalog.set_tenant_plan("acme", "pro").await.unwrap();
        assert_eq!(
            (t.name.as_str(), t.plan.as_str(), t.created_ms),
            ("acme", "pro", 5)
        );
        assert_eq!(catalog.get_tenant("acme").await.unwrap(), Some(t));
        assert!(matches!(
            catalog.set_tenant_plan("nope", "pro").await,
            Err(CatalogError::TenantNotFound { name }) if name == "nope"
        ));
        assert_eq!(catalog.get_tenant("nope").await.unwrap(), None);
    }
}

/// A group reset moves committed offsets and POP cursors together, all or
/// nothing; what was in flight reads as stale afterwards (outside
/// `[floor, cursor)`), and records handed out after it are in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_reset_moves_offsets_and_cursors_and_leaves_old_records_stale() {
    use strata_metadata::{CursorReset, InflightRecord, OffsetCommit, PopChange};
    let record = |seq: u64| InflightRecord {
        attempt: 1,
        visible_ms: 1000,
        seq,
        message_group: None,
        chosen: false,
    };
    for (store, _dir) in backends() {
        let catalog = Catalog::new(store);
        catalog.create_group("acme", "g", stamp(1)).await.unwrap();
        let g = catalog
            .get_group_stored("acme", "g")
            .await
            .unwrap()
            .unwrap();
        let (q0, q1) = (QueueKey::new(7, 0), QueueKey::new(7, 1));
        let fence0 = owned(&catalog, 7, 0).await;
        let fence1 = owned(&catalog, 7, 1).await;
        // Queue 0 handed out 0..6, 1 and 4 still in flight; queue 1 nothing.
        let received = PopChange {
            cursor: Some((0, 6)),
            put: vec![(1, record(1)), (4, record(4))],
            remove: vec![],
        };
        assert!(
            catalog
                .commit_pop(&g, q0, &received, fence0.clone())
                .await
                .unwrap()
        );
        let commits = |o0: u64, o1: u64| {
            vec![
                OffsetCommit {
                    queue: 0,
                    offset: o0,
                    fence: fence0.clone(),
                },
                OffsetCommit {
                    queue: 1,
                    offset: o1,
                    fence: fence1.clone(),
                },
            ]
        };
        let cursors = |old0: u64, new0: u64, new1: u64| {
            vec![
                CursorReset {
                    queue: q0,
                    old: old0,
                    new: new0,
                },
                CursorReset {
                    queue: q1,
                    old: 0,
                    new: new1,
                },
            ]
        };
        // A cursor that is not where the caller holds it: nothing moves.
        assert!(
            !catalog
                .reset_group(&g, 7, &commits(3, 0), &cursors(5, 3, 0), 10)
                .await
                .unwrap()
        );
        assert_eq!(catalog.get_offset("acme", "g", 7, 0).await.unwrap(), None);
        assert_eq!(catalog.pop_state("acme", "g", q0).await.unwrap().cursor, 6);

        // Back to 3 on queue 0, and 0 on queue 1 (a cursor of 0 is kept as
        // absent, the floor saying it was reset).
        assert!(
            catalog
                .reset_group(&g, 7, &commits(3, 0), &cursors(6, 3, 0), 10)
                .await
                .unwrap()
        );
        let s0 = catalog.pop_state("acme", "g", q0).await.unwrap();
        assert_eq!((s0.cursor, s0.floor), (3, Some(3)));
        assert!(s0.inflight.is_empty(), "{s0:?}");
        assert_eq!(s0.stale.keys().copied().collect::<Vec<_>>(), [1, 4]);
        let s1 = catalog.pop_state("acme", "g", q1).await.unwrap();
        assert_eq!((s1.cursor, s1.floor), (0, Some(0)));
        for (queue, offset) in [(0, 3), (1, 0)] {
            let got = catalog.get_offset("acme", "g", 7, queue).await.unwrap();
            assert_eq!(got.map(|c| c.offset), Some(offset), "queue {queue}");
        }

        // Handed out again from 3: offset 4 in flight anew; 1 stays stale.
        let again = PopChange {
            cursor: Some((3, 5)),
            put: vec![(3, record(30)), (4, record(40))],
            remove: vec![],
        };
        assert!(
            catalog
                .commit_pop(&g, q0, &again, fence0.clone())
                .await
                .unwrap()
        );
        let s0 = catalog.pop_state("acme", "g", q0).await.unwrap();
        assert_eq!(s0.inflight.keys().copied().collect::<Vec<_>>(), [3, 4]);
        assert_eq!(s0.inflight[&4].seq, 40);
        assert_eq!(s0.stale.keys().copied().collect::<Vec<_>>(), [1]);

        // A superseded owner's reset writes nothing.
        let taken = catalog.claim_queue(q1, "other").await.unwrap();
        assert!(
            !catalog
                .reset_group(&g, 7, &commits(0, 0), &cursors(5, 0, 0), 20)
                .await
                .unwrap()
        );
        assert_eq!(catalog.pop_state("acme", "g", q0).await.unwrap().cursor, 5);
        drop(taken);

        // Deleting the group takes its floors with it.
        catalog.delete_group("acme", "g").await.unwrap();
        catalog.delete_pop_state("acme", "g").await.unwrap();
        assert_eq!(
            catalog.pop_state("acme", "g", q1).await.unwrap(),
            strata_metadata::PopQueueState::default()
        );
    }
}
