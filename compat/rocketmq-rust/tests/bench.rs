//! The SDK bench mode, briefly, on a multi-queue topic: what the producers
//! got acknowledged is what the consumers receive, each message once. The
//! consumers ack several messages at once, so acks of one queue meet in the
//! server's combined commits (the one-at-a-time case is `consumer.rs`).

use std::time::Duration;

use strata_compat_rocketmq_rust::Strata;
use strata_compat_rocketmq_rust::bench::{self, BenchOptions};

#[tokio::test(flavor = "multi_thread")]
async fn bench_mode_receives_every_acknowledged_message_once() {
    let strata = Strata::start("bench-smoke");
    let (publisher, reader) = bench::bench_tenant(&strata);
    let options = BenchOptions {
        producers: 4,
        queues: 4,
        message_size: 256,
        duration: Duration::from_secs(2),
        consumers: 2,
        acks_in_flight: 8,
    };
    let report = bench::run(&strata, &publisher, &reader, &options).await;
    eprint!("{}", report.markdown(&options));
    assert!(report.acknowledged > 0, "{report:?}");
    assert_eq!(report.send_errors, 0, "{report:?}");
    assert_eq!(report.received, report.acknowledged, "{report:?}");
    assert_eq!(report.duplicates, 0, "{report:?}");
    assert_eq!(report.consume_errors, 0, "{report:?}");
}
