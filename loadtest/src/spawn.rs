//! `--spawn`: run a fresh `strata serve` for the duration of one load test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::driver::strata_http::StrataHttp;

/// How long a spawned server may take to answer `/healthz`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A `strata serve` child on a temporary data directory. Dropping it kills
/// the process, then deletes the directory (fields drop after `drop`).
#[derive(Debug)]
pub struct SpawnedServer {
    grpc_port: u16,
    child: Child,
    url: String,
    log_path: PathBuf,
    dir: TempDir,
}

impl SpawnedServer {
    /// Starts `binary serve` on a free 127.0.0.1 port, with `env` added to
    /// its environment, and waits until healthy.
    pub async fn start(
        binary: &Path,
        parent: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Self> {
        if !binary.is_file() {
            bail!(
                "--spawn {}: no such file (build it with `cargo build --release -p strata`)",
                binary.display()
            );
        }
        let dir = match parent {
            Some(p) => tempfile::Builder::new()
                .prefix("strata-loadtest-")
                .tempdir_in(p),
            None => tempfile::Builder::new()
                .prefix("strata-loadtest-")
                .tempdir(),
        }
        .context("cannot create a temporary data directory")?;
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("server.log");
        let port = free_port()?;
        let grpc_port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let log_err = log.try_clone().context("cannot duplicate the log handle")?;
        let mut command = Command::new(binary);
        die_with_parent(&mut command);
        let child = command
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--http-addr")
            .arg(&addr)
            // The RocketMQ gRPC API, on its own free port.
            .arg("--grpc-addr")
            .arg(format!("127.0.0.1:{grpc_port}"))
            .env("STRATA_LOG_LEVEL", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut server = Self {
            grpc_port,
            child,
            url: format!("http://{addr}"),
            log_path,
            dir,
        };
        server.wait_healthy().await?;
        Ok(server)
    }

    /// The server's process id (for CPU and memory samples).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where the RocketMQ gRPC API listens.
    pub fn grpc_addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.grpc_port).into()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The bootstrap admin credential the server wrote on first start.
    pub fn admin_credentials(&self) -> Result<(String, String)> {
        let path = self.dir.path().join("data").join("admin-credentials");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .map(|v| v.trim().to_string())
        };
        match (value("access_key"), value("secret_key")) {
            (Some(ak), Some(sk)) => Ok((ak, sk)),
            _ => anyhow::bail!("{} lacks access_key/secret_key lines", path.display()),
        }
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let client = StrataHttp::new(&self.url, Duration::from_secs(1))?;
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().context("cannot poll the server")? {
                bail!(
                    "the spawned server exited during startup ({status}); its output:\n{}",
                    self.log_tail()
                );
            }
            if client.healthy().await {
                return Ok(());
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                bail!(
                    "the spawned server did not answer {}/healthz within {}s; its output:\n{}",
                    self.url,
                    STARTUP_TIMEOUT.as_secs(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Linux: the child gets SIGKILL when this process dies, however it dies,
/// so a killed load test never leaves a server running. (The signal
/// follows the thread that spawned the child; tokio's worker threads, where
/// the servers are started, live as long as the runtime.)
pub fn die_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: prctl is async-signal-safe and touches only the child.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener
        .local_addr()
        .context("cannot find a free port")?
        .port())
}
