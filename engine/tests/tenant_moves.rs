//! A tenant moving between two nodes that share metadata and object
//! storage (cluster mode): the old node stops serving it and uploads its
//! WAL, the new node claims its queues and serves everything from object
//! storage, offsets continuing; delayed messages fire on the new node; the
//! old node acknowledges nothing more for it; consumer acknowledgements,
//! receipt handles and open transactions carry over.

#![allow(clippy::disallowed_methods)] // waits on real timers

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_common::{ErrorCode, Message, SystemClock};
use strata_engine::{
    Engine, EngineConfig, EngineError, Popped, PublishMessage, ReceiveRequest, TagFilter,
};
use strata_metadata::{MemoryStore, MessageType, MetaStore};

mod common;

fn node(
    dir: &std::path::Path,
    objects: &std::path::Path,
    id: &str,
    tenants: &[&str],
) -> EngineConfig {
    let mut c = common::config(dir);
    c.node_id = id.into();
    c.object_store = strata_objects::ObjectStoreConfig::local(objects.to_path_buf());
    c.served_tenants = Some(tenants.iter().map(|t| t.to_string()).collect());
    c
}

fn messages(from: usize, n: usize) -> Vec<PublishMessage> {
    (from..from + n)
        .map(|i| PublishMessage {
            queue: None,
            message: Message {
                body: Bytes::from(format!("m{i:03}")),
                ..Message::default()
            },
        })
        .collect()
}

/// Two engines sharing metadata and object storage: `a` serving
/// `tenants`, `b` serving nothing; and the directories they live in.
async fn pair(tenants: &[&str]) -> (Arc<Engine>, Arc<Engine>, [tempfile::TempDir; 3]) {
    let dirs = [
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    ];
    let store: Arc<dyn MetaStore> = MemoryStore::new();
    let clock = Arc::new(SystemClock);
    let a = Engine::open_with_store(
        node(dirs[0].path(), dirs[2].path(), "a", tenants),
        clock.clone(),
        store.clone(),
    )
    .await
    .unwrap();
    let b = Engine::open_with_store(node(dirs[1].path(), dirs[2].path(), "b", &[]), clock, store)
        .await
        .unwrap();
    (a, b, dirs)
}

async fn bodies(engine: &Engine, tenant: &str, topic: &str, queues: u32) -> Vec<String> {
    let mut out = Vec::new();
    for q in 0..queues {
        // A read may stop where one stored range ends: read to the end.
        let mut at = 0;
        loop {
            let r = engine
                .read(tenant, topic, q, at, 1000, Duration::ZERO)
                .await
                .unwrap();
            out.extend(
                r.messages
                    .iter()
                    .map(|m| String::from_utf8_lossy(&m.message.body).into_owned()),
            );
            if r.next_offset >= r.high_watermark || r.next_offset == at {
                break;
            }
            at = r.next_offset;
        }
    }
    out.sort();
    out
}

