//! Starting and stopping a Strata node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use strata_common::{Clock, SystemClock};
use strata_engine::{Engine, EngineError, WriteFence};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::balance::Balancer;
use crate::cluster::forward::Forwarder;
use crate::cluster::registry::{Advertised, NodeKeeper};
use crate::config::{Config, ConfigError, MetadataUrl};
use crate::http::{self, AppState, AuthSettings, Handles, Metrics, NodeCollector};
use crate::metering::{MeteringTasks, Operations, TenantCollector};
use crate::serving::{LeaseFence, ServingKeeper};
use strata_metadata::{Catalog, EtcdStore, FailFastStore, MetaStore, RedbStore, TimedStore};
use strata_tenancy::{Credentials, MasterKey, UsageLedger};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the engine: {0}")]
    Engine(#[from] EngineError),
    /// Closing the engine at a stop failed (what it could upload, it did).
    #[error("closing the engine: {0}")]
    Close(EngineError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "data directory {dir} is in use by another Strata process (lock file {lock}); stop it or choose another --data-dir"
    )]
    Locked { dir: String, lock: String },
    #[error("data directory {dir}: {source}")]
    DataDir { dir: String, source: std::io::Error },
    #[error(
        "cache.block_disk_dir {dir} is in use by another Strata process; give each node a directory of its own, or \"none\" for a memory-only cache"
    )]
    CacheDirLocked { dir: String },
    #[error("cache.block_disk_dir {dir}: {source}")]
    CacheDir { dir: String, source: std::io::Error },
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
    #[error("gRPC server failed: {0}")]
    Grpc(String),
    #[error("metadata store: {0}")]
    Metadata(#[from] strata_metadata::MetaError),
    #[error("credentials: {0}")]
    Credentials(String),
    /// The shared metadata namespace is another node's (see `serving`).
    #[error("{0}")]
    Serving(String),
    /// `strata compactor` cannot start or run.
    #[error("compactor: {0}")]
    Compactor(String),
    /// Another node took this node's registry record: it stopped.
    #[error("stopped: {0}")]
    TakenOver(String),
    /// The WAL refused a write or an fdatasync (a full disk, an I/O
    /// error): the node stopped so that a restart recovers it.
    #[error(
        "stopped because the write-ahead log failed ({0}); restart the node: recovery at start \
         repairs the log, and every acknowledged message was made durable before the failure \
         (messages of the write that failed were never acknowledged but may still be delivered)"
    )]
    WalFailed(String),
}

/// How long a stop waits for gRPC calls to finish before it goes on
/// without them (appends they started still finish first).
const GRPC_DRAIN: Duration = Duration::from_secs(10);

/// A running node. Dropping it does not stop it; call [`Running::shutdown`].
#[derive(Debug)]
pub struct Running {
    pub http_addr: SocketAddr,
    /// Where the RocketMQ 5 gRPC API listens.
    pub grpc_addr: SocketAddr,
    grpc_task: JoinHandle<Result<(), ServerError>>,
    pub engine: Arc<Engine>,
    metering: MeteringTasks,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ServerError>>,
    /// The metadata store, to see it closed before the data directory is
    /// given up.
    store: std::sync::Weak<dyn MetaStore>,
    /// Ends when the embedded store's database is closed (its last holder
    /// may drop it after `store` reads no holders).
    store_closed: Option<StoreClosed>,
    /// The serving lease, on shared metadata.
    serving: Option<ServingKeeper>,
    /// This node's registry entry.
    node: NodeKeeper,
    /// In cluster mode: the balancer, its task and its stop signal.
    balancer: Option<(Arc<Balancer>, JoinHandle<()>, watch::Sender<bool>)>,
    lock: std::fs::File,
    /// The block cache's disk tier directory, when outside the data directory.
    cache_lock: Option<std::fs::File>,
}

