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

    /// A live stream of a producer of `topic`, if one is connected: the
    /// one that registered last.
    pub(crate) fn find(
        &self,
        tenant: &str,
        topic: &str,
    ) -> Option<mpsc::Sender<Result<pb::TelemetryCommand, Status>>> {
        let mut streams = self.lock();
        streams.retain(|s| !s.tx.is_closed());
        streams
            .iter()
            .rev()
            .find(|s| s.tenant == tenant && s.topics.iter().any(|t| t == topic))
            .map(|s| s.tx.clone())
    }
}
