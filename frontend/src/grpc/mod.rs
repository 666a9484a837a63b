//! The Apache RocketMQ 5 gRPC protocol (`apache.rocketmq.v2.MessagingService`)
//! on top of the Strata engine, so the official RocketMQ 5 SDKs work
//! against Strata unchanged.
//!
//! Layout: [`pb`] (generated, in `strata-client`), [`caller`] (the shared
//! [`GrpcState`]; authentication, tenant, quotas, metering), [`clients`]
//! (waiting receives by client), [`producers`] (Telemetry streams for
//! check-backs), [`convert`] (messages), [`settings`] (Telemetry settings),
//! [`failure`] (result codes), [`forward`] (cluster mode: RPCs for a
//! tenant served elsewhere go there). The RPCs' work is done on `GrpcState` in
//! [`route`], [`consume`], [`pull`], [`offsets`] and [`txn`] ([`unsent`]: a
//! receive's answer that hands back what it never sent); [`service`] only
//! implements the tonic trait and answers, so no module imports the one
//! that uses it.

pub mod ack;
pub mod caller;
pub mod clients;
pub mod consume;
pub mod convert;
pub mod failure;
pub mod forward;
pub mod offsets;
pub mod producers;
pub mod pull;
pub mod route;
pub mod service;
pub mod settings;
pub mod txn;
pub mod unsent;

/// How often the server pings an idle client connection over HTTP/2.
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a ping may go unanswered before the connection is closed.
const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The generated protocol, from `strata-client`.
pub use strata_client::pb;

use std::future::Future;

pub use caller::GrpcState;
use pb::messaging_service_server::MessagingServiceServer;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;

/// Serves the MessagingService on `listener` until `shutdown` completes.
/// `max_request_bytes` bounds one decoded request (a SendMessage batch).
pub async fn serve(
    listener: TcpListener,
    state: GrpcState,
    max_request_bytes: usize,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let checks = txn::spawn_check_loop(state.engine.clone(), state.producers.clone());
    // Responses are small frames (a message, then the status trailers):
    // without TCP_NODELAY, Nagle's algorithm meets the client's delayed
    // ACKs and each answer can wait tens of milliseconds.
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        })
    });
    let service = MessagingServiceServer::new(service::Service {
        state: state.clone(),
        max_request_bytes,
    })
    .max_decoding_message_size(max_request_bytes)
    .max_encoding_message_size(max_request_bytes);
    // PullMessage is served by the route, with these sizes and, like the
    // rest, no compression: a setting added above belongs there too.
    let service = pull::PullRoute::new(service, state.clone(), max_request_bytes);
    let service = forward::Forwarding::new(service, state);
    // A client whose host went away without closing its connection is found
    // by HTTP/2 pings: its connection closes, and with it its Telemetry
    // stream, so transaction check-backs stop going to a producer that is
    // gone and its waiting receives end.
    let served = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    checks.abort();
    served
}
