//! Receiving by message across the queues of a topic: fairness between a
//! deep queue and a shallow one, no duplicates with concurrent consumers,
//! long polls woken by a publish on any queue and by an ack that frees a
//! FIFO group, FIFO order per group across queues, and where a new group
//! starts (latest or earliest), across a restart.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{msg, open};
use strata_common::ManualClock;
use strata_engine::{
    Engine, GroupSpec, MessageType, Popped, ReceiveRequest, Retention, StartPosition, TagFilter,
};

const T: &str = "acme";
const START_MS: i64 = 1_800_000_000_000;
const INVISIBLE: Duration = Duration::from_secs(30);

async fn receive(
    engine: &Arc<Engine>,
    group: &str,
    topic: &str,
    max: usize,
    wait: Duration,
) -> Vec<Popped> {
    engine
        .receive(ReceiveRequest {
            tenant: T,
            group,
            topic,
            queue: None,
            max_messages: max,
            invisible: INVISIBLE,
            wait,
            filter: &TagFilter::All,
            max_body_bytes: None,
        })
        .await
        .unwrap()
}

fn body(p: &Popped) -> String {
    String::from_utf8_lossy(&p.message.message.body).into_owned()
}

async fn topic(engine: &Arc<Engine>, name: &str, queues: u32, t: MessageType) {
    engine
        .create_topic(T, name, queues, t, Some(Retention::Unlimited))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_queue_does_not_starve_a_shallow_one() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 1);
    let engine = open(dir.path(), &clock).await;
    topic(&engine, "t", 4, MessageType::Normal).await;
    engine.create_group(T, "g").await.unwrap();
    let deep: Vec<_> = (0..200)
        .map(|i| msg(0, format!("deep-{i}"), None))
        .collect();
    engine.publish(T, "t", deep).await.unwrap();
    engine
        .publish(T, "t", vec![msg(3, "lonely".into(), None)])
        .await
        .unwrap();
    // Whichever queue the rotation starts at, the one message of queue 3
    // shares the first batch with the backlog, which fills the rest.
    let first = receive(&engine, "g", "t", 10, Duration::ZERO).await;
    assert_eq!(first.len(), 10, "the batch is filled");
    assert!(first.iter().any(|p| body(p) == "lonely"), "queue 3 served");
    let deep_offsets: Vec<u64> = first
        .iter()
        .filter(|p| p.queue == 0)
        .map(|p| p.message.offset)
        .collect();
    assert_eq!(deep_offsets, (0..9).collect::<Vec<_>>(), "in queue order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_consumers_get_every_message_of_every_queue_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 2);
    let engine = open(dir.path(), &clock).await;
    topic(&engine, "t", 8, MessageType::Normal).await;
    engine.create_group(T, "g").await.unwrap();
    let all: Vec<_> = (0..400)
        .map(|i| msg(i % 8, format!("m{i}"), None))
        .collect();
    engine.publish(T, "t", all).await.unwrap();
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = receive(&engine, "g", "t", 7, Duration::ZERO).await;
                    if batch.is_empty() {
                        return got;
                    }
                    for p in batch {
                        engine.ack(T, "g", "t", &p.handle).await.unwrap();
                        got.push(body(&p));
                    }
                }
            })
        })
        .collect();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for c in consumers {
        for b in c.await.unwrap() {
            *seen.entry(b).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 400, "every message delivered");
    assert!(seen.values().all(|&n| n == 1), "none twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_wakes_on_a_publish_to_any_queue() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 3);
    let engine = open(dir.path(), &clock).await;
    topic(&engine, "t", 16, MessageType::Normal).await;
    engine.create_group(T, "g").await.unwrap();
    let waiting = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let got = receive(&engine, "g", "t", 32, Duration::from_secs(60)).await;
            (got, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    engine
        .publish(T, "t", vec![msg(11, "late".into(), None)])
        .await
        .unwrap();
    let (got, took) = waiting.await.unwrap();
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["late"]);
    assert_eq!(got[0].queue, 11);
    // Woken by the publish, not by the end of the 60 s wait.
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_groups_keep_order_across_queues_and_an_ack_wakes_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 4);
    let engine = open(dir.path(), &clock).await;
    topic(&engine, "f", 4, MessageType::Fifo).await;
    engine.create_group(T, "g").await.unwrap();
    // Three message groups on different queues, five messages each.
    let mut batch = Vec::new();
    for i in 0..5 {
        for (q, g) in [(0, "a"), (1, "b"), (3, "c")] {
            batch.push(msg(q, format!("{g}{i}"), Some(g)));
        }
    }
    engine.publish(T, "f", batch).await.unwrap();
    // One at a time per group: a batch holds the head of each group.
    let first = receive(&engine, "g", "f", 32, Duration::ZERO).await;
    let heads: BTreeSet<String> = first.iter().map(body).collect();
    assert_eq!(heads, ["a0", "b0", "c0"].map(String::from).into());
    // A long poll now waits: every group has a message in flight.
    let waiting = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let got = receive(&engine, "g", "f", 32, Duration::from_secs(60)).await;
            (got, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let b0 = first.iter().find(|p| body(p) == "b0").unwrap();
    engine.ack(T, "g", "f", &b0.handle).await.unwrap();
    let (got, took) = waiting.await.unwrap();
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["b1"]);
    assert!(took < Duration::from_secs(30), "woken by the ack: {took:?}");
    // Draining with acks gives each group's messages in order.
    for p in first.iter().filter(|p| body(p) != "b0").chain(&got) {
        engine.ack(T, "g", "f", &p.handle).await.unwrap();
    }
    let mut order: BTreeMap<char, Vec<String>> = BTreeMap::new();
    for p in first.iter().chain(&got) {
        order.entry(body(p).remove(0)).or_default().push(body(p));
    }
    loop {
        let batch = receive(&engine, "g", "f", 32, Duration::ZERO).await;
        if batch.is_empty() {
            break;
        }
        let groups: BTreeSet<char> = batch.iter().map(|p| body(p).remove(0)).collect();
        assert_eq!(groups.len(), batch.len(), "one message per group at a time");
        for p in batch {
            order.entry(body(&p).remove(0)).or_default().push(body(&p));
            engine.ack(T, "g", "f", &p.handle).await.unwrap();
        }
    }
    for (g, bodies) in order {
        let want: Vec<String> = (0..5).map(|i| format!("{g}{i}")).collect();
        assert_eq!(bodies, want, "group {g} in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unordered_group_takes_a_fifo_topic_without_waiting_for_acks() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 5);
    let engine = open(dir.path(), &clock).await;
    topic(&engine, "f", 2, MessageType::Fifo).await;
    let unordered = GroupSpec {
        fifo: false,
        ..GroupSpec::default()
    };
    engine.create_group_with(T, "any", unordered).await.unwrap();
    let batch: Vec<_> = (0..4).map(|i| msg(0, format!("a{i}"), Some("a"))).collect();
    engine.publish(T, "f", batch).await.unwrap();
    let got = receive(&engine, "any", "f", 32, Duration::ZERO).await;
    assert_eq!(got.len(), 4, "not held back by the group's first message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_group_starts_at_the_latest_messages_unless_asked_for_earliest() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 6);
    let engine = open(dir.path(), &clock).await;
    topic(&engine, "t", 3, MessageType::Normal).await;
    let old: Vec<_> = (0..6)
        .map(|i| msg(i % 3, format!("old{i}"), None))
        .collect();
    engine.publish(T, "t", old).await.unwrap();
    clock.advance_ms(1000);
    let latest = engine.create_group(T, "latest").await.unwrap();
    assert_eq!(latest.start, StartPosition::Latest, "the default");
    let earliest = GroupSpec {
        start: StartPosition::Earliest,
        ..GroupSpec::default()
    };
    engine
        .create_group_with(T, "earliest", earliest)
        .await
        .unwrap();
    clock.advance_ms(1000);
    let new: Vec<_> = (0..3).map(|i| msg(i, format!("new{i}"), None)).collect();
    engine.publish(T, "t", new).await.unwrap();

    let got: BTreeSet<String> = receive(&engine, "latest", "t", 32, Duration::ZERO)
        .await
        .iter()
        .map(body)
        .collect();
    assert_eq!(got, ["new0", "new1", "new2"].map(String::from).into());
    // The start was committed: after a restart nothing old shows up.
    engine.close().await.unwrap();
    drop(engine);
    let engine = open(dir.path(), &clock).await;
    assert_eq!(
        engine.group(T, "latest").await.unwrap().start,
        StartPosition::Latest
    );
    clock.advance_ms(INVISIBLE.as_millis() as i64 + 1);
    let again: BTreeSet<String> = receive(&engine, "latest", "t", 32, Duration::ZERO)
        .await
        .iter()
        .map(body)
        .collect();
    assert_eq!(
        again, got,
        "redelivered after the invisible time, no old ones"
    );
    let all = receive(&engine, "earliest", "t", 32, Duration::ZERO).await;
    assert_eq!(all.len(), 9, "earliest: every retained message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_chosen_invisible_time_gets_no_backoff_on_top() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 7);
    let engine = open(dir.path(), &clock).await;
    topic(&engine, "t", 2, MessageType::Normal).await;
    let slow = GroupSpec {
        retry: strata_engine::RetryPolicy {
            max_delivery_attempts: 16,
            initial_backoff_ms: 60_000,
            max_backoff_ms: 60_000,
        },
        ..GroupSpec::default()
    };
    engine.create_group_with(T, "g", slow).await.unwrap();
    engine
        .publish(T, "t", vec![msg(1, "nacked".into(), None)])
        .await
        .unwrap();
    let got = receive(&engine, "g", "t", 8, Duration::ZERO).await;
    assert_eq!(got.len(), 1);
    // A push consumer's nack: visible again now. The group's 60 s backoff
    // is for deliveries that ran out unnoticed, not for this.
    engine
        .change_invisible(T, "g", "t", &got[0].handle, Duration::ZERO)
        .await
        .unwrap();
    let again = receive(&engine, "g", "t", 8, Duration::ZERO).await;
    assert_eq!(again.iter().map(body).collect::<Vec<_>>(), ["nacked"]);
    assert_eq!(again[0].attempt, 2);
    // Left to run out, the backoff applies again.
    clock.advance_ms(INVISIBLE.as_millis() as i64 + 1);
    assert!(
        receive(&engine, "g", "t", 8, Duration::ZERO)
            .await
            .is_empty()
    );
    clock.advance_ms(60_000);
    assert_eq!(
        receive(&engine, "g", "t", 8, Duration::ZERO).await[0].attempt,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_redeliveries_come_first_across_the_topic() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 8);
    let engine = open(dir.path(), &clock).await;
    topic(&engine, "t", 4, MessageType::Normal).await;
    engine.create_group(T, "g").await.unwrap();
    let first: Vec<_> = (0..5).map(|i| msg(0, format!("again{i}"), None)).collect();
    engine.publish(T, "t", first).await.unwrap();
    assert_eq!(receive(&engine, "g", "t", 5, Duration::ZERO).await.len(), 5);
    // Deep backlogs on the other queues, then the five expire unacknowledged.
    for q in 1..4 {
        let backlog: Vec<_> = (0..50)
            .map(|i| msg(q, format!("new{q}-{i}"), None))
            .collect();
        engine.publish(T, "t", backlog).await.unwrap();
    }
    clock.advance_ms(INVISIBLE.as_millis() as i64 + 1);
    let got = receive(&engine, "g", "t", 8, Duration::ZERO).await;
    assert_eq!(got.len(), 8);
    let again = got.iter().filter(|p| p.attempt == 2).count();
    assert_eq!(again, 5, "every due redelivery before new messages");
    // All eight run out: batches of one take those eight before anything
    // new, whichever queue the pass starts at.
    clock.advance_ms(INVISIBLE.as_millis() as i64 + 1);
    for _ in 0..8 {
        let one = receive(&engine, "g", "t", 1, Duration::ZERO).await;
        assert!(one[0].attempt >= 2, "{} is new", body(&one[0]));
    }
    let next = receive(&engine, "g", "t", 1, Duration::ZERO).await;
    assert_eq!(next[0].attempt, 1, "then the backlog");
}

/// Each queue a receive takes from costs a POP commit, so a batch over many
/// deep queues takes at least 8 messages from each queue it visits (4 of 16
/// for a batch of 32); the random rotation gives every queue its turn, and a
/// batch over shallow queues still collects from all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_deep_queues_takes_from_a_few_and_shallow_ones_from_all() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 3);
    let engine = open(dir.path(), &clock).await;
    topic(&engine, "deep", 16, MessageType::Normal).await;
    topic(&engine, "shallow", 16, MessageType::Normal).await;
    engine.create_group(T, "g").await.unwrap();
    let all: Vec<_> = (0..16 * 64)
        .map(|i| msg(i % 16, format!("m{i}"), None))
        .collect();
    for half in all.chunks(512) {
        engine.publish(T, "deep", half.to_vec()).await.unwrap();
    }
    let mut seen = BTreeSet::new();
    for i in 0..32 {
        let batch = receive(&engine, "g", "deep", 32, Duration::ZERO).await;
        assert_eq!(batch.len(), 32);
        let mut per_queue: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for p in &batch {
            per_queue.entry(p.queue).or_default().push(p.message.offset);
            assert!(seen.insert(body(p)), "{} twice", body(p));
        }
        // Every queue is deep, so a pass takes 8 from each of 4. Near the
        // end, with fewer than 4 queues left (which depends on the random
        // starts), the batch is split over those: more than 8 from each.
        if i == 0 {
            assert_eq!(per_queue.len(), 4, "{per_queue:?}");
            assert!(per_queue.values().all(|o| o.len() == 8), "{per_queue:?}");
        }
        assert!(per_queue.len() <= 4, "{per_queue:?}");
        for offsets in per_queue.values() {
            assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1), "{offsets:?}");
        }
    }
    assert_eq!(seen.len(), 16 * 64, "every queue drained");
    assert!(
        receive(&engine, "g", "deep", 32, Duration::ZERO)
            .await
            .is_empty()
    );

    let one_each: Vec<_> = (0..16).map(|q| msg(q, format!("s{q}"), None)).collect();
    engine.publish(T, "shallow", one_each).await.unwrap();
    let batch = receive(&engine, "g", "shallow", 32, Duration::ZERO).await;
    let queues: BTreeSet<u32> = batch.iter().map(|p| p.queue).collect();
    assert_eq!(
        queues.len(),
        16,
        "one receive collects every queue's message"
    );
}

/// A receive bounded by body bytes (a consumer near its consume-bytes
/// quota) delivers within the bound across all queues, at least one
/// message, and leaves what it did not take for the next receive: every
/// message of every queue is delivered once, redeliveries bounded alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_bounded_receive_leaves_the_rest_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 9);
    let engine = open(dir.path(), &clock).await;
    topic(&engine, "t", 4, MessageType::Normal).await;
    engine.create_group(T, "g").await.unwrap();
    for q in 0..4 {
        let batch = (0..8).map(|i| msg(q, format!("{q}-{i:0>98}"), None));
        engine.publish(T, "t", batch.collect()).await.unwrap();
    }
    let bounded = |budget| ReceiveRequest {
        tenant: T,
        group: "g",
        topic: "t",
        queue: None,
        max_messages: 32,
        invisible: INVISIBLE,
        wait: Duration::ZERO,
        filter: &TagFilter::All,
        max_body_bytes: Some(budget),
    };
    // Bodies are 100 bytes: 450 bytes take four, 0 bytes still one.
    let mut seen = BTreeSet::new();
    for (budget, expected) in [(450, 4), (0, 1), (1000, 10)] {
        let got = engine.receive(bounded(budget)).await.unwrap();
        assert_eq!(got.len(), expected, "budget {budget}");
        for p in &got {
            assert!(seen.insert(body(p)), "{} delivered twice", body(p));
        }
    }
    let rest = receive(&engine, "g", "t", 32, Duration::ZERO).await;
    assert_eq!(rest.len(), 32 - 15);
    for p in &rest {
        assert!(seen.insert(body(p)), "{} delivered twice", body(p));
    }
    assert_eq!(seen.len(), 32);
    // All 32 visible again: redeliveries are bounded the same way.
    clock.advance_ms(INVISIBLE.as_millis() as i64 + 1);
    let again = engine.receive(bounded(250)).await.unwrap();
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|p| p.attempt == 2));
    let rest = receive(&engine, "g", "t", 32, Duration::ZERO).await;
    assert_eq!(rest.len(), 30);
}

