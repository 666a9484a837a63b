//! Consumption by message (POP): receive with an invisible duration, ack,
//! redelivery with attempts counted, dead-lettering after the maximum,
//! FIFO blocking per message group, tag filters, visibility changes, bad
//! handles — and all of it across a restart.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{open, open as reopen};
use strata_common::{Clock, MESSAGE_GROUP_PROPERTY, ManualClock, Message, SystemClock};
use strata_engine::{
    Engine, EngineError, GroupSpec, MAX_DELIVERY_ATTEMPTS, MessageType, Popped, PublishMessage,
    ReceiveRequest, Retention, RetryPolicy, TagFilter, dead_letter_topic,
};

const T: &str = "acme";
const START_MS: i64 = 1_800_000_000_000;
const INVISIBLE: Duration = Duration::from_secs(30);

fn msg(body: &str, tag: Option<&str>, group: Option<&str>) -> PublishMessage {
    PublishMessage {
        queue: Some(0),
        message: Message {
            tag: tag.map(str::to_string),
            properties: group
                .map(|g| vec![(MESSAGE_GROUP_PROPERTY.to_string(), g.to_string())])
                .unwrap_or_default(),
            body: Bytes::from(body.to_string()),
            ..Message::default()
        },
    }
}

async fn receive(engine: &Arc<Engine>, topic: &str, max: usize, filter: &TagFilter) -> Vec<Popped> {
    engine
        .receive(ReceiveRequest {
            tenant: T,
            group: "g",
            topic,
            queue: None,
            max_messages: max,
            invisible: INVISIBLE,
            wait: Duration::ZERO,
            filter,
            max_body_bytes: None,
        })
        .await
        .unwrap()
}

fn bodies(p: &[Popped]) -> Vec<String> {
    p.iter()
        .map(|p| String::from_utf8_lossy(&p.message.message.body).into_owned())
        .collect()
}

