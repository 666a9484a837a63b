//! The engine over a WAL that refuses appends (wrapped through the `Wal`
//! trait): a refused publish is an UNAVAILABLE error, nothing of it becomes
//! visible, offsets stay dense, and what was acknowledged survives.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use strata_common::{Clock, ErrorCode, ManualClock, Message};
use strata_engine::{Engine, EngineError, MessageType, PublishMessage, WalLayer};
use strata_metadata::RedbStore;
use strata_tiering::{FileWal, PendingAppend, SegmentInfo, Wal, WalError, WalStats};

mod common;

const T: &str = "default";

/// The real WAL, refusing every append once `ok_left` records have passed
/// (a call with more records than are left is refused whole).
#[derive(Debug)]
struct RefusingWal {
    inner: Arc<FileWal>,
    ok_left: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl Wal for RefusingWal {
    async fn submit_all(
        &self,
        payloads: Vec<Bytes>,
        deadline: std::time::Duration,
    ) -> Result<Vec<PendingAppend>, WalError> {
        let n = payloads.len() as u64;
        let allowed = self
            .ok_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(n)
            })
            .is_ok();
        if !allowed {
            return Err(WalError::Failed(
                "injected: the disk refused the write".into(),
            ));
        }
        self.inner.submit_all(payloads, deadline).await
    }
    fn read(&self, lsn: u64) -> Result<Bytes, WalError> {
        self.inner.read(lsn)
    }
    fn read_span(
        &self,
        from: u64,
        until: u64,
        max_bytes: u64,
    ) -> Result<(Vec<(u64, Bytes)>, u64), WalError> {
        self.inner.read_span(from, until, max_bytes)
    }
    fn release_before(&self, lsn: u64) -> Result<u64, WalError> {
        self.inner.release_before(lsn)
    }
    fn segments(&self) -> Vec<SegmentInfo> {
        self.inner.segments()
    }
    fn stats(&self) -> WalStats {
        self.inner.stats()
    }
    fn durable_lsn(&self) -> u64 {
        self.inner.durable_lsn()
    }
    fn max_record_len(&self) -> usize {
        self.inner.max_record_len()
    }
    fn close(&self) -> Result<(), WalError> {
        self.inner.close()
    }
}

fn to_queue(queue: u32, body: &str) -> PublishMessage {
    PublishMessage {
        queue: Some(queue),
        message: Message {
            body: Bytes::from(body.to_string()),
            ..Message::default()
        },
    }
}

async fn bodies(e: &Engine, queue: u32) -> Vec<String> {
    let r = e
        .read(T, "t", queue, 0, 1000, std::time::Duration::ZERO)
        .await
        .unwrap();
    for (m, offset) in r.messages.iter().zip(0..) {
        assert_eq!(m.offset, offset, "offsets are dense");
    }
    r.messages
        .iter()
        .map(|m| String::from_utf8(m.message.body.to_vec()).unwrap())
        .collect()
}