/// A message too large for a gRPC client's default 4 MiB reply limit goes
/// out alone, so a client that refuses it loses no other message with it
/// (the Node.js SDK failed whole receives, and the small messages in them
/// went to the dead-letter topic unseen); the messages around it come in
/// receives of their own, in order, and so do its redeliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_near_4_mib_is_delivered_alone() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 9);
    let engine = open(dir.path(), &clock).await;
    topic(&engine, "t", 2, MessageType::Normal).await;
    engine.create_group(T, "g").await.unwrap();
    let big = "B".repeat(strata_engine::DELIVERED_ALONE_FROM);
    let mut batch: Vec<_> = (0..3)
        .map(|i| msg(0, format!("before-{i}"), None))
        .collect();
    batch.push(msg(0, big.clone(), None));
    batch.extend((0..3).map(|i| msg(0, format!("after-{i}"), None)));
    batch.extend((0..3).map(|i| msg(1, format!("other-{i}"), None)));
    engine.publish(T, "t", batch).await.unwrap();
    let sorted = |got: &[Popped]| {
        let mut bodies: Vec<String> = got.iter().map(body).collect();
        bodies.sort();
        bodies
    };
    // The small ones of both queues up to it; then it alone; then the rest.
    let first = receive(&engine, "g", "t", 32, Duration::ZERO).await;
    assert_eq!(
        sorted(&first),
        [
            "before-0", "before-1", "before-2", "other-0", "other-1", "other-2"
        ]
    );
    let alone = receive(&engine, "g", "t", 32, Duration::ZERO).await;
    assert_eq!(alone.len(), 1);
    assert_eq!(alone[0].message.message.body.len(), big.len());
    let rest = receive(&engine, "g", "t", 32, Duration::ZERO).await;
    assert_eq!(sorted(&rest), ["after-0", "after-1", "after-2"]);
    // Unacknowledged, all come back: the large one still alone.
    clock.advance_ms(INVISIBLE.as_millis() as i64 + 1);
    let mut sizes = Vec::new();
    for _ in 0..3 {
        let got = receive(&engine, "g", "t", 32, Duration::ZERO).await;
        assert!(got.iter().all(|p| p.attempt == 2));
        let large = got
            .iter()
            .filter(|p| p.message.message.body.len() == big.len());
        if large.count() == 1 {
            assert_eq!(got.len(), 1, "the large one shares a receive");
        }
        sizes.push(got.len());
    }
    assert_eq!(sizes.iter().sum::<usize>(), 10, "{sizes:?}");
}
