//! Runs the real `strata` binary for end-to-end tests.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

pub mod cluster;

pub const BIN: &str = env!("CARGO_BIN_EXE_strata");

/// A `strata serve` child process on a random loopback port.
pub struct Server {
    pub child: Child,
    pub url: String,
    /// `host:port` of the RocketMQ gRPC listener.
    pub grpc_addr: String,
    pub data_dir: PathBuf,
    /// Its last [`STDERR_LINES_KEPT`] lines of stderr.
    log: Arc<Mutex<Vec<String>>>,
}

/// How many lines of a server's stderr [`Server::stderr`] keeps.
pub const STDERR_LINES_KEPT: usize = 200;

impl Server {
    /// Starts `strata serve` and waits until it prints its address.
    pub fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> Server {
        Self::start_wrapped(data_dir, extra_env, &[])
    }

    /// [`Server::start`] run through `sh -c SCRIPT` (the script ends with
    /// `exec "$0" "$@"`), e.g. to set a resource limit first.
    pub fn start_in_shell(data_dir: &Path, extra_env: &[(&str, &str)], script: &str) -> Server {
        Self::start_wrapped(data_dir, extra_env, &["sh", "-c", script])
    }

    fn start_wrapped(data_dir: &Path, extra_env: &[(&str, &str)], wrapper: &[&str]) -> Server {
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(BIN);
                cmd
            }
            None => Command::new(BIN),
        };
        cmd.args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--grpc-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .env(
            "STRATA_LOG_LEVEL",
            std::env::var("STRATA_TEST_SERVER_LOG_LEVEL").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn strata serve");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = log.clone();
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut kept) = kept.lock() {
                    if kept.len() == STDERR_LINES_KEPT {
                        kept.remove(0);
                    }
                    kept.push(line.clone());
                }
                if !sent && let Some(rest) = line.split("serving HTTP on ").nth(1) {
                    let url = rest.split_whitespace().next().unwrap_or("").to_string();
                    let grpc = rest
                        .split("RocketMQ gRPC on ")
                        .nth(1)
                        .and_then(|r| r.split_whitespace().next())
                        .unwrap_or("")
                        .to_string();
                    let _ = tx.send((url, grpc));
                    sent = true;
                }
                if std::env::var_os("STRATA_TEST_SERVER_LOGS").is_some() {
                    eprintln!("[server] {line}");
                }
            }
        });
        let (url, grpc_addr) = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addrs) => addrs,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                let said = log.lock().map(|l| l.join("\n")).unwrap_or_default();
                panic!("strata serve did not report its address (exit: {status:?}):\n{said}");
            }
        };
        // Every later request of this test process signs in as the
        // bootstrap admin of this data directory (nextest runs one test per
        // process, so a process-wide setting is per test).
        let file = data_dir.join("admin-credentials");
        if let Ok(mut slot) = CREDENTIALS.lock() {
            *slot = Some(file);
        }
        Server {
            child,
            url,
            grpc_addr,
            data_dir: data_dir.to_path_buf(),
            log,
        }
    }

    /// The last lines the server wrote to stderr.
    pub fn stderr(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait for strata")
    }
}

/// A test that panics does not leave its servers running.
impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

static CREDENTIALS: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// The credentials file of the last server started, if any.
pub fn credentials_file() -> Option<PathBuf> {
    CREDENTIALS.lock().ok().and_then(|c| c.clone())
}

/// (access key, secret key) from a credentials file.
pub fn read_credentials(path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).expect("credentials file");
    let (ak, sk) = strata_tenancy::parse_credentials(&text).expect("credential lines");
    (ak, sk.expose().to_string())
}

/// The WAL segment files of a data directory, oldest first.
pub fn wal_segments(data_dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(data_dir.join("wal"))
        .expect("a WAL directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    segments
}

/// Message bodies as text, from `read_all`.
pub fn bodies(messages: &[(u64, Vec<u8>)]) -> Vec<String> {
    messages
        .iter()
        .map(|(_, b)| String::from_utf8(b.clone()).expect("a UTF-8 body"))
        .collect()
}

/// Runs a client command of the `strata` binary against `url`.
pub fn cli(url: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut command = Command::new(BIN);
    if let Some(file) = credentials_file() {
        command.env("STRATA_CREDENTIALS_FILE", file);
    }
    let mut child = command
        .args(args)
        .env("STRATA_SERVER", url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata client");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("strata client output")
}

/// An HTTP client that signs in as the bootstrap admin of the last server
/// started (bearer token), or sends no credentials before any started.
pub fn http() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(file) = credentials_file().filter(|f| f.exists()) {
        let (ak, sk) = read_credentials(&file);
        headers.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&format!("Bearer {ak}:{sk}")).expect("header"),
        );
    }
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .expect("http client")
}

