//! FIFO order, dead-lettering and transactions under SIGKILL. Clients work
//! against one server that is killed at random moments and restarted on
//! the same data directory:
//! - FIFO: messages of several message groups are published and consumed
//!   by message; per group, nothing is delivered while an earlier message
//!   is unacknowledged, first deliveries follow publish order, an
//!   acknowledged message never comes back, every published one is acked.
//! - DLQ: messages never acknowledged move to `<group>-DLQ` after the
//!   maximum attempts, with their body; acknowledged ones never do.
//! - Transactions (gRPC): a commit answered OK at the first try is visible
//!   exactly once (after an unanswered one, at least once: the design),
//!   rolled-back ones never, open ones survive restarts and still end.
//!
//! The seed (printed) picks the kill moments; `STRATA_CRASH_SEED` replays one.

#![allow(clippy::disallowed_methods)] // tests wait on real processes, sockets and timers

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    Grpc, Reply, Server, call, grpc_code, pop_ack, pop_receive, read_messages, signed,
    try_read_messages,
};
use serde_json::{Value, json};
use strata_frontend::grpc::pb::{self, Code};

const CYCLES: usize = 10;
const FIFO_QUEUES: u32 = 2;
const FIFO_GROUPS: usize = 5;
/// Publishes; each carries PER_ROUND messages of every message group.
const FIFO_ROUNDS: usize = 40;
const PER_ROUND: usize = 3;
const FIFO_INVISIBLE_MS: u64 = 1500;
/// Runs that publish a poison message (never acknowledged) and a fine one
/// to topic `poison`, so their moves to the DLQ fall into different runs.
const POISON: usize = 5;
/// The default of a group's retry policy (engine/src/pop.rs MAX_DELIVERY_ATTEMPTS).
const MAX_ATTEMPTS: u64 = 16;
/// Transactions are opened until each run's kill; this only bounds them.
const MAX_TXNS: usize = 1500;

/// (message group, sequence number within it).
type Msg = (usize, usize);

#[derive(Clone, Copy, PartialEq)]
enum Event {
    Delivered(Msg, u64),
    Acked(Msg),
    /// The acknowledgement was sent but not answered: it may have committed.
    AckLost(Msg),
}

#[derive(Default)]
struct Fifo {
    next_round: usize,
    published: HashSet<Msg>,
    events: Vec<Event>,
    /// Acknowledged (or ack lost) and not delivered since.
    settled: HashSet<Msg>,
    last_delivery: Option<Instant>,
}

#[derive(Default)]
struct Dlq {
    max_attempt: HashMap<String, u64>,
    /// Acknowledged: confirmed (true) or as the server died (false).
    acked: HashMap<String, bool>,
    last_fine_delivery: Option<Instant>,
    problems: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    /// Not sent yet (left open across a restart on purpose).
    Open,
    /// Sent, unanswered: the server died.
    Lost,
    Ok,
    /// INVALID_TRANSACTION_ID: no such open transaction.
    Gone,
}

#[derive(Debug)]
struct Txn {
    commit: bool,
    /// None if the half message's send was not answered.
    id: Option<String>,
    end: End,
    lost_ends: usize,
}

fn group_name(g: usize) -> String {
    format!("grp-{g}")
}

/// Publishes rounds of messages of every group until the server dies. A
/// lost publish is not retried: a retry could land after later rounds.
async fn fifo_publisher(url: String, fifo: Arc<Mutex<Fifo>>, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    loop {
        let round = fifo.lock().unwrap().next_round;
        if round >= FIFO_ROUNDS {
            return;
        }
        let batch: Vec<Msg> = (0..FIFO_GROUPS)
            .flat_map(|g| (0..PER_ROUND).map(move |k| (g, round * PER_ROUND + k)))
            .collect();
        let messages: Vec<Value> = batch
            .iter()
            .map(|&(g, s)| json!({"body": format!("{g}:{s}"), "message_group": group_name(g)}))
            .collect();
        let publish = json!({ "messages": messages });
        let confirmed = match call(&url, "/v1/topics/fifo/messages", &publish).await {
            Reply::Ok(_) => true,
            Reply::Refused(v) => panic!("FIFO publish refused: {v}"),
            Reply::Lost => false,
        };
        {
            let mut f = fifo.lock().unwrap();
            f.next_round += 1;
            if !confirmed {
                return;
            }
            f.published.extend(batch);
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(100..300))).await;
    }
}