impl Running {
    /// Stops accepting connections, finishes in-flight requests (appends
    /// included), then closes the WAL.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.stop.send_replace(true);
        self.wait().await
    }

    /// Waits until the server stops (after [`Running::shutdown`] or a failure).
    pub async fn wait(self) -> Result<(), ServerError> {
        let clock = self.engine.clock().clone();
        let result = match self.task.await {
            Ok(r) => r,
            Err(e) => Err(ServerError::Http(std::io::Error::other(e.to_string()))),
        };
        // The HTTP server stopped: the stop has begun (a serving node waits
        // above for as long as it serves).
        let (step, _watchdog) = StopWatchdog::start(clock.clone());
        // The HTTP server stopped: stop gRPC too (it shares the signal).
        // Its streams end with the engine's shutdown, but a call may still
        // hang: the wait is bounded (such a call's connection lives on in
        // its own task until the process exits).
        self.stop.send_replace(true);
        step.set("draining gRPC calls");
        let mut grpc_task = self.grpc_task;
        let grpc = match strata_common::clock::timeout(&*clock, GRPC_DRAIN, &mut grpc_task).await {
            Some(Ok(r)) => r,
            Some(Err(e)) => Err(ServerError::Grpc(e.to_string())),
            None => {
                tracing::warn!(
                    seconds = GRPC_DRAIN.as_secs(),
                    "gRPC calls still open after the drain; stopping without waiting for them"
                );
                grpc_task.abort();
                Ok(())
            }
        };
        // Calls still open may have appends under way: they finish before
        // the upload below, so nothing acknowledged stays only in the WAL
        // that another node may be handed the tenants of.
        step.set("finishing appends under way");
        self.engine.drain_appends().await;
        let result = result.and(grpc);
        let taken = self.node.taken();
        // On shared metadata another node may take over after a graceful
        // stop, so nothing may stay only in this node's WAL.
        // A cluster node stops moving tenants before it uploads them all.
        if let Some((_, task, stop)) = &self.balancer {
            stop.send_replace(true);
            task.abort();
        }
        step.set("uploading the WAL");
        // The fence the engine acknowledges behind, on shared metadata. Once
        // it shuts, this node can commit nothing more (its lease lapsed in a
        // metadata outage, or was taken): the steps below that wait on the
        // store are abandoned, as a crash would abandon them (each is
        // crash-safe), instead of waiting out the store's timeouts.
        let fence = match (&self.serving, &self.balancer) {
            (Some(keeper), _) => Some(keeper.fence()),
            (None, Some(_)) => Some(self.node.fence()),
            (None, None) => None,
        };
        let uploaded_all = match &fence {
            Some(fence) => unless_fenced(
                fence,
                LeaseFence::is_shut,
                crate::serving::upload_everything(&self.engine),
            )
            .await
            .unwrap_or(false),
            // Embedded: nobody else can take over; the record says
            // whether anything is left only in the WAL.
            None => self.engine.upload_lag_bytes() == 0,
        };
        step.set("closing the engine");
        let closed = self.engine.close().await.map_err(ServerError::Close);
        step.set("flushing usage");
        // Only a lapse gives up: a node whose lease was taken can still
        // reach the store, and the usage kept here would wait for a start
        // that must never come.
        let lapsed = async {
            match &fence {
                Some(fence) => fence.until(LeaseFence::lapsed).await,
                None => std::future::pending().await,
            }
        };
        self.metering.finish(lapsed).await;
        let Self {
            engine,
            store,
            store_closed,
            serving,
            node,
            balancer,
            lock,
            cache_lock,
            ..
        } = self;
        step.set("handing over tenants and leaving the cluster");
        let hand_over = async {
            if let Some((balancer, _, _)) = balancer
                && uploaded_all
            {
                balancer.release_all().await;
            }
            node.leave(uploaded_all).await;
            if let Some(keeper) = serving {
                keeper.finish(uploaded_all).await;
            }
        };
        match &fence {
            Some(fence) => {
                unless_fenced(fence, LeaseFence::is_shut, hand_over).await;
            }
            None => hand_over.await,
        }
        drop(engine);
        step.set("closing the metadata store");
        release_store(&store, store_closed).await;
        drop(cache_lock);
        drop(lock);
        // Taken over at any moment up to now (a stop that raced a shutdown
        // included): that is why the node stopped, whatever else failed.
        let taken = taken.borrow().clone();
        match taken {
            Some(why) => Err(ServerError::TakenOver(why)),
            None => result.and(closed),
        }
    }

    /// A handle that asks the server to stop.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// Runs `step` of a stop unless `shut` holds for `fence` first; `None` when
