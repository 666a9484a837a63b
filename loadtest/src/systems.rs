//! The systems a comparison can load, started fresh on 127.0.0.1 for one
//! invocation and stopped (data deleted) when dropped: Strata (`--spawn`
//! machinery), NATS JetStream (`nats-server`) and Redis Streams
//! (`redis-server`), with what each one promises about durability.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use tempfile::TempDir;
use tokio::time::Instant;

use crate::driver::endpoint::Endpoint;
use crate::driver::nats::Nats;
use crate::driver::redis::Redis;
use crate::driver::strata_grpc::StrataGrpc;
use crate::driver::strata_http::StrataHttp;
use crate::spawn::{SpawnedServer, free_port};

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    /// Strata's HTTP/JSON API.
    StrataHttp,
    /// Strata over its RocketMQ 5 gRPC API (SendMessage, PullMessage).
    StrataGrpc,
    /// NATS JetStream (file storage), driven by `async-nats`.
    Nats,
    /// Redis Streams (AOF, appendfsync always), driven by `redis` (redis-rs).
    Redis,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            Self::StrataHttp => "strata-http",
            Self::StrataGrpc => "strata-grpc",
            Self::Nats => "nats",
            Self::Redis => "redis",
        }
    }

    /// Whether an acknowledged publish survives a power loss, and why.
    pub fn durability(self) -> (bool, &'static str) {
        match self {
            Self::StrataHttp | Self::StrataGrpc => (
                true,
                "durable: acknowledged after the WAL write is fdatasync'ed (group commit)",
            ),
            Self::Nats => (
                false,
                "NOT durable: JetStream file store acknowledges before fsync (2.9 flushes lazily)",
            ),
            Self::Redis => (
                true,
                "durable: AOF with appendfsync always (fsync before the reply)",
            ),
        }
    }
}

/// Where the binaries are and where data goes.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub strata: PathBuf,
    pub nats: PathBuf,
    pub redis: PathBuf,
    /// Parent of the temporary data directories (the disk under test).
    pub data_parent: Option<PathBuf>,
    /// Extra environment for the Strata server.
    pub strata_env: Vec<(String, String)>,
}

/// A started system: how to reach it and its process.
#[derive(Debug)]
pub struct Running {
    pub system: System,
    pub endpoint: Endpoint,
    pub pid: Option<u32>,
    pub version: String,
    /// The command line or settings that matter for the numbers.
    pub settings: String,
    _guard: Guard,
}

/// Held only to be dropped: that stops the process and deletes its data.
#[derive(Debug)]
#[expect(dead_code, reason = "held only for its Drop")]
enum Guard {
    Strata(Box<SpawnedServer>),
    Peer(PeerProcess),
}