/// Receives and acknowledges one queue of the FIFO topic until the server
/// dies; leaves some first deliveries unacknowledged, so they come back.
async fn fifo_consumer(url: String, queue: u32, fifo: Arc<Mutex<Fifo>>, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let ask = json!({"topic": "fifo", "queue": queue, "max_messages": 8,
                     "invisible_ms": FIFO_INVISIBLE_MS, "wait_ms": 300});
    while let Some(got) = pop_receive(&url, "fifo-workers", ask.clone()).await {
        for (m, attempt, handle) in got {
            let (g, s) = m["body"].as_str().unwrap().split_once(':').unwrap();
            let msg: Msg = (g.parse().unwrap(), s.parse().unwrap());
            let group = m["message_group"].as_str();
            assert_eq!(group, Some(group_name(msg.0).as_str()), "{m}");
            {
                let mut f = fifo.lock().unwrap();
                f.events.push(Event::Delivered(msg, attempt));
                f.settled.remove(&msg);
                f.last_delivery = Some(Instant::now());
            }
            if attempt == 1 && rng.u8(..40) == 0 {
                continue;
            }
            let event = match pop_ack(&url, "fifo-workers", "fifo", handle).await {
                Some(true) => Event::Acked(msg),
                Some(false) => continue,
                None => Event::AckLost(msg),
            };
            let mut f = fifo.lock().unwrap();
            f.events.push(event);
            f.settled.insert(msg);
        }
    }
}

/// Receives from `poison` and acknowledges only the `fine-*` messages.
async fn dlq_consumer(url: String, dlq: Arc<Mutex<Dlq>>) {
    let ask = json!({"topic": "poison", "queue": 0, "max_messages": 32,
                     "invisible_ms": 1000, "wait_ms": 500});
    while let Some(got) = pop_receive(&url, "dlq-workers", ask.clone()).await {
        for (m, attempt, handle) in got {
            let body = m["body"].as_str().unwrap().to_string();
            {
                let mut d = dlq.lock().unwrap();
                let before = d.max_attempt.insert(body.clone(), attempt).unwrap_or(0);
                // Attempts only grow, across restarts too (they may skip
                // one whose answer was lost); never past the maximum.
                if attempt > MAX_ATTEMPTS || attempt <= before {
                    let problem = format!("{body} delivered as attempt {attempt} after {before}");
                    d.problems.push(problem);
                }
                if d.acked.get(&body) == Some(&true) {
                    d.problems
                        .push(format!("{body} delivered after a confirmed ack"));
                }
            }
            if body.starts_with("fine") {
                dlq.lock().unwrap().last_fine_delivery = Some(Instant::now());
                match pop_ack(&url, "dlq-workers", "poison", handle).await {
                    Some(false) => {}
                    confirmed => _ = dlq.lock().unwrap().acked.insert(body, confirmed.is_some()),
                }
            }
        }
    }
}

fn txn_topic() -> Option<pb::Resource> {
    Some(pb::Resource {
        resource_namespace: String::new(),
        name: "txn".into(),
    })
}

/// Sends EndTransaction for `txns[i]`; false if the server died.
async fn end_txn(c: &mut Grpc, txns: &Mutex<Vec<Txn>>, i: usize) -> bool {
    let (commit, id) = {
        let t = &txns.lock().unwrap()[i];
        (t.commit, t.id.clone().unwrap_or_default())
    };
    let resolution = match commit {
        true => pb::TransactionResolution::Commit,
        false => pb::TransactionResolution::Rollback,
    };
    let request = pb::EndTransactionRequest {
        topic: txn_topic(),
        message_id: format!("TXN{i:05}"),
        transaction_id: id,
        resolution: resolution as i32,
        ..Default::default()
    };
    let reply = c.end_transaction(signed(request)).await;
    let t = &mut txns.lock().unwrap()[i];
    match reply.map(|r| grpc_code(r.into_inner().status)) {
        Ok(Code::Ok) => t.end = End::Ok,
        Ok(Code::InvalidTransactionId) => t.end = End::Gone,
        Ok(other) => panic!("EndTransaction of txn-{i:03} answered {other:?}"),
        Err(_) => {
            t.end = End::Lost;
            t.lost_ends += 1;
        }
    }
    t.end != End::Lost
}

