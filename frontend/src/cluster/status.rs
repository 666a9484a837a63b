//! What `GET /v1/cluster` (and `strata cluster status`) shows: every
//! registered node with its state, addresses, heartbeat and upload lag, and
//! how many queues and tenants each holds (without per-tenant placement,
//! the node serving holds them all), all read from the metadata store.

use std::collections::{HashMap, HashSet};

use strata_client::api::status::{ClusterJson, ClusterNodeJson, ServingLeaseJson};
use strata_common::TopicId;
use strata_metadata::{Catalog, CatalogError, NodeRecord, NodeState};

/// The cluster as the metadata store has it, seen from `answered_by` at `now_ms`.
pub async fn cluster_status(
    catalog: &Catalog,
    answered_by: &str,
    now_ms: i64,
) -> Result<ClusterJson, CatalogError> {
    let mut nodes = catalog.cluster_nodes().await?;
    nodes.sort_by(|a, b| natural_order(&a.node, &b.node));
    let topics: HashMap<TopicId, u32> = catalog
        .all_topics()
        .await?
        .into_iter()
        .map(|t| (t.id, t.queues))
        .collect();
    // Owner records outlive deleted topics (ids are never reused): count
    // only queues of topics that exist.
    let mut owned: HashMap<String, usize> = HashMap::new();
    let mut queues = 0;
    for (key, owner) in catalog.all_owners().await? {
        if topics.get(&key.topic).is_some_and(|n| key.queue < *n) {
            *owned.entry(owner.node).or_default() += 1;
            queues += 1;
        }
    }
    let mut tenants: HashMap<String, usize> = HashMap::new();
    let placements = catalog.tenant_placements().await?;
    for p in &placements {
        if !p.released {
            *tenants.entry(p.node.clone()).or_default() += 1;
        }
    }
    let lease = catalog.serving_lease().await?;
    // Without placements (one node on its own store, or one node holding
    // the serving lease) the node that serves serves every tenant.
    let sole_server = match &lease {
        Some(l) if !l.released && l.expires_ms > now_ms => Some(l.node.clone()),
        Some(_) => None,
        None => {
            let mut live = nodes.iter().filter(|n| n.is_live(now_ms));
            match (live.next(), live.next()) {
                (Some(only), None) => Some(only.node.clone()),
                _ => None,
            }
        }
    };
    if placements.is_empty()
        && let Some(node) = sole_server
    {
        tenants.insert(node, catalog.list_tenants().await?.len());
    }
    let registered: HashSet<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
    let queues_unregistered_owner = owned
        .iter()
        .filter(|(node, _)| !registered.contains(node.as_str()))
        .map(|(_, n)| n)
        .sum();
    let serving_lease = lease.map(|l| ServingLeaseJson {
        node: l.node,
        identity: l.identity,
        data_dir: l.data_dir,
        expires_ms: l.expires_ms,
        released: l.released,
    });
    Ok(ClusterJson {
        backend: catalog.store().backend_name().to_string(),
        now_ms,
        answered_by: answered_by.to_string(),
        serving_lease,
        nodes: nodes
            .into_iter()
            .map(|n| node_json(n, now_ms, &owned, &tenants))
            .collect(),
        queues,
        queues_unregistered_owner,
    })
}

/// Orders ids as people number them: node-2 before node-10 (the store
/// lists them by bytes). Leading zeros do not count, then decide a tie.
fn natural_order(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let (n, m) = (digits(x), digits(y));
                let strip = |s: &[u8]| -> usize { s.iter().take_while(|c| **c == b'0').count() };
                let (p, q) = (&x[strip(&x[..n])..n], &y[strip(&y[..m])..m]);
                let by_value = p.len().cmp(&q.len()).then_with(|| p.cmp(q));
                if by_value != Ordering::Equal {
                    return by_value;
                }
                (x, y) = (&x[n..], &y[m..]);
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                (x, y) = (&x[1..], &y[1..]);
            }
        }
    }
}