async fn setup(dir: &std::path::Path, clock: &Arc<ManualClock>, t: MessageType) -> Arc<Engine> {
    let engine = open(dir, clock).await;
    engine
        .create_topic(T, "t", 1, t, Some(Retention::Unlimited))
        .await
        .unwrap();
    engine.create_group(T, "g").await.unwrap();
    engine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_ack_and_redelivery_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 1);
    let engine = setup(dir.path(), &clock, MessageType::Normal).await;
    let all = TagFilter::All;
    for b in ["m0", "m1", "m2"] {
        engine
            .publish(T, "t", vec![msg(b, None, None)])
            .await
            .unwrap();
    }
    let got = receive(&engine, "t", 2, &all).await;
    assert_eq!(bodies(&got), ["m0", "m1"]);
    assert!(got.iter().all(|p| p.attempt == 1));
    // Invisible: nothing but m2 is deliverable now.
    assert_eq!(bodies(&receive(&engine, "t", 10, &all).await), ["m2"]);
    assert!(receive(&engine, "t", 10, &all).await.is_empty());
    engine.ack(T, "g", "t", &got[0].handle).await.unwrap();
    // A second ack of the same delivery is refused.
    let again = engine.ack(T, "g", "t", &got[0].handle).await;
    assert!(
        matches!(again, Err(EngineError::InvalidReceiptHandle(_))),
        "{again:?}"
    );
    engine.close().await.unwrap();

    // Restart: m0 stays acknowledged; m1 and m2 come back after their
    // invisible time, as second attempts.
    drop(engine);
    let engine = reopen(dir.path(), &clock).await;
    assert!(receive(&engine, "t", 10, &all).await.is_empty());
    clock.advance_ms(INVISIBLE.as_millis() as i64 + 1);
    let again = receive(&engine, "t", 10, &all).await;
    assert_eq!(bodies(&again), ["m1", "m2"]);
    assert!(again.iter().all(|p| p.attempt == 2));
    // The old handle of m1 expired and was superseded.
    let stale = engine.ack(T, "g", "t", &got[1].handle).await;
    assert!(matches!(stale, Err(EngineError::InvalidReceiptHandle(_))));
    for p in &again {
        engine.ack(T, "g", "t", &p.handle).await.unwrap();
    }
    clock.advance_ms(10 * INVISIBLE.as_millis() as i64);
    assert!(receive(&engine, "t", 10, &all).await.is_empty());
    let usage = engine.meter().totals()[T].clone();
    assert_eq!(usage.redeliveries, 2);
    assert_eq!(
        usage.delivered_messages, 2,
        "this process delivered m1, m2 once each"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_maximum_attempts_a_message_moves_to_the_dead_letter_topic() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 2);
    let engine = setup(dir.path(), &clock, MessageType::Normal).await;
    engine
        .publish(T, "t", vec![msg("poison", Some("x"), None)])
        .await
        .unwrap();
    let all = TagFilter::All;
    for attempt in 1..=MAX_DELIVERY_ATTEMPTS {
        let got = receive(&engine, "t", 1, &all).await;
        assert_eq!(got.len(), 1, "attempt {attempt}");
        assert_eq!(got[0].attempt, attempt);
        clock.advance_ms(INVISIBLE.as_millis() as i64 + 1);
    }
    assert!(receive(&engine, "t", 1, &all).await.is_empty());
    let dlq = dead_letter_topic("g");
    let dead = engine
        .read(T, &dlq, 0, 0, 10, Duration::ZERO)
        .await
        .unwrap()
        .messages;
    assert_eq!(dead.len(), 1);
    let m = &dead[0].message;
    assert_eq!(&m.body[..], b"poison");
    assert_eq!(m.tag.as_deref(), Some("x"));
    let prop = |k: &str| {
        m.properties
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(prop("__mq.dlq.topic"), Some("t"));
    assert_eq!(prop("__mq.dlq.attempts"), Some("16"));
    // The dead-letter topic is an ordinary topic a group can consume.
    let g2 = engine
        .receive(ReceiveRequest {
            tenant: T,
            group: "g",
            topic: &dlq,
            queue: None,
            max_messages: 10,
            invisible: INVISIBLE,
            wait: Duration::ZERO,
            filter: &all,
            max_body_bytes: None,
        })
        .await
        .unwrap();
    assert_eq!(g2.len(), 1);
    // Named as a dead-letter topic, a topic holds NORMAL messages only:
    // dead letters carry no delivery time or type of their own.
    for t in [
        MessageType::Fifo,
        MessageType::Delay,
        MessageType::Transaction,
    ] {
        let other = engine
            .create_topic(T, &dead_letter_topic("g2"), 1, t, None)
            .await;
        assert!(
            matches!(other, Err(EngineError::InvalidArgument(_))),
            "{t}: {other:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_groups_deliver_in_order_one_at_a_time_and_in_parallel_across_groups() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 3);
    let engine = setup(dir.path(), &clock, MessageType::Fifo).await;
    for (b, g) in [
        ("a1", "A"),
        ("a2", "A"),
        ("b1", "B"),
        ("a3", "A"),
        ("b2", "B"),
    ] {
        engine
            .publish(T, "t", vec![msg(b, None, Some(g))])
            .await
            .unwrap();
    }
    let all = TagFilter::All;
    let first = receive(&engine, "t", 10, &all).await;
    assert_eq!(bodies(&first), ["a1", "b1"], "one per group at a time");
    assert!(receive(&engine, "t", 10, &all).await.is_empty());
    engine.ack(T, "g", "t", &first[0].handle).await.unwrap();
    assert_eq!(bodies(&receive(&engine, "t", 10, &all).await), ["a2"]);
    // b1 not acknowledged: after its invisible time it comes back before b2.
    clock.advance_ms(INVISIBLE.as_millis() as i64 + 1);
    engine.close().await.unwrap();
    drop(engine);
    let engine = reopen(dir.path(), &clock).await;
    let next = receive(&engine, "t", 10, &all).await;
    assert_eq!(
        bodies(&next),
        ["a2", "b1"],
        "redeliveries keep the group order"
    );
    assert_eq!(next[1].attempt, 2);
    for p in &next {
        engine.ack(T, "g", "t", &p.handle).await.unwrap();
    }
    assert_eq!(bodies(&receive(&engine, "t", 10, &all).await), ["a3", "b2"]);
}

/// Producers naming different queues for one message group (SDKs that
/// pick queues by their own hash, or an HTTP client) still keep the group
/// in one queue, so its order holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_group_keeps_to_one_queue_whatever_queue_a_producer_names() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 3);
    let engine = open(dir.path(), &clock).await;
    engine
        .create_topic(T, "t", 4, MessageType::Fifo, Some(Retention::Unlimited))
        .await
        .unwrap();
    engine.create_group(T, "g").await.unwrap();
    let mut queues = Vec::new();
    for (i, queue) in [0, 1, 2, 3, 1].into_iter().enumerate() {
        let mut m = msg(&format!("g{i}"), None, Some("G"));
        m.queue = Some(queue);
        let published = engine.publish(T, "t", vec![m]).await.unwrap();
        queues.push(published[0].queue);
    }
    queues.dedup();
    assert_eq!(queues.len(), 1, "one queue for the group: {queues:?}");
    let all = TagFilter::All;
    for i in 0..5 {
        let got = receive(&engine, "t", 10, &all).await;
        assert_eq!(bodies(&got), [format!("g{i}")], "one at a time, in order");
        engine.ack(T, "g", "t", &got[0].handle).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_filters_visibility_changes_and_bad_handles() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 4);
    let engine = setup(dir.path(), &clock, MessageType::Normal).await;
    for (b, t) in [("x1", "x"), ("y1", "y"), ("z1", "z"), ("x2", "x")] {
        engine
            .publish(T, "t", vec![msg(b, Some(t), None)])
            .await
            .unwrap();
    }
    let filter = TagFilter::parse("x || z").unwrap();
    let got = receive(&engine, "t", 10, &filter).await;
    assert_eq!(bodies(&got), ["x1", "z1", "x2"]);
    // Longer invisibility: still invisible after the original 30 s.
    let renewed = engine
        .change_invisible(T, "g", "t", &got[0].handle, Duration::from_secs(120))
        .await
        .unwrap();
    assert!(matches!(
        engine.ack(T, "g", "t", &got[0].handle).await,
        Err(EngineError::InvalidReceiptHandle(_))
    ));
    clock.advance_ms(60_000);
    let back = receive(&engine, "t", 10, &TagFilter::All).await;
    assert_eq!(
        bodies(&back),
        ["z1", "x2"],
        "x1 is still invisible; y1 was filtered out"
    );
    engine.ack(T, "g", "t", &renewed).await.unwrap();
    // The last names a queue the topic does not have: a bad handle too,
    // not a missing queue.
    let other_queue = {
        let mut parts: Vec<&str> = got[1].handle.split('-').collect();
        parts[1] = "63";
        parts.join("-")
    };
    for bad in [
        "garbage",
        "1-0-0-0",
        &got[1].handle.replace('-', "+"),
        &other_queue,
    ] {
        let e = engine.ack(T, "g", "t", bad).await;
        assert!(
            matches!(e, Err(EngineError::InvalidReceiptHandle(_))),
            "{bad}: {e:?}"
        );
        let e = engine
            .change_invisible(T, "g", "t", bad, Duration::from_secs(5))
            .await;
        assert!(
            matches!(e, Err(EngineError::InvalidReceiptHandle(_))),
            "{bad}: {e:?}"
        );
    }
    let e = engine
        .receive(ReceiveRequest {
            tenant: T,
            group: "nope",
            topic: "t",
            queue: None,
            max_messages: 1,
            invisible: INVISIBLE,
            wait: Duration::ZERO,
            filter: &TagFilter::All,
            max_body_bytes: None,
        })
        .await;
    assert!(matches!(e, Err(EngineError::GroupNotFound(_))));
    let e = engine
        .receive(ReceiveRequest {
            tenant: T,
            group: "g",
            topic: "t",
            queue: None,
            max_messages: 1,
            invisible: Duration::from_millis(10),
            wait: Duration::ZERO,
            filter: &TagFilter::All,
            max_body_bytes: None,
        })
        .await;
    assert!(matches!(e, Err(EngineError::InvalidArgument(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_retry_policy_backs_off_redeliveries_and_caps_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 4);
    let engine = setup(dir.path(), &clock, MessageType::Normal).await;
    // Waits of 10 s, then 20 s, capped at 30 s; three deliveries at most.
    let policy = RetryPolicy {
        max_delivery_attempts: 3,
        initial_backoff_ms: 10_000,
        max_backoff_ms: 30_000,
    };
    let spec = |retry| GroupSpec {
        retry,
        ..GroupSpec::default()
    };
    let info = engine
        .create_group_with(T, "r", spec(policy))
        .await
        .unwrap();
    assert_eq!(info.retry, policy);
    let bad = RetryPolicy {
        max_backoff_ms: 1,
        ..policy
    };
    let err = engine
        .create_group_with(T, "bad", spec(bad))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::InvalidArgument(_)), "{err}");
    engine
        .publish(T, "t", vec![msg("flaky", None, None)])
        .await
        .unwrap();
    let take = || receive_as(&engine, "r");
    let invisible = INVISIBLE.as_millis() as i64;
    assert_eq!(take().await.unwrap()[0].attempt, 1);
    // Expired unacknowledged: not again until the 10 s backoff is over,
    // and the old handle is dead meanwhile.
    clock.advance_ms(invisible + 9_999);
    assert!(take().await.unwrap().is_empty(), "still backing off");
    clock.advance_ms(1);
    assert_eq!(take().await.unwrap()[0].attempt, 2);
    // The second wait doubles to 20 s; it survives a restart.
    clock.advance_ms(invisible + 19_999);
    assert!(take().await.unwrap().is_empty(), "still backing off");
    engine.close().await.unwrap();
    drop(engine);
    let engine = reopen(dir.path(), &clock).await;
    let take = || receive_as(&engine, "r");
    assert!(
        take().await.unwrap().is_empty(),
        "still backing off after a restart"
    );
    clock.advance_ms(1);
    assert_eq!(take().await.unwrap()[0].attempt, 3);
    // The third delivery was the last: once it expires (and its backoff is
    // over) the message goes to the dead-letter topic, not out again.
    clock.advance_ms(invisible + 30_000);
    assert!(take().await.unwrap().is_empty());
    let dead = engine
        .read(T, &dead_letter_topic("r"), 0, 0, 10, Duration::ZERO)
        .await
        .unwrap()
        .messages;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]
            .message
            .properties
            .contains(&("__mq.dlq.attempts".to_string(), "3".to_string()))
    );
    // The default group "g" has no backoff and 16 attempts.
    assert_eq!(
        engine.describe_group(T, "g").await.unwrap().retry,
        RetryPolicy::DEFAULT
    );
}