/// Ends what earlier runs left open or unanswered, then (unless `last`)
/// opens transactions until the server dies: a quarter committed and a
/// quarter rolled back at once, half left open for the next run.
async fn txn_worker(grpc: String, txns: Arc<Mutex<Vec<Txn>>>, seed: u64, last: bool) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let Ok(mut c) = Grpc::connect(format!("http://{grpc}")).await else {
        return;
    };
    let unended: Vec<usize> = {
        let all = txns.lock().unwrap();
        let open = |t: &Txn| t.id.is_some() && matches!(t.end, End::Open | End::Lost);
        (0..all.len()).filter(|&i| open(&all[i])).collect()
    };
    for i in unended {
        if !end_txn(&mut c, &txns, i).await {
            assert!(!last, "the server died in the last run");
            return;
        }
    }
    while !last && txns.lock().unwrap().len() < MAX_TXNS {
        let i = txns.lock().unwrap().len();
        let system = pb::SystemProperties {
            message_id: format!("TXN{i:05}"),
            message_type: pb::MessageType::Transaction as i32,
            ..Default::default()
        };
        let half = pb::Message {
            topic: txn_topic(),
            user_properties: Default::default(),
            system_properties: Some(system),
            body: format!("txn-{i:03}").into_bytes(),
        };
        let sent = c.send_message(signed(pb::SendMessageRequest {
            messages: vec![half],
        }));
        let id = match sent.await.map(|r| r.into_inner()) {
            Ok(r) if grpc_code(r.status.clone()) == Code::Ok => {
                Some(r.entries[0].transaction_id.clone())
            }
            Ok(r) => panic!("half message txn-{i:03} refused: {r:?}"),
            Err(_) => None,
        };
        let sent = id.is_some();
        let commit = i.is_multiple_of(2);
        txns.lock().unwrap().push(Txn {
            commit,
            id,
            end: End::Open,
            lost_ends: 0,
        });
        if !sent || (i % 4 < 2 && !end_txn(&mut c, &txns, i).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(0..20))).await;
    }
}

/// Violations of the FIFO invariants in what the consumers saw.
fn fifo_problems(f: &Fifo) -> Vec<String> {
    let mut problems = Vec::new();
    // A lost acknowledgement took effect iff the message never came back.
    let mut last_delivery: HashMap<Msg, usize> = HashMap::new();
    for (i, e) in f.events.iter().enumerate() {
        if let Event::Delivered(m, _) = e {
            last_delivery.insert(*m, i);
        }
    }
    // In the log: publish confirmed, or seen (a lost publish that stuck).
    let exists = |m: &Msg| f.published.contains(m) || last_delivery.contains_key(m);
    let mut state: HashMap<Msg, Event> = HashMap::new();
    let mut attempts: HashMap<Msg, u64> = HashMap::new();
    let mut first_seen: HashMap<usize, usize> = HashMap::new();
    for (i, e) in f.events.iter().enumerate() {
        let (m @ (g, s), attempt) = match *e {
            Event::Delivered(m, attempt) => (m, attempt),
            // A lost ack after a confirmed one changes nothing.
            Event::Acked(m) | Event::AckLost(m) => {
                if state.get(&m) != Some(&Event::Acked(m)) {
                    state.insert(m, *e);
                }
                continue;
            }
        };
        let mut problem =
            |what: String| problems.push(format!("{g}:{s} attempt {attempt}: {what}"));
        if state.get(&m) == Some(&Event::Acked(m)) {
            problem("delivered after a confirmed ack".into());
        }
        if let Some(before) = attempts.insert(m, attempt).filter(|&b| attempt <= b) {
            problem(format!("delivered after attempt {before}"));
        }
        let unfinished = (0..s)
            .map(|e| (g, e))
            .filter(exists)
            .find(|p| match state.get(p) {
                Some(Event::Acked(_)) => false,
                Some(Event::AckLost(_)) => last_delivery[p] > i,
                _ => true,
            });
        if let Some((_, e)) = unfinished {
            problem(format!("delivered while {g}:{e} was unacknowledged"));
        }
        if !state.contains_key(&m) {
            let before = first_seen.insert(g, s).unwrap_or(0);
            if before > s {
                problem(format!("first delivered after {g}:{before}"));
                first_seen.insert(g, before);
            }
        }
        state.insert(m, *e);
    }
    for m in f.published.iter().chain(last_delivery.keys()) {
        if !matches!(state.get(m), Some(Event::Acked(_) | Event::AckLost(_))) {
            problems.push(format!("{}:{} was never acknowledged", m.0, m.1));
        }
    }
    problems
}

