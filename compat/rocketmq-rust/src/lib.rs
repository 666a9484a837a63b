//! Runs a real `strata serve` (the binary named by `STRATA_BIN`) on loopback
//! ports chosen by the OS, and its CLI; shared by the tests and the
//! `measure` example.
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
}

fn bin() -> String {
    std::env::var("STRATA_BIN").expect("STRATA_BIN names the strata binary to test")
}

impl Strata {
    pub fn start(name: &str) -> Strata {
        let dir = std::env::temp_dir().join(format!(
            "strata-compat-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
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
        }
    }

    /// Runs the CLI as the bootstrap admin; returns stdout, panics on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(bin())
            .args(args)
            .env("STRATA_SERVER", &self.http)
            .env(
                "STRATA_CREDENTIALS_FILE",
                self.dir.join("admin-credentials"),
            )
            .output()
            .expect("run strata CLI");
        assert!(
            out.status.success(),
            "strata {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates tenant `tenant` and a key of `role` in it: (access, secret).
    pub fn tenant_key(&self, tenant: &str, role: &str) -> (String, String) {
        let _ = Command::new(bin())
            .args(["tenant", "create", tenant])
            .env("STRATA_SERVER", &self.http)
            .env(
                "STRATA_CREDENTIALS_FILE",
                self.dir.join("admin-credentials"),
            )
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
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
