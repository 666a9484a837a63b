//! Bench mode: publish with the official SDK's `Producer` as fast as Strata
//! acknowledges, then drain the topic with its `SimpleConsumer`s (receive,
//! ack), and check that every acknowledged message was received once. The
//! figures are the official SDK's, measured, next to `strata-loadtest
//! compare`'s `strata-grpc` driver (generated code, no SDK).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use rocketmq::conf::{ClientOption, ProducerOption, SimpleConsumerOption};
use rocketmq::model::common::{FilterExpression, FilterType};
use rocketmq::model::message::{MessageBuilder, MessageView};
use rocketmq::{Producer, SimpleConsumer};

use crate::Strata;

/// Smallest message: room for "<producer>:<number>:".
pub const MIN_MESSAGE_SIZE: usize = 32;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Producer tasks, each with its own `Producer` (its own connection).
    pub producers: usize,
    pub queues: u32,
    pub message_size: usize,
    /// How long the producers publish.
    pub duration: Duration,
    /// `SimpleConsumer`s draining the topic afterwards.
    pub consumers: usize,
    /// Acks each consumer has in flight for a received batch: 1 acks one
    /// message after another; the batch size (32) acks the whole batch at
    /// once, as an application that handles a batch together would.
    pub acks_in_flight: usize,
}

/// What was measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub acknowledged: u64,
    pub send_errors: u64,
    pub publish_msgs_per_sec: f64,
    /// Send latency, microseconds: p50, p99, max.
    pub send_p50_us: u64,
    pub send_p99_us: u64,
    pub send_max_us: u64,
    /// Distinct messages received and acked by the consumers.
    pub received: u64,
    /// Deliveries of a message already received.
    pub duplicates: u64,
    /// Receives and acks that failed.
    pub consume_errors: u64,
    pub receive_ack_msgs_per_sec: f64,
    /// Latency of a receive that returned messages, and of one ack, in
    /// microseconds: p50, p99.
    pub receive_p50_us: u64,
    pub receive_p99_us: u64,
    pub ack_p50_us: u64,
    pub ack_p99_us: u64,
}

impl BenchReport {
    /// One Markdown table: the publish and the drain.
    pub fn markdown(&self, o: &BenchOptions) -> String {
        format!(
            "| official Rust SDK (rocketmq 5.0.0) | msgs/s | p50 ms | p99 ms | max ms | messages | errors |\n\
             |---|---:|---:|---:|---:|---:|---:|\n\
             | publish, {} producers, {} queues, {} B | {:.0} | {:.2} | {:.2} | {:.2} | {} acknowledged | {} |\n\
             | receive + ack, {} consumers, {} acks in flight each | {:.0} | | | | {} received, {} duplicates | {} |\n\
             | one receive (batch of up to 32) | | {:.2} | {:.2} | | | |\n\
             | one ack | | {:.2} | {:.2} | | | |\n",
            o.producers,
            o.queues,
            o.message_size,
            self.publish_msgs_per_sec,
            self.send_p50_us as f64 / 1000.0,
            self.send_p99_us as f64 / 1000.0,
            self.send_max_us as f64 / 1000.0,
            self.acknowledged,
            self.send_errors,
            o.consumers,
            o.acks_in_flight,
            self.receive_ack_msgs_per_sec,
            self.received,
            self.duplicates,
            self.consume_errors,
            self.receive_p50_us as f64 / 1000.0,
            self.receive_p99_us as f64 / 1000.0,
            self.ack_p50_us as f64 / 1000.0,
            self.ack_p99_us as f64 / 1000.0,
        )
    }
}

/// Client options for `strata`'s gRPC API signed with `key`; long polls
/// wait up to 5 s.
pub fn client(strata: &Strata, key: &(String, String)) -> ClientOption {
    let mut c = ClientOption::default();
    c.set_access_url(strata.grpc.clone());
    c.set_access_key(key.0.clone());
    c.set_secret_key(key.1.clone());
    c.set_long_polling_timeout(Duration::from_secs(5));
    c
}