fn unavailable(e: EngineError) -> String {
    assert_eq!(e.code(), ErrorCode::Unavailable, "{e}");
    e.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_moves_with_everything_it_acknowledged() {
    let (a, b, _dirs) = pair(&["t1", "t2"]).await;
    a.create_topic("t1", "orders", 4, MessageType::Normal, None)
        .await
        .unwrap();
    a.create_topic("t1", "later", 1, MessageType::Delay, None)
        .await
        .unwrap();
    a.create_topic("t2", "logs", 1, MessageType::Normal, None)
        .await
        .unwrap();
    a.publish("t1", "orders", messages(0, 100)).await.unwrap();
    a.publish("t2", "logs", messages(0, 10)).await.unwrap();
    let due = clock_ms() + 1_500;
    a.publish_at("t1", "later", messages(500, 3), due)
        .await
        .unwrap();
    assert!(a.upload_lag_bytes() > 0, "the messages are only in a's WAL");

    // b does not serve t1 yet: a clear, retryable refusal, nothing created.
    let refused = unavailable(b.publish("t1", "orders", messages(0, 1)).await.unwrap_err());
    assert!(
        refused.contains("tenant t1 is not served by this node"),
        "{refused}"
    );
    unavailable(
        b.create_topic("t1", "x", 1, MessageType::Normal, None)
            .await
            .unwrap_err(),
    );

    // Some of it reaches object storage on a; b, serving nothing, then
    // collects garbage: other nodes' tenants' ranges are not garbage.
    a.upload_once().await.unwrap();
    b.collect_garbage().await.unwrap();

    a.release_tenant("t1").await.unwrap();
    assert!(!a.serves("t1") && a.serves("t2"));
    unavailable(
        a.publish("t1", "orders", messages(100, 1))
            .await
            .unwrap_err(),
    );
    unavailable(
        a.read("t1", "orders", 0, 0, 10, Duration::ZERO)
            .await
            .unwrap_err(),
    );
    // t2 stays on a, untouched.
    assert_eq!(bodies(&a, "t2", "logs", 1).await.len(), 10);

    b.serve_tenant("t1").await.unwrap();
    let want: Vec<String> = (0..100).map(|i| format!("m{i:03}")).collect();
    assert_eq!(bodies(&b, "t1", "orders", 4).await, want);
    // Offsets continue where a left off.
    let more = b.publish("t1", "orders", messages(100, 8)).await.unwrap();
    let ends: u64 = (0..4)
        .map(|q| b.queue_info("t1", "orders", q).unwrap().end_offset)
        .sum();
    assert_eq!(ends, 108);
    assert!(more.iter().all(|p| p.offset >= 25), "{more:?}");

    // The delayed messages fire on b, into b's topic.
    let mut fired = Vec::new();
    for _ in 0..100 {
        b.fire_due_timers().await.unwrap();
        fired = bodies(&b, "t1", "later", 1).await;
        if fired.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fired, ["m500", "m501", "m502"]);

    // Back to a: it reloads t1 from object storage, b's writes included.
    b.release_tenant("t1").await.unwrap();
    a.serve_tenant("t1").await.unwrap();
    let all: Vec<String> = (0..108).map(|i| format!("m{i:03}")).collect();
    assert_eq!(bodies(&a, "t1", "orders", 4).await, all);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

fn clock_ms() -> i64 {
    use strata_common::Clock;
    SystemClock.now_ms()
}

fn body(p: &Popped) -> String {
    String::from_utf8_lossy(&p.message.message.body).into_owned()
}

async fn pop(engine: &Engine, max: usize, invisible: Duration) -> Vec<Popped> {
    engine
        .receive(ReceiveRequest {
            tenant: "t1",
            group: "g",
            topic: "orders",
            queue: None,
            max_messages: max,
            invisible,
            wait: Duration::ZERO,
            filter: &TagFilter::All,
            max_body_bytes: None,
        })
        .await
        .unwrap()
}

/// Consumer state moves with the tenant: a message acknowledged on the
/// old node never comes back on the new one; receipt handles from the old
/// node work on the new one (or the message comes back, never an ack
/// lost); an open transaction is committed on the new node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_acks_and_open_transactions_move_with_the_tenant() {
    let (a, b, _dirs) = pair(&["t1"]).await;
    a.create_topic("t1", "orders", 4, MessageType::Normal, None)
        .await
        .unwrap();
    a.create_topic("t1", "payments", 1, MessageType::Transaction, None)
        .await
        .unwrap();
    a.create_group("t1", "g").await.unwrap();
    a.publish("t1", "orders", messages(0, 20)).await.unwrap();
    let (_, txn) = a
        .publish_half("t1", "payments", messages(900, 1).remove(0))
        .await
        .unwrap();

    // Received on a: half acknowledged there, half still in flight.
    let got = pop(&a, 20, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 20);
    let (acked, pending) = got.split_at(10);
    for p in acked {
        a.ack("t1", "g", "orders", &p.handle).await.unwrap();
    }

    a.release_tenant("t1").await.unwrap();
    b.serve_tenant("t1").await.unwrap();

    // The old node's handles on the new node: acknowledged, or refused
    // with a clear error (then the message is delivered again).
    let mut acked_on_b = Vec::new();
    for p in pending {
        match b.ack("t1", "g", "orders", &p.handle).await {
            Ok(()) => acked_on_b.push(body(p)),
            Err(e) => assert_ne!(e.code(), ErrorCode::Internal, "{e}"),
        }
    }
    // Every message not acknowledged comes back once its invisibility
    // ends; none acknowledged ever does.
    eprintln!(
        "{} of {} receipt handles from the old node acknowledged on the new one",
        acked_on_b.len(),
        pending.len()
    );
    let done: Vec<String> = acked.iter().map(body).chain(acked_on_b).collect();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let again: Vec<String> = pop(&b, 20, Duration::from_secs(30))
        .await
        .iter()
        .map(body)
        .collect();
    for m in &again {
        assert!(
            !done.contains(m),
            "{m} was acknowledged, then delivered again"
        );
    }
    let mut all: Vec<String> = done.iter().chain(again.iter()).cloned().collect();
    all.sort();
    let want: Vec<String> = (0..20).map(|i| format!("m{i:03}")).collect();
    assert_eq!(all, want, "every message acknowledged or delivered again");

    // The transaction opened on a is committed on b.
    b.end_transaction("t1", "payments", &txn, true)
        .await
        .unwrap();
    assert_eq!(bodies(&b, "t1", "payments", 1).await, ["m900"]);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// A write fence that refuses while `closed` is set (a lapsed heartbeat).
#[derive(Debug)]
struct Fence {
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl strata_engine::WriteFence for Fence {
    fn check(&self) -> Result<(), String> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("injected: the heartbeat lapsed".into());
        }
        Ok(())
    }
}

/// A node back from a pause finds its heartbeat lapsed: releasing a tenant
/// fails (nothing uploads behind a shut fence), and once it renews, the
/// tenant is placed here again. Serving it again must keep what the WAL
/// holds: reloading from object storage alone restarted the offsets at 0
/// and lost every acknowledged message not yet uploaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_served_again_after_a_failed_release_keeps_its_wal() {
    let (a, b, _dirs) = pair(&["t1"]).await;
    a.create_topic("t1", "orders", 4, MessageType::Normal, None)
        .await
        .unwrap();
    a.publish("t1", "orders", messages(0, 40)).await.unwrap();
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(true));
    a.set_write_fence(Arc::new(Fence {
        closed: closed.clone(),
    }));
    let failed = a.release_tenant("t1").await.unwrap_err();
    assert!(
        failed.to_string().contains("write fence is shut"),
        "{failed}"
    );
    assert!(!a.serves("t1"));
    // Nor is it served again while the fence stays shut.
    let refused = unavailable(a.serve_tenant("t1").await.unwrap_err());
    assert!(refused.contains("heartbeat lapsed"), "{refused}");
    assert!(!a.serves("t1"));

    closed.store(false, std::sync::atomic::Ordering::SeqCst);
    a.serve_tenant("t1").await.unwrap();
    assert!(a.serves("t1"));
    let expected: Vec<String> = (0..40).map(|i| format!("m{i:03}")).collect();
    assert_eq!(bodies(&a, "t1", "orders", 4).await, expected);
    // Offsets continue: new messages land after the old ones.
    a.publish("t1", "orders", messages(40, 8)).await.unwrap();
    let expected: Vec<String> = (0..48).map(|i| format!("m{i:03}")).collect();
    assert_eq!(bodies(&a, "t1", "orders", 4).await, expected);

    // And it all moves on a release that succeeds.
    a.release_tenant("t1").await.unwrap();
    b.serve_tenant("t1").await.unwrap();
    assert_eq!(bodies(&b, "t1", "orders", 4).await, expected);
}

