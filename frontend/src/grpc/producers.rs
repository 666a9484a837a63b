//! Producers connected to this node over Telemetry, by the topics they
//! declared: where transaction check-backs are sent. A stream's producer is
//! forgotten when the client ends the stream (a producer's `shutdown()`
//! half-closes it): check-backs then go to a producer still there, and the
//! reply stream, no longer held here, ends too.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tonic::Status;

use crate::grpc::pb;

/// A producer's Telemetry stream, for check-backs.
#[derive(Debug, Clone)]
struct ProducerStream {
    /// The Telemetry stream it came on ([`Producers::stream_id`]).
    stream: u64,
    tenant: String,
    topics: Vec<String>,
    tx: mpsc::Sender<Result<pb::TelemetryCommand, Status>>,
    /// Check-backs sent on this stream, so they go round its topics'
    /// producers.
    checks: u64,
}

/// Producers connected to this node, by the topics they declared.
#[derive(Debug, Default)]
pub struct Producers {
    streams: Mutex<Vec<ProducerStream>>,
    next_stream: AtomicU64,
}

impl Producers {
    /// A new id for one Telemetry stream's registrations.
    pub fn stream_id(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    /// Remembers the producer of Telemetry stream `stream`, which publishes
    /// to `topics` in `tenant` (settings sent again replace the earlier).
    pub fn register(
        &self,
        stream: u64,
        tenant: &str,
        topics: Vec<String>,
        tx: mpsc::Sender<Result<pb::TelemetryCommand, Status>>,
    ) {
        let mut streams = self.lock();
        streams.retain(|s| !s.tx.is_closed() && s.stream != stream);
        streams.push(ProducerStream {
            stream,
            tenant: tenant.to_string(),
            topics,
            tx,
            checks: 0,
        });
    }

    /// Forgets the producer of Telemetry stream `stream` (its client ended
    /// the stream), dropping the sender held for it.
    pub fn unregister(&self, stream: u64) {
        self.lock().retain(|s| s.stream != stream);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ProducerStream>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A live stream of a producer of `topic`, if one is connected: the one
    /// sent the fewest check-backs (the latest of those), so they go round
    /// the topic's producers and one that cannot answer them (it has no
    /// transaction checker) does not get them all while one that can waits:
    /// the check repeats until answered.
    pub(crate) fn find(
        &self,
        tenant: &str,
        topic: &str,
    ) -> Option<mpsc::Sender<Result<pb::TelemetryCommand, Status>>> {
        let mut streams = self.lock();
        streams.retain(|s| !s.tx.is_closed());
        let picked = streams
            .iter_mut()
            .rev()
            .filter(|s| s.tenant == tenant && s.topics.iter().any(|t| t == topic))
            .min_by_key(|s| s.checks)?;
        picked.checks += 1;
        Some(picked.tx.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Tx = mpsc::Sender<Result<pb::TelemetryCommand, Status>>;
    type Rx = mpsc::Receiver<Result<pb::TelemetryCommand, Status>>;

    fn producer(p: &Producers, tenant: &str, topic: &str) -> (u64, Tx, Rx) {
        let (tx, rx) = mpsc::channel(1);
        let stream = p.stream_id();
        p.register(stream, tenant, vec![topic.to_string()], tx.clone());
        (stream, tx, rx)
    }

    #[test]
    fn check_backs_rotate_between_a_topics_producers_of_its_tenant() {
        let p = Producers::default();
        let (_, first, _first_rx) = producer(&p, "acme", "orders");
        let (second_id, second, _second_rx) = producer(&p, "acme", "orders");
        let _other_tenant = producer(&p, "beta", "orders");
        let picked: Vec<Tx> = (0..4).map(|_| p.find("acme", "orders").unwrap()).collect();
        let to_first = picked.iter().filter(|tx| tx.same_channel(&first)).count();
        let to_second = picked.iter().filter(|tx| tx.same_channel(&second)).count();
        assert_eq!((to_first, to_second), (2, 2));
        // Check-backs of another topic in between do not make one of them
        // always the pick.
        let _invoices = producer(&p, "acme", "invoices");
        let picked: Vec<Tx> = (0..4)
            .map(|_| {
                p.find("acme", "invoices").unwrap();
                p.find("acme", "orders").unwrap()
            })
            .collect();
        let to_first = picked.iter().filter(|tx| tx.same_channel(&first)).count();
        assert_eq!(to_first, 2);
        assert!(p.find("acme", "payments").is_none());
        assert!(p.find("gamma", "orders").is_none());
        // A producer gone is not picked.
        p.unregister(second_id);
        for _ in 0..3 {
            assert!(p.find("acme", "orders").unwrap().same_channel(&first));
        }
    }
}
