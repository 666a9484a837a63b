//! Producers connected to this node over Telemetry, by the topics they
//! declared: where transaction check-backs are sent.

use std::sync::Mutex;

use tokio::sync::mpsc;
use tonic::Status;

use crate::grpc::pb;

/// A producer's Telemetry stream, for check-backs.
#[derive(Debug, Clone)]
struct ProducerStream {
    tenant: String,
    topics: Vec<String>,
    tx: mpsc::Sender<Result<pb::TelemetryCommand, Status>>,
}

/// Producers connected to this node, by the topics they declared.
#[derive(Debug, Default)]
pub struct Producers {
    streams: Mutex<Vec<ProducerStream>>,
}

impl Producers {
    /// Remembers a producer that publishes to `topics` in `tenant`.
    pub fn register(
        &self,
        tenant: &str,
        topics: Vec<String>,
        tx: mpsc::Sender<Result<pb::TelemetryCommand, Status>>,
    ) {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams.retain(|s| !s.tx.is_closed());
        streams.push(ProducerStream {
            tenant: tenant.to_string(),
            topics,
            tx,
        });
    }

    /// A live stream of a producer of `topic`, if one is connected.
    pub(crate) fn find(
        &self,
        tenant: &str,
        topic: &str,
    ) -> Option<mpsc::Sender<Result<pb::TelemetryCommand, Status>>> {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams.retain(|s| !s.tx.is_closed());
        streams
            .iter()
            .find(|s| s.tenant == tenant && s.topics.iter().any(|t| t == topic))
            .map(|s| s.tx.clone())
    }
}