/// A peer server child; killed, and its data deleted, on drop.
#[derive(Debug)]
struct PeerProcess {
    child: Child,
    dir: TempDir,
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const STARTUP: Duration = Duration::from_secs(30);

/// Starts `system` on a free loopback port and waits until it serves.
pub async fn start(system: System, bins: &Binaries, timeout: Duration) -> Result<Running> {
    match system {
        System::StrataHttp | System::StrataGrpc => {
            let server =
                SpawnedServer::start(&bins.strata, bins.data_parent.as_deref(), &bins.strata_env)
                    .await?;
            let (ak, sk) = server.admin_credentials()?;
            let client = StrataHttp::with_authorization(
                server.url(),
                timeout,
                Some(format!("Bearer {ak}:{sk}")),
            )?;
            let version = client.status().await.map(|s| s.version).unwrap_or_default();
            let endpoint = match system {
                System::StrataGrpc => {
                    Endpoint::new(StrataGrpc::new(client, server.grpc_addr(), ak, sk))
                }
                _ => Endpoint::new(client),
            };
            Ok(Running {
                system,
                endpoint,
                pid: Some(server.pid()),
                version: format!("strata {version}"),
                settings: format!(
                    "{} serve --data-dir {} (defaults: WAL group commit + fdatasync; local-dir object store){}",
                    crate::report::STRATA_BIN,
                    crate::report::TMP_DIR,
                    env_note(&bins.strata_env)
                ),
                _guard: Guard::Strata(Box::new(server)),
            })
        }
        System::Nats => {
            let port = free_port()?;
            let dir = temp_dir(bins.data_parent.as_deref(), "nats")?;
            let store = dir.path().join("jetstream");
            let args: Vec<String> = vec![
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
                "-js".into(),
                "-sd".into(),
                store.display().to_string(),
            ];
            let child = spawn(&bins.nats, &args, dir.path())?;
            let mut peer = PeerProcess { child, dir };
            let addr = ([127, 0, 0, 1], port).into();
            let nats = Nats::new(addr);
            let probe = nats.clone();
            wait_ready(&mut peer, "nats-server", || {
                let probe = probe.clone();
                async move { probe.ready(Duration::from_secs(2)).await.then_some(()) }
            })
            .await?;
            Ok(Running {
                system,
                endpoint: Endpoint::new(nats),
                pid: Some(peer.child.id()),
                version: version_of(&bins.nats),
                settings: format!(
                    "{} -a 127.0.0.1 -p {port} -js -sd <tmp>",
                    program_name(&bins.nats)
                ),
                _guard: Guard::Peer(peer),
            })
        }
        System::Redis => {
            let port = free_port()?;
            let dir = temp_dir(bins.data_parent.as_deref(), "redis")?;
            let args: Vec<String> = [
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--protected-mode",
                "yes",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--dir",
                &dir.path().display().to_string(),
                "--daemonize",
                "no",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let child = spawn(&bins.redis, &args, dir.path())?;
            let mut peer = PeerProcess { child, dir };
            let addr = ([127, 0, 0, 1], port).into();
            let redis = Redis::new(addr)?;
            let probe = redis.clone();
            wait_ready(&mut peer, "redis-server", || {
                let probe = probe.clone();
                async move {
                    let mut c = probe.connect(Duration::from_secs(2)).await.ok()?;
                    let pong: String = redis::cmd("PING").query_async(&mut c).await.ok()?;
                    (pong == "PONG").then_some(())
                }
            })
            .await?;
            Ok(Running {
                system,
                endpoint: Endpoint::new(redis),
                pid: Some(peer.child.id()),
                version: version_of(&bins.redis),
                settings: format!(
                    "{} --bind 127.0.0.1 --port {port} --appendonly yes --appendfsync always --save '' --dir <tmp>",
                    program_name(&bins.redis)
                ),
                _guard: Guard::Peer(peer),
            })
        }
    }
}

/// A peer's program as a report names it: its file name, not its path.
fn program_name(binary: &Path) -> String {
    binary.file_name().map_or_else(
        || binary.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn env_note(env: &[(String, String)]) -> String {
    if env.is_empty() {
        return String::new();
    }
    let list: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(" with {}", list.join(" "))
}

fn temp_dir(parent: Option<&Path>, name: &str) -> Result<TempDir> {
    let prefix = format!("strata-loadtest-{name}-");
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix);
    match parent {
        Some(p) => b.tempdir_in(p),
        None => b.tempdir(),
    }
    .context("cannot create a temporary data directory")
}

fn spawn(binary: &Path, args: &[String], dir: &Path) -> Result<Child> {
    let log = std::fs::File::create(dir.join("server.log")).context("cannot create a log file")?;
    let log_err = log.try_clone().context("cannot duplicate the log handle")?;
    let mut command = Command::new(binary);
    crate::spawn::die_with_parent(&mut command);
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {} (install the peers with scripts/peers.sh)",
                binary.display()
            )
        })
}

async fn wait_ready<F, Fut, T>(peer: &mut PeerProcess, what: &str, probe: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(status) = peer.child.try_wait().context("cannot poll the peer")? {
            bail!(
                "{what} exited during startup ({status}); its log:\n{}",
                log_tail(peer.dir.path())
            );
        }
        if probe().await.is_some() {
            return Ok(());
        }
        if started.elapsed() > STARTUP {
            bail!(
                "{what} was not ready within {}s; its log:\n{}",
                STARTUP.as_secs(),
                log_tail(peer.dir.path())
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The first line of `binary --version` ("redis-server 7.0.15" for
/// Redis's long banner), or "unknown".
fn version_of(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .filter(|l| !l.is_empty())
        .map(
            |l| match l.split_whitespace().find_map(|w| w.strip_prefix("v=")) {
                Some(v) if l.starts_with("Redis server") => format!("redis-server {v}"),
                _ => l,
            },
        )
        .unwrap_or_else(|| "unknown".into())
}
