//! Acknowledging a batch of receipt handles at once (`ack_many`): one
//! outcome per handle, refused handles change nothing, the accepted ones
//! are durable across a restart, and handles of several queues commit
//! together.

#![allow(clippy::disallowed_methods)] // a long poll is woken in real time

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{msg, open, open as reopen};
use strata_common::ManualClock;
use strata_engine::{
    Engine, EngineError, MessageType, Popped, PublishMessage, ReceiveRequest, Retention, TagFilter,
};

const T: &str = "acme";
const START_MS: i64 = 1_800_000_000_000;
const INVISIBLE: Duration = Duration::from_secs(30);
const QUEUES: u32 = 4;

async fn receive(engine: &Arc<Engine>, topic: &str, max: usize) -> Vec<Popped> {
    engine
        .receive(ReceiveRequest {
            tenant: T,
            group: "g",
            topic,
            queue: None,
            max_messages: max,
            invisible: INVISIBLE,
            wait: Duration::ZERO,
            filter: &TagFilter::All,
            max_body_bytes: None,
        })
        .await
        .unwrap()
}

async fn setup(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Arc<Engine> {
    let engine = open(dir, clock).await;
    for (topic, t) in [("t", MessageType::Normal), ("other", MessageType::Normal)] {
        engine
            .create_topic(T, topic, QUEUES, t, Some(Retention::Unlimited))
            .await
            .unwrap();
    }
    engine
        .create_topic(T, "fifo", 1, MessageType::Fifo, Some(Retention::Unlimited))
        .await
        .unwrap();
    engine.create_group(T, "g").await.unwrap();
    engine
}

fn handles(p: &[Popped]) -> Vec<String> {
    p.iter().map(|p| p.handle.clone()).collect()
}

fn refused(r: &Result<(), EngineError>) -> bool {
    matches!(r, Err(EngineError::InvalidReceiptHandle(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_every_queue_is_acknowledged_handle_by_handle() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 1);
    let engine = setup(dir.path(), &clock).await;
    let batch: Vec<PublishMessage> = (0..40)
        .map(|i| msg(i % QUEUES, format!("m{i}"), None))
        .collect();
    engine.publish(T, "t", batch).await.unwrap();
    engine
        .publish(T, "other", vec![msg(0, "x".into(), None)])
        .await
        .unwrap();
    let got = receive(&engine, "t", 40).await;
    assert_eq!(got.len(), 40);
    let queues: std::collections::BTreeSet<u32> = got.iter().map(|p| p.queue).collect();
    assert_eq!(queues.len(), QUEUES as usize, "the batch spans every queue");
    let foreign = receive(&engine, "other", 1).await;

    // 30 good handles, one of them twice, plus garbage and another topic's.
    let mut request = handles(&got[..30]);
    request.push(got[3].handle.clone());
    request.push("not-a-handle".into());
    request.push(foreign[0].handle.clone());
    let outcome = engine.ack_many(T, "g", "t", &request).await.unwrap();
    assert_eq!(outcome.len(), request.len());
    assert!(outcome[..30].iter().all(Result::is_ok), "{outcome:?}");
    assert!(
        refused(&outcome[30]),
        "a handle twice: the second is refused"
    );
    assert!(refused(&outcome[31]), "{:?}", outcome[31]);
    assert!(refused(&outcome[32]), "{:?}", outcome[32]);

    // The same handles again: every one is refused now.
    let again = engine
        .ack_many(T, "g", "t", &handles(&got[..30]))
        .await
        .unwrap();
    assert!(again.iter().all(refused), "{again:?}");

    // Restart, then past the invisible time: only the 10 unacknowledged
    // messages come back, and the other topic's one.
    engine.close().await.unwrap();
    drop(engine);
    let engine = reopen(dir.path(), &clock).await;
    clock.advance_ms(INVISIBLE.as_millis() as i64 + 1);
    let back = receive(&engine, "t", 100).await;
    let mut bodies: Vec<String> = back
        .iter()
        .map(|p| String::from_utf8_lossy(&p.message.message.body).into_owned())
        .collect();
    bodies.sort();
    let mut expected: Vec<String> = got[30..]
        .iter()
        .map(|p| String::from_utf8_lossy(&p.message.message.body).into_owned())
        .collect();
    expected.sort();
    assert_eq!(bodies, expected);
    assert!(back.iter().all(|p| p.attempt == 2));

    // Handles that expired meanwhile are refused, one by one.
    let expired = engine
        .ack_many(T, "g", "t", &handles(&got[30..]))
        .await
        .unwrap();
    assert!(expired.iter().all(refused), "{expired:?}");
    let done = engine.ack_many(T, "g", "t", &handles(&back)).await.unwrap();
    assert!(done.iter().all(Result::is_ok), "{done:?}");
    clock.advance_ms(10 * INVISIBLE.as_millis() as i64);
    assert!(receive(&engine, "t", 100).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 1);
    let engine = setup(dir.path(), &clock).await;
    engine
        .publish(T, "t", vec![msg(0, "m".into(), None)])
        .await
        .unwrap();
    let got = receive(&engine, "t", 1).await;
    let one = handles(&got);
    for (what, result) in [
        ("no handle", engine.ack_many(T, "g", "t", &[]).await),
        (
            "too many",
            engine
                .ack_many(T, "g", "t", &vec![one[0].clone(); 1001])
                .await,
        ),
    ] {
        assert!(
            matches!(result, Err(EngineError::InvalidArgument(_))),
            "{what}: {result:?}"
        );
    }
    let unknown = engine.ack_many(T, "nobody", "t", &one).await;
    assert!(
        matches!(unknown, Err(EngineError::GroupNotFound(_))),
        "{unknown:?}"
    );
    let missing = engine.ack_many(T, "g", "nothing", &one).await;
    assert!(
        matches!(missing, Err(EngineError::TopicNotFound(_))),
        "{missing:?}"
    );
    // Nothing above acknowledged the message.
    let ok = engine.ack_many(T, "g", "t", &one).await.unwrap();
    assert!(ok[0].is_ok(), "{ok:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_group_moves_on_after_a_batch_ack() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 1);
    let engine = setup(dir.path(), &clock).await;
    let batch = (0..4)
        .map(|i| msg(0, format!("a{i}"), Some("a")))
        .chain((0..2).map(|i| msg(0, format!("b{i}"), Some("b"))))
        .collect();
    engine.publish(T, "fifo", batch).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..6 {
        let got = receive(&engine, "fifo", 10).await;
        if got.is_empty() {
            break;
        }
        // One message per message group at a time.
        assert!(got.len() <= 2, "{}", got.len());
        seen.extend(
            got.iter()
                .map(|p| String::from_utf8_lossy(&p.message.message.body).into_owned()),
        );
        let outcome = engine
            .ack_many(T, "g", "fifo", &handles(&got))
            .await
            .unwrap();
        assert!(outcome.iter().all(Result::is_ok), "{outcome:?}");
    }
    let a: Vec<&String> = seen.iter().filter(|s| s.starts_with('a')).collect();
    assert_eq!(a, ["a0", "a1", "a2", "a3"]);
    assert_eq!(seen.len(), 6, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_ack_wakes_a_long_poll_waiting_on_the_fifo_group() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 1);
    let engine = setup(dir.path(), &clock).await;
    let batch = vec![
        msg(0, "a0".into(), Some("a")),
        msg(0, "a1".into(), Some("a")),
    ];
    engine.publish(T, "fifo", batch).await.unwrap();
    let first = receive(&engine, "fifo", 10).await;
    assert_eq!(first.len(), 1, "a1 waits for a0");
    let waiting = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .receive(ReceiveRequest {
                    tenant: T,
                    group: "g",
                    topic: "fifo",
                    queue: None,
                    max_messages: 10,
                    invisible: INVISIBLE,
                    wait: Duration::from_secs(600),
                    filter: &TagFilter::All,
                    max_body_bytes: None,
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let outcome = engine
        .ack_many(T, "g", "fifo", &handles(&first))
        .await
        .unwrap();
    assert!(outcome[0].is_ok(), "{outcome:?}");
    // The ack wakes the waiting receive; nothing else would before the
    // (manual) clock reaches the end of its long poll.
    let next = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the acknowledgement woke the long poll")
        .unwrap()
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(&next[0].message.message.body[..], b"a1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_naming_a_missing_queue_is_refused_alone() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 1);
    let engine = setup(dir.path(), &clock).await;
    engine
        .publish(T, "t", vec![msg(1, "m".into(), None)])
        .await
        .unwrap();
    let got = receive(&engine, "t", 1).await;
    // The same handle with queue 99 (hex 63) of a 4-queue topic.
    let mut parts: Vec<&str> = got[0].handle.split('-').collect();
    parts[1] = "63";
    let missing = parts.join("-");
    let outcome = engine
        .ack_many(T, "g", "t", &[missing, got[0].handle.clone()])
        .await
        .unwrap();
    assert!(
        matches!(outcome[0], Err(EngineError::InvalidReceiptHandle(_))),
        "{:?}",
        outcome[0]
    );
    assert!(outcome[1].is_ok(), "{:?}", outcome[1]);
}

/// The official SDKs acknowledge one message per request. Requests that
/// reach a queue together are committed together (one metadata commit for
/// many), each still answered with its own outcome: a handle acknowledged
/// by two requests at once succeeds in exactly one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_arriving_together_share_commits_and_keep_their_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 1);
    let engine = setup(dir.path(), &clock).await;
    let batch: Vec<PublishMessage> = (0..200)
        .map(|i| msg(i % QUEUES, format!("m{i}"), None))
        .collect();
    engine.publish(T, "t", batch).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 200 {
        let more = receive(&engine, "t", 32).await;
        assert!(!more.is_empty(), "only {} of 200 received", got.len());
        got.extend(more);
    }
    let before = engine.status().pop;

    // Every handle twice, one request each, plus one request of ten handles
    // that the single requests also carry; all in flight at once.
    let singles = got
        .iter()
        .chain(got.iter())
        .map(|p| engine.ack(T, "g", "t", &p.handle));
    let ten = handles(&got[..10]);
    let (singles, batch) = tokio::join!(
        futures::future::join_all(singles),
        engine.ack_many(T, "g", "t", &ten)
    );
    let batch = batch.unwrap();
    for (i, p) in got.iter().enumerate() {
        let mut outcomes = vec![&singles[i], &singles[i + 200]];
        if i < 10 {
            outcomes.push(&batch[i]);
        }
        let ok = outcomes.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 1, "handle {} answered {outcomes:?}", p.handle);
        for r in outcomes.iter().filter(|r| r.is_err()) {
            assert!(
                matches!(r, Err(EngineError::InvalidReceiptHandle(m)) if m.contains("not in flight")),
                "{r:?}"
            );
        }
    }
    let after = engine.status().pop;
    assert_eq!(after.acks - before.acks, 200);
    let commits = after.ack_commits - before.ack_commits;
    assert!(
        commits * 4 < 200,
        "{commits} commits for 200 acknowledgements arriving together"
    );

    // Durable: after a restart and past the invisible time nothing returns.
    engine.close().await.unwrap();
    drop(engine);
    let engine = reopen(dir.path(), &clock).await;
    clock.advance_ms(10 * INVISIBLE.as_millis() as i64);
    assert!(receive(&engine, "t", 100).await.is_empty());
}

/// One combined commit carries at most `MAX_ACK_BATCH` handles (what one
/// request may carry, and what the etcd settings are sized for); the rest
/// wait for the next round. On one thread every request below is waiting
/// before the first round starts.
#[tokio::test(flavor = "current_thread")]
async fn a_combined_commit_carries_at_most_one_requests_worth_of_handles() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS, 1);
    let engine = setup(dir.path(), &clock).await;
    for chunk in 0..5 {
        let batch: Vec<PublishMessage> = (0..500)
            .map(|i| msg(0, format!("m{chunk}-{i}"), None))
            .collect();
        engine.publish(T, "t", batch).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 2500 {
        let more = receive(&engine, "t", 500).await;
        assert!(!more.is_empty(), "only {} of 2500 received", got.len());
        got.extend(more);
    }
    let before = engine.status().pop;
    let requests: Vec<Vec<String>> = got.chunks(500).map(handles).collect();
    let outcomes = futures::future::join_all(
        requests
            .iter()
            .map(|request| engine.ack_many(T, "g", "t", request)),
    )
    .await;
    for outcome in outcomes {
        let outcome = outcome.unwrap();
        assert!(outcome.iter().all(Result::is_ok), "{outcome:?}");
    }
    let after = engine.status().pop;
    assert_eq!(after.acks - before.acks, 2500);
    assert_eq!(
        after.ack_commits - before.ack_commits,
        3,
        "1000 + 1000 + 500 handles"
    );
}
