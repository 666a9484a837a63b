//! Starting and stopping a Strata node.

use std::net::SocketAddr;
use std::sync::Arc;

use strata_common::{Clock, SystemClock};
use strata_engine::{Engine, EngineError};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigError};
use crate::http::{self, AppState, Metrics};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the engine: {0}")]
    Engine(#[from] EngineError),
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
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
}

/// A running node. Dropping it does not stop it; call [`Running::shutdown`].
#[derive(Debug)]
pub struct Running {
    pub http_addr: SocketAddr,
    pub engine: Arc<Engine>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ServerError>>,
    _lock: std::fs::File,
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
        let result = match self.task.await {
            Ok(r) => r,
            Err(e) => Err(ServerError::Http(std::io::Error::other(e.to_string()))),
        };
        self.engine.close().await?;
        result
    }

    /// A handle that asks the server to stop.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// Takes the data directory's lock so two nodes never share one WAL.
fn lock_data_dir(config: &Config) -> Result<std::fs::File, ServerError> {
    let dir = config.data_dir.display().to_string();
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
    let engine = Engine::open(config.engine_config()?, clock).await?;
    let listener = TcpListener::bind(&config.http.addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.http.addr.clone(),
            source,
        })?;
    let http_addr = listener.local_addr().map_err(ServerError::Http)?;
    let state = AppState {
        engine: engine.clone(),
        metrics: Arc::new(Metrics::default()),
    };
    let app = http::router(state, config.http.max_request_bytes);
    let (stop, mut stopped) = watch::channel(false);
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
        data_dir = %config.data_dir.display(),
        "Strata is serving"
    );
    Ok(Running {
        http_addr,
        engine,
        stop,
        task,
        _lock: lock,
    })
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run_until_signal(config: Config) -> Result<(), ServerError> {
    let running = start(config).await?;
    eprintln!(
        "Strata is serving HTTP on http://{} (Ctrl-C to stop)",
        running.http_addr
    );
    let stop = running.stopper();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received; finishing in-flight requests");
        stop.send_replace(true);
    });
    running.wait().await
}

async fn wait_for_signal() {
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