fn node_json(
    n: NodeRecord,
    now_ms: i64,
    owned: &HashMap<String, usize>,
    tenants: &HashMap<String, usize>,
) -> ClusterNodeJson {
    let (mut adopted_by, mut lost_by, mut lost_bytes) = (None, None, None);
    let state = match &n.state {
        NodeState::Live if n.is_live(now_ms) => "live",
        NodeState::Live => "expired",
        NodeState::Left { .. } => "left",
        NodeState::Adopted { by, .. } => {
            adopted_by = Some(by.clone());
            "adopted"
        }
        NodeState::Lost {
            by,
            lost_bytes: lost,
            ..
        } => {
            (lost_by, lost_bytes) = (Some(by.clone()), Some(*lost));
            "lost"
        }
    };
    ClusterNodeJson {
        queues: owned.get(&n.node).copied().unwrap_or(0),
        tenants: tenants.get(&n.node).copied().unwrap_or(0),
        state: state.to_string(),
        adopted_by,
        lost_by,
        lost_bytes,
        expires_in_ms: n.expires_ms.saturating_sub(now_ms),
        node: n.node,
        grpc_addr: n.grpc_addr,
        http_addr: n.http_addr,
        data_dir: n.data_dir,
        started_ms: n.started_ms,
        upload_lag_bytes: n.upload_lag_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_listed_as_people_number_them() {
        let mut ids = vec![
            "node-10", "node-2", "node-1", "b", "node-02", "a-3", "node-1a", "a-20",
        ];
        ids.sort_by(|a, b| natural_order(a, b));
        assert_eq!(
            ids,
            [
                "a-3", "a-20", "b", "node-1", "node-1a", "node-02", "node-2", "node-10"
            ]
        );
    }
    use strata_metadata::{MemoryStore, MessageType, NewTopic, Retention};

    fn topic(queues: u32) -> NewTopic {
        NewTopic {
            queues,
            message_type: MessageType::Normal,
            retention: Retention::Unlimited,
            retention_bytes: None,
        }
    }

    fn draft(node: &str) -> NodeRecord {
        NodeRecord {
            node: node.into(),
            identity: format!("dir-{node}"),
            data_dir: format!("/data/{node}"),
            grpc_addr: format!("{node}:8081"),
            http_addr: format!("{node}:8080"),
            started_ms: 0,
            expires_ms: 0,
            upload_lag_bytes: 0,
            state: NodeState::Live,
        }
    }

    #[tokio::test]
    async fn nodes_show_their_state_and_the_queues_of_live_topics_they_own() {
        let c = Catalog::new(MemoryStore::new());
        c.join_cluster(draft("a"), 0, 10_000).await.unwrap();
        let b = c.join_cluster(draft("b"), 0, 1_000).await.unwrap();
        c.join_cluster(draft("c"), 0, 10_000).await.unwrap();
        let adopted = NodeRecord {
            state: NodeState::Adopted {
                by: "a".into(),
                at_ms: 0,
            },
            ..b.clone()
        };
        let c_record = c.cluster_node("c").await.unwrap().unwrap();
        c.update_node(
            &c_record,
            NodeRecord {
                expires_ms: 2_000,
                ..c_record.clone()
            },
        )
        .await
        .unwrap()
        .unwrap();
        c.update_node(&b, adopted).await.unwrap().unwrap();
        let d = c.join_cluster(draft("d"), 0, 1_000).await.unwrap();
        let lagging = NodeRecord {
            upload_lag_bytes: 777,
            ..d.clone()
        };
        c.update_node(&d, lagging).await.unwrap().unwrap();
        c.forget_node(strata_metadata::ForgetRequest {
            node: "d",
            by: "ops",
            now_ms: 4_000,
            margin_ms: 0,
            dry_run: false,
        })
        .await
        .unwrap();
        let orders = c.create_topic("t1", "orders", topic(4), 0).await.unwrap();
        c.claim_topic_queues(orders.id, 4, "a").await.unwrap();
        let gone = c.create_topic("t1", "gone", topic(2), 0).await.unwrap();
        c.claim_topic_queues(gone.id, 2, "a").await.unwrap();
        c.delete_topic("t1", "gone").await.unwrap();
        let logs = c.create_topic("t2", "logs", topic(1), 0).await.unwrap();
        c.claim_topic_queues(logs.id, 1, "ghost").await.unwrap();
        c.place_tenant("t1", "a").await.unwrap();

        let s = cluster_status(&c, "a", 5_000).await.unwrap();
        assert_eq!((s.queues, s.queues_unregistered_owner), (5, 1));
        let view: Vec<String> = s
            .nodes
            .iter()
            .map(|n| {
                format!(
                    "{} {} {:?} {:?} {:?} queues={} tenants={} expires_in={}",
                    n.node,
                    n.state,
                    n.adopted_by,
                    n.lost_by,
                    n.lost_bytes,
                    n.queues,
                    n.tenants,
                    n.expires_in_ms
                )
            })
            .collect();
        assert_eq!(
            view,
            [
                "a live None None None queues=4 tenants=1 expires_in=5000",
                "b adopted Some(\"a\") None None queues=0 tenants=0 expires_in=-4000",
                "c expired None None None queues=0 tenants=0 expires_in=-3000",
                "d lost None Some(\"ops\") Some(777) queues=0 tenants=0 expires_in=-4000",
            ]
        );
    }

    #[tokio::test]
    async fn a_node_serving_alone_serves_every_tenant() {
        let c = Catalog::new(MemoryStore::new());
        c.join_cluster(draft("solo"), 0, 10_000).await.unwrap();
        for t in ["t1", "t2", "t3"] {
            c.create_tenant(t, "default", 0).await.unwrap();
        }
        let s = cluster_status(&c, "solo", 5_000).await.unwrap();
        assert_eq!(s.nodes[0].tenants, 3);
        // Two live nodes without placements: neither is known to serve all.
        c.join_cluster(draft("other"), 0, 10_000).await.unwrap();
        let s = cluster_status(&c, "solo", 5_000).await.unwrap();
        assert!(s.nodes.iter().all(|n| n.tenants == 0), "{:?}", s.nodes);
    }
}