/// the step was abandoned for that, which is said in the log.
async fn unless_fenced<T>(
    fence: &LeaseFence,
    shut: fn(&LeaseFence) -> bool,
    step: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        biased;
        done = step => Some(done),
        () = fence.until(shut) => {
            tracing::warn!(
                reason = %fence.check().err().unwrap_or_default(),
                "the write fence shut during the stop: leaving what is not yet in object storage in the WAL, for the next start or the node adopting this directory"
            );
            None
        }
    }
}

/// Waits (up to 10 s) until nothing holds the embedded metadata store any more. The
/// last clones go with tasks that end a moment after shutdown (a
/// connection's task drops its copy of the router just after it reports
/// itself closed); a node restarted in the same process must find the
/// embedded store closed, or it cannot open it.
// Real time, not the node's clock: this waits on tasks of the runtime, and a
// test's manual clock would never let it end.
#[allow(clippy::disallowed_methods)]
async fn release_store(store: &std::sync::Weak<dyn MetaStore>, closed: Option<StoreClosed>) {
    const LIMIT: Duration = Duration::from_secs(10);
    // Only the embedded store must be closed before another opens it. A
    // shared one's last holder may be a call waiting out an unreachable
    // store (history compaction, a heartbeat): not worth waiting for.
    let Some(closed) = closed else {
        return;
    };
    let started = std::time::Instant::now();
    while store.strong_count() > 0 {
        if started.elapsed() > LIMIT {
            tracing::warn!(
                holders = store.strong_count(),
                "the metadata store is still held 10 s after shutdown"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // No holders left, but the last may still be closing it (reads to end,
    // the writer thread to join).
    let left = LIMIT.saturating_sub(started.elapsed());
    if tokio::time::timeout(left, closed.0).await.is_err() {
        tracing::warn!("the embedded metadata store is still closing 10 s after shutdown");
    }
}

/// A future that ends once a store's database is closed.
struct StoreClosed(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>);

impl std::fmt::Debug for StoreClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreClosed")
    }
}

/// Opens the metadata store `metadata.url` names.
pub(crate) async fn open_metadata(config: &Config) -> Result<Arc<dyn MetaStore>, ServerError> {
    Ok(open_metadata_closing(config).await?.0)
}

/// [`open_metadata`], with what tells when the embedded store is closed.
async fn open_metadata_closing(
    config: &Config,
) -> Result<(Arc<dyn MetaStore>, Option<StoreClosed>), ServerError> {
    Ok(match config.metadata.parse()? {
        MetadataUrl::Embedded => {
            // validate() bounds cache_bytes to at most 1 TiB, which fits usize on 64-bit.
            let cache = usize::try_from(config.metadata.cache_bytes).unwrap_or(usize::MAX);
            let store = RedbStore::open_with_cache(&config.data_dir.join("meta.redb"), cache)?;
            let closed = StoreClosed(Box::pin(store.closed()));
            (store, Some(closed))
        }
        MetadataUrl::Etcd(address) => {
            let wait = Duration::from_millis(config.metadata.connect_wait_ms);
            let store = EtcdStore::connect_waiting(&address, wait, &SystemClock).await?;
            tracing::info!(endpoints = %address.endpoints.join(","), namespace = %address.namespace, "metadata on etcd");
            (store, None)
        }
        MetadataUrl::Tikv(address) => (open_tikv(&address).await?, None),
    })
}

#[cfg(feature = "tikv")]
async fn open_tikv(
    address: &strata_metadata::TikvAddress,
) -> Result<Arc<dyn MetaStore>, ServerError> {
    let store = strata_metadata::TikvStore::connect(address).await?;
    tracing::info!(pd = %address.pd_endpoints.join(","), namespace = %address.namespace, "metadata on TiKV");
    Ok(store)
}

#[cfg(not(feature = "tikv"))]
async fn open_tikv(
    _address: &strata_metadata::TikvAddress,
) -> Result<Arc<dyn MetaStore>, ServerError> {
    Err(ServerError::Config(ConfigError::Invalid(
        "metadata.url names TiKV, but this strata binary was built without TiKV support \
         (its client brings a second gRPC stack, so it is opt-in): build it with \
         `cargo build --release --features tikv`"
            .into(),
    )))
}

/// Takes the data directory's lock so two nodes never share one WAL.
pub(crate) fn lock_data_dir(config: &Config) -> Result<std::fs::File, ServerError> {
    let dir = config.data_dir.display().to_string();
    if config.data_dir.exists() && !config.data_dir.is_dir() {
        return Err(ServerError::DataDir {
            dir,
            source: std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "it exists and is not a directory",
            ),
        });
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
        dir: dir.clone(),
        source,
    })?;
    let path = config.data_dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| ServerError::DataDir {
            dir: dir.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(_) => Err(ServerError::Locked {
            dir,
            lock: path.display().to_string(),
        }),
    }
}