/// Acknowledges `m`: whether it succeeded, and how long it took in µs.
async fn ack_one(c: &SimpleConsumer, m: &MessageView) -> (bool, u64) {
    let acking = Instant::now();
    let acked = c.ack(m).await.is_ok();
    (acked, acking.elapsed().as_micros() as u64)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Makes tenant `bench` with unlimited quotas; returns its publisher and
/// consumer keys.
pub fn bench_tenant(strata: &Strata) -> ((String, String), (String, String)) {
    let publisher = strata.tenant_key("bench", "publisher");
    let reader = strata.tenant_key("bench", "consumer");
    unlimited_plan(strata, "bench");
    (publisher, reader)
}

/// Puts `tenant` on a plan without quotas, so a measurement measures the
/// server and not its rate limits.
pub fn unlimited_plan(strata: &Strata, tenant: &str) {
    strata.cli(&[
        "quota",
        "set",
        "unlimited",
        "--requests-per-sec",
        "0",
        "--publish-messages-per-sec",
        "0",
        "--publish-bytes-per-sec",
        "0",
        "--consume-messages-per-sec",
        "0",
        "--consume-bytes-per-sec",
        "0",
    ]);
    strata.cli(&["tenant", "set-plan", tenant, "unlimited"]);
}

/// Runs the bench on `strata` as tenant `bench` (see [`bench_tenant`]).
pub async fn run(
    strata: &Strata,
    publisher: &(String, String),
    reader: &(String, String),
    o: &BenchOptions,
) -> BenchReport {
    let topic = "sdk-bench";
    let queues = o.queues.to_string();
    strata.cli(&[
        "--tenant", "bench", "topic", "create", topic, "--queues", &queues,
    ]);
    strata.cli(&["--tenant", "bench", "group", "create", "sdk-bench-readers"]);

    assert!(
        o.message_size >= MIN_MESSAGE_SIZE,
        "messages must be at least {MIN_MESSAGE_SIZE} bytes: each carries its producer and number"
    );
    // Every producer is started before the clock starts.
    let mut producers = Vec::new();
    for _ in 0..o.producers {
        let mut po = ProducerOption::default();
        po.set_topics(vec![topic]);
        let mut p = Producer::new(po, client(strata, publisher)).expect("producer");
        p.start().await.expect("producer start");
        producers.push(p);
    }
    let start = Instant::now();
    let deadline = start + o.duration;
    let mut tasks = Vec::new();
    for (i, p) in producers.into_iter().enumerate() {
        let body = vec![b'x'; o.message_size];
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut ids, mut errors) = (Vec::new(), Vec::new(), 0u64);
            let mut n = 0u64;
            while Instant::now() < deadline {
                let mut b = body.clone();
                // Each body is unique, so a received body names its send.
                let tag = format!("{i}:{n}:");
                let len = tag.len().min(b.len());
                b[..len].copy_from_slice(&tag.as_bytes()[..len]);
                n += 1;
                let m = MessageBuilder::builder()
                    .set_topic(topic)
                    .set_body(b)
                    .build()
                    .expect("a message");
                let sent = Instant::now();
                match p.send(m).await {
                    Ok(_) => {
                        latencies.push(sent.elapsed().as_micros() as u64);
                        ids.push(tag);
                    }
                    Err(_) => errors += 1,
                }
            }
            let done = Instant::now();
            p.shutdown().await.ok();
            (latencies, ids, errors, done)
        }));
    }
    let (mut latencies, mut sent, mut send_errors) = (Vec::new(), HashSet::new(), 0);
    let mut published = start;
    for t in tasks {
        let (l, ids, e, done) = t.await.expect("a producer task");
        latencies.extend(l);
        sent.extend(ids);
        send_errors += e;
        published = published.max(done);
    }
    let publish_s = (published - start).as_secs_f64().max(0.001);
    latencies.sort_unstable();
    let acknowledged = sent.len() as u64;

    let sent = Arc::new(sent);
    let drain_start = Instant::now();
    let mut readers = Vec::new();
    for _ in 0..o.consumers {
        let mut co = SimpleConsumerOption::default();
        co.set_topics(vec![topic]);
        co.set_consumer_group("sdk-bench-readers");
        let mut c = SimpleConsumer::new(co, client(strata, reader)).expect("consumer");
        c.start().await.expect("consumer start");
        let sent = sent.clone();
        let acks_in_flight = o.acks_in_flight.max(1);
        readers.push(tokio::spawn(async move {
            let all = FilterExpression::new(FilterType::Tag, "*");
            let (mut got, mut last) = (Vec::new(), Instant::now());
            let (mut receives, mut acks) = (Vec::new(), Vec::new());
            let mut errors = 0u64;
            let mut empty = 0;
            // Three empty long polls in a row: the topic is drained.
            while empty < 3 {
                let asked = Instant::now();
                let batch = match c
                    .receive_with(topic, &all, 32, Duration::from_secs(30))
                    .await
                {
                    Ok(batch) => batch,
                    Err(_) => {
                        errors += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if batch.is_empty() {
                    empty += 1;
                    continue;
                }
                receives.push(asked.elapsed().as_micros() as u64);
                empty = 0;
                // `ack` takes `&self`, so one consumer can have several in
                // flight; the server combines those of one queue.
                let acking: Vec<_> = batch.iter().map(|m| ack_one(&c, m)).collect();
                let outcomes: Vec<(bool, u64)> = stream::iter(acking)
                    .buffered(acks_in_flight)
                    .collect()
                    .await;
                for (m, (acked, took)) in batch.iter().zip(outcomes) {
                    acks.push(took);
                    if !acked {
                        errors += 1;
                        continue;
                    }
                    let body = String::from_utf8_lossy(m.body());
                    let tag: String = body.split_inclusive(':').take(2).collect();
                    if sent.contains(&tag) {
                        got.push(tag);
                    }
                }
                last = Instant::now();
            }
            c.shutdown().await.ok();
            (got, last, receives, acks, errors)
        }));
    }
    let (mut received, mut duplicates) = (HashSet::new(), 0);
    let (mut receives, mut acks) = (Vec::new(), Vec::new());
    let mut consume_errors = 0;
    let mut drained = drain_start;
    for r in readers {
        let (tags, last, r_lat, a_lat, errors) = r.await.expect("a consumer task");
        consume_errors += errors;
        receives.extend(r_lat);
        acks.extend(a_lat);
        drained = drained.max(last);
        for tag in tags {
            if !received.insert(tag) {
                duplicates += 1;
            }
        }
    }
    // Until the last message received: the empty polls after it are not
    // part of the drain.
    let drain_s = (drained - drain_start).as_secs_f64().max(0.001);
    receives.sort_unstable();
    acks.sort_unstable();
    BenchReport {
        acknowledged,
        send_errors,
        publish_msgs_per_sec: acknowledged as f64 / publish_s,
        send_p50_us: percentile(&latencies, 0.5),
        send_p99_us: percentile(&latencies, 0.99),
        send_max_us: latencies.last().copied().unwrap_or(0),
        received: received.len() as u64,
        duplicates,
        consume_errors,
        receive_ack_msgs_per_sec: received.len() as f64 / drain_s,
        receive_p50_us: percentile(&receives, 0.5),
        receive_p99_us: percentile(&receives, 0.99),
        ack_p50_us: percentile(&acks, 0.5),
        ack_p99_us: percentile(&acks, 0.99),
    }
}
