//! Runs a real `strata serve` (the binary named by `STRATA_BIN`) on loopback
//! ports chosen by the OS, and its CLI; shared by the tests and the
//! `measure` and `bench` examples.

pub mod bench;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Strata {
    child: Child,
    pub http: String,
    /// `host:port` of the RocketMQ gRPC API.
    pub grpc: String,
    pub dir: PathBuf,
    /// The bootstrap admin's credentials file.
    credentials: PathBuf,
    owns_dir: bool,
}

fn bin() -> String {
    std::env::var("STRATA_BIN").expect("STRATA_BIN names the strata binary to test")
}

fn temp_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "strata-compat-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ))
}

impl Strata {
    /// One node on its embedded defaults in a fresh directory.
    pub fn start(name: &str) -> Strata {
        let dir = temp_dir(name);
        let credentials = dir.join("admin-credentials");
        Strata::spawn(dir, credentials, &[], true)
    }

    /// Runs `strata serve` on `dir` with extra `env`; `credentials` is the
    /// admin credentials file the CLI signs with. The directory is removed
    /// on drop when `owns_dir`.
    fn spawn(dir: PathBuf, credentials: PathBuf, env: &[(&str, String)], owns_dir: bool) -> Strata {
        let mut child = Command::new(bin())
            .args([
                "serve",
                "--http-addr",
                "127.0.0.1:0",
                "--grpc-addr",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(&dir)
            .env("STRATA_LOG_LEVEL", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn strata serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("serving HTTP on ").nth(1) {
                    let mut words = rest.split_whitespace();
                    let http = words.next().unwrap_or("").to_string();
                    let grpc = rest
                        .split("RocketMQ gRPC on ")
                        .nth(1)
                        .and_then(|r| r.split_whitespace().next())
                        .unwrap_or("")
                        .to_string();
                    let _ = tx.send((http, grpc));
                }
                eprintln!("[strata] {line}");
            }
        });
        let (http, grpc) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("strata reports its addresses");
        Strata {
            child,
            http,
            grpc,
            dir,
            credentials,
            owns_dir,
        }
    }

    /// `Bearer <access>:<secret>` of the bootstrap admin.
    pub fn admin_bearer(&self) -> String {
        let text = std::fs::read_to_string(&self.credentials).expect("credentials file");
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(&format!("{name}=")))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        format!("{}:{}", field("access_key"), field("secret_key"))
    }

    /// The node id (`node-<i>` in a [`Cluster`]; the data directory's name).
    pub fn node_id(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Stops the node at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Runs the CLI as the bootstrap admin; returns stdout, panics on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|e| panic!("strata {args:?}: {e}"))
    }

    /// Runs the CLI as the bootstrap admin: stdout, or stderr on failure.
    pub fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(bin())
            .args(args)
            .env("STRATA_SERVER", &self.http)
            .env("STRATA_CREDENTIALS_FILE", &self.credentials)
            .output()
            .expect("run strata CLI");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Creates tenant `tenant` and a key of `role` in it: (access, secret).
    pub fn tenant_key(&self, tenant: &str, role: &str) -> (String, String) {
        let _ = Command::new(bin())
            .args(["tenant", "create", tenant])
            .env("STRATA_SERVER", &self.http)
            .env("STRATA_CREDENTIALS_FILE", &self.credentials)
            .output();
        let out = self.cli(&["key", "create", "--tenant", tenant, "--role", role]);
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {out}"))
                .to_string()
        };
        (field("access_key"), field("secret_key"))
    }

    /// Every message of `topic` in `tenant`, as JSON values.
    pub fn consume_all(&self, tenant: &str, topic: &str) -> Vec<serde_json::Value> {
        self.cli(&[
            "--tenant", tenant, "consume", topic, "--from", "earliest", "--json",
        ])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
    }
}

impl Drop for Strata {
    fn drop(&mut self) {
        self.kill();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Nodes in cluster mode (`serving.cluster`) sharing one etcd namespace,
/// object store and master key; each serves the tenants placed on it and
/// any of them takes any request.
pub struct Cluster {
    pub nodes: Vec<Strata>,
    root: PathBuf,
}

impl Cluster {
    /// `n` nodes on the etcd cluster named by `STRATA_TEST_ETCD_ENDPOINTS`
    /// (started by `scripts/services.sh`); `None`, saying why, when that is
    /// unset (a failure when `STRATA_TEST_REQUIRE_ETCD` is set).
    pub fn start(name: &str, n: usize) -> Option<Cluster> {
        Cluster::start_with(name, n, &[])
    }

    /// [`Cluster::start`] with `extra` settings for every node.
    pub fn start_with(name: &str, n: usize, extra: &[(&str, String)]) -> Option<Cluster> {
        let endpoints = match std::env::var("STRATA_TEST_ETCD_ENDPOINTS") {
            Ok(e) => e,
            Err(_) if std::env::var_os("STRATA_TEST_REQUIRE_ETCD").is_some() => {
                panic!("STRATA_TEST_REQUIRE_ETCD is set but STRATA_TEST_ETCD_ENDPOINTS is not")
            }
            Err(_) => {
                eprintln!(
                    "SKIPPED: STRATA_TEST_ETCD_ENDPOINTS not set (scripts/services.sh starts etcd)"
                );
                return None;
            }
        };
        let root = temp_dir(name);
        let namespace = root
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let url = format!("etcd://{endpoints}/strata-compat/{namespace}");
        let credentials = root.join("node-1").join("admin-credentials");
        let mut nodes = Vec::new();
        // One after another: the first creates the master key and the
        // bootstrap admin the others then find.
        for i in 1..=n {
            let env = [
                ("STRATA_METADATA_URL", url.clone()),
                ("STRATA_NODE_ID", format!("node-{i}")),
                ("STRATA_SERVING_CLUSTER", "true".to_string()),
                ("STRATA_SERVING_LEASE_TTL_MS", "2000".to_string()),
                (
                    "STRATA_OBJECT_STORE_ROOT",
                    root.join("objects").display().to_string(),
                ),
                (
                    "STRATA_AUTH_MASTER_KEY_FILE",
                    root.join("master.key").display().to_string(),
                ),
                ("STRATA_CACHE_BLOCK_DISK_DIR", "none".to_string()),
            ];
            let mut env = env.to_vec();
            env.extend(extra.iter().cloned());
            let dir = root.join(format!("node-{i}"));
            nodes.push(Strata::spawn(dir, credentials.clone(), &env, false));
        }
        Some(Cluster { nodes, root })
    }

    /// Live nodes and the tenants each serves, from `strata cluster status`.
    pub fn tenants_per_node(&self) -> Vec<(String, u64)> {
        let status: serde_json::Value =
            serde_json::from_str(&self.nodes[0].cli(&["--json", "cluster", "status"]))
                .expect("cluster status JSON");
        status["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter(|n| n["state"] == "live")
            .map(|n| {
                (
                    n["node"].as_str().unwrap_or_default().to_string(),
                    n["tenants"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