/// One receive of everything deliverable on queue 0 of "t" for `group`.
async fn receive_as(engine: &Arc<Engine>, group: &str) -> strata_engine::Result<Vec<Popped>> {
    engine.receive(request(group, Duration::ZERO)).await
}

/// A receive of up to 10 messages of "t" for `group`, waiting up to `wait`.
fn request(group: &str, wait: Duration) -> ReceiveRequest<'_> {
    ReceiveRequest {
        tenant: T,
        group,
        topic: "t",
        queue: None,
        max_messages: 10,
        invisible: INVISIBLE,
        wait,
        filter: &TagFilter::All,
        max_body_bytes: None,
    }
}

/// A receive that runs out of bytes among due redeliveries takes no new
/// message after them: a FIFO group whose due message it did not reach
/// must not have a later one delivered first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_bounded_receive_keeps_fifo_order_behind_due_redeliveries() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 4);
    let engine = setup(dir.path(), &clock, MessageType::Fifo).await;
    let big = "x".repeat(300);
    for (b, g) in [("k1", "K"), (big.as_str(), "H"), ("j1", "J")] {
        engine
            .publish(T, "t", vec![msg(b, None, Some(g))])
            .await
            .unwrap();
    }
    let all = TagFilter::All;
    assert_eq!(receive(&engine, "t", 10, &all).await.len(), 3);
    engine
        .publish(T, "t", vec![msg("j2", None, Some("J"))])
        .await
        .unwrap();
    // All three come due; 100 bytes take k1, stop at the big one, and
    // must not reach past j1 to j2.
    clock.advance_ms(INVISIBLE.as_millis() as i64 + 1);
    let got = engine
        .receive(ReceiveRequest {
            tenant: T,
            group: "g",
            topic: "t",
            queue: None,
            max_messages: 10,
            invisible: INVISIBLE,
            wait: Duration::ZERO,
            filter: &all,
            max_body_bytes: Some(100),
        })
        .await
        .unwrap();
    assert_eq!(bodies(&got), ["k1"]);
    // Unbounded, the rest come in group order: j1 before j2.
    let rest = receive(&engine, "t", 10, &all).await;
    assert_eq!(bodies(&rest).len(), 2, "{:?}", bodies(&rest));
    assert!(
        bodies(&rest).contains(&"j1".to_string()),
        "{:?}",
        bodies(&rest)
    );
}

