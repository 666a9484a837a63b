//! Measures Strata with the official RocketMQ 5 Rust SDK, unchanged:
//! end-to-end latency (send → receive), receive+ack throughput with 1 and
//! 16 consumers, and the delivery slack of delay messages.
//!
//! `STRATA_BIN=target/release/strata cargo run --release --example measure`
//! (starts its own server on loopback and a temporary data directory).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rocketmq::conf::{ProducerOption, SimpleConsumerOption};
use rocketmq::model::common::{FilterExpression, FilterType};
use rocketmq::model::message::MessageBuilder;
use rocketmq::{Producer, SimpleConsumer};
use strata_compat_rocketmq_rust::Strata;
use strata_compat_rocketmq_rust::bench::{self, client};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn producer(strata: &Strata, key: &(String, String), topic: &str) -> Producer {
    let mut po = ProducerOption::default();
    po.set_topics(vec![topic]);
    let mut p = Producer::new(po, client(strata, key)).expect("producer");
    p.start().await.expect("producer start");
    p
}

async fn consumer(
    strata: &Strata,
    key: &(String, String),
    topic: &str,
    group: &str,
) -> SimpleConsumer {
    let mut co = SimpleConsumerOption::default();
    co.set_topics(vec![topic]);
    co.set_consumer_group(group);
    let mut c = SimpleConsumer::new(co, client(strata, key)).expect("consumer");
    c.start().await.expect("consumer start");
    c
}

/// Sends `count` messages at `rate`/s with their send time in the body to
/// a topic of `queues` queues; one consumer, waiting before the first
/// send, receives and acks; latency = receive time − send time.
async fn end_to_end(
    strata: &Strata,
    publisher: &(String, String),
    reader: &(String, String),
    queues: u32,
) {
    let topic = format!("e2e{queues}");
    let group = format!("e2e-readers{queues}");
    strata.cli(&[
        "--tenant",
        "acme",
        "topic",
        "create",
        &topic,
        "--queues",
        &queues.to_string(),
    ]);
    strata.cli(&["--tenant", "acme", "group", "create", &group]);
    let count = 2000;
    let rate = 200.0;
    let p = producer(strata, publisher, &topic).await;
    let c = consumer(strata, reader, &topic, &group).await;
    let all = FilterExpression::new(FilterType::Tag, "*");
    // The consumer is up and polling before the producer starts, as
    // consumers usually are. (It also takes the SDK's rotation over the
    // route one step away from the producer's, which otherwise would
    // move in lockstep with it.)
    c.receive_with(topic.as_str(), &all, 32, Duration::from_secs(5))
        .await
        .expect("first receive");
    let sent_topic = topic.clone();
    let sender = tokio::spawn(async move {
        let topic = sent_topic;
        let start = Instant::now();
        for i in 0..count {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
            let m = MessageBuilder::builder()
                .set_topic(topic.as_str())
                .set_body(now_ms().to_string().into_bytes())
                .build()
                .unwrap();
            p.send(m).await.expect("send");
        }
        p
    });
    let mut latencies = Vec::with_capacity(count);
    while latencies.len() < count {
        let got = c
            .receive_with(topic.as_str(), &all, 32, Duration::from_secs(30))
            .await
            .expect("receive");
        let at = now_ms();
        for m in &got {
            let sent: i64 = String::from_utf8_lossy(m.body()).parse().unwrap_or(at);
            latencies.push(at - sent);
            c.ack(m).await.expect("ack");
        }
    }
    let p = sender.await.unwrap();
    p.shutdown().await.ok();
    c.shutdown().await.ok();
    latencies.sort_unstable();
    println!(
        "| end-to-end (send → receive), {queues} queue(s), {count} msgs at {rate}/s, small bodies | p50 {} ms | p99 {} ms | max {} ms |",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap()
    );
}

