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
}

/// Producers connected to this node, by the topics they declared.
#[derive(Debug, Default)]
pub struct Producers {
    streams: Mutex<Vec<ProducerStream>>,
    next_stream: AtomicU64,
    /// Turns taken by check-backs, so they rotate between producers.
    turns: AtomicU64,
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

    /// A live stream of a producer of `topic`, if one is connected; each
    /// call takes the next of them in turn, so a producer that cannot
    /// answer check-backs (one without a transaction checker) does not get
    /// them all while one that can waits: the check repeats until answered.
    pub(crate) fn find(
        &self,
        tenant: &str,
        topic: &str,
    ) -> Option<mpsc::Sender<Result<pb::TelemetryCommand, Status>>> {
        let mut streams = self.lock();
        streams.retain(|s| !s.tx.is_closed());
        let of_topic: Vec<&ProducerStream> = streams
            .iter()
            .filter(|s| s.tenant == tenant && s.topics.iter().any(|t| t == topic))
            .collect();
        let turn = self.turns.fetch_add(1, Ordering::Relaxed);
        let n = u64::try_from(of_topic.len()).ok().filter(|n| *n > 0)?;
        let pick = usize::try_from(turn % n).ok()?;
        of_topic.get(pick).map(|s| s.tx.clone())
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
        assert!(p.find("acme", "invoices").is_none());
        assert!(p.find("gamma", "orders").is_none());
        // A producer gone is not picked.
        p.unregister(second_id);
        for _ in 0..3 {
            assert!(p.find("acme", "orders").unwrap().same_channel(&first));
        }
    }
}
