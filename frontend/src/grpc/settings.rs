//! The settings the server answers a client's Settings command with: the
//! client's own, completed with what this server enforces.

use std::time::Duration;

use strata_engine::RetryPolicy;

use crate::grpc::pb;

/// How long a client should wait for one unary request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a receive may wait for messages (below the SDKs' deadlines).
pub const LONG_POLLING_TIMEOUT: Duration = Duration::from_secs(20);
/// Messages per receive when the client does not say.
pub const RECEIVE_BATCH_SIZE: i32 = 32;
/// Attempts a producer makes to send a message.
pub const MAX_SEND_ATTEMPTS: i32 = 3;

fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// Exponential backoff from 10 ms to 1 s, doubling.
fn backoff(max_attempts: i32) -> pb::RetryPolicy {
    pb::RetryPolicy {
        max_attempts,
        strategy: Some(pb::retry_policy::Strategy::ExponentialBackoff(
            pb::ExponentialBackoff {
                initial: Some(duration(Duration::from_millis(10))),
                max: Some(duration(Duration::from_secs(1))),
                multiplier: 2.0,
            },
        )),
    }
}

/// What the server tells a consumer about its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerGroup {
    /// The group consumes in order and subscribes to a FIFO topic: the
    /// SDK's push consumer then hands one message of a group at a time.
    pub fifo: bool,
    pub retry: RetryPolicy,
}

/// A consumer's retry backoff (what an SDK waits before redelivering a
/// message its listener failed): the group's policy, in whole seconds of at
/// least one, since SDKs read only the seconds and the server refuses
/// invisible durations under a second.
///
/// The Python SDK's push consumer reads only a customized backoff (the
/// list of waits) and otherwise retries a FIFO message 17 times whatever
/// the group's maximum; the Node.js SDK ignores a customized one. So
/// Python clients get the same schedule as a list, the others as an
/// exponential backoff.
fn consumer_backoff(retry: &RetryPolicy, language: Option<pb::Language>) -> pb::RetryPolicy {
    let whole_secs = |ms: u64| ms.div_ceil(1000).max(1);
    let initial = whole_secs(retry.initial_backoff_ms);
    let max = whole_secs(retry.max_backoff_ms).max(initial);
    let secs = |s: u64| duration(Duration::from_secs(s));
    let strategy = match language {
        Some(pb::Language::Python) => {
            // initial, doubling, up to max; later attempts wait the last.
            let mut next = vec![initial];
            while let Some(&last) = next.last()
                && last < max
            {
                next.push(last.saturating_mul(2).min(max));
            }
            pb::retry_policy::Strategy::CustomizedBackoff(pb::CustomizedBackoff {
                next: next.into_iter().map(secs).collect(),
            })
        }
        _ => pb::retry_policy::Strategy::ExponentialBackoff(pb::ExponentialBackoff {
            initial: Some(secs(initial)),
            max: Some(secs(max)),
            multiplier: 2.0,
        }),
    };
    pb::RetryPolicy {
        max_attempts: i32::try_from(retry.max_delivery_attempts).unwrap_or(i32::MAX),
        strategy: Some(strategy),
    }
}