/// Opens the engine and starts serving HTTP; returns once listening.
pub async fn start(config: Config) -> Result<Running, ServerError> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

pub async fn start_with_clock(
    config: Config,
    clock: Arc<dyn Clock>,
) -> Result<Running, ServerError> {
    config.validate()?;
    let lock = lock_data_dir(&config)?;
    // Before the cache is sized or emptied: it may be another node's.
    let cache_lock = crate::disk_space::lock_block_disk_dir(&config)?;
    let mut config = config;
    crate::disk_space::prepare_block_cache(&mut config);
    // Listening first: the node registers its addresses before it serves,
    // and a port in use stops the start before anything is written.
    let listener = TcpListener::bind(&config.http.addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.http.addr.clone(),
            source,
        })?;
    let http_addr = listener.local_addr().map_err(ServerError::Http)?;
    let grpc_listener = TcpListener::bind(&config.grpc.addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.grpc.addr.clone(),
            source,
        })?;
    let grpc_addr = grpc_listener.local_addr().map_err(ServerError::Http)?;
    let (store, store_closed) = open_metadata_closing(&config).await?;
    // A shared store that stops answering fails calls at once, not each
    // after the backend's timeouts (see `FailFastStore`).
    let store = match config.metadata.parse()?.is_shared() {
        true => FailFastStore::wrap(store, clock.clone()),
        false => store,
    };
    let store = TimedStore::wrap(store, clock.clone());
    // Before the serving lease: a node that cannot verify the namespace's
    // keys (a missing master key) must not take the namespace.
    let credentials = open_credentials(&config, store.clone(), clock.clone()).await?;
    let identity =
        crate::serving::data_dir_identity(&config.data_dir, clock.as_ref()).map_err(|source| {
            ServerError::DataDir {
                dir: config.data_dir.display().to_string(),
                source,
            }
        })?;
    let advertised = advertised_addr(&config.grpc.advertise_addr, grpc_addr);
    let (http_host, http_port) = advertised_addr(&config.http.advertise_addr, http_addr);
    let catalog = Catalog::new(store.clone());
    let cluster = config.serving.cluster;
    // A node that joined is handed tenants: one its object store refuses
    // (another bucket, wrong credentials) must be refused before it joins.
    if cluster {
        let engine_config = config.engine_config()?;
        strata_engine::check_object_store_for_start(&engine_config, &catalog, clock.clone())
            .await?;
    }
    let engine_slot: Arc<std::sync::OnceLock<Arc<Engine>>> = Arc::default();
    // Every node registers, embedded ones too: `strata cluster status`
    // then reads the same way everywhere. In cluster mode the heartbeat is
    // the node's lease, and joining before reading placements keeps a node
    // whose WAL was just adopted from taking back tenants others now hold.
    let node = NodeKeeper::join(
        catalog.clone(),
        &config,
        clock.clone(),
        &identity,
        Advertised {
            grpc: join_host_port(&advertised.0, advertised.1),
            http: join_host_port(&http_host, http_port),
        },
        engine_slot.clone(),
    )
    .await?;
    let serving = match config.metadata.parse()?.is_shared() && !cluster {
        false => None,
        true => {
            Some(ServingKeeper::take(catalog.clone(), &config, &identity, clock.clone()).await?)
        }
    };
    let mut engine_config = config.engine_config()?;
    if cluster {
        let mine = catalog
            .tenant_placements()
            .await
            .map_err(|e| ServerError::Serving(e.to_string()))?
            .into_iter()
            .filter(|p| p.node == config.node_id && !p.released)
            .map(|p| p.tenant)
            .collect();
        engine_config.served_tenants = Some(mine);
    }
    let weak_store = Arc::downgrade(&store);
    let engine = Engine::open_with_store(engine_config, clock.clone(), store.clone()).await?;
    let _ = engine_slot.set(engine.clone());
    match &serving {
        Some(keeper) => engine.set_write_fence(keeper.fence()),
        None if cluster => engine.set_write_fence(node.fence()),
        None => {}
    }
    // Only shared stores (etcd, TiKV) keep a history that grows.
    if config.metadata.compact_history_interval_ms > 0 && config.metadata.parse()?.is_shared() {
        let every = Duration::from_millis(config.metadata.compact_history_interval_ms);
        spawn_history_compaction(Arc::downgrade(&store), clock.clone(), every);
    }
    let (balancer_stop, balancer_stopped) = watch::channel(false);
    let balancer = if cluster {
        let balancer = Balancer::new(catalog.clone(), engine.clone(), config.clone());
        if let Err(e) = balancer.pass().await {
            tracing::warn!(error = %e, "first cluster balancing pass failed; retrying");
        }
        Some((balancer.clone(), balancer.spawn(balancer_stopped)))
    } else {
        None
    };
    let rate_clock = clock.clone();
    let ledger = Arc::new(UsageLedger::new(
        Catalog::new(store.clone()),
        engine.meter().clone(),
        clock.clone(),
        &config.node_id,
    ));
    let metering = MeteringTasks::start(
        engine.clone(),
        ledger.clone(),
        clock.clone(),
        &config.metering,
        config.data_dir.clone(),
    );
    let limiter = Arc::new(strata_tenancy::RateLimiter::with_max_delay(
        rate_clock,
        config.quotas.max_delay_ms,
    ));
    let node_metrics = NodeCollector {
        engine: engine.clone(),
        limiter: limiter.clone(),
    };
    let state = AppState::new(Handles {
        engine: engine.clone(),
        metrics: Arc::new(Metrics::new(
            node_metrics,
            Some(TenantCollector {
                meter: engine.meter().clone(),
                max_tenants: config.metering.metrics_max_tenants,
            }),
        )),
        usage: ledger,
        operations: Operations::from_openapi(http::ops::OPENAPI),
        credentials,
        limiter,
        auth: AuthSettings {
            anonymous: config.auth.anonymous,
            max_clock_skew_ms: i64::try_from(config.auth.max_clock_skew_ms).unwrap_or(i64::MAX),
        },
        cluster: balancer.as_ref().map(|(b, _)| Forwarder {
            balancer: b.clone(),
            client: reqwest::Client::builder()
                .timeout(b.forward_timeout())
                .build()
                .unwrap_or_default(),
            node: config.node_id.clone(),
            max_request_bytes: config.http.max_request_bytes,
        }),
    });
    let grpc_state = crate::grpc::GrpcState {
        engine: engine.clone(),
        credentials: state.credentials.clone(),
        limiter: state.limiter.clone(),
        max_clock_skew_ms: state.auth.max_clock_skew_ms,
        anonymous: state.auth.anonymous,
        advertised,
        route_endpoint: crate::config::advertised(&config.grpc.route_addr),
        producers: Default::default(),
        clients: Default::default(),
        cluster: balancer.as_ref().map(|(b, _)| b.clone()),
    };
    let config_max_request_bytes = config.http.max_request_bytes;
    let app = http::router(state, config.http.max_request_bytes);
    let (stop, mut stopped) = watch::channel(false);
    stop_when_taken(node.taken(), stop.clone());
    let mut grpc_stopped = stopped.clone();
    let mut grpc_engine_down = engine.shutdown_signal();
    let grpc_task = tokio::spawn(async move {
        crate::grpc::serve(
            grpc_listener,
            grpc_state,
            config_max_request_bytes,
            async move {
                tokio::select! {
                    _ = grpc_stopped.wait_for(|s| *s) => {}
                    _ = grpc_engine_down.wait_for(|s| *s) => {}
                }
            },
        )
        .await
        .map_err(|e| ServerError::Grpc(e.to_string()))
    });
    let mut engine_down = engine.shutdown_signal();
    let draining = engine.clone();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                tokio::select! {
                    _ = stopped.wait_for(|s| *s) => {}
                    _ = engine_down.wait_for(|s| *s) => {}
                }
                // Long polls end now instead of holding shutdown for up to
                // their full wait; accepted appends still complete.
                draining.begin_shutdown();
            })
            .await
            .map_err(ServerError::Http)
    });
    tracing::info!(
        http = %http_addr,
        grpc = %grpc_addr,
        data_dir = %config.data_dir.display(),
        "Strata is serving"
    );
    Ok(Running {
        http_addr,
        grpc_addr,
        grpc_task,
        engine,
        metering,
        stop,
        task,
        store: weak_store,
        store_closed,
        serving,
        node,
        balancer: balancer.map(|(b, task)| (b, task, balancer_stop)),
        lock,
        cache_lock,
    })
}

