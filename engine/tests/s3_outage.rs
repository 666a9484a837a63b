//! A real S3 server (SeaweedFS) that dies and comes back: acknowledged
//! writes survive, back-pressure engages while the WAL fills, and the
//! backlog drains with no loss once the server returns.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_common::{Message, SystemClock};
use strata_engine::{Engine, EngineConfig, MessageType, PublishMessage, Retention};
use strata_objects::{Backend, ObjectStoreConfig};

const T: &str = "default";
const BUCKET: &str = "outage";

/// A private SeaweedFS on its own ports, so stopping it disturbs no other test.
struct Weed {
    child: Child,
    /// Its output, shown when it does not become ready.
    log: std::path::PathBuf,
}

impl Weed {
    /// Ports `base..base + 6`, and SeaweedFS's gRPC ports 10,000 above
    /// them: both must stay below the ephemeral range (32768 and up here),
    /// where another test's listener on port 0 may already sit, and clear
    /// of the shared SeaweedFS that `scripts/services.sh` starts.
    fn pick_base() -> u16 {
        20_000 + fastrand::u16(0..400) * 6
    }

    fn start(weed: &str, dir: &Path, base: u16) -> Weed {
        let port = |offset: u16| (base + offset).to_string();
        let log = dir.join(format!("weed-{}.log", fastrand::u32(..)));
        let output = std::fs::File::create(&log).expect("weed log");
        let child = Command::new(weed)
            .arg("mini")
            .arg(format!("-dir={}", dir.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .args([
                "-master.telemetry=false",
                "-master.telemetry.url=http://127.0.0.1:1/",
            ])
            .args([
                "-admin.ui=false",
                "-webdav=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ])
            .arg(format!("-s3.port={}", port(0)))
            .arg(format!("-master.port={}", port(1)))
            .arg(format!("-volume.port={}", port(2)))
            .arg(format!("-filer.port={}", port(3)))
            .arg(format!("-admin.port={}", port(4)))
            .arg(format!("-debug.port={}", port(5)))
            .arg(format!("-bucket={BUCKET}"))
            .env("AWS_ACCESS_KEY_ID", "outage")
            .env("AWS_SECRET_ACCESS_KEY", "outage-secret")
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("weed log"))
            .stderr(output)
            .spawn()
            .expect("start weed");
        Weed { child, log }
    }

    /// The last lines of its output.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn msg(i: usize) -> PublishMessage {
    PublishMessage {
        queue: Some(0),
        message: Message {
            body: Bytes::from(format!("{i:06}-{}", "x".repeat(900))),
            ..Message::default()
        },
    }
}

/// Waits (bounded) until the store accepts a PUT.
async fn until_ready(engine: &Engine, weed: &Weed) {
    for _ in 0..600 {
        if engine
            .object_store()
            .put("probe/ready", Bytes::from_static(b"1"))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "SeaweedFS did not become ready in 60 s; its log ends:\n{}",
        weed.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_server_stopped_then_restarted_loses_nothing() {
    let Ok(weed) = std::env::var("STRATA_TEST_WEED") else {
        eprintln!("SKIPPED: STRATA_TEST_WEED not set (scripts/test.sh installs SeaweedFS)");
        return;
    };
    let weed_dir = tempfile::tempdir().unwrap();
    let base = Weed::pick_base();
    let server = Weed::start(&weed, weed_dir.path(), base);

    let dir = tempfile::tempdir().unwrap();
    let mut c = EngineConfig::new(dir.path());
    c.wal_segment_bytes = 16 * 1024;
    c.wal_max_bytes = 96 * 1024;
    c.append_timeout = Duration::from_millis(300);
    c.upload_interval = Duration::from_millis(20);
    c.target_block_bytes = 4096;
    c.block_cache.disk_dir = None;
    let mut store = ObjectStoreConfig::new(Backend::S3 {
        bucket: BUCKET.into(),
        endpoint: Some(format!("http://127.0.0.1:{base}")),
        region: Some("us-east-1".into()),
        allow_http: true,
        access_key_id: Some("outage".into()),
        secret_access_key: Some("outage-secret".into()),
    });
    store.max_attempts = 2;
    store.timeout = Duration::from_secs(2);
    store.backoff_base = Duration::from_millis(10);
    c.object_store = store;
    let engine = Engine::open(c, Arc::new(SystemClock)).await.unwrap();
    until_ready(&engine, &server).await;
    engine
        .create_topic(T, "t", 1, MessageType::Normal, Some(Retention::Unlimited))
        .await
        .unwrap();

    let mut acked = 0usize;
    for _ in 0..40 {
        engine.publish(T, "t", vec![msg(acked)]).await.unwrap();
        acked += 1;
    }
    for _ in 0..100 {
        if engine.upload_lag_bytes() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        engine.upload_lag_bytes(),
        0,
        "uploaded while the server was up"
    );

    server.kill();
    let err = loop {
        match engine.publish(T, "t", vec![msg(acked)]).await {
            Ok(_) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 5_000, "back-pressure never engaged");
    };
    assert_eq!(err.code().as_str(), "WAL_FULL", "{err}");
    assert!(engine.status().tiering.last_error.is_some());

    let server = Weed::start(&weed, weed_dir.path(), base);
    until_ready(&engine, &server).await;
    let mut resumed = false;
    for _ in 0..300 {
        if engine.publish(T, "t", vec![msg(acked)]).await.is_ok() {
            acked += 1;
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(resumed, "appends resume after the server returns");
    for _ in 0..200 {
        if engine.upload_lag_bytes() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(engine.upload_lag_bytes(), 0, "backlog drained");

    let mut offset = 0u64;
    while offset < acked as u64 {
        let r = engine
            .read(T, "t", 0, offset, 1000, Duration::ZERO)
            .await
            .unwrap();
        assert!(!r.messages.is_empty(), "offset {offset} unreadable");
        for m in r.messages {
            assert_eq!(m.offset, offset);
            assert_eq!(m.message.body, msg(offset as usize).message.body);
            offset += 1;
        }
    }
    assert_eq!(offset, acked as u64);
    engine.close().await.unwrap();
}
