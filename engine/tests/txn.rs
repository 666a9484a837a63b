//! Transactional messages: half messages are invisible until committed,
//! rollbacks discard them, unresolved ones are due for check-backs with a
//! growing interval and are rolled back after the maximum — across a restart.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::open;
use strata_common::{ManualClock, Message};
use strata_engine::txn::{FIRST_CHECK_DELAY, MAX_CHECKS};
use strata_engine::{Engine, EngineError, MessageType, PublishMessage};

const T: &str = "acme";

fn msg(body: &str) -> PublishMessage {
    PublishMessage {
        queue: None,
        message: Message {
            body: Bytes::from(body.to_string()),
            ..Message::default()
        },
    }
}

async fn bodies(engine: &Arc<Engine>) -> Vec<String> {
    engine
        .read(T, "tx", 0, 0, 100, Duration::ZERO)
        .await
        .unwrap()
        .messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.message.body).into_owned())
        .collect()
}

/// An engine on a manual clock with the one-queue TRANSACTION topic "tx".
async fn with_tx_topic() -> (tempfile::TempDir, Arc<ManualClock>, Arc<Engine>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_800_000_000_000, 5);
    let engine = open(dir.path(), &clock).await;
    engine
        .create_topic(T, "tx", 1, MessageType::Transaction, None)
        .await
        .unwrap();
    (dir, clock, engine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_rollback_and_check_backs() {
    let (dir, clock, engine) = with_tx_topic().await;
    let plain = engine.publish(T, "tx", vec![msg("x")]).await;
    assert!(matches!(plain, Err(EngineError::InvalidArgument(_))));
    let (half, commit_id) = engine
        .publish_half(T, "tx", msg("committed"))
        .await
        .unwrap();
    let (_, rollback_id) = engine
        .publish_half(T, "tx", msg("rolled-back"))
        .await
        .unwrap();
    let (_, open_id) = engine
        .publish_half(T, "tx", msg("unresolved"))
        .await
        .unwrap();
    assert!(
        bodies(&engine).await.is_empty(),
        "half messages are invisible"
    );
    // Named with another message's id, it stays open.
    let wrong = engine
        .end_transaction_of(T, "tx", &commit_id, "someone-else", true)
        .await;
    assert!(matches!(wrong, Err(EngineError::InvalidTransaction(_))));
    engine
        .end_transaction_of(T, "tx", &commit_id, &half.message_id, true)
        .await
        .unwrap();
    engine
        .end_transaction(T, "tx", &rollback_id, false)
        .await
        .unwrap();
    assert_eq!(bodies(&engine).await, ["committed"]);
    let again = engine.end_transaction(T, "tx", &commit_id, true).await;
    assert!(
        matches!(again, Err(EngineError::InvalidTransaction(_))),
        "ends once"
    );
    let bogus = engine.end_transaction(T, "tx", "nope", true).await;
    assert!(matches!(bogus, Err(EngineError::InvalidTransaction(_))));

    // The unresolved one is due for a check-back after the first delay,
    // also after a restart.
    assert!(engine.due_transaction_checks().await.unwrap().is_empty());
    engine.close().await.unwrap();
    drop(engine);
    let engine = open(dir.path(), &clock).await;
    clock.advance_ms(FIRST_CHECK_DELAY.as_millis() as i64);
    let due = engine.due_transaction_checks().await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].record.transaction_id, open_id);
    assert_eq!(&due[0].message.message.body[..], b"unresolved");
    assert!(!engine.note_transaction_check(&due[0].record).await.unwrap());
    assert!(
        engine.due_transaction_checks().await.unwrap().is_empty(),
        "backed off"
    );
    // Unanswered up to the maximum: the last check is still answerable
    // for one interval, then the transaction is rolled back, never delivered.
    let mut checks = 1;
    let mut last = false;
    while !last {
        clock.advance_ms(61_000);
        let due = engine.due_transaction_checks().await.unwrap();
        assert_eq!(due.len(), 1, "check {}", checks + 1);
        last = engine.note_transaction_check(&due[0].record).await.unwrap();
        checks += 1;
        assert!(checks <= MAX_CHECKS, "more checks than the maximum");
    }
    assert_eq!(checks, MAX_CHECKS);
    assert_eq!(engine.open_transactions(T, "tx").await.unwrap().len(), 1);
    clock.advance_ms(61_000);
    assert!(engine.due_transaction_checks().await.unwrap().is_empty());
    assert!(
        engine.open_transactions(T, "tx").await.unwrap().is_empty(),
        "rolled back"
    );
    assert!(engine.due_transaction_checks().await.unwrap().is_empty());
    let late = engine.end_transaction(T, "tx", &open_id, true).await;
    assert!(matches!(late, Err(EngineError::InvalidTransaction(_))));
    assert_eq!(bodies(&engine).await, ["committed"]);
}