/// A receive still running when it returns.
type Poll = tokio::task::JoinHandle<strata_engine::Result<Vec<Popped>>>;

/// A receive of group "g" on "t" that waits up to ten minutes (the manual
/// clock never gets there): only what the test does ends it.
fn waiting_receive(engine: &Arc<Engine>) -> Poll {
    let engine = engine.clone();
    tokio::spawn(async move { engine.receive(request("g", Duration::from_secs(600))).await })
}

/// A receive waiting when its group is deleted must not consume for the
/// deleted group, nor leave state that a group created again under the
/// same name would inherit (a cursor past messages it never saw).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receive_waiting_while_its_group_is_deleted_takes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 7);
    let engine = open(dir.path(), &clock).await;
    engine
        .create_topic(T, "t", 4, MessageType::Normal, Some(Retention::Unlimited))
        .await
        .unwrap();
    let ended = |poll: Poll| async move {
        strata_common::clock::timeout(&SystemClock, Duration::from_secs(30), poll)
            .await
            .expect("the waiting receive ends")
            .unwrap()
    };

    // Deleted, and not created again: the deletion ends the wait.
    engine.create_group(T, "g").await.unwrap();
    let poll = waiting_receive(&engine);
    SystemClock.sleep(Duration::from_millis(300)).await;
    engine.delete_group(T, "g").await.unwrap();
    let got = ended(poll).await;
    assert!(matches!(got, Err(EngineError::GroupNotFound(_))), "{got:?}");
    engine
        .publish(T, "t", vec![msg("m0", None, None)])
        .await
        .unwrap();

    // Deleted and created again while the receive waits.
    engine.create_group(T, "g").await.unwrap();
    assert_eq!(
        bodies(&receive(&engine, "t", 10, &TagFilter::All).await),
        ["m0"]
    );
    let poll = waiting_receive(&engine);
    SystemClock.sleep(Duration::from_millis(300)).await;
    engine.delete_group(T, "g").await.unwrap();
    engine.create_group(T, "g").await.unwrap();
    engine
        .publish(T, "t", vec![msg("m1", None, None)])
        .await
        .unwrap();
    let got = ended(poll).await;
    assert!(matches!(got, Err(EngineError::GroupNotFound(_))), "{got:?}");
    // The new group starts from the beginning: both messages, first
    // deliveries, and nothing left in flight from the deleted one.
    let fresh = receive(&engine, "t", 10, &TagFilter::All).await;
    assert_eq!(bodies(&fresh), ["m0", "m1"]);
    assert!(fresh.iter().all(|p| p.attempt == 1), "{fresh:?}");
    clock.advance_ms(INVISIBLE.as_millis() as i64 + 1);
    let again = receive(&engine, "t", 10, &TagFilter::All).await;
    assert_eq!(bodies(&again), ["m0", "m1"]);
    assert!(again.iter().all(|p| p.attempt == 2), "{again:?}");
}