/// A node that still thinks it serves a tenant (paused while the tenant
/// was placed elsewhere) cannot move a consumer group's position: its
/// offset commit is conditioned on the queue's owner epoch, which the new
/// node raised. Before, the commit went through and could set the group
/// back (or forward) behind the new owner's back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_owner_cannot_commit_an_offset() {
    let (a, b, _dirs) = pair(&["t1"]).await;
    a.create_topic("t1", "orders", 2, MessageType::Normal, None)
        .await
        .unwrap();
    a.publish("t1", "orders", messages(0, 10)).await.unwrap();
    a.commit_offset("t1", "g", "orders", 0, 3).await.unwrap();
    a.upload_once().await.unwrap();

    // b takes the tenant over without a's release (a is a zombie).
    b.serve_tenant("t1").await.unwrap();
    b.commit_offset("t1", "g", "orders", 0, 5).await.unwrap();
    let refused = unavailable(
        a.commit_offset("t1", "g", "orders", 0, 1)
            .await
            .unwrap_err(),
    );
    assert!(refused.contains("moved to another node"), "{refused}");
    // A queue the group never committed on is refused too (the commit
    // would create the offset record).
    unavailable(
        a.commit_offset("t1", "g", "orders", 1, 0)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        b.committed_offset("t1", "g", "orders", 0).await.unwrap(),
        Some(5)
    );
    assert_eq!(
        b.committed_offset("t1", "g", "orders", 1).await.unwrap(),
        None
    );
}