/// The address to tell others for a listener: the configured `HOST:PORT`,
/// else the bound address with an unspecified IP shown as 127.0.0.1.
fn advertised_addr(configured: &str, bound: SocketAddr) -> (String, u16) {
    match crate::config::advertised(configured) {
        Some(a) => a,
        None if bound.ip().is_unspecified() => ("127.0.0.1".to_string(), bound.port()),
        None => (bound.ip().to_string(), bound.port()),
    }
}

/// `host:port`, with an IPv6 host in brackets.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Stops the server once another node took this node's registry record:
/// behind a fence that never opens again it could only answer 503.
fn stop_when_taken(mut taken: watch::Receiver<Option<String>>, stop: watch::Sender<bool>) {
    tokio::spawn(async move {
        if taken.wait_for(Option::is_some).await.is_ok() {
            stop.send_replace(true);
        }
    });
}

/// Compacts the metadata store's history every `every` while the store
/// lives (see `MetaStore::compact_history`); a failure is retried at the
/// next interval.
fn spawn_history_compaction(
    store: std::sync::Weak<dyn MetaStore>,
    clock: Arc<dyn Clock>,
    every: Duration,
) {
    tokio::spawn(async move {
        loop {
            clock.sleep(every).await;
            let Some(store) = store.upgrade() else {
                return;
            };
            match store.compact_history().await {
                Ok(Some(revision)) => {
                    tracing::info!(revision, "compacted the metadata store's history")
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "compacting the metadata store's history failed; retrying later")
                }
            }
        }
    });
}