/// A JSON reply, a refusal (4xx), or nothing: the server died or failed
/// (5xx), so whether the request took effect is unknown.
pub enum Reply {
    Ok(Value),
    Refused(Value),
    Lost,
}

/// POSTs `body` to `url` + `path` as the bootstrap admin.
pub async fn call(url: &str, path: &str, body: &Value) -> Reply {
    let Ok(r) = http().post(format!("{url}{path}")).json(body).send().await else {
        return Reply::Lost;
    };
    let status = r.status();
    match r.json().await {
        Ok(v) if status.is_success() => Reply::Ok(v),
        Ok(v) if status.is_client_error() => Reply::Refused(v),
        _ => Reply::Lost,
    }
}

/// Receives for `group` as `ask` says: (message, attempt, receipt handle)
/// each; None once the server is gone.
pub async fn pop_receive(url: &str, group: &str, ask: Value) -> Option<Vec<(Value, u64, Value)>> {
    let got = match call(url, &format!("/v1/groups/{group}/receive"), &ask).await {
        Reply::Ok(v) => v,
        Reply::Refused(v) => panic!("receive for {group} refused: {v}"),
        Reply::Lost => return None,
    };
    let messages = got["messages"].as_array().cloned().unwrap_or_default();
    Some(
        messages
            .into_iter()
            .map(|m| {
                (
                    m["message"].clone(),
                    m["attempt"].as_u64().unwrap_or(0),
                    m["receipt_handle"].clone(),
                )
            })
            .collect(),
    )
}

/// Acknowledges one delivery: Some(true) confirmed, Some(false) refused
/// (e.g. expired: still in flight), None unanswered.
pub async fn pop_ack(url: &str, group: &str, topic: &str, handle: Value) -> Option<bool> {
    let body = json!({"topic": topic, "receipt_handles": [handle]});
    match call(url, &format!("/v1/groups/{group}/ack"), &body).await {
        Reply::Ok(a) => Some(a["results"][0]["code"] == "OK"),
        Reply::Refused(_) => Some(false),
        Reply::Lost => None,
    }
}

/// A client of the RocketMQ gRPC API.
pub type Grpc = strata_frontend::grpc::pb::messaging_service_client::MessagingServiceClient<
    tonic::transport::Channel,
>;

/// `body` as a gRPC request signed (MQv2-HMAC-SHA1) with the bootstrap
/// admin's key of the last server started.
pub fn signed<T>(body: T) -> tonic::Request<T> {
    let file = credentials_file().expect("a server was started");
    let (ak, sk) = read_credentials(&file);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    let date = strata_tenancy::format_date_time(now.as_millis() as i64);
    let signature = strata_tenancy::sign(&strata_tenancy::SecretKey::new(sk), &date);
    let auth = format!(
        "MQv2-HMAC-SHA1 Credential={ak}, SignedHeaders=x-mq-date-time, Signature={signature}"
    );
    let mut r = tonic::Request::new(body);
    let md = r.metadata_mut();
    md.insert("x-mq-date-time", date.parse().expect("date header"));
    md.insert("authorization", auth.parse().expect("authorization header"));
    r
}

/// The result code of a gRPC answer.
pub fn grpc_code(
    status: Option<strata_frontend::grpc::pb::Status>,
) -> strata_frontend::grpc::pb::Code {
    strata_frontend::grpc::pb::Code::try_from(status.map_or(0, |s| s.code))
        .unwrap_or(strata_frontend::grpc::pb::Code::Unspecified)
}

pub async fn create_topic(url: &str, name: &str, queues: u32) {
    let resp = http()
        .post(format!("{url}/v1/topics"))
        .json(&json!({"name": name, "queues": queues, "retention": "unlimited"}))
        .send()
        .await
        .expect("create topic");
    assert_eq!(
        resp.status().as_u16(),
        201,
        "{}",
        resp.text().await.unwrap_or_default()
    );
}

/// Every message of a queue from its first offset, as the JSON the HTTP
/// API returns (offset, id, key, tag, properties, body).
pub async fn read_messages(url: &str, topic: &str, queue: u32) -> Vec<Value> {
    try_read_messages(url, topic, queue)
        .await
        .unwrap_or_else(|| panic!("topic {topic} does not exist"))
}

/// [`read_messages`], or None if the topic does not exist (yet).
pub async fn try_read_messages(url: &str, topic: &str, queue: u32) -> Option<Vec<Value>> {
    let client = http();
    let mut out = Vec::new();
    let mut offset = 0u64;
    loop {
        let resp = client
            .get(format!(
                "{url}/v1/topics/{topic}/queues/{queue}/messages?offset={offset}&limit=1000"
            ))
            .send()
            .await
            .expect("read");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.expect("read json");
        if status == 404 && body["error"]["code"] == "TOPIC_NOT_FOUND" {
            return None;
        }
        assert_eq!(status, 200, "reading {topic}/{queue} at {offset}: {body}");
        let messages = body["messages"].as_array().expect("messages");
        if messages.is_empty() {
            return Some(out);
        }
        out.extend(messages.iter().cloned());
        offset = body["next_offset"].as_u64().expect("next_offset");
    }
}