/// Publishes racing a release: every one the old node acknowledged is on
/// the new node once, and none it refused is stored (a refusal after the
/// write made a client's retry store the message twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_in_flight_at_a_release_are_stored_exactly_when_acknowledged() {
    let (a, b, _dirs) = pair(&["t1"]).await;
    a.create_topic("t1", "orders", 4, MessageType::Normal, None)
        .await
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for task in 0..8 {
        let (a, stop) = (a.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let (mut acked, mut refused) = (Vec::new(), Vec::new());
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = format!("p{task}-{i}");
                i += 1;
                let m = PublishMessage {
                    queue: None,
                    message: Message {
                        body: Bytes::from(body.clone()),
                        ..Message::default()
                    },
                };
                match a.publish("t1", "orders", vec![m]).await {
                    Ok(_) => acked.push(body),
                    Err(e) => {
                        unavailable(e);
                        refused.push(body);
                        // A refusal does not wait for anything: let the
                        // test's own task run.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
            (acked, refused)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.release_tenant("t1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    for t in tasks {
        let (a, r) = t.await.unwrap();
        acked.extend(a);
        refused.extend(r);
    }
    assert!(
        !refused.is_empty(),
        "the publishers went on past the release"
    );
    b.serve_tenant("t1").await.unwrap();
    acked.sort();
    assert_eq!(
        bodies(&b, "t1", "orders", 4).await,
        acked,
        "stored: each acknowledged publish once, no refused one"
    );
}

/// POP state cached on a node is not trusted after its tenant went
/// elsewhere and came back: the node that served it meanwhile may have
/// reset the group, moving a cursor back to the very value cached here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_back_on_a_node_reloads_its_consumer_state() {
    let (a, b, _dirs) = pair(&["t1"]).await;
    a.create_topic("t1", "orders", 4, MessageType::Normal, None)
        .await
        .unwrap();
    a.create_group("t1", "g").await.unwrap();
    a.publish("t1", "orders", messages(0, 12)).await.unwrap();
    // a hands out and acknowledges everything: its cursors are at the ends.
    let got = pop(&a, 32, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 12);
    for p in &got {
        a.ack("t1", "g", "orders", &p.handle).await.unwrap();
    }
    assert!(pop(&a, 32, Duration::from_secs(30)).await.is_empty());

    a.release_tenant("t1").await.unwrap();
    b.serve_tenant("t1").await.unwrap();
    b.reset_offsets("t1", "g", "orders", strata_engine::OffsetTarget::Earliest)
        .await
        .unwrap();
    // Everything again, left in flight: the cursors are back at the ends.
    assert_eq!(pop(&b, 32, Duration::from_secs(1)).await.len(), 12);

    b.release_tenant("t1").await.unwrap();
    a.serve_tenant("t1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let again = pop(&a, 32, Duration::from_secs(30)).await;
    assert_eq!(
        again.len(),
        12,
        "what b left in flight comes back on a once its invisible time ends"
    );
    assert!(again.iter().all(|p| p.attempt == 2));
}

/// The message index moves with its tenant: the node that let it go keeps
/// its marks in the metadata store (it dropped them as if the topics were
/// deleted), and the node that takes it indexes on from them instead of
/// reading every retained message back from object storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_index_goes_on_where_the_old_node_left_it() {
    let (a, b, _dirs) = pair(&["t1"]).await;
    a.create_topic("t1", "orders", 2, MessageType::Normal, None)
        .await
        .unwrap();
    let sent = a.publish("t1", "orders", messages(0, 30)).await.unwrap();
    assert_eq!(a.index_pending().await.unwrap(), 30);
    a.flush_message_index().await.unwrap();

    a.release_tenant("t1").await.unwrap();
    // a's next pass forgets the topics it no longer holds.
    a.index_pending().await.unwrap();
    b.serve_tenant("t1").await.unwrap();
    b.publish("t1", "orders", messages(30, 5)).await.unwrap();
    assert_eq!(
        b.index_pending().await.unwrap(),
        5,
        "b indexes what is new, not the 30 a indexed"
    );
    b.flush_message_index().await.unwrap();
    // What a indexed is still found, through b.
    let id = &sent[7].message_id;
    let found = b
        .find_messages("t1", "orders", strata_engine::IndexKind::Id, id, 10)
        .await
        .unwrap();
    assert_eq!(found.messages.len(), 1, "{id}");
}