/// Deleting a topic ends the receives and reads waiting on it with "topic
/// not found", instead of leaving them to wait out their time on a topic
/// nobody can write to; one made again under the name is not theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_topic_ends_the_long_polls_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 8);
    let engine = setup(dir.path(), &clock, MessageType::Normal).await;
    let waiting_receive = waiting_receive(&engine);
    let waiting_read = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .read(T, "t", 0, 0, 10, Duration::from_secs(600))
                .await
                .map(|r| r.messages.len())
        })
    };
    SystemClock.sleep(Duration::from_millis(300)).await;
    engine.delete_topic(T, "t").await.unwrap();
    // Made again at once: the waiters held the deleted one.
    engine
        .create_topic(T, "t", 1, MessageType::Normal, Some(Retention::Unlimited))
        .await
        .unwrap();
    let waiting_receive =
        tokio::spawn(async move { waiting_receive.await.unwrap().map(|got| got.len()) });
    for (what, waiting) in [("receive", waiting_receive), ("read", waiting_read)] {
        let got = strata_common::clock::timeout(&SystemClock, Duration::from_secs(30), waiting)
            .await
            .unwrap_or_else(|| panic!("the waiting {what} ends when its topic is deleted"))
            .unwrap();
        assert!(
            matches!(got, Err(EngineError::TopicNotFound(_))),
            "{what}: {got:?}"
        );
    }
}