/// Violations of the transaction invariants, given each body's copies.
fn txn_problems(txns: &[Txn], copies: &HashMap<String, usize>) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, t) in txns.iter().enumerate() {
        let n = copies.get(&format!("txn-{i:03}")).copied().unwrap_or(0);
        let lost = t.lost_ends;
        let ok = match (&t.id, t.commit, t.end) {
            (None, ..) => n == 0,
            (_, _, End::Open | End::Lost) => false,
            // An open transaction's end was refused.
            (_, _, End::Gone) if lost == 0 => false,
            (_, false, _) => n == 0,
            // A commit publishes, then closes the transaction (engine/src/txn.rs):
            // an attempt the server died in may have published without
            // closing, and the next attempt publishes again (at-least-once).
            (_, true, End::Ok) => (1..=lost + 1).contains(&n),
            (_, true, End::Gone) => (1..=lost).contains(&n),
        };
        if !ok {
            problems.push(format!("txn-{i:03}: {t:?}, {n} visible"));
        } else if n > 1 {
            eprintln!("txn-{i:03}: committed {n} times after {lost} unanswered commits");
        }
    }
    problems
}

fn dlq_problems(d: &Dlq, dead: &[Value], kills: usize) -> Vec<String> {
    let mut problems = d.problems.clone();
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for m in dead {
        let body = m["body"].as_str().unwrap_or_default();
        *copies.entry(body).or_default() += 1;
        let p = &m["properties"];
        let attempts = MAX_ATTEMPTS.to_string();
        if !body.starts_with("poison-")
            || p["__mq.dlq.topic"] != "poison"
            || p["__mq.dlq.attempts"] != attempts.as_str()
        {
            problems.push(format!("unexpected dead letter {m}"));
        }
    }
    for i in 0..POISON {
        let n = copies
            .get(format!("poison-{i}").as_str())
            .copied()
            .unwrap_or(0);
        // A move publishes to the DLQ, then commits the POP state
        // (engine/src/pop.rs receive_once): a kill in between moves it
        // again after the restart. At least once, at most once per run.
        if !(1..=kills + 1).contains(&n) {
            problems.push(format!("poison-{i} is in the DLQ {n} times"));
        }
        if !d.acked.contains_key(&format!("fine-{i}")) {
            problems.push(format!("fine-{i} was never acknowledged"));
        }
    }
    problems
}

fn fifo_settled(f: &Fifo) -> bool {
    // Quiet past the invisible time: a lost ack that did not take is back.
    let quiet = f
        .last_delivery
        .is_none_or(|t| t.elapsed() > Duration::from_secs(3));
    f.next_round >= FIFO_ROUNDS && quiet && f.published.iter().all(|m| f.settled.contains(m))
}

async fn dlq_settled(url: &str, d: &Mutex<Dlq>) -> bool {
    let fine_done = {
        let d = d.lock().unwrap();
        // Quiet past the invisible time: a lost ack that did not take is back.
        let quiet = d
            .last_fine_delivery
            .is_none_or(|t| t.elapsed() > Duration::from_secs(2));
        quiet && (0..POISON).all(|i| d.acked.contains_key(&format!("fine-{i}")))
    };
    let dead = try_read_messages(url, "dlq-workers-DLQ", 0)
        .await
        .unwrap_or_default();
    let dead: HashSet<&str> = dead.iter().filter_map(|m| m["body"].as_str()).collect();
    fine_done && (0..POISON).all(|i| dead.contains(format!("poison-{i}").as_str()))
}