/// A producer answers a check-back while the check loop notes that check
/// (grpc/src/txn.rs sends the check, then notes it): the note only bumps
/// the record's counters, so a commit or rollback racing it still ends the
/// transaction, once, instead of failing after the message was delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_while_a_check_back_is_noted_still_ends_once() {
    let (_dir, clock, engine) = with_tx_topic().await;
    for i in 0..40 {
        engine
            .publish_half(T, "tx", msg(&format!("m{i:02}")))
            .await
            .unwrap();
    }
    clock.advance_ms(FIRST_CHECK_DELAY.as_millis() as i64);
    let due = engine.due_transaction_checks().await.unwrap();
    assert_eq!(due.len(), 40);
    let mut expected = Vec::new();
    for d in due {
        let body = String::from_utf8_lossy(&d.message.message.body).into_owned();
        let commit = body.ends_with(['0', '2', '4', '6', '8']);
        let e = engine.clone();
        let record = d.record.clone();
        let note = tokio::spawn(async move { e.note_transaction_check(&record).await });
        let end = engine
            .end_transaction(T, "tx", &d.record.transaction_id, commit)
            .await;
        note.await.unwrap().unwrap();
        end.unwrap_or_else(|e| panic!("ending {body} failed: {e}"));
        if commit {
            expected.push(body);
        }
    }
    let mut got = bodies(&engine).await;
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "each commit delivered once, no rollback");
    clock.advance_ms(3_600_000);
    assert!(
        engine.due_transaction_checks().await.unwrap().is_empty(),
        "every transaction ended"
    );
}

/// A batch of half messages costs one WAL append and opens one transaction
/// per message, each ended on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_half_messages_is_one_wal_append() {
    let (_dir, _clock, engine) = with_tx_topic().await;
    // The first half message creates the hidden half topic; measure after.
    let (_, first) = engine.publish_half(T, "tx", msg("first")).await.unwrap();
    let before = engine.status().wal.appends;
    let batch: Vec<PublishMessage> = (0..5).map(|i| msg(&format!("b{i}"))).collect();
    let opened = engine.publish_halves(T, "tx", batch).await.unwrap();
    assert_eq!(engine.status().wal.appends - before, 1, "one WAL append");
    assert_eq!(opened.len(), 5);
    let ids: std::collections::BTreeSet<&String> = opened.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 5, "a transaction per message");
    let open_now = engine.open_transactions(T, "tx").await.unwrap();
    assert_eq!(open_now.len(), 6);
    // In the order given, each ended on its own.
    for (i, (_, id)) in opened.iter().enumerate() {
        engine
            .end_transaction(T, "tx", id, i % 2 == 0)
            .await
            .unwrap();
    }
    engine.end_transaction(T, "tx", &first, true).await.unwrap();
    let mut got = bodies(&engine).await;
    got.sort();
    assert_eq!(got, ["b0", "b2", "b4", "first"]);
    assert!(engine.open_transactions(T, "tx").await.unwrap().is_empty());
    // A batch naming a queue the topic lacks stores nothing.
    let before = engine.status().wal.appends;
    let mut bad = msg("bad");
    bad.queue = Some(7);
    assert!(
        engine
            .publish_halves(T, "tx", vec![msg("ok"), bad])
            .await
            .is_err()
    );
    assert_eq!(engine.status().wal.appends, before);
    assert!(engine.open_transactions(T, "tx").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_never_commits_another_transactions_message() {
    let (_dir, _clock, engine) = with_tx_topic().await;
    let half = strata_engine::txn::HALF_TOPIC;
    assert!(matches!(
        engine.delete_topic(T, half).await,
        Err(EngineError::TopicNotFound(_))
    ));
    assert!(matches!(
        engine.read(T, half, 0, 0, 10, Duration::ZERO).await,
        Err(EngineError::TopicNotFound(_))
    ));
    let (_, first) = engine.publish_half(T, "tx", msg("first")).await.unwrap();
    // The tenant empties its topics: its half topic and open transactions
    // go with them.
    engine.delete_topic(T, "tx").await.unwrap();
    assert_eq!(engine.delete_hidden_topics(T).await.unwrap(), Some(1));
    engine
        .create_topic(T, "tx", 1, MessageType::Transaction, None)
        .await
        .unwrap();
    assert!(engine.open_transactions(T, "tx").await.unwrap().is_empty());
    // The new half topic holds "second" where "first" was.
    let (_, second) = engine.publish_half(T, "tx", msg("second")).await.unwrap();
    let stale = engine.end_transaction(T, "tx", &first, true).await;
    assert!(
        matches!(stale, Err(EngineError::InvalidTransaction(_))),
        "{stale:?}"
    );
    assert!(bodies(&engine).await.is_empty(), "nothing delivered");
    engine
        .end_transaction(T, "tx", &second, true)
        .await
        .unwrap();
    assert_eq!(bodies(&engine).await, ["second"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_checks_its_half_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_800_000_000_000, 6);
    let store = strata_metadata::MemoryStore::new();
    let c: Arc<dyn strata_common::Clock> = clock.clone();
    let engine = Engine::open_with_store(common::config(dir.path()), c, store.clone())
        .await
        .unwrap();
    engine
        .create_topic(T, "tx", 1, MessageType::Transaction, None)
        .await
        .unwrap();
    let (at, real) = engine.publish_half(T, "tx", msg("real")).await.unwrap();
    // A record naming the same half offset for another message.
    strata_metadata::Catalog::new(store.clone())
        .put_half(&strata_metadata::HalfRecord {
            tenant: T.into(),
            transaction_id: "00000000000000000000000000000f00".into(),
            message_id: "someone-else".into(),
            topic: "tx".into(),
            half_offset: at.offset,
            created_ms: 1_800_000_000_000,
            checks: 0,
            next_check_ms: i64::MAX,
        })
        .await
        .unwrap();
    let forged = engine
        .end_transaction(T, "tx", "00000000000000000000000000000f00", true)
        .await;
    assert!(
        matches!(forged, Err(EngineError::InvalidTransaction(_))),
        "{forged:?}"
    );
    assert!(bodies(&engine).await.is_empty(), "not delivered by another");
    engine.end_transaction(T, "tx", &real, true).await.unwrap();
    assert_eq!(bodies(&engine).await, ["real"]);
}