/// Every message of a queue from its first offset, as (offset, body bytes).
pub async fn read_all(url: &str, topic: &str, queue: u32) -> Vec<(u64, Vec<u8>)> {
    use base64::Engine as _;
    let client = http();
    let mut out = Vec::new();
    let mut offset = 0u64;
    loop {
        let resp = client
            .get(format!(
                "{url}/v1/topics/{topic}/queues/{queue}/messages?offset={offset}&limit=1000&encoding=base64"
            ))
            .send()
            .await
            .expect("read");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.expect("read json");
        assert_eq!(status, 200, "reading {topic}/{queue} at {offset}: {body}");
        let messages = body["messages"].as_array().expect("messages").clone();
        if messages.is_empty() {
            return out;
        }
        for m in messages {
            let o = m["offset"].as_u64().expect("offset");
            let b = base64::engine::general_purpose::STANDARD
                .decode(m["body_base64"].as_str().expect("body_base64"))
                .expect("base64");
            out.push((o, b));
        }
        offset = body["next_offset"].as_u64().expect("next_offset");
    }
}

/// The seed of a crash test's kill schedule: `STRATA_CRASH_SEED` to replay
/// one, else random; printed either way.
pub fn crash_seed() -> u64 {
    let seed = match std::env::var("STRATA_CRASH_SEED") {
        Ok(s) => s.parse().expect("STRATA_CRASH_SEED is a u64"),
        Err(_) => fastrand::u64(..),
    };
    eprintln!("seed {seed} (STRATA_CRASH_SEED={seed} replays the kill schedule)");
    seed
}

/// A fresh namespace on the etcd cluster the test command starts,
/// `etcd://<endpoints>/strata-test/<name>/<pid>-<nanos>`; `None` (the test
/// skips, saying so) when etcd was not started, unless it is required.
pub fn etcd_test_url(name: &str) -> Option<String> {
    let endpoints = match std::env::var("STRATA_TEST_ETCD_ENDPOINTS") {
        Ok(e) => e,
        Err(_) if std::env::var_os("STRATA_TEST_REQUIRE_ETCD").is_some() => {
            panic!("STRATA_TEST_REQUIRE_ETCD is set but STRATA_TEST_ETCD_ENDPOINTS is not")
        }
        Err(_) => {
            eprintln!("SKIPPED: STRATA_TEST_ETCD_ENDPOINTS not set (scripts/test.sh starts etcd)");
            return None;
        }
    };
    let nanos = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map_or(0, |d| d.as_nanos());
    Some(format!(
        "etcd://{endpoints}/strata-test/{name}/{}-{nanos}",
        std::process::id()
    ))
}

/// A member of the test etcd cluster SIGKILLed by [`kill_etcd_member`],
/// to be started again from its data directory.
pub struct KilledEtcdMember {
    args: Vec<String>,
    pid_file: PathBuf,
}

/// SIGKILLs member `i` of the etcd cluster `scripts/services.sh` started
/// (its pid is in `$STRATA_TEST_ETCD_DIR/etcd<i>.pid`); `None` when that
/// is not set.
pub fn kill_etcd_member(i: usize) -> Option<KilledEtcdMember> {
    let dir = std::env::var_os("STRATA_TEST_ETCD_DIR")?;
    let pid_file = Path::new(&dir).join(format!("etcd{i}.pid"));
    let pid = std::fs::read_to_string(&pid_file).expect("member pid file");
    let pid = pid.trim();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("member is running");
    let args = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", pid])
        .status()
        .expect("kill runs");
    assert!(killed.success(), "kill etcd member {i}");
    Some(KilledEtcdMember { args, pid_file })
}

impl KilledEtcdMember {
    /// Starts the member again; `scripts/services.sh` stops it later by
    /// the pid written back to its pid file.
    pub fn restart(self) {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.pid_file.with_extension("log"))
            .expect("member log");
        #[allow(clippy::zombie_processes)]
        let child = std::process::Command::new(&self.args[0])
            .args(&self.args[1..])
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("member restarts");
        std::fs::write(&self.pid_file, child.id().to_string()).expect("pid file");
    }
}

/// (queue, offset) → body of every acknowledged message.
pub type Acked = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<(u32, u64), Vec<u8>>>>;