/// `client` completed with the server's values: backoff, request timeout,
/// the largest body it accepts, batch size and long-polling timeout, and
/// for a consumer of a known group, its FIFO flag and retry policy.
pub fn server_settings(
    client: pb::Settings,
    max_body_bytes: usize,
    group: Option<ConsumerGroup>,
) -> pb::Settings {
    let mut s = client;
    let attempts = s
        .backoff_policy
        .as_ref()
        .map(|p| p.max_attempts)
        .filter(|n| *n > 0)
        .unwrap_or(MAX_SEND_ATTEMPTS);
    s.backoff_policy = Some(match (&s.pub_sub, group) {
        (Some(pb::settings::PubSub::Subscription(_)), Some(g)) => {
            let language = s
                .user_agent
                .as_ref()
                .and_then(|ua| pb::Language::try_from(ua.language).ok());
            consumer_backoff(&g.retry, language)
        }
        _ => backoff(attempts),
    });
    s.request_timeout = Some(duration(REQUEST_TIMEOUT));
    match &mut s.pub_sub {
        Some(pb::settings::PubSub::Publishing(p)) => {
            p.max_body_size = i32::try_from(max_body_bytes).unwrap_or(i32::MAX);
            p.validate_message_type = true;
        }
        Some(pb::settings::PubSub::Subscription(sub)) => {
            sub.receive_batch_size.get_or_insert(RECEIVE_BATCH_SIZE);
            sub.long_polling_timeout
                .get_or_insert(duration(LONG_POLLING_TIMEOUT));
            sub.fifo = Some(group.is_some_and(|g| g.fifo));
        }
        None => {}
    }
    s.metric = Some(pb::Metric {
        on: false,
        endpoints: None,
    });
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producers_get_a_body_limit_and_exponential_backoff() {
        let client = pb::Settings {
            client_type: Some(pb::ClientType::Producer as i32),
            pub_sub: Some(pb::settings::PubSub::Publishing(pb::Publishing::default())),
            ..Default::default()
        };
        let s = server_settings(client, 4 << 20, None);
        let Some(pb::settings::PubSub::Publishing(p)) = &s.pub_sub else {
            panic!("publishing kept");
        };
        assert_eq!(p.max_body_size, 4 << 20);
        let policy = s.backoff_policy.unwrap();
        assert_eq!(policy.max_attempts, MAX_SEND_ATTEMPTS);
        assert!(matches!(
            policy.strategy,
            Some(pb::retry_policy::Strategy::ExponentialBackoff(_))
        ));
    }

    #[test]
    fn consumers_get_batch_size_and_long_polling() {
        let client = pb::Settings {
            pub_sub: Some(pb::settings::PubSub::Subscription(
                pb::Subscription::default(),
            )),
            ..Default::default()
        };
        let s = server_settings(client.clone(), 1, None);
        let Some(pb::settings::PubSub::Subscription(sub)) = &s.pub_sub else {
            panic!("subscription kept");
        };
        assert_eq!(sub.receive_batch_size, Some(RECEIVE_BATCH_SIZE));
        assert_eq!(sub.long_polling_timeout.as_ref().unwrap().seconds, 20);
        assert_eq!(sub.fifo, Some(false), "no known group: not FIFO");

        let group = ConsumerGroup {
            fifo: true,
            retry: RetryPolicy {
                max_delivery_attempts: 5,
                initial_backoff_ms: 1500,
                max_backoff_ms: 10_000,
            },
        };
        let s = server_settings(client, 1, Some(group));
        let Some(pb::settings::PubSub::Subscription(sub)) = &s.pub_sub else {
            panic!("subscription kept");
        };
        assert_eq!(sub.fifo, Some(true));
        let policy = s.backoff_policy.unwrap();
        assert_eq!(policy.max_attempts, 5);
        let Some(pb::retry_policy::Strategy::ExponentialBackoff(e)) = policy.strategy else {
            panic!("exponential backoff");
        };
        assert_eq!(e.initial.unwrap().seconds, 2, "rounded up to whole seconds");
        assert_eq!(e.max.unwrap().seconds, 10);
    }

    #[test]
    fn python_consumers_get_the_schedule_as_a_list_with_the_groups_maximum() {
        let retry = RetryPolicy {
            max_delivery_attempts: 4,
            initial_backoff_ms: 1500,
            max_backoff_ms: 10_000,
        };
        let p = consumer_backoff(&retry, Some(pb::Language::Python));
        assert_eq!(p.max_attempts, 4);
        let Some(pb::retry_policy::Strategy::CustomizedBackoff(c)) = p.strategy else {
            panic!("customized backoff");
        };
        let waits: Vec<i64> = c.next.iter().map(|d| d.seconds).collect();
        assert_eq!(waits, [2, 4, 8, 10]);
        let p = consumer_backoff(&RetryPolicy::DEFAULT, Some(pb::Language::Python));
        let Some(pb::retry_policy::Strategy::CustomizedBackoff(c)) = p.strategy else {
            panic!("customized backoff");
        };
        assert_eq!(c.next.len(), 1);
        for other in [None, Some(pb::Language::NodeJs), Some(pb::Language::Java)] {
            let p = consumer_backoff(&retry, other);
            assert!(matches!(
                p.strategy,
                Some(pb::retry_policy::Strategy::ExponentialBackoff(_))
            ));
        }
    }

    #[test]
    fn a_group_without_backoff_still_waits_a_second() {
        let p = consumer_backoff(&RetryPolicy::DEFAULT, None);
        let Some(pb::retry_policy::Strategy::ExponentialBackoff(e)) = p.strategy else {
            panic!("exponential backoff");
        };
        assert_eq!((e.initial.unwrap().seconds, e.max.unwrap().seconds), (1, 1));
        assert_eq!(p.max_attempts, 16);
    }
}