async fn setup(url: &str) {
    let q = FIFO_QUEUES;
    let topics = [
        json!({"name": "fifo", "queues": q, "type": "fifo"}),
        json!({"name": "txn", "queues": q, "type": "transaction"}),
        json!({"name": "poison"}),
    ];
    let groups = ["fifo-workers", "dlq-workers"].map(|g| json!({ "name": g }));
    let requests = topics.map(|t| ("/v1/topics", t)).into_iter();
    for (path, body) in requests.chain(groups.map(|g| ("/v1/groups", g))) {
        let created = call(url, path, &body).await;
        assert!(matches!(created, Reply::Ok(_)), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_dead_letters_and_transactions_survive_repeated_sigkill() {
    let seed = common::crash_seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let fifo = Arc::new(Mutex::new(Fifo::default()));
    let dlq = Arc::new(Mutex::new(Dlq::default()));
    let txns = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    // Kill cycles, then one run (`last`) that finishes the work and is
    // killed too, then a run that checks what that left on disk.
    for cycle in 0..=CYCLES {
        let last = cycle == CYCLES;
        let server = Server::start(dir.path(), &[]);
        let url = server.url.clone();
        if cycle == 0 {
            setup(&url).await;
        }
        if cycle < POISON {
            let pair = json!({"messages": [{"body": format!("poison-{cycle}")}, {"body": format!("fine-{cycle}")}]});
            let r = call(&url, "/v1/topics/poison/messages", &pair).await;
            assert!(matches!(r, Reply::Ok(_)), "publish to poison");
        }
        let publisher = tokio::spawn(fifo_publisher(url.clone(), fifo.clone(), rng.u64(..)));
        let grpc = server.grpc_addr.clone();
        let txn = tokio::spawn(txn_worker(grpc, txns.clone(), rng.u64(..), last));
        // Consumers run until the server dies.
        let mut consumers = vec![tokio::spawn(dlq_consumer(url.clone(), dlq.clone()))];
        for q in 0..FIFO_QUEUES {
            let consumer = fifo_consumer(url.clone(), q, fifo.clone(), rng.u64(..));
            consumers.push(tokio::spawn(consumer));
        }
        if last {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !(fifo_settled(&fifo.lock().unwrap())
                && dlq_settled(&url, &dlq).await
                && txn.is_finished())
            {
                if consumers.iter().any(|c| c.is_finished()) {
                    break; // a check failed: awaiting it below says which
                }
                assert!(
                    Instant::now() < deadline,
                    "work not finished 120 s into the last run"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(rng.u64(300..3000))).await;
        }
        server.kill();
        for t in consumers.into_iter().chain([publisher, txn]) {
            t.await.expect("client checks held");
        }
        eprintln!("run {cycle} killed at {:?}", started.elapsed());
    }

    let server = Server::start(dir.path(), &[]);
    let url = server.url.clone();
    // Nothing is left to deliver to either group: everything was
    // acknowledged or dead-lettered (past every invisible time).
    tokio::time::sleep(Duration::from_millis(FIFO_INVISIBLE_MS + 500)).await;
    let mut problems = Vec::new();
    for (group, topic, queue) in [
        ("fifo-workers", "fifo", 0),
        ("fifo-workers", "fifo", 1),
        ("dlq-workers", "poison", 0),
    ] {
        let ask = json!({"topic": topic, "queue": queue, "invisible_ms": 1000});
        let got = pop_receive(&url, group, ask).await.expect("receive");
        for (m, attempt, _) in got {
            problems.push(format!(
                "{group} got {} (attempt {attempt}) after the end",
                m["body"]
            ));
        }
    }
    let mut copies: HashMap<String, usize> = HashMap::new();
    for q in 0..FIFO_QUEUES {
        for m in read_messages(&url, "txn", q).await {
            *copies
                .entry(m["body"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    let dead = read_messages(&url, "dlq-workers-DLQ", 0).await;
    server.stop();

    let (f, t) = (fifo.lock().unwrap(), txns.lock().unwrap());
    problems.extend(fifo_problems(&f));
    problems.extend(dlq_problems(&dlq.lock().unwrap(), &dead, CYCLES + 1));
    problems.extend(txn_problems(&t, &copies));
    let lost = |what: fn(&Txn) -> bool| t.iter().filter(|x| what(x)).count();
    let (sends, ends) = (lost(|x| x.id.is_none()), lost(|x| x.lost_ends > 0));
    let events = f.events.len();
    eprintln!(
        "FIFO: {events} events; DLQ: {} copies; {} transactions, {sends} sends and {ends} ends unanswered",
        dead.len(),
        t.len()
    );
    let first: Vec<&str> = problems.iter().take(30).map(String::as_str).collect();
    assert!(
        problems.is_empty(),
        "seed {seed}: {} problems, first:\n{}",
        problems.len(),
        first.join("\n")
    );
}