/// Publishes one message per request to a random queue of `topic` until a
/// request fails (the server was killed), recording every acknowledged one.
/// Bodies are `<tag>-<seq>-` and up to `max_pad` random bytes.
pub async fn publish_until_refused(
    url: String,
    topic: &'static str,
    queues: u32,
    tag: String,
    acked: Acked,
    seed: u64,
    max_pad: usize,
) {
    use base64::Engine as _;
    let client = http();
    let mut rng = fastrand::Rng::with_seed(seed);
    for seq in 0u64.. {
        let queue = rng.u32(0..queues);
        let mut body = format!("{tag}-{seq}-").into_bytes();
        body.extend((0..rng.usize(10..max_pad)).map(|_| rng.u8(..)));
        let Ok(resp) = client
            .post(format!("{url}/v1/topics/{topic}/messages"))
            .json(&json!({"messages": [{
                "body_base64": base64::engine::general_purpose::STANDARD.encode(&body),
                "queue": queue,
            }]}))
            .send()
            .await
        else {
            return;
        };
        if resp.status().as_u16() != 200 {
            return;
        }
        let Ok(reply) = resp.json::<Value>().await else {
            return;
        };
        let offset = reply["messages"][0]["offset"].as_u64().expect("offset");
        acked.lock().expect("acked").insert((queue, offset), body);
    }
}

/// Every queue of `topic` holds dense offsets, no message twice, and every
/// acknowledged message at its offset, byte-identical.
pub async fn verify_acked(url: &str, topic: &str, queues: u32, acked: &Acked, round: usize) {
    let acked = acked.lock().expect("acked").clone();
    for queue in 0..queues {
        let stored = read_all(url, topic, queue).await;
        for (i, (offset, _)) in stored.iter().enumerate() {
            assert_eq!(
                *offset, i as u64,
                "round {round}: queue {queue} offsets not dense"
            );
        }
        let unique: std::collections::BTreeSet<&Vec<u8>> = stored.iter().map(|(_, b)| b).collect();
        assert_eq!(
            unique.len(),
            stored.len(),
            "round {round}: duplicate in queue {queue}"
        );
        for ((_, offset), body) in acked.iter().filter(|((q, _), _)| *q == queue) {
            assert_eq!(
                stored.get(*offset as usize).map(|(_, b)| b),
                Some(body),
                "round {round}: acknowledged message at queue {queue} offset {offset} lost"
            );
        }
    }
}

/// Every file under `dir`, as paths relative to `root`.
pub fn files_under(dir: &Path, root: &Path, out: &mut std::collections::BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files_under(&path, root, out);
        } else {
            let key = path.strip_prefix(root).expect("under root");
            out.insert(key.to_string_lossy().into_owned());
        }
    }
}

/// Checks object storage against the metadata: no range or message-index
/// run points to a missing object and no object is unreferenced. Returns
/// the referenced objects.
pub async fn assert_objects_match_ranges(
    catalog: &strata_metadata::Catalog,
    objects_root: &Path,
) -> std::collections::BTreeSet<String> {
    let referenced: std::collections::BTreeSet<String> = catalog
        .all_ranges()
        .await
        .expect("ranges")
        .into_values()
        .flatten()
        .map(|r| r.object)
        .chain(
            catalog
                .index_runs()
                .await
                .expect("index runs")
                .into_iter()
                .map(|r| r.record.object),
        )
        .collect();
    let mut stored = std::collections::BTreeSet::new();
    files_under(objects_root, objects_root, &mut stored);
    // The store's mark names the namespace; it is no data object.
    stored.remove("strata-store-mark");
    let dangling: Vec<_> = referenced.difference(&stored).collect();
    let orphans: Vec<_> = stored.difference(&referenced).collect();
    assert!(
        dangling.is_empty(),
        "ranges pointing to missing objects: {dangling:?}"
    );
    assert!(
        orphans.is_empty(),
        "unreferenced objects left behind: {orphans:?}"
    );
    referenced
}

/// Tiny segments, blocks and intervals so that every few hundred
/// milliseconds the compactor uploads, merges and collects garbage, plus
/// `extra`.
pub fn tiny_tiering_env(
    extra: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str)> {
    let mut env = vec![
        ("STRATA_WAL_SEGMENT_BYTES", "65536"),
        ("STRATA_WAL_MAX_BYTES", "8388608"),
        ("STRATA_LIMITS_MAX_MESSAGE_BYTES", "32768"),
        ("STRATA_HTTP_MAX_REQUEST_BYTES", "1048576"),
        ("STRATA_COMPACTOR_UPLOAD_INTERVAL_MS", "40"),
        ("STRATA_COMPACTOR_BLOCK_BYTES", "8192"),
        ("STRATA_COMPACTOR_MERGE_MIN_RANGES", "3"),
        ("STRATA_COMPACTOR_MERGE_SMALL_RANGE_BYTES", "1048576"),
        ("STRATA_COMPACTOR_GC_GRACE_MS", "0"),
        ("STRATA_CACHE_BLOCK_DISK_DIR", "none"),
    ];
    env.extend_from_slice(extra);
    env
}
