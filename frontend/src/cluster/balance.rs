//! The balancer each node of a cluster runs: every fifth of the heartbeat
//! lease (or when kicked) it adopts the WAL of nodes that stopped
//! heartbeating, computes where every tenant should be
//! ([`super::assign::assign`] over the live nodes), releases the tenants
//! it serves that belong elsewhere, and places on itself the free tenants
//! that belong here. It also keeps the routing view the HTTP forwarder and
//! the gRPC route answers read.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use strata_common::Clock;
use strata_engine::Engine;
use strata_metadata::{Catalog, CatalogError, NodeRecord, NodeState, Placed, TenantPlacement};
use tokio::sync::{Notify, watch};

use super::assign::{TenantAt, assign};
use crate::config::Config;

/// Where a tenant is served, as this node last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This node serves it.
    Here,
    /// Another live node serves it, at these addresses.
    Node {
        node: String,
        http_addr: String,
        grpc_addr: String,
    },
    /// Nobody serves it right now (new, or moving): retry shortly.
    Moving,
}

#[derive(Debug, Default)]
struct View {
    /// Unreleased placements, by tenant.
    placements: HashMap<String, String>,
    /// Live nodes, by id.
    live: HashMap<String, NodeRecord>,
}

/// How long a request for a tenant nobody serves waits for a placement.
pub const PLACEMENT_WAIT: Duration = Duration::from_secs(3);

/// See the module docs.
#[derive(Debug)]
pub struct Balancer {
    catalog: Catalog,
    engine: Arc<Engine>,
    config: Config,
    clock: Arc<dyn Clock>,
    every: Duration,
    kick: Notify,
    view: RwLock<View>,
    /// When (monotonic) this node last pruned gone nodes' records.
    pruned_at: std::sync::Mutex<Option<Duration>>,
}

impl Balancer {
    pub fn new(catalog: Catalog, engine: Arc<Engine>, config: Config) -> Arc<Self> {
        let clock = engine.clock().clone();
        Arc::new(Self {
            every: Duration::from_millis(config.serving.lease_ttl_ms / 5),
            catalog,
            engine,
            config,
            clock,
            kick: Notify::new(),
            view: RwLock::new(View::default()),
            pruned_at: std::sync::Mutex::new(None),
        })
    }