fn assert_unavailable(e: EngineError) {
    assert_eq!(e.code(), ErrorCode::Unavailable, "{e}");
    assert!(e.to_string().contains("injected"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_appends_store_nothing_and_leave_offsets_dense() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000, 7);
    let ok_left = Arc::new(AtomicU64::new(u64::MAX));
    let layer: WalLayer = {
        let ok_left = ok_left.clone();
        Box::new(move |inner| Arc::new(RefusingWal { inner, ok_left }) as Arc<dyn Wal>)
    };
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let store = RedbStore::open(&dir.path().join("meta.redb")).unwrap();
    let e = Engine::open_with_wal_layer(common::config(dir.path()), dyn_clock, store, Some(layer))
        .await
        .unwrap();
    e.create_topic(T, "t", 2, MessageType::Normal, None)
        .await
        .unwrap();
    e.publish(T, "t", vec![to_queue(0, "a0"), to_queue(1, "b0")])
        .await
        .unwrap();

    // Every append refused: the publish fails whole, nothing shows.
    ok_left.store(0, Ordering::SeqCst);
    let err = e
        .publish(T, "t", vec![to_queue(0, "lost"), to_queue(1, "lost")])
        .await
        .unwrap_err();
    assert_unavailable(err);
    assert_eq!(bodies(&e, 0).await, ["a0"]);
    assert_eq!(bodies(&e, 1).await, ["b0"]);

    // Room for one record of two: a publish across queues goes to the WAL
    // whole or not at all, so neither queue keeps a part of it.
    ok_left.store(1, Ordering::SeqCst);
    let err = e
        .publish(T, "t", vec![to_queue(0, "never"), to_queue(1, "never")])
        .await
        .unwrap_err();
    assert_unavailable(err);
    assert_eq!(bodies(&e, 0).await, ["a0"]);
    assert_eq!(bodies(&e, 1).await, ["b0"]);
    e.publish(T, "t", vec![to_queue(0, "a1")]).await.unwrap();

    // Appends accepted again: offsets continue where they stood, no gap.
    ok_left.store(u64::MAX, Ordering::SeqCst);
    let published = e
        .publish(T, "t", vec![to_queue(0, "a2"), to_queue(1, "b1")])
        .await
        .unwrap();
    assert_eq!(
        published.iter().map(|p| p.offset).collect::<Vec<_>>(),
        [2, 1]
    );
    e.close().await.unwrap();
    drop(e);

    // After a restart on the plain WAL, exactly the acknowledged messages.
    let e = common::open(dir.path(), &clock).await;
    assert_eq!(bodies(&e, 0).await, ["a0", "a1", "a2"]);
    assert_eq!(bodies(&e, 1).await, ["b0", "b1"]);
    e.close().await.unwrap();
}

/// A write fence that refuses while `closed` is set.
#[derive(Debug)]
struct Fence {
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl strata_engine::WriteFence for Fence {
    fn check(&self) -> Result<(), String> {
        if self.closed.load(Ordering::SeqCst) {
            return Err("injected: the serving lease lapsed".into());
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_write_fence_acknowledges_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000, 7);
    let e = common::open(dir.path(), &clock).await;
    e.create_topic(T, "t", 1, MessageType::Normal, None)
        .await
        .unwrap();
    e.create_topic(T, "later", 1, MessageType::Delay, None)
        .await
        .unwrap();
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    e.set_write_fence(Arc::new(Fence {
        closed: closed.clone(),
    }));
    e.publish(T, "t", vec![to_queue(0, "a0")]).await.unwrap();
    assert_eq!(e.not_ready(), None);
    closed.store(true, Ordering::SeqCst);
    // What `/readyz` answers: the fence's own reason.
    let why = e.not_ready().expect("not ready behind a shut fence");
    assert!(why.contains("the serving lease lapsed"), "{why}");
    let err = e
        .publish(T, "t", vec![to_queue(0, "unacknowledged")])
        .await
        .unwrap_err();
    assert_unavailable(err);
    // Delayed and transactional messages go through the same path.
    let err = e
        .publish_at(T, "later", vec![to_queue(0, "later")], 1_700_000_100_000)
        .await
        .unwrap_err();
    assert_unavailable(err);
    // Nor does it upload: the commit would be fenced after a PUT of an
    // object nobody references (an adopted node retried that every tick).
    let puts = e.status().tiering.objects.puts;
    let err = e.upload_once().await.unwrap_err();
    assert!(err.to_string().contains("write fence is shut"), "{err}");
    assert_eq!(e.status().tiering.objects.puts, puts);
    closed.store(false, Ordering::SeqCst);
    assert_eq!(e.not_ready(), None, "ready again once the fence opens");
    let published = e.publish(T, "t", vec![to_queue(0, "a1")]).await.unwrap();
    // Refused before it was written: a client retrying the refused
    // publish stores it once.
    assert_eq!(published[0].offset, 1, "nothing refused was written");
    let stored = e
        .read(T, "t", 0, 0, 10, std::time::Duration::ZERO)
        .await
        .unwrap();
    let bodies: Vec<_> = stored
        .messages
        .iter()
        .map(|m| &m.message.body[..])
        .collect();
    assert_eq!(bodies, [&b"a0"[..], b"a1"]);
    let uploaded = e.upload_once().await.unwrap();
    assert!(uploaded.object.is_some(), "{uploaded:?}");
    assert_eq!(e.status().tiering.objects.puts, puts + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_compacting_its_own_wal_shares_it_with_no_other_compactor() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000, 7);
    let e = common::open(dir.path(), &clock).await;
    let err = strata_tiering::wal::WalVolume::open(dir.path().join("wal")).unwrap_err();
    assert!(matches!(err, WalError::Busy { .. }), "{err}");
    e.close().await.unwrap();
    drop(e);

    // A separate compactor holds the volume: a node that would compact the
    // same WAL itself does not start.
    let volume = strata_tiering::wal::WalVolume::open(dir.path().join("wal")).unwrap();
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let store = RedbStore::open(&dir.path().join("meta.redb")).unwrap();
    let err = Engine::open_with_store(common::config(dir.path()), dyn_clock, store)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("another compactor"), "{err}");
    drop(volume);
}

/// Delayed messages that come due while the fence is shut are delivered
/// once it opens, once each: attempts behind the shut fence write nothing
/// (they once stored a copy per attempt, every second of the outage).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_messages_due_behind_a_shut_fence_arrive_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000, 9);
    let e = common::open(dir.path(), &clock).await;
    e.create_topic(T, "later", 1, MessageType::Delay, None)
        .await
        .unwrap();
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    e.set_write_fence(Arc::new(Fence {
        closed: closed.clone(),
    }));
    let batch = ["d0", "d1", "d2"].map(|b| to_queue(0, b)).to_vec();
    e.publish_at(T, "later", batch, 1_700_000_010_000)
        .await
        .unwrap();
    e.publish_at(T, "later", vec![to_queue(0, "d3")], 1_700_000_010_000)
        .await
        .unwrap();
    closed.store(true, Ordering::SeqCst);
    clock.advance_ms(20_000);
    for _ in 0..5 {
        // Refused behind the fence; the timers stay.
        let _ = e.fire_due_timers().await;
    }
    let stored = e
        .read(T, "later", 0, 0, 100, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert!(stored.messages.is_empty(), "{:?}", stored.messages);
    closed.store(false, Ordering::SeqCst);
    e.fire_due_timers().await.unwrap();
    let _ = e.fire_due_timers().await;
    let stored = e
        .read(T, "later", 0, 0, 100, std::time::Duration::ZERO)
        .await
        .unwrap();
    let mut bodies: Vec<_> = stored
        .messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.message.body).into_owned())
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["d0", "d1", "d2", "d3"]);
}
