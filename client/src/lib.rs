//! What a client of Strata needs, without the server: the generated RocketMQ
//! 5 protocol ([`pb`]: messages, the MessagingService client and server
//! stubs), request signing ([`signing`]), the JSON bodies of the HTTP API
//! ([`api`]) and a typed HTTP client ([`http`]). The server's gRPC
//! adapter, the load tester and tests share it, so none of them has to link
//! the engine to speak the protocol.

pub mod api;
pub mod http;
pub mod signing;

/// Types, client and server generated from `proto/` (package
/// `apache.rocketmq.v2`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("apache.rocketmq.v2");
}