    /// Runs passes until `stopped`.
    pub fn spawn(
        self: &Arc<Self>,
        mut stopped: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = this.pass().await {
                    tracing::warn!(error = %e, "cluster balancing pass failed; retrying");
                }
                tokio::select! {
                    _ = stopped.wait_for(|s| *s) => return,
                    _ = this.kick.notified() => {}
                    _ = this.clock.sleep(this.every) => {}
                }
            }
        })
    }

    /// Asks for a pass now (a request for a tenant nobody serves).
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// The heartbeat lease, `serving.lease_ttl_ms`.
    pub fn lease_ttl_ms(&self) -> u64 {
        self.config.serving.lease_ttl_ms
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// How long a request forwarded to another node may take: the longest
    /// long poll plus a lease. An owner silent for that long (paused, cut
    /// off) has lost its tenants or will soon; the caller gets an error to
    /// retry on instead of hanging.
    pub fn forward_timeout(&self) -> Duration {
        Duration::from_millis(
            self.config
                .limits
                .max_wait_ms
                .saturating_add(self.config.serving.lease_ttl_ms),
        )
    }

    /// Returns once `node` is not among the live nodes of the routing view:
    /// its heartbeat lapsed (paused, cut off, dead). A request forwarded to
    /// it stops waiting then, instead of for [`Balancer::forward_timeout`]
    /// or until a paused node runs again.
    pub async fn until_not_live(&self, node: &str) {
        loop {
            let live = {
                let view = self.view.read().unwrap_or_else(|p| p.into_inner());
                view.live.contains_key(node)
            };
            if !live {
                return;
            }
            self.clock.sleep(self.every).await;
        }
    }

    /// Where `tenant` is served, waiting up to [`PLACEMENT_WAIT`] (and
    /// asking for a pass) while nobody serves it.
    pub async fn wait_placed(&self, tenant: &str) -> Route {
        let mut route = self.route(tenant);
        if route == Route::Moving {
            self.kick();
            let deadline = self.clock.monotonic() + PLACEMENT_WAIT;
            while route == Route::Moving && self.clock.monotonic() < deadline {
                self.clock.sleep(Duration::from_millis(50)).await;
                route = self.route(tenant);
            }
        }
        route
    }

    /// Where `tenant` is served, from the last pass's view.
    pub fn route(&self, tenant: &str) -> Route {
        if self.engine.serves(tenant) {
            return Route::Here;
        }
        let view = self.view.read().unwrap_or_else(|p| p.into_inner());
        match view
            .placements
            .get(tenant)
            .and_then(|node| view.live.get(node))
        {
            Some(n) if n.node != self.config.node_id => Route::Node {
                node: n.node.clone(),
                http_addr: n.http_addr.clone(),
                grpc_addr: n.grpc_addr.clone(),
            },
            _ => Route::Moving,
        }
    }

    /// One pass (see the module docs).
    pub async fn pass(&self) -> Result<(), CatalogError> {
        let me = self.config.node_id.as_str();
        let mut nodes = self.catalog.cluster_nodes().await?;
        let now = self.clock.now_ms();
        let mut adopted = false;
        for dead in nodes
            .iter()
            .filter(|n| n.node != me && n.needs_adoption(now))
        {
            match crate::adopt::adopt_node(&self.config, &self.catalog, dead, self.clock.clone())
                .await
            {
                Ok(()) => adopted = true,
                Err(why) => {
                    tracing::warn!(node = %dead.node, reason = %why, "cannot adopt the WAL of a node that stopped heartbeating; its tenants wait")
                }
            }
        }
        if adopted {
            nodes = self.catalog.cluster_nodes().await?;
        }
        self.prune_gone_nodes(&nodes, now).await;
        let live: HashMap<String, NodeRecord> = nodes
            .into_iter()
            .filter(|n| n.is_live(now))
            .map(|n| (n.node.clone(), n))
            .collect();
        let placements: HashMap<String, TenantPlacement> = self
            .catalog
            .tenant_placements()
            .await?
            .into_iter()
            .map(|p| (p.tenant.clone(), p))
            .collect();
        let mut tenants: Vec<String> = self
            .catalog
            .list_tenants()
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        tenants.push(strata_tenancy::DEFAULT_TENANT.to_string());
        let at: Vec<TenantAt> = tenants
            .iter()
            .map(|t| TenantAt {
                tenant: t.clone(),
                current: placements
                    .get(t)
                    .filter(|p| !p.released && live.contains_key(&p.node))
                    .map(|p| p.node.clone()),
            })
            .collect();
        if !live.contains_key(me) || self.engine.write_fence_shut().is_some() {
            // This node's own heartbeat lapsed (a pause, a cut from the
            // metadata store; its fence shuts a fifth of a lease before its
            // record expires): to the others it may be gone, but its
            // tenants stay placed here until its WAL is adopted. Letting
            // them go would fail (nothing uploads behind the shut fence)
            // and leave them half-released, and placing more could claim
            // queues another node took; wait for the renewal.
            tracing::debug!("this node's heartbeat lapsed; not balancing");
            self.drop_placed_elsewhere(&placements).await;
            return self.set_view(live).await;
        }
        let live_ids: Vec<String> = live.keys().cloned().collect();
        let target = assign(&at, &live_ids);

        // Let go first, so the others can place what they are owed. Every
        // tenant still placed here counts, served or not: a release that
        // failed half-way (unserved, placement kept) is finished here.
        let mut held: Vec<&TenantPlacement> = placements
            .values()
            .filter(|p| p.node == me && !p.released)
            .collect();
        held.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        for p in held {
            if target.get(&p.tenant).is_none_or(|n| n == me) {
                continue;
            }
            if let Err(e) = self.engine.release_tenant(&p.tenant).await {
                tracing::warn!(tenant = %p.tenant, error = %e, "releasing a tenant failed; it stays unserved here until a later pass finishes it");
                continue;
            }
            self.catalog.release_tenant(p).await?;
        }
        self.drop_placed_elsewhere(&placements).await;
        for (tenant, node) in &target {
            if node != me || self.engine.serves(tenant) {
                continue;
            }
            match self.catalog.place_tenant(tenant, me).await? {
                Placed::Here(_) => {
                    if let Err(e) = self.engine.serve_tenant(tenant).await {
                        tracing::warn!(tenant, error = %e, "serving a placed tenant failed; retrying");
                    }
                }
                Placed::Busy(why) => tracing::debug!(tenant, reason = %why, "tenant not free yet"),
            }
        }
        self.set_view(live).await
    }

    /// Prunes the records of nodes gone longer than
    /// `serving.gone_node_retention_ms` (`Catalog::prune_gone_nodes`), when
    /// `nodes` has any, at most every quarter of the retention (between a
    /// lease and a minute): every node does it, and the commits are
    /// conditioned, so one prune wins.
    async fn prune_gone_nodes(&self, nodes: &[NodeRecord], now_ms: i64) {
        let retention = self.config.serving.gone_node_retention_ms;
        let retention_ms = i64::try_from(retention).unwrap_or(i64::MAX);
        let due = |n: &NodeRecord| {
            matches!(n.state, NodeState::Left { .. } | NodeState::Adopted { .. })
                && n.gone_at_ms()
                    .is_some_and(|at| at > 0 && at <= now_ms.saturating_sub(retention_ms))
        };
        if retention == 0 || !nodes.iter().any(due) {
            return;
        }
        let every =
            Duration::from_millis((retention / 4).clamp(self.config.serving.lease_ttl_ms, 60_000));
        let at = self.clock.monotonic();
        {
            let mut last = self.pruned_at.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|last| at.saturating_sub(last) < every) {
                return;
            }
            *last = Some(at);
        }
        match self.catalog.prune_gone_nodes(now_ms, retention_ms).await {
            Ok(pruned) if !pruned.is_empty() => {
                tracing::info!(nodes = ?pruned, "pruned the registry records of nodes gone past serving.gone_node_retention_ms")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "pruning gone nodes' registry records failed; retrying later")
            }
        }
    }

    /// Stops serving the tenants served here without a placement naming
    /// this node (a failed serve, or a placement taken over, as by the
    /// node that adopted this one's WAL).
    async fn drop_placed_elsewhere(&self, placements: &HashMap<String, TenantPlacement>) {
        let me = self.config.node_id.as_str();
        for tenant in self.engine.served_tenants().unwrap_or_default() {
            if placements
                .get(&tenant)
                .is_none_or(|p| p.node != me || p.released)
                && let Err(e) = self.engine.release_tenant(&tenant).await
            {
                tracing::warn!(tenant, error = %e, "dropping a tenant placed elsewhere failed");
            }
        }
    }

    /// Reads the nodes and placements again for routing, now: a forward to
    /// a node failed to connect, so it may have stopped and its tenants
    /// moved since the last pass (which may be a fifth of a lease away).
    pub async fn refresh_view(&self) -> Result<(), CatalogError> {
        let now = self.clock.now_ms();
        let live = self
            .catalog
            .cluster_nodes()
            .await?
            .into_iter()
            .filter(|n| n.is_live(now))
            .map(|n| (n.node.clone(), n))
            .collect();
        self.set_view(live).await
    }

    /// Reads the placements again and publishes them with `live` as the
    /// routing view.
    async fn set_view(&self, live: HashMap<String, NodeRecord>) -> Result<(), CatalogError> {
        let placements = self
            .catalog
            .tenant_placements()
            .await?
            .into_iter()
            .filter(|p| !p.released)
            .map(|p| (p.tenant, p.node))
            .collect();
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = View { placements, live };
        Ok(())
    }

    /// A graceful stop: releases every tenant served here (the WAL was
    /// uploaded), so the others place them at once.
    pub async fn release_all(&self) {
        let me = self.config.node_id.as_str();
        let Ok(placements) = self.catalog.tenant_placements().await else {
            return;
        };
        for p in placements.iter().filter(|p| p.node == me && !p.released) {
            if let Err(e) = self.catalog.release_tenant(p).await {
                tracing::warn!(tenant = %p.tenant, error = %e, "releasing a tenant at stop failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_common::ManualClock;
    use strata_metadata::{MemoryStore, MetaStore, NodeState};

    fn record(node: &str) -> NodeRecord {
        NodeRecord {
            node: node.into(),
            identity: format!("{node}-dir"),
            data_dir: format!("/data/{node}"),
            grpc_addr: "127.0.0.1:1".into(),
            http_addr: "127.0.0.1:2".into(),
            started_ms: 0,
            expires_ms: 0,
            upload_lag_bytes: 0,
            state: NodeState::Live,
        }
    }

    /// A write fence a test opens and shuts.
    #[derive(Debug)]
    struct Fence(std::sync::atomic::AtomicBool);

    impl strata_engine::WriteFence for Fence {
        fn check(&self) -> Result<(), String> {
            if self.0.load(std::sync::atomic::Ordering::SeqCst) {
                return Err("injected: the heartbeat lapsed".into());
            }
            Ok(())
        }
    }

    /// A node whose heartbeat lapsed (back from a pause) lets none of its
    /// tenants go, though the others see it expired: a release would fail
    /// behind its shut fence and leave them half-released. Once it is live
    /// and its fence open, it balances again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_whose_heartbeat_lapsed_keeps_its_tenants() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetaStore> = MemoryStore::new();
        let clock = ManualClock::new(1_000_000, 5);
        let config = Config {
            node_id: "me".into(),
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let mut engine_config = config.engine_config().unwrap();
        engine_config.served_tenants = Some(Vec::new());
        let engine = Engine::open_with_store(
            engine_config,
            clock.clone() as Arc<dyn Clock>,
            store.clone(),
        )
        .await
        .unwrap();
        let shut = Arc::new(Fence(std::sync::atomic::AtomicBool::new(false)));
        engine.set_write_fence(shut.clone());
        let catalog = Catalog::new(store);
        let now = clock.now_ms();
        let me = catalog
            .join_cluster(record("me"), now, 10_000)
            .await
            .unwrap();
        catalog
            .join_cluster(record("other"), now, 1_000_000)
            .await
            .unwrap();
        for t in ["t1", "t2", "t3", "t4"] {
            catalog.create_tenant(t, "default", now).await.unwrap();
            catalog.place_tenant(t, "me").await.unwrap();
            engine.serve_tenant(t).await.unwrap();
        }
        let balancer = Balancer::new(catalog.clone(), engine.clone(), config);
        let released = |catalog: Catalog| async move {
            catalog
                .tenant_placements()
                .await
                .unwrap()
                .into_iter()
                .filter(|p| p.released || p.node != "me")
                .count()
        };

        // Its fence shut while its record is live: nothing moves.
        shut.0.store(true, std::sync::atomic::Ordering::SeqCst);
        balancer.pass().await.unwrap();
        assert_eq!(released(catalog.clone()).await, 0);

        // Its record expired too (to the others it looks dead): nothing
        // moves, and it still serves its tenants once back.
        clock.advance_ms(20_000);
        balancer.pass().await.unwrap();
        assert_eq!(released(catalog.clone()).await, 0);
        assert!(engine.serves("t1"));

        // Renewed: it gives the other node its share.
        let renewed = NodeRecord {
            expires_ms: clock.now_ms() + 10_000,
            ..me.clone()
        };
        catalog.update_node(&me, renewed).await.unwrap().unwrap();
        shut.0.store(false, std::sync::atomic::Ordering::SeqCst);
        balancer.pass().await.unwrap();
        assert!(released(catalog.clone()).await > 0);
        engine.close().await.unwrap();
    }
}