/// A group deletion cut short (the record gone, the metadata store failing
/// before its POP state went) is finished by deleting it again, and a group
/// made again under the name never starts from the leftovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_group_deletion_cut_short_left_is_not_inherited() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 11);
    let store: Arc<dyn strata_metadata::MetaStore> = strata_metadata::MemoryStore::new();
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let engine = Engine::open_with_store(common::config(dir.path()), dyn_clock, store.clone())
        .await
        .unwrap();
    let catalog = strata_metadata::Catalog::new(store);
    engine
        .create_topic(T, "t", 1, MessageType::Normal, Some(Retention::Unlimited))
        .await
        .unwrap();
    let stamp = |n| strata_metadata::GroupStamp {
        now_ms: START_MS,
        incarnation: n,
    };
    for again in ["delete again", "create again"] {
        engine.create_group(T, "g").await.unwrap();
        engine
            .publish(T, "t", vec![msg(again, None, None)])
            .await
            .unwrap();
        let got = receive(&engine, "t", 10, &TagFilter::All).await;
        assert!(!got.is_empty(), "{again}");
        // Cut short: the record goes, its POP state stays.
        catalog.delete_group(T, "g").await.unwrap();
        if again == "delete again" {
            let e = engine.delete_group(T, "g").await;
            assert!(matches!(e, Err(EngineError::GroupNotFound(_))), "{e:?}");
            // Made again past the engine: nothing left to inherit.
            catalog.create_group(T, "g", stamp(1)).await.unwrap();
        } else {
            engine.create_group(T, "g").await.unwrap();
        }
        let fresh = receive(&engine, "t", 10, &TagFilter::All).await;
        assert!(!fresh.is_empty(), "{again}: the new group starts over");
        assert!(fresh.iter().all(|p| p.attempt == 1), "{again}: {fresh:?}");
        engine.delete_group(T, "g").await.unwrap();
    }
}

/// A group's first dead letters, on many queues at once, all move: the
/// receives that did not create `<group>-DLQ` found it committed but not
/// loaded yet, and failed with TOPIC_NOT_FOUND for a topic they never named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_dead_letters_on_many_queues_at_once_all_move() {
    const QUEUES: u32 = 16;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 1);
    let engine = open(dir.path(), &clock).await;
    engine
        .create_topic(T, "wide", QUEUES, MessageType::Normal, None)
        .await
        .unwrap();
    let once = GroupSpec {
        retry: RetryPolicy {
            max_delivery_attempts: 1,
            ..RetryPolicy::DEFAULT
        },
        start: strata_engine::StartPosition::Earliest,
        ..GroupSpec::default()
    };
    engine.create_group_with(T, "once", once).await.unwrap();
    let messages = (0..QUEUES)
        .map(|q| PublishMessage {
            queue: Some(q),
            ..msg(&format!("m{q}"), None, None)
        })
        .collect();
    engine.publish(T, "wide", messages).await.unwrap();
    let all = TagFilter::All;
    let request = |queue| ReceiveRequest {
        tenant: T,
        group: "once",
        topic: "wide",
        queue,
        max_messages: QUEUES as usize,
        invisible: INVISIBLE,
        wait: Duration::ZERO,
        filter: &all,
        max_body_bytes: None,
    };
    let first = engine.receive(request(None)).await.unwrap();
    assert_eq!(first.len(), QUEUES as usize);
    clock.advance_ms(INVISIBLE.as_millis() as i64 + 1);
    let receives = (0..QUEUES).map(|q| engine.receive(request(Some(q))));
    for (q, result) in futures::future::join_all(receives)
        .await
        .into_iter()
        .enumerate()
    {
        assert!(
            result.unwrap().is_empty(),
            "queue {q}: its one attempt is spent"
        );
    }
    let dead = engine
        .read(T, &dead_letter_topic("once"), 0, 0, 100, Duration::ZERO)
        .await
        .unwrap()
        .messages;
    assert_eq!(dead.len(), QUEUES as usize);
}