/// Loads (or creates) the master key and makes sure a bootstrap admin
/// credential exists, writing it to the credentials file on first start.
async fn open_credentials(
    config: &Config,
    store: Arc<dyn MetaStore>,
    clock: Arc<dyn Clock>,
) -> Result<Credentials, ServerError> {
    let key_path = config.master_key_path();
    let (master, created) = MasterKey::load_or_create(&key_path)
        .map_err(|e| ServerError::Credentials(format!("master key {}: {e}", key_path.display())))?;
    if created {
        tracing::info!(path = %key_path.display(), "created the master key that encrypts stored secrets");
    }
    let ttl_ms = i64::try_from(config.auth.key_cache_ttl_ms).unwrap_or(i64::MAX);
    let credentials = Credentials::with_cache_ttl_ms(Catalog::new(store), master, clock, ttl_ms);
    let file = config.credentials_path();
    let issued = match credentials.bootstrap(&file).await {
        Ok(issued) => issued,
        Err(e) => {
            // A key made by this start that opens none of the stored
            // secrets (a mistyped auth.master_key_file) would only be in
            // the way of the next attempt: nothing was sealed with it.
            if created
                && matches!(
                    e,
                    strata_tenancy::TenancyError::Secrets(
                        strata_tenancy::SecretsError::ForeignMasterKey { .. }
                    )
                )
                && let Err(remove) = std::fs::remove_file(&key_path)
            {
                tracing::warn!(error = %remove, path = %key_path.display(), "removing the master key this start created failed");
            }
            return Err(ServerError::Credentials(e.to_string()));
        }
    };
    if let Some(key) = issued {
        tracing::warn!(
            file = %file.display(),
            access_key = %key.access_key,
            "created the bootstrap admin credential (secret in the file, mode 0600)"
        );
    }
    if config.auth.anonymous {
        tracing::warn!(
            "anonymous access is ON: requests without credentials act as a service admin (local development only)"
        );
    }
    Ok(credentials)
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run_until_signal(config: Config) -> Result<(), ServerError> {
    let credentials_file = config.credentials_path();
    let running = start(config).await?;
    // On shared metadata only the node that started first wrote the file.
    let where_admin = match credentials_file.exists() {
        true => format!("admin credential in {}", credentials_file.display()),
        false => "admin credential in the admin-credentials file of the node that first \
                  started on this metadata store"
            .to_string(),
    };
    eprintln!(
        "Strata is serving HTTP on http://{} and RocketMQ gRPC on {} (Ctrl-C to stop); {where_admin}",
        running.http_addr, running.grpc_addr,
    );
    let stop = running.stopper();
    // Weak: the engine must be gone once the node stopped (the embedded
    // metadata store closes with it).
    let engine = Arc::downgrade(&running.engine);
    let watcher = tokio::spawn(async move {
        tokio::select! {
            _ = wait_for_signal() => {
                tracing::info!("shutdown signal received; finishing in-flight requests");
                stop.send_replace(true);
                None
            }
            Some(cause) = until_wal_fails(engine) => {
                tracing::error!(
                    cause = %cause,
                    "the write-ahead log failed: every publish is refused until the node \
                     restarts, so it stops now (a supervisor restarts it; recovery repairs the log)"
                );
                stop.send_replace(true);
                Some(cause)
            }
        }
    });
    let result = running.wait().await;
    // The watcher ended with the stop it asked for; a stop for another
    // reason (taken over) leaves it waiting for a signal.
    if watcher.is_finished()
        && let Ok(Some(cause)) = watcher.await
    {
        return Err(ServerError::WalFailed(cause));
    }
    result
}

/// What made the WAL fail, once it did; `None` once the engine is gone. A
/// failed WAL refuses every append until the process restarts (recovery at
/// start is what repairs it), so a node that stays up only answers 503 to
/// producers; stopping hands its tenants to other nodes in a cluster and
/// lets a supervisor restart it.
async fn until_wal_fails(engine: std::sync::Weak<Engine>) -> Option<String> {
    const CHECK_EVERY: Duration = Duration::from_millis(250);
    loop {
        let clock = {
            let engine = engine.upgrade()?;
            if let Some(cause) = engine.wal_failure() {
                return Some(cause);
            }
            engine.clock().clone()
        };
        clock.sleep(CHECK_EVERY).await;
    }
}

pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Logs which step of a stop is still waiting, every [`STOP_REPORT`], so a
/// stop that hangs says where (a test once timed out in one, silently).
/// Dropped, it stops reporting.
struct StopWatchdog(JoinHandle<()>);

impl Drop for StopWatchdog {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often a stop still under way is reported.
const STOP_REPORT: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct StopStep(Arc<std::sync::Mutex<&'static str>>);

impl StopStep {
    fn set(&self, step: &'static str) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = step;
    }

    fn get(&self) -> &'static str {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl StopWatchdog {
    fn start(clock: Arc<dyn Clock>) -> (StopStep, Self) {
        let step = StopStep(Arc::new(std::sync::Mutex::new("draining gRPC calls")));
        let watched = step.clone();
        let task = tokio::spawn(async move {
            let mut waited = Duration::ZERO;
            loop {
                clock.sleep(STOP_REPORT).await;
                waited += STOP_REPORT;
                tracing::warn!(
                    step = watched.get(),
                    waited_s = waited.as_secs(),
                    "the stop is still waiting"
                );
            }
        });
        (step, Self(task))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_step_is_abandoned_once_the_write_fence_shuts() {
        let clock = strata_common::ManualClock::new(0, 1);
        let fence = LeaseFence::new(clock.clone(), crate::serving::FencedBy::NodeRecord);
        fence.renewed(clock.monotonic(), 10_000);
        // A step the store never answers ends when the fence shuts, which
        // here is when its renewal is eight seconds old.
        let stuck = unless_fenced(&fence, LeaseFence::is_shut, std::future::pending::<()>());
        tokio::pin!(stuck);
        assert!(futures::poll!(&mut stuck).is_pending());
        clock.advance_ms(7_900);
        tokio::task::yield_now().await;
        assert!(futures::poll!(&mut stuck).is_pending());
        clock.advance_ms(200);
        assert_eq!(stuck.await, None);
        assert!(fence.lapsed());
        // A step that finishes is taken, even with the fence shut.
        assert_eq!(
            unless_fenced(&fence, LeaseFence::is_shut, async { 7 }).await,
            Some(7)
        );
        // A taken lease has not lapsed: usage is still flushed then.
        fence.close();
        assert!(fence.is_shut() && !fence.lapsed());
    }

    #[test]
    fn a_data_dir_that_is_a_file_is_refused_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let config = Config {
            data_dir: file,
            ..Config::default()
        };
        let err = lock_data_dir(&config).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
    }

    #[tokio::test]
    async fn a_port_in_use_stops_the_start_before_any_key_is_written() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.http.addr = taken.local_addr().unwrap().to_string();
        config.grpc.addr = "127.0.0.1:0".into();
        let Err(err) = start(config.clone()).await else {
            panic!("started on a port in use");
        };
        assert!(matches!(err, ServerError::Bind { .. }), "{err}");
        assert!(!config.master_key_path().exists());
        assert!(!config.credentials_path().exists());
        assert!(!dir.path().join("meta.redb").exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_node_on_one_cache_directory_is_refused_and_leaves_it_alone() {
        let cache = tempfile::tempdir().unwrap();
        let node = |dir: &std::path::Path| {
            let mut config = Config {
                data_dir: dir.to_path_buf(),
                ..Config::default()
            };
            config.http.addr = "127.0.0.1:0".into();
            config.grpc.addr = "127.0.0.1:0".into();
            config.cache.block_disk_dir = cache.path().display().to_string();
            config
        };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = start(node(a.path())).await.unwrap();
        let held: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
        let Err(err) = start(node(b.path())).await else {
            panic!("two nodes started on one cache directory");
        };
        assert!(matches!(err, ServerError::CacheDirLocked { .. }), "{err}");
        assert!(
            err.to_string()
                .contains(&cache.path().display().to_string())
        );
        // Refused before it sized, emptied or opened the cache, or wrote
        // anything of its own.
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), held.len());
        assert!(!b.path().join("meta.redb").exists());
        first.shutdown().await.unwrap();
        // Free again once the first node stopped.
        start(node(b.path()))
            .await
            .unwrap()
            .shutdown()
            .await
            .unwrap();
    }
}
