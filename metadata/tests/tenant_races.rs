//! A tenant deleted while a topic or group is created for it: exactly one of
//! the two goes through, and no topic or group outlives its tenant.
//!
//! The racing change is made at the one moment that matters, inside the
//! other's commit (a store that runs it just before passing the commit on).

use std::sync::{Arc, Mutex};

use strata_metadata::{
    Catalog, CatalogError, CommitHook, GroupStamp, HookedStore, MemoryStore, MessageType,
    MetaError, MetaStore, NewTopic, RedbStore, Retention, Txn,
};
use tempfile::TempDir;

/// What the store does to the catalog just before a matching commit.
#[derive(Clone, Copy, Debug)]
enum Racer {
    CreateTopic,
    CreateGroup,
    DeleteTenant,
}

/// Runs `racer` once on the store underneath, just before the first
/// commit that writes `trigger`.
#[derive(Debug)]
struct RaceAt {
    trigger: Vec<u8>,
    racer: Mutex<Option<Racer>>,
}

#[async_trait::async_trait]
impl CommitHook for RaceAt {
    async fn before_commit(&self, inner: &Arc<dyn MetaStore>, txn: &Txn) -> Result<(), MetaError> {
        let writes_trigger = txn.mutations.iter().any(|m| m.key() == self.trigger);
        let racer = if writes_trigger {
            self.racer.lock().unwrap().take()
        } else {
            None
        };
        let Some(racer) = racer else {
            return Ok(());
        };
        let other = Catalog::new(inner.clone());
        match racer {
            Racer::CreateTopic => {
                create_topic(&other).await.unwrap();
            }
            Racer::CreateGroup => {
                create_group(&other).await.unwrap();
            }
            Racer::DeleteTenant => {
                other.delete_tenant("acme", 9, None).await.unwrap();
            }
        }
        Ok(())
    }
}

fn backends() -> Vec<(Arc<dyn MetaStore>, Option<TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbStore::open(&dir.path().join("meta.redb")).unwrap();
    vec![(redb, Some(dir)), (MemoryStore::new(), None)]
}

async fn create_topic(catalog: &Catalog) -> Result<u64, CatalogError> {
    let topic = NewTopic {
        queues: 4,
        message_type: MessageType::Normal,
        retention: Retention::Unlimited,
        retention_bytes: None,
    };
    let record = catalog.create_topic("acme", "orders", topic, 5).await?;
    Ok(record.id)
}

async fn create_group(catalog: &Catalog) -> Result<(), CatalogError> {
    let stamp = GroupStamp {
        now_ms: 5,
        incarnation: 77,
    };
    catalog.create_group("acme", "billing", stamp).await?;
    Ok(())
}

/// A catalog whose store runs `racer` inside the first commit writing `trigger`.
async fn racing(store: &Arc<dyn MetaStore>, trigger: &[u8], racer: Racer) -> Catalog {
    Catalog::new(HookedStore::new(
        store.clone(),
        RaceAt {
            trigger: trigger.to_vec(),
            racer: Mutex::new(Some(racer)),
        },
    ))
}

#[tokio::test]
async fn a_creation_during_a_tenant_deletion_stops_the_deletion() {
    for racer in [Racer::CreateTopic, Racer::CreateGroup] {
        for (store, _dir) in backends() {
            let catalog = Catalog::new(store.clone());
            catalog.create_tenant("acme", "free", 1).await.unwrap();
            // The creation commits after the deletion found the tenant empty.
            let deleting = racing(&store, b"tenant/acme", racer).await;
            let err = deleting.delete_tenant("acme", 9, None).await.unwrap_err();
            assert!(
                matches!(&err, CatalogError::TenantNotEmpty { name, .. } if name == "acme"),
                "{racer:?}: {err}"
            );
            assert!(catalog.get_tenant("acme").await.unwrap().is_some());
            let topics = catalog.list_topics("acme").await.unwrap().len();
            let groups = catalog.list_groups("acme").await.unwrap().len();
            assert_eq!(topics + groups, 1, "{racer:?}");
        }
    }
}

#[tokio::test]
async fn a_tenant_deleted_during_a_creation_refuses_the_creation() {
    for (trigger, racer) in [
        (&b"topic/acme/orders"[..], Racer::CreateTopic),
        (&b"group/acme/billing"[..], Racer::CreateGroup),
    ] {
        for (store, _dir) in backends() {
            let catalog = Catalog::new(store.clone());
            catalog.create_tenant("acme", "free", 1).await.unwrap();
            // The deletion commits after the creation read the tenant.
            let creating = racing(&store, trigger, Racer::DeleteTenant).await;
            let result = match racer {
                Racer::CreateTopic => create_topic(&creating).await.map(|_| ()),
                _ => create_group(&creating).await,
            };
            assert!(
                matches!(&result, Err(CatalogError::TenantNotFound { name }) if name == "acme"),
                "{racer:?}: {result:?}"
            );
            assert_eq!(catalog.get_tenant("acme").await.unwrap(), None);
            assert!(catalog.list_topics("acme").await.unwrap().is_empty());
            assert!(catalog.list_groups("acme").await.unwrap().is_empty());
        }
    }
}

#[tokio::test]
async fn a_deleted_tenant_gets_nothing_until_created_again() {
    for (store, _dir) in backends() {
        let catalog = Catalog::new(store);
        // An engine used without tenancy creates for names never registered.
        create_topic(&catalog).await.unwrap();
        catalog.delete_topic("acme", "orders").await.unwrap();

        catalog.create_tenant("acme", "free", 1).await.unwrap();
        create_topic(&catalog).await.unwrap();
        create_group(&catalog).await.unwrap();
        catalog.delete_topic("acme", "orders").await.unwrap();
        catalog.delete_group("acme", "billing").await.unwrap();
        catalog.delete_tenant("acme", 9, None).await.unwrap();
        // A request authenticated by a key cached before the deletion.
        assert!(matches!(
            create_topic(&catalog).await,
            Err(CatalogError::TenantNotFound { .. })
        ));
        assert!(matches!(
            create_group(&catalog).await,
            Err(CatalogError::TenantNotFound { .. })
        ));
        // The tenant created again starts afresh and can be deleted again.
        catalog.create_tenant("acme", "pro", 10).await.unwrap();
        create_topic(&catalog).await.unwrap();
        catalog.delete_topic("acme", "orders").await.unwrap();
        catalog.delete_tenant("acme", 11, None).await.unwrap();
        assert_eq!(
            catalog.store().get(b"guard/tenant/acme").await.unwrap(),
            None
        );
    }
}
