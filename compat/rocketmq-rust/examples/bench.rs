//! Bench mode of the official RocketMQ 5 Rust SDK against Strata: publish
//! as fast as acknowledgements allow, then drain with SimpleConsumers, and
//! check every acknowledged message was received once.
//!
//! `STRATA_BIN=target/release/strata cargo run --release --example bench --
//! [producers] [seconds] [queues] [message size] [consumers] [acks in flight]`
//! (defaults 32 10 8 1024 16 1; starts its own server on loopback). With
//! acks in flight 1 a consumer acknowledges one message after another; 32
//! acknowledges a whole received batch at once.

use std::time::Duration;

use strata_compat_rocketmq_rust::Strata;
use strata_compat_rocketmq_rust::bench::{self, BenchOptions};

fn arg(i: usize, default: usize) -> usize {
    match std::env::args().nth(i) {
        Some(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("argument {i} is not a number: {v}")),
        None => default,
    }
}

#[tokio::main]
async fn main() {
    let options = BenchOptions {
        producers: arg(1, 32),
        duration: Duration::from_secs(arg(2, 10) as u64),
        queues: arg(3, 8) as u32,
        message_size: arg(4, 1024),
        consumers: arg(5, 16),
        acks_in_flight: arg(6, 1),
    };
    let strata = Strata::start("bench");
    let (publisher, reader) = bench::bench_tenant(&strata);
    let report = bench::run(&strata, &publisher, &reader, &options).await;
    print!("{}", report.markdown(&options));
    if report.received != report.acknowledged || report.duplicates > 0 || report.consume_errors > 0
    {
        eprintln!(
            "MISMATCH: {} acknowledged, {} received, {} duplicates, {} failed receives or acks",
            report.acknowledged, report.received, report.duplicates, report.consume_errors
        );
        std::process::exit(1);
    }
}