/// Pre-publishes a backlog, then `consumers` SimpleConsumers receive
/// (batch 32) and ack each message until it is drained.
async fn receive_ack_throughput(
    strata: &Strata,
    publisher: &(String, String),
    reader: &(String, String),
    consumers: usize,
) {
    let topic = format!("drain{consumers}");
    let group = format!("drainers{consumers}");
    strata.cli(&[
        "--tenant", "acme", "topic", "create", &topic, "--queues", "16",
    ]);
    strata.cli(&["--tenant", "acme", "group", "create", &group]);
    let backlog = 8000u64;
    let p = producer(strata, publisher, &topic).await;
    let body = vec![b'x'; 1024];
    let mut sends = Vec::new();
    let p = Arc::new(p);
    for w in 0..16u64 {
        let p = p.clone();
        let topic = topic.clone();
        let body = body.clone();
        sends.push(tokio::spawn(async move {
            for _ in 0..backlog / 16 {
                let m = MessageBuilder::builder()
                    .set_topic(topic.as_str())
                    .set_body(body.clone())
                    .build()
                    .unwrap();
                p.send(m).await.expect("send");
            }
            w
        }));
    }
    for s in sends {
        s.await.unwrap();
    }
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..consumers {
        let c = consumer(strata, reader, &topic, &group).await;
        let done = done.clone();
        let topic = topic.clone();
        tasks.push(tokio::spawn(async move {
            let all = FilterExpression::new(FilterType::Tag, "*");
            let mut empty = 0;
            while done.load(Ordering::Relaxed) < backlog && empty < 20 {
                let got = c
                    .receive_with(topic.as_str(), &all, 32, Duration::from_secs(30))
                    .await
                    .unwrap_or_default();
                if got.is_empty() {
                    empty += 1;
                }
                for m in &got {
                    if c.ack(m).await.is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            c.shutdown().await.ok();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "| receive + ack, {consumers} consumer(s), 16 queues, 1 KiB | {n} msgs in {secs:.1} s | {:.0} msgs/s | |",
        n as f64 / secs
    );
}

/// Delay messages due over the next seconds (the SDK takes whole
/// seconds); slack = time the consumer receives it − due time.
async fn delay_slack(strata: &Strata, publisher: &(String, String), reader: &(String, String)) {
    strata.cli(&[
        "--tenant", "acme", "topic", "create", "later", "--queues", "1", "--type", "delay",
    ]);
    strata.cli(&["--tenant", "acme", "group", "create", "later-readers"]);
    let p = producer(strata, publisher, "later").await;
    let count = 300;
    let base = now_ms() / 1000 + 2;
    for i in 0..count {
        let due_s = base + (i % 5) as i64;
        let m =
            MessageBuilder::delay_message_builder("later", due_s.to_string().into_bytes(), due_s)
                .build()
                .unwrap();
        p.send(m).await.expect("send delayed");
    }
    let c = consumer(strata, reader, "later", "later-readers").await;
    let all = FilterExpression::new(FilterType::Tag, "*");
    let mut slack = Vec::new();
    while slack.len() < count {
        let got = c
            .receive_with("later", &all, 32, Duration::from_secs(30))
            .await
            .expect("receive");
        let at = now_ms();
        for m in &got {
            let due_s: i64 = String::from_utf8_lossy(m.body()).parse().unwrap_or(0);
            slack.push(at - due_s * 1000);
            c.ack(m).await.expect("ack");
        }
    }
    slack.sort_unstable();
    println!(
        "| delay slack (receive − due), {count} msgs over 5 s | p50 {} ms | p99 {} ms | min {} ms |",
        percentile(&slack, 0.5),
        percentile(&slack, 0.99),
        slack[0]
    );
    p.shutdown().await.ok();
    c.shutdown().await.ok();
}

#[tokio::main]
async fn main() {
    let strata = Strata::start("measure");
    let publisher = strata.tenant_key("acme", "publisher");
    let reader = strata.tenant_key("acme", "consumer");
    bench::unlimited_plan(&strata, "acme");
    println!("| measurement | result | | |");
    println!("|---|---|---|---|");
    end_to_end(&strata, &publisher, &reader, 1).await;
    end_to_end(&strata, &publisher, &reader, 16).await;
    receive_ack_throughput(&strata, &publisher, &reader, 1).await;
    receive_ack_throughput(&strata, &publisher, &reader, 16).await;
    delay_slack(&strata, &publisher, &reader).await;
}
